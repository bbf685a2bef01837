"""A toy study for the sweep tests: cheap pure functions whose executions can be counted.

Each function records every *start* and every *completion* as its own file in ``marker_dir``
(``<name>.start.<pid>.<ns>`` / ``<name>.done.<pid>.<ns>``), so a test counts executions by listing
files, across processes and Ray workers. The module is imported by Ray workers by name, so the test
puts its folder on their ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Mapping

import torch


def mark(marker_dir: str, name: str, what: str) -> None:
    p = Path(marker_dir) / f"{name}.{what}.{os.getpid()}.{time.time_ns()}"
    fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    os.close(fd)


def count(marker_dir: str | os.PathLike, name: str, what: str = "done") -> int:
    return len(list(Path(marker_dir).glob(f"{name}.{what}.*")))


def _value(seed: int, deps: Mapping[str, Any] | None) -> float:
    """A few float32 torch ops whose last bits depend on the reduction order (so thread counts matter)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 128, generator=g)
    w = torch.randn(128, 64, generator=g)
    v = torch.tanh(x @ w).sum().item()
    v += torch.randn(400_000, generator=g).sum().item()  # split across threads: last bits depend on threads
    if deps:
        v += 0.5 * sum(d["value"] for d in deps.values())
    return v


def toy_run(name: str, seed: int, marker_dir: str, deps: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A run: counts itself, returns a number computed with torch and its dependencies' numbers."""
    mark(marker_dir, name, "start")
    out = {"name": name, "value": _value(seed, deps), "deps": sorted(deps) if deps else [],
           "threads": torch.get_num_threads()}
    mark(marker_dir, name, "done")
    return out


def toy_interruptible(name: str, seed: int, marker_dir: str, stop_file: str,
                      deps: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Like :func:`toy_run`, but raises KeyboardInterrupt (a Ctrl-C) while ``stop_file`` exists."""
    mark(marker_dir, name, "start")
    if os.path.exists(stop_file):
        raise KeyboardInterrupt(f"interrupted at {name}")
    out = {"name": name, "value": _value(seed, deps), "deps": sorted(deps) if deps else []}
    mark(marker_dir, name, "done")
    return out


def toy_killable(name: str, seed: int, marker_dir: str, pid_file: str,
                 deps: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """First attempt: writes its PID to ``pid_file`` and waits to be killed (fails after 60 s if it
    is not). A retry (``pid_file`` exists) completes like :func:`toy_run`."""
    mark(marker_dir, name, "start")
    if not os.path.exists(pid_file):
        tmp = f"{pid_file}.{os.getpid()}.tmp"
        Path(tmp).write_text(str(os.getpid()))
        os.replace(tmp, pid_file)
        time.sleep(60)
        raise RuntimeError(f"{name}: expected to be killed by the test")
    out = {"name": name, "value": _value(seed, deps), "deps": sorted(deps) if deps else []}
    mark(marker_dir, name, "done")
    return out


def toy_fail(name: str, marker_dir: str, deps: Mapping[str, Any] | None = None) -> None:
    mark(marker_dir, name, "start")
    raise ValueError(f"{name} failed on purpose")
