"""Private progress plumbing, written once: a tqdm bar on a terminal, one plain line per step in logs.

A tqdm bar redraws itself with carriage returns; in a log file (a batch job, ``make run > log``, CI)
that becomes a stream of partial lines, and nested bars interleave. :func:`progress_bar` therefore
chooses by where the output goes:

* the stream is a terminal (``isatty()``): a ``tqdm`` bar, as before;
* otherwise: a :class:`LineProgress`, which prints one complete line per step
  (``"sweep: 3/12 runs (25%) elapsed 0:00:41 eta 0:02:03 | kd-seed1"``) and never redraws.

The environment variable ``KDBOUNDS_PROGRESS`` overrides the choice: ``bar``, ``lines`` or ``off``.
Both objects share the small tqdm subset the project uses: iteration, ``update(n)``,
``set_postfix_str(s)``, ``write(msg)``, ``close()`` and use as a context manager.
"""

from __future__ import annotations

import os
import sys
import time
from typing import IO, Any, Iterable, Iterator

__all__ = ["LineProgress", "progress_bar", "progress_mode"]

_MODES = ("bar", "lines", "off")


def progress_mode(stream: IO[str] | None = None) -> str:
    """``"bar"``, ``"lines"`` or ``"off"``: ``KDBOUNDS_PROGRESS`` when set, else ``"bar"`` when
    ``stream`` (default ``sys.stderr``, where tqdm writes) is a terminal and ``"lines"`` otherwise.

    Raises:
        ValueError: ``KDBOUNDS_PROGRESS`` is set to something else than ``bar``/``lines``/``off``.
    """
    env = os.environ.get("KDBOUNDS_PROGRESS", "").strip().lower()
    if env:
        if env not in _MODES:
            raise ValueError(f"KDBOUNDS_PROGRESS: expected one of {', '.join(_MODES)}, got {env!r}")
        return env
    stream = sys.stderr if stream is None else stream
    try:
        return "bar" if stream.isatty() else "lines"
    except (AttributeError, ValueError):  # closed or file-like without isatty
        return "lines"


def _hms(seconds: float) -> str:
    s = int(max(seconds, 0.0))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class LineProgress:
    """A progress counter that prints one full line per step (no carriage returns, no redraws).

    Args:
        iterable: optional iterable to wrap; iterating yields its items and counts one step each.
        desc: label at the start of each line.
        total: number of steps (``len(iterable)`` when available); ``None`` prints no percentage/eta.
        unit: name of a step (``"run"`` gives ``"3/12 runs"``).
        file: where lines go (default ``sys.stderr``); each line is flushed.
        min_interval: at least this many seconds between two printed lines (the last step is always
            printed); ``0`` prints every step.
        initial: steps already done before (e.g. resumed epochs); counted but not timed.
    """

    def __init__(self, iterable: Iterable[Any] | None = None, desc: str = "", total: int | None = None,
                 unit: str = "it", file: IO[str] | None = None, min_interval: float = 0.0,
                 initial: int = 0) -> None:
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except TypeError:
                total = None
        self.iterable = iterable
        self.desc = desc
        self.total = total
        self.unit = unit
        self.file = file
        self.min_interval = float(min_interval)
        self.n = self.initial = int(initial)
        self.postfix = ""
        self._start = time.monotonic()
        self._last_print = -float("inf")
        self._closed = False

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("LineProgress: nothing to iterate; give an iterable or call update()")
        for item in self.iterable:
            yield item
            self.update(1)

    def __len__(self) -> int:
        if self.total is None:
            raise TypeError("LineProgress: total is unknown")
        return self.total

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        """Text printed at the end of the next line (e.g. the key of the run that just finished)."""
        self.postfix = str(s)

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def line(self) -> str:
        """The line :meth:`update` prints for the current state."""
        elapsed = time.monotonic() - self._start
        unit = self.unit if self.unit == "it" or (self.n == 1 and self.total in (None, 1)) else self.unit + "s"
        parts = [f"{self.desc}: " if self.desc else ""]
        if self.total:
            pct = 100.0 * self.n / self.total
            parts.append(f"{self.n}/{self.total} {unit} ({pct:.0f}%) elapsed {_hms(elapsed)}")
            if self.initial < self.n < self.total:  # rate of the steps done here (not the skipped ones)
                parts.append(f" eta {_hms(elapsed * (self.total - self.n) / (self.n - self.initial))}")
        else:
            parts.append(f"{self.n} {unit} elapsed {_hms(elapsed)}")
        if self.postfix:
            parts.append(f" | {self.postfix}")
        return "".join(parts)

    def write(self, msg: str) -> None:
        """Print ``msg`` as its own line (same stream)."""
        print(msg, file=self.file if self.file is not None else sys.stderr, flush=True)

    def update(self, n: int = 1) -> None:
        """Count ``n`` more steps and print a line (subject to ``min_interval``)."""
        self.n += n
        now = time.monotonic()
        last = self.total is not None and self.n >= self.total
        if n and (last or now - self._last_print >= self.min_interval):
            self._last_print = now
            self.write(self.line())

    def close(self) -> None:
        self._closed = True


def progress_bar(iterable: Iterable[Any] | None = None, *, desc: str = "", total: int | None = None,
                 unit: str = "it", enabled: bool = True, leave: bool = True, file: IO[str] | None = None,
                 min_interval: float = 0.0, initial: int = 0) -> Any:
    """A tqdm bar on a terminal, a :class:`LineProgress` otherwise, a silent tqdm when disabled.

    Args:
        iterable: optional iterable to wrap (else drive it with ``update``).
        desc: label; total: number of steps; unit: name of one step.
        enabled: ``False`` returns a disabled (silent) tqdm; ``KDBOUNDS_PROGRESS=off`` does the same.
        leave: keep the finished tqdm bar on screen (ignored for lines).
        file: output stream (default ``sys.stderr``); its ``isatty()`` decides bar vs lines.
        min_interval: seconds between two printed lines in line mode (use for per-batch counters).
        initial: steps already done (a resumed run starts its bar there).

    Returns:
        An object with ``__iter__``, ``update``, ``set_postfix_str``, ``write``, ``close`` and context
        manager support.
    """
    from tqdm.auto import tqdm

    mode = progress_mode(file) if enabled else "off"
    if mode == "bar":
        return tqdm(iterable, desc=desc, total=total, unit=unit, leave=leave, file=file, initial=initial)
    if mode == "lines":
        return LineProgress(iterable, desc=desc, total=total, unit=unit, file=file, min_interval=min_interval,
                            initial=initial)
    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=True, file=file, initial=initial)
