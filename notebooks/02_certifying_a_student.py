# ---
# jupyter:
#   kdbounds:
#     needs:
#     - cifar10
# ---

# %% [markdown]
# # Certifying a distilled student: PAC-Bayes certificates, exactly and on CIFAR-10
#
# **Source:** this notebook is generated from `notebooks/02_certifying_a_student.py` (jupytext percent
# format, the file to edit). The outputs below come from a full run of
#
#     python notebooks/build.py 02_certifying_a_student
#
# with the real CIFAR-10 data set found through `KDBOUNDS_DATA` (see `kdbounds.data.load_cifar`).
#
# **What it shows.** A certificate is an upper bound on a student's *population* risk that holds with
# probability at least `1 − δ − δ'` over the data (theory.md §7). The training set is split into `D_T`,
# on which the prior `P` (for instance the teacher, or a network distilled from it) is built, and `D_S`,
# which the prior never sees. The student is a Gaussian kernel `Q = N(w_S, σ_Q² I)` around its weights,
# and with `K = KL(Q ‖ P)`, `L̂_M` the empirical Gibbs risk on `D_S` from `M` weight draws and `J` the
# number of prior scales tried,
#
#     L(Q) ≤ kl⁻¹( kl⁻¹(L̂_M, ln(2/δ')/M),  (K + ln(2√n_S · J/δ)) / n_S ).
#
# For Gaussians `K` splits into a **mean term** `½ Σ (m_Q − m_P)²/σ_P²` (how far the student moved from
# the prior) and a **variance term** `½ Σ φ(σ_Q²/σ_P²)`, `φ(x) = x − 1 − ln x` (how the scales differ).
#
# 1. **Exact oracle** (`kdbounds.certificates.oracle`): noisy half-spaces with linear classifiers, where the
#    empirical and the population Gibbs risks are known in closed form. Here every step is exact and
#    instant, so we sweep how the certificate moves with `n_S`, the prior scale `σ_P` and the prior type,
#    and check that it fails no more often than `δ` over repeated draws of the data.
# 2. **Networks on CIFAR-10** (`kdbounds.studies.certify_students`): priors of four types trained on `D_T`,
#    students trained on `D_T ∪ D_S`, each certified on `D_S` and compared with its held-out Gibbs error.
#    The study's `cpu` preset takes about 15 minutes on 2 cores; this notebook runs its `smoke` preset
#    with the sizes in `net_overrides` (a few minutes). Larger: `python experiments/certify_students.py
#    --preset cpu|gpu`.

# %% tags=["parameters"]
# Parameters (papermill-style cell). KDBOUNDS_NOTEBOOK_SMOKE=1 in the environment forces smoke = True.
smoke = False
# exact oracle (noisy half-spaces)
d = 50                  # input dimension
eta = 0.1               # label-flip probability
n_t = 500               # |D_T|: the prior's data
n_s = 2000              # |D_S|: the certification data
n_test = 20000          # held-out examples for the empirical test error
delta = 0.05            # confidence: the certificate holds with probability >= 1 - delta
sigma_q = 0.05          # posterior standard deviation (per coordinate)
sigma_p = 0.05          # prior standard deviation (fixed before D_S is seen: J = 1)
n_s_grid = (100, 300, 1000, 3000, 10000, 30000)
sigma_p_grid = tuple(float(v) for v in (0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.2, 0.35, 0.6, 1.0))
repetitions = 300       # repeated draws of the data for the failure rate
# networks on CIFAR-10 (kdbounds.studies.certify_students)
net_preset = "smoke"
net_overrides = dict(n_s=2000, n_t=4000, test_n=1000, prior_epochs=3, teacher_epochs=3, student_epochs=3,
                     pbb_epochs=2, n_scales=3, posterior_scales=(1e-4, 1e-3, 1e-2), select_n=500, n_draws=2)
seed = 0
cache_dir = None        # None: $KDBOUNDS_NOTEBOOK_CACHE, else results/notebooks (relative to the working directory)

# %%
import os

_env = os.environ.get("KDBOUNDS_NOTEBOOK_SMOKE", "")
if _env not in ("", "0", "1"):
    raise ValueError(f"KDBOUNDS_NOTEBOOK_SMOKE: expected '0' or '1', got {_env!r}")
smoke = smoke or _env == "1"
if smoke:  # same code path, tiny sizes: for CI
    n_s, n_test, repetitions = 500, 2000, 40
    n_s_grid, sigma_p_grid = (100, 1000), (0.02, 0.05, 0.2)
    net_overrides = dict(n_s=200, n_t=200, test_n=100, prior_epochs=1, teacher_epochs=1, student_epochs=1,
                         pbb_epochs=1, priors=("random", "learnt"), students=("ce", "pbb"), n_scales=2,
                         posterior_scales=(1e-3, 1e-2), select_n=100, select_draws=1, n_draws=1, test_draws=1)
if cache_dir is None:
    cache_dir = os.environ.get("KDBOUNDS_NOTEBOOK_CACHE") or os.path.join("results", "notebooks")
print(f"smoke={smoke}  oracle d={d} eta={eta} n_T={n_t} n_S={n_s} delta={delta} sigma_Q={sigma_q} sigma_P={sigma_p}  "
      f"repetitions={repetitions}  networks: preset {net_preset!r} with {net_overrides}  cache_dir={cache_dir}")

# %%
import dataclasses
import io
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, Markdown, display

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm.auto in a kernel without ipywidgets
plt.rcParams.update({"figure.dpi": 90, "axes.grid": True, "grid.alpha": 0.3})


def show(fig):
    """Display `fig` as one PNG output and close it (a pyplot figure left open would be shown a second
    time at the end of the cell by the inline backend)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    display(Image(data=buf.getvalue(), format="png"))

# %%
# Every kdbounds import of this notebook is in this one cell.
from kdbounds.io import bytes_sha256, dumps_strict, file_sha256, read_json
from kdbounds.certificates import diag_gaussian_kl, pac_bayes_kl_bound
from kdbounds.certificates.oracle import (gibbs_error, population_gibbs_risk, repeat_certificates,
                                          sample_halfspace)
from kdbounds.studies import certify_students as net_study
from kdbounds.figures import network_certificates_figure, oracle_certificate_figure
from kdbounds.runs.cache import code_fingerprint

# %% [markdown]
# ## 1. The exact oracle
#
# Inputs `x ~ N(0, I_d)`, labels `y = sign(w*ᵀx)` flipped with probability `η`, linear classifiers
# `sign(wᵀx)`. For a Gaussian `Q = N(m, s² I)`, the Gibbs error on one example is `Φ(−y mᵀx / (s‖x‖))`
# exactly, and the population Gibbs risk is a one-dimensional integral (`population_gibbs_risk`). So the
# empirical risk needs no Monte Carlo (`M = ∞`, `δ' = 0`) and the certificate can be compared with the
# true risk, not an estimate of it.
#
# **Split and prior.** `D_T` (`n_T` examples) gives the prior mean: the least-squares fit of `y` on `x`,
# a "teacher" the certification data never influence. The student's mean is the least-squares fit on
# `D_T ∪ D_S` (the bound holds for every `Q`, so `Q` may use `D_S`). Scales `σ_P`, `σ_Q` are fixed in
# advance (`J = 1`).

# %%
rng = np.random.default_rng(seed)
w_star = rng.standard_normal(d)
w_star /= np.linalg.norm(w_star)


def fit(x, y):
    """Minimum-norm least-squares fit of the ±1 labels on the inputs (the 'teacher' / 'student' direction)."""
    return np.linalg.lstsq(x, y, rcond=None)[0]


def certify_exact(m_q, s_q, m_p, s_p, x_s, y_s, delta=delta):
    """Exact empirical Gibbs risk on D_S, the divergence (mean and variance terms) and the certificate."""
    emp = float(gibbs_error(m_q, s_q, x_s, y_s).mean())
    kl = diag_gaussian_kl(m_q, s_q ** 2, m_p, s_p ** 2)
    return {"empirical": emp, "kl": kl.total, "mean_term": kl.mean_term, "variance_term": kl.variance_term,
            "certificate": float(pac_bayes_kl_bound(emp, kl.total, len(y_s), delta))}


x_t, y_t = sample_halfspace(n_t, w_star, eta, rng)
x_s, y_s = sample_halfspace(n_s, w_star, eta, rng)
x_test, y_test = sample_halfspace(n_test, w_star, eta, rng)
m_p = fit(x_t, y_t)
m_q = fit(np.vstack([x_t, x_s]), np.concatenate([y_t, y_s]))
one = certify_exact(m_q, sigma_q, m_p, sigma_p, x_s, y_s)
heldout = gibbs_error(m_q, sigma_q, x_test, y_test)
one["heldout"], one["heldout_se"] = float(heldout.mean()), float(heldout.std(ddof=1) / np.sqrt(n_test))
one["population"] = float(population_gibbs_risk(m_q, sigma_q, w_star, eta))
one["prior_population"] = float(population_gibbs_risk(m_p, sigma_p, w_star, eta))
print(f"split: n_T={n_t} (prior), n_S={n_s} (certification), {n_test} held-out; d={d}, eta={eta}")
print(f"Gibbs risk of Q: empirical on D_S {one['empirical']:.4f}, held-out {one['heldout']:.4f} ± {one['heldout_se']:.4f}, "
      f"population (exact) {one['population']:.4f}; of the prior P: population {one['prior_population']:.4f}")
print(f"KL(Q||P) = {one['kl']:.3f} nats = mean term {one['mean_term']:.3f} + variance term {one['variance_term']:.3f}")
print(f"certificate (probability >= {1 - delta:.2f}): L(Q) <= {one['certificate']:.4f}; "
      f"slack over the population risk {one['certificate'] - one['population']:.4f}")

# %% [markdown]
# ### How the certificate moves with `n_S`
#
# For each size of the certification set: a fresh `D_S`, the student refitted on `D_T ∪ D_S`, and the
# same prior. The certificate approaches the risk at rate about `√(K/n_S)` when the empirical risk is far
# from 0 — as long as `K` stays moderate.

# %%
rows_n = []
for n in n_s_grid:
    xs, ys = sample_halfspace(n, w_star, eta, rng)
    mq = fit(np.vstack([x_t, xs]), np.concatenate([y_t, ys]))
    r = certify_exact(mq, sigma_q, m_p, sigma_p, xs, ys)
    r["population"] = float(population_gibbs_risk(mq, sigma_q, w_star, eta))
    r["n_s"] = n
    rows_n.append(r)
    print(f"n_S={n:6d}: empirical {r['empirical']:.4f}  population {r['population']:.4f}  certificate "
          f"{r['certificate']:.4f}  KL {r['kl']:.2f} (mean {r['mean_term']:.2f}, variance {r['variance_term']:.2f})")

# %% [markdown]
# ### How it moves with the prior scale `σ_P`, and with the prior type
#
# With `σ_Q` fixed the empirical risk does not change; only `K` does. A small `σ_P` makes the mean term
# `‖m_Q − m_P‖²/(2σ_P²)` explode; a large one makes the variance term `(d/2) φ(σ_Q²/σ_P²)` grow like
# `(d/2) ln(σ_P²/σ_Q²)`. Each `σ_P` here is its own certificate fixed in advance; choosing the best one
# after seeing `D_S` would cost `ln J` (the grid correction `δ/J`).
#
# Prior types, all at the same `σ_P`: **data-free** (mean 0), **random** (a random direction, the norm of
# the fitted prior), **learnt on D_T** (the least-squares "teacher" used above), and **w\*** (the true
# direction at the fitted prior's norm; a reference, not available in practice). Being the truth does not
# make `w*` the best prior: `K` measures the distance to the *student*, and a least-squares student sits
# closer to the least-squares teacher than to `w*`.

# %%
rows_sp = [{"sigma_p": sp, **certify_exact(m_q, sigma_q, m_p, sp, x_s, y_s)} for sp in sigma_p_grid]
best_sp = min(rows_sp, key=lambda r: r["certificate"])
scale = np.linalg.norm(m_p)
u = rng.standard_normal(d)
priors = {"data-free (0)": np.zeros(d), "random direction": scale * u / np.linalg.norm(u),
          "learnt on D_T": m_p, "w* (reference)": scale * w_star}
rows_type = {name: certify_exact(m_q, sigma_q, mp, sigma_p, x_s, y_s) for name, mp in priors.items()}
for name, r in rows_type.items():
    print(f"prior {name:18s}: KL {r['kl']:9.2f} (mean {r['mean_term']:9.2f}, variance {r['variance_term']:.2f})  "
          f"certificate {r['certificate']:.4f}")

# %%
show(oracle_certificate_figure(rows_n, rows_sp, rows_type, population=one["population"], sigma_q=sigma_q,
                               sigma_p=sigma_p, delta=delta))

# %% [markdown]
# ### Does the certificate fail as rarely as promised?
#
# `repeat_certificates` draws `D_T` and `D_S` afresh `repetitions` times, certifies each posterior
# (exact path: failure probability at most `δ`) and counts how often the certificate is below the exact
# population risk. The **negative control** fits the prior on `D_S` itself, which the theorem forbids: the
# same check must then catch failures (its power). Here `d` is larger than `n_S` for the control, so the
# fit interpolates `D_S`.

# %%
t0 = time.process_time()
rep = repeat_certificates(d=d, n_t=n_t, n_s=200, eta=eta, repetitions=repetitions, rng=rng, delta=delta, scale=0.3)
ctl = repeat_certificates(d=400, n_t=n_t, n_s=200, eta=eta, repetitions=repetitions, rng=rng, delta=delta,
                          scale=0.3, control=True)
for name, r in (("valid prior (from D_T)", rep), ("negative control (prior on D_S)", ctl)):
    fr = r.failure_rate
    print(f"{name:32s}: {r.failures}/{r.repetitions} failures, rate {fr.value:.3f} "
          f"(95% CI {fr.ci_low:.3f}-{fr.ci_high:.3f}), nominal <= {r.nominal_level:.3f}; mean certificate "
          f"{r.mean_certificate:.3f} vs mean population risk {r.mean_population_risk:.3f}")
print(f"({2 * repetitions} certificates in {time.process_time() - t0:.1f} s CPU)")

# %% [markdown]
# ## 2. Networks on CIFAR-10
#
# `kdbounds.studies.certify_students` on a fixed, recorded split of the CIFAR-10 training set: priors on
# the student architecture built on `D_T` only — `random` (its initialisation), `learnt` (cross-entropy on
# `D_T`), `teacher` (a same-architecture teacher on `D_T`), `distilled` (KD from a larger teacher on `D_T`) —
# and students trained on `D_T ∪ D_S`: `ce` and `kd` wrapped as `N(w_S, σ_Q² I)` with `(σ_P, σ_Q)` picked
# on a grid (`σ_P` pays `ln J`), and `pbb` / `pbkd` whose Gaussian posteriors are learnt by a PAC-Bayes
# objective (without / with KD). Every student is certified on `D_S` (0–1 loss, Monte Carlo over weight
# draws, `δ'` for that step) and its Gibbs error is measured on held-out test images. The run is cached in
# `cache_dir/certify_students/<key>` (the key covers the configuration, the training code and the certificate code),
# its trained models in the run cache `cache_dir/certify_students/cache` (`kdbounds-study --clean --results
# results/notebooks` frees it).

# %%
net_cfg = dataclasses.replace(net_study.PRESETS[net_preset], **net_overrides)
cert_code = [Path(net_study.__file__), *sorted(Path(net_study.__file__).parents[1].joinpath("certificates").glob("*.py"))]
key = bytes_sha256(dumps_strict({"config": net_cfg.to_dict(), "code": code_fingerprint(),
                                 "certificates": [file_sha256(f) for f in cert_code]}).encode())[:16]
net_out = Path(cache_dir) / "certify_students" / f"{net_preset}-{key}"
if (net_out / "results.json").is_file():
    net_origin = f"reused from {net_out}"
else:
    wall0, cpu0 = time.perf_counter(), time.process_time()
    net_study.run(net_cfg, net_out, cache_root=Path(cache_dir) / "certify_students" / "cache", progress=False,
                  log=lambda s: None)
    net_origin = f"run here in {time.perf_counter() - wall0:.0f} s wall, {time.process_time() - cpu0:.0f} s CPU"
net = read_json(net_out / "results.json")
certs = [c for c in net.get("certificates", []) if c.get("loss", "zero_one") == "zero_one"]
split = net.get("split", {})
print(f"networks: {net_origin}; {net['config'].get('student_arch')} students, teacher {net['config'].get('teacher_arch')}; "
      f"split n_T={split.get('n_t')}, n_S={split.get('n_s')} (seed {split.get('seed')}), "
      f"{net['config'].get('test_n')} held-out test images; {len(certs)} certificates (0–1 loss)")
print(f"{'prior':10s} {'student':7s} {'certified':>9s} {'held-out':>9s} {'95% CI':>15s} {'KL':>12s} {'mean term':>12s} "
      f"{'var term':>10s} {'σ_P':>8s} {'σ_Q':>8s}")
for c in certs:
    ci = f"{c.get('test_gibbs_ci_low', float('nan')):.3f}-{c.get('test_gibbs_ci_high', float('nan')):.3f}"
    print(f"{c.get('prior', '?'):10s} {c.get('student', '?'):7s} {c.get('risk_upper', float('nan')):9.4f} "
          f"{c.get('test_gibbs_risk') or float('nan'):9.4f} {ci:>15s} {c.get('divergence', float('nan')):12.4g} "
          f"{c.get('mean_term', float('nan')):12.4g} {c.get('variance_term', float('nan')):10.4g} "
          f"{c.get('sigma_prior', float('nan')):8.2g} {c.get('sigma_posterior', float('nan')):8.2g}"
          f"{'  vacuous' if c.get('vacuous') else ''}")

# %%
show(network_certificates_figure(certs))

# %%

first_n, last_n = rows_n[0], rows_n[-1]
best_type = min(rows_type, key=lambda n: rows_type[n]["certificate"])
practical = {n: r for n, r in rows_type.items() if n != "w* (reference)"}
best_practical = min(practical, key=lambda n: practical[n]["certificate"])
best_net = min(certs, key=lambda c: c["risk_upper"]) if certs else None
non_vacuous = [c for c in certs if not c.get("vacuous")]
covered = [c for c in certs if c.get("test_gibbs_risk") is not None and c["risk_upper"] >= c["test_gibbs_risk"]]
mean_dominant = sum((c.get("mean_term") or 0) > (c.get("variance_term") or 0) for c in certs)
net_line = (f"The tightest network certificate is {best_net['risk_upper']:.3f} ({best_net['prior']} prior, "
            f"{best_net['student']} student) against a held-out Gibbs error of {best_net.get('test_gibbs_risk') or float('nan'):.3f}; "
            f"{len(non_vacuous)} of {len(certs)} certificates are below their trivial level, and "
            f"{len(covered)} of {len(certs)} lie above the held-out error (they should all: the held-out error "
            f"estimates the risk they bound). In {mean_dominant} of {len(certs)} the mean term dominates the KL."
            if best_net else "No 0–1 certificates in the network results.")
by_student = {}
for c in certs:
    by_student.setdefault(c.get("student"), []).append(c)
student_line = "; ".join(f"`{st}`: KL {min(c['divergence'] for c in cs):.3g}–{max(c['divergence'] for c in cs):.3g} nats, "
                         f"certificates {min(c['risk_upper'] for c in cs):.3f}–{max(c['risk_upper'] for c in cs):.3f}"
                         for st, cs in by_student.items())
best_by_prior = {}
for c in certs:
    p = c.get("prior")
    best_by_prior[p] = min(best_by_prior.get(p, 1.0), c["risk_upper"])
wrapped = [c for c in certs if c.get("student") in ("ce", "kd")]
learnt = [c for c in certs if c.get("student") in ("pbb", "pbkd")]
wrap_line = ""
if wrapped and learnt:
    wk, lk = min(c["divergence"] for c in wrapped), max(c["divergence"] for c in learnt)
    err_w = np.nanmean([c.get("test_gibbs_risk") or np.nan for c in wrapped])
    err_l = np.nanmean([c.get("test_gibbs_risk") or np.nan for c in learnt])
    if wk > lk:
        wrap_line = (f"Every wrapped student (`ce`, `kd`: trained freely, then wrapped in a Gaussian) has a larger KL "
                     f"(at least {wk:.3g} nats) than every posterior learnt with the PAC-Bayes objective (`pbb`, `pbkd`: "
                     f"at most {lk:.3g} nats): free training moves the weights far from any prior. ")
    else:
        wrap_line = "The KLs of wrapped students and learnt posteriors overlap in this run. "
    wrap_line += (f"Mean held-out Gibbs error: wrapped {err_w:.3f}, learnt {err_l:.3f}.")
prior_line = ", ".join(f"{p} {v:.3f}" for p, v in best_by_prior.items())
same = {(c["student"], c["risk_upper"]) for c in certs if c["prior"] == "teacher"} == \
    {(c["student"], c["risk_upper"]) for c in certs if c["prior"] == "learnt"}
if same and "teacher" in best_by_prior:
    prior_line += (" (the `teacher` and `learnt` priors give identical certificates: the same-architecture teacher "
                   "is trained with the same recipe on D_T, so it is the same network)")
display(Markdown(f"""
### What the numbers of this run say

**Exact oracle** (d = {d}, η = {eta}, n_T = {n_t}, δ = {delta}). With n_S = {n_s} the student's population
Gibbs risk is {one['population']:.4f} (held-out {one['heldout']:.4f} ± {one['heldout_se']:.4f}, empirical
{one['empirical']:.4f}) and the certificate is {one['certificate']:.4f}: {one['certificate'] - one['population']:.4f}
above the truth, with KL = {one['kl']:.2f} nats (mean term {one['mean_term']:.2f}, variance term
{one['variance_term']:.2f}). From n_S = {first_n['n_s']} to {last_n['n_s']} the certificate goes from
{first_n['certificate']:.4f} to {last_n['certificate']:.4f} (population risk {first_n['population']:.4f} →
{last_n['population']:.4f}). Over the prior scales the certificate is smallest at σ_P = {best_sp['sigma_p']}
({best_sp['certificate']:.4f}; σ_Q = {sigma_q}); smaller σ_P inflate the mean term, larger ones the variance
term. Among the priors available in practice the learnt-on-D_T one is {"the best" if best_practical == "learnt on D_T" else "not the best"}
(certificates: {", ".join(f"{n} {r['certificate']:.3f}" for n, r in rows_type.items())}); the best overall is
{best_type}. Over {repetitions} repeated draws the valid certificate failed {rep.failures} times (rate
{rep.failure_rate.value:.3f}, nominal ≤ {rep.nominal_level:.3f}); the negative control failed {ctl.failures}
times (rate {ctl.failure_rate.value:.3f}), so the check has the power to see a broken certificate.

**Networks on CIFAR-10** ({net['config'].get('student_arch')} students, n_S = {split.get('n_s')}, n_T =
{split.get('n_t')}): {net_line} By student: {student_line}. The best certificate per prior type: {prior_line}.
{wrap_line} With a few epochs on a few thousand images these are small-sample
certificates; the `cpu` and `gpu` presets of `experiments/certify_students.py` are the ones to read for
conclusions.
{"This is a smoke run (tiny sizes): the numbers only show that the pipeline runs." if smoke else ""}
"""))
