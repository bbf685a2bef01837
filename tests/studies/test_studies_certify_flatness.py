"""The certify_flatness study (issue 12 item 6): teacher sharpness vs the certificate of its students.

Oracles: the smoke grid end to end on the fake CIFAR-10 (strict JSON parsed with a parser that rejects
NaN/Infinity; the reference certificate, whose divergence is 0, recomputed from scratch with scipy's
root finder on the Bernoulli KL, paying ln J); ``scipy.stats.kendalltau`` (τ_b) on the per-teacher values
and a brute-force permutation test over all T! orderings built on it; an analytic tolerance curve
(risk linear in ln σ) for ``sigma_tolerated``; the local executor for the Ray executor; a dense float64
Hessian (``torch.autograd.functional.hessian``) for λ_max, the trace and the per-layer traces of relative
flatness; the ReLU rescaling symmetry (function unchanged) for its invariance; hand-computed scales of the
relative prior and its equivariance under layer rescaling (hypothesis).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, stats

from fake_cifar import write_fake_cifar10
from kdbounds.studies import certify_flatness as cf
from kdbounds.runs.grid import TeacherRecipe
from kdbounds.runs.splits import split_data
from kdbounds.studies.certify_flatness import Config, kendall_report, sigma_tolerated
from study_helpers import needs_ray



@pytest.fixture(scope="module")
def fake_root(tmp_path_factory):
    return write_fake_cifar10(tmp_path_factory.mktemp("fakecifar-flat"))


def _tiny(root: Path) -> Config:
    """The smoke preset cut to the fake CIFAR-10 (100 training images)."""
    return dataclasses.replace(cf.PRESETS["smoke"], data_root=str(root), n_s=40, n_t=50, test_n=50,
                               curvature_n=20, curvature_batch_size=20)


@pytest.fixture(scope="module")
def smoke_run(fake_root, tmp_path_factory):
    import os

    out = tmp_path_factory.mktemp("flat-out")
    old = os.environ.get("KDBOUNDS_CACHE")
    os.environ["KDBOUNDS_CACHE"] = str(out / "kdcache")
    split_data.cache_clear()
    try:
        res = cf.run(_tiny(fake_root), out / "res", cache_root=out / "cache", progress=False, log=lambda *_: None)
    finally:
        split_data.cache_clear()
        if old is None:
            os.environ.pop("KDBOUNDS_CACHE", None)
        else:
            os.environ["KDBOUNDS_CACHE"] = old
    return res, out / "res"


def _strict(path: Path):
    def bad(c):
        raise ValueError(f"non-finite constant {c} in {path}")

    return json.loads(path.read_text(), parse_constant=bad)


def _bernoulli_kl(q: float, p: float) -> float:
    return stats.entropy([q, 1 - q], [p, 1 - p])


def _kl_inv(q: float, c: float) -> float:
    """sup{p ≥ q: kl(q‖p) ≤ c} by scipy's brentq (independent of kdbounds.certificates.bounds)."""
    if c <= 0:
        return q
    f = lambda p: _bernoulli_kl(q, p) - c  # noqa: E731
    hi = 1 - 1e-15
    return hi if f(hi) <= 0 else optimize.brentq(f, q, hi, xtol=1e-14)


# ---------------------------------------------------------------------------------------------- end to end
def test_smoke_end_to_end_writes_strict_json_with_the_required_fields(smoke_run):
    res, out = smoke_run
    d = _strict(out / "results.json")
    for f in ("teachers.csv", "certificates.csv", "flatness.png", "summary.txt"):
        assert (out / f).stat().st_size > 0, f
    cfg = d["config"]
    assert cfg["seeds"] == [0] and len(cfg["recipes"]) == 3 and cfg["n_scales"] == 2
    assert d["split"]["n_s"] == 40 and d["split"]["n_t"] == 50 and d["split"]["cert_sha256"]
    J = cfg["n_scales"]
    assert len(d["teachers"]) == 3 == d["summary"]["n_teachers"]
    for t in d["teachers"]:
        for k in ("top_eig", "trace", "trace_se", "sigma_tolerated", "teacher_ds_error", "pbkd_risk_upper",
                  "rel_flatness", "rel_flatness_se", "top_eig_normalised", "s_tolerated", "relative_risk_upper",
                  "relative_sigma_prior",
                  "pbkd_sigma_prior", "pbkd_mean_term", "reference_risk_upper", "teacher_test_acc", "weight_norm"):
            assert isinstance(t[k], (int, float)) and math.isfinite(t[k]), (t["teacher"], k)
        assert min(abs(t["pbkd_sigma_prior"] - v) for v in cf.PRESETS["smoke"].scales) < 1e-15
        rows = [c for c in d["certificates"] if c["teacher"] == t["teacher"]]
        assert min(abs(t["relative_sigma_prior"] - v) for v in cf.PRESETS["smoke"].rel_scales) < 1e-15
        assert set(t["rel_flatness_layers"]) == {"hidden.0.weight", "classifier.weight"}
        for kind in ("reference", "relative", "pbkd"):
            g = [c for c in rows if c["posterior"] == kind]
            grid = cf.PRESETS["smoke"].rel_scales if kind == "relative" else cf.PRESETS["smoke"].scales
            assert len(g) == J and sorted(c["sigma_prior"] for c in g) == pytest.approx(list(grid))
            sel = [c for c in g if c["selected"]]
            assert len(sel) == 1 and sel[0]["risk_upper"] == min(c["risk_upper"] for c in g)
            assert t[f"{kind}_risk_upper"] == sel[0]["risk_upper"]
            for c in g:
                assert c["n_grid"] == J == c["n_grid_mc"] and c["n_s"] == 40 and 0 <= c["risk_upper"] <= 1
                for k in ("divergence", "mean_term", "variance_term", "test_gibbs_risk", "vacuous"):
                    assert k in c
    assert all(c["divergence"] == 0 for c in d["certificates"] if c["posterior"] in ("reference", "relative"))
    assert any(c["mean_term"] > 0 for c in d["certificates"] if c["posterior"] == "pbkd")
    kd = d["kendall"]
    assert [k["level"] for k in kd] == ["recipe"] * 15 + ["within-design"] * 15
    assert {k["sharpness"] for k in kd} == {"top_eig", "trace", "rel_flatness"}
    assert ("top_eig", "s_tolerated") in {(k["sharpness"], k["outcome"]) for k in kd}
    for k in kd:
        assert k["n_teachers"] == 3 and "min_attainable_p" in k
        assert (k["unit"], k["n_recipes"]) == (("recipe", 3) if k["level"] == "recipe" else ("teacher", None))
    # the grids of this run are the ledger's union on a fresh cache, and they are what the certificates paid
    g = d["grids"]
    assert g["union"]["sigma_prior"] == pytest.approx(list(cf.PRESETS["smoke"].scales))
    assert d["summary"]["J_paid"] == {"sigma_prior": J, "relative_s": J}


def test_reference_certificate_recomputed_with_scipy_pays_ln_J(smoke_run):
    """Q = P: the certificate is kl⁻¹(kl⁻¹(L̂, ln(2J/δ')/N), ln(2√n J/δ)/n) — recomputed independently (the
    reported number is the minimum over the J grid values, so both steps pay J)."""
    res, _ = smoke_run
    c = res.config
    J, n = c["n_scales"], 40
    N = c["n_draws"] * n
    rows = [r for r in res.certificates if r["posterior"] in ("reference", "relative")]
    assert len(rows) == 2 * J * len(res.teachers)
    for r in rows:
        up = _kl_inv(r["mc_risk"], math.log(2 * J / c["delta_mc"]) / N)
        want = _kl_inv(up, math.log(2 * math.sqrt(n) * J / c["delta"]) / n)
        assert r["risk_upper"] == pytest.approx(want, abs=1e-7)


def test_every_reported_number_holds_at_the_stated_confidence(smoke_run):
    """F2: the reported certificate of a teacher is the minimum over its grid; by the union bound over the
    certificates it is taken from, it holds with probability 1 − Σ (δ/J + δ'/J') ≥ 1 − δ − δ' — the
    confidence stated in every row and in the summary (with δ' unpaid it would be 1 − δ − J δ')."""
    res, _ = smoke_run
    cfg = res.config
    stated = 1 - cfg["delta"] - cfg["delta_mc"]
    assert res.summary["confidence"] == pytest.approx(stated)
    groups: dict = {}
    for c in res.certificates:
        groups.setdefault((c["teacher"], c["posterior"]), []).append(c)
    for (teacher, kind), g in groups.items():
        assert all(c["confidence"] == pytest.approx(stated) for c in g)
        failure = sum(c["delta"] / c["n_grid"] + c["delta_mc"] / c["n_grid_mc"] for c in g)
        assert 1 - failure >= stated - 1e-12, (teacher, kind, 1 - failure)
        t = next(t for t in res.teachers if t["teacher"] == teacher)
        assert t[f"{kind}_risk_upper"] == min(c["risk_upper"] for c in g)


def _split_arrays(root: Path, cfg):
    """``D_T``, ``D_S`` and ``D_T ∪ D_S`` rebuilt here from the raw arrays and the split's indices (checked
    against the recorded SHA-256 of each index set)."""
    from kdbounds.certificates.split import indices_sha256, make_split
    from kdbounds.runs.grid import DataSpec, load_data

    xtr, ytr, xte, yte = load_data(DataSpec("cifar10", str(root), cfg.test_n))
    sp = make_split(ytr, cfg.n_s, n_t=cfg.n_t, seed=cfg.split_seed)
    return sp, indices_sha256, (xtr, ytr, xte, yte)


def test_data_path_certificates_on_ds_teachers_on_dt_posteriors_on_the_union(smoke_run, fake_root):
    """F1: every certificate was computed on D_S (its recorded SHA-256 of (x, y) equals D_S's, normalised as the
    networks see it); every teacher (= prior) was trained on D_T, every posterior on D_T ∪ D_S (the run
    cache's data fingerprint of each run). Certifying on D_T, or training the teachers on D_T ∪ D_S, fails here."""
    import torch

    from kdbounds._io import arrays_sha256, read_json
    from kdbounds.data.transforms import normalization, normalize_uint8
    from kdbounds.runs.cache import data_fingerprint

    res, out = smoke_run
    cfg = _tiny(fake_root)
    sp, ish, (xtr, ytr, xte, yte) = _split_arrays(fake_root, cfg)
    assert (ish(sp.cert), ish(sp.teacher)) == (res.split["cert_sha256"], res.split["teacher_sha256"])
    mean, std = normalization("cifar10")
    x_s = normalize_uint8(torch.from_numpy(np.ascontiguousarray(xtr[sp.cert])).permute(0, 3, 1, 2), mean, std)
    d_s = arrays_sha256((x_s, torch.from_numpy(np.asarray(ytr[sp.cert]))))
    assert res.certificates and all(c["data_sha256"] == d_s for c in res.certificates)
    cache = out.parent / "cache"
    d_t = data_fingerprint((xtr[sp.teacher], ytr[sp.teacher], xte, yte))
    u = sp.union
    d_u = data_fingerprint((xtr[u], ytr[u], xte, yte))
    for t in res.teachers:
        assert read_json(cache / t["teacher_run"] / "run.json")["key"]["data"] == d_t, t["teacher"]
    posts = [c for c in res.certificates if c["posterior"] in cfg.posteriors]
    assert posts and all(read_json(cache / c["run"] / "run.json")["key"]["data"] == d_u for c in posts)


def test_a_changed_grid_on_the_same_split_pays_the_union(smoke_run, fake_root):
    """F4: a second run on the same D_S (same cache) with another σ_P grid: its certificates pay the union of
    both grids (J = 4, both steps), the ledger lists both grids; a fresh split seed starts a fresh ledger."""
    from kdbounds.runs.grid_ledger import ledger_path, read_ledger

    res, out = smoke_run
    cache = out.parent / "cache"
    cfg = dataclasses.replace(_tiny(fake_root), scale_low=3e-3, scale_high=5e-2)
    assert not set(cfg.scales) & set(cf.PRESETS["smoke"].scales)
    from kdbounds.runs.splits import split_data

    split_data.cache_clear()
    again = cf.run(cfg, out.parent / "again", cache_root=cache, progress=False, log=lambda *_: None)
    union = sorted({*cfg.scales, *cf.PRESETS["smoke"].scales})
    assert again.grids["union"]["sigma_prior"] == pytest.approx(union)
    assert again.summary["J_paid"] == {"sigma_prior": 4, "relative_s": 2}  # the relative grid did not change
    for c in again.certificates:
        assert (c["n_grid"], c["n_grid_mc"]) == ((2, 2) if c["posterior"] == "relative" else (4, 4))
    grids = [e["values"] for e in read_ledger(cache, res.split) if e["grid"] == "sigma_prior"]
    assert len(grids) == 2 and ledger_path(cache, res.split).is_file()
    other = dict(res.split, cert_sha256="0" * 64)
    assert read_ledger(cache, other) == []


def test_grid_ledger_records_each_grid_once_and_returns_unions(tmp_path):
    from kdbounds.runs.grid_ledger import read_ledger, record_grids

    split = {"cert_sha256": "ab" * 32, "n_s": 10}
    u = record_grids(tmp_path, split, {"a": [0.1, 0.2], "b": [1.0]}, study="x")
    assert u == {"a": (0.1, 0.2), "b": (1.0,)}
    # the same grid again (recomputed with rounding noise): nothing new
    u = record_grids(tmp_path, split, {"a": [0.1 + 1e-17, 0.2]}, study="x")
    assert u == {"a": (0.1, 0.2)} and len(read_ledger(tmp_path, split)) == 2
    u = record_grids(tmp_path, split, {"a": [0.2, 0.4]}, study="y")
    assert u == {"a": (0.1, 0.2, 0.4)} and len(read_ledger(tmp_path, split)) == 3
    with pytest.raises(ValueError, match="values"):
        record_grids(tmp_path, split, {"a": []}, study="x")
    with pytest.raises(ValueError, match="cert_sha256"):
        record_grids(tmp_path, {"n_s": 3}, {"a": [0.1]}, study="x")


def test_kendall_in_results_matches_scipy_on_the_per_teacher_values(smoke_run):
    res, _ = smoke_run
    for k in res.kendall:
        x = [t[k["sharpness"]] for t in res.teachers]
        y = [t[k["outcome"]] for t in res.teachers]
        want = stats.kendalltau(x, y, variant="b").statistic
        if math.isnan(want):
            assert math.isnan(k["tau"]) and k["note"]
        else:
            assert k["tau"] == pytest.approx(want, abs=1e-12)


# ---------------------------------------------------------------------------------------------- statistics
def _teachers(T: int, seed: int) -> list[dict]:
    g = np.random.default_rng(seed)
    eig = g.gamma(2.0, 10.0, T)
    out = []
    for i in range(T):
        out.append({"teacher": f"t{i}", "top_eig": float(eig[i]), "trace": float(eig[i] * 10 + g.normal(0, 30)),
                    "pbkd_risk_upper": float(0.5 + 0.004 * eig[i] + g.normal(0, 0.02)),
                    "pbkd_sigma_prior": float(g.choice([0.005, 0.01, 0.02])),  # ties on purpose
                    "reference_risk_upper": float(g.uniform(0.4, 0.6)),
                    "sigma_tolerated": float(g.uniform(0.01, 0.1)),
                    "teacher_ds_error": float(0.5 + 0.004 * eig[i] + g.normal(0, 0.01)),
                    "rel_flatness": float(eig[i] * 3 + g.normal(0, 20)), "s_tolerated": float(g.uniform(0.1, 1)),
                    "relative_risk_upper": float(g.uniform(0.4, 0.6))})
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_kendall_report_tau_and_exact_p_against_scipy_brute_force(seed):
    T = 6
    teachers = _teachers(T, seed)
    rep = [k for k in kendall_report(teachers, ("pbkd",)) if k["level"] == "within-design"]
    assert len(rep) == 15
    for k in rep:
        x = np.array([t[k["sharpness"]] for t in teachers])
        y = np.array([t[k["outcome"]] for t in teachers])
        tau = stats.kendalltau(x, y, variant="b").statistic
        assert k["tau"] == pytest.approx(tau, abs=1e-12)
        perm = [stats.kendalltau(x[list(p)], y, variant="b").statistic for p in itertools.permutations(range(T))]
        p = float(np.mean(np.abs(perm) >= abs(tau) - 1e-12))
        assert k["p_value"] == pytest.approx(p, abs=1e-12) and k["exact"] and k["n_teachers"] == T
        assert k["p_value"] <= k["p_holm"] <= 1
    # Holm: the smallest raw p times the number of tests (capped at 1)
    ps = sorted(k["p_value"] for k in rep)
    assert min(k["p_holm"] for k in rep) == pytest.approx(min(1.0, ps[0] * len(ps)))


def test_kendall_report_headline_is_recipe_level_against_a_full_enumeration():
    """F3: 6 recipes × 3 seeds. The recipe-level τ is over the 6 recipe means, its exact p over the 720 recipe
    permutations (oracle: means and enumeration here, τ_b by scipy); Holm within each level separately."""
    teachers = _teachers(18, 4)
    for i, t in enumerate(teachers):
        t["recipe"] = f"r{i // 3}"
    rep = kendall_report(teachers, ("pbkd",))
    head = [k for k in rep if k["level"] == "recipe"]
    within = [k for k in rep if k["level"] == "within-design"]
    assert len(head) == len(within) == 15 and list(rep[:15]) == head
    for k in head[:4]:
        x = np.array([np.mean([t[k["sharpness"]] for t in teachers if t["recipe"] == r]) for r in
                      sorted({t["recipe"] for t in teachers})])
        y = np.array([np.mean([t[k["outcome"]] for t in teachers if t["recipe"] == r]) for r in
                      sorted({t["recipe"] for t in teachers})])
        tau = stats.kendalltau(x, y, variant="b").statistic
        perm = [stats.kendalltau(x[list(p)], y, variant="b").statistic for p in itertools.permutations(range(6))]
        assert k["tau"] == pytest.approx(tau, abs=1e-12)
        assert k["p_value"] == pytest.approx(float(np.mean(np.abs(perm) >= abs(tau) - 1e-12)), abs=1e-12)
        assert k["n_recipes"] == 6 and k["n_teachers"] == 18 and k["exact"] and k["min_attainable_p"] >= 2 / 720
    for lev in (head, within):
        ps = sorted(k["p_value"] for k in lev)
        assert min(k["p_holm"] for k in lev) == pytest.approx(min(1.0, ps[0] * len(ps)))
    assert all(k["n_teachers"] == 18 and k["unit"] == "teacher" for k in within)


def test_kendall_report_skips_outcomes_with_fewer_than_three_finite_teachers():
    teachers = _teachers(4, 2)
    for t in teachers[:2]:
        t["sigma_tolerated"] = float("nan")
        t["rel_flatness"] = float("nan")
    rep = kendall_report(teachers, ("pbkd",))
    assert not any(k["outcome"] == "sigma_tolerated" or k["sharpness"] == "rel_flatness" for k in rep)
    assert len(rep) == 2 * (8 + 1)  # top_eig vs s_tolerated stays; at both levels


# ---------------------------------------------------------------------------------------------- tolerance
def test_sigma_tolerated_on_an_analytic_curve():
    """risk = a + b ln σ crosses a + b ln σ* exactly at σ*; log-linear interpolation is exact here."""
    s = np.geomspace(1e-3, 1.0, 7)
    a, b = 0.5, 0.03
    star = 0.037
    base = a + b * math.log(star) - 0.05
    st, cens = sigma_tolerated(s, a + b * np.log(s), base, 0.05)
    assert st == pytest.approx(star, rel=1e-12) and not cens
    st, cens = sigma_tolerated(s, np.full(7, 0.3), 0.3, 0.05)  # never crosses: at least the largest scale
    assert st == s[-1] and cens
    st, cens = sigma_tolerated(s, np.full(7, 0.9), 0.3, 0.05)  # already above at the smallest scale
    assert st == s[0] and cens


@pytest.mark.parametrize("kw,match", [
    ({"scales": [0.1, 0.01], "risks": [0.1, 0.2]}, "scales"),
    ({"scales": [0.1, 0.2], "risks": [0.1]}, "scales, risks"),
    ({"scales": [0.1, 0.2], "risks": [0.1, float("nan")]}, "risks"),
])
def test_sigma_tolerated_rejects_bad_input(kw, match):
    with pytest.raises(ValueError, match=match):
        sigma_tolerated(kw["scales"], kw["risks"], 0.1, 0.05)


# ---------------------------------------------------------------------------------------------- config
@pytest.mark.parametrize("field,value", [
    ("n_scales", 1), ("posteriors", ("pbkd", "nope")), ("posteriors", ()), ("delta", 1.5), ("delta_mc", 0.0),
    ("seeds", ()), ("seeds", (0, 0)), ("recipes", ()), ("teacher_epochs", 0), ("arch", "resnet8"),
    ("tolerance", -0.1), ("curve_n", 1), ("n_s", 0), ("test_n", 5), ("device", "gpu"), ("objective", "x"),
    ("lanczos_matvecs", 1), ("pbkd_alpha", float("nan")),
])
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(cf.PRESETS["smoke"], **{field: value})


def test_config_rejects_bad_grids_recipes_and_too_few_teachers():
    s = cf.PRESETS["smoke"]
    with pytest.raises(ValueError, match="scale_low, scale_high"):
        s.replace(scale_low=0.1, scale_high=0.01)
    with pytest.raises(ValueError, match="curve_low, curve_high"):
        s.replace(curve_high=1e-4)
    with pytest.raises(ValueError, match=r"recipes\[bad\].lr"):
        s.replace(recipes=(*s.recipes, TeacherRecipe("bad", -1.0, 32)))
    with pytest.raises(ValueError, match="distinct"):
        s.replace(recipes=(s.recipes[0], s.recipes[0], s.recipes[1]))
    with pytest.raises(ValueError, match="at least 3 teachers"):
        s.replace(recipes=s.recipes[:2])
    with pytest.raises(TypeError, match="config"):
        cf.run({"preset": "smoke"}, "/nonexistent")


def test_presets_sizes_match_certify_students_and_grid_is_recorded():
    cpu = cf.PRESETS["cpu"]
    assert (cpu.n_s, cpu.n_t) == (5000, 10000) and len(cpu.recipes) * len(cpu.seeds) >= 12
    assert len(cpu.scales) == cpu.n_scales and cpu.scales[0] == pytest.approx(cpu.scale_low)
    specs = cf.training_specs(cf.PRESETS["smoke"], "/tmp/unused")
    keys = [s.key for s in specs]
    assert len(keys) == 3 * (1 + 2 + 1) and all(k.startswith(("teacher-", "pbkd-", "measure-")) for k in keys)
    m = [s for s in specs if s.key.startswith("measure-")][0]
    assert len(m.deps) == 1 + 2


# ---------------------------------------------------------------------------------------------- Ray
@needs_ray
@pytest.mark.xdist_group("ray")
def test_ray_gives_the_same_numbers_as_local(ray_cluster, smoke_run, fake_root, tmp_path):
    """Retrained from scratch on Ray (another cache) at threads=1: every number equal to the local run."""
    res, _ = smoke_run
    ray_res = cf.run(_tiny(fake_root), tmp_path / "ray", cache_root=tmp_path / "cache", progress=False,
                     log=lambda *_: None, sweep={"executor": "ray"})
    skip = ("teacher_run", "cpu_s", "teacher_wall_s")

    def strip(rows):
        return [{k: v for k, v in r.items() if k not in skip and k != "run"} for r in rows]

    assert strip(ray_res.teachers) == strip(res.teachers)
    assert strip(ray_res.certificates) == strip(res.certificates)
    assert ray_res.kendall == res.kendall


# ---------------------------------------------------------------------------------------------- curvature
def test_teacher_sharpness_against_a_dense_float64_hessian():
    """λ_max (Lanczos) and the Hutchinson trace of the mean cross-entropy vs ``torch.autograd.functional.hessian``
    of the same loss over the flattened parameters, eigenvalues by ``numpy.linalg.eigvalsh``."""
    import torch
    from torch.func import functional_call

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3)).double()
    x = torch.randn(30, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (30,))
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat0 = torch.cat([p.detach().flatten() for p in model.parameters()])

    def loss(flat):
        parts, i = {}, 0
        for n, s in zip(names, shapes):
            k = int(np.prod(s))
            parts[n] = flat[i:i + k].reshape(s)
            i += k
        return torch.nn.functional.cross_entropy(functional_call(model, parts, (x,)), y)

    H = torch.autograd.functional.hessian(loss, flat0).numpy()
    eig = np.linalg.eigvalsh(H)
    cfg = {"curvature_batch_size": 10, "lanczos_matvecs": flat0.numel(), "trace_matvecs": 400}
    got = cf._curvature(model, x, y, cfg, seed=3)
    assert got["top_eig"] == pytest.approx(eig[-1], rel=1e-6)
    assert got["n_params"] == flat0.numel() == 39 and got["n_examples"] == 30
    assert abs(got["trace"] - np.trace(H)) <= 5 * got["trace_se"] and got["trace_se"] > 0
    assert got["weight_norm"] == pytest.approx(float(np.linalg.norm(flat0.numpy())), rel=1e-12)


# ---------------------------------------------------------------------------------------------- relative flatness
def _relu_mlp(seed: int):
    import torch

    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 4), torch.nn.ReLU(),
                               torch.nn.Linear(4, 3)).double()


def _dense_hessian(model, x, y):
    """Dense float64 Hessian of the mean cross-entropy over the flattened parameters, and each parameter's
    index range in it."""
    import torch
    from torch.func import functional_call

    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat0 = torch.cat([p.detach().flatten() for p in model.parameters()])
    spans, i = {}, 0
    for n, sh in zip(names, shapes):
        spans[n] = (i, i + int(np.prod(sh)))
        i += int(np.prod(sh))

    def loss(flat):
        parts = {n: flat[a:b].reshape(sh) for (n, (a, b)), sh in zip(spans.items(), shapes)}
        return torch.nn.functional.cross_entropy(functional_call(model, parts, (x,)), y)

    return torch.autograd.functional.hessian(loss, flat0).numpy(), spans, flat0.numpy()


def _data(n: int = 40, seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)


def test_relative_flatness_against_a_dense_float64_hessian():
    """Σ_l ‖W_l‖² tr(H_{W_l}) with each block's trace read off the dense Hessian's diagonal (biases excluded)."""
    model = _relu_mlp(1)
    x, y = _data()
    H, spans, flat = _dense_hessian(model, x, y)
    got = cf.relative_flatness(model, [(x[:20], y[:20]), (x[20:], y[20:])], 600, seed=5)
    want_layers = {n: (float(flat[a:b] @ flat[a:b]), float(np.trace(H[a:b, a:b])))
                   for n, (a, b) in spans.items() if n.endswith("weight")}
    assert set(got["rel_flatness_layers"]) == set(want_layers) == {"0.weight", "2.weight", "4.weight"}
    for n, (w2, tr) in want_layers.items():
        lay = got["rel_flatness_layers"][n]
        assert lay["weight_norm_sq"] == pytest.approx(w2, rel=1e-12)
        assert lay["n_params"] == spans[n][1] - spans[n][0]
        assert abs(lay["trace"] - tr) <= 5 * lay["trace_se"] + 1e-12 and lay["trace_se"] > 0
    want = sum(w2 * tr for w2, tr in want_layers.values())
    assert abs(got["rel_flatness"] - want) <= 5 * got["rel_flatness_se"] and got["rel_flatness_se"] > 0
    assert got["rel_flatness_se"] < 0.2 * abs(want)  # the tolerance is tight enough to mean something


def _rescaled(model, layer: int, alpha: float):
    """Multiply Linear ``layer`` (weight and bias) by α and the next Linear's weight by 1/α: a ReLU network
    computes the same function."""
    import copy

    import torch

    m = copy.deepcopy(model)
    lin = [mod for mod in m if isinstance(mod, torch.nn.Linear)]
    with torch.no_grad():
        lin[layer].weight.mul_(alpha)
        lin[layer].bias.mul_(alpha)
        lin[layer + 1].weight.div_(alpha)
    return m


def _dense_measures(m, x, y):
    """(κ, trace, λ_max) of the dense float64 Hessian: κ from its diagonal blocks of the layer weights."""
    H, spans, flat = _dense_hessian(m, x, y)
    kap = sum(float(flat[a:b] @ flat[a:b]) * float(np.trace(H[a:b, a:b]))
              for n, (a, b) in spans.items() if n.endswith("weight"))
    return kap, float(np.trace(H)), float(np.linalg.eigvalsh(H)[-1])


@settings(max_examples=12, deadline=None)
@given(layer=st.sampled_from([0, 1]), alpha=st.floats(0.1, 10.0))
def test_relative_flatness_is_invariant_to_relu_rescaling(layer, alpha):
    """The rescaled network computes the same function (checked); the dense Hessian's relative flatness is the
    same to 1e-10 and the estimator's too (same probes: each block's quadratic form scales by exactly 1/α²)."""
    import torch

    model = _relu_mlp(2)
    x, y = _data(seed=1)
    m2 = _rescaled(model, layer, alpha)
    with torch.no_grad():
        assert torch.allclose(model(x), m2(x), rtol=1e-11, atol=1e-12)
    assert _dense_measures(m2, x, y)[0] == pytest.approx(_dense_measures(model, x, y)[0], rel=1e-10)
    g1 = cf.relative_flatness(model, [(x, y)], 8, seed=3)
    g2 = cf.relative_flatness(m2, [(x, y)], 8, seed=3)
    assert g2["rel_flatness"] == pytest.approx(g1["rel_flatness"], rel=1e-9)
    assert g2["rel_flatness_se"] == pytest.approx(g1["rel_flatness_se"], rel=1e-9)


@pytest.mark.parametrize("layer,alpha", [(0, 3.0), (1, 0.25)])
def test_the_plain_trace_and_top_eigenvalue_are_not_invariant_to_relu_rescaling(layer, alpha):
    """Same function, same κ (dense and as the study computes it), but the dense Hessian's trace and λ_max
    change by more than 5–10 %: why the scale-aware measure matters. (The trace is A/α² + Bα² + C in α, so it
    is unchanged at one other α; these two are far from it.)"""
    model = _relu_mlp(2)
    x, y = _data(seed=1)
    m2 = _rescaled(model, layer, alpha)
    k1, tr1, e1 = _dense_measures(model, x, y)
    k2, tr2, e2 = _dense_measures(m2, x, y)
    assert k2 == pytest.approx(k1, rel=1e-10)
    assert abs(tr2 - tr1) > 0.1 * abs(tr1) and abs(e2 - e1) > 0.05 * abs(e1)
    cfg = {"curvature_batch_size": 40, "lanczos_matvecs": 5, "trace_matvecs": 8}
    c1, c2 = cf._curvature(model, x, y, cfg, seed=3), cf._curvature(m2, x, y, cfg, seed=3)
    assert c2["rel_flatness"] == pytest.approx(c1["rel_flatness"], rel=1e-9)
    assert abs(c2["trace"] - c1["trace"]) > 0.1 * abs(c1["trace"])


def test_relative_flatness_rejects_a_model_without_weight_matrices():
    import torch

    with pytest.raises(ValueError, match="model"):
        cf.relative_flatness(torch.nn.Sequential(torch.nn.BatchNorm1d(3)), [], 4, seed=0)
    with pytest.raises(ValueError, match="matvecs"):
        cf.relative_flatness(_relu_mlp(0), [_data()], 1, seed=0)


# ---------------------------------------------------------------------------------------------- relative prior
def test_relative_std_by_hand_and_a_zero_tensor_takes_the_global_rms():
    import torch

    m = torch.nn.Linear(3, 1).double()
    with torch.no_grad():
        m.weight.copy_(torch.tensor([[0.0, 3.0, -4.0]]))
        m.bias.zero_()
    sd = cf.relative_std(m, 0.5, 0.1)
    rms_w = math.sqrt(25 / 3)
    assert sd["weight"][0].tolist() == pytest.approx([0.5 * 0.1 * rms_w, 0.5 * (3 + 0.1 * rms_w),
                                                   0.5 * (4 + 0.1 * rms_w)], rel=1e-12)
    assert sd["bias"].tolist() == pytest.approx([0.5 * 0.1 * math.sqrt(25 / 4)], rel=1e-12)  # all 4 weights
    from kdbounds.pacbayes.kernels import GaussianKernel

    K = GaussianKernel.from_model(m, sd)
    assert torch.equal(K.std["weight"], sd["weight"]) and torch.equal(K.std["bias"], sd["bias"])
    # Monte Carlo: the kernel's draws have these per-weight standard deviations around w_T
    draws = K.sample(20000, torch.Generator().manual_seed(0))
    for n, want in sd.items():
        d = draws[n].reshape(20000, -1)
        assert torch.allclose(d.std(0), want.reshape(-1), rtol=0.03)
        assert torch.allclose(d.mean(0), dict(m.named_parameters())[n].detach().reshape(-1),
                              atol=float(4 * want.max() / math.sqrt(20000)))
    with pytest.raises(ValueError, match="floor"):
        cf.relative_std(m, 0.5, 0.0)
    with pytest.raises(ValueError, match="s"):
        cf.relative_std(m, -1.0, 0.1)


@settings(max_examples=25, deadline=None)
@given(alpha=st.floats(0.05, 20.0), s=st.floats(1e-3, 3.0), floor=st.floats(1e-3, 1.0))
def test_relative_std_scales_with_its_layer(alpha, s, floor):
    """σ(αW) = α σ(W) for the rescaled layer; the other layers' σ unchanged (the prior is relative)."""
    import torch

    model = _relu_mlp(3)
    sd = cf.relative_std(model, s, floor)
    m2 = _rescaled(model, 0, alpha)
    with torch.no_grad():
        m2[2].weight.mul_(alpha)  # undo the 1/α on the next layer: only layer 0 changes
    sd2 = cf.relative_std(m2, s, floor)
    for n in sd:
        want = sd[n] * alpha if n.startswith("0.") else sd[n]
        assert torch.allclose(sd2[n], want, rtol=1e-10, atol=0), n


# ---------------------------------------------------------------------------------------------- console
def test_summary_tables_show_no_none_or_nan(smoke_run):
    """An undefined number reads "—" and the Kendall tables say why (their ``note`` column), never "None"/"nan"."""
    import re

    res, out = smoke_run
    text = (out / "summary.txt").read_text()
    table_rows = [ln for ln in text.splitlines() if ln.startswith("|")]
    assert table_rows and not [ln for ln in table_rows if re.search(r"\b(None|nan|inf)\b", ln)]
    assert any(ln.startswith("| sharpness |") and ln.rstrip().endswith("| note |") for ln in table_rows)
    undefined = [k for k in res.kendall if k.get("tau") is None or k["tau"] != k["tau"]]
    for k in undefined:  # each undefined test's row carries its reason
        assert any(k["note"] in ln and f"| {k['sharpness']} | {k['outcome']} |" in ln for ln in table_rows), k


@pytest.mark.parametrize("sigma", [0.0025, 0.005, 0.01, 0.04])
def test_unstable_scales_are_those_where_sgd_on_the_objective_diverges(sigma):
    """Oracle: torch's SGD (the posterior runs' momentum and lr) on the real ``pac_bayes_objective`` with a KL mean
    term ``|m|² / (2 σ_P²)``: every scale :func:`unstable_scales` names blows up; scales it does not name far from
    the threshold stay bounded."""
    import torch

    from kdbounds.distill.pbb import pac_bayes_objective

    cfg = dataclasses.replace(cf.PRESETS["smoke"], scale_low=sigma, scale_high=sigma * 2, n_scales=2)
    flagged = sigma in cf.unstable_scales(cfg)
    momentum = cf._posterior_config(cfg, "pbkd", sigma, 0).momentum
    m = torch.full((50,), 1e-3, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([m], lr=cfg.posterior_lr, momentum=momentum)
    for _ in range(300):
        opt.zero_grad()
        kl = (m ** 2).sum() / (2 * sigma ** 2)
        pac_bayes_objective(torch.tensor(0.8, dtype=torch.float64), kl, cfg.n_s, cfg.delta, cfg.objective).backward()
        opt.step()
    grown = float(m.detach().abs().max())
    margin = sigma ** 2 * cfg.n_s * (1 + momentum) / cfg.posterior_lr
    if flagged:
        assert not grown < 1e3, (sigma, grown)  # overflowed (nan) or huge
        assert "diverges" in cf.posterior_loss_note(cfg) and f"{sigma:.3g}" in cf.posterior_loss_note(cfg)
    elif margin > 5:
        assert grown < 1e-2, (sigma, grown)
