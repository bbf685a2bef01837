"""Bad-input table, door 2: every experiment script's command line. Each case must stop at parse time
(argparse exit code 2: nothing is loaded or trained) with a message naming the flag.

Oracle: the option's documented range; the message must contain ``argument <flag>`` and what was
expected. A few cases run the script in a subprocess to check the whole path (exit code, one-line
error, no traceback).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from bad_input_helpers import ROOT, parse_error, script, subst

STUDY_SCRIPTS = ["nuisance_teacher", "sharpness_vs_gap", "functional_transfer", "pid_transfer", "certify_flatness"]

COMMON = [  # options every study script has (from kdbounds.studies._cli.study_parser)
    ("--out", "@FILE", "a file is in the way"), ("--out", "@UNDERFILE", "is a file"),
    ("--out", "/etc/passwd", "a file is in the way"),
    ("--cache-root", "@FILE", "a file is in the way"), ("--cache-root", "@UNDERFILE", "is a file"),
    ("--seed", "-1", "seed in [0,"), ("--seed", "4294967296", "seed in [0,"), ("--seed", "x", "seed"),
    ("--device", "gpu", "auto, cpu, cuda"), ("--device", "cuda:x", "auto, cpu, cuda"),
    ("--preset", "huge", "invalid choice"),
    ("--data-root", "@FILE", "archive of CIFAR"), ("--data-root", "@UNDERFILE", "is a file"),
]
CUDA = [("--device", "cuda", "--device cpu")]

PER_SCRIPT = {
    "nuisance_teacher": [
        ("--epochs", "-1", "integer >= 1"), ("--epochs", "0", "integer >= 1"), ("--epochs", "two", "integer"),
        ("--teacher-epochs", "0", ">= 1"), ("--batch-size", "0", ">= 1"), ("--n-per-class", "-5", ">= 1"),
        ("--test-per-class", "0", ">= 1"), ("--seeds", "0", ">= 1"), ("--seeds", "-2", ">= 1"),
        ("--lr", "inf", "finite number > 0"), ("--lr", "nan", "finite number > 0"), ("--lr", "0", "> 0"),
        ("--lr-gamma", "-1", "> 0"), ("--rid-q", "0", ">= 1"), ("--rid-r", "-0.25", "> 0"), ("--rid-r", "inf", "> 0"),
        ("--lam2", "-1", ">= 0"), ("--lam2", "nan", ">= 0"), ("--vid-lam", "-100", ">= 0"), ("--vid-lam", "inf", ">= 0"),
        ("--threads", "0", "thread count"), ("--schedule", "linear", "step, cosine, constant"),
        ("--teacher-arch", "resnet9", "valid:"), ("--student-arch", "bogus", "valid:"),
        ("--methods", "kd,nope", "unknown: nope"), ("--methods", ",", "comma-separated"), ("--methods", "kd,kd", "repeats"),
        ("--milestones", "x,y", "150,180,210"), ("--milestones", "8,4", "increasing"), ("--milestones", "0", ">= 1"),
    ],
    "sharpness_vs_gap": [
        ("--teacher-epochs", "0", ">= 1"), ("--teacher-epochs", "-1", ">= 1"), ("--student-epochs", "x", "integer"),
        ("--student-epochs", "0", ">= 1"), ("--n-per-class", "0", ">= 1"), ("--n-per-class", "1e3", "integer"),
        ("--methods", "ce,nope", "unknown: nope"), ("--methods", "", "comma-separated"),
    ],
    "functional_transfer": [
        ("--seeds", "0", ">= 1"), ("--seeds", "-3", ">= 1"), ("--n-per-class", "0", ">= 1"),
        ("--teacher-epochs", "-1", ">= 1"), ("--student-epochs", "0", ">= 1"), ("--n-test", "0", ">= 1"),
        ("--n-test", "ten", "integer"), ("--cache", "@FILE", "a file is in the way"),
    ],
    "pid_transfer": [
        ("--methods", "nope", "unknown: nope"), ("--methods", "kd,,nope", "unknown: nope"), ("--methods", "kd,kd", "repeats"),
    ],
    "certify_flatness": [
        ("--seeds", "-1", "integers >= 0"), ("--seeds", "x", "integers >= 0"), ("--n-s", "0", ">= 1"),
        ("--teacher-epochs", "0", ">= 1"), ("--n-scales", "two", "integer"),
    ],
}
LG = [("--seeds", "-1", "seed"), ("--seeds", "x", "seed"), ("--seeds", "4294967296", "seed"),
      ("--out", "@FILE", "a file is in the way"), ("--out", "@UNDERFILE", "is a file")]


def _argv(flag, value, paths):
    value = subst([value], paths)[0]
    return [f"{flag}={value}"]  # '=' form: values such as '-1' are not read as options


CASES = [(s, f, v, e) for s in STUDY_SCRIPTS for f, v, e in COMMON + PER_SCRIPT[s]]


@pytest.mark.parametrize("name,flag,value,expect", CASES, ids=[f"{s} {f}={v!r}" for s, f, v, _ in CASES])
def test_study_script_flag_fails_at_parse_time(capsys, paths, name, flag, value, expect):
    err = parse_error(capsys, script(name).parse_args, _argv(flag, value, paths))
    assert f"argument {flag}" in err and expect in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
@pytest.mark.parametrize("name", STUDY_SCRIPTS)
def test_study_script_cuda_without_cuda(capsys, name):
    err = parse_error(capsys, script(name).parse_args, ["--device", "cuda"])
    assert "argument --device" in err and "--device cpu" in err


@pytest.mark.parametrize("flag,value,expect", LG, ids=[f"linear_gaussian_tradeoffs {f}={v!r}" for f, v, _ in LG])
def test_linear_gaussian_script_flag_fails_before_the_sweep(capsys, paths, monkeypatch, flag, value, expect):
    from kdbounds.studies import linear_gaussian_tradeoffs as study

    mod = script("linear_gaussian_tradeoffs")
    monkeypatch.setattr(study, "run_sweep", lambda *a, **k: pytest.fail("the sweep ran"))
    err = parse_error(capsys, mod.main, _argv(flag, value, paths))
    assert f"argument {flag}" in err and expect in err


def test_linear_gaussian_default_out_is_checked_before_the_sweep(tmp_path, monkeypatch):
    from kdbounds.studies import linear_gaussian_tradeoffs as study

    mod = script("linear_gaussian_tradeoffs")
    monkeypatch.setattr(study, "run_sweep", lambda *a, **k: pytest.fail("the sweep ran"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").write_text("a file where the results folder goes")
    with pytest.raises(SystemExit, match="argument --out"):  # _cli.main checks the default --out first
        mod.main(["--preset", "smoke"])


def test_default_out_that_is_a_file_stops_before_the_study(tmp_path, monkeypatch):
    """The default output folder (results/<study>/<preset>) is checked before ``study.run``."""
    from kdbounds.studies import _cli

    mod = script("nuisance_teacher")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").write_text("a file")
    a = mod.parse_args(["--preset", "smoke"])

    class Never:
        @staticmethod
        def run(*a, **k):
            pytest.fail("the study ran")

    with pytest.raises(SystemExit, match="argument --out"):
        _cli.main(Never, "nuisance_teacher", mod.resolve(a), a)


SUBPROCESS = [
    (["experiments/nuisance_teacher.py", "--epochs", "-1"], "--epochs"),
    (["experiments/nuisance_teacher.py", "--out", "/etc/passwd"], "--out"),
    (["-m", "kdbounds.train", "teacher", "--arch", "resnet8", "--lr", "inf", "--n-per-class", "3", "--epochs", "1"], "--lr"),
    (["-m", "kdbounds.train", "teacher", "--arch", "resnet8", "--momentum", "5"], "--momentum"),
]


@pytest.mark.parametrize("argv,flag", SUBPROCESS, ids=[" ".join(a) for a, _ in SUBPROCESS])
def test_whole_command_exits_2_with_one_error_line(argv, flag):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    errors = [ln for ln in r.stderr.splitlines() if "error:" in ln]
    assert len(errors) == 1 and f"argument {flag}" in errors[0] and "Traceback" not in r.stderr
