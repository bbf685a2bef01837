"""One lock per run folder and atomic publication: a run is computed once, however many processes ask.

Protocol (used by the sweep runner's result store, and meant for the run cache's ``train_cached``):

* **Lock file.** The lock of run folder ``<parent>/<name>`` is the file ``<parent>/.<name>.lock``, a
  *sibling* of the folder, not inside it: deleting or re-creating a run folder (``force=True``) never
  deletes a lock someone holds, and the folder need not exist to be locked. It is an OS lock
  (``flock`` on POSIX, ``LockFileEx`` on Windows) taken with the ``filelock`` package; the file itself
  stays after release (so every waiter locks the same inode) and its presence means nothing.
* **Finished.** A run is finished when its *publication file* exists (``result.json`` for
  :func:`publish`; the caller's ``load`` decides for :func:`compute_once`). Publication is atomic
  (temporary file in the same folder, ``fsync``, ``os.replace``), so a reader sees either no file or a
  complete one, with or without the lock. Anything else in the folder (checkpoints, logs) is work in
  progress that only the lock holder touches.
* **Compute once.** :func:`compute_once` reads the publication without the lock (fast path, also on
  read-only copies of a cache), then takes the lock, reads again (another process may have finished
  while we waited), and only then computes and publishes. A second process asking for a run being
  computed therefore blocks on the lock and then returns the published result without computing.
* **Stale locks.** There are none: the OS releases a lock when its holder exits or is killed
  (SIGKILL, OOM, a Ray worker that dies), so the next waiter gets it at once and finds the run
  unfinished (nothing published) and computes it — resuming from the holder's checkpoint where the
  computation supports it. The soft-lock fallback of ``filelock`` (a marker file that a killed process
  would leave behind) is disabled: on a file system without OS locks :func:`run_lock` raises instead.
* **Waiting is never silent.** The holder records its pid, host and start time in the sibling file
  ``.<name>.lock.holder`` (removed on release). A waiter prints one line to stderr after
  ``notice_after`` seconds naming the lock file, the holder's pid (and whether that process is
  stopped) and what to do; ``timeout`` (default: ``$KDBOUNDS_LOCK_TIMEOUT`` seconds, the
  ``--lock-timeout`` of every script, else no limit) bounds the wait with :class:`RunLockTimeout`.
* **Scope.** Mutual exclusion holds between processes and between threads (each :func:`run_lock` call
  opens its own descriptor). It is not re-entrant: do not take the lock of the same run twice in one
  thread. On a cluster the run folders must live on a file system that every node sees and that
  supports ``flock`` across nodes (local disk for one machine; NFSv4 or Lustre with locking enabled).
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from .._checks import check_nonnegative
from .._io import atomic_write_json, read_json

__all__ = ["LOCK_SUFFIX", "LOCK_TIMEOUT_ENV", "RESULT_NAME", "RunLockTimeout", "compute_once", "holder_path",
           "is_published", "lock_holder", "lock_path", "lock_timeout_from_env", "publish", "read_published", "run_lock"]

LOCK_SUFFIX = ".lock"
RESULT_NAME = "result.json"
#: environment variable holding the default lock-wait limit in seconds (set by ``--lock-timeout``)
LOCK_TIMEOUT_ENV = "KDBOUNDS_LOCK_TIMEOUT"
#: seconds a waiter waits before saying who it is waiting for
NOTICE_AFTER = 5.0

T = TypeVar("T")


class RunLockTimeout(TimeoutError):
    """The lock of a run was not obtained within ``timeout`` seconds (another process holds it)."""


def lock_path(run_dir: str | os.PathLike) -> Path:
    """``<parent>/.<name>.lock`` for the run folder ``<parent>/<name>`` (see the module protocol).

    Args:
        run_dir: the run folder (need not exist).

    Returns:
        The lock file's path, next to the folder.

    Raises:
        ValueError: ``run_dir`` has no name (``/``, ``.``, empty).
    """
    p = Path(run_dir)
    if p.name in ("", ".", ".."):
        raise ValueError(f"run_dir: expected a folder path with a name, got {os.fspath(run_dir)!r}")
    return p.parent / f".{p.name}{LOCK_SUFFIX}"


def holder_path(lock: str | os.PathLike) -> Path:
    """Where the holder of ``lock`` records its pid, host and start time.

    Args:
        lock: the lock file.

    Returns:
        ``<lock>.holder``.
    """
    p = Path(lock)
    return p.with_name(p.name + ".holder")


def lock_holder(lock: str | os.PathLike) -> str:
    """Who holds ``lock``, in words: ``"pid 123 on host h (stopped: ...)"``, or ``"another process"``.

    Args:
        lock: the lock file.

    Returns:
        A phrase for a message (never raises: the record is advisory).
    """
    try:
        rec = json.loads(holder_path(lock).read_text(encoding="utf-8"))
        pid, host = int(rec["pid"]), str(rec["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"
    words = f"pid {pid} on host {host}"
    if host == socket.gethostname():
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            state = ""
        if state in ("T", "t"):
            words += f" (stopped: resume it with `kill -CONT {pid}` or end it)"
    return words


def lock_timeout_from_env() -> float | None:
    """The lock-wait limit set by ``$KDBOUNDS_LOCK_TIMEOUT`` (``--lock-timeout``).

    Returns:
        Seconds, or ``None`` when the variable is unset or empty (no limit).

    Raises:
        ValueError: the variable is not a finite number >= 0 (names it).
    """
    raw = os.environ.get(LOCK_TIMEOUT_ENV, "").strip()
    if not raw:
        return None
    try:
        v = float(raw)
    except ValueError:
        v = -1.0
    if not (v >= 0 and v != float("inf")):
        raise ValueError(f"{LOCK_TIMEOUT_ENV}={raw!r}: expected a finite number of seconds >= 0; unset it or fix it")
    return v


def _check_timeout(timeout: Any) -> float | None:
    if timeout is None:
        return lock_timeout_from_env()
    return check_nonnegative("timeout", timeout, fix="seconds, or None to wait without a limit "
                                                     f"(unless ${LOCK_TIMEOUT_ENV} sets one)")


def _wait(lock: Any, run_dir: str | os.PathLike, lp: Path, timeout: float | None, notice_after: float | None) -> None:
    """Block on ``lock`` (busy at the start) up to ``timeout`` seconds, saying once who holds it."""
    from filelock import Timeout

    start = time.monotonic()
    noticed = notice_after is None
    while True:
        left = None if timeout is None else max(0.0, timeout - (time.monotonic() - start))
        step = left if noticed else (notice_after if left is None else min(left, notice_after))
        try:
            lock.acquire(timeout=-1 if step is None else step)
            return
        except Timeout:
            pass
        waited = time.monotonic() - start
        if timeout is not None and waited >= timeout:
            raise RunLockTimeout(f"run {os.fspath(run_dir)!r} still locked after {timeout:g} s by "
                                 f"{lock_holder(lp)} (lock file {lp}); wait for that process to finish, stop it, or "
                                 f"raise --lock-timeout / {LOCK_TIMEOUT_ENV}") from None
        if not noticed:
            noticed = True
            limit = f"giving up after {timeout:g} s" if timeout is not None else \
                "no limit: pass --lock-timeout SECONDS to give up"
            print(f"waiting for run {os.fspath(run_dir)}: being computed by {lock_holder(lp)} (lock file {lp}); "
                  f"{limit}", file=sys.stderr, flush=True)


@contextmanager
def run_lock(run_dir: str | os.PathLike, timeout: float | None = None,
             on_wait: Callable[[Path], None] | None = None, notice_after: float | None = NOTICE_AFTER) -> Iterator[Path]:
    """Hold the OS lock of ``run_dir`` for the ``with`` block; yields the lock file's path.

    Args:
        run_dir: the run folder (need not exist; its parent is created).
        timeout: seconds to wait for the lock; ``None``: ``$KDBOUNDS_LOCK_TIMEOUT`` when set, else
            forever; ``0`` tries once.
        on_wait: called once with the lock path when the lock is held by someone else and we start
            waiting (e.g. to log "waiting for run X, being computed by another process").
        notice_after: seconds of waiting after which one line on stderr names the holder and the
            lock file (``None``: silent).

    Raises:
        RunLockTimeout: the lock was not free within ``timeout`` seconds (names the holder and the fix).
        ValueError: ``timeout`` is negative or not finite (or ``$KDBOUNDS_LOCK_TIMEOUT`` is).
        OSError: the file system offers no OS locks (the message names the folder and the fix).
    """
    from filelock import FileLock, Timeout

    timeout = _check_timeout(timeout)
    lp = lock_path(run_dir)
    lp.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lp, timeout=-1, fallback_to_soft=False)
    try:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if on_wait is not None:
                on_wait(lp)
            if timeout == 0:
                raise RunLockTimeout(f"run {os.fspath(run_dir)!r} is locked by {lock_holder(lp)} ({lp})") from None
            _wait(lock, run_dir, lp, timeout, notice_after)
    except OSError as e:
        if e.errno in (errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP):
            raise OSError(e.errno, f"cannot lock {lp}: the file system of {lp.parent} offers no OS file "
                                   f"locks ({e.strerror}); put the run cache on a local disk or on a shared "
                                   f"file system with locking (NFSv4, Lustre with flock)") from None
        raise
    holder = holder_path(lp)
    try:
        try:
            atomic_write_json(holder, {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()})
        except OSError:
            pass  # advisory only (e.g. a read-only lock folder)
        yield lp
    finally:
        try:
            holder.unlink(missing_ok=True)
        except OSError:
            pass
        lock.release()


def publish(run_dir: str | os.PathLike, result: Any, name: str = RESULT_NAME) -> Path:
    """Publish ``result`` as strict JSON at ``run_dir/name``, atomically; returns the file's path.

    After this call the run is finished for every reader (see the module protocol). Call it last,
    after every other file of the run is written.

    Args:
        run_dir: the run folder.
        result: anything :func:`kdbounds._io.to_jsonable` accepts.
        name: the file name (default ``result.json``).

    Returns:
        The written file's path.

    Raises:
        TypeError: ``result`` cannot be written as JSON.
    """
    return atomic_write_json(Path(run_dir) / name, result)


def is_published(run_dir: str | os.PathLike, name: str = RESULT_NAME) -> bool:
    """Whether ``run_dir/name`` exists, i.e. the run is finished.

    Args:
        run_dir: the run folder.
        name: the published file's name.

    Returns:
        True when the run is finished.
    """
    return (Path(run_dir) / name).is_file()


def read_published(run_dir: str | os.PathLike, name: str = RESULT_NAME) -> Any | None:
    """The published JSON of ``run_dir``, or ``None`` when the run is not finished.

    Args:
        run_dir: the run folder.
        name: the published file's name.

    Returns:
        The parsed result, or ``None``.

    Raises:
        ValueError: the file exists but is not valid JSON (names the file and the fix).
    """
    p = Path(run_dir) / name
    return read_json(p) if p.is_file() else None


def compute_once(run_dir: str | os.PathLike, compute: Callable[[], T], *,
                 load: Callable[[Path], T | None] = read_published,
                 save: Callable[[Path, T], Any] | None = publish,
                 timeout: float | None = None,
                 on_wait: Callable[[Path], None] | None = None) -> tuple[T, bool]:
    """Return the finished result of ``run_dir``, computing and publishing it first if nobody has.

    ``load(run_dir)`` is tried without the lock; when it gives ``None`` the lock is taken, ``load`` is
    tried again, and only then ``compute()`` runs and ``save(run_dir, result)`` publishes it, still
    under the lock. ``save=None`` when ``compute`` publishes by itself (e.g. a trainer that writes
    its own ``result.json`` atomically as its last step).

    Args:
        run_dir: the run folder (created by nobody here; ``compute``/``save`` create what they need).
        compute: the work, called at most once per call and only by the lock holder.
        load: returns the finished result or ``None``; must only report runs published atomically.
        save: atomic publication of the result; ``None`` if ``compute`` publishes.
        timeout, on_wait: as in :func:`run_lock`.

    Returns:
        ``(result, computed)``: ``computed`` is ``True`` when this call ran ``compute``.

    Raises:
        RunLockTimeout: see :func:`run_lock`.
    """
    run_dir = Path(run_dir)
    done = load(run_dir)
    if done is not None:
        return done, False
    with run_lock(run_dir, timeout=timeout, on_wait=on_wait):
        done = load(run_dir)
        if done is not None:
            return done, False
        result = compute()
        if save is not None:
            save(run_dir, result)
        return result, True

