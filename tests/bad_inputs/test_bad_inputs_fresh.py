"""Bad-input table, issue 26 (a fresh table, written after the others, of forms a careless user gives).

What is new here: data in the wrong *container* (a dict, a DataLoader yielding dicts, an exhausted
generator, ``(x, y, index)`` triples), labels of a near-miss dtype (``int32``/``uint8`` class indices are
fine; ``bool`` and float are not), a network and data of different dtypes (``float64`` network,
``float32`` data) or on a device that cannot run (``meta``), and inputs that are valid but unusual —
non-contiguous or ``channels_last`` tensors, tensors with ``requires_grad``, numpy arrays and numpy
scalars — which must give *the same numbers* as their plain form. Doors: ``certify``,
``GaussianKernel.from_model``, ``select_scales``, ``predictive_divergence``, ``HessianOperator`` and the
eigenvalue/trace estimators, ``evaluate_pair``/``assign_verdicts``, PID, linear-Gaussian kernels,
``DataSplit``/``make_split``, the study scripts, ``kdbounds-train`` and ``notebooks/build.py``.

A refusal must raise the given type with a message naming the argument (a whole word), in under 0.5
CPU seconds (the least of three calls: :func:`bad_input_helpers.refusal`) and — for every door that runs
a network — before the network saw more than one batch (``Counted.rows``). A "handled" case must
return the same result as its plain form (the oracle: the same call on contiguous float32 torch
tensors). ``python tests/bad_inputs/test_bad_inputs_fresh.py`` prints the share answered well.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).parent))

from bad_input_helpers import CPU_LIMIT_S, ROOT, names_argument, refusal, script  # noqa: E402
from counted import Counted  # noqa: E402

NAN, INF = math.nan, math.inf


def _net(seed: int, classes: int = 10, dtype=torch.float32) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 8 * 8, classes))
    return Counted(net.to(dtype).eval())


TEACHER, STUDENT, T64 = _net(0), _net(1), _net(0, dtype=torch.float64)
G = torch.Generator().manual_seed(0)
X = torch.randn(12, 3, 8, 8, generator=G)
Y = torch.arange(12) % 10
BATCH = 4


def batches(x=X, y=Y):
    return [(x[i:i + BATCH], y[i:i + BATCH]) for i in range(0, len(x), BATCH)]


class DictData(Dataset):
    """A dataset whose items are dicts (HuggingFace style): a DataLoader then yields dicts."""

    def __len__(self):
        return len(X)

    def __getitem__(self, i):
        return {"image": X[i], "label": Y[i]}


DICT_LOADER = DataLoader(DictData(), batch_size=BATCH)


def exhausted():
    g = (b for b in batches())
    list(g)
    return g


def noncontig(x=X):
    """The same values as ``x`` in a non-contiguous tensor (a transposed copy transposed back)."""
    out = x.transpose(2, 3).contiguous().transpose(2, 3)
    assert not out.is_contiguous() and torch.equal(out, x)
    return out


def _kernels():
    from kdbounds.pacbayes import GaussianKernel

    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
    return net, GaussianKernel.from_model(net, 0.01), GaussianKernel.from_model(net, 0.02)


NET, Q, P = _kernels()


# ---------------------------------------------------------------------------------------------
# a case: (id, thunk, exception or None, argument named, max rows a network may see or None)
# exception None: a handled input; the thunk returns True when the result equals the plain form's
# ---------------------------------------------------------------------------------------------
def same(f, g, key=lambda r: r):
    """A handled case: ``f()`` and the plain form ``g()`` give equal results (by ``key``)."""
    def thunk():
        a, b = key(f()), key(g())
        return bool(np.allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-6, atol=1e-9, equal_nan=True))
    return thunk


def _cert(data_s=(X, Y), **kw):
    from kdbounds.pacbayes import certify

    posterior, prior = kw.pop("posterior", Q), kw.pop("prior", P)
    return lambda: certify(posterior, prior, data_s, **kw)


def _cert_key(c):
    return [c.risk_upper, c.mc_risk, c.divergence]


CERTIFY = [
    ("certify data_s a dict", _cert({"x": X, "y": Y}), TypeError, "data_s", None),
    ("certify data_s a DataLoader of dicts", _cert(DICT_LOADER), TypeError, "data_s", None),
    ("certify data_s an exhausted generator", _cert(exhausted()), ValueError, "data_s", None),
    ("certify data_s (x, y, index)", _cert((X, Y, torch.arange(12))), TypeError, "data_s", None),
    ("certify data_s y a list", _cert((X, Y.tolist())), TypeError, "data_s", None),
    ("certify data_s x (12, 3, 8, 9)", _cert((torch.randn(12, 3, 8, 9), Y)), ValueError, "data_s", None),
    ("certify data_s on meta", _cert((X.to("meta"), Y.to("meta"))), ValueError, "data_s", None),
    ("certify data_s labels 1.5", _cert((X, Y.float() + 0.5)), TypeError, "data_s", None),
    ("certify data_s labels complex", _cert((X, Y.to(torch.complex64))), TypeError, "data_s", None),
    ("certify data_s x complex", _cert((X.to(torch.complex64), Y)), TypeError, "data_s", None),
    ("certify data_s x bool", _cert((X > 0, Y)), TypeError, "data_s", None),
    ("certify posterior None", _cert(posterior=None), TypeError, "posterior", None),
    ("certify prior a module", _cert(prior=NET), TypeError, "prior", None),
    ("certify prior of another net", _cert(prior=__import__("kdbounds").pacbayes.GaussianKernel.from_model(
        nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5)), 0.02)), ValueError, "prior", None),
    ("certify n_t=True", _cert(n_t=True), TypeError, "n_t", None),
    ("certify loss=ZERO_ONE", _cert(loss="ZERO_ONE"), ValueError, "loss", None),
    ("certify loss=None", _cert(loss=None), ValueError, "loss", None),
    ("certify batch_size=2.5", _cert(batch_size=2.5), TypeError, "batch_size", None),
    ("certify test_draws=-1", _cert(test_draws=-1), ValueError, "test_draws", None),
    ("certify chunk=True", _cert(chunk=True), TypeError, "chunk", None),
    ("certify split a string", _cert(split="50/50"), TypeError, "split", None),
    ("certify labels int32 (handled)", same(_cert((X, Y.int())), _cert(), _cert_key), None, None, None),
    ("certify labels uint8 (handled)", same(_cert((X, Y.to(torch.uint8))), _cert(), _cert_key), None, None, None),
    ("certify x non-contiguous (handled)", same(_cert((noncontig(), Y)), _cert(), _cert_key), None, None, None),
    ("certify x requires_grad (handled)", same(_cert((X.clone().requires_grad_(), Y)), _cert(), _cert_key),
     None, None, None),
    ("certify numpy data (handled)", same(_cert((X.numpy(), Y.numpy())), _cert(), _cert_key), None, None, None),
    ("certify delta numpy float (handled)", same(_cert(delta=np.float64(0.025)), _cert(), _cert_key), None, None, None),
    ("certify n_draws numpy int (handled)", same(_cert(n_draws=np.int64(1)), _cert(), _cert_key), None, None, None),
]


def _kernel(std, model=None, **kw):
    from kdbounds.pacbayes import GaussianKernel

    return lambda: GaussianKernel.from_model(NET if model is None else model, std, **kw)


KERNEL = [
    ("GaussianKernel std=0", _kernel(0.0), ValueError, "std", None),
    ("GaussianKernel std=-0.1", _kernel(-0.1), ValueError, "std", None),
    ("GaussianKernel std=nan", _kernel(NAN), ValueError, "std", None),
    ("GaussianKernel std=inf", _kernel(INF), ValueError, "std", None),
    ("GaussianKernel std='0.1'", _kernel("0.1"), TypeError, "std", None),
    ("GaussianKernel std=True", _kernel(True), TypeError, "std", None),
    ("GaussianKernel std a tensor of the wrong shape", _kernel(torch.full((3,), 0.1)), ValueError, "std", None),
    ("GaussianKernel std names an unknown parameter", _kernel({"nope.weight": 0.1}), ValueError, "std", None),
    ("GaussianKernel std mapping with NaN", _kernel({"1.weight": NAN, "1.bias": 0.1}), ValueError, "std", None),
    ("GaussianKernel model a string", _kernel(0.1, model="net"), TypeError, "model", None),
    ("GaussianKernel params match nothing", _kernel(0.1, params="nothing.*"), ValueError, "params", None),
    ("GaussianKernel frozen_from another net", _kernel(0.1, frozen_from=__import__("kdbounds").pacbayes.GaussianKernel
                                                       .from_model(TEACHER, 0.1)), ValueError, "frozen_from", None),
    ("GaussianKernel std numpy float (handled)",
     same(_kernel(np.float32(0.01)), _kernel(0.01), lambda k: torch.cat([s.flatten() for s in k.std.values()])),
     None, None, None),
]


def _scales(data=(X, Y), **kw):
    from kdbounds.pacbayes import select_scales

    args = dict(prior_scales=[0.01, 0.02], posterior_scales=[0.01], n_s=12, n_draws=1)
    args.update(kw)
    prior = args.pop("prior", NET)
    return lambda: select_scales(NET, prior, data, **args)


SCALES = [
    ("select_scales prior_scales []", _scales(prior_scales=[]), ValueError, "prior_scales", None),
    ("select_scales prior_scales negative", _scales(prior_scales=[0.1, -1.0]), ValueError, "prior_scales", None),
    ("select_scales posterior_scales NaN", _scales(posterior_scales=[NAN]), ValueError, "posterior_scales", None),
    ("select_scales prior_scales a string", _scales(prior_scales="0.1"), TypeError, "prior_scales", None),
    ("select_scales n_s=0", _scales(n_s=0), ValueError, "n_s", None),
    ("select_scales n_s=1.5", _scales(n_s=1.5), TypeError, "n_s", None),
    ("select_scales n_draws=0", _scales(n_draws=0), ValueError, "n_draws", None),
    ("select_scales data labels y+10", _scales((X, Y + 10)), ValueError, "data", None),
    ("select_scales data a dict", _scales({"x": X}), TypeError, "data", None),
    ("select_scales prior of another architecture", _scales(prior=nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5))),
     ValueError, "prior", None),
]


def _pd(student=STUDENT, teacher=TEACHER, data=None, **kw):
    from kdbounds.divergence import predictive_divergence

    kw.setdefault("n_boot", 10)
    return lambda: predictive_divergence(student, teacher, batches() if data is None else data, **kw)


def _pd_key(e):
    return [e.value, e.stderr]


DIVERGENCE = [
    ("predictive_divergence float64 teacher, float32 data", _pd(teacher=T64), TypeError, "data", 0),
    ("predictive_divergence float64 student and teacher, float32 data", _pd(student=_net(1, dtype=torch.float64),
                                                                           teacher=T64), TypeError, "data", 0),
    ("predictive_divergence data on meta", _pd(data=[(X.to("meta"), Y)]), ValueError, "data", 0),
    ("predictive_divergence device='cuda:0'", _pd(device="cuda:0"), ValueError, "device", 0),
    ("predictive_divergence device='gpu0'", _pd(device="gpu0"), ValueError, "device", 0),
    ("predictive_divergence device=3", _pd(device=3), TypeError, "device", 0),
    ("predictive_divergence data a dict", _pd(data={"x": X, "y": Y}), TypeError, "data", 0),
    ("predictive_divergence DataLoader of dicts", _pd(data=DICT_LOADER), TypeError, "data", 0),
    ("predictive_divergence exhausted generator", _pd(data=exhausted()), ValueError, "data", 0),
    ("predictive_divergence batch_size=1.5", _pd(batch_size=1.5), TypeError, "batch_size", 0),
    ("predictive_divergence x bool", _pd(data=[(X > 0, Y)]), TypeError, "data", 0),
    ("predictive_divergence ensemble_student a string", _pd(ensemble_student="net"), TypeError, "student", 0),
    ("predictive_divergence x requires_grad (handled)", same(_pd(data=batches(X.clone().requires_grad_())), _pd(),
                                                             _pd_key), None, None, None),
    ("predictive_divergence x non-contiguous (handled)", same(_pd(data=batches(noncontig())), _pd(), _pd_key),
     None, None, None),
    ("predictive_divergence x channels_last (handled)", same(_pd(data=batches(X.to(memory_format=torch.channels_last))),
                                                             _pd(), _pd_key), None, None, None),
    ("predictive_divergence numpy (handled)", same(_pd(data=(X.numpy(), Y.numpy())), _pd(), _pd_key), None, None, None),
    ("predictive_divergence temperature numpy (handled)", same(_pd(temperature=np.float32(1.0)), _pd(), _pd_key),
     None, None, None),
    ("predictive_divergence device torch.device('cpu') (handled)", same(_pd(device=torch.device("cpu")), _pd(),
                                                                        _pd_key), None, None, None),
]


def _H(data=None, model=TEACHER, **kw):
    from kdbounds.curvature import HessianOperator

    return lambda: HessianOperator(model, F.cross_entropy, batches() if data is None else data, **kw)


def _hv(data):
    def run():
        op = _H(data)()
        v = torch.ones(op.shape[0], dtype=op.dtype)
        return op.matvec(v).numpy()
    return run


OPERATOR = None


def _op():
    global OPERATOR
    if OPERATOR is None:
        from kdbounds.curvature import MatrixOperator

        a = torch.diag(torch.arange(1.0, 7.0, dtype=torch.float64))
        OPERATOR = MatrixOperator(a)
    return OPERATOR


def _eig(**kw):
    from kdbounds.curvature import top_eigenvalues

    return lambda: top_eigenvalues(_op(), **kw)


def _tr(fn="hutchinson_trace", *args, **kw):
    import kdbounds.curvature as c

    return lambda: getattr(c, fn)(_op(), *args, **kw)


CURVATURE = [
    ("HessianOperator data a dict", _H({"x": X, "y": Y}), TypeError, "data", 0),
    ("HessianOperator DataLoader of dicts", _H(DICT_LOADER), TypeError, "data", 0),
    ("HessianOperator exhausted generator", _H(exhausted()), ValueError, "data", 0),
    ("HessianOperator float64 model, float32 data", _H(model=T64), TypeError, "data", BATCH),
    ("HessianOperator labels bool", _H(batches(y=Y > 4)), ValueError, "data", BATCH),
    ("HessianOperator data on meta", _H([(X.to("meta"), Y.to("meta"))]), ValueError, "data", BATCH),
    ("HessianOperator x requires_grad (handled)", same(_hv(batches(X.clone().requires_grad_())), _hv(batches())),
     None, None, None),
    ("HessianOperator x non-contiguous (handled)", same(_hv(batches(noncontig())), _hv(batches())), None, None, None),
    ("HessianOperator labels int32 (cross_entropy refuses them)", _H(batches(y=Y.int())), ValueError, "data", BATCH),
    ("HessianOperator numpy batches (handled)", same(_hv([(a.numpy(), b.numpy()) for a, b in batches()]),
                                                     _hv(batches())), None, None, None),
    ("top_eigenvalues k=0", _eig(k=0), ValueError, "k", None),
    ("top_eigenvalues k=1.5", _eig(k=1.5), TypeError, "k", None),
    ("top_eigenvalues k > dim", _eig(k=7), ValueError, "k", None),
    ("top_eigenvalues which=top", _eig(which="top"), ValueError, "which", None),
    ("top_eigenvalues tol=-1", _eig(tol=-1.0), ValueError, "tol", None),
    ("top_eigenvalues tol=nan", _eig(tol=NAN), ValueError, "tol", None),
    ("top_eigenvalues max_matvecs=0", _eig(max_matvecs=0), ValueError, "max_matvecs", None),
    ("top_eigenvalues seed=-1", _eig(seed=-1), ValueError, "seed", None),
    ("top_eigenvalues v0 wrong length", _eig(v0=torch.ones(5, dtype=torch.float64)), ValueError, "v0", None),
    ("top_eigenvalues v0 zeros", _eig(v0=torch.zeros(6, dtype=torch.float64)), ValueError, "v0", None),
    ("top_eigenvalues v0 NaN", _eig(v0=torch.full((6,), NAN, dtype=torch.float64)), ValueError, "v0", None),
    ("top_eigenvalues block_size=0", _eig(block_size=0), ValueError, "block_size", None),
    ("top_eigenvalues v0 numpy", _eig(v0=np.ones(6)), TypeError, "v0", None),
    ("hutchinson_trace num_matvecs=0", _tr(num_matvecs=0), ValueError, "num_matvecs", None),
    ("hutchinson_trace distribution=normal-ish", _tr(distribution="cauchy"), ValueError, "distribution", None),
    ("hutchinson_trace target_rel_se=0", _tr(target_rel_se=0.0), ValueError, "target_rel_se", None),
    ("hutchinson_trace max_matvecs < min_matvecs", _tr(target_rel_se=0.1, max_matvecs=5, min_matvecs=10), ValueError,
     "max_matvecs", None),
    ("hutchinson_trace block_size=0", _tr(num_matvecs=10, block_size=0), ValueError, "block_size", None),
    ("hutchinson_trace seed='a'", _tr(num_matvecs=10, seed="a"), TypeError, "seed", None),
    ("hutchpp_trace num_matvecs=0", _tr("hutchpp_trace", 0), ValueError, "num_matvecs", None),
    ("hutchpp_trace num_matvecs=1.5", _tr("hutchpp_trace", 1.5), TypeError, "num_matvecs", None),
]


def _pair(train=None, test=None, **kw):
    from kdbounds.checks import evaluate_pair

    kw.setdefault("kernel", False)
    kw.setdefault("n_boot", 10)
    return lambda: evaluate_pair(TEACHER, STUDENT, (X, Y) if train is None else train, (X, Y) if test is None else test,
                                 **kw)


def _verdicts(records, **kw):
    from kdbounds.checks import assign_verdicts

    return lambda: assign_verdicts(records, **kw)


CHECKS = [
    ("evaluate_pair train a dict", _pair(train={"x": X, "y": Y}), TypeError, "train", 0),
    ("evaluate_pair test labels y+10", _pair(test=(X, Y + 10)), ValueError, "test", 2),  # a one-row probe each
    ("evaluate_pair train labels float", _pair(train=(X, Y.float())), TypeError, "train", 0),
    ("evaluate_pair train labels bool", _pair(train=(X, Y > 3)), TypeError, "train", 0),
    ("evaluate_pair test float64 images", _pair(test=(X.double(), Y)), ValueError, "test", 2),
    ("evaluate_pair test on meta", _pair(test=(X.to("meta"), Y.to("meta"))), ValueError, "test", 0),
    ("evaluate_pair p_min=0", _pair(p_min=0.0), ValueError, "p_min", 0),
    ("evaluate_pair temperature=0", _pair(temperature=0.0), ValueError, "temperature", 0),
    ("evaluate_pair losses=('hinge',)", _pair(losses=("hinge",)), ValueError, "losses", 0),
    ("evaluate_pair losses=()", _pair(losses=()), ValueError, "losses", 0),
    ("evaluate_pair c_mode=x", _pair(c_mode="x"), ValueError, "c_mode", 0),
    ("evaluate_pair mc_draws=0", _pair(kernel=True, mc_draws=0), ValueError, "mc_draws", 0),
    ("evaluate_pair alpha=1.5", _pair(alpha=1.5), ValueError, "alpha", 0),
    ("evaluate_pair kernel_std=-1", _pair(kernel=True, kernel_std=-1.0), ValueError, "kernel_std", 0),
    ("evaluate_pair loss_increase=0", _pair(kernel=True, loss_increase=0.0), ValueError, "loss_increase", 0),
    ("evaluate_pair central_c=nan", _pair(central_c=NAN), ValueError, "central_c", 0),
    ("evaluate_pair n_boot=1.5", _pair(n_boot=1.5), TypeError, "n_boot", 0),
    ("evaluate_pair losses a string", _pair(losses="zero_one"), ValueError, "losses", 0),
    ("assign_verdicts records a list of dicts", _verdicts([{"value": 1.0}]), TypeError, "records", None),
    ("assign_verdicts records None", _verdicts(None), TypeError, "records", None),
    ("assign_verdicts alpha=0", _verdicts([], alpha=0.0), ValueError, "alpha", None),
    ("assign_verdicts method=bonferroni-x", _verdicts([], method="bonferroni-x"), ValueError, "method", None),
]


def _pid(fn, *a, **kw):
    import kdbounds.pid as pid

    return lambda: getattr(pid, fn)(*a, **kw)


P3 = np.full((2, 2, 2), 1 / 8)
COV = np.array([[1.0, 0.5, 0.3], [0.5, 1.0, 0.2], [0.3, 0.2, 1.0]])
LAB = np.arange(30) % 3
FEAT = np.random.default_rng(0).standard_normal((30, 6))
PID = [
    ("broja_pid p with inf", _pid("broja_pid", np.where(P3 > 0, [[[INF, 0.1], [0.1, 0.1]], [[0.1, 0.1], [0.1, 0.1]]],
                                                      0)), ValueError, "p", None),
    ("broja_pid p counts not normalised", _pid("broja_pid", np.ones((2, 2, 2))), ValueError, "p", None),
    ("broja_pid p bool", _pid("broja_pid", np.ones((2, 2, 2), bool)), ValueError, "p", None),
    ("broja_pid tol=0 (handled: clip nothing)", same(_pid("broja_pid", P3, tol=0.0), _pid("broja_pid", P3),
                                                     lambda r: [r.redundancy, r.synergy]), None, None, None),
    ("broja_pid torch p (handled)", same(_pid("broja_pid", torch.tensor(P3)), _pid("broja_pid", P3),
                                         lambda r: [r.redundancy, r.synergy]), None, None, None),
    ("broja_pid nested list p (handled)", same(_pid("broja_pid", P3.tolist()), _pid("broja_pid", P3),
                                               lambda r: [r.redundancy, r.synergy]), None, None, None),
    ("gaussian_pid cov with inf", _pid("gaussian_pid", np.where(np.eye(3) > 0, INF, COV)), ValueError, "cov", None),
    ("gaussian_pid cov strings", _pid("gaussian_pid", [["a"] * 3] * 3), TypeError, "cov", None),
    ("gaussian_pid torch cov (handled)", same(_pid("gaussian_pid", torch.tensor(COV)), _pid("gaussian_pid", COV),
                                              lambda r: [r.redundancy, r.synergy]), None, None, None),
    ("joint_counts y bool", _pid("joint_counts", LAB > 0, LAB, LAB, n_classes=3, n_t=3, n_s=3), TypeError, "y", None),
    ("joint_counts n_t=0", _pid("joint_counts", LAB, LAB, LAB, n_classes=3, n_t=0, n_s=3), ValueError, "n_t", None),
    ("joint_counts s out of range", _pid("joint_counts", LAB, LAB, LAB + 3, n_classes=3, n_t=3, n_s=3), ValueError,
     "s", None),
    ("joint_counts torch labels (handled)", same(_pid("joint_counts", torch.tensor(LAB), LAB, LAB, n_classes=3,
                                                      n_t=3, n_s=3),
                                                 _pid("joint_counts", LAB, LAB, LAB, n_classes=3, n_t=3, n_s=3)),
     None, None, None),
    ("fit_discretizer x_train inf", _pid("fit_discretizer", np.where(FEAT > 2, INF, FEAT), n_components=2,
                                         n_clusters=2), ValueError, "x_train", None),
    ("fit_discretizer x_train strings", _pid("fit_discretizer", np.array([["a", "b"]] * 4), n_components=1,
                                             n_clusters=2), TypeError, "x_train", None),
    ("pid_of_representations n_boot=-1", _pid("pid_of_representations", FEAT, FEAT, LAB, FEAT, FEAT, LAB, n_boot=-1),
     ValueError, "n_boot", None),
    ("pid_of_representations ci=1", _pid("pid_of_representations", FEAT, FEAT, LAB, FEAT, FEAT, LAB, ci=1.0),
     ValueError, "ci", None),
    ("pid_of_representations shuffle=x", _pid("pid_of_representations", FEAT, FEAT, LAB, FEAT, FEAT, LAB, shuffle="x"),
     ValueError, "shuffle", None),
    ("pid_of_representations n_classes=1", _pid("pid_of_representations", FEAT, FEAT, LAB, FEAT, FEAT, LAB,
                                                n_classes=1), ValueError, "n_classes", None),
    ("pid_of_representations t_train rows differ", _pid("pid_of_representations", FEAT[:20], FEAT, LAB, FEAT, FEAT,
                                                        LAB), ValueError, "t_train", None),
]


def _lg(fn, *a, **kw):
    import linear_gaussian as lg

    return lambda: getattr(lg, fn)(*a, **kw)


def _lg_data():
    import linear_gaussian as lg

    rng = np.random.default_rng(0)
    return lg.Dataset(rng.standard_normal((4, 20)), rng.standard_normal((3, 20)))  # (d x n), (k x n)


def _teacher():
    import linear_gaussian as lg

    return lg.teacher_kernel(_lg_data(), 0.1, 1.0)


I4 = np.eye(4)
LINEAR_GAUSSIAN = [
    ("teacher_kernel tau_T=0", lambda: _lg("teacher_kernel", _lg_data(), 0.1, 0.0)(), ValueError, "tau_T", None),
    ("teacher_kernel lam_T=nan", lambda: _lg("teacher_kernel", _lg_data(), NAN, 1.0)(), ValueError, "lam_T", None),
    ("teacher_kernel lam_T='0.1'", lambda: _lg("teacher_kernel", _lg_data(), "0.1", 1.0)(), TypeError, "lam_T", None),
    ("teacher_kernel data a tuple", _lg("teacher_kernel", (np.ones((3, 2)), np.ones((3, 1))), 0.1, 1.0), TypeError,
     "data", None),
    ("Dataset X with NaN", _lg("Dataset", np.full((2, 5), NAN), np.ones((1, 5))), ValueError, "X", None),
    ("Dataset columns differ", _lg("Dataset", np.ones((2, 5)), np.ones((1, 4))), ValueError, "Y", None),
    ("Dataset X 1-D", _lg("Dataset", np.ones(5), np.ones((1, 5))), ValueError, "X", None),
    ("Dataset X strings", _lg("Dataset", np.array([["a"] * 5]), np.ones((1, 5))), TypeError, "X", None),
    ("student_kernel rank=-1", lambda: _lg("student_kernel", _lg_data(), _teacher(), 0.1, 1.0, rank=-1)(), ValueError,
     "rank", None),
    ("student_kernel labels=soft", lambda: _lg("student_kernel", _lg_data(), _teacher(), 0.1, 1.0, labels="soft")(),
     ValueError, "labels", None),
    ("student_kernel metric=x", lambda: _lg("student_kernel", _lg_data(), _teacher(), 0.1, 1.0, metric="x")(),
     ValueError, "metric", None),
    ("student_kernel tau_S=-1", lambda: _lg("student_kernel", _lg_data(), _teacher(), 0.1, -1.0)(), ValueError, "tau_S",
     None),
    ("student_kernel teacher a matrix", lambda: _lg("student_kernel", _lg_data(), I4, 0.1, 1.0)(), TypeError, "teacher",
     None),
    ("MatrixNormal col_cov not PD", _lg("MatrixNormal", np.zeros((3, 4)), -I4), ValueError, "col_cov", None),
    ("MatrixNormal mean and col_cov differ", _lg("MatrixNormal", np.zeros((3, 3)), I4), ValueError, "col_cov", None),
    ("MatrixNormal mean NaN", _lg("MatrixNormal", np.full((3, 4), NAN), I4), ValueError, "mean", None),
    ("random_problem d=0", _lg("random_problem", 0, 2, 10, 1.0, np.random.default_rng(0)), ValueError, "d", None),
    ("random_problem nu=-1", _lg("random_problem", 3, 2, 10, -1.0, np.random.default_rng(0)), ValueError, "nu", None),
    ("random_problem rng an int", _lg("random_problem", 3, 2, 10, 1.0, 0), TypeError, "rng", None),
    ("random_spd cond=0.5", _lg("random_spd", 3, np.random.default_rng(0), cond=0.5), ValueError, "cond", None),
    ("predictive_kl nu=0", lambda: _lg("predictive_kl", _teacher(), _teacher(), np.ones((4, 2)), 0.0)(), ValueError,
     "nu", None),
]


def _split(*a, **kw):
    from kdbounds.certificates.split import DataSplit

    return lambda: DataSplit(*a, **kw)


def _make(*a, **kw):
    from kdbounds.certificates.split import make_split

    return lambda: make_split(*a, **kw)


LABELS = np.arange(20) % 2
SPLITS = [
    ("make_split labels bool", _make(LABELS > 0, 5), ValueError, "labels", None),
    ("make_split labels negative", _make(LABELS - 1, 5), ValueError, "labels", None),
    ("make_split labels strings", _make(np.array(["a", "b"] * 10), 5), ValueError, "labels", None),
    ("make_split n_s=True", _make(LABELS, True), TypeError, "n_s", None),
    ("make_split seed=1.5", _make(LABELS, 5, seed=1.5), TypeError, "seed", None),
    ("make_split labels torch (handled)", same(_make(torch.tensor(LABELS), 5), _make(LABELS, 5),
                                               lambda s: np.concatenate([s.teacher, s.cert])), None, None, None),
    ("make_split n_s numpy int (handled)", same(_make(LABELS, np.int64(5)), _make(LABELS, 5),
                                                lambda s: np.concatenate([s.teacher, s.cert])), None, None, None),
    ("DataSplit teacher 2-D", _split(np.array([[0, 1]]), np.array([3]), 5), ValueError, "teacher", None),
    ("DataSplit n_total bool", _split(np.array([0]), np.array([3]), True), TypeError, "n_total", None),
    ("DataSplit cert a set", _split(np.array([0]), {3}, 5), TypeError, "cert", None),
    ("DataSplit teacher NaN", _split(np.array([0.0, NAN]), np.array([3]), 5), TypeError, "teacher", None),
    ("DataSplit teacher torch (handled)", same(_split(torch.tensor([0, 1]), np.array([3]), 5),
                                               _split(np.array([0, 1]), np.array([3]), 5), lambda s: s.teacher),
     None, None, None),
    ("DataSplit teacher uint8 (handled)", same(_split(np.array([0, 1], np.uint8), np.array([3]), 5),
                                               _split(np.array([0, 1]), np.array([3]), 5), lambda s: s.teacher),
     None, None, None),
]


def _study(name, *argv):
    return lambda: script(name).parse_args(list(argv))


def _train(*argv):
    """``kdbounds-train`` up to where training would start (the sizes are checked after parsing, before torch)."""
    from kdbounds import train as cli

    return lambda: cli.main(list(argv) + ["--out", "/nonexistent-kdbounds-test/x"])


def _notebook(*argv):
    def run():
        if str(ROOT / "notebooks") not in sys.path:
            sys.path.insert(0, str(ROOT / "notebooks"))
        import build

        def no_run(*a, **k):
            raise AssertionError("a notebook ran")
        old, build.execute_notebook = build.execute_notebook, no_run
        try:
            return build.main(list(argv))
        finally:
            build.execute_notebook = old
    return run


CLI = [
    ("functional_transfer --preset nonesuch", _study("functional_transfer", "--preset", "nonesuch"), SystemExit,
     "--preset", None),
    ("functional_transfer --address ''", _study("functional_transfer", "--executor", "ray", "--address", ""), SystemExit,
     "--address", None),
    ("functional_transfer --executor RAY", _study("functional_transfer", "--executor", "RAY"), SystemExit, "--executor",
     None),
    ("functional_transfer --threads 1.5", _study("functional_transfer", "--threads", "1.5"), SystemExit, "--threads",
     None),
    ("functional_transfer --lock-timeout nan", _study("functional_transfer", "--lock-timeout", "nan"), SystemExit,
     "--lock-timeout", None),
    ("functional_transfer --n-per-class 0", _study("functional_transfer", "--n-per-class", "0"), SystemExit,
     "--n-per-class", None),
    ("sharpness_vs_gap --workers=-1", _study("sharpness_vs_gap", "--workers=-1"), SystemExit, "--workers", None),
    ("sharpness_vs_gap --max-retries 1.5", _study("sharpness_vs_gap", "--max-retries", "1.5"), SystemExit,
     "--max-retries", None),
    ("pid_transfer --preset ''", _study("pid_transfer", "--preset", ""), SystemExit, "--preset", None),
    ("certify_students --seeds=-1", _study("certify_students", "--seeds=-1"), SystemExit, "--seeds", None),
    ("certify_flatness --n-s 0", _study("certify_flatness", "--n-s", "0"), SystemExit, "--n-s", None),
    ("nuisance_teacher --test-per-class 0", _study("nuisance_teacher", "--test-per-class", "0"), SystemExit,
     "--test-per-class", None),
    ("kdbounds-train teacher --val-per-class 5000", _train("teacher", "--arch", "resnet8", "--val-per-class", "5000"),
     SystemExit, "--val-per-class", None),
    ("kdbounds-train teacher --n-per-class 6000", _train("teacher", "--arch", "resnet8", "--n-per-class", "6000"),
     SystemExit, "--n-per-class", None),
    ("kdbounds-train teacher --recipe-arg nonsense", _train("teacher", "--arch", "resnet8", "--recipe", "fast",
                                                            "--recipe-arg", "nonsense"), SystemExit, "--recipe-arg",
     None),
    ("kdbounds-train teacher --eval-every 1.5", _train("teacher", "--arch", "resnet8", "--eval-every", "1.5"),
     SystemExit, "--eval-every", None),
    ("kdbounds-train cifar100 --n-per-class 501", _train("teacher", "--arch", "resnet8", "--dataset", "cifar100",
                                                          "--n-per-class", "501"), SystemExit, "--n-per-class", None),
    ("kdbounds-train --n-per-class 4995 --val-per-class 10", _train("teacher", "--arch", "resnet8", "--n-per-class",
                                                                     "4995", "--val-per-class", "10"), SystemExit,
     "--n-per-class", None),
    ("notebooks/build.py --timeout nan", _notebook("--smoke", "01", "--timeout", "nan"), SystemExit, "--timeout", None),
    ("notebooks/build.py --timeout inf", _notebook("--smoke", "01", "--timeout", "inf"), SystemExit, "--timeout", None),
    ("notebooks/build.py unknown notebook 99", _notebook("--smoke", "99"), SystemExit, "names", None),
    ("notebooks/build.py --workdir a file", _notebook("--smoke", "01", "--workdir", __file__), SystemExit, "--workdir",
     None),
    ("notebooks/build.py --out a file", _notebook("--smoke", "01", "--out", __file__), SystemExit, "--out", None),
]

CASES = CERTIFY + KERNEL + SCALES + DIVERGENCE + CURVATURE + CHECKS + PID + LINEAR_GAUSSIAN + SPLITS + CLI


def test_table_is_large_enough():
    assert len(CASES) >= 150, len(CASES)
    assert len({c[0] for c in CASES}) == len(CASES), "two cases share an id"


def check_case(thunk, exc, name, rows, stderr) -> None:
    """The assertions of one case (``stderr()``: what the refusal printed, for command lines)."""
    if exc is None:
        assert thunk() is True, "a valid input gave another result than its plain form"
        return
    Counted.rows = 0
    info, cpu = refusal(thunk, exc)
    text = stderr() if exc is SystemExit else str(info.value)
    if exc is SystemExit:
        assert info.value.code == 2 and "Traceback" not in text, text
    assert names_argument(text, name), f"the message does not name {name!r}: {text}"
    assert cpu < CPU_LIMIT_S, f"{cpu:.2f} CPU s before the refusal"
    if rows is not None:
        assert Counted.rows <= 3 * rows, f"the networks saw {Counted.rows // 3} rows before the refusal"


@pytest.mark.parametrize("thunk,exc,name,rows", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_fresh_bad_input_named_and_refused_fast(thunk, exc, name, rows, capsys):
    check_case(thunk, exc, name, rows, lambda: capsys.readouterr().err)


def main() -> int:
    """Print the share of the table answered well (one error naming the argument, fast; or handled) and the rest."""
    import contextlib
    import io

    bad = []
    for case in CASES:
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                check_case(*case[1:], stderr=err.getvalue)
        except BaseException as e:  # noqa: BLE001 - a measurement: every way of failing counts
            bad.append(f"{case[0]}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:200])
    good = len(CASES) - len(bad)
    print("\n".join(bad))
    print(f"{good}/{len(CASES)} = {good / len(CASES):.1%} answered with one error naming the argument (or handled)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
