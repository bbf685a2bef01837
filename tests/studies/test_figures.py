"""The study figures as objects: labels in words and maths (no code names), an interval wherever the
number has a standard error, the verdict colour of every drawn check equal to its verdict in the
records (as results.json stores them), axes that fit the data, zeros on log axes stated, not floored.

Records come from the real producers (:func:`kdbounds.checks.make_record`, :func:`assign_verdicts`)
after a strict-JSON round trip, as the plotting code reads them from ``results.json``.
"""

from __future__ import annotations

import json

import matplotlib.colors as mcolors
import numpy as np
import pytest

from kdbounds._io import dumps_strict
from kdbounds.checks import assign_verdicts, make_record
from kdbounds.figures import VERDICT_COLOURS, bound_vs_observed_figure, sharpness_vs_gap_figure


def _checks() -> list[dict]:
    """Holds (bound far above), violated (bound far below, small SE), inconclusive (interval crosses), zero."""
    spec = [("thm1_sigma_n", "zero_one", 0.5, 0.02, 0.005), ("thm1_sigma_n", "zero_one", 0.001, 0.2, 0.002),
            ("thm1_sigma_n", "clipped_ce", 0.05, 0.04, 0.03), ("thm1_product_proxy", "zero_one", 2.0, 0.0, 0.01),
            ("gibbs_classifier", "gibbs_zero_one", 0.3, -0.01, 0.0)]
    recs = [make_record(n, "demonstration" if n == "gibbs_classifier" else "conditional", loss=loss, side="abs",
                        bound=b, observed=o, observed_se=se, assumptions_met=n == "gibbs_classifier",
                        assumption="test", teacher=f"t{i}", student="kd") for i, (n, loss, b, o, se) in enumerate(spec)]
    final = assign_verdicts(recs, alpha=0.05)
    return json.loads(dumps_strict([r.to_dict() for r in final]))


def _texts(fig) -> list[str]:
    out = []
    for ax in fig.axes:
        out += [ax.get_xlabel(), ax.get_ylabel(), ax.get_title()]
        leg = ax.get_legend()
        out += [t.get_text() for t in leg.get_texts()] if leg else []
    return [t for t in out if t]


def test_bound_vs_observed_colours_intervals_axes_and_zeros():
    checks = _checks()
    verdicts = [c["verdict"] for c in checks]
    assert {"holds", "violated", "inconclusive"} <= set(verdicts), verdicts  # the fixture covers every colour
    fig = bound_vs_observed_figure(checks)
    ax = fig.axes[0]
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert all("_" not in t for t in _texts(fig)), _texts(fig)
    drawn = fig.kdbounds_points
    assert len(drawn) == 4 and fig.kdbounds_zero == 1  # the zero observation is counted, not floored
    assert any("exactly 0" in t.get_text() for t in ax.texts)
    containers = [c for c in ax.containers if c.has_xerr]
    assert len(containers) == len(drawn)
    for (name, loss, verdict, x, y), cont in zip(drawn, containers):
        rec = next(c for c in checks if c["name"] == name and c["loss"] == loss and abs(abs(c["observed"]) - x) < 1e-12)
        assert verdict == rec["verdict"]
        line = cont.lines[0]
        assert mcolors.same_color(line.get_markerfacecolor(), VERDICT_COLOURS[rec["verdict"]]), (name, verdict)
        segs = cont.lines[2][0].get_segments()[0] if cont.lines[2] else None
        if rec["observed_se"] > 0:
            width = segs[1][0] - segs[0][0]
            assert width > 0, "an SE gives an interval"
            assert segs[1][0] == pytest.approx(x + rec["z"] * rec["observed_se"]), "the verdict's own interval"
        else:
            assert segs is None or segs[1][0] - segs[0][0] == pytest.approx(0, abs=1e-12)
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    xs = [p[3] for p in drawn]
    ys = [p[4] for p in drawn]
    assert x0 <= min(xs) and x1 >= max(xs) and y0 <= min(ys) and y1 >= max(ys)
    assert x1 / x0 <= 4.01 * max(max(xs) + 3 * 0.03, 1e-9) / min(xs), "no decades of empty x range"
    assert y1 / y0 <= 4.01 * max(ys) / min(ys)


def test_sharpness_vs_gap_draws_every_standard_error():
    rows = [{"method": m, "teacher": f"t{i}", "teacher_train_trace": 10.0 * (i + 1), "teacher_train_trace_se": 2.0,
             "student_gap_clipped_ce": 0.01 * i, "student_gap_clipped_ce_se": 0.004, "student_gap_zero_one": 0.02,
             "student_gap_zero_one_se": 0.01, "teacher_gap_clipped_ce": 0.03, "teacher_gap_zero_one": 0.0}
            for i in range(3) for m in ("kd", "ce")]
    fig = sharpness_vs_gap_figure(rows, sharpness="teacher_train_trace")
    assert len(fig.axes) == 2
    assert all("_" not in t for t in _texts(fig)), _texts(fig)
    for ax in fig.axes:
        conts = ax.containers
        assert conts and all(c.has_xerr for c in conts), "the trace has an SE: every point carries it"
        students = [c for c in conts if c.has_yerr]
        assert len(students) == 2, "both methods' gaps carry their SE"
        for c in students:
            seg = c.lines[2][-1].get_segments()[0]
            assert seg[1][1] - seg[0][1] == pytest.approx(2 * 1.96 * (0.004 if "clipped" in ax.get_title() else 0.01))
    no_se = [{k: v for k, v in r.items() if not k.endswith("_se")} for r in rows]
    fig = sharpness_vs_gap_figure(no_se, sharpness="teacher_train_trace")
    seg = fig.axes[0].containers[0].lines[2][0].get_segments()[0]
    assert np.allclose(seg[0], seg[1]), "no SE: no interval drawn"


def _flatness_result():
    from types import SimpleNamespace

    teachers = []
    for i in range(3):
        t = {"top_eig": 5.0 + 10 * i, "trace": 100.0 + 50 * i, "trace_se": 10.0, "rel_flatness": 8000.0 + 900 * i,
             "rel_flatness_se": 200.0, "sigma_tolerated": 0.02 * (i + 1), "s_tolerated": 0.5 * (i + 1),
             "relative_risk_upper": 0.9, "tolerance_curve": {"sigma": [0.01, 0.1], "ds_gibbs_risk": [0.8, 0.9]},
             "relative_tolerance_curve": {"s": [0.1, 1.0], "ds_gibbs_risk": [0.8, 0.85]}}
        for k in ("reference", "pbkd"):
            t.update({f"{k}_risk_upper": 0.9, f"{k}_test_gibbs_risk": 0.8, f"{k}_sigma_prior": 0.04})
        teachers.append(t)
    return SimpleNamespace(teachers=teachers, config={"posteriors": ["pbkd"], "tolerance": 0.05, "n_s": 500,
                                                      "n_scales": 2})


def test_flatness_figure_has_colour_bars_and_the_trace_interval():
    from kdbounds.studies.certify_flatness import flatness_figure

    fig = flatness_figure(_flatness_result())
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert sorted(ax.get_ylabel() for ax in bars) == ["relative flatness", "teacher $\\lambda_{\\max}(H)$"]
    trace_ax = next(ax for ax in fig.axes if "tr $H$" in ax.get_xlabel())
    seg = [c for c in trace_ax.containers if c.has_xerr][0].lines[2][0].get_segments()[0]
    assert seg[1][0] - seg[0][0] == pytest.approx(2 * 1.96 * 10.0)
    labels = [t for ax in fig.axes for t in (ax.get_xlabel(), ax.get_ylabel()) if t]
    assert "\\sigma" in " ".join(labels)
    assert not _code_names(_all_texts(fig)), _code_names(_all_texts(fig))


def test_linear_gaussian_zero_terms_are_inside_the_frame_and_axes_read():
    from linear_gaussian.plots import plot_bounds, plot_terms

    keys = ("total", "bias", "rank_bottleneck", "variance", "gap_difference", "theorem3b_upper", "theorem3b_lower",
            "subgamma_upper", "subgamma_lower", "theorem1_bound")
    rows = [{"sweep": "rank", "x": float(r), "seed": s, **{k: (0.0 if k == "rank_bottleneck" and r == 2 else
                                                                 0.1 * (r + 1) + 0.01 * s) for k in keys}}
            for r in range(3) for s in range(2)]
    fig = plot_terms(rows, "rank")
    ax = fig.axes[0]
    assert ax.get_ylim()[0] < 0 < ax.get_ylim()[1], "a term equal to 0 is drawn inside the frame"
    assert ax.get_xlabel() == "student rank $r$" and not _code_names(_all_texts(fig)), _code_names(_all_texts(fig))
    fig = plot_bounds(rows, "rank")
    ax = fig.axes[0]
    ys = np.concatenate([ln.get_ydata() for ln in ax.get_lines() if len(ln.get_ydata()) > 2])
    assert ax.get_ylim()[0] < ys.min() and ys.max() < ax.get_ylim()[1], "no curve on the frame"
    assert not _code_names(_all_texts(fig)), _code_names(_all_texts(fig))
    from matplotlib.collections import PolyCollection

    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 6, "each bound curve (Th.1 at both signs) carries its ± SE band over the seeds"
    se = np.std([r["theorem3b_upper"] for r in rows if r["sweep"] == "rank" and r["x"] == 1.0], ddof=1) / np.sqrt(2)
    v = bands[0].get_paths()[0].vertices
    at = sorted({round(float(y), 12) for x, y in v if x == 1.0})
    assert at[-1] - at[0] == pytest.approx(2 * se), "the band is ± 1 SE of Theorem 3B's upper bound at rank 1"


# ---- the figures of notebooks 02–04 (kdbounds.figures) ---------------------------------------------

def _code_names(texts: list[str]) -> list[str]:
    """Texts with an underscore outside ``$…$`` (a code name such as ``n_S`` instead of the maths ``$n_S$``)."""
    import re

    return [t for t in texts if "_" in re.sub(r"\$[^$]*\$", "", t)]


def _all_texts(fig) -> list[str]:
    out = _texts(fig)
    for ax in fig.axes:
        out += [t.get_text() for t in ax.get_xticklabels() + ax.get_yticklabels() if t.get_text()]
    return out


def _log_axes_data(ax) -> list[float]:
    ys = [float(v) for ln in ax.get_lines() if ln.get_transform() == ax.transData  # not axvline's axes units
          for v in np.asarray(ln.get_ydata(), float) if np.isfinite(v)]
    ys += [float(p.get_height()) for p in ax.patches if hasattr(p, "get_height") and np.isfinite(p.get_height())]
    return ys


def _oracle_rows():
    import math

    rows_n = [{"n_s": n, "certificate": 0.1 + 2 / math.sqrt(n), "population": 0.12, "empirical": 0.11}
              for n in (100, 1000, 10000)]
    rows_sp = []
    for sp in (0.02, 0.05, 0.2):  # sigma_Q = 0.05: the variance term is exactly 0 at sigma_P = sigma_Q
        r = (0.05 / sp) ** 2
        vt = 0.0 if sp == 0.05 else 25 * (r - 1 - math.log(r))
        rows_sp.append({"sigma_p": sp, "mean_term": 0.4 / sp ** 2, "variance_term": vt, "kl": 0.4 / sp ** 2 + vt,
                        "certificate": 0.3})
    return rows_n, rows_sp, {"data-free": {"certificate": 0.6}, "learnt on D_T": {"certificate": 0.2}}


def test_oracle_certificate_figure_states_zeros_instead_of_flooring_them():
    from kdbounds.figures import oracle_certificate_figure

    rows_n, rows_sp, rows_type = _oracle_rows()
    fig = oracle_certificate_figure(rows_n, rows_sp, rows_type, population=0.12, sigma_q=0.05, sigma_p=0.05,
                                    delta=0.05)
    assert not _code_names(_all_texts(fig)), _code_names(_all_texts(fig))
    kl_ax = fig.axes[1]
    assert kl_ax.get_yscale() == "log"
    ys = _log_axes_data(kl_ax)
    assert ys and min(ys) > 0 and 1e-3 not in ys, "no zero floored onto the log axis"
    assert fig.kdbounds_zero_terms == [("variance_term", 0.05)]
    assert any("variance term = 0" in t.get_text() for t in kl_ax.texts), "the zero is said"
    lo, hi = kl_ax.get_ylim()
    assert lo <= min(ys) and hi >= max(ys) and hi / lo < 100 * max(ys) / min(ys), "the axis fits the data"
    risk = fig.axes[0]
    top = max(v for r in rows_n for v in (r["certificate"], r["population"], r["empirical"]))
    assert top <= risk.get_ylim()[1] <= 1.25 * top, "no empty risk range above the data"


def test_network_certificates_figure_has_the_held_out_interval_and_says_zero():
    from kdbounds.figures import network_certificates_figure

    certs = [{"prior": p, "student": s, "risk_upper": 0.6, "test_gibbs_risk": 0.4, "test_gibbs_ci_low": 0.33,
              "test_gibbs_ci_high": 0.46, "mean_term": 5.0, "variance_term": v}
             for p, s, v in (("random", "ce", 2.0), ("learnt", "pbb", 0.0))]
    fig = network_certificates_figure(certs)
    a1, a2 = fig.axes
    assert not _code_names(_all_texts(fig))
    bars = [c for c in a1.containers if getattr(c, "errorbar", None) is not None]
    assert len(bars) == 1, "the held-out error carries its interval"
    seg = bars[0].errorbar.lines[2][0].get_segments()
    assert [tuple(np.round(s[:, 1], 12)) for s in seg] == [(0.33, 0.46), (0.33, 0.46)]
    assert a2.get_yscale() == "log" and min(_log_axes_data(a2)) > 0
    assert fig.kdbounds_zero_terms == 1 and [t.get_text() for t in a2.texts] == ["0"]


def test_spectrum_figure_draws_residual_intervals_and_no_floor():
    from kdbounds.figures import spectrum_figure

    g = np.linspace(-5, 60, 400)
    d = np.exp(-g ** 2 / 2) + 1e-3 * np.exp(-(g - 50) ** 2 / 4)
    fig = spectrum_figure(g, d, [50.0, 20.0], [0.5, 2.0], np.array([0.0, 1.0, 50.0]), np.array([0.9, 0.0, 0.1]))
    a1, a2 = fig.axes
    assert not _code_names(_all_texts(fig))
    spans = [p for p in a1.patches if p.get_width() > 0]
    assert sorted(round(p.get_width(), 9) for p in spans) == [1.0, 4.0], "each eigenvalue ± its residual"
    bottom = a1.get_ylim()[0]
    drawn = np.asarray(a1.get_lines()[0].get_ydata(), float)
    assert np.nanmin(drawn) >= bottom and np.isnan(drawn).any(), "a numerical zero is a gap, not a floor"
    assert fig.kdbounds_hidden_nodes == 1 and min(np.asarray(a2.collections[0].get_offsets())[:, 1]) > 0


def test_verdict_counts_figure_colours_and_counts_match_the_records():
    from kdbounds.figures import verdict_counts_figure

    records = _checks()
    fig = verdict_counts_figure(records)
    ax = fig.axes[0]
    assert not _code_names(_all_texts(fig))
    keys = list(fig.kdbounds_counts)
    for cont in ax.containers:
        verdict = cont.get_label().replace(" ", "_")
        for key, bar in zip(keys, cont.patches):
            want = sum(1 for c in records if (c["name"], c["loss"]) == key and c["verdict"] == verdict)
            assert bar.get_width() == want
            if want:
                assert mcolors.same_color(bar.get_facecolor(), VERDICT_COLOURS[verdict])
    assert sum(sum(v.values()) for v in fig.kdbounds_counts.values()) == len(records)
    assert len(ax.get_yticklabels()) == len(keys) and fig.get_size_inches()[1] < 0.5 * len(keys) + 2


def test_pid_curves_figure_draws_bootstrap_and_binomial_intervals():
    """Red's bootstrap interval is drawn as it is, also where it misses the biased plug-in estimate (real data do)."""
    from scipy import stats as st

    from kdbounds.figures import pid_curves_figure

    rows = [{"method": m, "epoch": e, "redundancy": 0.4, "redundancy_ci_low": 0.45, "redundancy_ci_high": 0.58,
             "redundancy_shuffle_mean": 0.1, "redundancy_shuffle_sd": 0.02, "unique_t": 0.3,
             "unique_t_ci_low": float("nan"), "unique_t_ci_high": float("nan"), "unique_t_shuffle_mean": 0.1,
             "unique_t_shuffle_sd": 0.01, "test_acc": 0.3} for m in ("kd", "rid") for e in (1, 2)]
    fig = pid_curves_figure(rows, ["kd", "rid"], teacher_acc=0.6, acc_n=100)
    assert not _code_names(_all_texts(fig))
    assert fig.kdbounds_intervals == {"redundancy": 4, "unique_t": 0, "accuracy": 4}
    acc_bars = fig.axes[2].containers[0].lines[2][0].get_segments()[0][:, 1]
    lo, hi = st.beta.ppf(0.025, 30, 71), st.beta.ppf(0.975, 31, 70)  # Clopper–Pearson by its definition
    assert acc_bars == pytest.approx([lo, hi], abs=1e-9)
    red = [seg[:, 1] for coll in fig.axes[0].collections if hasattr(coll, "get_segments")
           for seg in coll.get_segments()]
    assert len(red) == 4 and all(r == pytest.approx([0.45, 0.58]) for r in red)
    assert "Red" in fig.axes[0].get_ylabel() and "$" in fig.axes[0].get_ylabel()


def test_certify_students_figure_intervals_seeds_title_and_zeros():
    """certificates.png: the held-out bar carries the widest interval over seeds, each seed's certificate is a dot,
    the title says how many seeds the bars average (not "mean over seeds" for one), a zero KL term says "0"."""
    from kdbounds.studies.certify_students import certificates_figure

    def row(seed, var, lo, hi):
        return {"prior": "teacher", "student": "pbkd@airbench94", "loss": "zero_one", "seed": seed, "risk_upper": 0.15,
                "test_gibbs_risk": 0.12, "test_gibbs_ci_low": lo, "test_gibbs_ci_high": hi, "prior_heldout_bound": 0.14,
                "mean_term": 12.0, "variance_term": var}

    fig = certificates_figure([row(0, 0.0, 0.11, 0.13)])
    assert fig._suptitle.get_text().endswith("(one seed)")
    a1, a2 = fig.axes
    assert not _code_names(_all_texts(fig))
    assert fig.kdbounds_zero_terms == 1 and [t.get_text() for t in a2.texts] == ["0"]
    assert a2.get_yscale() == "log" and min(_log_axes_data(a2)) > 0
    fig = certificates_figure([row(0, 1e-8, 0.11, 0.13), row(1, 1e-8, 0.10, 0.125), row(2, 1e-8, 0.115, 0.14)])
    a1 = fig.axes[0]
    assert fig._suptitle.get_text().endswith("(mean over 3 seeds)") and fig.kdbounds_zero_terms == 0
    bars = [c for c in a1.containers if getattr(c, "errorbar", None) is not None]
    assert len(bars) == 1
    seg = bars[0].errorbar.lines[2][0].get_segments()
    assert [tuple(np.round(s[:, 1], 12)) for s in seg] == [(0.10, 0.14)], "the widest interval over the seeds"
    from matplotlib.collections import PathCollection

    dots = [c for c in a1.collections if isinstance(c, PathCollection)]
    assert len(dots) == 1 and sorted(np.asarray(dots[0].get_offsets())[:, 1]) == [0.15] * 3, "one dot per seed"


def test_pid_transfer_curves_draw_the_bootstrap_intervals_and_the_shuffle_band():
    """curves.png: every point that carries a bootstrap interval draws it (two atoms x methods x epochs x teachers),
    the shuffled-label floor is a band (mean ± 2 sd), labels are maths, not code names."""
    from matplotlib.collections import LineCollection, PolyCollection

    from kdbounds.studies.pid_transfer import curves_figure

    rows = [{"teacher": t, "method": m, "epoch": e, "redundancy": 0.3 + 0.1 * e, "unique_t": 0.2,
             "redundancy_ci_low": 0.25 + 0.1 * e, "redundancy_ci_high": 0.4 + 0.1 * e,
             "unique_t_ci_low": 0.1 if e else None, "unique_t_ci_high": 0.3 if e else None,
             "redundancy_shuffle_mean": 0.05, "redundancy_shuffle_sd": 0.01}
            for t in ("trained", "untrained") for m in ("kd", "rid") for e in (0, 1, 2)]
    fig = curves_figure(json.loads(json.dumps(rows)))
    assert fig.kdbounds_intervals == 2 * 2 * (3 + 2)  # teachers x methods x (Red at 3 epochs + Uni at 2)
    assert not _code_names(_all_texts(fig)), _code_names(_all_texts(fig))
    for ax in fig.axes:
        bars = [c for c in ax.collections if isinstance(c, LineCollection)]
        assert sum(len(c.get_segments()) for c in bars) == 2 * 5
        assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) == 2, "a floor band per method"
    assert curves_figure([{**r, "redundancy_ci_low": None, "unique_t_ci_low": None} for r in rows]).kdbounds_intervals == 0


# ---- functional_transfer: agreement_split.png ----------------------------------------------------------------------

def _transfer_result(noise: dict[str, list[float]], n: int = 150):
    """A functional-transfer Result from the real producers (fidelity_report, compare_methods) on synthetic logits:
    the teacher is right on about two thirds of the inputs; a student is the teacher's logits plus noise of the given
    scale per group and seed (scale 0: a copy of the teacher)."""
    import torch

    from kdbounds.fidelity import compare_methods, fidelity_report
    from kdbounds.studies.functional_transfer import Result

    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (n,), generator=g)
    zt = torch.randn(n, 10, generator=g)
    zt[torch.arange(2 * n // 3), y[: 2 * n // 3]] += 5.0
    logits = {grp: [zt + s * torch.randn(n, 10, generator=g) for s in scales] for grp, scales in noise.items()}
    reports = {grp: [fidelity_report(z, zt, y, n_boot=0) for z in zs] for grp, zs in logits.items()}
    return Result("test", {}, (), reports, compare_methods(reports, "kd"), 0.0), logits, zt, y


def test_agreement_split_draws_each_seeds_binomial_interval_the_spread_and_the_tested_differences():
    """agreement_split.png: every seed's agreement with its exact binomial interval (checked against the beta quantiles
    of the counts taken from the logits), the bars' ± 1 sd over seeds, and KD − control with the comparison's Welch
    interval; labels in words, the difference axis fitted to the intervals."""
    from matplotlib.container import ErrorbarContainer
    from scipy import stats as st

    from kdbounds.studies.functional_transfer import GROUP_LABELS, agreement_split_figure

    noise = {"kd": [1.0, 1.2, 1.4], "rcd": [2.0, 2.2, 2.4], "siddo": [3.0, 3.1, 3.3], "alone": [4.0, 4.5, 5.0]}
    result, logits, zt, y = _transfer_result(noise)
    fig = agreement_split_figure(result)
    ax, ax_d = fig.axes
    assert not _code_names(_all_texts(fig)), _code_names(_all_texts(fig))
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == [GROUP_LABELS[g] for g in noise] and not set(ticks) & set(noise), "groups in words"
    right = zt.argmax(1) == y
    want = []
    for grp, zs in logits.items():
        for key, mask in (("agreement_teacher_correct", right), ("agreement_teacher_wrong", ~right)):
            for z in zs:
                agree = (z.argmax(1) == zt.argmax(1))[mask]
                k, m = int(agree.sum()), int(mask.sum())
                lo = st.beta.ppf(0.025, k, m - k + 1) if k else 0.0  # Clopper–Pearson by its definition
                hi = st.beta.ppf(0.975, k + 1, m - k) if k < m else 1.0
                want.append((grp, key, lo, hi))
    got = sorted(fig.kdbounds_seed_intervals)
    assert [g[:2] for g in got] == [w[:2] for w in sorted(want)]
    assert np.allclose([g[2:] for g in got], [w[2:] for w in sorted(want)], atol=1e-9)
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    seeds = [c for c in bars if c.lines[0].get_marker() == "o"]
    assert len(seeds) == 4 * 2 * 3, "one interval per seed, group and half"
    spreads = sorted(round(float(np.diff(c.lines[2][0].get_segments()[0][:, 1])[0]), 9) for c in bars
                     if c.lines[0].get_marker() != "o")
    sds = sorted(round(2 * float(np.std([r.get(key).value for r in result.reports[grp]], ddof=1)), 9)
                 for grp in noise for key in ("agreement_teacher_correct", "agreement_teacher_wrong"))
    assert spreads == pytest.approx(sds), "whiskers ± 1 sd (ddof = 1) over the seeds"
    diffs = [c for c in ax_d.containers if isinstance(c, ErrorbarContainer)]
    assert len(diffs) == len(fig.kdbounds_differences) == 3 * 2
    for (grp, key, d, lo, hi), cont in zip(fig.kdbounds_differences, diffs):
        c = next(c for c in result.comparison.comparisons if c.metric == key and c.name_b == grp)
        assert (d, lo, hi) == (c.diff, c.diff_ci_low, c.diff_ci_high)
        seg = cont.lines[2][0].get_segments()[0][:, 0]
        assert seg == pytest.approx([max(lo, -1.0), min(hi, 1.0)])
    x0, x1 = ax_d.get_xlim()
    ends = [v for _, _, d, lo, hi in fig.kdbounds_differences for v in (d, max(lo, -1), min(hi, 1))] + [0.0]
    assert x0 <= min(ends) and x1 >= max(ends) and x1 - x0 <= 1.3 * (max(ends) - min(ends)), "fitted, not [-1, 1]"
    assert fig.kdbounds_cut == 0


def test_agreement_split_cuts_an_interval_past_one_and_marks_it():
    """Two seeds far apart: Welch's interval (about 1 degree of freedom) reaches past ±1; it is drawn cut at ±1, the
    cut end marked and said in the legend, and the axis stays within [−1.05, 1.05]."""
    from kdbounds.studies.functional_transfer import agreement_split_figure

    result, *_ = _transfer_result({"kd": [0.0, 30.0], "rcd": [1.0, 1.5], "alone": [2.0, 2.5]})
    raw = [(c.diff_ci_low, c.diff_ci_high) for c in result.comparison.comparisons if c.metric.startswith("agreement_t")]
    assert any(lo < -1 or hi > 1 for lo, hi in raw), "the fixture reaches past ±1"
    fig = agreement_split_figure(result)
    ax_d = fig.axes[1]
    assert fig.kdbounds_cut == sum((lo < -1) + (hi > 1) for lo, hi in raw)
    marks = [ln for ln in ax_d.get_lines() if ln.get_marker() in ("<", ">")]
    assert len(marks) == fig.kdbounds_cut
    assert -1.05 <= ax_d.get_xlim()[0] and ax_d.get_xlim()[1] <= 1.05
    assert any("cut at ±1" in t.get_text() for t in ax_d.get_legend().get_texts())


# ---- nuisance_teacher: accuracy.png --------------------------------------------------------------------------------

def _nuisance_result(seeds: int):
    from kdbounds.studies.nuisance_teacher import PRESETS, Result, summarise

    cfg = PRESETS["smoke-scale"]  # methods ce, vid_rid, rid; the untrained teacher in both BatchNorm modes
    rng = np.random.default_rng(1)
    rows = [{"teacher": "none", "method": "ce", "seed": s, "test_acc": 0.5 + 0.02 * rng.standard_normal()}
            for s in range(seeds)]
    rows += [{"teacher": k, "method": m, "seed": s, "test_acc": 0.3 + 0.1 * i + 0.05 * j + 0.02 * rng.standard_normal()}
             for s in range(seeds) for i, k in enumerate(cfg.teacher_kinds()) for j, m in enumerate(("vid_rid", "rid"))]
    rows = json.loads(json.dumps(rows))
    return Result(cfg.to_dict(), tuple(rows), tuple(summarise(rows)), {"untrained": 0.1, "trained": 0.8}), rows


def test_accuracy_figure_bars_are_mean_and_sd_over_seeds_in_words():
    """accuracy.png: one bar per (teacher, method) at the mean over seeds with one ± 1 sd whisker (numpy's ddof = 1 sd
    of the rows), said in the title; the student alone and the trained teacher as lines; no code name anywhere."""
    from matplotlib.container import ErrorbarContainer

    from kdbounds.studies.nuisance_teacher import TEACHER_LABELS, accuracy_figure

    result, rows = _nuisance_result(3)
    fig = accuracy_figure(result)
    ax = fig.axes[0]
    texts = _all_texts(fig)
    assert not _code_names(texts) and not [t for t in texts if "bn-train" in t or "vid" in t or "untrained-" in t], texts
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {TEACHER_LABELS[k] for k in ("trained", "untrained", "untrained-bn-train")} <= set(legend)
    assert "BatchNorm in train mode" in TEACHER_LABELS["untrained-bn-train"]
    assert "mean ± 1 sd over 3 seeds" in ax.get_title()
    whiskers = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(fig.kdbounds_bars) == 6 and len(whiskers) == 6, "one whisker per bar"
    heights = sorted(round(p.get_height(), 12) for p in ax.patches)
    for (kind, m, mean, sd, n), cont in zip(fig.kdbounds_bars, whiskers):
        accs = [r["test_acc"] for r in rows if (r["teacher"], r["method"]) == (kind, m)]
        assert (mean, n) == (pytest.approx(np.mean(accs)), 3) and round(mean, 12) in heights
        seg = cont.lines[2][0].get_segments()[0][:, 1]
        assert seg == pytest.approx([np.mean(accs) - np.std(accs, ddof=1), np.mean(accs) + np.std(accs, ddof=1)])
    ce = [r["test_acc"] for r in rows if r["method"] == "ce"]
    hlines = {round(float(ln.get_ydata()[0]), 12) for ln in ax.get_lines() if len(set(ln.get_ydata())) == 1}
    assert round(float(np.mean(ce)), 12) in hlines and 0.8 in hlines, "the student alone and the trained teacher"
    assert ax.get_ylim()[1] >= max(0.8, max(r["test_acc"] for r in rows))


def test_accuracy_figure_with_one_seed_draws_no_whisker_and_says_so():
    from matplotlib.container import ErrorbarContainer

    from kdbounds.studies.nuisance_teacher import accuracy_figure

    fig = accuracy_figure(_nuisance_result(1)[0])
    ax = fig.axes[0]
    assert not [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert "one seed" in ax.get_title() and "sd" not in ax.get_title()


# ---- notebook 05: the certificate of the user's own model ----------------------------------------------------------

def _own_model_certificates(test: bool = True):
    """A posterior (a shifted copy of a small linear network) and the prior alone, certified by kdbounds.certify."""
    import torch
    from torch import nn

    from kdbounds import GaussianKernel, certify

    torch.manual_seed(0)
    net = nn.Linear(6, 3)
    x, y = torch.randn(300, 6), torch.randint(0, 3, (300,))
    xt, yt = torch.randn(200, 6), torch.randint(0, 3, (200,))
    prior = GaussianKernel.from_model(net, 0.05)
    with torch.no_grad():
        net.weight.add_(0.1)
    posterior = GaussianKernel.from_model(net, 0.05)
    cert = certify(posterior, prior, (x, y), n_draws=2, seed=0, test_data=(xt, yt) if test else None)
    base = certify(prior, prior, (x, y), n_draws=2, seed=1)
    return json.loads(dumps_strict(cert.to_dict())), json.loads(dumps_strict(base.to_dict()))


def test_prior_posterior_certificate_figure_draws_the_held_out_interval_and_both_certificates():
    from matplotlib.container import ErrorbarContainer

    from kdbounds.figures import prior_posterior_certificate_figure

    cert, base = _own_model_certificates()
    fig = prior_posterior_certificate_figure(cert, base)
    ax = fig.axes[0]
    assert not _code_names(_all_texts(fig)), _code_names(_all_texts(fig))
    held = cert["test_gibbs_risk"]
    assert list(fig.kdbounds_bars.values()) == [held["value"], base["risk_upper"], cert["risk_upper"]]
    assert sorted(p.get_height() for p in ax.patches) == sorted(fig.kdbounds_bars.values())
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 1, "the held-out risk carries its interval; a certificate carries none"
    seg = bars[0].lines[2][0].get_segments()[0][:, 1]
    assert seg == pytest.approx([held["ci_low"], held["ci_high"]])
    assert [ln.get_ydata()[0] for ln in ax.get_lines() if ln.get_linestyle() == ":"] == [cert["trivial"]]
    assert f"{cert['confidence']:.3f}" in ax.get_title()
    top = max(held["ci_high"], base["risk_upper"], cert["risk_upper"], cert["trivial"])
    assert top <= ax.get_ylim()[1] <= max(1.0, 1.15 * top) and ax.get_ylim()[1] <= 1.0
    low = {**cert, "risk_upper": 0.4, "test_gibbs_risk": {**held, "value": 0.3, "ci_low": 0.25, "ci_high": 0.35}}
    assert cert["trivial"] == pytest.approx(2 / 3)  # three classes
    lo_ax = prior_posterior_certificate_figure(low, {**base, "risk_upper": 0.45}).axes[0]
    assert 2 / 3 < lo_ax.get_ylim()[1] <= 1.15 * 2 / 3, "the axis fits the bars and the vacuous level, not [0, 1]"
    assert sorted(t.get_text() for t in ax.texts if t.get_text()[:1].isdigit()) == sorted(
        f"{v:.3f}" for v in fig.kdbounds_bars.values()), "each value written on its bar"


def test_prior_posterior_certificate_figure_without_a_held_out_estimate_says_so():
    from kdbounds.figures import prior_posterior_certificate_figure

    cert, base = _own_model_certificates(test=False)
    fig = prior_posterior_certificate_figure(cert, base)
    assert len(fig.kdbounds_bars) == 2 and fig.kdbounds_interval is None
    assert any("no held-out estimate" in t.get_text() for t in fig.axes[0].texts)


# ---- notebook 01: the linear-Gaussian sweeps and the frontier (linear_gaussian.plots) -------------------------------

def _lg_rows():
    from linear_gaussian.sweeps import TradeoffConfig, run_sweeps

    cfg = TradeoffConfig(d=6, k=3, n=60, ns=(30, 120), tau_ratios=(0.5, 1.0), lam_Ss=(0.1, 1.0), seeds=(0, 1))
    return run_sweeps(cfg, progress=False)


def _oracle_mean_se(rows, sweep, key):
    """Mean and SE over seeds per x, from the rows by numpy (not linear_gaussian.sweeps.mean_by_x)."""
    xs = sorted({r["x"] for r in rows if r["sweep"] == sweep})
    vals = [np.array([r[key] for r in rows if r["sweep"] == sweep and r["x"] == x], float) for x in xs]
    return xs, [v.mean() for v in vals], [v.std(ddof=1) / np.sqrt(v.size) for v in vals]


def test_linear_gaussian_terms_grid_draws_the_standard_errors_and_zeros_inside_the_frame():
    from linear_gaussian.plots import terms_grid_figure

    rows = _lg_rows()
    fig = terms_grid_figure(rows)
    assert len(fig.axes) == 4 and not _code_names(_all_texts(fig)), _code_names(_all_texts(fig))
    assert "2 seed(s)" in fig._suptitle.get_text()
    for ax, sweep in zip(fig.axes, ("rank", "n", "tau_ratio", "lam_S")):
        assert len(ax.containers) == 4, "K, B, R_r, V each with its error bars"
        for cont, key in zip(ax.containers, ("total", "bias", "rank_bottleneck", "variance")):
            xs, mean, se = _oracle_mean_se(rows, sweep, key)
            assert list(cont.lines[0].get_xdata()) == xs and cont.lines[0].get_ydata() == pytest.approx(mean)
            widths = [seg[1, 1] - seg[0, 1] for seg in cont.lines[2][0].get_segments()]
            assert widths == pytest.approx([2 * s for s in se], abs=1e-12), "± 1 SE over the seeds"
        lo, hi = ax.get_ylim()
        ys = [v for c in ax.containers for v in np.asarray(c.lines[0].get_ydata(), float)]
        assert lo < min(ys) and max(ys) < hi, "no term on the frame"
    rank_ax = fig.axes[0]
    assert min(rank_ax.containers[2].lines[0].get_ydata()) == 0.0 and rank_ax.get_ylim()[0] < 0, \
        "R_r = 0 at full rank, drawn inside the frame"


def test_linear_gaussian_ratios_grid_is_log_with_the_tight_line_and_fitted():
    from linear_gaussian.plots import ratios_grid_figure

    rows = _lg_rows()
    fig = ratios_grid_figure(rows)
    assert not _code_names(_all_texts(fig)), _code_names(_all_texts(fig))
    for ax, sweep in zip(fig.axes, ("rank", "n", "tau_ratio", "lam_S")):
        assert ax.get_yscale() == "log" and 1.0 in [ln.get_ydata()[0] for ln in ax.get_lines()]
        tops, bottoms = [1.0], [1.0]
        for cont, key in zip(ax.containers, ("ratio_theorem3b", "ratio_subgamma", "ratio_theorem1", "ratio_theorem3a")):
            _, mean, se = _oracle_mean_se(rows, sweep, key)
            seg = cont.lines[2][0].get_segments()
            assert [s[1, 1] - s[0, 1] for s in seg] == pytest.approx([2 * e for e in se])
            tops += [m + e for m, e in zip(mean, se)]
            bottoms += [m - e if m - e > 0 else m for m, e in zip(mean, se)]
        lo, hi = ax.get_ylim()
        assert lo <= min(bottoms) and hi >= max(tops) and hi / lo <= 3 * max(tops) / min(bottoms), "fitted"


def test_linear_gaussian_frontier_keeps_every_curve_inside_the_frame():
    from linear_gaussian.plots import frontier_figure

    ks = np.geomspace(1e-2, 1e4, 50)
    bounds = {"theorem3b_upper": np.sqrt(2 * ks) + ks / 10, "theorem3b_lower": -np.sqrt(2 * ks),
              "subgamma_upper": np.sqrt(2 * ks) + ks / 8, "subgamma_lower": -np.sqrt(2 * ks) - ks / 50,
              "theorem1_bound": np.sqrt(2 * ks)}
    tilted = (ks[::5], bounds["theorem3b_upper"][::5])
    fig = frontier_figure(ks, bounds, tilted, {"rank": ([10.0, 100.0], [0.01, -0.5]), "tau_ratio": ([], [])})
    ax = fig.axes[0]
    assert not _code_names(_all_texts(fig)), _code_names(_all_texts(fig))
    lo, hi = ax.get_ylim()
    ys = np.concatenate([np.asarray(ln.get_ydata(), float) for ln in ax.get_lines() if len(ln.get_ydata()) > 2])
    assert lo < ys.min() and ys.max() < hi, "no curve on the top or bottom frame"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("student rank sweep" in t for t in legend) and not any("temperature" in t for t in legend), \
        "a sweep without points gets no legend entry"
    assert ax.get_xlim() == pytest.approx((ks.min(), ks.max()))
