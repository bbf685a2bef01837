"""CPU cost of one epoch of each run of the nuisance-teacher study (WRN-40-2 -> WRN-16-1), to size
its ``cpu`` preset. Measures PROCESS CPU time (``time.process_time``), one thread, so the numbers
hold on a shared machine; wall time on an idle core is about the same.

    OMP_NUM_THREADS=1 python benchmarks/nuisance_cpu_timing.py --n-per-class 200 --batch-size 128

Per epoch of ``10 * n_per_class`` real CIFAR-10 training images, no augmentation (the paper's
students), with each method's own training step (``DistillMethod.training_step``):
  ce       student alone (BAS)
  vid_rid  student + frozen teacher forward + kd-rid VID regressors
  vid      student + teacher + RepDistiller's VID (reference)
  rid_p1   RID phase 1 (teacher filters/heads learn; student frozen, forward only)
  rid_p2   RID phase 2 (student, its filters and sigma learn)
  teacher  the WRN-40-2 teacher trained alone (ce) -- the teacher's own training epoch
  eval_s / eval_t   forward of student / teacher on the same number of images (batch 500)
Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kdbounds.data import TensorLoader, load_cifar, stratified_subset  # noqa: E402
from kdbounds.distill import StepContext, TrainConfig, get_method  # noqa: E402
from kdbounds.models import build_model  # noqa: E402


def _epoch(method, student, teacher, loader, cfg, epoch: int, grad_clip) -> float:
    opts = method.configure_optimizers(student, cfg)
    ctx = StepContext(device=torch.device("cpu"), grad_clip=grad_clip, epoch=epoch, cfg=cfg)
    method.on_epoch_start(epoch, student, teacher)
    student.train()
    method.train()
    loader.set_epoch(epoch)
    t0 = time.process_time()
    for x, y in loader:
        method.training_step(x, y, student, teacher, opts, epoch, ctx)
    return time.process_time() - t0


@torch.no_grad()
def _eval(model, x) -> float:
    model.eval()
    t0 = time.process_time()
    for i in range(0, len(x), 500):
        model(x[i:i + 500])
    return time.process_time() - t0


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n-per-class", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--teacher-arch", default="wrn_40_2")
    p.add_argument("--student-arch", default="wrn_16_1")
    p.add_argument("--which", default="ce,vid_rid,vid,rid_p1,rid_p2,teacher,eval")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    x, y = load_cifar("cifar10", split="train")
    idx = stratified_subset(y, a.n_per_class, seed=0)
    x, y = x[idx], y[idx]
    loader = TensorLoader(x, y, batch_size=a.batch_size, shuffle=True, augment=False, seed=0,
                          normalize="cifar10")
    teacher = build_model(a.teacher_arch, 10, seed=1).eval()
    for q in teacher.parameters():
        q.requires_grad_(False)
    which = a.which.split(",")
    out: dict[str, object] = {"images": len(x), "batch_size": a.batch_size,
                              "torch": torch.__version__, "threads": torch.get_num_threads(),
                              "cpu": platform.processor() or platform.machine()}
    cfg = TrainConfig(arch=a.student_arch, epochs=4, batch_size=a.batch_size, lr=0.05,
                      nesterov=True, device="cpu", augment=False)
    for name in ("ce", "vid_rid", "vid"):
        if name in which:
            student = build_model(a.student_arch, 10, seed=0)
            m = get_method(name)(student, teacher if name != "ce" else None, 10)
            out[name] = _epoch(m, student, teacher, loader, cfg, 0,
                               None if name == "ce" else 100.0)
    if "rid_p1" in which or "rid_p2" in which:
        student = build_model(a.student_arch, 10, seed=0)
        m = get_method("rid")(student, teacher, 10, q=2, r=0.5, lr_schedule="config")
        out["rid_p1"] = _epoch(m, student, teacher, loader, cfg, 0, None)
        out["rid_p2"] = _epoch(m, student, teacher, loader, cfg, 1, None)
    if "teacher" in which:
        tnet = build_model(a.teacher_arch, 10, seed=2)
        m = get_method("ce")(tnet, None, 10)
        tcfg = cfg.replace(arch=a.teacher_arch)
        out["teacher"] = _epoch(m, tnet, None, loader, tcfg, 0, None)
    if "eval" in which:
        xs = torch.cat([xb for xb, _ in loader])
        out["eval_s"] = _eval(build_model(a.student_arch, 10, seed=0), xs)
        out["eval_t"] = _eval(teacher, xs)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
