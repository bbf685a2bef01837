"""Command line: train a teacher, or distil a student from a teacher checkpoint.

    python -m kdbounds.train teacher --arch resnet20 --preset cpu --out runs/teacher-r20
    python -m kdbounds.train distill --method kd --teacher runs/teacher-r20/model.pt --arch resnet8 \\
        --method-arg T=4 --preset cpu --out runs/kd-r8
    python -m kdbounds.train --list-models | --list-methods

Run ``python -m kdbounds.train teacher --help`` for every option.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from . import _cli_types as T

EPILOG = """\
examples:
  # quick CPU check (500 images per class, 5 epochs, a few minutes on a laptop)
  python -m kdbounds.train teacher --arch resnet20 --preset cpu --out runs/teacher-r20
  # distil with Hinton KD (defaults gamma=0.1 alpha=0.9 T=4), overriding the temperature
  python -m kdbounds.train distill --method kd --teacher runs/teacher-r20/model.pt \\
      --arch resnet8 --method-arg T=2 --preset cpu --out runs/kd-r8
  # the student alone under the same recipe (baseline)
  python -m kdbounds.train teacher --arch resnet8 --preset cpu --out runs/ce-r8
  # the fast recipe (airbench94's techniques; ~90 % on CIFAR-10 in ~40 min on 2 CPU cores)
  python -m kdbounds.train teacher --recipe fast --arch airbench94 --epochs 10
  # a student distilled under the fast recipe, started from the teacher's weights
  python -m kdbounds.train distill --recipe fast --method kd --teacher T.pt --init-from T.pt --arch airbench94
  # full CIFAR-100 recipe of CRD/RepDistiller (240 epochs, lr x0.1 at 150/180/210), on a GPU
  python -m kdbounds.train teacher --arch resnet56 --dataset cifar100 --preset paper --out runs/r56

presets (explicit options override them):
  smoke  50 images/class, 1 epoch, batch 64                 (seconds: does everything run?)
  cpu    500 images/class, 5 epochs, batch 64, cosine lr    (minutes on a CPU)
  paper  full data, 240 epochs, batch 64, lr 0.05, x0.1 at 150/180/210 (RepDistiller/CRD)

recipes: --recipe standard (the options above) or --recipe fast (airbench94: whitened frozen first layer,
per-step triangular lr, lookahead, label smoothing 0.2, alternating flips; batch 1024, 10 epochs, its
lr/momentum/weight decay filled in for the batch size; switches with --recipe-arg, e.g. lookahead=false).

data: CIFAR is looked up in --data-root, then $KDBOUNDS_DATA, then standard places
(python batches, cifar-10-python.tar.gz, or JPEG/PNG folders/tars).
outputs in --out: log.jsonl (one line per epoch), checkpoint.pt (resume), model.pt (final model,
the file to pass as --teacher), config.json, result.json. Re-running the same command resumes;
the reported numbers are those of the LAST epoch. Without --out, runs go to a cache folder
(--cache-root, default runs/) named by a hash of the configuration and reused when finished.
"""

PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {"n_per_class": 50, "epochs": 1, "batch_size": 64, "schedule": "constant"},
    "cpu": {"n_per_class": 500, "epochs": 5, "batch_size": 64, "schedule": "cosine"},
    "paper": {"epochs": 240, "batch_size": 64, "lr": 0.05, "schedule": "step",
              "milestones": (150, 180, 210), "lr_gamma": 0.1},
}


def _kv(s: str) -> tuple[str, str]:
    if "=" not in s:
        raise argparse.ArgumentTypeError(f"--method-arg expects NAME=VALUE (e.g. T=4); got {s!r}")
    k, v = s.split("=", 1)
    if not k.strip():
        raise argparse.ArgumentTypeError(f"--method-arg expects NAME=VALUE; got {s!r}")
    return k.strip(), v.strip()


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model and data")
    g.add_argument("--arch", required=True, help="model name (see --list-models), e.g. resnet20, wrn_40_2, vgg8")
    g.add_argument("--dataset", default="cifar10", choices=["cifar10", "cifar100"])
    g.add_argument("--data-root", type=T.data_root, default=None, help="folder with CIFAR (default: $KDBOUNDS_DATA, then standard places)")
    g.add_argument("--n-per-class", type=T.positive_int, default=None, help="train on this many images per class (default: all)")
    g.add_argument("--val-per-class", type=T.nonneg_int, default=None,
                   help="hold out this many training images per class as a validation set (default 0)")
    g.add_argument("--subset-seed", type=T.seed, default=None, help="seed of the subset/validation draw (default 0)")
    g.add_argument("--no-augment", action="store_true", help="disable random crop + flip")
    o = p.add_argument_group("optimisation")
    o.add_argument("--preset", choices=sorted(PRESETS), default=None, help="a recipe; explicit options override it")
    o.add_argument("--recipe", choices=["standard", "fast"], default="standard",
                   help="training recipe (default standard; fast = airbench94's, see below)")
    o.add_argument("--recipe-arg", type=_kv, action="append", default=[], metavar="NAME=VALUE",
                   help="fast-recipe switch, repeatable, e.g. --recipe-arg lookahead=false")
    o.add_argument("--init-from", type=T.existing_file, default=None, metavar="CKPT",
                   help="start the network from this model.pt (same architecture) instead of a fresh init")
    o.add_argument("--epochs", type=T.positive_int, default=None, help="default 240 (paper recipe)")
    o.add_argument("--batch-size", type=T.positive_int, default=None, help="default 64")
    o.add_argument("--lr", type=T.positive_float, default=None, help="initial learning rate (default 0.05)")
    o.add_argument("--momentum", type=T.momentum, default=None, help="default 0.9")
    o.add_argument("--weight-decay", type=T.nonneg_float, default=None, help="default 5e-4")
    o.add_argument("--nesterov", action="store_true", default=None)
    o.add_argument("--schedule", choices=["step", "cosine", "constant"], default=None, help="default step")
    o.add_argument("--milestones", type=T.milestones, default=None,
                   help="epochs where lr is multiplied by --lr-gamma, e.g. 150,180,210 (default: 62.5/75/87.5%% of --epochs)")
    o.add_argument("--lr-gamma", type=T.positive_float, default=None, help="step-schedule factor (default 0.1)")
    o.add_argument("--grad-clip", type=T.positive_float, default=None, help="clip the global gradient norm (default off)")
    o.add_argument("--seed", type=T.seed, default=None, help="data order, augmentation and init (default 0)")
    o.add_argument("--init-seed", type=T.seed, default=None, help="separate seed for the initialisation")
    o.add_argument("--method-arg", type=_kv, action="append", default=[], metavar="NAME=VALUE",
                   help="method hyper-parameter, repeatable (see --list-methods), e.g. --method-arg T=4")
    r = p.add_argument_group("run")
    r.add_argument("--out", type=T.writable_dir, default=None, help="output folder (default: a cache folder under --cache-root)")
    r.add_argument("--cache-root", type=T.writable_dir, default="runs", help="cache root when --out is not given (default runs/)")
    r.add_argument("--bank", action="store_true",
                   help="train into the teacher bank shared by the studies ($KDBOUNDS_BANK, else ~/.cache/kdbounds/bank): "
                        "the same file a study asking for this teacher uses")
    r.add_argument("--device", type=T.device, default=None, help="default auto (CUDA if present)")
    r.add_argument("--no-amp", action="store_true", help="disable bfloat16 autocast (CUDA only anyway)")
    r.add_argument("--no-channels-last", action="store_true", help="disable channels-last (CUDA only anyway)")
    r.add_argument("--eval-every", type=T.positive_int, default=None, help="test every N epochs (always after the last)")
    r.add_argument("--no-resume", action="store_true", help="start over even if --out has a checkpoint")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.add_argument("--threads", type=T.threads, default=None, help="torch CPU threads (default: torch's choice)")


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser (sub-commands ``teacher`` and ``distill``).

    Returns:
        The parser.
    """
    p = argparse.ArgumentParser(
        prog="python -m kdbounds.train",
        description="Train a CIFAR teacher, or distil a student from a frozen teacher with a pluggable "
                    "method (ce = student alone, kd = Hinton KD, and the others of --list-methods).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--list-models", action="store_true", help="print the model names and exit")
    p.add_argument("--list-methods", action="store_true", help="print the methods with their hyper-parameters and exit")
    sub = p.add_subparsers(dest="command", metavar="{teacher,distill}")
    t = sub.add_parser("teacher", help="train a model with cross-entropy only (a teacher or a baseline student)",
                       usage="python -m kdbounds.train teacher --arch NAME [--preset smoke|cpu|paper] [--out DIR] [options]",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(t)
    d = sub.add_parser("distill", help="train a student from a frozen teacher checkpoint",
                       usage="python -m kdbounds.train distill --method NAME --teacher CKPT --arch NAME "
                             "[--method-arg K=V ...] [--out DIR] [options]",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("--method", default="kd", help="distillation method (default kd; see --list-methods)")
    d.add_argument("--teacher", type=T.existing_file, default=None, metavar="CKPT",
                   help="teacher model.pt written by `teacher` (required by methods that use a teacher)")
    _common(d)
    return p


_FIELDS = {  # argparse dest -> TrainConfig field
    "dataset": "dataset", "data_root": "data_root", "n_per_class": "n_per_class",
    "val_per_class": "val_per_class", "subset_seed": "subset_seed", "epochs": "epochs",
    "batch_size": "batch_size", "lr": "lr", "momentum": "momentum", "weight_decay": "weight_decay",
    "nesterov": "nesterov", "schedule": "schedule", "milestones": "milestones", "lr_gamma": "lr_gamma",
    "grad_clip": "grad_clip", "seed": "seed", "init_seed": "init_seed", "device": "device",
    "eval_every": "eval_every",
}


def config_from_args(args: argparse.Namespace):
    """TrainConfig from parsed arguments: TrainConfig defaults < preset < explicit options.

    Args:
        args: the parsed command line.

    Returns:
        The :class:`~kdbounds.distill.TrainConfig`.

    Raises:
        ValueError: a hyper-parameter the method refuses, a name given twice, a missing or damaged
            teacher file (checked before any data is loaded).
    """
    from .distill import TrainConfig, get_method

    kw: dict[str, Any] = dict(PRESETS[args.preset]) if args.preset else {}
    for dest, fld in _FIELDS.items():
        v = getattr(args, dest, None)
        if v is not None:
            kw[fld] = v
    if args.no_augment:
        kw["augment"] = False
    if args.no_amp:
        kw["amp"] = False
    if args.no_channels_last:
        kw["channels_last"] = False
    method = "ce" if args.command == "teacher" else args.method
    cls = get_method(method)  # ValueError listing valid names
    from .distill.methods import check_method_hparams

    raw = dict(args.method_arg)
    if len(raw) != len(args.method_arg):
        raise ValueError("a --method-arg name is given twice")
    typed = check_method_hparams(method, raw)  # e.g. pbb/pbkd without a prior: said now, before any data is loaded
    if args.init_from:
        kw["init_ckpt"] = str(Path(args.init_from))
    mkw = {k: typed[k] for k in raw}
    if args.command == "distill":
        if cls.requires_teacher and not args.teacher:
            raise ValueError(f"method {method!r} needs --teacher CKPT (a model.pt written by the `teacher` command)")
        if args.teacher:
            if not Path(args.teacher).is_file():
                raise ValueError(f"--teacher {args.teacher!r}: no such file")
            from .distill.checkpoint import read_checkpoint

            try:  # read it now: a damaged teacher is reported before any data is loaded
                read_checkpoint(args.teacher)
            except ValueError as e:
                raise ValueError(f"--teacher: {e}") from None
            kw["teacher_ckpt"] = str(Path(args.teacher))
    if args.recipe == "fast":
        return _fast_config_from_args(args, method, mkw, kw)
    if args.recipe_arg:
        raise ValueError("--recipe-arg needs --recipe fast")
    return TrainConfig(arch=args.arch, method=method, method_kwargs=mkw, **kw)


def _fast_config_from_args(args: argparse.Namespace, method: str, mkw: dict[str, Any], kw: dict[str, Any]):
    """The fast recipe's config: its defaults (batch 1024, 10 epochs, lr/wd/momentum for the batch) < explicit options."""
    from .distill.recipe_settings import FastRecipeSettings
    from .distill.recipes import fast_config

    if args.preset:
        raise ValueError("--preset sets a standard-recipe schedule; with --recipe fast set --epochs/--n-per-class instead")
    for flag, dest in (("--lr", "lr"), ("--momentum", "momentum"), ("--weight-decay", "weight_decay"),
                       ("--schedule", "schedule"), ("--milestones", "milestones"), ("--lr-gamma", "lr_gamma")):
        if getattr(args, dest, None) is not None:
            raise ValueError(f"{flag} is set by --recipe fast (from the batch size); leave it out")
    defaults = {f: getattr(FastRecipeSettings(), f) for f in FastRecipeSettings.__dataclass_fields__}
    raw = dict(args.recipe_arg)
    unknown = sorted(set(raw) - set(defaults))
    if unknown:
        raise ValueError(f"--recipe-arg: unknown switch(es) {unknown}; valid: {sorted(defaults)}")
    from .distill.methods import coerce_hparams

    switches = coerce_hparams("fast recipe", defaults, raw)
    rkw = {k: switches[k] for k in raw}
    epochs, batch = kw.pop("epochs", 10), kw.pop("batch_size", 1024)
    kw.pop("nesterov", None)
    return fast_config(args.arch, epochs=epochs, batch_size=batch, method=method, method_kwargs=mkw,
                       recipe_kwargs=rkw, **kw)


#: training images per class of each ``--dataset`` (``--val-per-class`` is held out of them first)
_TRAIN_PER_CLASS = {"cifar10": ("CIFAR-10", 5000), "cifar100": ("CIFAR-100", 500)}


def _check_sizes(args: argparse.Namespace, sub: argparse.ArgumentParser) -> None:
    """``--n-per-class`` and ``--val-per-class`` against the data set, before torch or the data is loaded."""
    name, have = _TRAIN_PER_CLASS[args.dataset]
    v = args.val_per_class or 0
    if v >= have:
        sub.error(f"argument --val-per-class: expected an integer in 0..{have - 1}, got {v}; {name} has {have} "
                  f"training images per class and training needs at least one")
    n = args.n_per_class
    if n is not None and n + v > have:
        held = f", {v} of them held out by --val-per-class" if v else ""
        sub.error(f"argument --n-per-class: expected an integer in 1..{have - v}, got {n}; {name} has {have} training "
                  f"images per class{held}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m kdbounds.train`` (``kdbounds-train``).

    Args:
        argv: the options (default ``sys.argv[1:]``).

    Returns:
        The process exit status: 0, 2 (a bad option or input, one line), 3 (training diverged), 130
        (Ctrl-C or SIGTERM: one line saying which epoch is saved where and how to resume; no traceback).

    Raises:
        SystemExit: a bad option (argparse's one-line message naming it, exit status 2).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_models or args.list_methods:
        if args.list_models:
            from .models import available_models
            print("\n".join(available_models()))
        if args.list_methods:
            from .distill import describe_methods
            print(describe_methods())
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    sub = parser._subparsers._group_actions[0].choices[args.command]  # for error messages
    _check_sizes(args, sub)
    from .models.registry import arch_name

    try:  # checked after parsing, so that the other flags fail without importing torch (~1 s)
        args.arch = arch_name(args.arch)
    except argparse.ArgumentTypeError as e:
        sub.error(f"argument --arch: {e}")
    from ._interrupts import signals_end_the_run

    run: dict[str, Any] = {}  # what the line after an interruption needs: the config and the cache root
    try:
        with signals_end_the_run():  # Ctrl-C and SIGTERM: one line saying what is saved, exit status 130
            return _train(args, sub, run)
    except KeyboardInterrupt:
        print("\n" + _interrupted(args, run), file=sys.stderr, flush=True)
        return 130


def _train(args: argparse.Namespace, sub: argparse.ArgumentParser, run: dict[str, Any]) -> int:
    """The training of :func:`main` after parsing; fills ``run`` with ``cfg`` and ``root`` as they are known."""
    import torch

    from .distill import TrainingDiverged, train
    from .runs.allocator import tune_cpu_allocator
    from .runs.cache import train_cached

    try:
        if args.threads is not None:
            if args.threads < 1:
                raise ValueError("--threads must be ≥ 1")
            torch.set_num_threads(args.threads)
        tune_cpu_allocator()  # speed only: activations stay in the heap (kdbounds/runs/allocator.py)
        cfg = config_from_args(args)
        progress = not args.no_progress
        if cfg.method in ("pbb", "pbkd"):  # its loss= / train_loss is a bound with KL inside: say so first
            from .distill.pbb import OBJECTIVE_DEFAULTS
            from .runs.posterior_learning import objective_note

            print(objective_note(cfg.method, cfg.method_kwargs.get("objective", OBJECTIVE_DEFAULTS["objective"])),
                  file=sys.stderr, flush=True)
        if args.bank and args.out:
            raise ValueError("--bank and --out exclude each other (the bank chooses the folder)")
        if args.bank:
            from .runs.bank import bank_root

            run.update(cfg=cfg, root=bank_root())
            result = train_cached(cfg, run["root"], progress=progress, force=args.no_resume)
        elif args.out:
            run.update(cfg=cfg)
            result = train(cfg, args.out, progress=progress, resume=not args.no_resume)
        else:
            run.update(cfg=cfg, root=args.cache_root)
            result = train_cached(cfg, args.cache_root, progress=progress, force=args.no_resume)
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"{sub.prog}: error: {e}\n(see `{sub.prog} --help`)", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    f = result.final
    summary = {"out_dir": result.paths["out_dir"], "model": result.paths["model"],
               "epochs": result.epochs_completed, "test_acc": f.get("test_acc"), "test_loss": f.get("test_loss"),
               "train_acc": f.get("train_acc"), "train_loss": f.get("train_loss")}
    if "val_acc" in f:
        summary["val_acc"] = f["val_acc"]
    if result.resumed_from_epoch is not None:
        summary["resumed_from_epoch"] = result.resumed_from_epoch
    print(json.dumps(summary, indent=2))
    return 0


def _interrupted(args: argparse.Namespace, run: dict[str, Any]) -> str:
    """The one line after Ctrl-C or SIGTERM: which epoch is saved where, and how to resume."""
    again = ("run the same command again without --no-resume" if args.no_resume else
             "run the same command again")
    cfg = run.get("cfg")
    if cfg is None:
        return f"interrupted before training started: nothing was written; {again} to start"
    try:
        from .runs.cache import run_dir

        folder = Path(args.out) if args.out else run_dir(cfg, run["root"])
        ckpt = folder / "checkpoint.pt"
        log = folder / "log.jsonl"
        done = sum(1 for line in log.read_text().splitlines() if line.strip()) if log.is_file() else 0
    except Exception:  # the line must not fail: say what is certain
        return f"interrupted: the checkpoint of the last finished epoch is kept in the run folder; {again} to resume"
    if not ckpt.is_file():
        return f"interrupted before the first epoch finished: nothing to resume yet in {folder}; {again} to start"
    return (f"interrupted: {done} of {cfg.epochs} epochs are saved in {ckpt}; {again} to resume from there "
            f"(to the numbers of an uninterrupted run)")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
