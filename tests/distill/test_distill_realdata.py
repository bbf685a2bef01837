"""Short real CIFAR-10 runs: the student learns, and KD differs from the student alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kdbounds.distill import TrainConfig, load_checkpoint_model, predict_logits, train

pytestmark = [pytest.mark.slow, pytest.mark.realdata]


@pytest.fixture(scope="module")
def cifar_slice():
    from kdbounds.data import load_cifar, stratified_subset

    try:
        x, y = load_cifar("cifar10", split="train")
        tx, ty = load_cifar("cifar10", split="test")
    except FileNotFoundError as e:  # DataNotFoundError subclasses FileNotFoundError
        pytest.skip(f"real CIFAR-10 not available: {e}")
    ti = stratified_subset(ty, 100, seed=0)
    return x, y, tx[ti], ty[ti]


def test_resnet8_learns_and_kd_differs_from_student_alone(tmp_path, cifar_slice):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x, y, tx, ty = cifar_slice
        # 200 images per class (2,000), 3 epochs; teacher = the CE-trained resnet8 itself
        base = dict(arch="resnet8", epochs=3, batch_size=64, lr=0.05, schedule="cosine", n_per_class=200,
                    device="cpu", seed=0)
        ce = train(TrainConfig(**base), tmp_path / "ce", data=(x, y, tx, ty), progress=False)
        assert ce.final["test_acc"] > 0.2, ce.final  # chance is 0.1
        assert ce.history[-1]["train_loss"] < ce.history[0]["train_loss"]
        teacher = load_checkpoint_model(ce.paths["model"])
        kd = train(TrainConfig(**base, method="kd", teacher_ckpt=ce.paths["model"], init_seed=1),
                   tmp_path / "kd", data=(x, y, tx, ty), progress=False)
        alone = train(TrainConfig(**base, init_seed=1), tmp_path / "alone", data=(x, y, tx, ty), progress=False)
        assert kd.final["test_acc"] > 0.2, kd.final
        student_kd = load_checkpoint_model(kd.paths["model"])
        student_alone = load_checkpoint_model(alone.paths["model"])
        # same init and data order; only the loss differs -> different functions
        p_t = predict_logits(teacher, tx).argmax(1)
        p_kd = predict_logits(student_kd, tx).argmax(1)
        p_alone = predict_logits(student_alone, tx).argmax(1)
        assert (p_kd != p_alone).float().mean() > 0.05
        # the KD student agrees with its teacher more than the student trained alone does
        agree_kd = (p_kd == p_t).float().mean().item()
        agree_alone = (p_alone == p_t).float().mean().item()
        assert agree_kd > agree_alone, (agree_kd, agree_alone)
        assert "train_kd" in kd.final and np.isfinite(kd.final["train_kd"])
    finally:
        torch.set_num_threads(n)
