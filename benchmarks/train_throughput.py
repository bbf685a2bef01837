"""Training throughput: the kdbounds trainer vs a bare PyTorch loop (same model, data, batch,
augmentation, optimiser), in images per second of the training phase.

    python benchmarks/train_throughput.py                       # CPU, resnet8, 2,000 real CIFAR-10 images
    python benchmarks/train_throughput.py --arch resnet20 --n-per-class 5000 --device cuda  # full epoch on GPU
    python benchmarks/train_throughput.py --recipe fast --arch airbench94 --batch-size 1024 --n-per-class 400 --threads 2

With ``--recipe fast`` both sides run airbench94's recipe: the bare loop is the plainest hand-written version
of the same work (two SGD parameter groups, the learning rate set before each step, a lookahead average
every 5 steps, reflect-padded translations and alternating flips from the same loader); the whitening is
set up once before the clock starts on both sides' networks.

Both sides use kdbounds.data.TensorLoader (on-device crop+flip, normalisation) and SGD(momentum 0.9,
wd 5e-4); on CUDA both use bfloat16 autocast and channels-last. Runs are interleaved (bare, trainer,
bare, trainer, ...) and the median of the repeats is reported, because the machine may be shared.
The trainer's number is its logged training-phase time (``train_time_s``; evaluation excluded) and,
separately, its whole wall time including per-epoch checkpointing and a small test evaluation.
Target (issue 4): trainer / bare ≥ 0.9 on CPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kdbounds.data import TensorLoader, load_cifar, stratified_subset  # noqa: E402
from kdbounds.distill import TrainConfig, train  # noqa: E402
from kdbounds.distill.trainer import resolve_device  # noqa: E402
from kdbounds.models import build_model  # noqa: E402


def bare_loop(x, y, cfg: TrainConfig, device: torch.device) -> float:
    """Seconds for cfg.epochs epochs of the plainest loop we would write by hand."""
    on_cuda = device.type == "cuda"
    model = build_model(cfg.arch, cfg.num_classes, seed=cfg.seed).to(device)
    if on_cuda:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    loader = TensorLoader(x, y, batch_size=cfg.batch_size, shuffle=True, augment=cfg.augment, device=device,
                          seed=cfg.seed, normalize=cfg.dataset, channels_last=on_cuda)
    model.train()
    if on_cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(cfg.epochs):
        for xb, yb in loader:
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=on_cuda):
                loss = F.cross_entropy(model(xb).float(), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    if on_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def bare_loop_fast(x, y, cfg: TrainConfig, device: torch.device) -> float:
    """Seconds for cfg.epochs epochs of airbench94's recipe written by hand (module docstring)."""
    from kdbounds.distill.recipe_settings import triangular_multiplier
    from kdbounds.models.airbench import whitening_weights
    from kdbounds.data.transforms import normalization, normalize_uint8

    model = build_model(cfg.arch, cfg.num_classes, seed=cfg.seed).to(device, memory_format=torch.channels_last)
    mean, std = normalization(cfg.dataset)
    model.set_whitening(whitening_weights(normalize_uint8(torch.as_tensor(x[:5000]).permute(0, 3, 1, 2), mean, std)))
    biases = [m.bias for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    rest = [p for p in model.parameters() if p.requires_grad and all(p is not b for b in biases)]
    opt = torch.optim.SGD([{"params": rest, "lr": cfg.lr, "weight_decay": cfg.weight_decay},
                           {"params": biases, "lr": cfg.lr * 64, "weight_decay": cfg.weight_decay / 64}],
                          momentum=cfg.momentum, nesterov=True)
    base = [g["lr"] for g in opt.param_groups]
    avg = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}
    loader = TensorLoader(x, y, batch_size=cfg.batch_size, shuffle=True, augment=True, device=device, seed=cfg.seed,
                          normalize=cfg.dataset, channels_last=True, padding=2, pad_mode="reflect", flip="alternating")
    total, step = cfg.epochs * len(loader), 0
    model.train()
    t0 = time.perf_counter()
    for _ in range(cfg.epochs):
        for xb, yb in loader:
            for g, b in zip(opt.param_groups, base):
                g["lr"] = b * triangular_multiplier(step, total)
            loss = F.cross_entropy(model(xb), yb, label_smoothing=0.2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step % 5 == 0:
                with torch.no_grad():
                    state = model.state_dict()
                    for k, v in avg.items():
                        v.lerp_(state[k], 1 - 0.95 ** 5 * (step / total) ** 3)
                        state[k].copy_(v)
    return time.perf_counter() - t0


def trainer_run(x, y, tx, ty, cfg: TrainConfig, device: torch.device) -> tuple[float, float, list[float]]:
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        r = train(cfg, d, data=(x, y, tx, ty), progress=False, resume=False)
        if device.type == "cuda":
            torch.cuda.synchronize()
        wall = time.perf_counter() - t0
    per_epoch = [h["train_time_s"] for h in r.history]
    return sum(per_epoch), wall, per_epoch


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="resnet8")
    p.add_argument("--n-per-class", type=int, default=200)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--synthetic", action="store_true", help="random images instead of real CIFAR-10")
    p.add_argument("--recipe", choices=["standard", "fast"], default="standard")
    p.add_argument("--out", default="results/benchmarks/train_throughput.json")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    device = resolve_device(a.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # benchmark script only; the library does not set it

    if a.synthetic:
        g = np.random.default_rng(0)
        n = 10 * a.n_per_class
        x, y = g.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), np.arange(n) % 10
        tx, ty = x[:100], y[:100]
    else:
        X, Y = load_cifar("cifar10", split="train")
        idx = stratified_subset(Y, a.n_per_class, seed=0)
        x, y = X[idx], Y[idx]
        TX, TY = load_cifar("cifar10", split="test")
        ti = stratified_subset(TY, 10, seed=0)
        tx, ty = TX[ti], TY[ti]
    if a.recipe == "fast":
        from kdbounds.distill.recipes import fast_config

        cfg = fast_config(a.arch, epochs=a.epochs, batch_size=a.batch_size, device=str(device.type),
                          eval_every=10**6, seed=0, recipe_kwargs={"tta_level": 0})
    else:
        cfg = TrainConfig(arch=a.arch, epochs=a.epochs, batch_size=a.batch_size, lr=0.05, schedule="constant",
                          device=str(device.type), eval_every=10**6, seed=0)
    bare = bare_loop_fast if a.recipe == "fast" else bare_loop
    n_img = len(y) * a.epochs

    # warm-up (allocator, cudnn autotune, lazy init)
    bare(x[: 4 * a.batch_size], y[: 4 * a.batch_size], cfg.replace(epochs=1), device)
    bare_s, tr_s, tr_wall = [], [], []
    for _ in range(a.repeats):
        bare_s.append(bare(x, y, cfg, device))
        t, w, _ = trainer_run(x, y, tx, ty, cfg, device)
        tr_s.append(t)
        tr_wall.append(w)
    bare_ips = n_img / statistics.median(bare_s)
    tr_ips = n_img / statistics.median(tr_s)
    wall_ips = n_img / statistics.median(tr_wall)
    res = {
        "arch": a.arch, "recipe": a.recipe, "device": str(device), "threads": torch.get_num_threads(), "images": len(y),
        "epochs": a.epochs, "batch_size": a.batch_size, "repeats": a.repeats, "synthetic": a.synthetic,
        "bare_images_per_s": bare_ips, "trainer_images_per_s": tr_ips, "trainer_wall_images_per_s": wall_ips,
        "ratio_train_phase": tr_ips / bare_ips, "ratio_wall": wall_ips / bare_ips,
        "bare_s": bare_s, "trainer_train_s": tr_s, "trainer_wall_s": tr_wall,
        "seconds_per_epoch_trainer": statistics.median(tr_s) / a.epochs,
        "torch": torch.__version__, "python": platform.python_version(),
        "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
    }
    print(f"{'':28s}{'images/s':>12s}{'ratio':>8s}")
    print(f"{'bare PyTorch loop':28s}{bare_ips:12.1f}{1.0:8.3f}")
    print(f"{'trainer (train phase)':28s}{tr_ips:12.1f}{tr_ips / bare_ips:8.3f}")
    print(f"{'trainer (wall, +ckpt/eval)':28s}{wall_ips:12.1f}{wall_ips / bare_ips:8.3f}")
    print(f"trainer s/epoch ({len(y)} images): {res['seconds_per_epoch_trainer']:.2f}")
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
