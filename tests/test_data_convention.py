"""One data convention (issue 24): every public function that takes data accepts ``(x, y)`` tensors, an
iterable of ``(x, y)`` batches and a DataLoader, with equal results, and names the argument and the
three forms for anything else. The normaliser itself (kdbounds._data) and DataSplit.subset too.

The table ``CASES`` lists every such public function; a new one belongs there.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import kdbounds
from kdbounds._data import FORMS, as_batches, as_tensors, is_pair

D64 = torch.float64
FORM_NAMES = ("tensors", "batches", "loader")


def _net(seed: int, hidden: int = 5) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, hidden), nn.Tanh(), nn.Linear(hidden, 3)).to(D64).eval()


def _data(seed: int, n: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=g, dtype=D64), torch.randint(0, 3, (n,), generator=g)


def as_form(data: tuple[torch.Tensor, torch.Tensor], form: str) -> Any:
    """``(x, y)`` in one of the three forms (batches of 7: the last one is short)."""
    x, y = data
    if form == "tensors":
        return (x, y)
    if form == "batches":
        return [(x[i:i + 7], y[i:i + 7]) for i in range(0, len(x), 7)]
    return DataLoader(TensorDataset(x, y), batch_size=7, shuffle=False)


TEACHER, STUDENT = _net(0), _net(1)
TRAIN, TEST = _data(10), _data(11)
V = torch.randn(sum(p.numel() for p in TEACHER.parameters()), generator=torch.Generator().manual_seed(3), dtype=D64)


def _divergence(data: Any) -> Any:
    d = kdbounds.predictive_divergence(STUDENT, TEACHER, data, n_boot=0)
    return [d.value, d.stderr, d.n]


def _logits(data: Any) -> Any:
    return kdbounds.collect_logits([TEACHER, STUDENT], data)


def _hessian(data: Any) -> Any:
    return kdbounds.HessianOperator(TEACHER, F.cross_entropy, data) @ V


def _gap_train(data: Any) -> Any:
    return kdbounds.GapHessianOperator(TEACHER, F.cross_entropy, data, TEST) @ V


def _gap_heldout(data: Any) -> Any:
    return kdbounds.GapHessianOperator(TEACHER, F.cross_entropy, TRAIN, data) @ V


def _dense(data: Any) -> Any:
    return kdbounds.dense_hessian(TEACHER, F.cross_entropy, data)


def _pair_records(train: Any, test: Any) -> Any:
    pc = kdbounds.evaluate_pair(TEACHER, STUDENT, train, test, kernel=False, n_boot=0)
    return [[r.bound, r.observed] for r in pc.records if r.bound is not None]


def _curvature(train: Any, test: Any) -> Any:
    c = kdbounds.measure_teacher_curvature(TEACHER, train, test, trace_matvecs=12, lanczos_matvecs=4)
    return [c.gap_at_teacher, c.grad_norm, c.gap_trace.value, c.train_trace.value, c.gap_eig_max]


def _kernels() -> tuple[Any, Any]:
    prior = kdbounds.GaussianKernel.from_model(TEACHER, 0.05)
    return kdbounds.GaussianKernel.from_model(STUDENT, 0.04, frozen_from=prior), prior


def _certify(data: Any) -> Any:
    q, p = _kernels()
    c = kdbounds.certify(q, p, data, n_draws=3, seed=5)
    return [c.risk_upper, c.mc_risk, c.divergence, c.n_s]


def _certify_test(data: Any) -> Any:
    q, p = _kernels()
    c = kdbounds.certify(q, p, TRAIN, n_draws=2, seed=5, test_data=data)
    return [c.test_gibbs_risk["value"], c.risk_upper]


def _scales(data: Any) -> Any:
    s = kdbounds.select_scales(STUDENT, TEACHER, data, prior_scales=[0.02, 0.05], posterior_scales=[0.03], n_s=20)
    return [s.sigma_prior, s.sigma_posterior, s.proxy_bound]


def _evaluate(data: Any) -> Any:
    return list(kdbounds.evaluate(TEACHER, data))


def _posterior(data: Any) -> Any:
    prior = kdbounds.GaussianKernel.from_model(STUDENT, 0.05)
    q = kdbounds.learn_posterior(STUDENT, prior, data, n_bound=20, batch_size=7, epochs=2, lr=0.05, progress=False)
    return [q.mean[n] for n in q.names] + [q.std[n] for n in q.names]


# (function name, the data argument, the call with that argument in the given form)
CASES: list[tuple[str, str, Callable[[Any], Any]]] = [
    ("predictive_divergence", "data", _divergence),
    ("collect_logits", "data", _logits),
    ("HessianOperator", "data", _hessian),
    ("GapHessianOperator", "train_data", _gap_train),
    ("GapHessianOperator", "heldout_data", _gap_heldout),
    ("dense_hessian", "data", _dense),
    ("evaluate_pair", "train", lambda d: _pair_records(d, TEST)),
    ("evaluate_pair", "test", lambda d: _pair_records(TRAIN, d)),
    ("measure_teacher_curvature", "train", lambda d: _curvature(d, TEST)),
    ("measure_teacher_curvature", "test", lambda d: _curvature(TRAIN, d)),
    ("certify", "data_s", _certify),
    ("certify", "test_data", _certify_test),
    ("select_scales", "data", _scales),
    ("evaluate", "loader", _evaluate),
    ("learn_posterior", "data", _posterior),
]
IDS = [f"{f}-{arg}" for f, arg, _ in CASES]
RTOL = {"evaluate": 1e-6}  # it sums float32 losses batch by batch; everything else is float64


def _flat(result: Any) -> np.ndarray:
    if isinstance(result, torch.Tensor):
        return result.detach().double().reshape(-1).numpy()
    if isinstance(result, (list, tuple)):
        return np.concatenate([_flat(r) for r in result]) if result else np.zeros(0)
    return np.asarray([float(result)])


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_three_forms_give_equal_results(case):
    name, arg, call = case
    data = TRAIN if arg not in ("test", "heldout_data", "test_data") else TEST
    results = {form: _flat(call(as_form(data, form))) for form in FORM_NAMES}
    assert results["tensors"].size > 0
    for form in ("batches", "loader"):
        np.testing.assert_allclose(results[form], results["tensors"], rtol=RTOL.get(name, 1e-9), atol=1e-12,
                                   err_msg=form)


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("bad", [42, "cifar10", {"x": 1}], ids=["int", "str", "dict"])
def test_anything_else_names_the_argument_and_the_forms(case, bad):
    _, arg, call = case
    with pytest.raises(TypeError) as err:
        call(bad)
    message = str(err.value)
    assert message.startswith(f"{arg}:"), message
    assert "(x, y) tensors" in message and "DataLoader" in message, message


@pytest.mark.parametrize("case", [c for c in CASES if c[0] not in ("predictive_divergence", "collect_logits")],
                         ids=[i for i, c in zip(IDS, CASES) if c[0] not in ("predictive_divergence", "collect_logits")])
def test_inputs_without_targets_are_refused(case):
    # predictive_divergence / collect_logits also take inputs alone; everything that needs targets says so
    _, arg, call = case
    with pytest.raises(TypeError, match=rf"^{arg}: .*inputs alone: pass \(x, y\)"):
        call(TRAIN[0])


def test_generator_of_batches_is_read_once_and_kept():
    batches = as_batches(b for b in as_form(TRAIN, "batches"))
    assert isinstance(batches, list) and len(batches) == 3
    assert torch.equal(as_tensors(iter(batches))[0], TRAIN[0])


def test_loader_view_is_re_iterable_and_drops_extra_entries():
    x, y = TRAIN
    idx = torch.arange(len(x))
    view = as_batches(DataLoader(TensorDataset(x, y, idx), batch_size=8), "loader")
    assert len(view) == 3
    for _ in range(2):  # twice: a view, not a one-shot iterator
        got = list(view)
        assert [len(b) for b in got] == [2, 2, 2]
        assert torch.equal(torch.cat([b[0] for b in got]), x)


def test_pair_detection():
    x, y = TRAIN
    assert is_pair((x, y)) and is_pair([x.numpy(), y.numpy()])
    assert not is_pair([(x, y), (x, y)])  # two batches
    assert not is_pair((x, y, y)) and not is_pair(x)
    with pytest.raises(ValueError, match="same leading length"):
        as_batches((x, y[:-1]), "train")
    with pytest.raises(ValueError, match="batch_size"):
        as_batches((x, y), batch_size=0)
    with pytest.raises(ValueError, match="no batches"):
        as_tensors([], "data")
    assert [len(b[0]) for b in as_batches((x, y), batch_size=8)] == [8, 8, 4]
    assert FORMS.count("(x, y)") == 2


def test_numpy_pair_becomes_tensors():
    x, y = as_tensors((TRAIN[0].numpy(), TRAIN[1].numpy()), "data")
    assert isinstance(x, torch.Tensor) and torch.equal(x, TRAIN[0]) and torch.equal(y, TRAIN[1])


# ---- DataSplit.subset: numpy arrays and torch tensors alike -----------------------------------------
def test_split_subset_numpy_and_torch_alike():
    labels = np.arange(30) % 3
    split = kdbounds.make_split(labels, 9, seed=1)
    x = torch.arange(60, dtype=D64).reshape(30, 2)
    xs, ys = split.subset((x, torch.as_tensor(labels)), "cert")
    assert torch.equal(xs, x[torch.as_tensor(np.array(split.cert))])
    np.testing.assert_array_equal(ys.numpy(), labels[split.cert])
    np.testing.assert_array_equal(split.subset(labels, "teacher"), labels[split.teacher])
    assert len(split.subset(TensorDataset(x), "union")) == 30
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "non-writable NumPy array" warning from torch
        split.subset(x, "cert")
    with pytest.raises(ValueError, match="side"):
        split.subset(x, "test")
    with pytest.raises(ValueError, match="rows"):
        split.subset(x[:10], "cert")
    with pytest.raises(TypeError, match="data"):
        split.subset([1, 2, 3], "cert")
    assert not split.cert.flags.writeable  # the record itself stays read-only


# ---- the walk: every public name that takes data is in CASES (or says why it is not) -----------------
# A parameter "takes data" when its name says so; the walk covers every top-level callable of kdbounds
# and the public methods of its classes (not the constructors of dataclass records: their fields hold results).
DATA_PARAM = re.compile(r"^(data|train|test|heldout|loader|data_[a-z]|[a-z]+_(data|loader))$")

# (function, argument) -> why it is not one of the three forms. Anything here is not "data" in the sense
# of the convention: the walk fails on a new data-taking function that is neither in CASES nor here.
NOT_THE_CONVENTION: dict[tuple[str, str], str] = {
    ("DataSplit.subset", "data"): "selects the rows of one array, tensor, Dataset or (x, y) of the split's pool "
                                  "(test_split_subset_numpy_and_torch_alike)",
    ("GapHessianOperator.from_operators", "train"): "a HessianOperator, not data",
    ("GapHessianOperator.from_operators", "heldout"): "a HessianOperator, not data",
    ("bank_teacher", "data"): "the trainer's raw uint8 (train_x, train_y, test_x, test_y), augmented by its own loader",
    ("prior_run", "data_t"): "the trainer's raw uint8 (x_T, y_T, x_test, y_test), augmented by its own loader",
}

# the same three forms for evaluate_tta, which needs image-shaped inputs (it flips and crops them)
_IMAGES = (torch.randn(10, 3, 8, 8, generator=torch.Generator().manual_seed(4)), torch.arange(10) % 3)
_CNN = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(), nn.Linear(72, 3)).eval()


def _public_callables() -> list[tuple[str, Callable[..., Any]]]:
    found: list[tuple[str, Callable[..., Any]]] = []
    for name in sorted(kdbounds.__all__):
        obj = getattr(kdbounds, name)
        if inspect.isclass(obj):
            if issubclass(obj, nn.Module):
                continue  # networks: forward(x) takes inputs, not data
            if not dataclasses.is_dataclass(obj):  # a record's constructor takes its fields (results)
                found.append((name, obj))
            for attr, member in vars(obj).items():
                if not attr.startswith("_") and isinstance(member, (staticmethod, classmethod, type(_flat))):
                    found.append((f"{name}.{attr}", getattr(obj, attr)))
        elif callable(obj) and not isinstance(obj, type(kdbounds)):
            found.append((name, obj))
    return found


def data_arguments() -> set[tuple[str, str]]:
    """Every (public callable, parameter) whose parameter takes data, by its name."""
    out = set()
    for name, fn in _public_callables():
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            continue
        out |= {(name, p) for p in params if DATA_PARAM.match(p)}
    return out


def test_every_public_data_argument_takes_the_three_forms():
    found = data_arguments()
    covered = {(f, arg) for f, arg, _ in CASES} | {("evaluate_tta", "loader")} | set(NOT_THE_CONVENTION)
    assert len(found) >= 18, sorted(found)  # the walk does find the data arguments
    missing = sorted(found - covered)
    assert not missing, (f"public functions that take data but are not in CASES (add a case; the function reads "
                         f"its data through kdbounds._data.as_batches/as_tensors): {missing}")
    stale = sorted(covered - found)
    assert not stale, f"CASES / NOT_THE_CONVENTION name arguments that no public function has: {stale}"


def test_the_walk_finds_a_new_data_argument(monkeypatch):
    def new_measure(model, heldout_data, *, data_root=None):  # a planted public function
        return model, heldout_data, data_root

    monkeypatch.setattr(kdbounds, "__all__", [*kdbounds.__all__, "new_measure"])
    monkeypatch.setattr(kdbounds, "new_measure", new_measure, raising=False)
    assert ("new_measure", "heldout_data") in data_arguments()
    assert ("new_measure", "data_root") not in data_arguments()  # a folder, not data


def test_evaluate_tta_batches_and_loader_agree():
    reference = kdbounds.evaluate_tta(_CNN, as_form(_IMAGES, "loader"))
    assert kdbounds.evaluate_tta(_CNN, as_form(_IMAGES, "batches")) == reference


def test_evaluate_tta_takes_tensors():
    reference = kdbounds.evaluate_tta(_CNN, as_form(_IMAGES, "loader"))
    assert kdbounds.evaluate_tta(_CNN, as_form(_IMAGES, "tensors")) == reference


def test_evaluate_tta_names_its_argument():
    with pytest.raises(TypeError) as err:
        kdbounds.evaluate_tta(_CNN, 42)
    assert str(err.value).startswith("loader:") and "DataLoader" in str(err.value), str(err.value)
