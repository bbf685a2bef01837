r"""``certify``: a PAC-Bayes-kl certificate for a posterior kernel Q against a prior kernel P (theory.md §7).

.. math::
    L_\mu(Q) \le \mathrm{kl}^{-1}\Big(\mathrm{kl}^{-1}\big(\hat L_N, \tfrac{\ln(2J'/\delta')}{N}\big),\
    \tfrac{\mathrm{KL}(Q\|P) + \ln(2\sqrt{n_S}\,J/\delta)}{n_S}\Big)
    \quad\text{with probability} \ge 1 - \delta - \delta'.

``J`` is the size of the grid the prior scale was picked from; ``J'`` the number of certificates whose
minimum is reported (``n_grid_mc``; 1 for a certificate reported alone), so that the reported minimum
holds at ``1 - delta - delta'`` too. Every certificate records the SHA-256 of the ``(x, y)`` it was computed on
(``data_sha256``, :func:`kdbounds._io.arrays_sha256`), so a test can check it was ``D_S``.

The composition is :func:`kdbounds.certificates.compose_certificate`; this module supplies its
inputs from networks: the closed-form divergence (:func:`kernels.kernel_kl`) and the Monte Carlo
estimate ``L_hat_N`` of the empirical Gibbs risk ``L_hat_S(Q) = (1/n_S) Sum_i E_{W~Q} l(W; z_i)``.

**Draw schemes.** ``draws="shared"`` is the textbook scheme (Langford & Caruana 2001): M draws
``W_j ~ Q``, each evaluated on all of ``D_S``; ``N = M``. ``draws="per_example"`` (default) gives
every evaluation its own independent draw: M passes over ``D_S``, example ``i`` of pass ``m`` scored
with a fresh ``W_{i,m} ~ Q``; ``N = M * n_S``. Conditionally on ``D_S`` the ``N`` losses are
independent, in ``[0, 1]``, and their means average to exactly ``L̂_S(Q)``; the Chernoff bound
``P(kl(L_hat_N || L_hat_S(Q)) > t, L_hat_N < L_hat_S(Q)) <= e^{-N t}`` holds for independent, non-identically
distributed ``[0, 1]`` variables (Hoeffding 1963, Thm. 1: each term's moment generating function is at
most the Bernoulli one of its mean, and ``log(1 - q + q e^lambda)`` is concave in ``q``), so
``kl^-1(L_hat_N, ln(2/delta')/N)`` is a valid upper limit with ``N = M * n_S`` - the same inequality as the
shared scheme with a far larger ``N`` at the same number of network evaluations.

The held-out Gibbs risk on ``test_data`` (per-example draws, a normal 95 % interval over test
examples) is reported next to the certificate and never enters it.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from kdbounds._data import as_tensors, check_inputs, check_labels, warn_label_law_shift
from kdbounds._checks import check_choice, check_int, check_open_unit, check_positive_sequence, check_probability
from kdbounds._io import arrays_sha256
from kdbounds._records import Estimate

from ..certificates.bounds import check_confidences, compose_certificate, pac_bayes_kl_bound
from .kernels import DRAW_MODES, GaussianKernel, check_compatible, draw_logits, kernel_kl, per_example_logits
from .._torch import bounded_cross_entropy

__all__ = ["LOSSES", "DRAW_SCHEMES", "Certificate", "certify", "gibbs_losses", "select_scales", "ScaleChoice"]

LOSSES = ("zero_one", "bounded_ce")
DRAW_SCHEMES = ("per_example", "shared")


@dataclass(frozen=True)
class Certificate:
    """A PAC-Bayes-kl certificate with everything needed to check and reproduce it.

    Attributes:
        loss: ``"zero_one"`` or ``"bounded_ce"``.
        risk_upper: the certified population Gibbs risk (holds with probability ``confidence``).
        mc_risk: the Monte Carlo empirical Gibbs risk ``L̂_N`` on ``D_S``.
        mc_risk_upper: its upper limit ``kl^-1(L_hat_N, ln(2/delta')/N)``.
        divergence, mean_term, variance_term: ``KL(Q||P)`` and its split (nats).
        n_s, n_t: sizes of ``D_S`` and ``D_T`` (``n_t`` None when not given).
        n_draws: M (draws, or passes over ``D_S`` for ``per_example``); n_evaluations: N.
        draws: the draw scheme; delta, delta_mc, n_grid: delta, delta', J; n_grid_mc: J' (the Monte Carlo step runs
            at delta'/J'); confidence: ``1 - delta - delta'`` (of the minimum over the J' certificates too).
        p_min: the bounded CE's floor (recorded for both losses).
        kernel_dim: number of random parameters.
        trivial: the level at or above which the certificate is vacuous; vacuous: ``risk_upper >= trivial``.
        pinsker_risk_upper, classic_risk_upper: relaxed certificates, for comparison.
        test_gibbs_risk: held-out Gibbs risk (``Estimate`` dict) or None — never used by the certificate.
        seed: the Monte Carlo seed; split: the ``DataSplit`` record or None.
        posterior, prior: kernel descriptions (dim, sigma range); seconds: wall time.
        data_sha256: SHA-256 of the ``(x, y)`` tensors certified on (:func:`kdbounds._io.arrays_sha256`).
    """

    loss: str
    risk_upper: float
    mc_risk: float
    mc_risk_upper: float
    divergence: float
    mean_term: float
    variance_term: float
    n_s: int
    n_t: int | None
    n_draws: int
    n_evaluations: int
    draws: str
    delta: float
    delta_mc: float
    n_grid: int
    confidence: float
    p_min: float
    kernel_dim: int
    trivial: float
    vacuous: bool
    pinsker_risk_upper: float
    classic_risk_upper: float
    test_gibbs_risk: dict[str, Any] | None
    seed: int
    split: dict[str, Any] | None = None
    posterior: dict[str, Any] = field(default_factory=dict)
    prior: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    data_sha256: str = ""
    n_grid_mc: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _trivial(loss: str, num_classes: int, p_min: float) -> float:
    if loss == "zero_one":
        return 1.0 - 1.0 / num_classes
    return min(1.0, math.log(num_classes) / math.log(1.0 / p_min))


def gibbs_losses(logits: Tensor, y: Tensor, loss: str, p_min: float) -> Tensor:
    """Per-evaluation loss in ``[0, 1]``: 0–1 error or the bounded cross-entropy."""
    if loss == "zero_one":
        return (logits.argmax(-1) != y).double()
    return bounded_cross_entropy(logits.reshape(-1, logits.shape[-1]), y.expand(logits.shape[:-1]).reshape(-1),
                                 p_min).reshape(logits.shape[:-1]).double()


def _check_data(name: str, data: Any, kernel: GaussianKernel | None = None) -> tuple[Tensor, Tensor]:
    """``(x, y)`` of ``data`` after the checks a certificate needs, each naming ``name``.

    Labels: 1-D, an integer dtype, ``>= 0`` (and below the network's number of classes when
    ``kernel`` is given). Inputs: a floating dtype, finite; with ``kernel``: its dtype and device,
    and a shape its network accepts (one example is tried).
    """
    x, y = as_tensors(data, name)  # (x, y) tensors, batches or a DataLoader (kdbounds._data)
    check_labels(name, y)
    check_inputs(name, x, None if kernel is None else kernel.mean[kernel.names[0]].dtype)
    if kernel is None:
        return x, y
    if x.device != kernel.device or y.device != kernel.device:
        raise ValueError(f"{name}: x is on {x.device} and y on {y.device} but the kernels are on {kernel.device}; "
                         f"move them with .to({str(kernel.device)!r})")
    try:
        z = kernel.mean_logits(x[:1])
    except (RuntimeError, ValueError, TypeError, IndexError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"{name}: the network does not take inputs of shape {tuple(x.shape[1:])} ({first})") from None
    check_labels(name, y, int(z.shape[-1]))
    return x, y


def _mc_losses(kernel: GaussianKernel, x: Tensor, y: Tensor, *, loss: str, p_min: float, n_draws: int,
               draws: str, gen: torch.Generator, batch_size: int, mode: str, chunk: int,
               progress: bool, desc: str) -> np.ndarray:
    """``(n_draws, n)`` array of per-evaluation losses."""
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=n_draws, desc=desc, unit="draw" if draws == "shared" else "pass", leave=False,
                   dynamic_ncols=True)
    rows = []
    try:
        if draws == "shared":
            done = 0
            while done < n_draws:
                k = min(chunk, n_draws - done)
                w = kernel.sample(k, gen)
                z = draw_logits(kernel, x, w, mode=mode, batch_size=batch_size)
                rows.append(gibbs_losses(z, y, loss, p_min).cpu().numpy())
                done += k
                if bar is not None:
                    bar.update(k)
        else:
            for _ in range(n_draws):
                z = per_example_logits(kernel, x, gen, chunk=chunk)
                rows.append(gibbs_losses(z, y, loss, p_min).cpu().numpy()[None])
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return np.concatenate(rows, axis=0)


def certify(posterior: GaussianKernel, prior: GaussianKernel, data_s: Sequence[Tensor], *,
            loss: str = "zero_one", n_draws: int = 1, delta: float = 0.025, delta_mc: float = 0.01,
            n_grid: int = 1, p_min: float = 1e-4, seed: int = 0, batch_size: int = 1000,
            test_data: Sequence[Tensor] | None = None, test_draws: int = 1, draws: str = "per_example",
            mode: str = "vmap", chunk: int = 256, n_t: int | None = None, split: Any = None,
            trivial: float | None = None, progress: bool = False, n_grid_mc: int = 1) -> Certificate:
    """Certify the Gibbs risk of ``posterior`` on ``data_s`` = ``D_S`` against ``prior`` (module docstring).

    Args:
        posterior: Q (:class:`GaussianKernel`); prior: P, independent of ``D_S``.
        data_s: ``(x, y)`` — ``D_S``, normalised inputs and int labels, on the kernels' device.
        loss: ``"zero_one"`` or ``"bounded_ce"`` (``min(CE, ln(1/p_min))/ln(1/p_min)``).
        n_draws: M >= 1 (draws for ``shared``, passes over ``D_S`` for ``per_example``).
        delta, delta_mc: delta (PAC-Bayes step) and delta' (Monte Carlo step), in (0, 1), delta + delta' < 1.
        n_grid: J, the size of the grid the prior scale was picked from (delta -> delta/J).
        n_grid_mc: J', the number of certificates whose minimum is reported (delta' -> delta'/J'; 1 when this one is
            reported alone).
        p_min: floor of the bounded CE, in (0, 1).
        seed: Monte Carlo seed (the held-out estimate uses an independent stream).
        batch_size: rows per forward pass (``shared``); chunk: draws per vmap (``shared``) or examples
            per vmap (``per_example``).
        test_data: optional held-out ``(x, y)``; test_draws: passes over it. A ``UserWarning`` when its labels
            are not distributed like ``data_s``'s (:func:`kdbounds._data.label_law_shift`: e.g. a prefix of a
            class-sorted array).
        draws: ``"per_example"`` or ``"shared"``; mode: ``"vmap"`` or ``"loop"`` (``shared`` only).
        n_t, split: recorded (``split`` a :class:`~kdbounds.certificates.split.DataSplit` or its dict).
        trivial: vacuity level (default: ``1 - 1/C`` for 0-1, ``ln C / ln(1/p_min)`` for bounded CE).
        progress: tqdm bars over draws.

    Returns:
        A frozen :class:`Certificate`.

    Raises:
        ValueError / TypeError: any argument out of range, before any network is evaluated; kernels
            over different parameter spaces or with different buffers (:func:`kernels.check_compatible`).
    """
    t0 = time.perf_counter()
    loss = check_choice("loss", loss, LOSSES)
    draws = check_choice("draws", draws, DRAW_SCHEMES)
    mode = check_choice("mode", mode, DRAW_MODES)
    n_draws = check_int("n_draws", n_draws, minimum=1)
    test_draws = check_int("test_draws", test_draws, minimum=1)
    delta, delta_mc = check_confidences(delta, delta_mc)
    n_grid = check_int("n_grid", n_grid, minimum=1)
    n_grid_mc = check_int("n_grid_mc", n_grid_mc, minimum=1)
    p_min = check_open_unit("p_min", p_min)
    seed = check_int("seed", seed, minimum=0)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    chunk = check_int("chunk", chunk, minimum=1)
    if n_t is not None:
        n_t = check_int("n_t", n_t, minimum=1)
    if split is not None and not (hasattr(split, "to_dict") or isinstance(split, dict)):
        raise TypeError(f"split: expected a DataSplit (kdbounds.certificates.make_split), its dict or None, got "
                        f"{type(split).__name__} {split!r}")
    if trivial is not None and not 0.0 < check_probability("trivial", trivial):
        raise ValueError(f"trivial: expected a level in (0, 1], got {trivial!r}")
    check_compatible(posterior, prior)
    x, y = _check_data("data_s", data_s, posterior)
    if test_data is not None:
        test_data = _check_data("test_data", test_data, posterior)
        warn_label_law_shift(y, test_data[1], "data_s", "test_data")
    kl = kernel_kl(posterior, prior)
    num_classes = int(posterior.mean_logits(x[:2]).shape[-1])
    triv = _trivial(loss, num_classes, p_min) if trivial is None else float(trivial)

    gen = torch.Generator(device=posterior.device).manual_seed(seed)
    losses = _mc_losses(posterior, x, y, loss=loss, p_min=p_min, n_draws=n_draws, draws=draws, gen=gen,
                        batch_size=batch_size, mode=mode, chunk=chunk, progress=progress, desc="certify D_S")
    n_s = len(y)
    n_eval = n_draws if draws == "shared" else n_draws * n_s
    mc = float(losses.mean())
    cb = compose_certificate(mc, n_eval, kl.total, n_s, delta, delta_mc, n_grid=n_grid, trivial=triv,
                             n_grid_mc=n_grid_mc)

    test = None
    if test_data is not None:
        gt = torch.Generator(device=posterior.device).manual_seed(seed + 0x9E3779B1)
        lt = _mc_losses(posterior, test_data[0], test_data[1], loss=loss, p_min=p_min, n_draws=test_draws,
                        draws="per_example", gen=gt, batch_size=batch_size, mode=mode, chunk=chunk,
                        progress=progress, desc="held-out")
        per_ex = lt.mean(axis=0)
        v = float(per_ex.mean())
        se = float(per_ex.std(ddof=1) / math.sqrt(len(per_ex))) if len(per_ex) > 1 else math.inf
        test = Estimate(v, se, int(len(per_ex)), max(0.0, v - 1.96 * se), min(1.0, v + 1.96 * se), 0.95).to_dict()
    split_rec = split.to_dict() if hasattr(split, "to_dict") else split
    if n_t is None and isinstance(split_rec, dict):
        n_t = split_rec.get("n_t")
    return Certificate(
        loss=loss, risk_upper=cb.risk_upper, mc_risk=mc, mc_risk_upper=cb.empirical_risk_upper,
        divergence=kl.total, mean_term=kl.mean_term, variance_term=kl.variance_term, n_s=n_s, n_t=n_t,
        n_draws=n_draws, n_evaluations=n_eval, draws=draws, delta=delta, delta_mc=delta_mc, n_grid=n_grid,
        confidence=cb.confidence, p_min=p_min, kernel_dim=posterior.dim, trivial=triv, vacuous=cb.vacuous,
        pinsker_risk_upper=cb.pinsker_risk_upper, classic_risk_upper=cb.classic_risk_upper,
        test_gibbs_risk=test, seed=seed, split=split_rec, posterior=posterior.describe(),
        prior=prior.describe(), seconds=time.perf_counter() - t0, data_sha256=arrays_sha256((x, y)),
        n_grid_mc=n_grid_mc)


# ---------------------------------------------------------------------- choosing the scales
@dataclass(frozen=True)
class ScaleChoice:
    """The (sigma_P, sigma_Q) pair picked by :func:`select_scales`, with the proxy bound of every pair tried."""

    sigma_prior: float
    sigma_posterior: float
    proxy_bound: float
    table: tuple[dict[str, float], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"sigma_prior": self.sigma_prior, "sigma_posterior": self.sigma_posterior,
                "proxy_bound": self.proxy_bound, "table": list(self.table)}


def select_scales(student: torch.nn.Module, prior: torch.nn.Module, data: Sequence[Tensor], *,
                  prior_scales: Sequence[float], posterior_scales: Sequence[float], n_s: int,
                  loss: str = "zero_one", delta: float = 0.025, p_min: float = 1e-4, n_draws: int = 4,
                  params: Any = None, seed: int = 0, batch_size: int = 1000) -> ScaleChoice:
    r"""Pick ``sigma_P`` from the grid ``prior_scales`` (J values: certify with ``n_grid=J``) and ``sigma_Q``
    from ``posterior_scales`` by minimising a proxy of the certificate.

    The proxy is :math:`\mathrm{kl}^{-1}(\tilde L, (\mathrm{KL} + \ln(2\sqrt{n_S}J/\delta))/n_S)` with
    :math:`\tilde L` a ``n_draws``-draw estimate on ``data`` (a subset of ``D_S`` may be used: the
    PAC-Bayes bound holds for every Q at once, so choosing sigma_Q on ``D_S`` is allowed; sigma_P pays
    ``ln J``). The draws here are from the stream ``seed``; the certificate must use another seed so
    its Monte Carlo draws are independent of this choice.

    Raises:
        TypeError / ValueError: an argument outside its domain (an empty or non-positive grid of scales,
            ``n_s``/``n_draws`` < 1, ...) or data a certificate refuses, named before any network runs.
    """
    prior_scales = check_positive_sequence("prior_scales", prior_scales)
    posterior_scales = check_positive_sequence("posterior_scales", posterior_scales)
    n_s = check_int("n_s", n_s, minimum=1)
    n_draws = check_int("n_draws", n_draws, minimum=1)
    loss = check_choice("loss", loss, LOSSES)
    delta = check_open_unit("delta", delta)
    p_min = check_open_unit("p_min", p_min)
    seed = check_int("seed", seed, minimum=0)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    prior_k0 = GaussianKernel.from_model(prior, float(prior_scales[0]), params)
    q0 = GaussianKernel.from_model(student, float(posterior_scales[0]), params, frozen_from=prior_k0)
    x, y = _check_data("data", data, q0)
    gen = torch.Generator(device=q0.device).manual_seed(seed)
    J = len(prior_scales)
    table = []
    best = None
    for sq in posterior_scales:
        q = q0.with_std(float(sq))
        w = q.sample(n_draws, gen)
        risk = float(gibbs_losses(draw_logits(q, x, w, batch_size=batch_size), y, loss, p_min).mean())
        for sp in prior_scales:
            kl = kernel_kl(q, prior_k0.with_std(float(sp))).total
            b = float(pac_bayes_kl_bound(risk, kl, n_s, delta / J))
            table.append({"sigma_prior": float(sp), "sigma_posterior": float(sq), "proxy_risk": risk,
                          "divergence": kl, "proxy_bound": b})
            if best is None or b < best[2]:
                best = (float(sp), float(sq), b)
    return ScaleChoice(best[0], best[1], best[2], tuple(table))
