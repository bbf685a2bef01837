"""What the flagship's cpu preset (the default, `make run`, <= 10 min on 2 cores) can buy its teachers: test accuracy
against training budget, the fast recipe (airbench_s) next to the preset's old teacher recipe (resnet8, SGD,
cosine).

    python benchmarks/sharpness_default_budget.py            # every point (~300 CPU-s), strict JSON lines
    python benchmarks/sharpness_default_budget.py --only airbench_s-n100-e10

Each point trains one teacher (seed 0, one seed per point: say so when quoting it) on the old cpu preset's data
(a stratified subset of ``n_per_class`` training images per class, seed 0, and 1,000 test images, drawn by
:func:`kdbounds.studies.sharpness_vs_gap.prepare_data`), scored after its last epoch (nothing selected on test
data). ``cpu_s`` is the process CPU time of the training (all threads), ``wall_s`` its wall time (only comparable
on an idle machine: say how loaded it was). The study's own budget is the sum over its 6 teachers, 19 students
and 6 measurement runs. (The cpu preset has since moved to this recipe, on a D_T/D_S split: its teachers train on
5,000 images, the point ``airbench_s-n500-e10``.)
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: name -> (arch, recipe, n_per_class, epochs, batch size)
POINTS: tuple[tuple[str, str, str, int, int, int], ...] = (
    ("resnet8-standard-n100-e12", "resnet8", "standard", 100, 12, 64),  # the preset's teacher recipe lr0.05-bs64
    ("airbench_s-n100-e10", "airbench_s", "fast", 100, 10, 100),
    ("airbench_s-n200-e10", "airbench_s", "fast", 200, 10, 100),
    ("airbench_s-n200-e20", "airbench_s", "fast", 200, 20, 100),
    ("airbench_s-n300-e10", "airbench_s", "fast", 300, 10, 100),
    ("airbench_s-n500-e10", "airbench_s", "fast", 500, 10, 100),
)


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def run_point(name: str, arch: str, recipe: str, n_per_class: int, epochs: int, batch: int, out: Path,
              threads: int) -> dict[str, Any]:
    """Train one point and return its record (strict-JSON-able)."""
    import torch

    from kdbounds.distill import TrainConfig, train
    from kdbounds.distill.fast_config import fast_config
    from kdbounds.studies import sharpness_vs_gap as ss

    torch.set_num_threads(threads)
    data = ss.prepare_data(ss.preset("smoke", n_per_class=n_per_class, test_per_class=100, subset_seed=0))
    if recipe == "fast":
        cfg = fast_config(arch, epochs=epochs, batch_size=batch, seed=0, device="cpu", eval_every=epochs)
    else:
        cfg = TrainConfig(arch=arch, epochs=epochs, batch_size=batch, lr=0.05, schedule="cosine", seed=0,
                          device="cpu", eval_every=epochs)
    c0, t0 = _cpu(), time.perf_counter()
    res = train(cfg, out / name, data=data, progress=False)
    return {"name": name, "arch": arch, "recipe": recipe, "n_per_class": n_per_class, "n_train": int(len(data[1])),
            "n_test": int(len(data[3])), "epochs": epochs, "batch_size": batch, "lr": cfg.lr, "seed": 0,
            "test_accuracy": res.final["test_acc"], "test_accuracy_tta": res.final.get("test_acc_tta"),
            "cpu_s": round(_cpu() - c0, 1), "wall_s": round(time.perf_counter() - t0, 1), "threads": threads}


def main(argv: list[str] | None = None) -> int:
    """Run the points named by ``argv`` (all by default) and print one JSON record per point; exit code 0."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", nargs="+", choices=[pt[0] for pt in POINTS], help="run only these points")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    points = [pt for pt in POINTS if not args.only or pt[0] in args.only]
    with tempfile.TemporaryDirectory() as tmp:
        for pt in points:
            print(json.dumps(run_point(*pt, out=Path(tmp), threads=args.threads), allow_nan=False), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
