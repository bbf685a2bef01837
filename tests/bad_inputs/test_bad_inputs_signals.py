"""Fault tests (issue 26): SIGTERM and Ctrl-C (SIGINT) sent to a training that is running in another process.

``kdbounds-train`` (SIGTERM) and a study's command line (``kdbounds.studies._cli.main`` around a study whose
run trains through the run cache; SIGINT) are started as real processes on a fake CIFAR-10, on a method
that stops in the middle of epoch 2 (after the checkpoint of epoch 1 is written) and waits there for the
signal. Each must end within seconds with exit status 130 and exactly one line on stderr (what is saved
and how to resume; no traceback), leave the checkpoint of epoch 1 valid, and the same command run again
must resume from it to the numbers of an uninterrupted run (byte-identical ``model.pt``, equal losses).

Oracle: an uninterrupted run of the same command (reference ``model.pt`` and loss log).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bad_input_helpers import ROOT
from kdbounds.distill.checkpoint import read_checkpoint
from repo_files import load_file

RUNNER = textwrap.dedent("""
    import argparse, os, sys, time, types
    from pathlib import Path
    from torch import nn
    from kdbounds.distill import DistillMethod, register_method

    @register_method
    class WaitMidEpoch(DistillMethod):
        name = "_test_wait_mid_epoch"
        requires_teacher = False
        defaults = {}
        calls = 0

        def loss(self, x, y, s_out, t_out, epoch):
            WaitMidEpoch.calls += 1
            marker = os.environ.get("WAIT_MARKER")
            if marker and epoch == 1 and WaitMidEpoch.calls % 2 == 0 and not os.path.exists(marker):
                Path(marker).write_text(str(os.getpid()))  # mid-epoch 2 (0-based 1): the test signals now
                t0 = time.monotonic()
                while time.monotonic() - t0 < 120:
                    time.sleep(0.02)
                raise SystemExit("the signal never came")
            return nn.functional.cross_entropy(s_out, y), {}

    from kdbounds import train as cli
    mode, rest = sys.argv[1], sys.argv[2:]
    if mode == "train":
        sys.exit(cli.main(rest))
    cache_root, out, rest = rest[0], rest[1], rest[2:]  # a study whose run trains through the run cache
    from kdbounds.runs.cache import train_cached
    from kdbounds.studies import _cli
    cfg = cli.config_from_args(cli.build_parser().parse_args(rest))

    def run(config, out, cache_root=None, progress=False, **kw):
        return train_cached(cfg, cache_root, progress=False)

    ns = argparse.Namespace(out=out, cache_root=cache_root, no_progress=True, preset="smoke")
    sys.exit(_cli.main(types.SimpleNamespace(run=run, __name__="fake_study"), "fake", None, ns))
""")
EPOCHS = 3


def _fake_cifar(root: Path) -> Path:
    return load_file("tests/studies/fake_cifar.py").write_fake_cifar10(root)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The runner, the fake data, the training options and an uninterrupted reference run."""
    tmp = tmp_path_factory.mktemp("signals")
    runner = tmp / "runner.py"
    runner.write_text(RUNNER)
    data = _fake_cifar(tmp / "data")
    options = ["distill", "--method", "_test_wait_mid_epoch", "--arch", "resnet8", "--n-per-class", "4",
               "--epochs", str(EPOCHS), "--batch-size", "8", "--lr", "0.05", "--schedule", "constant", "--seed", "1",
               "--device", "cpu", "--threads", "1", "--no-progress", "--data-root", str(data)]
    ref = _run(runner, ["train", *options, "--out", str(tmp / "ref")])
    assert ref.returncode == 0, ref.stderr
    return runner, options, tmp / "ref"


def _env(marker: Path | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("WAIT_MARKER", None)
    if marker is not None:
        env["WAIT_MARKER"] = str(marker)
    return env


def _run(runner: Path, argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(runner), *argv], env=_env(), capture_output=True, text=True,
                          timeout=300)


def _interrupt(runner: Path, argv: list[str], marker: Path, sig: int) -> tuple[int, str, float]:
    """Start the runner, wait until it stands mid-epoch 2, send ``sig``; return (exit status, stderr, seconds)."""
    p = subprocess.Popen([sys.executable, str(runner), *argv], env=_env(marker), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert p.poll() is None, f"ended before epoch 2: {p.communicate()[1]}"
            assert time.monotonic() < deadline, "never reached epoch 2"
            time.sleep(0.05)
        t0 = time.monotonic()
        p.send_signal(sig)
        _, err = p.communicate(timeout=60)
        return p.returncode, err, time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _losses(folder: Path) -> list[float]:
    return [json.loads(line)["train_loss"] for line in (folder / "log.jsonl").read_text().splitlines()]


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_sigterm_ends_kdbounds_train_with_one_line_and_the_rerun_resumes(setup, tmp_path):
    runner, options, ref = setup
    argv = ["train", *options, "--out", str(tmp_path / "run")]
    code, err, took = _interrupt(runner, argv, tmp_path / "marker", signal.SIGTERM)
    assert code == 130 and took < 10, (code, took, err)
    line = _one_line(err)
    ckpt = tmp_path / "run" / "checkpoint.pt"
    assert line.startswith("interrupted") and f"1 of {EPOCHS} epochs" in line and str(ckpt) in line, line
    assert "run the same command again" in line
    assert read_checkpoint(ckpt)["epoch"] == 1  # the last finished epoch, intact
    assert not (tmp_path / "run" / "model.pt").exists()
    again = _run(runner, argv)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["resumed_from_epoch"] == 1
    assert _sha(tmp_path / "run" / "model.pt") == _sha(ref / "model.pt")
    assert _losses(tmp_path / "run") == _losses(ref)


def test_ctrl_c_ends_a_study_with_one_line_and_the_rerun_resumes(setup, tmp_path):
    runner, options, ref = setup
    cache = tmp_path / "cache"
    argv = ["study", str(cache), str(tmp_path / "out"), *options]
    code, err, took = _interrupt(runner, argv, tmp_path / "marker", signal.SIGINT)
    assert code == 130 and took < 10, (code, took, err)
    line = _one_line(err)
    assert line.startswith("interrupted") and str(cache) in line and "run the same command again" in line, line
    (run,) = [d for d in cache.iterdir() if d.is_dir()]
    assert read_checkpoint(run / "checkpoint.pt")["epoch"] == 1
    again = _run(runner, argv)
    assert again.returncode == 0, again.stderr
    assert _sha(run / "model.pt") == _sha(ref / "model.pt")
    assert _losses(run) == _losses(ref)


# ---------------------------------------------------------------------------------------------
# in this process: the handler itself and the lines of kdbounds-train before a checkpoint exists
# ---------------------------------------------------------------------------------------------
def test_the_first_signal_interrupts_a_second_ends_the_process_and_the_handlers_come_back():
    from kdbounds._interrupts import signals_end_the_run

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(KeyboardInterrupt):
        with signals_end_the_run():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(30)  # the handler interrupts this
            except KeyboardInterrupt:
                # while the run unwinds, a second signal of either kind takes the default action (ends the process)
                assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
                assert signal.getsignal(signal.SIGINT) is signal.SIG_DFL
                raise
            raise AssertionError("SIGTERM did not interrupt the block")
    assert {s: signal.getsignal(s) for s in before} == before


@pytest.mark.parametrize("where", ["config", "training"])
def test_kdbounds_train_interrupted_before_a_checkpoint_says_so_in_one_line(where, tmp_path, monkeypatch, capsys):
    from kdbounds import train as cli
    from kdbounds.runs import cache

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli if where == "config" else cache, "config_from_args" if where == "config" else
                        "train_cached", interrupt)
    code = cli.main(["teacher", "--arch", "resnet8", "--preset", "smoke", "--cache-root", str(tmp_path / "c"),
                     "--no-progress", "--threads", "1"])
    line = _one_line(capsys.readouterr().err)
    assert code == 130 and "run the same command again" in line
    if where == "config":
        assert line.startswith("interrupted before training started: nothing was written"), line
    else:  # the run's folder in the cache, named
        assert line.startswith("interrupted before the first epoch finished") and str(tmp_path / "c") in line, line
