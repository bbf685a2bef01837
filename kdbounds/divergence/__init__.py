r"""Distillation divergence estimators (measurement layer, torch).

Three families, all in the direction **student ‖ teacher** (theory.md §2, forced by the
change-of-measure argument with Q = student, P = teacher):

1. **Predictive divergence of classifiers** (theory.md §6)::

       K̂ = (1/n) Σ_x KL( p_S(·|x) ‖ p_T(·|x) ),   p(·|x) = softmax(z(x) / t)

   with a standard error ``sd / sqrt(n)`` and a seeded bootstrap percentile confidence interval.
   Optionally each side is an ensemble: the predictive law is the *mixture* (average of the
   members' probabilities), computed in log space with ``logsumexp``.
   Entry points: :func:`predictive_divergence` (modules or logits + data) and the pure core
   :func:`divergence_from_logits`.

2. **Laplace weight-space divergence** (theory.md §3.3, §6) for pairs that share a parameter
   space: :func:`laplace_divergence` gives, in closed form,
   ``KL( N(w_S, τ (H_S + δI)⁻¹) ‖ N(w_T, τ (H_T + δI)⁻¹) )`` for diagonal or small dense
   (last-layer) precisions, split into its mean and covariance terms.

3. **Gaussian predictive kernels** (theory.md §3.6, regression): :func:`gaussian_predictive_divergence`
   is the KL between matrix normals ``MN(M_S, I_k, C_S)`` and ``MN(M_T, I_k, C_T)`` (§3.3 with
   ``(M, Σ, d) → (M X_*, C, m)``).

Modules: :mod:`.predictive` (1), :mod:`.laplace` (2), :mod:`.gaussian` (3).

Conventions. Modules are evaluated in eval mode (BatchNorm uses its running statistics, dropout is
off) under ``torch.no_grad()``; the training flag of every submodule is restored afterwards.
Per-example KLs are computed in float64 from ``log_softmax`` (never ``log(softmax)``). Inputs follow
each model's device unless ``device`` is given. Nothing here prints or writes files.
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
