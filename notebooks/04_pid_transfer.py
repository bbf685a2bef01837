# ---
# jupyter:
#   kdbounds:
#     needs:
#     - cifar10
# ---

# %% [markdown]
# # What was transferred? Redundancy and unique information over distillation (PID)
#
# **Source:** this notebook is generated from `notebooks/04_pid_transfer.py` (jupytext percent format,
# the file to edit). The outputs below come from a full run of
#
#     python notebooks/build.py 04_pid_transfer
#
# with the real CIFAR-10 data set found through `KDBOUNDS_DATA` (see `kdbounds.data.load_cifar`).
#
# **What it shows.** A student distilled from a teacher ends up knowing part of what the teacher knows
# about the label `Y`. The partial information decomposition (PID, BROJA definition) of
# `I(Y; T, S)` splits that into
# - `Red(Y: T, S)`: label information that teacher and student features share (*transferred*),
# - `Uni(Y: T \ S)`: label information only the teacher's features carry (*still to distil*),
# - `Uni(Y: S \ T)` and `Syn(Y: T, S)`,
#
# measured on held-out test images after discretising each network's last feature map
# (PCA, then k-means; methods.md §3). We track `Red` and `Uni(T\S)` after every epoch for three
# distillation methods (KD, VID, RID) and compare them with the same quantities on shuffled labels,
# which estimate the plug-in bias of the discretised estimator.
#
# The run is small (ResNet-8 teacher and students, a few hundred training images, a few epochs) so that
# it finishes in a couple of minutes on a CPU; the curves are cached under `cache_dir` and re-read on
# the next run. Larger settings: `experiments/pid_transfer.py --preset cpu|gpu`.

# %% tags=["parameters"]
# Parameters (papermill-style cell). KDBOUNDS_NOTEBOOK_SMOKE=1 in the environment forces smoke = True.
smoke = False
teacher_arch, student_arch = "resnet8", "resnet8"
n_per_class = 100        # CIFAR-10 training images per class (teacher and students)
teacher_epochs = 6
student_epochs = 5
every = 1                # PID every `every` epochs
batch_size = 64
methods = ("kd", "vid", "rid")
rid_kwargs = {"q": 2, "r": 0.25, "lam1": 1.0, "lam2": 10.0, "lr_schedule": "config"}  # RID cycle q, ratio r
pid_per_class = 60       # held-out test images per class for the PID (half fit the discretiser, half histogram)
acc_per_class = 50       # test images per class for the accuracies
n_components, n_clusters = 10, 10
n_shuffle = 3            # label shuffles for the bias floor
n_boot = 20              # bootstrap resamples of the evaluation images for the 95 % intervals of Red and Uni
seed = 0
cache_dir = None         # None: $KDBOUNDS_NOTEBOOK_CACHE, else results/notebooks (relative to the working directory)

# %%
import os

_env = os.environ.get("KDBOUNDS_NOTEBOOK_SMOKE", "")
if _env not in ("", "0", "1"):
    raise ValueError(f"KDBOUNDS_NOTEBOOK_SMOKE: expected '0' or '1', got {_env!r}")
smoke = smoke or _env == "1"
if smoke:  # same code path, tiny sizes: for CI
    n_per_class, teacher_epochs, student_epochs, pid_per_class, acc_per_class, n_shuffle, n_boot = 10, 1, 2, 20, 10, 2, 2
if cache_dir is None:
    cache_dir = os.environ.get("KDBOUNDS_NOTEBOOK_CACHE") or os.path.join("results", "notebooks")
print(f"smoke={smoke}  {teacher_arch} -> {student_arch}  {n_per_class} img/class  teacher {teacher_epochs} ep, "
      f"students {student_epochs} ep  methods={methods}  PID on {pid_per_class} test img/class, {n_boot} bootstrap "
      f"resamples  cache_dir={cache_dir}")

# %%
import io
import time
import warnings
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

warnings.filterwarnings("ignore", message="Solution may be inaccurate")  # solver status is kept per point
warnings.filterwarnings("ignore", message="BROJA PID: solver")
warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm.auto in a kernel without ipywidgets


def show(fig):
    """Display `fig` as one PNG output (the figures are matplotlib Figure objects, not pyplot's)."""
    from IPython.display import Image, display

    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    display(Image(data=buf.getvalue(), format="png"))

# %%
# Every kdbounds import of this notebook is in this one cell.
from kdbounds.io import atomic_write_json, bytes_sha256, dumps_strict, read_json
from kdbounds.data import load_cifar, stratified_subset
from kdbounds.distill import TrainConfig, available_methods, train
from kdbounds.figures import pid_curves_figure
from kdbounds.studies.pid_transfer import PIDTracker
from kdbounds.runs.cache import code_fingerprint, train_cached

# %%
missing = [m for m in methods if m not in available_methods()]
if missing:
    raise ValueError(f"methods: {missing} not registered; available: {available_methods()}")
plt.rcParams.update({"figure.dpi": 90, "axes.grid": True, "grid.alpha": 0.3})

# %% [markdown]
# ## Data
#
# Training images: a stratified subset of the CIFAR-10 training split. Held-out images: a stratified
# subset of the test split, split in two halves: the discretiser (PCA + k-means) is fitted on the first,
# the PID histogram is taken on the second. Accuracies use another stratified test subset.

# %%
train_x, train_y = load_cifar("cifar10", split="train")
test_x, test_y = load_cifar("cifar10", split="test")
pid_idx = np.random.default_rng(seed).permutation(stratified_subset(test_y, 2 * pid_per_class, seed=seed))
half = pid_idx.size // 2
fit_x, fit_y = test_x[pid_idx[:half]], test_y[pid_idx[:half]]
ev_x, ev_y = test_x[pid_idx[half:]], test_y[pid_idx[half:]]
acc_idx = stratified_subset(test_y, acc_per_class, seed=seed + 1)
data = (train_x, train_y, test_x[acc_idx], test_y[acc_idx])
print(f"train split {train_x.shape}, PID fit {fit_x.shape[0]} / eval {ev_x.shape[0]} test images, "
      f"accuracy on {acc_idx.size} test images")

# %% [markdown]
# ## Train (or reuse) the teacher and the students
#
# The key of the cached curves covers every setting above, the data subsets and a fingerprint of the
# training code, so a changed setting or a fixed bug never reuses stale curves.

# %%
settings = dict(teacher_arch=teacher_arch, student_arch=student_arch, n_per_class=n_per_class,
                teacher_epochs=teacher_epochs, student_epochs=student_epochs, every=every, batch_size=batch_size,
                methods=list(methods), rid_kwargs=rid_kwargs, pid_per_class=pid_per_class,
                acc_per_class=acc_per_class, n_components=n_components, n_clusters=n_clusters,
                n_shuffle=n_shuffle, n_boot=n_boot, seed=seed)
key = bytes_sha256(dumps_strict({"settings": settings, "pid_idx": pid_idx.tolist(), "acc_idx": acc_idx.tolist(),
                                 "code": code_fingerprint()}).encode())[:16]
cache = Path(cache_dir) / "pid_transfer"
curves_file = cache / f"curves-{key}.json"


def base_config(arch, epochs, run_seed, eval_every=1):
    return TrainConfig(arch=arch, dataset="cifar10", epochs=epochs, batch_size=batch_size, seed=run_seed,
                       n_per_class=n_per_class, device="cpu", eval_every=eval_every)


def run_all():
    wall0, cpu0 = time.perf_counter(), time.process_time()
    teacher = train_cached(base_config(teacher_arch, teacher_epochs, 1000, eval_every=teacher_epochs), cache / "cache",
                           data=data, progress=False)
    print(f"teacher {teacher_arch}: test accuracy {teacher.final['test_acc']:.3f}")
    out = {"teacher_test_acc": teacher.final["test_acc"], "rows": [], "student_test_acc": {}}
    for m in methods:
        tracker = PIDTracker(fit_x, fit_y, ev_x, ev_y, every=every, n_boot=n_boot, n_shuffle=n_shuffle, seed=seed,
                             n_components=n_components, n_clusters=n_clusters)
        cfg = replace(base_config(student_arch, student_epochs, seed), method=m, teacher_ckpt=teacher.paths["model"],
                      method_kwargs=rid_kwargs if m == "rid" else {})
        res = train(cfg, cache / "students" / key / m, callbacks=[tracker], data=data, progress=False, resume=False)
        acc = {h["epoch"]: h.get("test_acc") for h in res.history}
        out["student_test_acc"][m] = res.final["test_acc"]
        out["rows"] += [{"method": m, **r, "test_acc": acc.get(r["epoch"])} for r in tracker.records]
        print(f"student {m}: test accuracy {res.final['test_acc']:.3f}; PID at epochs {[r['epoch'] for r in tracker.records]}")
    out["wall_seconds"], out["cpu_seconds"] = time.perf_counter() - wall0, time.process_time() - cpu0
    print(f"trained and measured in {out['wall_seconds']:.0f} s wall, {out['cpu_seconds']:.0f} s CPU (this process)")
    return out


if curves_file.is_file():
    curves = read_json(curves_file)
    print(f"reusing cached curves {curves_file}")
else:
    curves = {"settings": settings, "key": key, **run_all()}
    atomic_write_json(curves_file, curves)
    print(f"wrote {curves_file}")
rows = curves["rows"]
print(f"computed in {curves['wall_seconds']:.0f} s wall, {curves['cpu_seconds']:.0f} s CPU; test accuracy: teacher "
      f"{curves['teacher_test_acc']:.3f}, " + ", ".join(f"{m} {a:.3f}" for m, a in curves["student_test_acc"].items()))

# %% [markdown]
# ## Redundancy and unique information over training
#
# Left `Red(Y: T, S)`, middle `Uni(Y: T \ S)`, each with its basic-bootstrap 95 % interval over the evaluation
# images (`n_boot` resamples, a rough interval; the basic bootstrap corrects the plug-in bias, so the vertical bar
# need not contain the point); dotted with a band: the same on shuffled labels (mean ± 2 sd over the shuffles), the
# plug-in bias floor of this sample size. All in nats (natural-log mutual information). Right: the students'
# test accuracy with its exact binomial 95 % interval.
# RID trains in alternating phases (theory in `kdbounds/distill/rid.py`): in its phase-1 epochs only the
# teacher-side filters learn and the student is frozen, so its curves are flat across those epochs.

# %%
show(pid_curves_figure(rows, methods, teacher_acc=curves["teacher_test_acc"], acc_n=int(acc_idx.size)))

# %%
header = ("method", "epoch", "Red", "Red_shuf", "Uni(T\\S)", "Uni(S\\T)", "Syn", "I(Y;T)", "I(Y;S)", "acc", "status")
print("{:6s} {:>5s} {:>7s} {:>8s} {:>9s} {:>9s} {:>7s} {:>7s} {:>7s} {:>6s} {}".format(*header))
for r in sorted(rows, key=lambda r: (methods.index(r["method"]), r["epoch"])):
    print(f"{r['method']:6s} {r['epoch']:5d} {r['redundancy']:7.3f} {r['redundancy_shuffle_mean']:8.3f} "
          f"{r['unique_t']:9.3f} {r['unique_s']:9.3f} {r['synergy']:7.3f} {r['mi_yt']:7.3f} {r['mi_ys']:7.3f} "
          f"{r['test_acc'] if r['test_acc'] is not None else float('nan'):6.3f} {r['pid_status']}")

# %%
from IPython.display import Markdown, display

final = {m: max((r for r in rows if r["method"] == m), key=lambda r: r["epoch"]) for m in methods}
first = {m: min((r for r in rows if r["method"] == m), key=lambda r: r["epoch"]) for m in methods}
top = max(final[m]["redundancy"] for m in methods)
spread = top - min(final[m]["redundancy"] for m in methods)
floor_lo = min(r["redundancy_shuffle_mean"] for r in rows)
floor_hi = max(r["redundancy_shuffle_mean"] for r in rows)
leaders = [m for m in methods if top - final[m]["redundancy"] <= floor_hi]  # within one floor of the best
if len(leaders) == 1:
    verdict = f"The method with the most transferred information (largest final Red) in this run is **{leaders[0]}**"
else:
    verdict = (f"**{', '.join(leaders)}** transfer the most information in this run, indistinguishable here "
               "(their final Red values lie within the largest shuffled-label floor of each other)")
lines = []
for m in methods:
    f, s = final[m], first[m]
    above = f["redundancy"] - f["redundancy_shuffle_mean"]
    lines.append(f"- **{m}**: Red {s['redundancy']:.3f} → {f['redundancy']:.3f} nats (epoch {s['epoch']} → {f['epoch']}), "
                 f"{above:+.3f} nats above its shuffled-label floor; Uni(T\\S) {s['unique_t']:.3f} → {f['unique_t']:.3f}; "
                 f"share of the teacher's I(Y;T) = {f['mi_yt']:.3f} that is shared with the student: "
                 f"{f['redundancy'] / f['mi_yt'] if f['mi_yt'] > 0 else float('nan'):.0%}; test accuracy {f['test_acc']:.3f}.")
display(Markdown(f"""
### What the numbers of this run say

Teacher test accuracy {curves['teacher_test_acc']:.3f}. At the last measured epoch:

{chr(10).join(lines)}

{verdict}
(final Red by method: {", ".join(f"{m} {final[m]['redundancy']:.3f}" for m in methods)}; spread
{spread:.3f} nats). The shuffled-label floor of Red, the value the estimator gives with no real
dependence, spans {floor_lo:.3f}–{floor_hi:.3f} nats over all points with {ev_x.shape[0]} evaluation images and
{n_clusters}×{n_clusters} clusters; the spread between methods is {spread / floor_hi if floor_hi > 0 else float('inf'):.1f}× the largest floor.
These are single runs (one seed; the bootstrap intervals cover the evaluation images only, not training):
differences of the order of the floor are not evidence.
{"This is a smoke run (tiny sizes): the numbers only show that the pipeline runs." if smoke else ""}
"""))
