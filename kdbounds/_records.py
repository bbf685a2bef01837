"""Private record shapes shared across the library: one estimate record for every estimator."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Estimate"]


@dataclass(frozen=True)
class Estimate:
    """A measured scalar with its uncertainty.

    Attributes:
        value: the point estimate.
        stderr: its standard error (``math.inf`` when it cannot be estimated, e.g. one sample).
        n: the number of independent samples (inputs, probes, draws, seeds) it averages.
        ci_low, ci_high: a confidence interval when one was computed, else ``None``.
        level: the interval's confidence level (e.g. 0.95), else ``None``.
    """

    value: float
    stderr: float
    n: int
    ci_low: float | None = None
    ci_high: float | None = None
    level: float | None = None

    @property
    def finite(self) -> bool:
        """True when the value is finite and at least one sample was seen."""
        return self.n > 0 and math.isfinite(self.value)

    def upper(self, z: float = 1.96) -> float:
        """``ci_high`` if there is one, else ``value + z · stderr``."""
        return self.ci_high if self.ci_high is not None else self.value + z * self.stderr

    def lower(self, z: float = 1.96) -> float:
        """``ci_low`` if there is one, else ``value − z · stderr``."""
        return self.ci_low if self.ci_low is not None else self.value - z * self.stderr

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (non-finite numbers are left to the strict JSON writer, which makes them null)."""
        return asdict(self)
