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
