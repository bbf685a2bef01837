# ---
# jupyter:
#   kdbounds:
#     needs:
#     - cifar10
# ---

# %% [markdown]
# # Teacher sharpness and the student gap: spectrum of a teacher, and every check with its verdict
#
# **Source:** this notebook is generated from `notebooks/03_sharpness_and_gap.py` (jupytext percent
# format, the file to edit). The outputs below come from a full run of
#
#     python notebooks/build.py 03_sharpness_and_gap
#
# with the real CIFAR-10 data set found through `KDBOUNDS_DATA` (see `kdbounds.data.load_cifar`).
#
# **What it shows.** The flagship study `experiments/sharpness_vs_gap.py`
# (`kdbounds.studies.sharpness_vs_gap`) trains teachers with different recipes, distils students from
# each, and for every teacher–student pair measures the teacher's curvature, the distillation divergence
# `K̂`, the generalization gaps and every bound of theory.md §4 next to the quantity it bounds. This
# notebook
# 1. loads the study's `results.json` (from `results/sharpness_vs_gap/<preset>/` when
#    `experiments/sharpness_vs_gap.py` was run; otherwise it runs the study itself, see below),
# 2. computes the Hessian spectrum of one teacher's training loss: the spectral density by stochastic
#    Lanczos quadrature (SLQ), the top eigenvalues by Lanczos, and the trace by Hutchinson's estimator
#    with its standard error (`kdbounds.curvature`), and compares them with the study's own numbers,
# 3. lists each check with its classification (`kind`: certificate, demonstration, conditional, proxy)
#    and its verdict with uncertainty (`holds`, `violated`, `inconclusive`, `not_defined`; theory.md §6).
#
# **Size of the run.** The study's `cpu` preset (its default) takes about 10 minutes on 2 idle CPU cores (more on a
# loaded machine), too long for a notebook. When no results of `experiments/sharpness_vs_gap.py` are
# found, this notebook runs the `smoke` preset with the larger sizes set in `run_overrides` below (two
# teacher recipes, a few epochs on 1,000 CIFAR-10 training images): about 2 CPU-minutes for the study and
# 1 for the spectrum (about 6 and 4 minutes wall on the loaded 2-core development machine). The command
# line gets close with `python experiments/sharpness_vs_gap.py --preset smoke --n-per-class 100
# --teacher-epochs 6 --student-epochs 4` (the test-set size and the curvature settings of
# `run_overrides` are not command-line options). With two
# teachers Kendall's τ between sharpness and gap is undefined (it needs at least three); for that run
# the `cpu` preset first, then this notebook.

# %% tags=["parameters"]
# Parameters (papermill-style cell). KDBOUNDS_NOTEBOOK_SMOKE=1 in the environment forces smoke = True.
smoke = False
preset = "cpu"              # results of `experiments/sharpness_vs_gap.py --preset <preset>` are loaded if present
results_dir = None          # explicit folder holding results.json (None: results/sharpness_vs_gap/<preset>)
run_preset = "smoke"        # preset run here when no results are found ...
run_overrides = dict(n_per_class=100, test_per_class=50, teacher_epochs=6, student_epochs=4,  # ... with these
                     curvature_per_class=10, curvature_batch_size=100, trace_matvecs=8, lanczos_matvecs=10)
n_teachers = None           # keep the first n teacher recipes of run_preset (None: all)
spectrum_per_class = None   # training images per class for the spectrum (None: the study's curvature subset)
slq_probes, slq_steps = 3, 30     # SLQ: independent Lanczos runs x steps (probes*steps Hessian products)
top_k, top_matvecs = 5, 40        # Lanczos for the top eigenvalues
trace_probes = 30                 # Hutchinson probes for the trace
seed = 0
cache_dir = None            # None: $KDBOUNDS_NOTEBOOK_CACHE, else results/notebooks (relative to the working directory)

# %%
import os

_env = os.environ.get("KDBOUNDS_NOTEBOOK_SMOKE", "")
if _env not in ("", "0", "1"):
    raise ValueError(f"KDBOUNDS_NOTEBOOK_SMOKE: expected '0' or '1', got {_env!r}")
smoke = smoke or _env == "1"
if smoke:  # same code path, tiny sizes: for CI (never reads results from elsewhere)
    run_overrides = dict(n_per_class=5, test_per_class=5, teacher_epochs=1, student_epochs=1, methods=("kd",),
                         curvature_per_class=2, curvature_batch_size=20, trace_matvecs=6, lanczos_matvecs=3,
                         n_boot=20)
    n_teachers = 1
    slq_probes, slq_steps, top_k, top_matvecs, trace_probes = 2, 8, 2, 8, 4
if cache_dir is None:
    cache_dir = os.environ.get("KDBOUNDS_NOTEBOOK_CACHE") or os.path.join("results", "notebooks")
print(f"smoke={smoke}  looking for preset {preset!r} results, else running {run_preset!r} with {run_overrides}  "
      f"SLQ {slq_probes}x{slq_steps}, top-{top_k} in {top_matvecs} steps, trace {trace_probes} probes  cache_dir={cache_dir}")

# %%
import io
import math
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, Markdown, display
import torch

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
import kdbounds
from kdbounds.io import bytes_sha256, dumps_strict, file_sha256, read_json
from kdbounds.curvature import HessianOperator, hutchinson_trace, spectral_density, top_eigenvalues
from kdbounds.distill import load_checkpoint_model
from kdbounds.studies import sharpness_vs_gap as study
from kdbounds.figures import bound_vs_observed_figure, sharpness_vs_gap_figure, spectrum_figure, verdict_counts_figure
from kdbounds.runs.cache import code_fingerprint, load_cached

# %% [markdown]
# Helpers that read `results.json` without assuming more of its schema than a check's `name` and
# `bound` (pure functions; `tests/notebooks` runs them on both record schemas).

# %%
def num(x):
    """A float, or nan for a missing / null value."""
    try:
        return float(x) if x is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def first_key(row, *names):
    """The first of `names` present (and not null) in `row`, or None."""
    return next((n for n in names if row.get(n) is not None), None)


def fmt(x, spec=".4g"):
    """`x` formatted with `spec`, or an em dash for a missing / non-finite value."""
    return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def cell_value(row, key):
    """`row[key]`, or the first present of a tuple of candidate keys."""
    k = first_key(row, *key) if isinstance(key, tuple) else key
    return None if k is None else row.get(k)


def collect_checks(node, context=None):
    """Every check record in a results tree: dicts with a 'name' and a 'bound', inside lists."""
    context = context or {}
    found = []
    if isinstance(node, dict):
        ctx = {**context, **{k: node[k] for k in ("teacher", "method", "student") if isinstance(node.get(k), str)}}
        for v in node.values():
            found += collect_checks(v, ctx)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, dict) and "name" in item and "bound" in item:
                found.append({**context, **item})
            else:
                found += collect_checks(item, context)
    return found


def normalise(rec):
    """One check as a flat dict with the fields of kdbounds.checks.CheckRecord (missing ones filled)."""
    verdict = rec.get("verdict")
    if verdict is None:
        holds = rec.get("holds")
        verdict = "not_defined" if rec.get("bound") is None else (
            "holds (point)" if holds else "violated (point)" if holds is not None else "unknown")
    return {"pair": f"{rec.get('teacher', '?')} → {rec.get('student') or rec.get('method', '?')}",
            "name": rec.get("name"), "loss": rec.get("loss", "—"), "kind": rec.get("kind") or "unclassified",
            "verdict": verdict, "side": rec.get("side", "abs"), "bound": num(rec.get("bound")),
            "observed": num(rec.get("observed")), "se": num(rec.get("observed_se")), "z": num(rec.get("z")),
            "reason": rec.get("reason") or "", "family_size": num(rec.get("family_size") or 0),
            "assumption": rec.get("assumption") or rec.get("assumptions") or ""}


def read_checks(results):
    """Every check of a results tree, normalised; a check stored twice (per pair and in a run-wide list)
    is kept once, preferring the copy whose verdict was taken over the larger family (the final one)."""
    best = {}
    for rec in collect_checks(results):
        c = normalise(rec)
        key = (c["pair"], c["name"], c["loss"], c["side"])
        if key not in best or c["family_size"] > best[key]["family_size"]:
            best[key] = c
    return list(best.values())


# %% [markdown]
# ## The study's results
#
# Results of `experiments/sharpness_vs_gap.py` are looked for in `results/sharpness_vs_gap/<preset>/`
# relative to the working directory and to its parent (the repository root when the notebook runs from
# `notebooks/`). When there are none, the study runs here (`study.run`) into
# `cache_dir/sharpness_vs_gap/<key>`, where the key covers the configuration and a fingerprint of the
# training and measurement code; trained models go to the run cache `cache_dir/sharpness_vs_gap/cache`.

# %%
def _source_fingerprint() -> str:
    """SHA-256 over the measurement code the results depend on (study, checks, curvature)."""
    root = Path(kdbounds.__file__).parent
    files = [Path(study.__file__), root / "bound_checks.py", *sorted((root / "checks").glob("*.py")),
             *sorted((root / "curvature").glob("*.py"))]
    return bytes_sha256("".join(file_sha256(f) for f in files if f.is_file()).encode())


def find_results() -> Path | None:
    """The folder of an existing results.json of `experiments/sharpness_vs_gap.py`, or None."""
    if results_dir is not None:
        folder = Path(results_dir)
        if not (folder / "results.json").is_file():
            raise FileNotFoundError(f"results_dir={results_dir!r} holds no results.json; run "
                                    f"`python experiments/sharpness_vs_gap.py --preset {preset} --out {results_dir}`")
        return folder
    if smoke:
        return None
    for base in (Path("."), Path("..")):
        folder = base / "results" / "sharpness_vs_gap" / preset
        if (folder / "results.json").is_file():
            return folder
    return None


study_cache = Path(cache_dir) / "sharpness_vs_gap" / "cache"
found = find_results()
if found is not None:
    out_dir, origin = found, f"loaded from {found} (written by experiments/sharpness_vs_gap.py)"
else:
    teachers = study.PRESETS[run_preset].teachers[:n_teachers] if n_teachers else None
    run_cfg = study.preset(run_preset, teachers=teachers, **run_overrides)
    key = bytes_sha256(dumps_strict({"config": run_cfg.to_dict(), "code": code_fingerprint(),
                                     "measure": _source_fingerprint()}).encode())[:16]
    out_dir = Path(cache_dir) / "sharpness_vs_gap" / f"{run_preset}-{key}"
    if (out_dir / "results.json").is_file():
        origin = f"preset {run_preset!r} with overrides, reused from {out_dir}"
    else:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        study.run(run_cfg, out_dir, cache_root=study_cache, progress=False)
        origin = (f"preset {run_preset!r} with overrides, run here in {time.perf_counter() - wall0:.0f} s wall, "
                  f"{time.process_time() - cpu0:.0f} s CPU (this process)")
results = read_json(out_dir / "results.json")
cfg = results.get("config", {})
pairs = results.get("rows", [])
print(f"results: {origin}")
print(f"config: preset {cfg.get('preset')}, {cfg.get('teacher_arch')} -> {cfg.get('student_arch')}, "
      f"{len(cfg.get('teachers', []))} teachers, methods {cfg.get('methods')}, "
      + (f"D_T {cfg.get('n_t') or 'the rest'} / D_S {cfg['n_s']} images; " if cfg.get("n_s")
         else f"{cfg.get('n_per_class')} img/class; ")
      + f"{len(pairs)} teacher-student pairs; study time {results.get('seconds', float('nan')):.0f} s "
      f"on {results.get('environment', {}).get('device')}")

# %% [markdown]
# ### Sharpness and gaps per pair
#
# The table reads the study's per-pair rows (`results.csv`). `gen = L_test − L_train` on true labels (clipped
# cross-entropy, nats, and 0–1 loss), last epoch; `K̂` the predictive distillation divergence on the training
# inputs (nats). Sharpness: the top eigenvalue and trace of the teacher's training-loss Hessian, as the study
# measured them. Columns the results do not carry are shown as `—`.

# %%
SHARP_EIG = ("teacher_train_top_eig", "teacher_top_eig")
SHARP_TRACE = ("teacher_train_trace", "teacher_train_trace_value")
columns = [("teacher", "teacher", "s"), ("method", "method", "s"), ("teacher acc", "teacher_test_acc", ".3f"),
           ("student acc", "student_test_acc", ".3f"), ("λ_max(H)", SHARP_EIG, ".4g"), ("tr H", SHARP_TRACE, ".4g"),
           ("K̂", "divergence_train", ".4f"), ("gen(T) CE", "teacher_gap_clipped_ce", "+.4f"),
           ("gen(S) CE", "student_gap_clipped_ce", "+.4f"), ("gen(S)−gen(T) CE", "gap_diff_clipped_ce", "+.4f"),
           ("± SE", "gap_diff_clipped_ce_se", ".4f"), ("gen(S) 0–1", "student_gap_zero_one", "+.4f")]


print(" | ".join(c[0] for c in columns))
for r in pairs:
    print(" | ".join(fmt(cell_value(r, k), s) if s != "s" else str(cell_value(r, k)) for _, k, s in columns))

# %%
sharp_key = next((k for k in SHARP_EIG + SHARP_TRACE if any(r.get(k) is not None for r in pairs)), None)
gap_keys = [k for k in ("student_gap_clipped_ce", "student_gap_zero_one") if any(r.get(k) is not None for r in pairs)]
kendall = results.get("kendall", results.get("kendall_tests", []))
if sharp_key is not None and gap_keys:
    show(sharpness_vs_gap_figure(pairs, sharpness=sharp_key, gaps=gap_keys, kendall=kendall))
else:
    print("the results carry no teacher sharpness or student gap columns: nothing to plot")
defined = [t for t in kendall if t.get("tau") is not None]
for t in defined:
    print("Kendall τ: " + ", ".join(f"{k}={fmt(v) if isinstance(v, float) else v}" for k, v in t.items()))
if len(defined) < len(kendall):
    notes = sorted({str(t.get("note")) for t in kendall if t.get("tau") is None})
    print(f"Kendall τ undefined for {len(kendall) - len(defined)} of {len(kendall)} (group, sharpness, gap) "
          f"combinations: {'; '.join(notes)}")

# %% [markdown]
# ## The Hessian spectrum of one teacher
#
# The teacher with the largest measured sharpness is reloaded from the study's run cache and its
# training-loss Hessian `H = ∇²L_train(w_T)` (clipped cross-entropy with the study's `p_min`, eval-mode
# BatchNorm, on the kernel sample the study measured it on: `study.kernel_sample`) is probed with three estimators of
# `kdbounds.curvature`, each from Hessian–vector products only:
# - **SLQ density**: `slq_probes` Lanczos runs of `slq_steps` steps from Rademacher probes; each gives Gauss
#   quadrature nodes (Ritz values) and weights, broadened by a Gaussian into a density of eigenvalues;
# - **top eigenvalues**: Lanczos with full reorthogonalisation; each Ritz value has a residual bound
#   `‖H y − θ y‖`, so the true eigenvalue lies within it;
# - **trace**: Hutchinson `mean zᵀHz` over Rademacher probes, with standard error `s/√m`.

# %%
CACHES = [study_cache, out_dir.parent / "cache", out_dir.parent.parent / "cache", Path("results") / "cache",
          Path("..") / "results" / "cache"]


def find_run(run_name: str | None, recipe: dict) -> tuple[Path | None, str]:
    """The teacher's run folder in the run caches this notebook knows about: by the name the results record
    (`teacher_run`), else (results without it) the newest finished run trained with the teacher's recipe."""
    if run_name:
        hit = next((c / run_name for c in CACHES if (c / run_name / "result.json").is_file()), None)
        if hit is not None:
            return hit, "recorded in the results"
    want = {"arch": cfg.get("teacher_arch"), "method": "ce", "lr": recipe.get("lr"),
            "batch_size": recipe.get("batch_size"), "weight_decay": recipe.get("weight_decay"),
            "epochs": cfg.get("teacher_epochs"), "seed": cfg.get("seed")}
    hits = [f for c in CACHES if c.is_dir() for f in c.glob(f"ce-{want['arch']}-*")
            if (r := load_cached(f)) is not None and all(r.config.get(k) == v for k, v in want.items() if v is not None)]
    if not hits:
        return None, ""
    return max(hits, key=lambda f: (f / "result.json").stat().st_mtime), f"matched by recipe among {len(hits)} run(s)"


rank_key = next((k for k in SHARP_EIG + SHARP_TRACE if any(r.get(k) is not None for r in pairs)), None)
by_teacher = {r["teacher"]: r for r in pairs}  # one row per teacher suffices (same teacher, same curvature)
chosen = max(by_teacher.values(), key=lambda r: num(r.get(rank_key))) if rank_key else next(iter(by_teacher.values()))
recipe = next((t for t in cfg.get("teachers", []) if t.get("name") == chosen["teacher"]), {})
run_folder, how = find_run(chosen.get("teacher_run"), recipe)
if run_folder is None:
    raise FileNotFoundError(f"teacher {chosen['teacher']!r} (run {chosen.get('teacher_run')!r}) not found in the run "
                            f"caches {[str(c) for c in CACHES]}; pass results_dir of a study run together with its "
                            "cache (results/sharpness_vs_gap/cache), or results_dir=None to run the study here")
teacher_run = load_cached(run_folder)
teacher = load_checkpoint_model(teacher_run.paths["model"], map_location="cpu").eval()
n_params = sum(p.numel() for p in teacher.parameters() if p.requires_grad)
print(f"teacher {chosen['teacher']} ({cfg.get('teacher_arch')}, {n_params:,} parameters), run {run_folder.name} ({how}), "
      f"test accuracy {fmt(num(chosen.get('teacher_test_acc')), '.3f')}")

# %%
# the study's own kernel sample (its curvature was measured there): `curvature_per_class` images per class of the
# students' training data (with a D_T/D_S split, of D_S) unless `spectrum_per_class` asks for another size
(x, y), _ = study.kernel_sample({**cfg, "curvature_per_class": spectrum_per_class or cfg.get("curvature_per_class", 10)})
bs = int(cfg.get("curvature_batch_size", 100))
batches = [(x[i:i + bs], y[i:i + bs]) for i in range(0, len(y), bs)]
p_min = float(cfg.get("p_min", 1e-3))


def clipped_ce(logits, labels):
    """Mean clipped cross-entropy min(−log p_y, ln(1/p_min)), the study's training loss for curvature."""
    ce = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    return torch.clamp(ce, max=math.log(1.0 / p_min)).mean()


H = HessianOperator(teacher, clipped_ce, batches)
t0, c0 = time.perf_counter(), time.process_time()
trace = hutchinson_trace(H, trace_probes, seed=seed)
eig = top_eigenvalues(H, top_k, which="largest", max_matvecs=top_matvecs, seed=seed + 1)
slq = spectral_density(H, num_probes=slq_probes, num_steps=slq_steps, seed=seed + 2)
slq_trace = slq.trace()
spec_seconds, spec_cpu = time.perf_counter() - t0, time.process_time() - c0
print(f"{len(y)} training images, {H.shape[0]:,} parameters; {H.num_matvecs} Hessian-vector products in "
      f"{spec_seconds:.0f} s wall, {spec_cpu:.0f} s CPU")
print(f"Hutchinson trace {trace.value:.4g} ± {trace.stderr:.2g} (SE, {trace.n_samples} probes); "
      f"SLQ trace {slq_trace.value:.4g} ± {slq_trace.stderr:.2g} (SE over {slq_trace.n_samples} runs)")
print("top eigenvalues (± Lanczos residual): " + ", ".join(f"{v:.4g} ± {r:.1g}" for v, r in
                                                         zip(eig.eigenvalues, eig.residuals))
      + f"; converged: {eig.converged} after {eig.n_matvecs} steps")

# %%
grid = slq.grid(2000)
show(spectrum_figure(grid, slq.density(grid), eig.eigenvalues, eig.residuals, slq.nodes, slq.weights,
                     title=f"Hessian spectrum of teacher {chosen['teacher']} ({slq_probes} SLQ runs × {slq_steps} steps)"))

# %%
study_eig = num(chosen.get(first_key(chosen, *SHARP_EIG) or ""))
study_tr = num(chosen.get(first_key(chosen, *SHARP_TRACE) or ""))
study_tr_se = num(chosen.get("teacher_train_trace_se"))
tr_z = (trace.value - study_tr) / math.hypot(trace.stderr, study_tr_se) if math.isfinite(study_tr_se) else math.nan
flat_tol = 0.01 * eig.eigenvalues[0]  # "near zero": within 1% of the top eigenvalue
flat_mass = float(np.mean(np.sum(slq.weights * (np.abs(slq.nodes) <= flat_tol), axis=1)))
neg_mass = float(np.mean(np.sum(slq.weights * (slq.nodes < -flat_tol), axis=1)))
print(f"study (fewer probes, same subset): top eigenvalue {fmt(study_eig, '.7g')}, trace {fmt(study_tr)} ± {fmt(study_tr_se, '.2g')}")
print(f"here: top eigenvalue {eig.eigenvalues[0]:.7g}, trace {trace.value:.4g} ± {trace.stderr:.2g}; "
      f"difference of the traces = {fmt(tr_z, '+.2f')} combined SE")
concentration = eig.eigenvalues[0] / (trace.value / H.shape[0]) if trace.value > 0 else math.nan
print(f"SLQ: spectral mass within ±{flat_tol:.3g} of zero (1% of the top eigenvalue) {flat_mass:.3f}, "
      f"below −{flat_tol:.3g} {neg_mass:.3f}; "
      f"top eigenvalue / (trace / p) = {fmt(concentration, '.3g')}")
# Lanczos Ritz values approach the top eigenvalue from below: fewer steps (the study) give a smaller value.
tol = eig.residuals[0] + 1e-6 * abs(eig.eigenvalues[0])
eig_note = ("which agrees with this notebook's value within the Lanczos residual"
            if abs(study_eig - eig.eigenvalues[0]) <= tol else
            "below this notebook's value, as expected: Ritz values approach the top eigenvalue from below and "
            "the study ran fewer Lanczos steps" if study_eig < eig.eigenvalues[0] else
            "above this notebook's value (another start vector found a larger eigenvalue: this one is not converged)"
            if math.isfinite(study_eig) else "not recorded in these results")

# %% [markdown]
# ## Every check, with its classification and its uncertainty
#
# Each record compares a bound `B` with the quantity it bounds (`observed`, with standard error). Its **kind**
# says what the comparison is worth: a *certificate* (hypotheses hold, about the population), a
# *demonstration* (hypotheses hold exactly, about the sample at hand), *conditional* (valid if a named
# assumption holds) or a *proxy* (no theorem behind it). Its **verdict** (theory.md §6) is taken with the
# uncertainty of the observed side over the whole family of checks of the run: *holds* when `B ≥ |d̂| + z·SE`,
# *violated* when the bound is below the estimate by more than that, else *inconclusive*; *not_defined* when
# the theorem does not apply (with a reason).
#
# The records are read from `results.json` without assuming where they sit: every list of objects with a
# `name` and a `bound` is a list of checks. Results written before the study used `kdbounds.checks` carry
# no `kind` and no `verdict`; they are shown as kind `unclassified` and with the point-estimate comparison
# only (`holds (point)` / `violated (point)`), which is not a verdict with uncertainty.

# %%
checks = read_checks(results)
schema = "kdbounds.checks records (kind and verdict)" if any(c["kind"] != "unclassified" for c in checks) else \
    "legacy bound checks (no kind, point-estimate comparison only)"
print(f"{len(checks)} check records ({schema})")
print(f"{'pair':28s} {'check':26s} {'loss':14s} {'kind':13s} {'verdict':17s} {'bound':>10s} {'observed':>10s} {'± SE':>8s}  note")
for c in checks:
    note = c["reason"] if c["verdict"] == "not_defined" else ""
    print(f"{c['pair'][:28]:28s} {c['name'][:26]:26s} {c['loss'][:14]:14s} {c['kind']:13s} {c['verdict']:17s} "
          f"{fmt(c['bound'], '10.4g')} {fmt(c['observed'], '+10.4f')} {fmt(c['se'], '8.4f')}  {note[:60]}")

# %% [markdown]
# The first figure draws every defined two-sided check as one point: the bound against the observed
# `|gen(S) − gen(T)|`, log–log, with the interval `|d̂| ± z·SE` its verdict was decided on, coloured by that
# verdict; points below the diagonal have a bound smaller than the estimate (violated when the whole interval is
# above the bound). The second counts the verdicts of each check over the pairs, in the same colours.

# %%
# the run-level records (`checks`); results written before they were stored once kept them per pair
records = results.get("checks") or [c for r in results.get("reports", []) for c in r.get("records", [])]
if any("verdict" in c for c in records):
    show(bound_vs_observed_figure(records))
else:
    print("these results carry no kdbounds.checks records (an older schema): no bound-vs-observed figure")
if checks:
    show(verdict_counts_figure(checks))

# %%
from collections import Counter

counts = Counter((c["kind"], c["verdict"]) for c in checks)
kinds = list(dict.fromkeys(c["kind"] for c in checks))
verdicts = list(dict.fromkeys(c["verdict"] for c in checks))
print(f"{'kind':14s} " + " ".join(f"{v:>17s}" for v in verdicts))
for k in kinds:
    print(f"{k:14s} " + " ".join(f"{counts.get((k, v), 0):17d}" for v in verdicts))

# %%

by_name = {}
for c in checks:
    by_name.setdefault((c["name"], c["kind"]), Counter())[c["verdict"]] += 1
check_lines = "\n".join(f"- `{n}` ({k}): " + ", ".join(f"{v} {cnt}" for v, cnt in sorted(cn.items()))
                        for (n, k), cn in sorted(by_name.items()))
classified = any(c["kind"] != "unclassified" for c in checks)
violated_with_hyp = [c for c in checks if c["verdict"] == "violated" and c["kind"] in ("certificate", "demonstration")]
if not classified:
    verdict_line = ("These results predate the study's move to `kdbounds.checks`: no check carries a classification or "
                    "a verdict with uncertainty, so none of them is evidence for or against a theorem; rerun the "
                    "study to get them.")
elif violated_with_hyp:
    verdict_line = (f"{len(violated_with_hyp)} check(s) whose hypotheses hold (certificate or demonstration) are "
                    "violated: a finding to investigate.")
else:
    verdict_line = "No check whose hypotheses hold (certificate or demonstration) is violated."
if classified:
    verdict_line += (" Conditional and proxy checks speak only under their named assumptions; a *holds* there is "
                     "not evidence for the theorem.")
spread = (max(num(r.get(rank_key)) for r in by_teacher.values()) / min(num(r.get(rank_key)) for r in by_teacher.values())
          if rank_key and len(by_teacher) > 1 else math.nan)
def plural(n, word):
    return f"{n} {word}{'' if n == 1 else 's'}"


spread_line = (f"Across teachers the sharpness `{rank_key}` varies by a factor {spread:.2f}." if math.isfinite(spread)
               else "With one teacher there is no spread of sharpness to relate to the gaps.")
kendall_line = (f"Kendall's τ is defined for {len(defined)} (group, sharpness, gap) combinations, listed above."
                if defined else f"With {plural(len(by_teacher), 'teacher')} no rank correlation between sharpness and "
                "gap can be tested here (it needs at least three).")

display(Markdown(f"""
### What the numbers of this run say

**Results:** {origin}; {plural(len(pairs), 'teacher–student pair')} from {plural(len(by_teacher), 'teacher')}
({cfg.get('teacher_arch')} → {cfg.get('student_arch')}, {cfg.get('n_per_class')} training images per class).
{spread_line}

**Spectrum of teacher {chosen['teacher']}** ({H.shape[0]:,} parameters, {len(y)} training images,
{H.num_matvecs} Hessian–vector products, {spec_cpu:.0f} s CPU): top eigenvalue {eig.eigenvalues[0]:.4g}
(Lanczos residual {eig.residuals[0]:.1g}, {'converged' if eig.converged else 'not converged'}), trace
{trace.value:.4g} ± {trace.stderr:.2g} (Hutchinson, {trace.n_samples} probes) and {slq_trace.value:.4g} ±
{slq_trace.stderr:.2g} (SLQ). The top eigenvalue is {fmt(concentration, '.3g')}× the mean eigenvalue `tr H / p`
(the curvature sits in few directions when this is large). A fraction {flat_mass:.3f} of the SLQ spectral mass
lies within ±{flat_tol:.3g} of zero (1% of the top eigenvalue: flat directions) and {neg_mass:.3f} below
−{flat_tol:.3g} (clearly negative curvature: the weights are not at an exact minimum of the clipped loss).
The study's own measurement of the same teacher on the same images gave top eigenvalue {fmt(study_eig, '.7g')}
(here {eig.eigenvalues[0]:.7g}), {eig_note}, and trace
{fmt(study_tr)} ± {fmt(study_tr_se, '.2g')}; the two trace estimates differ by {fmt(tr_z, '+.2f')} combined
standard errors.

**Checks** ({schema}), by name and kind:

{check_lines}

{verdict_line} {kendall_line}
{"This is a smoke run (tiny sizes, untrained networks): the numbers only show that the pipeline runs." if smoke else ""}
"""))
