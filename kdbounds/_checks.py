"""Private argument checks, written once, one message style.

Every check raises ``ValueError`` (or ``TypeError`` for a wrong type) whose message names the argument,
says what was expected and what was got, and where useful the fix::

    delta: expected a number in (0, 1), got 1.5

They return the validated value converted to a plain Python type, so callers can write
``n = check_int("n", n, minimum=1)``. The ``as_*`` functions do the same for a distillation method's
hyper-parameters, which may arrive as strings from ``--method-arg key=value``: they coerce, then check
("hyper-parameter 'lam' must be >= 0.0, got -1.0").
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Iterable, Sequence

__all__ = [
    "check_finite",
    "check_positive",
    "check_nonnegative",
    "check_probability",
    "check_open_unit",
    "check_int",
    "check_bool",
    "check_choice",
    "check_finite_array",
    "check_square_matrix",
    "check_int_array",
    "check_seed",
    "check_n_boot",
    "SEED_MAX",
    "as_float",
    "as_int",
    "as_bool",
    "as_choice",
    "as_int_tuple",
]

SEED_MAX = 2**32 - 1  # one seed range for numpy, torch and python generators


def _fail(name: str, expected: str, got: Any, fix: str = "") -> None:
    msg = f"{name}: expected {expected}, got {got!r}"
    if fix:
        msg += f"; {fix}"
    raise ValueError(msg)


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        try:
            import numpy as np

            if isinstance(value, np.ndarray) and value.shape == ():
                value = value.item()
        except ImportError:  # pragma: no cover
            pass
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
            value = value.item()
        else:
            raise TypeError(f"{name}: expected a real number, got {type(value).__name__} {value!r}")
    return float(value)


def check_finite(name: str, value: Any) -> float:
    """A finite real number."""
    v = _as_float(name, value)
    if not math.isfinite(v):
        _fail(name, "a finite number", value)
    return v


def check_positive(name: str, value: Any, fix: str = "") -> float:
    """A finite number > 0 (``fix``: what to do instead, appended to the message)."""
    v = check_finite(name, value)
    if v <= 0:
        _fail(name, "a finite number > 0", value, fix)
    return v


def check_nonnegative(name: str, value: Any, fix: str = "") -> float:
    """A finite number >= 0 (``fix``: what to do instead, appended to the message)."""
    v = check_finite(name, value)
    if v < 0:
        _fail(name, "a finite number >= 0", value, fix)
    return v


def check_probability(name: str, value: Any) -> float:
    """A number in [0, 1]."""
    v = check_finite(name, value)
    if not 0.0 <= v <= 1.0:
        _fail(name, "a number in [0, 1]", value)
    return v


def check_open_unit(name: str, value: Any) -> float:
    """A number in the open interval (0, 1) (confidence levels such as δ)."""
    v = check_finite(name, value)
    if not 0.0 < v < 1.0:
        _fail(name, "a number in (0, 1)", value)
    return v


def check_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None, fix: str = "",
              strict: bool = False) -> int:
    """An integer (bools refused; a whole float such as ``2.0`` is taken as ``2`` unless ``strict``, e.g. a count of
    matrix-vector products, where a float is a caller's mistake) within ``[minimum, maximum]`` where given (``fix``:
    what to do instead, appended to the message)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if strict:
            raise TypeError(f"{name}: expected an integer, got {type(value).__name__} {value!r}"
                            + (f"; {fix}" if fix else ""))
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        elif hasattr(value, "item") and getattr(value, "ndim", None) == 0 and float(value.item()).is_integer():
            value = int(value.item())
        else:
            raise TypeError(f"{name}: expected an integer, got {type(value).__name__} {value!r}"
                            + (f"; {fix}" if fix else ""))
    v = int(value)
    if minimum is not None and v < minimum:
        _fail(name, f"an integer >= {minimum}", value, fix)
    if maximum is not None and v > maximum:
        _fail(name, f"an integer <= {maximum}", value, fix)
    return v


def check_positive_sequence(name: str, values: Any) -> tuple[float, ...]:
    """A non-empty sequence (list, tuple, 1-D array) of finite numbers > 0, e.g. a grid of scales; a string or a
    lone number is refused with a ``TypeError``."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or getattr(values, "ndim", 1) != 1:
        raise TypeError(f"{name}: expected a non-empty sequence of numbers > 0 (e.g. [0.01, 0.03]), got "
                        f"{type(values).__name__} {values!r}")
    if len(values) == 0:
        _fail(name, "a non-empty sequence of numbers > 0 (e.g. [0.01, 0.03])", values)
    return tuple(check_positive(f"{name}[{i}]", v) for i, v in enumerate(values))


def check_bool(name: str, value: Any) -> bool:
    """``True`` or ``False`` (a numpy bool too); ``0``/``1``, strings and ``None`` are refused with a ``TypeError``."""
    if isinstance(value, bool):
        return value
    if type(value).__module__ == "numpy":
        import numpy as np

        if isinstance(value, np.bool_):
            return bool(value)
    raise TypeError(f"{name}: expected True or False, got {type(value).__name__} {value!r}")


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """One of ``choices`` (strings; ``str`` enums accepted)."""
    opts = list(choices)
    v = getattr(value, "value", value)
    if v not in opts:
        _fail(name, "one of " + ", ".join(repr(c) for c in opts), value)
    return str(v)


def check_finite_array(name: str, value: Any, ndim: int | None = None):
    """A float64 numpy array with only finite entries (and ``ndim`` dimensions where given)."""
    import numpy as np

    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected an array of real numbers, got {type(value).__name__}") from None
    if ndim is not None and arr.ndim != ndim:
        _fail(name, f"a {ndim}-dimensional array", f"shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        _fail(name, "finite entries", f"{int(np.sum(~np.isfinite(arr)))} non-finite (NaN/inf) value(s)")
    return arr


def check_square_matrix(name: str, value: Any):
    """A float64 square matrix with only finite entries."""
    arr = check_finite_array(name, value, ndim=2)
    if arr.shape[0] != arr.shape[1]:
        _fail(name, "a square matrix", f"shape {arr.shape}")
    return arr


def check_int_array(name: str, value: Any, ndim: int = 1, minimum: int | None = None, maximum: int | None = None,
                    what: str = "integers"):
    """An int64 numpy array of ``ndim`` dimensions whose entries are integers in ``[minimum, maximum]``.

    Integer dtypes only: floats (even whole ones: ``0.0`` may be a rounded ``0.4``), bools and NaN are refused
    with the fix (``.astype(int)``); use it for class labels, cluster indices, sample indices.
    """
    import numpy as np

    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected an array of {what}, got {type(value).__name__}") from None
    if arr.dtype.kind not in "iu":  # bools, floats (NaN included), strings, objects
        fix = "; pass .astype(int) if they are whole numbers" if arr.dtype.kind == "f" else ""
        raise TypeError(f"{name}: expected {what} of an integer dtype, got dtype {arr.dtype}{fix}")
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-dimensional array of {what}, got shape {arr.shape}")
    arr = arr.astype(np.int64, copy=False)
    lo = "-inf" if minimum is None else minimum
    hi = "inf" if maximum is None else maximum
    if arr.size and minimum is not None and int(arr.min()) < minimum:
        raise ValueError(f"{name}: expected {what} in [{lo}, {hi}], got a minimum of {int(arr.min())}")
    if arr.size and maximum is not None and int(arr.max()) > maximum:
        raise ValueError(f"{name}: expected {what} in [{lo}, {hi}], got a maximum of {int(arr.max())}")
    return arr


def check_seed(name: str, value: Any) -> int:
    """A seed: an integer in [0, 2**32 - 1] (numpy's legacy range, accepted by every generator)."""
    return check_int(name, value, minimum=0, maximum=SEED_MAX)


def check_n_boot(name: str, value: Any) -> int:
    """A bootstrap count: 0 (no bootstrap) or an integer >= 2 (one resample has no spread)."""
    v = check_int(name, value, minimum=0)
    if v == 1:
        _fail(name, "0 (no bootstrap) or an integer >= 2", value, "one resample gives no standard error")
    return v


# ---------------------------------------------------------------------------------------------
# Hyper-parameters of a distillation method: coerced (the command line passes
# ``--method-arg key=value``; values may arrive as strings), then checked.
# ---------------------------------------------------------------------------------------------
def as_float(name: str, value: Any, *, low: float | None = None, high: float | None = None,
             low_open: bool = False, high_open: bool = False) -> float:
    """Coerce ``value`` to float and check ``low <= value <= high`` (open ends when asked).

    Args:
        name: the hyper-parameter's name (for messages).
        value: the value given.
        low: lower end (``None``: none).
        high: upper end (``None``: none).
        low_open: exclude ``low``.
        high_open: exclude ``high``.

    Returns:
        The float.

    Raises:
        TypeError: not a number (a bool included).
        ValueError: not finite, or out of range.
    """
    if isinstance(value, bool):
        raise TypeError(f"hyper-parameter {name!r} must be a number, got the boolean {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"hyper-parameter {name!r} must be a number, got {value!r}; "
                        f"pass e.g. --method-arg {name}=1.0") from None
    if not math.isfinite(out):
        raise ValueError(f"hyper-parameter {name!r} must be finite, got {value!r}")
    if low is not None and (out < low or (low_open and out == low)):
        rel = ">" if low_open else ">="
        raise ValueError(f"hyper-parameter {name!r} must be {rel} {low}, got {out}")
    if high is not None and (out > high or (high_open and out == high)):
        rel = "<" if high_open else "<="
        raise ValueError(f"hyper-parameter {name!r} must be {rel} {high}, got {out}")
    return out


def as_int(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """Coerce ``value`` to int (accepting "3" and 3.0, refusing 2.5) and check its range.

    Args:
        name: the hyper-parameter's name (for messages).
        value: the value given.
        low: smallest allowed (``None``: none).
        high: largest allowed (``None``: none).

    Returns:
        The int.

    Raises:
        TypeError: not a number (a bool included).
        ValueError: not an integer, or out of range.
    """
    if isinstance(value, bool):
        raise TypeError(f"hyper-parameter {name!r} must be an integer, got the boolean {value!r}")
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"hyper-parameter {name!r} must be an integer, got {value!r}") from None
    if not math.isfinite(f) or f != int(f):
        raise ValueError(f"hyper-parameter {name!r} must be an integer, got {value!r}")
    out = int(value) if isinstance(value, numbers.Integral) else int(f)  # exact beyond 2**53
    if low is not None and out < low:
        raise ValueError(f"hyper-parameter {name!r} must be >= {low}, got {out}")
    if high is not None and out > high:
        raise ValueError(f"hyper-parameter {name!r} must be <= {high}, got {out}")
    return out


def as_bool(name: str, value: Any) -> bool:
    """Coerce true/false/1/0/yes/no (str or bool) to bool.

    Args:
        name: the hyper-parameter's name (for messages).
        value: the value given.

    Returns:
        The bool.

    Raises:
        TypeError: anything else.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in {"true", "1", "yes", "on"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"false", "0", "no", "off"}:
        return False
    raise TypeError(f"hyper-parameter {name!r} must be a boolean (true/false), got {value!r}")


def as_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """Check that ``value`` is one of ``choices`` (case-insensitive).

    Args:
        name: the hyper-parameter's name (for messages).
        value: the value given.
        choices: the allowed values (lower case).

    Returns:
        The value, stripped and lower-cased.

    Raises:
        ValueError: not one of ``choices``.
    """
    v = str(value).strip().lower()
    if v not in choices:
        raise ValueError(f"hyper-parameter {name!r} must be one of {list(choices)}, got {value!r}")
    return v


def as_int_tuple(name: str, value: Any) -> tuple[int, ...] | None:
    """Parse None / "all" / 2 / "0,2" / "0;2" / [0, 2] into a tuple of ints (None = all).

    Args:
        name: the hyper-parameter's name (for messages).
        value: the value given.

    Returns:
        The indices, or ``None`` for all.

    Raises:
        TypeError: a value of another kind.
    """
    if value is None:
        return None
    if isinstance(value, str):
        s = value.strip().lower()
        if s in {"", "all", "none"}:
            return None
        parts = [p for p in s.replace(";", ",").replace(" ", ",").split(",") if p]
        return tuple(as_int(name, p) for p in parts)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (as_int(name, value),)
    if isinstance(value, (list, tuple)):
        return tuple(as_int(name, p) for p in value)
    raise TypeError(f"hyper-parameter {name!r} must be a list of stage indices like '0,1,2', "
                    f"got {value!r}")
