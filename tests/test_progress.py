"""Progress output: a tqdm bar on a terminal, one plain line per step otherwise.

Oracle: the text actually written to a stream (terminal-like or not), counted line by line.
"""

from __future__ import annotations

import io

import pytest

from kdbounds._progress import LineProgress, progress_bar, progress_mode


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_mode_follows_the_stream_and_the_environment(monkeypatch):
    monkeypatch.delenv("KDBOUNDS_PROGRESS", raising=False)
    assert progress_mode(FakeTTY()) == "bar"
    assert progress_mode(io.StringIO()) == "lines"
    monkeypatch.setenv("KDBOUNDS_PROGRESS", "lines")
    assert progress_mode(FakeTTY()) == "lines"
    monkeypatch.setenv("KDBOUNDS_PROGRESS", "OFF")
    assert progress_mode(io.StringIO()) == "off"
    monkeypatch.setenv("KDBOUNDS_PROGRESS", "fancy")
    with pytest.raises(ValueError, match="KDBOUNDS_PROGRESS: expected one of bar, lines, off, got 'fancy'"):
        progress_mode(io.StringIO())


def test_lines_without_a_terminal_one_per_step_no_redraws(monkeypatch):
    monkeypatch.delenv("KDBOUNDS_PROGRESS", raising=False)
    buf = io.StringIO()
    items = list(progress_bar(range(5), desc="epochs", unit="epoch", file=buf))
    assert items == [0, 1, 2, 3, 4]
    text = buf.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert [line.split(" (")[0] for line in lines] == [f"epochs: {i}/5 epochs" for i in range(1, 6)]
    assert "eta" in lines[1] and "eta" not in lines[-1]


def test_bar_on_a_terminal_redraws_in_place(monkeypatch):
    monkeypatch.delenv("KDBOUNDS_PROGRESS", raising=False)
    buf = FakeTTY()
    for _ in progress_bar(range(3), desc="runs", file=buf):
        pass
    assert "\r" in buf.getvalue()  # tqdm's redraws: what must not reach a log file


def test_off_and_disabled_print_nothing(monkeypatch):
    buf = io.StringIO()
    monkeypatch.setenv("KDBOUNDS_PROGRESS", "off")
    assert list(progress_bar(range(3), file=buf)) == [0, 1, 2]
    monkeypatch.delenv("KDBOUNDS_PROGRESS")
    assert list(progress_bar(range(3), file=buf, enabled=False)) == [0, 1, 2]
    assert buf.getvalue() == ""


def test_manual_updates_postfix_and_min_interval():
    buf = io.StringIO()
    with LineProgress(desc="sweep", total=4, unit="run", file=buf, min_interval=3600) as bar:
        bar.set_postfix_str("teacher-0 (1.0 s)")
        bar.update(1)  # first line always printed
        bar.update(1)  # within min_interval: silent
        bar.update(2)  # last step: always printed
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("sweep: 1/4 runs (25%)") and lines[0].endswith("| teacher-0 (1.0 s)")
    assert lines[1].startswith("sweep: 4/4 runs (100%)")
    unknown = io.StringIO()
    LineProgress(desc="batches", file=unknown).update(3)
    assert unknown.getvalue().startswith("batches: 3 it elapsed")


def test_initial_counts_done_steps_without_timing_them():
    buf = io.StringIO()
    p = LineProgress(desc="kd:resnet8", total=4, unit="ep", file=buf, initial=2)
    p.set_postfix_str("loss=1.000")
    p.update(1)
    line = buf.getvalue().strip()
    assert line.startswith("kd:resnet8: 3/4 eps (75%)") and line.endswith("| loss=1.000")
    assert "eta" in line  # one step timed since the start, one to go


def test_trainer_logs_one_line_per_epoch_without_a_terminal(tmp_path, monkeypatch, capsys):
    """The trainer's progress in a log: exactly one complete line per epoch trained, no carriage
    returns; a resumed run prints only the epochs it trains, counted from where it resumed."""
    import numpy as np

    from kdbounds.distill import TrainConfig, train

    monkeypatch.setenv("KDBOUNDS_PROGRESS", "lines")
    g = np.random.default_rng(0)
    x = g.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    y = np.arange(40) % 10
    data = (x[:32], y[:32], x[32:], y[32:])
    cfg = TrainConfig(arch="resnet8", epochs=2, batch_size=16, lr=0.05, device="cpu", schedule="constant")
    train(cfg, tmp_path / "a", data=data, progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = [l for l in err.splitlines() if l.startswith("ce:resnet8")]
    assert [l.split(": ")[1].split(" (")[0] for l in lines] == ["1/2 eps", "2/2 eps"]
    assert "loss=" in lines[0] and "test=" in lines[1]  # evaluated on the last epoch only (eval_every)
    class Stop(Exception):
        pass

    def stop(info):
        raise Stop

    with pytest.raises(Stop):
        train(cfg, tmp_path / "b", data=data, progress=False, callbacks=[stop])
    capsys.readouterr()
    train(cfg, tmp_path / "b", data=data, progress=True)  # resumes after epoch 1
    lines = [l for l in capsys.readouterr().err.splitlines() if l.startswith("ce:resnet8")]
    assert len(lines) == 1 and lines[0].startswith("ce:resnet8: 2/2 eps")
