"""A network wrapper of the bad-input tables that counts the input rows it is given: a refusal must come before
the networks saw more than a probe (how much work was done, whatever the machine's load)."""

from __future__ import annotations

from torch import nn


class Counted(nn.Module):
    """A network that counts the input rows it is given (across every instance: ``Counted.rows``)."""

    rows = 0

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        Counted.rows += int(x.shape[0])
        return self.inner(x)
