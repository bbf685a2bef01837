"""The BatchNorm-free CIFAR networks of the certificates (``mlp256``, ``mlp512x2``).

They are ordinary members of the model zoo (:mod:`kdbounds.models.mlp`, registered in
:mod:`kdbounds.models.registry`), so ``build_model("mlp256")``, ``python -m kdbounds.train --arch mlp256``
and every Ray worker know them; this module only names them for the certificate code.
"""

from __future__ import annotations

from kdbounds.models.mlp import MLP_WIDTHS, CifarMLP

__all__ = ["CifarMLP", "NET_NAMES"]

NET_NAMES: tuple[str, ...] = tuple(MLP_WIDTHS)
