"""Bad-input table, door 3: the public Python API (training config, model zoo, data splits, the
measurement API: fidelity, predictive divergence, PID, bounds, statistics, checkpoints, run cache).

Each case calls one function with one bad argument and must raise the stated exception type with a
message naming the argument (case-insensitive substring). Oracle: the argument's documented domain.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from kdbounds import bounds, stats
from kdbounds.data.splits import stratified_subset, train_val_split
from kdbounds.distill import TrainConfig
from kdbounds.divergence import divergence_from_logits, predictive_divergence, summarize_per_example
from kdbounds.fidelity import expected_calibration_error, fidelity_report, softmax_probs
from kdbounds.models import build_model
from kdbounds.pid import broja_pid, gaussian_pid

INF, NAN = math.inf, math.nan
RNG = np.random.default_rng(0)
ZS = torch.randn(20, 5, generator=torch.Generator().manual_seed(0))
ZT = torch.randn(20, 5, generator=torch.Generator().manual_seed(1))
Y = torch.arange(20) % 5
P3 = RNG.random((2, 3, 3))
P3 = P3 / P3.sum()
X_IMG = torch.randn(4, 3, 32, 32)


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 5))


def cfg(**kw):
    return lambda: TrainConfig("resnet8", **kw)


TRAIN_CONFIG = [  # (id, thunk, exception, name in message)
    ("lr=inf", cfg(lr=INF), ValueError, "lr"), ("lr=nan", cfg(lr=NAN), ValueError, "lr"),
    ("lr=0", cfg(lr=0.0), ValueError, "lr"), ("lr=-1", cfg(lr=-1.0), ValueError, "lr"),
    ("lr='0.1'", cfg(lr="0.1"), TypeError, "lr"), ("lr=True", cfg(lr=True), TypeError, "lr"),
    ("momentum=5", cfg(momentum=5.0), ValueError, "momentum"), ("momentum=1", cfg(momentum=1.0), ValueError, "momentum"),
    ("momentum=-0.5", cfg(momentum=-0.5), ValueError, "momentum"), ("momentum=nan", cfg(momentum=NAN), ValueError, "momentum"),
    ("weight_decay=inf", cfg(weight_decay=INF), ValueError, "weight_decay"),
    ("weight_decay=-1", cfg(weight_decay=-1.0), ValueError, "weight_decay"),
    ("lr_gamma=0", cfg(lr_gamma=0.0), ValueError, "lr_gamma"), ("lr_gamma=inf", cfg(lr_gamma=INF), ValueError, "lr_gamma"),
    ("grad_clip=inf", cfg(grad_clip=INF), ValueError, "grad_clip"), ("grad_clip=0", cfg(grad_clip=0.0), ValueError, "grad_clip"),
    ("grad_clip=nan", cfg(grad_clip=NAN), ValueError, "grad_clip"),
    ("epochs=0", cfg(epochs=0), ValueError, "epochs"), ("epochs=-1", cfg(epochs=-1), ValueError, "epochs"),
    ("epochs=1.5", cfg(epochs=1.5), TypeError, "epochs"), ("batch_size=0", cfg(batch_size=0), ValueError, "batch_size"),
    ("eval_every=0", cfg(eval_every=0), ValueError, "eval_every"),
    ("n_per_class=0", cfg(n_per_class=0), ValueError, "n_per_class"),
    ("val_per_class=-1", cfg(val_per_class=-1), ValueError, "val_per_class"),
    ("seed=-1", cfg(seed=-1), ValueError, "seed"), ("seed=2**32", cfg(seed=2**32), ValueError, "seed"),
    ("seed=2**70", cfg(seed=2**70), ValueError, "seed"), ("init_seed=-1", cfg(init_seed=-1), ValueError, "init_seed"),
    ("init_seed=2**40", cfg(init_seed=2**40), ValueError, "init_seed"),
    ("subset_seed=2**33", cfg(subset_seed=2**33), ValueError, "subset_seed"),
    ("schedule=linear", cfg(schedule="linear"), ValueError, "schedule"),
    ("milestones=(0,)", cfg(milestones=(0,)), ValueError, "milestones"),
    ("device=gpu", cfg(device="gpu"), ValueError, "device"), ("device=cuda:x", cfg(device="cuda:x"), ValueError, "device"),
    ("dataset=mnist", cfg(dataset="mnist"), ValueError, "dataset"),
    ("arch=''", lambda: TrainConfig(""), ValueError, "arch"),
    ("method=''", cfg(method=""), ValueError, "method"),
    ("method_kwargs=[1]", cfg(method_kwargs=[1]), TypeError, "method_kwargs"),
    ("method_kwargs T=inf", cfg(method_kwargs={"T": INF}), ValueError, "method_kwargs"),
    ("method_kwargs T=nan", cfg(method_kwargs={"T": NAN}), ValueError, "method_kwargs"),
    ("method_kwargs T=list", cfg(method_kwargs={"T": [4]}), TypeError, "method_kwargs"),
    ("from_dict unknown field", lambda: TrainConfig.from_dict({"arch": "resnet8", "lrr": 0.1}), ValueError, "lrr"),
]

MODELS = [
    ("seed=2**70", lambda: build_model("resnet8", seed=2**70), ValueError, "seed"),
    ("seed=-1", lambda: build_model("resnet8", seed=-1), ValueError, "seed"),
    ("seed=1.5", lambda: build_model("resnet8", seed=1.5), TypeError, "seed"),
    ("seed='0'", lambda: build_model("resnet8", seed="0"), TypeError, "seed"),
    ("name=resnet9", lambda: build_model("resnet9"), ValueError, "resnet9"),
    ("name=None", lambda: build_model(None), TypeError, "name"),
    ("num_classes=0", lambda: build_model("resnet8", num_classes=0), ValueError, "num_classes"),
    ("num_classes=10.5", lambda: build_model("resnet8", num_classes=10.5), TypeError, "num_classes"),
]

DATA = [
    ("subset n_per_class=0", lambda: stratified_subset(np.arange(20) % 5, 0, seed=0), ValueError, "n_per_class"),
    ("subset n_per_class=100", lambda: stratified_subset(np.arange(20) % 5, 100, seed=0), ValueError, "n_per_class"),
    ("subset float labels", lambda: stratified_subset(np.arange(20) * 0.5, 2, seed=0), TypeError, "labels"),
    ("subset 2-D labels", lambda: stratified_subset(np.zeros((4, 5), int), 1, seed=0), ValueError, "labels"),
    ("subset empty labels", lambda: stratified_subset(np.array([], int), 1, seed=0), ValueError, "labels"),
    ("subset n_per_class='2'", lambda: stratified_subset(np.arange(20) % 5, "2", seed=0), TypeError, "n_per_class"),
    ("val_split val_per_class=-1", lambda: train_val_split(np.arange(20) % 5, -1, seed=0), ValueError, "val_per_class"),
]

FIDELITY = [
    ("n_boot=-5", lambda: fidelity_report(ZS, ZT, Y, n_boot=-5), ValueError, "n_boot"),
    ("n_boot=1", lambda: fidelity_report(ZS, ZT, Y, n_boot=1), ValueError, "n_boot"),
    ("n_boot=2.5", lambda: fidelity_report(ZS, ZT, Y, n_boot=2.5), TypeError, "n_boot"),
    ("n_boot=True", lambda: fidelity_report(ZS, ZT, Y, n_boot=True), TypeError, "n_boot"),
    ("seed=-1", lambda: fidelity_report(ZS, ZT, Y, seed=-1), ValueError, "seed"),
    ("seed=2**40", lambda: fidelity_report(ZS, ZT, Y, seed=2**40), ValueError, "seed"),
    ("ece_bins=0", lambda: fidelity_report(ZS, ZT, Y, ece_bins=0), ValueError, "ece_bins"),
    ("temperature=0", lambda: fidelity_report(ZS, ZT, Y, temperature=0.0), ValueError, "temperature"),
    ("temperature=inf", lambda: fidelity_report(ZS, ZT, Y, temperature=INF), ValueError, "temperature"),
    ("temperature=nan", lambda: fidelity_report(ZS, ZT, Y, temperature=NAN), ValueError, "temperature"),
    ("ece_temperature=-1", lambda: fidelity_report(ZS, ZT, Y, ece_temperature=-1.0), ValueError, "ece_temperature"),
    ("labels out of range", lambda: fidelity_report(ZS, ZT, Y + 5), ValueError, "labels"),
    ("labels negative", lambda: fidelity_report(ZS, ZT, Y - 1), ValueError, "labels"),
    ("labels wrong length", lambda: fidelity_report(ZS, ZT, Y[:5]), ValueError, "labels"),
    ("labels non-integer", lambda: fidelity_report(ZS, ZT, Y + 0.5), ValueError, "labels"),
    ("class counts differ", lambda: fidelity_report(ZS, ZT[:, :4]), ValueError, "class"),
    ("example counts differ", lambda: fidelity_report(ZS, ZT[:10]), ValueError, "example"),
    ("student 1-D", lambda: fidelity_report(ZS[:, 0], ZT), ValueError, "student_logits"),
    ("teacher nan", lambda: fidelity_report(ZS, ZT * NAN), ValueError, "teacher"),
    ("ece n_boot=-1", lambda: expected_calibration_error(softmax_probs(ZS), Y, n_boot=-1), ValueError, "n_boot"),
    ("ece seed=-3", lambda: expected_calibration_error(softmax_probs(ZS), Y, seed=-3), ValueError, "seed"),
    ("ece n_bins=0", lambda: expected_calibration_error(softmax_probs(ZS), Y, n_bins=0), ValueError, "n_bins"),
    ("ece labels out of range", lambda: expected_calibration_error(softmax_probs(ZS), Y + 7), ValueError, "labels"),
    ("softmax temperature=0", lambda: softmax_probs(ZS, 0.0), ValueError, "temperature"),
]

DIVERGENCE = [
    ("temperature=0", lambda: predictive_divergence(ZS, ZT, temperature=0.0), ValueError, "temperature"),
    ("temperature=inf", lambda: predictive_divergence(ZS, ZT, temperature=INF), ValueError, "temperature"),
    ("temperature=nan", lambda: predictive_divergence(ZS, ZT, temperature=NAN), ValueError, "temperature"),
    ("n_boot=-1", lambda: predictive_divergence(ZS, ZT, n_boot=-1), ValueError, "n_boot"),
    ("n_boot=1.5", lambda: predictive_divergence(ZS, ZT, n_boot=1.5), TypeError, "n_boot"),
    ("ci=0", lambda: predictive_divergence(ZS, ZT, ci=0.0), ValueError, "ci"),
    ("ci=1", lambda: predictive_divergence(ZS, ZT, ci=1.0), ValueError, "ci"),
    ("ci=nan", lambda: predictive_divergence(ZS, ZT, ci=NAN), ValueError, "ci"),
    ("seed=-1", lambda: predictive_divergence(ZS, ZT, seed=-1), ValueError, "seed"),
    ("batch_size=0", lambda: predictive_divergence(_tiny(), ZT[:4], X_IMG, batch_size=0), ValueError, "batch_size"),
    ("device=bogus", lambda: predictive_divergence(_tiny(), ZT[:4], X_IMG, device="bogus"), ValueError, "device"),
    ("device=cuda:99", lambda: predictive_divergence(_tiny(), ZT[:4], X_IMG, device="cuda:99"), ValueError, "device"),
    ("device=3 (int)", lambda: predictive_divergence(_tiny(), ZT[:4], X_IMG, device=3), TypeError, "device"),
    ("data wrong shape", lambda: predictive_divergence(_tiny(), ZT[:4], torch.randn(4, 1, 28, 28)), ValueError, "data"),
    ("data wrong channels resnet", lambda: predictive_divergence(build_model("resnet8", 5, seed=0), ZT[:4],
                                                                  torch.randn(4, 1, 32, 32)), ValueError, "data"),
    ("data uint8", lambda: predictive_divergence(_tiny(), ZT[:4], torch.zeros(4, 3, 32, 32, dtype=torch.uint8)),
     TypeError, "data"),
    ("data None with a model", lambda: predictive_divergence(_tiny(), ZT[:4]), ValueError, "data"),
    ("data a string", lambda: predictive_divergence(_tiny(), ZT[:4], "images"), TypeError, "data"),
    ("class counts differ", lambda: predictive_divergence(ZS, ZT[:, :3]), ValueError, "class"),
    ("counts differ", lambda: predictive_divergence(ZS, ZT[:7]), ValueError, "teacher"),
    ("student nan logits", lambda: predictive_divergence(ZS * NAN, ZT), ValueError, "student"),
    ("teacher 1-D", lambda: predictive_divergence(ZS, ZT[:, 0]), ValueError, "teacher"),
    ("teacher int logits", lambda: predictive_divergence(ZS, Y.view(-1, 1).expand(-1, 5).contiguous()), TypeError, "teacher"),
    ("model outputs", lambda: predictive_divergence(nn.Flatten(), ZT[:4], X_IMG), ValueError, "class"),
    ("from_logits temperature=-1", lambda: divergence_from_logits(ZS, ZT, -1.0), ValueError, "temperature"),
    ("summarize nan values", lambda: summarize_per_example(torch.tensor([0.1, NAN])), ValueError, "values"),
    ("summarize n_boot=-2", lambda: summarize_per_example(torch.tensor([0.1, 0.2]), n_boot=-2), ValueError, "n_boot"),
    ("summarize 2-D", lambda: summarize_per_example(torch.zeros(2, 2)), ValueError, "values"),
]

PID = [
    ("solver=nope", lambda: broja_pid(P3, solver="nope"), ValueError, "solver"),
    ("solver=3", lambda: broja_pid(P3, solver=3), TypeError, "solver"),
    ("solver_opts unknown", lambda: broja_pid(P3, solver_opts={"foo": 1}), ValueError, "solver_opts"),
    ("solver_opts wrong type", lambda: broja_pid(P3, solver_opts={"max_iter": "x"}), ValueError, "solver_opts"),
    ("solver_opts SCS unknown", lambda: broja_pid(P3, solver="SCS", solver_opts={"foo": 1}), ValueError, "solver_opts"),
    ("solver_opts list", lambda: broja_pid(P3, solver_opts=[1]), TypeError, "solver_opts"),
    ("solver_opts int key", lambda: broja_pid(P3, solver_opts={1: 2}), TypeError, "solver_opts"),
    ("units=hartleys", lambda: broja_pid(P3, units="hartleys"), ValueError, "units"),
    ("tol=-1", lambda: broja_pid(P3, tol=-1.0), ValueError, "tol"),
    ("tol=nan", lambda: broja_pid(P3, tol=NAN), ValueError, "tol"),
    ("gap_tol=inf", lambda: broja_pid(P3, gap_tol=INF), ValueError, "gap_tol"),
    ("p negative", lambda: broja_pid(P3 - 0.1), ValueError, "p"),
    ("p 2-D", lambda: broja_pid(P3[0]), ValueError, "p"),
    ("p sums to 2", lambda: broja_pid(2 * P3), ValueError, "p"),
    ("p nan", lambda: broja_pid(P3 * NAN), ValueError, "p"),
    ("gaussian dims", lambda: gaussian_pid(np.eye(3), dims=(1, 1)), ValueError, "dims"),
    ("gaussian not PSD", lambda: gaussian_pid(-np.eye(3)), ValueError, "cov"),
    ("gaussian units", lambda: gaussian_pid(np.eye(3), units="x"), ValueError, "units"),
]

BOUNDS = [
    ("subgaussian divergence<0", lambda: bounds.subgaussian_bound(-0.1, 1.0), ValueError, "divergence"),
    ("subgaussian divergence=nan", lambda: bounds.subgaussian_bound(NAN, 1.0), ValueError, "divergence"),
    ("subgaussian sigma=inf", lambda: bounds.subgaussian_bound(0.1, INF), ValueError, "sigma"),
    ("subgaussian sigma=None", lambda: bounds.subgaussian_bound(0.1, None), TypeError, "sigma"),
    ("subgaussian n=0", lambda: bounds.subgaussian_bound(0.1, 1.0, n=0), ValueError, "n"),
    ("sharpness rho=-1", lambda: bounds.sharpness_radius_bound(0.1, -1.0, 1.0, 1.0), ValueError, "rho"),
    ("sharpness grad_norm=nan", lambda: bounds.sharpness_radius_bound(0.1, 1.0, NAN, 1.0), ValueError, "grad_norm"),
    ("subgamma v=-1", lambda: bounds.subgamma_bound(0.1, -1.0, 1.0), ValueError, "v"),
    ("stats ci=1.5", lambda: stats.compare_groups([1.0, 2.0, 3.0], [2.0, 3.0, 4.0], ci=1.5), ValueError, "ci"),
    ("stats nan value", lambda: stats.compare_groups([1.0, NAN, 3.0], [2.0, 3.0, 4.0]), ValueError, "nan"),
    ("stats alternative", lambda: stats.compare_groups([1.0, 2.0], [2.0, 3.0], alternative="up"), ValueError, "alternative"),
    ("holm p>1", lambda: stats.holm_adjust([0.5, 1.5]), ValueError, "pvalues[1]"),
    ("holm p<0", lambda: stats.holm_adjust([-0.1]), ValueError, "pvalues[0]"),
    ("holm p=inf", lambda: stats.holm_adjust([0.1, INF]), ValueError, "pvalues[1]"),
    ("holm 2-D", lambda: stats.holm_adjust([[0.1, 0.2]]), ValueError, "pvalues"),
]

CASES = [(f"{door}: {i}", f, e, n) for door, table in (
    ("TrainConfig", TRAIN_CONFIG), ("build_model", MODELS), ("data.splits", DATA), ("fidelity", FIDELITY),
    ("divergence", DIVERGENCE), ("pid", PID), ("bounds/stats", BOUNDS)) for i, f, e, n in table]


@pytest.mark.parametrize("thunk,exc,name", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_argument_raises_naming_it(thunk, exc, name):
    with pytest.raises(exc) as info:
        thunk()
    assert name.lower() in str(info.value).lower(), str(info.value)
