"""Bad-input table, issue 26 (leftovers): the measurement and math doors that take data or tensors.

Doors: ``kdbounds.curvature`` (``HessianOperator``, ``GapHessianOperator``, ``dense_hessian``, the
eigenvalue / trace / density estimators and the operators' products), ``kdbounds.divergence``
(``predictive_divergence``, ``divergence_from_logits``, ``summarize_per_example``, the Laplace and
Gaussian closed forms), ``kdbounds.pid`` (BROJA, Gaussian PID and MI, the representation pipeline),
``linear_gaussian`` (kernels, KL, gaps) and ``kdbounds.checks`` (``evaluate_pair``, the losses, the
verdicts, the Kendall tests, the teacher's curvature). Inputs a careless user gives: float64 / uint8 /
integer images, a 1-channel image for a 3-channel network, labels out of range, negative, float, bool
or 2-D, NaN/inf, empty data, x and y of different lengths, zero or negative sizes, temperatures and
probabilities, covariances that are not positive definite, matrices of mismatched shapes.

Each case asserts the error type, that the message names the argument (a whole word, case-insensitive),
and that the refusal comes before any long work, measured two ways that do not depend on how busy the
machine is (see :func:`bad_input_helpers.refusal`): the CPU time this process spent (``< 0.5 s``), and,
for every door that runs a network, how many input rows the network saw before the refusal (a counting
wrapper: a refusal after the whole data set was evaluated fails even when that is fast here).
Oracle: each argument's documented domain.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from bad_input_helpers import CPU_LIMIT_S, names_argument, refusal
from counted import Counted
from kdbounds.checks import (assign_verdicts, evaluate_pair, frobenius_upper_limit, gibbs_bound, gibbs_classifier,
                             holm_reject, kendall_tau_b, kernel_constants, kernel_std_from_loss_increase, loss_gap,
                             make_record, mean_estimate, measure_teacher_curvature, one_sided_pvalues,
                             paired_gap_difference, per_example_losses, permutation_kendall, recipe_kendall,
                             theorem1_sigma_n, theorem2_central)
from kdbounds.curvature import (GapHessianOperator, HessianOperator, MatrixOperator, dense_hessian,
                                diagonal_estimate, frobenius_norm_sq, gradient_norm, hutchinson_trace,
                                hutchpp_trace, lanczos, power_iteration, spectral_density, top_eigenvalues)
from kdbounds.divergence import (divergence_from_logits, gaussian_predictive_divergence, laplace_divergence,
                                 predictive_divergence, summarize_per_example)
from kdbounds.pid import (broja_pid, broja_pid_from_counts, fit_discretizer, gaussian_mi, gaussian_pid,
                          joint_counts, kmeans, pid_of_representations)
from kdbounds._records import Estimate

NAN, INF = math.nan, math.inf


# ---------------------------------------------------------------------------------------------
# fixtures (module level: built once; each is small)
# ---------------------------------------------------------------------------------------------
def _net(seed: int, classes: int = 10) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(),
                        nn.Linear(2 * 8 * 8, classes))
    net.eval()
    return Counted(net)


TEACHER, STUDENT, FIVE = _net(0), _net(1), _net(2, classes=5)
G = torch.Generator().manual_seed(0)
X = torch.randn(12, 3, 8, 8, generator=G)
Y = torch.arange(12) % 10
X2 = torch.randn(12, 3, 8, 8, generator=G)
Y2 = (torch.arange(12) + 3) % 10
BATCH = 4  # every network door gets 3 batches of 4 rows: a refusal after the first batch sees > 4 rows


def batches(x=X, y=Y):
    return [(x[i:i + BATCH], y[i:i + BATCH]) for i in range(0, len(x), BATCH)]


def nan_at_end(x=X):
    x = x.clone()
    x[-1, 0, 0, 0] = NAN
    return x


LOGITS_S = torch.randn(12, 10, generator=G)
LOGITS_T = torch.randn(12, 10, generator=G)
SPD = torch.tensor([[2.0, 0.5, 0.0, 0.0], [0.5, 2.0, 0.3, 0.0], [0.0, 0.3, 1.5, 0.2], [0.0, 0.0, 0.2, 1.0]],
                   dtype=torch.float64)
OP = MatrixOperator(SPD)
NOT_PD = np.array([[1.0, 2.0], [2.0, 1.0]])
COV3 = np.array([[1.0, 0.5, 0.3], [0.5, 1.0, 0.2], [0.3, 0.2, 1.0]])
P3 = np.full((2, 2, 2), 1 / 8)
RNG = np.random.default_rng(0)
FEAT = RNG.standard_normal((30, 6))
LAB = np.arange(30) % 3


def est(value=0.1, se=0.01, n=100, lo=0.05, hi=0.15):
    return Estimate(value, se, n, lo, hi, 0.95)


# ---------------------------------------------------------------------------------------------
# the cases: (id, thunk, exception type, argument named, words in the message or None, max rows)
# ``max rows``: how many input rows the networks may see before refusing (None: no network involved)
# ---------------------------------------------------------------------------------------------
def H(data=None, **kw):
    return lambda: HessianOperator(TEACHER, F.cross_entropy, batches() if data is None else data, **kw)


CURVATURE = [
    ("HessianOperator x float64", H(batches(X.double())), TypeError, "data", "float64", 0),
    ("HessianOperator x uint8", H(batches((X.abs() * 50).to(torch.uint8))), ValueError, "data", "dtype", BATCH),
    ("HessianOperator x int64", H(batches(X.long())), ValueError, "data", "dtype", BATCH),
    ("HessianOperator x 1-channel", H(batches(X[:, :1])), ValueError, "data", "shape", BATCH),
    ("HessianOperator x 16x16", H(batches(torch.randn(12, 3, 16, 16))), ValueError, "data", "shape", BATCH),
    ("HessianOperator x flat", H(batches(X.flatten(1))), ValueError, "data", "shape", BATCH),
    ("HessianOperator labels y+10", H(batches(y=Y + 10)), ValueError, "data", "class", BATCH),
    ("HessianOperator labels negative", H(batches(y=Y - 1)), ValueError, "data", "class", BATCH),
    ("HessianOperator labels float", H(batches(y=Y.float())), ValueError, "data", None, BATCH),
    ("HessianOperator labels 2-D", H(batches(y=Y.view(12, 1))), ValueError, "data", None, BATCH),
    ("HessianOperator x NaN in the last batch", H(batches(nan_at_end())), ValueError, "data", "non-finite", 0),
    ("HessianOperator x inf", H(batches(X.masked_fill(X > 1.5, INF))), ValueError, "data", "non-finite", 0),
    ("HessianOperator soft targets NaN",
     lambda: HessianOperator(TEACHER, F.mse_loss, batches(y=torch.full((12, 10), NAN))), ValueError, "data",
     "non-finite", 0),
    ("HessianOperator x and y lengths differ", H((X, Y[:5])), ValueError, "data", "same", 0),
    ("HessianOperator batch lengths differ", H([(X[:4], Y[:3])]), ValueError, "data", "targets", 0),
    ("HessianOperator empty", H((X[:0], Y[:0])), ValueError, "data", "no examples", 0),
    ("HessianOperator data None", lambda: HessianOperator(TEACHER, F.cross_entropy, None), TypeError, "data", None, 0),
    ("HessianOperator data x alone", H(X), TypeError, "data", None, 0),
    ("HessianOperator data a string", H("cifar10"), TypeError, "data", None, 0),
    ("HessianOperator data []", H([]), ValueError, "data", None, 0),
    ("HessianOperator data dict", H({"x": X, "y": Y}), TypeError, "data", None, 0),
    ("HessianOperator a batch is not a pair", H([(X, Y), X]), TypeError, "data", None, 0),
    ("HessianOperator model a string", lambda: HessianOperator("resnet8", F.cross_entropy, (X, Y)), TypeError,
     "model", None, 0),
    ("HessianOperator loss_fn not callable", lambda: HessianOperator(TEACHER, 3, (X, Y)), TypeError, "loss_fn",
     None, 0),
    ("HessianOperator output_fn not callable", H(output_fn=3), TypeError, "output_fn", None, 0),
    ("HessianOperator backend=gpu", H(backend="gpu"), ValueError, "backend", None, 0),
    ("HessianOperator mode=fast", H(mode="fast"), ValueError, "mode", None, 0),
    ("HessianOperator vmap_chunk_size=0", H(vmap_chunk_size=0), ValueError, "vmap_chunk_size", None, 0),
    ("HessianOperator vmap_chunk_size=1.5", H(vmap_chunk_size=1.5), ValueError, "vmap_chunk_size", None, 0),
    ("HessianOperator reuse_graph='yes'", H(reuse_graph="yes"), TypeError, "reuse_graph", None, 0),
    ("HessianOperator compile=1", H(compile=1), TypeError, "compile", None, 0),
    ("HessianOperator graph_memory_limit=-1", H(graph_memory_limit=-1), ValueError, "graph_memory_limit", None, 0),
    ("HessianOperator graph_memory_limit=nan", H(graph_memory_limit=NAN), ValueError, "graph_memory_limit", None, 0),
    ("HessianOperator dtype=int32", H(dtype=torch.int32), TypeError, "dtype", None, 0),
    ("HessianOperator dtype='float64'", H(dtype="float64"), TypeError, "dtype", None, 0),
    ("HessianOperator deterministic_rtol=-1", H(deterministic_rtol=-1.0), ValueError, "deterministic_rtol", None, 0),
    ("HessianOperator deterministic_rtol=nan", H(deterministic_rtol=NAN), ValueError, "deterministic_rtol", None, 0),
    ("HessianOperator check_deterministic='no'", H(check_deterministic="no"), TypeError, "check_deterministic",
     None, 0),
    ("HessianOperator params match nothing", H(params="nomatch*"), ValueError, "params", None, 0),
    ("GapHessianOperator heldout_data None",
     lambda: GapHessianOperator(TEACHER, F.cross_entropy, batches(), None), ValueError, "heldout_data", None, 0),
    ("GapHessianOperator heldout NaN",
     lambda: GapHessianOperator(TEACHER, F.cross_entropy, batches(), batches(nan_at_end(X2), Y2)), ValueError,
     "heldout_data", "non-finite", 0),
    ("GapHessianOperator heldout float64",
     lambda: GapHessianOperator(TEACHER, F.cross_entropy, batches(), batches(X2.double(), Y2)), TypeError,
     "heldout_data", "float64", 0),
    ("GapHessianOperator heldout lengths differ",
     lambda: GapHessianOperator(TEACHER, F.cross_entropy, batches(), (X2, Y2[:3])), ValueError, "heldout_data",
     None, 0),
    ("GapHessianOperator train_data a tensor",
     lambda: GapHessianOperator(TEACHER, F.cross_entropy, X, batches()), TypeError, "train_data", None, 0),
    ("dense_hessian x NaN", lambda: dense_hessian(TEACHER, F.cross_entropy, batches(nan_at_end())), ValueError,
     "data", "non-finite", 0),
    ("dense_hessian x float64", lambda: dense_hessian(TEACHER, F.cross_entropy, batches(X.double())), TypeError,
     "data", "float64", 0),
    ("dense_hessian max_params=0", lambda: dense_hessian(TEACHER, F.cross_entropy, batches(), max_params=0),
     ValueError, "max_params", None, 0),
    ("dense_hessian max_params=1.5", lambda: dense_hessian(TEACHER, F.cross_entropy, batches(), max_params=1.5),
     TypeError, "max_params", None, 0),
]

ESTIMATORS = [(f"{f.__name__} {kw}", (lambda f=f, kw=kw: f(OP, **kw)), e, n, w, None) for f, kw, e, n, w in [
    (top_eigenvalues, {"k": 0}, ValueError, "k", None),
    (top_eigenvalues, {"k": 1.5}, TypeError, "k", None),
    (top_eigenvalues, {"k": True}, TypeError, "k", None),
    (top_eigenvalues, {"k": 5}, ValueError, "k", None),
    (top_eigenvalues, {"which": "top"}, ValueError, "which", None),
    (top_eigenvalues, {"tol": 0.0}, ValueError, "tol", None),
    (top_eigenvalues, {"tol": -1e-3}, ValueError, "tol", None),
    (top_eigenvalues, {"tol": NAN}, ValueError, "tol", None),
    (top_eigenvalues, {"tol": INF}, ValueError, "tol", None),
    (top_eigenvalues, {"tol": True}, TypeError, "tol", None),
    (top_eigenvalues, {"tol": "1e-3"}, TypeError, "tol", None),
    (top_eigenvalues, {"max_matvecs": 0}, ValueError, "max_matvecs", None),
    (top_eigenvalues, {"block_size": 0}, ValueError, "block_size", None),
    (top_eigenvalues, {"seed": -1}, ValueError, "seed", None),
    (top_eigenvalues, {"seed": 1.5}, TypeError, "seed", None),
    (top_eigenvalues, {"seed": "0"}, TypeError, "seed", None),
    (top_eigenvalues, {"v0": torch.ones(3, dtype=torch.float64)}, ValueError, "v0", None),
    (top_eigenvalues, {"v0": torch.full((4,), NAN, dtype=torch.float64)}, ValueError, "v0", None),
    (top_eigenvalues, {"v0": torch.zeros(4, dtype=torch.float64)}, ValueError, "v0", None),
    (top_eigenvalues, {"v0": np.ones(4)}, TypeError, "v0", None),
    (hutchinson_trace, {"num_matvecs": 1}, ValueError, "num_matvecs", None),
    (hutchinson_trace, {"num_matvecs": 2.5}, TypeError, "num_matvecs", None),
    (hutchinson_trace, {}, ValueError, "num_matvecs", None),
    (hutchinson_trace, {"target_rel_se": 0.0}, ValueError, "target_rel_se", None),
    (hutchinson_trace, {"target_rel_se": NAN}, ValueError, "target_rel_se", None),
    (hutchinson_trace, {"target_rel_se": True}, TypeError, "target_rel_se", None),
    (hutchinson_trace, {"target_rel_se": 0.1, "min_matvecs": 1}, ValueError, "min_matvecs", None),
    (hutchinson_trace, {"target_rel_se": 0.1, "min_matvecs": 10, "max_matvecs": 5}, ValueError, "max_matvecs", None),
    (hutchinson_trace, {"num_matvecs": 4, "block_size": 0}, ValueError, "block_size", None),
    (hutchinson_trace, {"num_matvecs": 4, "distribution": "normal"}, ValueError, "distribution", None),
    (hutchinson_trace, {"num_matvecs": 4, "seed": -3}, ValueError, "seed", None),
    (hutchpp_trace, {"num_matvecs": 2}, ValueError, "num_matvecs", None),
    (hutchpp_trace, {"num_matvecs": 6, "distribution": "uniform"}, ValueError, "distribution", None),
    (frobenius_norm_sq, {"num_matvecs": 0}, ValueError, "num_matvecs", None),
    (diagonal_estimate, {"num_matvecs": 1}, ValueError, "num_matvecs", None),
    (diagonal_estimate, {"num_matvecs": 4, "block_size": -1}, ValueError, "block_size", None),
    (diagonal_estimate, {"num_matvecs": 4, "distribution": "x"}, ValueError, "distribution", None),
    (spectral_density, {"num_probes": 0}, ValueError, "num_probes", None),
    (spectral_density, {"num_steps": 0}, ValueError, "num_steps", None),
    (spectral_density, {"block_size": 0}, ValueError, "block_size", None),
    (spectral_density, {"num_probes": 2.0}, TypeError, "num_probes", None),
    (power_iteration, {"max_matvecs": 1}, ValueError, "max_matvecs", None),
    (power_iteration, {"tol": 0.0}, ValueError, "tol", None),
    (power_iteration, {"tol": NAN}, ValueError, "tol", None),
    (power_iteration, {"tol": INF}, ValueError, "tol", None),
    (power_iteration, {"v0": torch.ones(5, dtype=torch.float64)}, ValueError, "v0", None),
    (lanczos, {"num_steps": 0}, ValueError, "num_steps", None),
    (lanczos, {"num_steps": 2, "v0": torch.full((4,), INF, dtype=torch.float64)}, ValueError, "v0", None),
]]

OPERATORS = [
    ("top_eigenvalues op a string", lambda: top_eigenvalues("H"), TypeError, "op", None, None),
    ("top_eigenvalues op not square", lambda: top_eigenvalues(torch.ones(3, 4)), ValueError, "op", "square", None),
    ("top_eigenvalues op NaN", lambda: top_eigenvalues(torch.full((3, 3), NAN)), ValueError, "op", "finite", None),
    ("top_eigenvalues op not symmetric", lambda: top_eigenvalues(torch.tensor([[1.0, 2.0], [0.0, 1.0]])),
     ValueError, "op", "symmetric", None),
    ("top_eigenvalues op 3-D", lambda: top_eigenvalues(torch.ones(2, 2, 2)), ValueError, "op", None, None),
    ("top_eigenvalues op empty", lambda: top_eigenvalues(torch.ones(0, 0)), ValueError, "op", None, None),
    ("hutchinson_trace op a list", lambda: hutchinson_trace([[1.0, 0.0], [0.0, 1.0]], 4), TypeError, "op", None,
     None),
    ("hutchinson_trace op complex", lambda: hutchinson_trace(torch.eye(2, dtype=torch.complex64), 4), TypeError,
     "op", None, None),
    ("gradient_norm of a matrix", lambda: gradient_norm(SPD), TypeError, "op", None, None),
    ("matvec v wrong length", lambda: OP.matvec(torch.ones(3, dtype=torch.float64)), ValueError, "v", None, None),
    ("matvec v NaN", lambda: OP.matvec(torch.full((4,), NAN, dtype=torch.float64)), ValueError, "v", None, None),
    ("matvec v numpy", lambda: OP.matvec(np.ones(4)), TypeError, "v", None, None),
    ("matmat V 1-D", lambda: OP.matmat(torch.ones(4, dtype=torch.float64)), ValueError, "V", None, None),
    ("MatrixOperator A not symmetric", lambda: MatrixOperator(torch.tensor([[1.0, 2.0], [0.0, 1.0]])), ValueError,
     "A", "symmetric", None),
]


def PD(data=(X, Y), **kw):
    kw.setdefault("batch_size", BATCH)
    return lambda: predictive_divergence(STUDENT, TEACHER, data, **kw)


def PL(s=LOGITS_S, t=LOGITS_T, **kw):
    return lambda: predictive_divergence(s, t, **kw)


DIVERGENCE = [
    ("predictive_divergence x float64", PD((X.double(), Y)), TypeError, "data", "float64", BATCH),
    ("predictive_divergence x uint8", PD(((X.abs() * 50).to(torch.uint8), Y)), TypeError, "data", "uint8", 0),
    ("predictive_divergence x 1-channel", PD((X[:, :1], Y)), ValueError, "data", "shape", BATCH),
    ("predictive_divergence x 16x16", PD(torch.randn(12, 3, 16, 16)), ValueError, "data", "shape", BATCH),
    ("predictive_divergence x NaN in the last batch", PD((nan_at_end(), Y)), ValueError, "data", "non-finite", 0),
    ("predictive_divergence x inf", PD((X.masked_fill(X > 1.5, INF), Y)), ValueError, "data", "non-finite", 0),
    ("predictive_divergence batches with NaN", PD(batches(nan_at_end())), ValueError, "data", "non-finite", 0),
    ("predictive_divergence data None", PD(None), ValueError, "data", None, 0),
    ("predictive_divergence data a string", PD("cifar10"), TypeError, "data", None, 0),
    ("predictive_divergence data []", PD([]), ValueError, "data", None, 0),
    ("predictive_divergence data empty", PD((X[:0], Y[:0])), ValueError, "data", None, 0),
    ("predictive_divergence x and y lengths differ", PD((X, Y[:5])), ValueError, "data", None, 0),
    ("predictive_divergence temperature=0", PD(temperature=0.0), ValueError, "temperature", None, 0),
    ("predictive_divergence temperature=-1", PD(temperature=-1.0), ValueError, "temperature", None, 0),
    ("predictive_divergence temperature=nan", PD(temperature=NAN), ValueError, "temperature", None, 0),
    ("predictive_divergence temperature=inf", PD(temperature=INF), ValueError, "temperature", None, 0),
    ("predictive_divergence temperature=True", PD(temperature=True), TypeError, "temperature", None, 0),
    ("predictive_divergence temperature='1'", PD(temperature="1"), TypeError, "temperature", None, 0),
    ("predictive_divergence n_boot=-1", PD(n_boot=-1), ValueError, "n_boot", None, 0),
    ("predictive_divergence n_boot=1", PD(n_boot=1), ValueError, "n_boot", None, 0),
    ("predictive_divergence n_boot=1.5", PD(n_boot=1.5), TypeError, "n_boot", None, 0),
    ("predictive_divergence ci=0", PD(ci=0.0), ValueError, "ci", None, 0),
    ("predictive_divergence ci=1", PD(ci=1.0), ValueError, "ci", None, 0),
    ("predictive_divergence ci=nan", PD(ci=NAN), ValueError, "ci", None, 0),
    ("predictive_divergence seed=-1", PD(seed=-1), ValueError, "seed", None, 0),
    ("predictive_divergence seed=2**33", PD(seed=2**33), ValueError, "seed", None, 0),
    ("predictive_divergence batch_size=0", PD(batch_size=0), ValueError, "batch_size", None, 0),
    ("predictive_divergence device=gpu", PD(device="gpu"), ValueError, "device", None, 0),
    ("predictive_divergence student a string", lambda: predictive_divergence("r8", TEACHER, (X, Y)), TypeError,
     "student", None, 0),
    ("predictive_divergence student None", lambda: predictive_divergence(None, TEACHER, (X, Y)), ValueError,
     "student", None, 0),
    ("predictive_divergence student logits 1-D", PL(s=LOGITS_S[:, 0]), ValueError, "student", None, None),
    ("predictive_divergence student logits int", PL(s=LOGITS_S.long()), TypeError, "student", None, None),
    ("predictive_divergence student logits NaN", PL(s=LOGITS_S.masked_fill(LOGITS_S > 1, NAN)), ValueError,
     "student", None, None),
    ("predictive_divergence counts differ", PL(t=LOGITS_T[:5]), ValueError, "teacher", None, None),
    ("predictive_divergence classes differ", PL(t=LOGITS_T[:, :5]), ValueError, "teacher", None, None),
    ("predictive_divergence logits and data lengths differ",
     lambda: predictive_divergence(LOGITS_S[:8], TEACHER, (X, Y)), ValueError, "student", None, BATCH * 3),
    ("predictive_divergence empty ensemble", lambda: predictive_divergence(LOGITS_S, None, ensemble_teacher=[]),
     ValueError, "teacher", None, None),
    ("predictive_divergence ensemble shapes differ",
     lambda: predictive_divergence(LOGITS_S, LOGITS_T, ensemble_teacher=[LOGITS_T[:, :5]]), ValueError, "teacher",
     None, None),
    ("divergence_from_logits temperature=0", lambda: divergence_from_logits(LOGITS_S, LOGITS_T, 0.0), ValueError,
     "temperature", None, None),
    ("divergence_from_logits classes differ", lambda: divergence_from_logits(LOGITS_S, LOGITS_T[:, :5]),
     ValueError, "t_logits", None, None),
    ("divergence_from_logits counts differ", lambda: divergence_from_logits(LOGITS_S[:3], LOGITS_T), ValueError,
     "t_logits", None, None),
    ("divergence_from_logits empty", lambda: divergence_from_logits(LOGITS_S[:0], LOGITS_T[:0]), ValueError,
     "s_logits", None, None),
    ("divergence_from_logits s_logits []", lambda: divergence_from_logits([], LOGITS_T), ValueError, "s_logits",
     None, None),
    ("divergence_from_logits s_logits a string", lambda: divergence_from_logits("abc", LOGITS_T), TypeError,
     "s_logits", None, None),
    ("divergence_from_logits t_logits 3-D", lambda: divergence_from_logits(LOGITS_S, LOGITS_T[None]), ValueError,
     "t_logits", None, None),
    ("summarize_per_example values 2-D", lambda: summarize_per_example(torch.ones(3, 2)), ValueError, "values",
     None, None),
    ("summarize_per_example values empty", lambda: summarize_per_example([]), ValueError, "values", None, None),
    ("summarize_per_example values NaN", lambda: summarize_per_example([0.1, NAN]), ValueError, "values", None, None),
    ("summarize_per_example values strings", lambda: summarize_per_example(["a", "b"]), TypeError, "values", None,
     None),
    ("summarize_per_example n_boot=-1", lambda: summarize_per_example([0.1, 0.2], n_boot=-1), ValueError, "n_boot",
     None, None),
    ("summarize_per_example n_boot=1", lambda: summarize_per_example([0.1, 0.2], n_boot=1), ValueError, "n_boot",
     None, None),
    ("summarize_per_example ci=1.5", lambda: summarize_per_example([0.1, 0.2], ci=1.5), ValueError, "ci", None, None),
    ("summarize_per_example ci='0.9'", lambda: summarize_per_example([0.1, 0.2], ci="0.9"), TypeError, "ci", None,
     None),
    ("summarize_per_example seed=-1", lambda: summarize_per_example([0.1, 0.2], seed=-1), ValueError, "seed", None,
     None),
    ("summarize_per_example seed=1.5", lambda: summarize_per_example([0.1, 0.2], seed=1.5), TypeError, "seed", None,
     None),
    ("summarize_per_example temperature=0", lambda: summarize_per_example([0.1, 0.2], temperature=0), ValueError,
     "temperature", None, None),
]

W4, H4 = np.arange(4.0), np.ones(4)


def LD(w_s=W4, w_t=W4 + 1, prec_s=H4, prec_t=H4, **kw):
    return lambda: laplace_divergence(w_s, w_t, prec_s, prec_t, **kw)


def GD(mean_s=np.zeros((2, 3)), cov_s=COV3, mean_t=np.ones((2, 3)), cov_t=COV3):
    return lambda: gaussian_predictive_divergence(mean_s, cov_s, mean_t, cov_t)


CLOSED_FORMS = [(f"laplace_divergence {i}", f, e, n, w, None) for i, f, e, n, w in [
    ("tau=0", LD(tau=0.0), ValueError, "tau", None),
    ("tau=-1", LD(tau=-1.0), ValueError, "tau", None),
    ("tau=nan", LD(tau=NAN), ValueError, "tau", None),
    ("tau=inf", LD(tau=INF), ValueError, "tau", None),
    ("tau='a'", LD(tau="a"), TypeError, "tau", None),
    ("tau=True", LD(tau=True), TypeError, "tau", None),
    ("delta=-1", LD(delta=-1.0), ValueError, "delta", None),
    ("delta=nan", LD(delta=NAN), ValueError, "delta", None),
    ("delta='x'", LD(delta="x"), TypeError, "delta", None),
    ("kind=full", LD(kind="full"), ValueError, "kind", None),
    ("w_s NaN", LD(w_s=np.array([0.0, NAN, 1.0, 2.0])), ValueError, "w_s", "NaN"),
    ("w_s and w_t sizes differ", LD(w_t=np.ones(3)), ValueError, "w_t", None),
    ("prec_s negative", LD(prec_s=-H4), ValueError, "prec_s", "delta"),
    ("prec_s wrong length", LD(prec_s=np.ones(3)), ValueError, "prec_s", None),
    ("dense prec not positive definite", LD(prec_s=np.diag([1.0, 1.0, 1.0, -1.0]), prec_t=np.eye(4), kind="dense"),
     ValueError, "prec_s", "positive definite"),
    ("dense prec wrong shape", LD(prec_s=np.eye(4), prec_t=np.eye(3), kind="dense"), ValueError, "prec_t", None),
    ("dense prec not symmetric", LD(prec_s=np.triu(np.ones((4, 4))), prec_t=np.eye(4), kind="dense"), ValueError,
     "prec_s", "symmetric"),
    ("w_s a string", LD(w_s="abc"), TypeError, "w_s", None),
    ("w_s empty", LD(w_s=np.zeros(0), w_t=np.zeros(0), prec_s=np.zeros(0), prec_t=np.zeros(0)), ValueError, "w_s",
     None),
    ("w_s ragged", LD(w_s=[[1.0, 2.0], [3.0]]), TypeError, "w_s", None),
]] + [(f"gaussian_predictive_divergence {i}", f, e, n, w, None) for i, f, e, n, w in [
    ("cov_s not positive definite", GD(cov_s=-COV3), ValueError, "cov_s", "positive definite"),
    ("cov_t wrong size", GD(cov_t=np.eye(2)), ValueError, "cov_t", None),
    ("cov_s not symmetric", GD(cov_s=COV3 + np.triu(np.ones((3, 3)), 1)), ValueError, "cov_s", "symmetric"),
    ("means differ in shape", GD(mean_t=np.ones((3, 3))), ValueError, "mean_t", None),
    ("mean_s NaN", GD(mean_s=np.full((2, 3), NAN)), ValueError, "mean_s", None),
    ("cov_t inf", GD(cov_t=np.full((3, 3), INF)), ValueError, "cov_t", None),
    ("mean_s 3-D", GD(mean_s=np.zeros((1, 2, 3)), mean_t=np.zeros((1, 2, 3))), ValueError, "mean_s", None),
    ("cov_s 1-D", GD(cov_s=np.ones(3)), ValueError, "cov_s", None),
]]

PID = [(f"{i}", f, e, n, w, None) for i, f, e, n, w in [
    ("broja_pid p sums to 2", lambda: broja_pid(2 * P3), ValueError, "p", "normalize"),
    ("broja_pid p negative", lambda: broja_pid(P3 - 0.2), ValueError, "p", "negative"),
    ("broja_pid p NaN", lambda: broja_pid(np.full((2, 2, 2), NAN)), ValueError, "p", "NaN"),
    ("broja_pid p 2-D", lambda: broja_pid(np.full((2, 2), 0.25)), ValueError, "p", None),
    ("broja_pid p empty axis", lambda: broja_pid(np.zeros((2, 0, 2))), ValueError, "p", None),
    ("broja_pid p strings", lambda: broja_pid([["a"]]), TypeError, "p", None),
    ("broja_pid units=bytes", lambda: broja_pid(P3, units="bytes"), ValueError, "units", None),
    ("broja_pid solver=FOO", lambda: broja_pid(P3, solver="FOO"), ValueError, "solver", None),
    ("broja_pid solver_opts a list", lambda: broja_pid(P3, solver_opts=[1]), TypeError, "solver_opts", None),
    ("broja_pid tol=-1", lambda: broja_pid(P3, tol=-1.0), ValueError, "tol", None),
    ("broja_pid gap_tol=nan", lambda: broja_pid(P3, gap_tol=NAN), ValueError, "gap_tol", None),
    ("broja_pid_from_counts negative", lambda: broja_pid_from_counts(-np.ones((2, 2, 2))), ValueError, "counts", None),
    ("broja_pid_from_counts zeros", lambda: broja_pid_from_counts(np.zeros((2, 2, 2))), ValueError, "counts", None),
    ("broja_pid_from_counts NaN", lambda: broja_pid_from_counts(np.full((2, 2, 2), NAN)), ValueError, "counts",
     None),
    ("gaussian_pid cov not positive definite", lambda: gaussian_pid(-COV3), ValueError, "cov", "positive definite"),
    ("gaussian_pid cov NaN", lambda: gaussian_pid(np.full((3, 3), NAN)), ValueError, "cov", None),
    ("gaussian_pid cov not symmetric", lambda: gaussian_pid(COV3 + np.triu(np.ones((3, 3)), 1) * 0.1), ValueError,
     "cov", "symmetric"),
    ("gaussian_pid cov not square", lambda: gaussian_pid(np.ones((3, 2))), ValueError, "cov", None),
    ("gaussian_pid dims (1, 1)", lambda: gaussian_pid(COV3, dims=(1, 1)), ValueError, "dims", None),
    ("gaussian_pid dims (1.5, 1, 1)", lambda: gaussian_pid(COV3, dims=(1.5, 1, 1)), TypeError, "dims", None),
    ("gaussian_pid dims (0, 1, 2)", lambda: gaussian_pid(COV3, dims=(0, 1, 2)), ValueError, "dims", None),
    ("gaussian_pid dims sum != size", lambda: gaussian_pid(COV3, dims=(1, 1, 2)), ValueError, "dims", None),
    ("gaussian_pid dims a string", lambda: gaussian_pid(COV3, dims="abc"), TypeError, "dims", None),
    ("gaussian_pid units=x", lambda: gaussian_pid(COV3, units="x"), ValueError, "units", None),
    ("gaussian_mi cov NaN", lambda: gaussian_mi(np.full((3, 3), NAN), [0], [1]), ValueError, "cov", None),
    ("gaussian_mi cov not positive definite", lambda: gaussian_mi(-COV3, [0], [1]), ValueError, "cov", None),
    ("gaussian_mi a and b overlap", lambda: gaussian_mi(COV3, [0, 1], [1]), ValueError, "b:", "disjoint"),
    ("gaussian_mi a empty", lambda: gaussian_mi(COV3, [], [1]), ValueError, "a:", None),
    ("gaussian_mi a out of range", lambda: gaussian_mi(COV3, [5], [1]), ValueError, "a:", None),
    ("gaussian_mi a float", lambda: gaussian_mi(COV3, [0.5], [1]), TypeError, "a:", None),
    ("gaussian_mi b negative", lambda: gaussian_mi(COV3, [0], [-1]), ValueError, "b:", None),
    ("joint_counts y float", lambda: joint_counts([0.5, 1.0], [0, 1], [0, 1], n_classes=2, n_t=2, n_s=2), TypeError,
     "y", None),
    ("joint_counts y negative", lambda: joint_counts([-1, 1], [0, 1], [0, 1], n_classes=2, n_t=2, n_s=2), ValueError,
     "y", None),
    ("joint_counts t out of range", lambda: joint_counts([0, 1], [0, 2], [0, 1], n_classes=2, n_t=2, n_s=2),
     ValueError, "t", None),
    ("joint_counts lengths differ", lambda: joint_counts([0, 1], [0], [0, 1], n_classes=2, n_t=2, n_s=2), ValueError,
     "t", None),
    ("joint_counts n_classes=0", lambda: joint_counts([0], [0], [0], n_classes=0, n_t=2, n_s=2), ValueError,
     "n_classes", None),
    ("joint_counts n_classes=2.5", lambda: joint_counts([0], [0], [0], n_classes=2.5, n_t=2, n_s=2), TypeError,
     "n_classes", None),
    ("joint_counts s NaN", lambda: joint_counts([0], [0], [NAN], n_classes=2, n_t=2, n_s=2), TypeError, "s:", None),
    ("joint_counts y 2-D", lambda: joint_counts([[0, 1]], [0, 1], [0, 1], n_classes=2, n_t=2, n_s=2), ValueError,
     "y", None),
    ("fit_discretizer n_components=0", lambda: fit_discretizer(FEAT, n_components=0), ValueError, "n_components",
     None),
    ("fit_discretizer n_components=1.5", lambda: fit_discretizer(FEAT, n_components=1.5), TypeError, "n_components",
     None),
    ("fit_discretizer n_clusters=0", lambda: fit_discretizer(FEAT, n_clusters=0), ValueError, "n_clusters", None),
    ("fit_discretizer n_clusters > rows", lambda: fit_discretizer(FEAT, n_clusters=31), ValueError, "n_clusters",
     None),
    ("fit_discretizer x_train NaN", lambda: fit_discretizer(np.full((5, 2), NAN)), ValueError, "x_train", None),
    ("fit_discretizer x_train 1-D", lambda: fit_discretizer(np.ones(5)), ValueError, "x_train", None),
    ("fit_discretizer x_train empty", lambda: fit_discretizer(np.ones((0, 3))), ValueError, "x_train", None),
    ("fit_discretizer seed=-1", lambda: fit_discretizer(FEAT, seed=-1), ValueError, "seed", None),
    ("fit_discretizer seed='a'", lambda: fit_discretizer(FEAT, seed="a"), TypeError, "seed", None),
    ("kmeans n_clusters=0", lambda: kmeans(FEAT, 0, rng=np.random.default_rng(0)), ValueError, "n_clusters", None),
    ("kmeans n_init=0", lambda: kmeans(FEAT, 2, rng=np.random.default_rng(0), n_init=0), ValueError, "n_init", None),
    ("kmeans max_iter=0", lambda: kmeans(FEAT, 2, rng=np.random.default_rng(0), max_iter=0), ValueError, "max_iter",
     None),
    ("kmeans x NaN", lambda: kmeans(np.full((5, 2), NAN), 2, rng=np.random.default_rng(0)), ValueError, "x", None),
    ("kmeans rng an int", lambda: kmeans(FEAT, 2, rng=0), TypeError, "rng", None),
]]


def POR(**kw):
    base = dict(t_train=FEAT, s_train=FEAT[:, ::-1], y_train=LAB, t_eval=FEAT, s_eval=FEAT[:, ::-1], y_eval=LAB,
                n_components=2, n_clusters=2, n_boot=0, n_shuffle=0)
    base.update(kw)
    return lambda: pid_of_representations(**base)


PID += [(f"pid_of_representations {i}", f, e, n, w, None) for i, f, e, n, w in [
    ("y_train float", POR(y_train=LAB + 0.5), TypeError, "y_train", None),
    ("y_eval negative", POR(y_eval=LAB - 1), ValueError, "y_eval", None),
    ("y_eval NaN", POR(y_eval=np.where(LAB > 1, NAN, LAB)), TypeError, "y_eval", None),
    ("y_train 2-D", POR(y_train=LAB[:, None]), ValueError, "y_train", None),
    ("lengths differ", POR(y_train=LAB[:10]), ValueError, "y_train", None),
    ("t_eval NaN", POR(t_eval=np.full((30, 6), NAN)), ValueError, "t_eval", None),
    ("n_boot=-1", POR(n_boot=-1), ValueError, "n_boot", None),
    ("n_boot=1.5", POR(n_boot=1.5), TypeError, "n_boot", None),
    ("n_boot=1", POR(n_boot=1), ValueError, "n_boot", None),
    ("n_shuffle=1.5", POR(n_shuffle=1.5), TypeError, "n_shuffle", None),
    ("ci=0", POR(ci=0.0), ValueError, "ci", None),
    ("shuffle=x", POR(shuffle="x"), ValueError, "shuffle", None),
    ("n_classes below the labels", POR(n_classes=2), ValueError, "n_classes", None),
    ("n_clusters=0", POR(n_clusters=0), ValueError, "n_clusters", None),
    ("n_components='a'", POR(n_components="a"), TypeError, "n_components", None),
    ("seed=-1", POR(seed=-1), ValueError, "seed", None),
]]


def _lg():
    from linear_gaussian import random_problem, student_kernel, teacher_kernel

    problem = random_problem(d=3, k=2, n=10, nu=0.5, rng=np.random.default_rng(0))
    data = problem.sample(np.random.default_rng(1))
    teacher = teacher_kernel(data, lam_T=1.0, tau_T=0.25)
    return problem, data, teacher, student_kernel(data, teacher, lam_S=1.0, tau_S=0.5, rank=1)


LG_PROBLEM, LG_DATA, LG_T, LG_S = _lg()


def _lg_cases():
    import linear_gaussian as lg
    from linear_gaussian import Dataset, MatrixNormal

    r = np.random.default_rng
    return [(f"linear_gaussian {i}", f, e, n, w, None) for i, f, e, n, w in [
        ("Dataset X NaN", lambda: Dataset(np.full((3, 4), NAN), np.ones((2, 4))), ValueError, "X", None),
        ("Dataset columns differ", lambda: Dataset(np.ones((3, 4)), np.ones((2, 5))), ValueError, "X", None),
        ("Dataset empty", lambda: Dataset(np.ones((3, 0)), np.ones((2, 0))), ValueError, "n", None),
        ("Dataset X 1-D", lambda: Dataset(np.ones(3), np.ones((2, 3))), ValueError, "X", None),
        ("MatrixNormal col_cov not positive definite", lambda: MatrixNormal(np.zeros((2, 2)), NOT_PD), ValueError,
         "col_cov", "positive definite"),
        ("MatrixNormal col_cov size", lambda: MatrixNormal(np.zeros((2, 3)), np.eye(2)), ValueError, "col_cov", None),
        ("MatrixNormal row_cov not symmetric", lambda: MatrixNormal(np.zeros((2, 2)), np.eye(2), np.triu(np.ones((2, 2)))),
         ValueError, "row_cov", "symmetric"),
        ("MatrixNormal mean strings", lambda: MatrixNormal([["a"]], np.eye(1)), TypeError, "mean", None),
        ("MatrixNormal.from_precision scale=0", lambda: MatrixNormal.from_precision(np.zeros((2, 2)), np.eye(2), scale=0),
         ValueError, "scale", None),
        ("kl_matrix_normal shapes differ", lambda: lg.kl_matrix_normal(LG_S, MatrixNormal(np.zeros((2, 2)), np.eye(2))),
         ValueError, "p", None),
        ("kl_matrix_normal p a string", lambda: lg.kl_matrix_normal(LG_S, "P"), TypeError, "p", None),
        ("teacher_kernel lam_T=-1", lambda: lg.teacher_kernel(LG_DATA, -1.0, 1.0), ValueError, "lam_T", None),
        ("teacher_kernel tau_T=0", lambda: lg.teacher_kernel(LG_DATA, 1.0, 0.0), ValueError, "tau_T", None),
        ("teacher_kernel data a tuple", lambda: lg.teacher_kernel((np.ones((3, 4)), np.ones((2, 4))), 1.0, 1.0),
         TypeError, "data", None),
        ("student_kernel rank=-1", lambda: lg.student_kernel(LG_DATA, LG_T, 1.0, 1.0, rank=-1), ValueError, "rank", None),
        ("student_kernel rank too large", lambda: lg.student_kernel(LG_DATA, LG_T, 1.0, 1.0, rank=5), ValueError, "rank",
         None),
        ("student_kernel rank=1.5", lambda: lg.student_kernel(LG_DATA, LG_T, 1.0, 1.0, rank=1.5), TypeError, "rank",
         None),
        ("student_kernel labels=soft", lambda: lg.student_kernel(LG_DATA, LG_T, 1.0, 1.0, labels="soft"), ValueError,
         "labels", None),
        ("student_kernel stochastic without rng", lambda: lg.student_kernel(LG_DATA, LG_T, 1.0, 1.0, labels="stochastic",
                                                                           nu=0.5), ValueError, "rng", None),
        ("student_kernel tau_S=nan", lambda: lg.student_kernel(LG_DATA, LG_T, 1.0, NAN), ValueError, "tau_S", None),
        ("predictive_kl X_star wrong d", lambda: lg.predictive_kl(LG_S, LG_T, np.ones((2, 4)), 0.5), ValueError,
         "X_star", None),
        ("predictive_kl nu=-1", lambda: lg.predictive_kl(LG_S, LG_T, np.ones((3, 4)), -1.0), ValueError, "nu", None),
        ("decompose rank too large", lambda: lg.decompose(LG_S, LG_T, 7), ValueError, "rank", None),
        ("random_problem d=0", lambda: lg.random_problem(0, 2, 10, 0.5, r(0)), ValueError, "d", None),
        ("random_problem nu=nan", lambda: lg.random_problem(3, 2, 10, NAN, r(0)), ValueError, "nu", None),
        ("random_problem rng an int", lambda: lg.random_problem(3, 2, 10, 0.5, 3), TypeError, "rng", None),
        ("random_spd cond=0.5", lambda: lg.random_spd(3, r(0), 0.5), ValueError, "cond", None),
        ("expected_gap kernel of another size",
         lambda: lg.expected_gap(LG_PROBLEM, LG_DATA, MatrixNormal(np.zeros((2, 2)), np.eye(2))), ValueError,
         "kernel", None),
        ("kl_monte_carlo n_samples=0", lambda: lg.kl_monte_carlo(LG_S, LG_T, 0, r(0)), ValueError, "n_samples", None),
        ("population_risk W wrong shape", lambda: lg.population_risk(LG_PROBLEM, np.ones((3, 3))), ValueError, "W",
         None),
        ("MatrixNormal.sample size=-1", lambda: LG_T.sample(-1, r(0)), ValueError, "size", None),
        ("MatrixNormal.logpdf W wrong shape", lambda: LG_T.logpdf(np.ones((5, 5))), ValueError, "W", None),
    ]]


LINEAR_GAUSSIAN = _lg_cases()


def EP(train=(X, Y), test=(X2, Y2), **kw):
    kw.setdefault("kernel", False)
    kw.setdefault("batch_size", BATCH)
    return lambda: evaluate_pair(TEACHER, STUDENT, train, test, **kw)


def MTC(train=(X, Y), test=(X2, Y2), **kw):
    return lambda: measure_teacher_curvature(TEACHER, train, test, trace_matvecs=16, lanczos_matvecs=4,
                                             batch_size=BATCH, **kw)


CHECKS = [
    ("evaluate_pair train x float64", EP((X.double(), Y)), TypeError, "train", "float64", 1),
    ("evaluate_pair train x uint8", EP(((X.abs() * 50).to(torch.uint8), Y)), TypeError, "train", "uint8", 0),
    ("evaluate_pair train x 1-channel", EP((X[:, :1], Y)), ValueError, "train", "shape", 1),
    ("evaluate_pair train labels y+10", EP((X, Y + 10)), ValueError, "train", "labels", 2),
    ("evaluate_pair train labels = classes", EP((X, torch.full((12,), 10))), ValueError, "train", "labels", 2),
    ("evaluate_pair train labels negative", EP((X, Y - 1)), ValueError, "train", "labels", 0),
    ("evaluate_pair train labels float", EP((X, Y.float())), TypeError, "train", "labels", 0),
    ("evaluate_pair train labels bool", EP((X, Y > 4)), TypeError, "train", "labels", 0),
    ("evaluate_pair train labels 2-D", EP((X, Y.view(12, 1))), ValueError, "train", "labels", 0),
    ("evaluate_pair train x NaN", EP((nan_at_end(), Y)), ValueError, "train", "non-finite", 0),
    ("evaluate_pair test x inf", EP(test=(X2.masked_fill(X2 > 1.5, INF), Y2)), ValueError, "test", "non-finite", 0),
    ("evaluate_pair test labels out of range", EP(test=(X2, Y2 + 10)), ValueError, "test", "labels", 2),
    ("evaluate_pair test x uint8", EP(test=((X2.abs() * 50).to(torch.uint8), Y2)), TypeError, "test", "uint8", 0),
    ("evaluate_pair test x 16x16", EP(test=(torch.randn(12, 3, 16, 16), Y2)), ValueError, "test", "shape", 2),
    ("evaluate_pair train lengths differ", EP((X, Y[:5])), ValueError, "train", None, 0),
    ("evaluate_pair train empty", EP((X[:0], Y[:0])), ValueError, "train", None, 0),
    ("evaluate_pair train None", EP(None), TypeError, "train", None, 0),
    ("evaluate_pair train batches with NaN", EP(batches(nan_at_end())), ValueError, "train", "non-finite", 0),
    ("evaluate_pair teacher a string", lambda: evaluate_pair("r8", STUDENT, (X, Y), (X2, Y2), kernel=False), TypeError,
     "teacher", None, 0),
    ("evaluate_pair student None", lambda: evaluate_pair(TEACHER, None, (X, Y), (X2, Y2), kernel=False), TypeError,
     "student", None, 0),
    ("evaluate_pair student of 5 classes", lambda: evaluate_pair(TEACHER, FIVE, (X, Y), (X2, Y2), kernel=False),
     ValueError, "student", "classes", 2),
    ("evaluate_pair alpha=0", EP(alpha=0.0), ValueError, "alpha", None, 0),
    ("evaluate_pair losses=[hinge]", EP(losses=["hinge"]), ValueError, "losses", None, 0),
    ("evaluate_pair p_min=0", EP(p_min=0.0), ValueError, "p_min", None, 0),
    ("evaluate_pair p_min=1.5", EP(p_min=1.5), ValueError, "p_min", None, 0),
    ("evaluate_pair temperature=0", EP(temperature=0.0), ValueError, "temperature", None, 0),
    ("evaluate_pair temperature=nan", EP(temperature=NAN), ValueError, "temperature", None, 0),
    ("evaluate_pair n_boot=-1", EP(n_boot=-1), ValueError, "n_boot", None, 0),
    ("evaluate_pair n_boot=1", EP(n_boot=1), ValueError, "n_boot", None, 0),
    ("evaluate_pair batch_size=0", EP(batch_size=0), ValueError, "batch_size", None, 0),
    ("evaluate_pair seed=-1", EP(seed=-1), ValueError, "seed", None, 0),
    ("evaluate_pair central_c=1.5", EP(central_c=1.5), ValueError, "central_c", None, 0),
    ("evaluate_pair central_c=1", EP(central_c=1.0), ValueError, "central_c", None, 0),
    ("evaluate_pair c_mode=x", EP(c_mode="x"), ValueError, "c_mode", None, 0),
    ("evaluate_pair mc_draws=1", EP(mc_draws=1), ValueError, "mc_draws", None, 0),
    ("evaluate_pair kernel_std=-1", EP(kernel_std=-1.0), ValueError, "kernel_std", None, 0),
    ("evaluate_pair loss_increase=0", EP(loss_increase=0.0), ValueError, "loss_increase", None, 0),
    ("evaluate_pair kernel without curvature", EP(kernel=True), ValueError, "curvature", None, 0),
    ("measure_teacher_curvature train x NaN", MTC((nan_at_end(), Y)), ValueError, "train", "non-finite", 0),
    ("measure_teacher_curvature train labels y+10", MTC((X, Y + 10)), ValueError, "train", "labels", 1),
    ("measure_teacher_curvature test labels negative", MTC(test=(X2, Y2 - 1)), ValueError, "test", "labels", 0),
    ("measure_teacher_curvature train x float64", MTC((X.double(), Y)), TypeError, "train", "float64", 0),
    ("measure_teacher_curvature test x 1-channel", MTC(test=(X2[:, :1], Y2)), ValueError, "test", "shape", 1),
    ("measure_teacher_curvature trace_matvecs=1",
     lambda: measure_teacher_curvature(TEACHER, (X, Y), (X2, Y2), trace_matvecs=1), ValueError, "trace_matvecs",
     None, 0),
    ("measure_teacher_curvature trace_matvecs too few for the limit",
     lambda: measure_teacher_curvature(TEACHER, (X, Y), (X2, Y2), trace_matvecs=5), ValueError, "trace_matvecs",
     None, 0),
    ("measure_teacher_curvature ucl_level=1", MTC(ucl_level=1.0), ValueError, "ucl_level", None, 0),
    ("measure_teacher_curvature frob_ucl=x", MTC(frob_ucl="x"), ValueError, "frob_ucl", None, 0),
    ("measure_teacher_curvature p_min=0", MTC(p_min=0.0), ValueError, "p_min", None, 0),
    ("measure_teacher_curvature teacher a string",
     lambda: measure_teacher_curvature("r8", (X, Y), (X2, Y2)), TypeError, "teacher", None, 0),
]

Z = torch.randn(6, 3, generator=G)
YZ = torch.arange(6) % 3
REC = make_record("c", "proxy", loss="zero_one", side="abs", bound=1.0, observed=0.5, observed_se=0.1,
                  assumptions_met=False, assumption="")

CHECKS += [(i, f, e, n, w, None) for i, f, e, n, w in [
    ("per_example_losses labels float", lambda: per_example_losses(Z, YZ.float()), TypeError, "labels", None),
    ("per_example_losses labels out of range", lambda: per_example_losses(Z, YZ + 3), ValueError, "labels", None),
    ("per_example_losses labels 2-D", lambda: per_example_losses(Z, YZ[:, None]), ValueError, "labels", None),
    ("per_example_losses logits NaN", lambda: per_example_losses(Z.masked_fill(Z > 1, NAN), YZ), ValueError, "logits",
     None),
    ("per_example_losses logits numpy", lambda: per_example_losses(Z.numpy(), YZ), TypeError, "logits", None),
    ("per_example_losses logits 1-D", lambda: per_example_losses(Z[:, 0], YZ), ValueError, "logits", None),
    ("per_example_losses loss=hinge", lambda: per_example_losses(Z, YZ, "hinge"), ValueError, "loss", None),
    ("per_example_losses p_min=0", lambda: per_example_losses(Z, YZ, p_min=0.0), ValueError, "p_min", None),
    ("per_example_losses temperature=0", lambda: per_example_losses(Z, YZ, "gibbs_zero_one", temperature=0.0),
     ValueError, "temperature", None),
    ("loss_gap test_labels out of range", lambda: loss_gap(Z, YZ, Z, YZ + 3), ValueError, "test_labels", None),
    ("loss_gap train_logits NaN", lambda: loss_gap(Z.masked_fill(Z > 1, NAN), YZ, Z, YZ), ValueError, "train_logits",
     None),
    ("loss_gap test_labels float", lambda: loss_gap(Z, YZ, Z, YZ.double()), TypeError, "test_labels", None),
    ("mean_estimate empty", lambda: mean_estimate(torch.ones(0)), ValueError, "x", None),
    ("mean_estimate NaN", lambda: mean_estimate(torch.tensor([1.0, NAN])), ValueError, "x", None),
    ("mean_estimate strings", lambda: mean_estimate(["a", "b"]), TypeError, "x", None),
    ("paired_gap_difference shapes differ", lambda: paired_gap_difference(Z[:, 0], Z[:3, 0], Z[:, 0], Z[:, 0]),
     ValueError, "t_train", None),
    ("paired_gap_difference strings", lambda: paired_gap_difference("abc", np.ones(3), np.ones(3), np.ones(3)),
     TypeError, "s_train", None),
    ("gibbs_bound n=0", lambda: gibbs_bound(0, 5, 0.1, 0.1), ValueError, "n", None),
    ("gibbs_bound n=2.5", lambda: gibbs_bound(2.5, 5, 0.1, 0.1), TypeError, "n", None),
    ("gibbs_bound k_train=-1", lambda: gibbs_bound(5, 5, -1.0, 0.1), ValueError, "k_train", None),
    ("gibbs_bound k_test='a'", lambda: gibbs_bound(5, 5, 0.1, "a"), TypeError, "k_test", None),
    ("gibbs_classifier train_labels out of range",
     lambda: gibbs_classifier(Z, Z, YZ + 3, Z, Z, YZ), ValueError, "train_labels", None),
    ("gibbs_classifier s_test_logits NaN",
     lambda: gibbs_classifier(Z, Z, YZ, Z.masked_fill(Z > 1, NAN), Z, YZ), ValueError, "s_test_logits", None),
    ("gibbs_classifier temperature=0", lambda: gibbs_classifier(Z, Z, YZ, Z, Z, YZ, temperature=0.0), ValueError,
     "temperature", None),
    ("gibbs_classifier alpha=1", lambda: gibbs_classifier(Z, Z, YZ, Z, Z, YZ, alpha=1.0), ValueError, "alpha", None),
    ("assign_verdicts alpha=0", lambda: assign_verdicts([REC], 0.0), ValueError, "alpha", None),
    ("assign_verdicts alpha=1.5", lambda: assign_verdicts([REC], 1.5), ValueError, "alpha", None),
    ("assign_verdicts method=bonferroni", lambda: assign_verdicts([REC], method="bonferroni"), ValueError, "method",
     None),
    ("assign_verdicts records of numbers", lambda: assign_verdicts([1, 2]), TypeError, "records", None),
    ("assign_verdicts records None", lambda: assign_verdicts(None), TypeError, "records", None),
    ("assign_verdicts one record, not a list", lambda: assign_verdicts(REC), TypeError, "records", None),
    ("make_record bound=nan", lambda: make_record("c", "proxy", loss="l", side="abs", bound=NAN, observed=0.0,
                                                  observed_se=0.1, assumptions_met=False, assumption=""),
     ValueError, "bound", None),
    ("make_record bound='x'", lambda: make_record("c", "proxy", loss="l", side="abs", bound="x", observed=0.0,
                                                  observed_se=0.1, assumptions_met=False, assumption=""),
     TypeError, "bound", None),
    ("make_record observed_se=-1", lambda: make_record("c", "proxy", loss="l", side="abs", bound=1.0, observed=0.0,
                                                       observed_se=-1.0, assumptions_met=False, assumption=""),
     ValueError, "observed_se", None),
    ("make_record side=both (exact)", lambda: make_record("c", "proxy", loss="l", side="both", bound=1.0,
                                                          observed=0.0, observed_se=0.0, assumptions_met=False,
                                                          assumption=""), ValueError, "side", None),
    ("make_record kind=foo", lambda: make_record("c", "foo", loss="l", side="abs", bound=1.0, observed=0.0,
                                                 observed_se=0.0, assumptions_met=False, assumption=""),
     ValueError, "kind", None),
    ("make_record dof=0", lambda: make_record("c", "proxy", loss="l", side="abs", bound=1.0, observed=0.0,
                                              observed_se=0.1, assumptions_met=False, assumption="", dof=0),
     ValueError, "dof", None),
    ("holm_reject p > 1", lambda: holm_reject([0.5, 1.5], 0.05), ValueError, "pvalues", None),
    ("holm_reject alpha=1", lambda: holm_reject([0.5], 1.0), ValueError, "alpha", None),
    ("holm_reject max_true=0", lambda: holm_reject([0.5], 0.05, max_true=0), ValueError, "max_true", None),
    ("holm_reject pvalues strings", lambda: holm_reject(["a"], 0.05), TypeError, "pvalues", None),
    ("one_sided_pvalues se=0", lambda: one_sided_pvalues(1.0, 0.5, 0.0, "abs"), ValueError, "se", None),
    ("one_sided_pvalues side=x", lambda: one_sided_pvalues(1.0, 0.5, 0.1, "x"), ValueError, "side", None),
    ("one_sided_pvalues se='a'", lambda: one_sided_pvalues(1.0, 0.5, "a", "abs"), TypeError, "se", None),
    ("kendall_tau_b lengths differ", lambda: kendall_tau_b([1, 2, 3], [1, 2]), ValueError, "y", None),
    ("kendall_tau_b NaN", lambda: kendall_tau_b([1, NAN, 3], [1, 2, 3]), ValueError, "x", None),
    ("kendall_tau_b strings", lambda: kendall_tau_b(["a", "b"], [1, 2]), TypeError, "x", None),
    ("permutation_kendall statistic=x", lambda: permutation_kendall({"a": 1}, [("a", 1.0)], statistic="x"),
     ValueError, "statistic", None),
    ("permutation_kendall n_perm=0", lambda: permutation_kendall({"a": 1}, [("a", 1.0)], n_perm=0), ValueError,
     "n_perm", None),
    ("permutation_kendall two teachers", lambda: permutation_kendall({"a": 1, "b": 2}, [("a", 1.0), ("b", 2.0)]),
     ValueError, "gaps", None),
    ("permutation_kendall teacher without sharpness", lambda: permutation_kendall({"a": 1}, [("b", 1.0)]), ValueError,
     "gaps", None),
    ("permutation_kendall gap NaN",
     lambda: permutation_kendall({"a": 1, "b": 2, "c": 3}, [("a", 1.0), ("b", NAN), ("c", 3.0)]), ValueError,
     "gaps", None),
    ("permutation_kendall gaps not pairs", lambda: permutation_kendall({"a": 1}, [1, 2, 3]), TypeError, "gaps", None),
    ("permutation_kendall sharpness a list", lambda: permutation_kendall([1, 2, 3], [("a", 1.0)]), TypeError,
     "sharpness", None),
    ("permutation_kendall seed=-1", lambda: permutation_kendall({"a": 1}, [("a", 1.0)], seed=-1), ValueError, "seed",
     None),
    ("recipe_kendall teacher without recipe", lambda: recipe_kendall({"a": 1}, [("a", 1.0)], {}), ValueError,
     "recipe_of", None),
    ("kernel_std_from_loss_increase train_trace=0", lambda: kernel_std_from_loss_increase(0.0), ValueError,
     "train_trace", None),
    ("kernel_std_from_loss_increase train_trace='a'", lambda: kernel_std_from_loss_increase("a"), TypeError,
     "train_trace", None),
    ("kernel_std_from_loss_increase loss_increase=0", lambda: kernel_std_from_loss_increase(1.0, 0.0), ValueError,
     "loss_increase", None),
    ("kernel_constants s=0", lambda: kernel_constants(None, 0.0), ValueError, "s:", None),
    ("kernel_constants c_mode=x", lambda: kernel_constants(None, 1.0, "x"), ValueError, "c_mode", None),
    ("kernel_constants curv a string", lambda: kernel_constants("curv", 1.0), TypeError, "curv", None),
    ("frobenius_upper_limit one sample", lambda: frobenius_upper_limit(torch.ones(1)), ValueError, "samples", None),
    ("frobenius_upper_limit level=0", lambda: frobenius_upper_limit(torch.ones(20), 0.0), ValueError, "level", None),
    ("frobenius_upper_limit NaN", lambda: frobenius_upper_limit(torch.tensor([1.0, NAN] * 10)), ValueError, "samples",
     None),
    ("frobenius_upper_limit strings", lambda: frobenius_upper_limit(["a"] * 20), TypeError, "samples", None),
    ("frobenius_upper_limit method=x", lambda: frobenius_upper_limit(torch.ones(20), method="x"), ValueError,
     "method", None),
    ("theorem1_sigma_n sigma=-1", lambda: theorem1_sigma_n(est(), est(), -1.0, 10, loss="l"), ValueError, "sigma",
     None),
    ("theorem1_sigma_n n=0", lambda: theorem1_sigma_n(est(), est(), 0.5, 0, loss="l"), ValueError, "n", None),
    ("theorem1_sigma_n divergence of one input", lambda: theorem1_sigma_n(est(), Estimate(0.1, INF, 1), 0.5, 10,
                                                                         loss="l"), ValueError, "divergence", None),
    ("theorem1_sigma_n diff a float", lambda: theorem1_sigma_n(0.1, est(), 0.5, 10, loss="l"), TypeError, "diff",
     None),
    ("theorem2_central c=1.5", lambda: theorem2_central(est(), est(), est(), 0.5, 10, loss="l", c=1.5), ValueError,
     "c:", None),
    ("theorem2_central sigma=0", lambda: theorem2_central(est(), est(), est(), 0.0, 10, loss="l"), ValueError,
     "sigma", None),
]]

CASES = CURVATURE + ESTIMATORS + OPERATORS + DIVERGENCE + CLOSED_FORMS + PID + LINEAR_GAUSSIAN + CHECKS


def test_table_is_large_enough():
    assert len(CASES) >= 300, len(CASES)
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"


@pytest.mark.parametrize("thunk,exc,name,words,max_rows", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_named_and_refused_before_work(thunk, exc, name, words, max_rows):
    def counted():
        Counted.rows = 0
        try:
            thunk()
        finally:
            counted.rows = Counted.rows

    counted.rows = 0
    info, cpu = refusal(counted, exc)
    text = str(info.value)
    assert "\n" not in text.strip(), f"not one line: {text!r}"
    assert names_argument(text, name), f"{name!r} not named in: {text}"
    if words is not None:
        assert words.lower() in text.lower(), text
    assert cpu < CPU_LIMIT_S, f"{cpu:.2f} CPU s before the refusal"
    if max_rows is not None:
        assert counted.rows <= max_rows, f"the networks saw {counted.rows} input rows before the refusal"


# ---------------------------------------------------------------------------------------------
# the checks refuse nothing valid: the doors above, with good inputs in every form they accept
# ---------------------------------------------------------------------------------------------
def test_valid_inputs_still_pass_the_checks():
    from torch.utils.data import DataLoader, TensorDataset

    loader = DataLoader(TensorDataset(X, Y), batch_size=BATCH)
    for data in ((X, Y), batches(), loader):
        assert HessianOperator(TEACHER, F.cross_entropy, data).num_examples == 12
        assert predictive_divergence(STUDENT, TEACHER, data, n_boot=0).n == 12
    # inputs of another dtype are fine when dtype= converts them (a float64 measurement of a float32 network)
    assert HessianOperator(TEACHER, F.cross_entropy, (X.double(), Y), dtype=torch.float64).dtype == torch.float64
    curv = measure_teacher_curvature(TEACHER, (X, Y), (X2.double(), Y2), dtype=torch.float64, trace_matvecs=16,
                                     lanczos_matvecs=4)
    assert curv.dtype == "float64" and curv.n_train == curv.n_test == 12
    pair = evaluate_pair(TEACHER, STUDENT, loader, batches(X2, Y2), kernel=False, n_boot=0)
    assert pair.divergence_train.n == pair.divergence_test.n == 12
    assert joint_counts(np.array([0, 1], np.int32), np.array([1, 0], np.uint8), [0, 0], n_classes=2, n_t=2,
                        n_s=1).sum() == 2
