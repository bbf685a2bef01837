r"""From representations to a discrete joint law P(Y, T, S), and its PID with error bars.

Pipeline (methods.md §3, "measuring on networks"), for each of T (teacher) and S (student):

1. flatten each example's features to a row, L2-normalise the row (:math:`x/\max(\|x\|, 10^{-12})`);
2. PCA to ``n_components`` (mean and principal axes fitted on the *training* rows; randomized SVD
   with an explicit ``rng``);
3. k-means to ``n_clusters`` (Lloyd iterations with k-means++ seeding, best of ``n_init`` by inertia,
   fitted on the training rows), then every *evaluation* row gets its nearest centroid;
4. histogram with the evaluation labels: ``counts[y, t, s]``; BROJA PID of ``counts / N``.

Plug-in bias: the PID of a finite-sample histogram is biased upwards. ``n_shuffle`` times the
evaluation labels are permuted (destroying any dependence of Y on T and S while keeping all
marginals) and the PID recomputed: its mean and sd estimate the bias floor (true atoms are 0).
``shuffle="labels"`` (default) is the null "Y independent of (T, S)": it calibrates I(Y;T), I(Y;S),
Uni and Syn, but it *under*-states the bias of Red when T really carries Y (Red's bias grows with
I(Y;T)). ``shuffle="student"`` permutes the student's cluster labels instead (null "S independent of
(Y, T)", true Red = Uni(S\T) = 0, I(Y;T) kept): the right floor for "the student took nothing".
Uncertainty: ``n_boot`` bootstrap resamples of the evaluation rows (discretiser held fixed) give a
basic (reverse-percentile) interval and a standard error.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .._checks import (check_choice, check_finite_array, check_int, check_int_array, check_n_boot, check_nonnegative,
                       check_open_unit, check_seed)
from .broja import PIDResult, broja_pid_from_counts

__all__ = [
    "Discretizer",
    "RepresentationPID",
    "fit_discretizer",
    "joint_counts",
    "kmeans",
    "pid_of_representations",
]

_ATOMS = ("redundancy", "unique_t", "unique_s", "synergy")


def _as_rows(x: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array (convert tensors with .cpu().numpy())") from exc
    if arr.ndim < 2:
        raise ValueError(f"{name} must have shape (n, ...) with at least 2 axes, got {arr.shape}")
    if arr.shape[0] < 1:
        raise ValueError(f"{name} has no rows")
    arr = arr.reshape(arr.shape[0], -1)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def _l2_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def _randomized_pca(x: np.ndarray, k: int, rng: np.random.Generator, n_iter: int = 4) -> np.ndarray:
    """Top-``k`` right singular vectors (k, d) of the centred matrix ``x`` (randomized SVD)."""
    n, d = x.shape
    if min(n, d) <= k + 10 or d <= 256:
        _, _, vt = np.linalg.svd(x, full_matrices=False)
        return vt[:k]
    omega = rng.standard_normal((d, k + 10))
    y = x @ omega
    for _ in range(n_iter):
        y, _ = np.linalg.qr(y)
        y = x @ (x.T @ y)
    qmat, _ = np.linalg.qr(y)
    _, _, vt = np.linalg.svd(qmat.T @ x, full_matrices=False)
    return vt[:k]


def _sq_dists(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    d = (x * x).sum(1)[:, None] - 2.0 * x @ c.T + (c * c).sum(1)[None, :]
    return np.maximum(d, 0.0)


def kmeans(
    x: np.ndarray,
    n_clusters: int,
    *,
    rng: np.random.Generator,
    n_init: int = 4,
    max_iter: int = 100,
    tol: float = 1e-10,
) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding, best of ``n_init`` runs by inertia.

    Empty clusters are re-seeded at the farthest point.

    Args:
        x: ``(n, d)`` rows.
        n_clusters: number of centroids (at most ``n``).
        rng: the ``numpy.random.Generator`` of the seeding.
        n_init: independent runs; the one of least inertia is kept.
        max_iter: Lloyd iterations per run.
        tol: stop a run when the inertia improves by less than this.

    Returns:
        The centroids, ``(n_clusters, d)``.

    Raises:
        ValueError: ``n_clusters`` below 1 or above the number of rows, ``n_init`` or ``max_iter`` below 1, a
            negative ``tol``, ``x`` not 2-D or not finite.
        TypeError: ``rng`` is not a ``numpy.random.Generator``, a count that is not an integer.
    """
    x = check_finite_array("x", x, ndim=2)
    n_clusters = check_int("n_clusters", n_clusters, minimum=1)
    n_init = check_int("n_init", n_init, minimum=1)
    max_iter = check_int("max_iter", max_iter, minimum=1)
    tol = check_nonnegative("tol", tol)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy.random.Generator (np.random.default_rng(seed)), got "
                        f"{type(rng).__name__}")
    n = x.shape[0]
    if n < n_clusters:
        raise ValueError(f"n_clusters={n_clusters} exceeds the number of training rows ({n})")
    best_c, best_inertia = None, np.inf
    for _ in range(n_init):
        centres = [x[rng.integers(n)]]
        d2 = _sq_dists(x, np.array(centres))[:, 0]
        for _ in range(1, n_clusters):
            total = d2.sum()
            i = rng.integers(n) if total <= 0 else rng.choice(n, p=d2 / total)
            centres.append(x[i])
            d2 = np.minimum(d2, _sq_dists(x, x[i : i + 1])[:, 0])
        c = np.array(centres)
        prev = np.inf
        for _ in range(max_iter):
            dist = _sq_dists(x, c)
            lab = dist.argmin(1)
            inertia = float(dist[np.arange(n), lab].sum())
            for j in range(n_clusters):
                members = lab == j
                if members.any():
                    c[j] = x[members].mean(0)
                else:
                    far = int(dist[np.arange(n), lab].argmax())
                    c[j] = x[far]
            if prev - inertia <= tol * max(prev, 1.0):
                break
            prev = inertia
        inertia = float(_sq_dists(x, c).min(1).sum())
        if inertia < best_inertia:
            best_c, best_inertia = c.copy(), inertia
    assert best_c is not None
    return best_c


@dataclass(frozen=True)
class Discretizer:
    """Flatten, L2-normalise, project by PCA, then take the nearest k-means centroid.

    Fitted on training rows by :func:`fit_discretizer`.
    """

    mean: np.ndarray = field(repr=False)
    components: np.ndarray = field(repr=False)  # (n_components, d)
    centroids: np.ndarray = field(repr=False)  # (n_clusters, n_components)

    @property
    def n_clusters(self) -> int:
        """Number of k-means centroids."""
        return int(self.centroids.shape[0])

    def project(self, x: Any) -> np.ndarray:
        """PCA coordinates of L2-normalised flattened rows.

        Args:
            x: ``(n, ...)`` features; each example is flattened to a row.

        Returns:
            ``(n, n_components)`` coordinates.

        Raises:
            ValueError: the rows do not have the fitted number of features.
        """
        rows = _l2_rows(_as_rows(x, "x"))
        if rows.shape[1] != self.mean.shape[0]:
            raise ValueError(f"x has {rows.shape[1]} features per row; the discretiser was fitted on {self.mean.shape[0]}")
        return (rows - self.mean) @ self.components.T

    def transform(self, x: Any) -> np.ndarray:
        """Cluster index of every row of ``x``.

        Args:
            x: ``(n, ...)`` features.

        Returns:
            ``(n,)`` int64 cluster indices.
        """
        return _sq_dists(self.project(x), self.centroids).argmin(1).astype(np.int64)


def _rng(seed: Any) -> np.random.Generator:
    """A ``numpy.random.Generator`` as given, or seeded from ``seed`` (an integer in [0, 2**32 - 1])."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(check_seed("seed", seed))


def fit_discretizer(
    x_train: Any, *, n_components: int = 10, n_clusters: int = 10, seed: int | np.random.Generator = 0
) -> Discretizer:
    """Fit the PCA (to ``n_components``) and k-means (``n_clusters``) on training features.

    Args:
        x_train: ``(n, ...)`` training features.
        n_components: PCA dimension.
        n_clusters: number of k-means clusters.
        seed: an int or a ``numpy.random.Generator`` for the randomized SVD and k-means.

    Returns:
        The fitted :class:`Discretizer`.

    Raises:
        ValueError: ``n_components`` or ``n_clusters`` below 1, more clusters than rows, a negative seed,
            ``x_train`` with fewer than 2 axes, no rows or NaN/inf.
        TypeError: a count that is not an integer, a seed that is neither an int nor a generator.
    """
    n_components = check_int("n_components", n_components, minimum=1)
    n_clusters = check_int("n_clusters", n_clusters, minimum=1)
    rng = _rng(seed)
    rows = _l2_rows(_as_rows(x_train, "x_train"))
    if rows.shape[0] < n_clusters:
        raise ValueError(f"n_clusters={n_clusters} exceeds the number of training rows ({rows.shape[0]}) of x_train")
    mean = rows.mean(0)
    centred = rows - mean
    k = min(n_components, *centred.shape)
    comps = _randomized_pca(centred, k, rng)
    z = centred @ comps.T
    cents = kmeans(z, n_clusters, rng=rng)
    return Discretizer(mean=mean, components=comps, centroids=cents)


def joint_counts(y: Any, t: Any, s: Any, *, n_classes: int, n_t: int, n_s: int) -> np.ndarray:
    """Histogram ``counts[y, t, s]`` of three integer label vectors of equal length.

    Args:
        y: labels in ``[0, n_classes)``.
        t: teacher clusters in ``[0, n_t)``.
        s: student clusters in ``[0, n_s)``.
        n_classes: number of label values.
        n_t: number of teacher clusters.
        n_s: number of student clusters.

    Returns:
        ``(n_classes, n_t, n_s)`` int64 counts.

    Raises:
        ValueError: unequal lengths, labels out of range or not 1-D, a count below 1.
        TypeError: labels or counts that are not integers.
    """
    sizes = {"n_classes": n_classes, "n_t": n_t, "n_s": n_s}
    n_classes, n_t, n_s = (check_int(k, v, minimum=1) for k, v in sizes.items())
    ya, ta, sa = (check_int_array(name, v, 1, 0, k - 1, "labels")
                  for name, v, k in (("y", y, n_classes), ("t", t, n_t), ("s", s, n_s)))
    if not (ya.size == ta.size == sa.size):
        raise ValueError(f"y, t, s must have equal lengths, got {ya.size}, {ta.size}, {sa.size}")
    flat = (ya * n_t + ta) * n_s + sa
    return np.bincount(flat, minlength=n_classes * n_t * n_s).reshape(n_classes, n_t, n_s).astype(np.float64)


@dataclass(frozen=True)
class RepresentationPID:
    """PID of discretised representations with plug-in bias and bootstrap interval (nats).

    ``pid`` is the plug-in estimate; ``shuffle_mean``/``shuffle_sd`` the atoms under permuted labels
    (bias floor); ``corrected = pid - shuffle_mean``; ``boot_se``/``ci_low``/``ci_high`` from the
    bootstrap over evaluation rows (``ci`` level, basic/reverse-percentile method; the bounds may
    fall below 0).
    """

    pid: PIDResult
    shuffle_mean: dict[str, float]
    shuffle_sd: dict[str, float]
    corrected: dict[str, float]
    boot_se: dict[str, float]
    ci_low: dict[str, float]
    ci_high: dict[str, float]
    ci: float
    n_eval: int
    n_boot: int
    n_shuffle: int
    n_components: int
    n_clusters: int
    shuffle: str
    counts: np.ndarray = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON values.

        Returns:
            Every field but ``counts``, with the nested :class:`PIDResult` through its ``to_dict``.
        """
        d = asdict(self)
        d["pid"] = self.pid.to_dict()
        d.pop("counts", None)
        return d

    def flat(self) -> dict[str, float]:
        """One flat row (for CSV): atoms, bias, corrected, interval.

        Returns:
            ``{atom, atom_shuffle_mean, atom_shuffle_sd, atom_corrected, atom_se, atom_ci_low,
            atom_ci_high}`` for each atom, plus ``mi_yt``, ``mi_ys``, ``mi_yts`` and ``n_eval``.
        """
        row: dict[str, float] = {}
        for a in _ATOMS:
            row[a] = getattr(self.pid, a)
            row[f"{a}_shuffle_mean"] = self.shuffle_mean[a]
            row[f"{a}_shuffle_sd"] = self.shuffle_sd[a]
            row[f"{a}_corrected"] = self.corrected[a]
            row[f"{a}_se"] = self.boot_se[a]
            row[f"{a}_ci_low"] = self.ci_low[a]
            row[f"{a}_ci_high"] = self.ci_high[a]
        row.update(mi_yt=self.pid.mi_yt, mi_ys=self.pid.mi_ys, mi_yts=self.pid.mi_yts, n_eval=self.n_eval)
        return row


def _atoms(r: PIDResult) -> np.ndarray:
    return np.array([getattr(r, a) for a in _ATOMS])


def pid_of_representations(
    t_train: Any,
    s_train: Any,
    y_train: Any,
    t_eval: Any,
    s_eval: Any,
    y_eval: Any,
    *,
    n_components: int = 10,
    n_clusters: int = 10,
    seed: int = 0,
    n_boot: int = 20,
    n_shuffle: int = 10,
    ci: float = 0.95,
    n_classes: int | None = None,
    progress: bool = False,
    shuffle: str = "labels",
    **pid_kwargs: Any,
) -> RepresentationPID:
    """BROJA PID of (Y, cluster(T), cluster(S)) on evaluation rows, discretiser fitted on train rows.

    Args:
        t_train, s_train: teacher / student features of the training rows, shape (n, ...).
        y_train: training labels (used for ``n_classes`` and length checks only; the discretiser is
            unsupervised).
        t_eval, s_eval, y_eval: held-out features and labels, histogrammed.
        n_components, n_clusters: PCA size and number of k-means clusters (paper: 10 / 10).
        seed: seeds PCA, k-means, bootstrap and shuffles (one ``numpy.random.Generator``).
        n_boot, n_shuffle: bootstrap resamples and label shuffles (0 disables).
        ci: bootstrap interval level.
        n_classes: number of label values (default: max label + 1 over train and eval).
        progress: tqdm bar over the resamples.
        shuffle: ``"labels"`` (permute Y) or ``"student"`` (permute S's clusters), see module doc.
        **pid_kwargs: passed to :func:`~kdbounds.pid.broja.broja_pid`.

    Returns:
        A :class:`RepresentationPID`: the PID, the shuffle floor, the corrected atoms and the
        bootstrap interval.

    Raises:
        ValueError: bad ``ci``, ``shuffle``, ``n_boot`` (< 0 or 1), ``n_shuffle``, ``n_components``,
            ``n_clusters``, ``seed``; lengths that differ; labels that are negative, not 1-D, or not below
            ``n_classes``; features with NaN/inf or no rows (all before any fit).
        TypeError: labels or counts that are not integers.
    """
    ci = check_open_unit("ci", ci)
    shuffle = check_choice("shuffle", shuffle, ("labels", "student"))
    n_boot = check_n_boot("n_boot", n_boot)
    n_shuffle = check_int("n_shuffle", n_shuffle, minimum=0)
    n_components = check_int("n_components", n_components, minimum=1)
    n_clusters = check_int("n_clusters", n_clusters, minimum=1)
    seed = check_seed("seed", seed)
    ytr = check_int_array("y_train", y_train, 1, 0, what="class labels")
    yev = check_int_array("y_eval", y_eval, 1, 0, what="class labels")
    ttr, str_ = _as_rows(t_train, "t_train"), _as_rows(s_train, "s_train")
    tev, sev = _as_rows(t_eval, "t_eval"), _as_rows(s_eval, "s_eval")
    if not (ttr.shape[0] == str_.shape[0] == ytr.size):
        raise ValueError(f"t_train, s_train, y_train lengths differ: {ttr.shape[0]}, {str_.shape[0]}, {ytr.size}")
    if not (tev.shape[0] == sev.shape[0] == yev.size):
        raise ValueError(f"t_eval, s_eval, y_eval lengths differ: {tev.shape[0]}, {sev.shape[0]}, {yev.size}")
    top = int(max(ytr.max(), yev.max()))
    k = check_int("n_classes", n_classes, minimum=top + 1) if n_classes is not None else top + 1
    rng = np.random.default_rng(seed)
    disc_t = fit_discretizer(ttr, n_components=n_components, n_clusters=n_clusters, seed=rng)
    disc_s = fit_discretizer(str_, n_components=n_components, n_clusters=n_clusters, seed=rng)
    lt, ls = disc_t.transform(tev), disc_s.transform(sev)
    nc = n_clusters

    def pid_of(y: np.ndarray, t: np.ndarray, s: np.ndarray) -> PIDResult:
        return broja_pid_from_counts(joint_counts(y, t, s, n_classes=k, n_t=nc, n_s=nc), **pid_kwargs)

    counts = joint_counts(yev, lt, ls, n_classes=k, n_t=nc, n_s=nc)
    main = broja_pid_from_counts(counts, **pid_kwargs)
    main_atoms = _atoms(main)

    jobs = [("shuffle", i) for i in range(n_shuffle)] + [("boot", i) for i in range(n_boot)]
    it: Any = jobs
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(jobs, desc="PID resamples", leave=False)
    shuf, boot = [], []
    n = yev.size
    for kind, _ in it:
        if kind == "shuffle":
            if shuffle == "labels":
                shuf.append(_atoms(pid_of(rng.permutation(yev), lt, ls)))
            else:
                shuf.append(_atoms(pid_of(yev, lt, rng.permutation(ls))))
        else:
            idx = rng.integers(0, n, size=n)
            boot.append(_atoms(pid_of(yev[idx], lt[idx], ls[idx])))
    nan4 = np.full(4, np.nan)
    sh = np.array(shuf) if shuf else None
    bo = np.array(boot) if boot else None
    sm = sh.mean(0) if sh is not None else nan4
    ssd = sh.std(0, ddof=1) if sh is not None and len(sh) > 1 else nan4
    bse = bo.std(0, ddof=1) if bo is not None and len(bo) > 1 else nan4
    alpha = (1 - ci) / 2
    # basic (reverse-percentile) interval: the resamples' own plug-in bias shifts their quantiles
    # upwards (duplicated rows inflate histogram MI), the reflection 2θ − q corrects that shift.
    lo = 2 * main_atoms - np.quantile(bo, 1 - alpha, axis=0) if bo is not None else nan4
    hi = 2 * main_atoms - np.quantile(bo, alpha, axis=0) if bo is not None else nan4

    def as_dict(v: np.ndarray) -> dict[str, float]:
        return {a: float(x) for a, x in zip(_ATOMS, v)}

    return RepresentationPID(
        pid=main,
        shuffle_mean=as_dict(sm),
        shuffle_sd=as_dict(ssd),
        corrected=as_dict(main_atoms - sm if sh is not None else nan4),
        boot_se=as_dict(bse),
        ci_low=as_dict(lo),
        ci_high=as_dict(hi),
        ci=float(ci),
        n_eval=int(n),
        n_boot=int(n_boot),
        n_shuffle=int(n_shuffle),
        n_components=int(n_components),
        n_clusters=nc,
        shuffle=shuffle,
        counts=counts,
    )
