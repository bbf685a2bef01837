"""Command line: help, listings, errors (exit code 2, no traceback), a tiny end-to-end run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from kdbounds import train as cli


def _run(capsys, *argv):
    try:
        code = cli.main(list(argv))
    except SystemExit as e:  # argparse-level (parse-time) errors
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_help_mentions_examples_and_presets(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for s in ("teacher", "distill", "--method kd --teacher", "presets", "LAST epoch", "--list-methods"):
        assert s in text
    with pytest.raises(SystemExit):
        cli.main(["distill", "--help"])
    text = capsys.readouterr().out
    assert "--method-arg NAME=VALUE" in text and "--teacher CKPT" in text


def test_listings(capsys):
    code, out, _ = _run(capsys, "--list-models")
    assert code == 0 and "resnet20" in out.split() and "wrn_40_2" in out.split()
    code, out, _ = _run(capsys, "--list-methods")
    assert code == 0 and "kd" in out and "T=4.0" in out and "ce" in out


@pytest.mark.parametrize("argv,msg", [
    (["teacher", "--arch", "resnet9"], "argument --arch: expected a model name, got 'resnet9'; valid: resnet8"),
    (["distill", "--arch", "resnet8", "--method", "foo"], "unknown method 'foo'; valid methods:"),
    (["distill", "--arch", "resnet8", "--method", "kd"], "needs --teacher CKPT"),
    (["distill", "--arch", "resnet8", "--teacher", "/nonexistent/model.pt"], "no such file"),
    (["teacher", "--arch", "resnet8", "--epochs", "0"], "argument --epochs: expected an integer >= 1"),
    (["teacher", "--arch", "resnet8", "--method-arg", "T=4"], "unknown hyper-parameter"),
])
def test_bad_input_gives_clear_message_and_code_2(capsys, argv, msg):
    code, _, err = _run(capsys, *argv)
    assert code == 2 and msg in err and "Traceback" not in err


def test_argparse_level_errors(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["teacher", "--arch", "resnet8", "--method-arg", "T"])
    assert e.value.code == 2 and "NAME=VALUE" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["teacher", "--arch", "resnet8", "--milestones", "a,b"])
    assert "150,180,210" in capsys.readouterr().err


def test_config_precedence_preset_then_explicit():
    p = cli.build_parser()
    cfg = cli.config_from_args(p.parse_args(["teacher", "--arch", "resnet8", "--preset", "cpu", "--epochs", "7"]))
    assert cfg.n_per_class == 500 and cfg.epochs == 7 and cfg.schedule == "cosine" and cfg.method == "ce"
    cfg = cli.config_from_args(p.parse_args(["teacher", "--arch", "resnet8", "--milestones", "3,5", "--no-augment"]))
    assert cfg.milestones == (3, 5) and cfg.augment is False and cfg.epochs == 240
    cfg = cli.config_from_args(p.parse_args(["teacher", "--arch", "resnet8", "--method-arg", "label_smoothing=0.1"]))
    assert cfg.method_kwargs == {"label_smoothing": 0.1}


def test_end_to_end_teacher_then_distill(tmp_path, capsys, monkeypatch):
    # tiny synthetic CIFAR in the python-batch layout is D1's business; here we patch the loader
    import kdbounds.distill.trainer as tr

    g = np.random.default_rng(0)
    x = g.integers(0, 256, (60, 32, 32, 3), dtype=np.uint8)
    y = np.arange(60) % 10
    real = tr.prepare_data
    monkeypatch.setattr(tr, "prepare_data", lambda cfg, data=None: real(cfg, (x[:40], y[:40], x[40:], y[40:])))
    n = torch.get_num_threads()
    try:
        code, out, err = _run(capsys, "teacher", "--arch", "resnet8", "--epochs", "1", "--batch-size", "20",
                              "--device", "cpu", "--out", str(tmp_path / "t"), "--no-progress", "--threads", "1")
        assert code == 0, err
        summary = json.loads(out)
        assert summary["epochs"] == 1 and 0 <= summary["test_acc"] <= 1
        code, out, err = _run(capsys, "distill", "--method", "kd", "--teacher", summary["model"], "--arch", "resnet8",
                              "--method-arg", "T=2", "--epochs", "1", "--batch-size", "20", "--device", "cpu",
                              "--cache-root", str(tmp_path / "cache"), "--no-progress", "--threads", "1")
        assert code == 0, err
        s2 = json.loads(out)
        cfg = json.loads((tmp_path / "cache" / s2["out_dir"].split("/")[-1] / "config.json").read_text())
        assert cfg["method"] == "kd" and cfg["method_kwargs"] == {"T": 2.0}
    finally:
        torch.set_num_threads(n)
