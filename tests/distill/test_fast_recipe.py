"""The fast recipe (airbench94's techniques): each technique against an independent computation, resume
after kill -9, byte-identical reruns, and the fast recipe beating the old one at equal CPU time."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from kdbounds.data.transforms import TensorLoader, normalization, normalize_uint8
from kdbounds.distill import TrainConfig, train
from kdbounds.distill.checkpoint import read_checkpoint
from kdbounds.distill.recipe_settings import (FastRecipeSettings, fast_sgd_hparams, triangular_multiplier,
                                              whitening_indices)
from kdbounds.distill.recipes import FastRecipe, Lookahead, fast_config, tta_logits
from kdbounds.distill.trainer import load_checkpoint_model
from kdbounds.models import build_model
from kdbounds.models.airbench import patch_covariance, whitening_weights

ROOT = Path(__file__).resolve().parents[2]


def _images(n=64, seed=0):
    """Correlated-channel uint8 images with a learnable label (bright quadrant), NHWC."""
    g = np.random.default_rng(seed)
    y = np.arange(n) % 4
    base = g.integers(0, 120, (n, 32, 32, 1))
    x = np.concatenate([base, base // 2 + g.integers(0, 60, (n, 32, 32, 1)),
                        g.integers(0, 120, (n, 32, 32, 1))], axis=3)
    for i, c in enumerate(y):
        r, q = divmod(int(c), 2)
        x[i, 16 * r:16 * r + 16, 16 * q:16 * q + 16] += 120
    return x.clip(0, 255).astype(np.uint8), y


def _normalised(x):
    mean, std = normalization("cifar10")
    return normalize_uint8(torch.as_tensor(x).permute(0, 3, 1, 2), mean, std)


def _sha(p):
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------ whitening

def test_whitening_layer_whitens_training_patches():
    x = _normalised(_images(200)[0])
    eps = 1e-9
    w = whitening_weights(x, eps=eps).double()
    out = F.conv2d(x.double(), w)[:, :12]  # the first 12 channels: whitened patches (bias excluded)
    cov = patch_covariance_of_outputs(out)
    assert torch.allclose(cov, torch.eye(12, dtype=torch.float64), atol=1e-4)
    assert torch.allclose(F.conv2d(x.double(), w)[:, 12:], -out)  # the other 12: their negatives
    # an independent covariance (numpy over explicitly cut patches) agrees with patch_covariance
    xn = x.double().numpy()
    patches = np.stack([xn[:, :, i:i + 2, j:j + 2].reshape(len(xn), -1) for i in range(31) for j in range(31)], 1)
    assert np.allclose(np.cov(patches.reshape(-1, 12), rowvar=False), patch_covariance(x).numpy(), atol=1e-9)


def patch_covariance_of_outputs(out):
    z = out.permute(0, 2, 3, 1).reshape(-1, out.shape[1])
    z = z - z.mean(0)
    return z.T @ z / (z.shape[0] - 1)


def test_whitening_with_wrong_statistics_does_not_whiten():
    """Guard against a whitening layer computed from other images (here: other, independent ones)."""
    x = _normalised(_images(200)[0])
    other = torch.randn(50, 3, 32, 32)
    out = F.conv2d(x.double(), whitening_weights(other, eps=1e-9).double())[:, :12]
    assert not torch.allclose(patch_covariance_of_outputs(out), torch.eye(12, dtype=torch.float64), atol=0.1)


def test_dirac_initialisation_passes_input_through():
    net = build_model("airbench_s", seed=3)
    for conv in net.dirac_convs():
        x = torch.randn(2, conv.in_channels, 9, 9)
        assert torch.allclose(conv(x)[:, : conv.in_channels], x, atol=1e-6)
        if conv.out_channels > conv.in_channels:
            assert conv(x)[:, conv.in_channels:].abs().max() > 0.01  # the other filters are random


# ------------------------------------------------------------------------------------------ schedule, optimiser

def test_sgd_hparams_match_the_summed_loss_reference():
    """One step of mean-loss SGD with fast_sgd_hparams == one step of airbench's summed-loss SGD."""
    torch.manual_seed(0)
    b, m = 32, 0.85
    hp = fast_sgd_hparams(b, momentum=m)
    x, y = torch.randn(b, 5), torch.randint(0, 3, (b,))
    lin_a, lin_b = nn.Linear(5, 3), nn.Linear(5, 3)
    lin_b.load_state_dict(lin_a.state_dict())
    scale = 1024 * (1 + 1 / (1 - m))
    lr_sum, wd = 11.5 / scale, 0.0153 * b / scale
    opt_a = torch.optim.SGD(lin_a.parameters(), lr=lr_sum, weight_decay=wd / lr_sum, momentum=m, nesterov=True)
    opt_b = torch.optim.SGD(lin_b.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"], momentum=m, nesterov=True)
    for _ in range(3):
        for lin, opt, red in ((lin_a, opt_a, "sum"), (lin_b, opt_b, "mean")):
            opt.zero_grad()
            F.cross_entropy(lin(x), y, reduction=red).backward()
            opt.step()
    assert torch.allclose(lin_a.weight, lin_b.weight, atol=1e-6)


def test_triangular_schedule_points():
    assert triangular_multiplier(0, 100) == pytest.approx(0.2)
    assert triangular_multiplier(23, 100) == pytest.approx(1.0)
    assert triangular_multiplier(100, 100) == pytest.approx(0.07)
    assert triangular_multiplier(61, 100) == pytest.approx(np.interp(61, [0, 23, 100], [0.2, 1, 0.07]))


# ------------------------------------------------------------------------------------------ lookahead

def test_lookahead_against_a_hand_computed_sequence():
    net = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(1.0)
    la = Lookahead(net)
    avg, w = 1.0, 1.0
    for step, (delta, beta) in enumerate([(0.5, 0.1), (-0.3, 0.4), (2.0, 1.0)]):
        with torch.no_grad():
            net.weight.add_(delta)  # an optimiser step
        la.update(net, beta)
        w = w + delta
        avg = beta * avg + (1 - beta) * w  # hand-computed
        w = avg
        assert net.weight[0, 0].item() == pytest.approx(w)
    assert w == pytest.approx(((1.0 * 0.1 + 0.9 * 1.5) * 0.4 + 0.6 * ((1.0 * 0.1 + 0.9 * 1.5) - 0.3)))


def test_recipe_lookahead_schedule_and_final_step():
    """FastRecipe.after_step: decay d^k (t/T)^3 every k steps, then decay 1 (the network ends at the average)."""
    net = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(0.0)
    r = FastRecipe(FastRecipeSettings(lookahead_every=2, lookahead_decay=0.5))
    r.lookahead = Lookahead(net)
    avg, w, total = 0.0, 0.0, 4
    for step in range(total):
        with torch.no_grad():
            net.weight.add_(1.0)
        w += 1.0
        r.after_step(net, step, total)
        done = step + 1
        if done % 2 == 0:
            beta = 0.5 ** 2 * (done / total) ** 3
            avg = beta * avg + (1 - beta) * w
            w = avg
        assert net.weight.item() == pytest.approx(w)
    assert net.weight.item() == pytest.approx(avg)


# ------------------------------------------------------------------------------------------ data

def test_alternating_flip_visits_both_orientations_every_pair_of_epochs():
    x, y = _images(40)
    x[:, :, :16] = 0  # asymmetric: a flipped image differs from the original
    loader = TensorLoader(x, y, batch_size=8, shuffle=True, augment=True, padding=0, flip="alternating",
                          normalize=False, seed=5)
    ref = torch.as_tensor(x).permute(0, 3, 1, 2).float() * (1.0 / 255.0)

    def orientations(epoch):
        loader.set_epoch(epoch)
        seen = {}
        for xb, _ in loader:
            for img in xb:
                hits = [(i, False) for i in range(40) if torch.equal(img, ref[i])]
                hits += [(i, True) for i in range(40) if torch.equal(img, ref[i].flip(-1))]
                assert len(hits) == 1
                seen[hits[0][0]] = hits[0][1]
        return seen

    for e in (0, 2, 5):
        a, b = orientations(e), orientations(e + 1)
        assert sorted(a) == list(range(40)) and all(a[i] != b[i] for i in range(40))
    random_flip = TensorLoader(x, y, batch_size=8, augment=True, padding=0, flip="random", normalize=False, seed=5)
    assert random_flip.flip == "random"


def test_reflect_translation_equals_torch_reflect_pad():
    x, y = _images(16)
    loader = TensorLoader(x, y, batch_size=16, shuffle=False, augment=True, padding=2, pad_mode="reflect",
                          flip="random", normalize=False, seed=1)
    order, offsets, flips = loader._plan(0)
    xb, _ = next(iter(loader))
    padded = F.pad(torch.as_tensor(x).permute(0, 3, 1, 2).float() * (1.0 / 255.0), (2, 2, 2, 2), mode="reflect")
    for b in range(16):
        i, j = offsets[b].tolist()
        ref = padded[order[b], :, i:i + 32, j:j + 32]
        assert torch.equal(xb[b], ref.flip(-1) if flips[b] else ref)


def test_tta_is_the_weighted_mean_of_the_views_logits():
    net = build_model("airbench_s", seed=0).eval()
    x = torch.randn(3, 3, 32, 32)
    f = lambda v: net(v)  # noqa: E731
    views = {"id": x, "up_left": F.pad(x, (1, 1, 1, 1), mode="reflect")[..., :32, :32],
             "down_right": F.pad(x, (1, 1, 1, 1), mode="reflect")[..., 2:, 2:]}
    mirror = {k: 0.5 * (f(v) + f(v.flip(-1))) for k, v in views.items()}
    with torch.no_grad():
        assert torch.allclose(tta_logits(net, x, 0), f(x), atol=1e-5)
        assert torch.allclose(tta_logits(net, x, 1), mirror["id"], atol=1e-5)
        ref = 0.5 * mirror["id"] + 0.25 * (mirror["up_left"] + mirror["down_right"])
        assert torch.allclose(tta_logits(net, x, 2), ref, atol=1e-5)


# ------------------------------------------------------------------------------------------ training

def _fast_cfg(**kw):
    base = dict(epochs=3, batch_size=16, device="cpu", seed=1, recipe_kwargs={"whiten_images": 32,
                                                                              "whiten_bias_epochs": 1})
    base.update(kw)
    return fast_config("airbench_s", **base)


def _split(n=64):
    x, y = _images(n)
    return x[:48], y[:48], x[48:], y[48:]


def _whiten_states(seen):
    return lambda info: seen.append((info.student.whiten.weight.detach().clone(),
                                     info.student.whiten.bias.detach().clone()))


def test_fast_training_freezes_whitening(tmp_path):
    data = _split()
    seen = []
    train(_fast_cfg(recipe_kwargs={"whiten_images": 32, "whiten_bias_epochs": 1, "lookahead": False}), tmp_path,
          data=data, progress=False, callbacks=[_whiten_states(seen)])
    expected = whitening_weights(_normalised(data[0][whitening_indices(len(data[0]), 32, _fast_cfg().seed)]), eps=5e-4)
    for w, _ in seen:
        assert torch.equal(w, expected)  # set from 32 training images drawn by the run's seed, then frozen
    assert not torch.equal(seen[0][1], torch.zeros_like(seen[0][1]))  # the bias trains in epoch 1 ...
    assert torch.equal(seen[1][1], seen[2][1]) and torch.equal(seen[0][1], seen[1][1])  # ... then is frozen


def test_fast_training_ends_at_the_lookahead_average(tmp_path):
    data = _split()
    seen = []
    r = train(_fast_cfg(), tmp_path, data=data, progress=False, callbacks=[_whiten_states(seen)])
    n_white = FastRecipeSettings.from_kwargs(_fast_cfg().recipe_kwargs).whiten_images
    expected = whitening_weights(_normalised(data[0][whitening_indices(len(data[0]), n_white, _fast_cfg().seed)]),
                                 eps=5e-4)
    assert all(torch.equal(w, expected) for w, _ in seen)  # the average of a frozen tensor is itself
    ck = read_checkpoint(r.paths["checkpoint"])
    model = load_checkpoint_model(r.paths["model"])
    for k, v in ck["recipe"]["lookahead"].items():
        assert torch.equal(model.state_dict()[k], v), k  # final decay 1: the network is the average
    assert "test_acc_tta" in r.final and "test_acc_tta" not in r.history[0]
    assert r.history[0]["lr"] == pytest.approx(_fast_cfg().lr * triangular_multiplier(2, 9), rel=1e-6)


def test_fast_recipe_refuses_what_it_cannot_do(tmp_path):
    with pytest.raises(ValueError, match="triangular"):
        TrainConfig(arch="airbench_s", recipe="fast", schedule="cosine")
    with pytest.raises(ValueError, match="recipe_kwargs.*lookahed|lookahed"):
        _fast_cfg(recipe_kwargs={"lookahed": False})
    with pytest.raises(ValueError, match="whitening layer"):
        train(fast_config("resnet8", epochs=1, batch_size=16, device="cpu"), tmp_path, data=_split(), progress=False)
    with pytest.raises(ValueError, match="own optimisers"):
        t = build_model("airbench_s", seed=0)
        train(_fast_cfg(method="rid"), tmp_path / "rid", data=_split(), teacher=t, progress=False)


def test_two_identical_fast_runs_write_identical_model_files(tmp_path):
    data = _split()
    a = train(_fast_cfg(epochs=2), tmp_path / "a", data=data, progress=False)
    b = train(_fast_cfg(epochs=2), tmp_path / "b", data=data, progress=False)
    assert _sha(a.paths["model"]) == _sha(b.paths["model"])


_RUNNER = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    import torch
    from torch import nn
    from kdbounds.distill import DistillMethod, register_method, train
    from kdbounds.distill.recipes import fast_config

    @register_method
    class KillMidFast(DistillMethod):
        name = "_test_kill_mid_fast"
        requires_teacher = False
        defaults = {}
        calls = 0

        def loss(self, x, y, s_out, t_out, epoch):
            KillMidFast.calls += 1
            if os.environ.get("KILL_AT_EPOCH") == str(epoch) and KillMidFast.calls % 3 == 2:
                os.kill(os.getpid(), signal.SIGKILL)  # mid-epoch
            return nn.functional.cross_entropy(s_out, y, label_smoothing=0.2), {}

    g = np.random.default_rng(0)
    x = g.integers(0, 255, (64, 32, 32, 3)).astype(np.uint8)
    y = np.arange(64) % 4
    cfg = fast_config("airbench_s", epochs=3, batch_size=16, device="cpu", seed=1, method="_test_kill_mid_fast",
                      recipe_kwargs={"whiten_images": 32, "whiten_bias_epochs": 1, "lookahead_every": 2})
    torch.set_num_threads(1)
    train(cfg, sys.argv[1], data=(x[:48], y[:48], x[48:], y[48:]), progress=False)
""")


def test_fast_recipe_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path, kill_resume_check):
    kill_resume_check(tmp_path, _RUNNER, n_epochs=3)  # killed mid-epoch 1 (0-based): the second epoch



def test_student_started_from_a_checkpoint_equals_it_at_step_zero(tmp_path):
    from kdbounds.distill.methods import get_method
    from kdbounds.distill.trainer import _open_run, _setup

    data = _split()
    teacher = train(_fast_cfg(epochs=1), tmp_path / "t", data=data, progress=False)
    cfg = _fast_cfg(epochs=1, seed=9, init_ckpt=teacher.paths["model"])
    out, paths, _ = _open_run(cfg, tmp_path / "s", resume=False)
    run = _setup(cfg, get_method("ce"), out, paths, None, data)
    t = load_checkpoint_model(teacher.paths["model"]).eval()
    run.student.eval()
    x = _normalised(data[2])
    with torch.no_grad():
        assert torch.equal(run.student(x), t(x))  # step 0: the student is the teacher
    with pytest.raises(ValueError, match="own architecture"):
        train(fast_config("airbench94", epochs=1, batch_size=16, device="cpu", init_ckpt=teacher.paths["model"]),
              tmp_path / "bad", data=data, progress=False)


@pytest.mark.slow
@pytest.mark.realdata
def test_fast_recipe_beats_the_old_recipe_at_equal_cpu_time(tmp_path):
    """Real CIFAR-10, 2,000 training and 1,000 test images, one thread: the fast recipe (airbench_s, 4 epochs)
    against the old recipe (resnet8, SGD 0.9, cosine, crop + flip) given at least the same CPU-seconds."""
    from kdbounds.data import load_cifar, stratified_subset

    try:
        x, y = load_cifar("cifar10", split="train")
        tx, ty = load_cifar("cifar10", split="test")
    except FileNotFoundError as e:
        pytest.skip(f"real CIFAR-10 not available: {e}")
    ti = stratified_subset(ty, 100, seed=0)
    data = (x, y, tx[ti], ty[ti])

    def cpu():
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return ru.ru_utime + ru.ru_stime

    def old_cfg(epochs):
        return TrainConfig(arch="resnet8", epochs=epochs, batch_size=64, lr=0.05, schedule="cosine", device="cpu",
                           seed=0, eval_every=epochs, n_per_class=200)

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        c0 = cpu()
        fast = train(fast_config("airbench_s", epochs=4, batch_size=200, device="cpu", seed=0, eval_every=4,
                                 n_per_class=200, recipe_kwargs={"whiten_images": 2000, "tta_level": 0}),
                     tmp_path / "fast", data=data, progress=False)
        budget = cpu() - c0
        c1 = cpu()
        train(old_cfg(1), tmp_path / "probe", data=data, progress=False)
        epochs = max(1, int(np.ceil(budget / (cpu() - c1))))
        for _ in range(3):  # the probe carries the run's start-up and the load, so it may overstate an epoch (CI:
            c2 = cpu()      # 3 epochs got 7.9 CPU-s against a 10.9 s budget): then one more epoch, from scratch
            old = train(old_cfg(epochs), tmp_path / f"old-e{epochs}", data=data, progress=False)
            used = cpu() - c2
            if used >= 0.8 * budget:
                break
            epochs += 1
        assert used >= 0.8 * budget, (used, budget)  # the old recipe had (about) the same CPU time or more
    finally:
        torch.set_num_threads(n)
    assert fast.final["test_acc"] > old.final["test_acc"], (fast.final["test_acc"], old.final["test_acc"], epochs)



def test_whitening_images_are_a_random_subset_not_the_first_class():
    """A training set read from image folders is ordered class by class: the whitening images must still cover
    every class (the first 5,000 of CIFAR-10's would all be airplanes), and follow the run's seed only."""
    y = np.repeat(np.arange(10), 5000)  # class-sorted, as load_cifar returns the image folders
    idx = whitening_indices(len(y), 5000, seed=0)
    counts = np.bincount(y[idx], minlength=10)
    assert len(idx) == len(set(idx.tolist())) == 5000 and np.all(np.diff(idx) > 0)
    assert counts.min() > 400 and counts.max() < 600, counts  # about 500 per class (binomial sd ~ 21)
    assert np.array_equal(idx, whitening_indices(len(y), 5000, seed=0))
    assert not np.array_equal(idx, whitening_indices(len(y), 5000, seed=1))
    assert np.array_equal(whitening_indices(30, 5000, seed=3), np.arange(30))  # fewer images than asked: all
