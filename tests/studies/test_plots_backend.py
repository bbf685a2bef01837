"""The plotting helpers never switch matplotlib's backend (a notebook kernel keeps showing figures).

Oracles: ``matplotlib.get_backend()`` read before and after in a fresh process whose backend was set to
a non-Agg one (svg; the notebook's inline backend when matplotlib_inline is installed); pyplot's own
figure registry (``plt.get_fignums()``); PIL decoding the written PNG (its size and pixel content).
Each case runs in a subprocess so that the backend set here cannot leak into other tests.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent('''
    import json, sys
    import matplotlib
    matplotlib.use(sys.argv[1])
    import matplotlib.pyplot as plt
    before = matplotlib.get_backend()
    from pathlib import Path
    from kdbounds.figures import plot_bound_vs_observed, plot_sharpness_vs_gap, plt_figure, save_figure
    from linear_gaussian.plots import plot_bounds, plot_terms

    out = Path(sys.argv[2])
    fig, axes = plt_figure(1, 2, figsize=(4, 2), sharey=True)
    axes[0].plot([0, 1], [0, 1])
    fig.tight_layout()
    paths = [save_figure(fig, out / "grid.png", dpi=50)]
    rows = [{"method": m, "teacher": f"t{i}", "teacher_train_top_eig": float(i + 1),
             "student_gap_clipped_ce": 0.1 * i, "student_gap_zero_one": 0.05 * i,
             "teacher_gap_clipped_ce": 0.2, "teacher_gap_zero_one": 0.1} for i in range(3) for m in ("kd", "ce")]
    kendall = [{"statistic": "teacher_mean", "sharpness": "teacher_train_top_eig", "gap": "student_gap_zero_one",
                "tau": 1.0, "p_holm": 0.3, "n_teachers": 3}]
    paths.append(plot_sharpness_vs_gap(rows, out / "svg.png", kendall=kendall))
    rec = {"name": "theorem1", "loss": "ce", "side": "abs", "verdict": "holds", "observed": 0.1, "bound": 0.4}
    paths.append(plot_bound_vs_observed([rec], out / "bvo.png"))
    lg = [{"sweep": "n", "x": x, "seed": s, **{k: 0.1 * x + s for k in ("total", "bias", "rank_bottleneck",
          "variance", "gap_difference", "theorem3b_upper", "theorem3b_lower", "subgamma_upper",
          "subgamma_lower", "theorem1_bound")}} for x in (1, 2, 4) for s in (0, 1)]
    paths.append(save_figure(plot_terms(lg, "n", logx=True), out / "terms.png", dpi=50))
    paths.append(save_figure(plot_bounds(lg, "n"), out / "bounds.png", dpi=50))
    from kdbounds.studies.certify_students import plot_certificates
    cert = [{"prior": p, "student": st, "loss": "zero_one", "risk_upper": 0.6, "test_gibbs_risk": 0.5,
             "mean_term": 2.0, "variance_term": 0.0} for p in ("random", "learnt") for st in ("pbb", "kd")]
    paths.append(plot_certificates(cert, out / "certificates.png"))
    pyfig = plt.figure()
    pyfig.gca().plot([0, 1], [1, 0])  # a pyplot figure handed to save_figure is closed (removed from pyplot's registry)
    paths.append(save_figure(pyfig, out / "pyplot.png", dpi=30))
    print(json.dumps({"before": before, "after": matplotlib.get_backend(), "fignums": plt.get_fignums(),
                      "paths": [str(p) for p in paths]}))
''')

BACKENDS = ["svg"] + (["module://matplotlib_inline.backend_inline"]
                      if importlib.util.find_spec("matplotlib_inline") else [])


@pytest.mark.parametrize("backend", BACKENDS)
def test_plot_helpers_keep_the_backend_and_write_valid_pngs(backend, tmp_path):
    from PIL import Image

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("MPLBACKEND", None)
    proc = subprocess.run([sys.executable, "-c", SCRIPT, backend, str(tmp_path)], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["before"] == res["after"] != "agg", res
    assert res["fignums"] == [], "a figure stayed registered with pyplot"
    assert len(res["paths"]) == 7
    for p in map(Path, res["paths"]):
        with Image.open(p) as im:
            assert im.format == "PNG", p
            w, h = im.size
            assert w > 20 and h > 20, (p, im.size)
            lo, hi = im.convert("L").getextrema()
            assert lo < hi, f"{p} is blank"  # something was drawn


def test_plot_modules_do_not_use_pyplot_or_switch_backends():
    """A source check on top of the behaviour test: no ``matplotlib.use`` or pyplot import in the helpers."""
    import re

    rels = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "kdbounds" / "figures").glob("*.py"))]
    assert len(rels) >= 4, rels
    for rel in [*rels, "linear_gaussian/plots.py"]:
        text = (ROOT / rel).read_text()
        assert not re.search(r"matplotlib\.use\(|import matplotlib\.pyplot|from matplotlib import pyplot", text), rel
