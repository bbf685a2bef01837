"""Private record shapes shared across the library: one estimate record for every estimator."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from ._io import float_field, with_reasons

__all__ = ["Estimate"]

_INTERVAL = ("ci_low", "ci_high", "level")


@dataclass(frozen=True)
class Estimate:
    """A measured scalar with its uncertainty: the one estimate record (checks, certificates' oracle, fidelity
    metrics — there under its public name ``kdbounds.fidelity.MetricEstimate``, the same class).

    ``n == 0`` (an estimate over an empty subset, e.g. agreement on the teacher-wrong inputs of a teacher that
    makes no error) is the one case where ``value`` and ``stderr`` are NaN; ``n == 1`` gives ``stderr = inf``.
    The mean of per-example values is computed once, by :func:`kdbounds._torch.mean_estimate`, which refuses an
    empty input (``ValueError`` naming the argument); only a caller whose subset may legitimately be empty
    (``fidelity``'s per-subset agreement) returns the ``n == 0`` record instead.

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

    @property
    def defined(self) -> bool:
        """:attr:`finite` under the name the fidelity metrics gave it (the metric has a value)."""
        return self.finite

    @property
    def has_interval(self) -> bool:
        """Whether a confidence interval was computed (any of ``ci_low``, ``ci_high``, ``level`` set)."""
        return any(getattr(self, k) is not None for k in _INTERVAL)

    def upper(self, z: float = 1.96) -> float:
        """``ci_high`` if there is one, else ``value + z · stderr``."""
        return self.ci_high if self.ci_high is not None else self.value + z * self.stderr

    def lower(self, z: float = 1.96) -> float:
        """``ci_low`` if there is one, else ``value − z · stderr``."""
        return self.ci_low if self.ci_low is not None else self.value - z * self.stderr

    def to_dict(self) -> dict[str, Any]:
        """The estimate as strict JSON: a non-finite number is ``null`` with a ``*_reason``.

        Returns:
            ``{"value", "stderr", "n"}``, plus ``"ci_low"``, ``"ci_high"``, ``"level"`` when there is an interval
            (:attr:`has_interval`), plus ``"<key>_reason"`` (e.g. ``"+inf: one sample"``, ``"nan: no samples"``)
            for each non-finite number; :meth:`from_dict` reads it back.
        """
        d: dict[str, Any] = {"value": self.value, "stderr": self.stderr, "n": self.n}
        if self.has_interval:
            d.update({k: getattr(self, k) for k in _INTERVAL})
        return with_reasons(d, why={0: "no samples", 1: "one sample"}.get(self.n, ""))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Estimate":
        """The estimate written by :meth:`to_dict` (a ``null`` with a reason read back as its infinity or NaN).

        Also reads the earlier forms: every interval key present with ``null`` for none, and a bare ``null``
        for a non-finite value or standard error (read as NaN).

        Args:
            d: a mapping with keys ``value``, ``stderr``, ``n`` (and optional ``ci_low``, ``ci_high``, ``level``,
                ``*_reason``).

        Returns:
            The :class:`Estimate`.
        """
        ci = {k: (float_field(d, k) if d.get(k) is not None or f"{k}_reason" in d else None) for k in _INTERVAL}
        return cls(float_field(d, "value"), float_field(d, "stderr"), int(d["n"]), **ci)

    def __str__(self) -> str:
        if not self.finite:
            return f"undefined (n={self.n})"
        ci = f" [{self.ci_low:.4f}, {self.ci_high:.4f}]" if self.ci_low is not None and self.ci_high is not None else ""
        return f"{self.value:.4f} ± {self.stderr:.4f}{ci} (n={self.n})"
