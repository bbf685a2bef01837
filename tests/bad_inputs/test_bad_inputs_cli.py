"""Bad-input table, door 1: ``python -m kdbounds.train`` (teacher and distill). Every case must stop at
parse time (argparse exit code 2, before any data is loaded) with a message naming the flag.

Oracle: the flag's documented range (``--help``); a case passes only when argparse's
``error: argument --flag:`` line names the flag and says what was expected.
"""

from __future__ import annotations

import pytest
import torch

from kdbounds import train as cli

from bad_input_helpers import parse_error, subst

BASE = ["teacher", "--arch", "resnet8"]

# (flag, bad value, text the message must contain besides "argument <flag>")
NUMERIC = [
    ("--epochs", "0", "integer >= 1"), ("--epochs", "-1", "integer >= 1"), ("--epochs", "x", "integer >= 1"),
    ("--epochs", "1.5", "integer >= 1"), ("--epochs", "", "integer >= 1"), ("--epochs", "inf", "integer >= 1"),
    ("--batch-size", "0", "integer >= 1"), ("--batch-size", "-64", "integer >= 1"), ("--batch-size", "six", "integer"),
    ("--lr", "inf", "finite number > 0"), ("--lr", "-inf", "finite number > 0"), ("--lr", "nan", "finite number > 0"),
    ("--lr", "0", "finite number > 0"), ("--lr", "-0.1", "finite number > 0"), ("--lr", "fast", "finite number > 0"),
    ("--lr", "1e400", "finite number > 0"),
    ("--momentum", "5", "[0, 1)"), ("--momentum", "1", "[0, 1)"), ("--momentum", "-0.1", "[0, 1)"),
    ("--momentum", "nan", "[0, 1)"), ("--momentum", "inf", "[0, 1)"), ("--momentum", "high", "[0, 1)"),
    ("--weight-decay", "-1e-4", ">= 0"), ("--weight-decay", "inf", ">= 0"), ("--weight-decay", "nan", ">= 0"),
    ("--weight-decay", "x", ">= 0"),
    ("--lr-gamma", "0", "> 0"), ("--lr-gamma", "-0.1", "> 0"), ("--lr-gamma", "inf", "> 0"), ("--lr-gamma", "nan", "> 0"),
    ("--grad-clip", "0", "> 0"), ("--grad-clip", "-5", "> 0"), ("--grad-clip", "inf", "> 0"), ("--grad-clip", "nan", "> 0"),
    ("--seed", "-1", "seed in [0, 4294967295]"), ("--seed", "4294967296", "seed in [0, 4294967295]"),
    ("--seed", "1.5", "seed"), ("--seed", "x", "seed"), ("--seed", str(2**70), "seed"),
    ("--init-seed", "-1", "seed"), ("--init-seed", "abc", "seed"), ("--init-seed", "4294967296", "seed"),
    ("--subset-seed", "-3", "seed"), ("--subset-seed", "nan", "seed"),
    ("--n-per-class", "0", "integer >= 1"), ("--n-per-class", "-10", "integer >= 1"), ("--n-per-class", "all", "integer"),
    ("--val-per-class", "-1", "integer >= 0"), ("--val-per-class", "x", "integer >= 0"),
    ("--eval-every", "0", "integer >= 1"), ("--eval-every", "-2", "integer >= 1"),
    ("--threads", "0", "thread count"), ("--threads", "-4", "thread count"), ("--threads", "100000", "thread count"),
    ("--threads", "many", "thread count"),
    ("--milestones", "x,y", "150,180,210"), ("--milestones", ",", "150,180,210"), ("--milestones", "3,2", "increasing"),
    ("--milestones", "0,5", "epochs >= 1"), ("--milestones", "5,5", "increasing"), ("--milestones", "-1", "epochs >= 1"),
    ("--milestones", "1.5,2", "150,180,210"),
    ("--device", "gpu", "auto, cpu, cuda"), ("--device", "cuda:x", "auto, cpu, cuda"), ("--device", "tpu", "auto, cpu"),
    ("--device", "", "auto, cpu"),
    ("--dataset", "cifar1000", "invalid choice"), ("--dataset", "mnist", "invalid choice"),
    ("--schedule", "linear", "invalid choice"), ("--preset", "huge", "invalid choice"),
    ("--method-arg", "T", "NAME=VALUE"), ("--method-arg", "=4", "NAME=VALUE"),
]
PATHS = [
    ("--out", "@FILE", "a file is in the way"), ("--out", "@UNDERFILE", "is a file"),
    ("--out", "/etc/passwd", "a file is in the way"), ("--out", "", "folder path"),
    ("--cache-root", "@FILE", "a file is in the way"), ("--cache-root", "@UNDERFILE", "is a file"),
    ("--data-root", "@FILE", "archive of CIFAR"), ("--data-root", "@UNDERFILE", "is a file"),
]
CUDA = [("--device", "cuda", "--device cpu"), ("--device", "cuda:0", "--device cpu"), ("--device", "CUDA", "--device cpu")]
DISTILL = [
    ("--teacher", "@EMPTY", "empty"), ("--teacher", "@DIR", "folder"), ("--teacher", "/nonexistent/model.pt", "no such file"),
    ("--teacher", "@UNDERFILE", "no such file"),
    ("--lr", "inf", "finite"), ("--momentum", "1.5", "[0, 1)"), ("--epochs", "-1", ">= 1"), ("--seed", "-1", "seed"),
    ("--out", "@FILE", "a file is in the way"), ("--milestones", "x,y", "150,180,210"),
]


def _fix(argv, paths):
    """Substitute path placeholders; a value starting with '-' is passed as --flag=value (as a user
    must: argparse reads '-inf' as an option otherwise)."""
    argv = subst(argv, paths)
    out = []
    for a in argv:
        if out and a.startswith("-") and not a.startswith("--") and out[-1].startswith("--"):
            out[-1] = f"{out[-1]}={a}"
        else:
            out.append(a)
    return out


@pytest.mark.parametrize("flag,value,expect", NUMERIC + PATHS, ids=[f"teacher {f}={v!r}" for f, v, _ in NUMERIC + PATHS])
def test_teacher_flag_fails_at_parse_time(capsys, paths, flag, value, expect):
    argv = ["teacher", "--arch", "resnet8", flag, value] if flag != "--arch" else ["teacher", flag, value]
    err = parse_error(capsys, cli.build_parser().parse_args, _fix(argv, paths))
    assert f"argument {flag}" in err and expect in err


ARCH = [("resnet9", "valid: resnet8"), ("", "model name"), ("wrn-40-3", "valid:"), ("ResNet-8x", "valid:")]


@pytest.mark.parametrize("value,expect", ARCH, ids=[f"teacher --arch={v!r}" for v, _ in ARCH])
def test_unknown_arch_fails_before_any_work(capsys, value, expect):
    """--arch is checked right after parsing (so the other flags fail without importing torch)."""
    with pytest.raises(SystemExit) as e:
        cli.main(["teacher", "--arch", value, "--out", "/nonexistent-kdbounds-test/x"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "argument --arch" in err and expect in err and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
@pytest.mark.parametrize("flag,value,expect", CUDA, ids=[f"teacher {f}={v}" for f, v, _ in CUDA])
def test_cuda_without_cuda_names_the_flag_and_the_fix(capsys, flag, value, expect):
    err = parse_error(capsys, cli.build_parser().parse_args, BASE + [flag, value])
    assert f"argument {flag}" in err and expect in err


@pytest.mark.parametrize("flag,value,expect", DISTILL, ids=[f"distill {f}={v!r}" for f, v, _ in DISTILL])
def test_distill_flag_fails_at_parse_time(capsys, paths, flag, value, expect):
    argv = ["distill", "--arch", "resnet8", flag, value]
    err = parse_error(capsys, cli.build_parser().parse_args, _fix(argv, paths))
    assert f"argument {flag}" in err and expect in err


@pytest.mark.parametrize("argv,expect", [
    (["distill", "--arch", "resnet8", "--method", "foo"], "unknown method 'foo'"),
    (["distill", "--arch", "resnet8", "--method", "kd"], "needs --teacher CKPT"),
    (["teacher", "--arch", "resnet8", "--method-arg", "T=4"], "unknown hyper-parameter"),
    (["teacher", "--arch", "resnet8", "--method-arg", "T=4", "--method-arg", "T=5"], "given twice"),
], ids=["unknown method", "kd without teacher", "hparam of ce", "hparam twice"])
def test_post_parse_errors_exit_2_before_training(capsys, argv, expect):
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2 and expect in err and "Traceback" not in err
