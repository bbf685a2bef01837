"""SIGINT and SIGTERM end a command the same way (private plumbing of the command lines, written once).

:func:`signals_end_the_run` is used by ``kdbounds-train`` (:mod:`kdbounds.train`) and ``kdbounds-study``
(:mod:`kdbounds.studies._cli`): inside it, SIGTERM (a cluster's scheduler, ``kill``, ``timeout``) raises
``KeyboardInterrupt`` like Ctrl-C, so the command catches one exception and prints one line saying what
was saved and how to resume, never a traceback. The first signal lets the run unwind (every file a run
writes is written atomically: a checkpoint is either the previous one or the new one, never a half-written
one); a second signal, of either kind, ends the process at once with the signal's default action.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

__all__ = ["signals_end_the_run"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _stop(signum: int, frame: object) -> None:
    for s in _SIGNALS:  # a second signal while this one unwinds the run: end the process now
        signal.signal(s, signal.SIG_DFL)
    raise KeyboardInterrupt


@contextlib.contextmanager
def signals_end_the_run() -> Iterator[None]:
    """Inside the block, SIGINT and SIGTERM raise ``KeyboardInterrupt`` (once; a second signal kills the
    process with the signal's default action); the previous handlers are restored on exit. Outside the main
    thread (where Python cannot set handlers) the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.getsignal(s) for s in _SIGNALS}
    for s in _SIGNALS:
        signal.signal(s, _stop)
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
