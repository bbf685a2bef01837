r"""Distillation divergence estimators (measurement layer, torch), all in the direction
**student** :math:`\Vert` **teacher**, :math:`\mathrm{KL}(Q_S \Vert P_T)` (theory.md §2).

Modules: :mod:`.predictive` (predictive divergence of classifiers, theory.md §6), :mod:`.laplace`
(Laplace weight-space divergence, §3.3), :mod:`.gaussian` (Gaussian predictive kernels, §3.6).
Nothing here prints or writes files.
"""

from .gaussian import GaussianDivergence, gaussian_predictive_divergence
from .laplace import LaplaceDivergence, laplace_divergence
from .predictive import (
    DivergenceEstimate,
    collect_logits,
    divergence_from_logits,
    mixture_log_probs,
    predictive_divergence,
    summarize_per_example,
)

__all__ = [
    "DivergenceEstimate",
    "LaplaceDivergence",
    "GaussianDivergence",
    "predictive_divergence",
    "divergence_from_logits",
    "mixture_log_probs",
    "summarize_per_example",
    "collect_logits",
    "laplace_divergence",
    "gaussian_predictive_divergence",
]
