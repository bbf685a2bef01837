"""Helpers shared by the study tests (fixtures are in conftest.py): the Ray skip marker and a
counting wrapper around the trainer of the run cache."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Callable

import pytest

HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason="Ray is not installed: pip install -e '.[ray]' "
                                                   "(the test extra installs it)")


class CountingTrain:
    """Stands in for a trainer ``train(cfg, out, **kw)``: records the folder of every training it starts
    (``calls``) and, with ``stop_at``, raises ``error`` instead of starting training number ``stop_at``
    (0-based) — a Ctrl-C between runs, a worker running out of memory."""

    def __init__(self, real: Callable[..., Any], stop_at: int | None = None,
                 error: BaseException | None = None) -> None:
        self.real, self.stop_at, self.error, self.calls = real, stop_at, error, []

    def __call__(self, cfg: Any, out: Any, **kw: Any) -> Any:
        if self.stop_at is not None and len(self.calls) == self.stop_at:
            raise self.error if self.error is not None else KeyboardInterrupt("stopped between runs")
        self.calls.append(Path(out).name)
        return self.real(cfg, out, **kw)
