"""What every study's frozen ``Config`` dataclass shares (study plumbing, written once)."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

__all__ = ["ConfigRecord"]

_C = TypeVar("_C", bound="ConfigRecord")


class ConfigRecord:
    """Base of the studies' frozen config dataclasses (no fields of its own): the config as plain data and a
    checked copy."""

    def to_dict(self) -> dict[str, Any]:
        """The config as plain data (``results.json``'s ``config``).

        Returns:
            A dict of every field (``dataclasses.asdict``: nested dataclasses become dicts).
        """
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def replace(self: _C, **kw: Any) -> _C:
        """A copy with some fields changed, checked again by the config's ``__post_init__``.

        Args:
            **kw: the fields to change.

        Returns:
            The new config.
        """
        return dataclasses.replace(self, **kw)  # type: ignore[type-var]
