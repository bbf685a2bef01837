"""CIFAR-10 for the benchmarks that train on it: found before any work, or one clear error (no traceback)."""

from __future__ import annotations

import argparse


def require_cifar10(parser: argparse.ArgumentParser, flag: str, root: str | None) -> None:
    """Stop with ``parser.error`` (exit 2, naming ``flag`` and the fix) when CIFAR-10 is not found at ``root``.

    Args:
        parser: the benchmark's parser.
        flag: the option that names the data folder, e.g. ``"--data"``.
        root: its value (``None``: ``$KDBOUNDS_DATA``, then the standard places, as the loader looks).
    """
    from kdbounds.data import DataNotFoundError, find_cifar

    try:
        find_cifar("cifar10", root)
    except DataNotFoundError as e:
        parser.error(f"{flag}: CIFAR-10 not found; pass {flag} /path/to/root or set KDBOUNDS_DATA.\n{e}")
