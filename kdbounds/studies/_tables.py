"""The tables of the studies' reports and of README's generated blocks: one number cell (:func:`format_number`) and
one markdown table (:func:`format_table`), a value that is not defined shown as :data:`UNDEFINED`, never "None" or
"nan". The figures are public, in :mod:`kdbounds.figures`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["UNDEFINED", "format_number", "format_table"]


#: what a table shows for a value that is not defined (``None``, NaN): never "None" or "nan"
UNDEFINED = "—"


def format_number(v: Any, spec: str = ".3f") -> str:
    """``format(v, spec)`` for a finite number, :data:`UNDEFINED` ("—") for anything else (``None``, NaN, inf):
    the one number cell of the generated README tables.

    Args:
        v: the value.
        spec: its format.

    Returns:
        The text.
    """
    return format(v, spec) if isinstance(v, (int, float)) and math.isfinite(v) else UNDEFINED


def format_table(rows: Sequence[dict[str, Any]], cols: Sequence[str], floatfmt: str = ".4g") -> str:
    """A GitHub-markdown table of ``cols`` from ``rows``.

    Args:
        rows: dicts (missing keys print empty).
        cols: the columns, in order.
        floatfmt: format of float cells.

    Returns:
        The table as text; a value that is not defined (``None``, NaN) is shown as :data:`UNDEFINED` ("—"; the
        caller says why, e.g. in a ``note`` column), never as "None" or "nan".
    """
    def fmt(v: Any) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return UNDEFINED
        if isinstance(v, float):
            return format(v, floatfmt)
        return str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |")
    return "\n".join(lines)
