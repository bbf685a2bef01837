"""The flagship study: its teacher-level statistics and run-level verdicts (fast, synthetic rows) and the
smoke preset end to end on real CIFAR-10 (records labelled, 3A/3B not defined across architectures,
one Holm family over the run, strict JSON everywhere).

Oracles: scipy's exact Kendall p-value (one student per teacher), brute-force enumeration of the
teacher permutations, scipy's normal quantile for the family's critical value, and a JSON parser that
refuses NaN/Infinity.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path

import pytest
from scipy.special import ndtri
from scipy.stats import t as student_t

from kdbounds.checks import KINDS, VERDICTS, make_record
from kdbounds.studies import sharpness_vs_gap as ss
from repo_files import load_file

ROOT = Path(__file__).resolve().parents[2]


def _have_data() -> bool:
    try:
        from kdbounds.data import find_cifar

        find_cifar("cifar10")
        return True
    except Exception:
        return False


def _strict_loads(text: str):
    def refuse(name):
        raise ValueError(f"non-strict JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_preset_errors():
    with pytest.raises(ValueError, match="preset"):
        ss.preset("huge")
    with pytest.raises(ValueError, match="unknown methods"):
        ss.preset("smoke", methods=("kd", "nope"))
    with pytest.raises(ValueError, match="teachers"):
        ss.StudyConfig(preset="x", teacher_arch="resnet8", student_arch="resnet8", teachers=())
    with pytest.raises(ValueError, match="unknown architectures"):
        ss.preset("smoke", extra_students=(("resnet9000", "kd"),))
    with pytest.raises(ValueError, match="trace_matvecs"):
        ss.preset("smoke", trace_matvecs=5)  # 2 z² = 5.4 at ucl_level 0.95


def test_cpu_preset_can_answer():
    """≥ 6 teachers, so the exact teacher-level Kendall test can reach p < 0.05 (2/6! = 0.0028), and
    same-architecture (self-distillation) students, so Theorems 3A/3B are defined; since issue 23 item 5 the
    default is the scale design in small: fast-recipe teachers on D_T, students on a D_S they never saw, one of
    them started at its teacher (so that K is small), every check on the kernel sample."""
    cfg = ss.PRESETS["cpu"]
    assert len(cfg.teachers) >= 6
    assert 2 / math.factorial(len(cfg.teachers)) < 0.005
    assert any(arch == cfg.teacher_arch and m != "ce" for _, arch, m in cfg.students())
    assert cfg.recipe == "fast" and cfg.n_s is not None and cfg.n_per_class is None
    assert cfg.from_teacher and cfg.gap_sample == "kernel"
    assert [r.name for r in cfg.teachers] == [r.name for r in ss.PRESETS["scale"].teachers][:5] + ["fast-bs200"]


def _rows(sharp, gaps_by_teacher):
    rows = []
    for t, gs in gaps_by_teacher.items():
        rows.append({"teacher": t, "method": "ce", "student_gap_clipped_ce": 9.0, "student_gap_zero_one": 9.0})
        for m, g in zip(("kd", "rid"), gs):
            rows.append({"teacher": t, "method": m, "student_gap_clipped_ce": g, "student_gap_zero_one": -g})
    return rows


def test_kendall_table_headline_is_recipe_level_and_holm_adjusted_per_level():
    from scipy.stats import kendalltau

    sharp = {f"t{i}": float(s) for i, s in enumerate([3.0, 1.0, 4.0, 1.5, 5.0, 9.0])}
    gaps = {f"t{i}": (g, g + 0.01 * i) for i, g in enumerate([0.2, 0.1, 0.5, 0.3, 0.4, 0.9])}
    full = ss.kendall_table(sharp, _rows(sharp, gaps), n_perm=100)
    assert [r["level"] for r in full] == ["recipe"] * 2 + ["within-design"] * 4
    # one teacher per recipe (the default): the recipe-level test is the teacher-mean test
    head = {r["gap"]: r for r in full if r["level"] == "recipe"}
    tab = [r for r in full if r["level"] == "within-design"]
    assert len(tab) == 4 and all(r["n_teachers"] == 6 for r in tab)
    tm = {(r["gap"], r["statistic"]): r for r in tab}
    for g, r in head.items():
        assert r["unit"] == "recipe" and r["n_recipes"] == 6
        assert r["tau"] == pytest.approx(tm[(g, "teacher_mean")]["tau"])
    # Holm within the recipe level: two tests
    hp = sorted(r["p_value"] for r in head.values())
    assert min(r["p_holm"] for r in head.values()) == pytest.approx(min(1.0, 2 * hp[0]))
    # teacher_mean with the ce student left out: τ over 6 teacher means, exact p = scipy's exact p
    means = [sum(gaps[t]) / 2 for t in sharp]
    ref = kendalltau(list(sharp.values()), means, method="exact")
    got = tm[("student_gap_clipped_ce", "teacher_mean")]
    assert got["n_students"] == 12  # the teacher-free student is not a distilled student
    assert got["tau"] == pytest.approx(ref.statistic) and got["p_value"] == pytest.approx(ref.pvalue)
    assert tm[("student_gap_zero_one", "teacher_mean")]["tau"] == pytest.approx(-ref.statistic)
    # pooled: brute force over the 720 teacher permutations, students moving with their teacher
    names = list(sharp)
    xs = [sharp[t] for t in names for _ in range(2)]
    ys = [g for t in names for g in gaps[t]]
    obs = kendalltau(xs, ys).statistic
    hits = 0
    for perm in itertools.permutations(names):
        px = [sharp[p] for p in perm for _ in range(2)]
        hits += abs(kendalltau(px, ys).statistic) >= abs(obs) - 1e-12
    pooled = tm[("student_gap_clipped_ce", "pooled")]
    assert pooled["tau"] == pytest.approx(obs) and pooled["p_value"] == pytest.approx(hits / 720)
    # Holm across the four within-design tests: the smallest p is multiplied by 4, every adjusted p ≥ its raw p
    ps = sorted(r["p_value"] for r in tab)
    assert min(r["p_holm"] for r in tab) == pytest.approx(min(1.0, 4 * ps[0]))
    assert all(r["p_holm"] >= r["p_value"] - 1e-15 for r in tab)


def test_kendall_table_recipe_level_averages_the_seeds_of_a_recipe():
    """Two teachers (seeds) per recipe: the headline is τ over the 3 recipe means with exact p over 3! recipe
    permutations (oracle: the means here and scipy), not the within-design τ over the 6 teachers."""
    from scipy.stats import kendalltau

    sharp = {f"t{i}": float(s) for i, s in enumerate([3.0, 1.0, 4.0, 1.5, 5.0, 9.0])}
    gaps = {f"t{i}": (g, g + 0.01 * i) for i, g in enumerate([0.2, 0.1, 0.5, 0.3, 0.4, 0.9])}
    recipe_of = {f"t{i}": f"r{i // 2}" for i in range(6)}
    tab = ss.kendall_table(sharp, _rows(sharp, gaps), recipe_of=recipe_of, n_perm=100)
    head = [r for r in tab if r["level"] == "recipe" and r["gap"] == "student_gap_clipped_ce"][0]
    xs = [(sharp[f"t{2 * k}"] + sharp[f"t{2 * k + 1}"]) / 2 for k in range(3)]
    ys = [(sum(gaps[f"t{2 * k}"]) / 2 + sum(gaps[f"t{2 * k + 1}"]) / 2) / 2 for k in range(3)]
    ref = kendalltau(xs, ys, method="exact")
    assert head["n_recipes"] == 3 and head["n_teachers"] == 6 and head["exact"]
    assert head["tau"] == pytest.approx(ref.statistic) and head["p_value"] == pytest.approx(ref.pvalue)
    assert head["min_attainable_p"] == pytest.approx(2 / 6)


def test_kendall_table_too_few_teachers_says_why():
    sharp = {"a": 1.0, "b": 2.0}
    tab = ss.kendall_table(sharp, _rows(sharp, {"a": (0.1, 0.2), "b": (0.3, 0.4)}))
    assert all(r["tau"] is None and "at least 3" in r["note"] for r in tab)


def test_run_verdicts_one_family_for_real_checks_one_for_proxies():
    """A record that is decided at z = Φ⁻¹(1 − α/1) alone is only 'holds' in a run of N checks when its
    margin exceeds Φ⁻¹(1 − (α/2)/N) standard errors; proxies do not enlarge the family of real checks, and
    the two families share the run's α (F5d: α/2 each, so the run-level error is at most α)."""
    def rec(name, kind, bound, obs, se=0.01):
        return make_record(name, kind, loss="zero_one", side="abs", bound=bound, observed=obs, observed_se=se,
                           assumptions_met=False, assumption="test", teacher="t", student="s")

    real = [rec("thm1_sigma_n", "conditional", 0.12 + 0.001 * i, 0.1) for i in range(20)]
    proxies = [rec("thm1_product_proxy", "proxy", 1.0, 0.1) for _ in range(30)]
    exact = [make_record("gibbs_classifier", "demonstration", loss="gibbs_zero_one", side="upper", bound=0.3,
                         observed=0.1, observed_se=0.0, assumptions_met=True, assumption="exact")]
    out = ss.run_verdicts(real + proxies + exact, alpha=0.05)
    z20 = float(ndtri(1 - 0.025 / 20))
    for r, before in zip(out[:20], real):
        assert r.family_size == 20 and r.z == pytest.approx(z20) and r.alpha == 0.025
        margin = (before.bound - abs(before.observed)) / before.observed_se
        assert r.verdict == ("holds" if margin >= z20 else "inconclusive")
        assert before.verdict == "holds"  # alone (z = 1.645) every one of them holds
    assert {r.family_size for r in out[20:50]} == {30}
    assert out[50].verdict == "holds" and out[50].method == "exact"
    # the run's error budget: the families' levels add up to at most α
    levels = {("proxy" if r.kind == "proxy" else "checks"): r.alpha for r in out if r.family_size > 0}
    assert len(levels) == 2 and sum(levels.values()) <= 0.05 + 1e-15


# ------------------------------------------------------------------------------------------------
# the smoke preset end to end
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    if not _have_data():
        pytest.skip("CIFAR-10 not found (set KDBOUNDS_DATA)")
    mod = load_file("experiments/sharpness_vs_gap.py")
    tmp = tmp_path_factory.mktemp("smoke")
    out = tmp / "out"
    assert mod.main(["--preset", "smoke", "--out", str(out), "--cache-root", str(tmp / "cache"),
                     "--no-progress"]) == 0
    return mod, tmp, out


@pytest.mark.slow
@pytest.mark.realdata
def test_smoke_files_and_strict_json(smoke_run):
    _, _, out = smoke_run
    for f in ("results.json", "results.csv", "checks.csv", "kendall.csv", "sharpness_vs_gap.png",
              "bound_vs_observed.png", "report.md", "config.json"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    jsons = list(out.rglob("*.json"))
    assert len(jsons) >= 2
    for f in jsons:
        _strict_loads(f.read_text())  # NaN / Infinity refused
    res = _strict_loads((out / "results.json").read_text())
    cfg = ss.preset("smoke")
    assert len(res["rows"]) == len(cfg.teachers) * len(cfg.students())
    with open(out / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == len(res["rows"])
    assert set(res["timing"]) >= {"teacher_training_cpu_s", "student_training_cpu_s", "curvature_cpu_s",
                                  "evaluation_cpu_s", "total_cpu_s", "wall_s"}


@pytest.mark.slow
@pytest.mark.realdata
def test_smoke_records_kinds_verdicts_and_architectures(smoke_run):
    _, _, out = smoke_run
    res = _strict_loads((out / "results.json").read_text())
    cfg = ss.preset("smoke")
    checks = res["checks"]
    assert all("records" not in r for r in res["reports"])  # each record once, in checks
    assert {(c["teacher"], c["student"]) for c in checks} == {(r["teacher"], r["student"]) for r in res["reports"]}
    for c in checks:
        assert c["kind"] in KINDS and c["verdict"] in VERDICTS
    assert {c["name"] for c in checks} >= {"gibbs_classifier", "thm1_sigma_n", "thm2_central", "thm1_product_proxy",
                                         "thm3b_subgamma_quadratic", "thm3b_subgamma_mc", "thm3a_radius"}
    gibbs = [c for c in checks if c["name"] == "gibbs_classifier"]
    assert all(c["kind"] == "demonstration" and c["verdict"] == "holds" and c["assumptions_met"] for c in gibbs)
    kernel = ("thm3b_subgamma_quadratic", "thm3b_subgamma_mc", "thm3a_radius")
    for rep in res["reports"]:
        same = rep["student_arch"] == cfg.teacher_arch
        assert rep["same_architecture"] is same
        for c in (c for c in checks if (c["teacher"], c["student"]) == (rep["teacher"], rep["student"])):
            if c["name"] in kernel:
                if same:
                    assert c["verdict"] != "not_defined" and c["bound"] is not None
                else:
                    assert c["verdict"] == "not_defined" and c["bound"] is None and c["reason"]
    assert any(r["student_arch"] != cfg.teacher_arch for r in res["reports"])  # the preset has a cross pair


@pytest.mark.slow
@pytest.mark.realdata
def test_smoke_holm_over_the_run_counts_and_kendall(smoke_run):
    _, _, out = smoke_run
    res = _strict_loads((out / "results.json").read_text())
    checks = res["checks"]
    alpha = res["config"]["alpha"]
    real = [c for c in checks if c["kind"] != "proxy" and c["p_holds"] is not None]
    proxy = [c for c in checks if c["kind"] == "proxy" and c["p_holds"] is not None]
    assert len(real) > 10
    for fam in (real, proxy):
        n = len(fam)
        for c in fam:
            # α/2 per family (F5d); Student's t with M − 1 dof for the Monte Carlo checks (F5c)
            level = 1 - alpha / 2 / n
            z = float(ndtri(level)) if c["dof"] is None else float(student_t.ppf(level, c["dof"]))
            assert c["family_size"] == n and c["alpha"] == alpha / 2 and c["z"] == pytest.approx(z)
            if c["name"] in ("thm3b_subgamma_mc", "thm3a_radius"):
                assert c["dof"] == res["config"]["mc_draws"] - 1
            d, se = c["observed"], c["observed_se"]
            b = c["bound"] if c["bound_holds"] is None else c["bound_holds"]  # "holds" at its limit (F5a)
            stat = {"abs": abs(d), "upper": d, "lower": -d}[c["side"]]
            bb = -b if c["side"] == "lower" else b
            if c["verdict"] == "holds":
                assert bb - stat >= z * se - 1e-12
    n_teachers = len(ss.preset("smoke").teachers)
    by_name = {r["name"]: r for r in res["verdict_counts"]["by_name"]}
    assert by_name["gibbs_classifier"]["n_teachers"] == n_teachers
    assert by_name["gibbs_classifier"]["n_pairs"] == n_teachers * len(ss.preset("smoke").students())
    kinds = {r["kind"] for r in res["verdict_counts"]["by_kind"]}
    assert kinds <= set(KINDS) and "demonstration" in kinds
    for k in res["kendall"]:
        assert k["n_teachers"] == n_teachers
        if k["p_value"] is not None:
            assert k["p_holm"] >= k["p_value"] and k["min_attainable_p"] >= 2 / 6 - 1e-12


@pytest.mark.slow
@pytest.mark.realdata
def test_smoke_rerun_reuses_the_cache(smoke_run):
    mod, tmp, out = smoke_run
    out2 = tmp / "out2"
    assert mod.main(["--preset", "smoke", "--out", str(out2), "--cache-root", str(tmp / "cache"),
                     "--no-progress"]) == 0
    a = _strict_loads((out / "results.json").read_text())
    b = _strict_loads((out2 / "results.json").read_text())
    assert b["rows"][0]["divergence_train"] == pytest.approx(a["rows"][0]["divergence_train"], rel=1e-6)
    assert b["timing"]["teacher_training_cpu_s"] < a["timing"]["teacher_training_cpu_s"]
