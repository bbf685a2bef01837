r"""Teacher-level statistics: Kendall's tau between teacher sharpness and student gaps, tested by
permuting *teachers* (each teacher's students stay together), with Holm-corrected p-values.

Students of one teacher are not independent replicates: they share the teacher. The unit of
replication is the teacher, so

* the statistic is Kendall's tau_b between the ``T`` teachers' sharpness values and a teacher-level
  summary of their students' gaps (``statistic="teacher_mean"``, default), or the student-level
  tau_b over all pairs (``"pooled"``);
* the null distribution permutes the sharpness values over teachers (a student moves with its teacher).
  With ``T <= 8`` all ``T!`` permutations are enumerated and the p-value is exact; otherwise
  ``n_perm`` random permutations give ``p = (1 + #{|tau*| >= |tau|}) / (1 + n_perm)`` (valid, conservative).
  The smallest attainable two-sided p is ``2/T!`` for distinct values (``T = 4``: 0.083; ``T = 6``: 0.0028).

**Recipes.** Teachers trained by one recipe over several seeds are not independent replicates of the
sharpness–gap relation either: the recipe sets both. :func:`recipe_kendall` is the test at the unit of
independence: tau_b between the recipes' mean sharpness and mean (teacher-level) gap, with the exact
permutation null over the ``R`` recipes (``R <= 8``; ``R = 6``: smallest two-sided p ``2/720 = 0.0028``).
A teacher-level test over recipes × seeds then describes the design ("within-design"): its permutation
null treats seeds of one recipe as exchangeable with other recipes' teachers, which they are not.

Every reported p-value is Holm-adjusted across the tests passed to :func:`kendall_tests` together.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .._checks import check_choice, check_finite_array, check_int, check_seed
from .verdicts import holm_adjust

__all__ = ["kendall_tau_b", "PermutationKendall", "permutation_kendall", "recipe_kendall", "kendall_tests",
           "EXACT_MAX_TEACHERS", "UNITS"]

EXACT_MAX_TEACHERS = 8
#: the unit a test permutes: ``"teacher"`` (within-design when several teachers share a recipe) or ``"recipe"``
UNITS = ("teacher", "recipe")


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float:
    r"""Kendall's tau_b (ties corrected); ``nan`` when either side is constant.

    .. math:: \tau_b = \frac{n_c - n_d}{\sqrt{(n_0 - n_1)(n_0 - n_2)}},\quad n_0 = \binom n2,

    ``n_1``/``n_2`` the tied pairs in ``x``/``y``.

    Args:
        x: the first ranking's values.
        y: the second's, same length.

    Returns:
        tau_b, or ``nan``.

    Raises:
        ValueError: ``x`` and ``y`` are not 1-D of the same length, or hold NaN/inf.
        TypeError: values that are not numbers.
    """
    a = check_finite_array("x", x, ndim=1)
    b = check_finite_array("y", y, ndim=1)
    if a.shape != b.shape:
        raise ValueError(f"x and y must be 1-D of the same length, got {a.shape} and {b.shape}")
    i, j = np.triu_indices(a.size, 1)
    sx, sy = np.sign(a[j] - a[i]), np.sign(b[j] - b[i])
    n0 = i.size
    tx, ty = int((sx == 0).sum()), int((sy == 0).sum())
    den = math.sqrt((n0 - tx) * (n0 - ty)) if n0 else 0.0
    return float((sx * sy).sum() / den) if den > 0 else math.nan


def _tau_many(perm_x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """tau_b of every row of ``perm_x`` (shape (P, n)) against ``y``."""
    i, j = np.triu_indices(y.size, 1)
    sy = np.sign(y[j] - y[i])
    sx = np.sign(perm_x[:, j] - perm_x[:, i])
    n0 = i.size
    tx = (sx == 0).sum(axis=1)
    ty = int((sy == 0).sum())
    den = np.sqrt((n0 - tx) * float(n0 - ty))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sx * sy).sum(axis=1) / den


@dataclass(frozen=True)
class PermutationKendall:
    """One teacher-level Kendall test.

    Attributes:
        label: what is tested (e.g. ``"train_top_eig vs student_gap_clipped_ce"``).
        statistic: ``"teacher_mean"`` or ``"pooled"``. tau: observed tau_b.
        p_value: two-sided permutation p. p_holm: Holm-adjusted across the tests reported together.
        exact: whether all ``T!`` permutations were enumerated. n_permutations: permutations used.
        n_teachers: independent teachers spanned. n_students: student gaps used.
        min_attainable_p: smallest two-sided p the design allows (``2/T!`` exact, ``1/(1+n_perm)`` MC).
        note: why tau is undefined, if it is.
        unit: what the permutation moves (:data:`UNITS`): ``"recipe"`` for :func:`recipe_kendall`
            (then ``n_teachers`` counts the teachers averaged into the recipes).
        n_recipes: the recipes (independent units) of a recipe-level test, else ``None``.
    """

    label: str
    statistic: str
    tau: float
    p_value: float
    p_holm: float | None
    exact: bool
    n_permutations: int
    n_teachers: int
    n_students: int
    min_attainable_p: float
    note: str = ""
    unit: str = "teacher"
    n_recipes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Every field.

        Returns:
            ``dataclasses.asdict(self)``.
        """
        return asdict(self)


def _check_gaps(sharpness: Any, gaps: Any) -> None:
    """``sharpness`` a mapping and ``gaps`` a sequence of ``(teacher, gap)`` pairs (``TypeError`` naming which)."""
    if not isinstance(sharpness, Mapping):
        raise TypeError(f"sharpness: expected a mapping {{teacher: sharpness}}, got {type(sharpness).__name__}")
    if isinstance(gaps, (str, bytes, Mapping)) or not isinstance(gaps, Sequence):
        raise TypeError(f"gaps: expected a list of (teacher, gap) pairs, got {type(gaps).__name__}")
    for i, g in enumerate(gaps):
        if not (isinstance(g, (tuple, list)) and len(g) == 2):
            raise TypeError(f"gaps: entry {i} is {g!r}; expected a (teacher, gap) pair")


def permutation_kendall(sharpness: Mapping[str, float], gaps: Sequence[tuple[str, float]], *,
                        statistic: str = "teacher_mean", n_perm: int = 20000, seed: int = 0,
                        label: str = "") -> PermutationKendall:
    r"""Kendall tau_b between teacher sharpness and student gaps with a teacher-level permutation test.

    Args:
        sharpness: ``{teacher: sharpness}`` (one value per teacher).
        gaps: ``[(teacher, gap), ...]`` one entry per student (several per teacher allowed).
        statistic: ``"teacher_mean"`` (tau between sharpness and the mean gap of each teacher's students)
            or ``"pooled"`` (tau over all students, each carrying its teacher's sharpness).
        n_perm: random permutations when ``T > 8``.
        seed: their seed.
        label: recorded.

    Returns:
        :class:`PermutationKendall` (``p_holm`` is ``None`` until :func:`kendall_tests` adjusts it).

    Raises:
        ValueError: a gap whose teacher has no sharpness, fewer than 3 teachers with students,
            non-finite values, bad ``statistic``, ``n_perm`` or ``seed``.
        TypeError: ``sharpness`` not a mapping, ``gaps`` not a sequence of ``(teacher, gap)`` pairs.
    """
    statistic = check_choice("statistic", statistic, ("teacher_mean", "pooled"))
    n_perm = check_int("n_perm", n_perm, minimum=1)
    seed = check_seed("seed", seed)
    _check_gaps(sharpness, gaps)
    teachers = sorted({t for t, _ in gaps})
    missing = [t for t in teachers if t not in sharpness]
    if missing:
        raise ValueError(f"gaps: teachers {missing} have no sharpness value; pass one per teacher")
    vals = [float(sharpness[t]) for t in teachers] + [float(g) for _, g in gaps]
    if not all(math.isfinite(v) for v in vals):
        raise ValueError("sharpness and gaps must be finite (drop missing pairs first)")
    T = len(teachers)
    if T < 3:
        raise ValueError(f"gaps: need students of at least 3 teachers for a rank correlation, got {T}")
    idx = {t: k for k, t in enumerate(teachers)}
    sh = np.array([sharpness[t] for t in teachers], dtype=np.float64)
    owner = np.array([idx[t] for t, _ in gaps])
    g = np.array([v for _, v in gaps], dtype=np.float64)
    if statistic == "teacher_mean":
        y = np.array([g[owner == k].mean() for k in range(T)])

        def expand(perm_sh: np.ndarray) -> np.ndarray:
            return perm_sh
    else:
        y = g

        def expand(perm_sh: np.ndarray) -> np.ndarray:
            return perm_sh[:, owner]

    tau = kendall_tau_b(expand(sh[None, :])[0], y)
    exact = T <= EXACT_MAX_TEACHERS
    if exact:
        perms = np.array(list(itertools.permutations(range(T))), dtype=np.int64)
    else:
        rng = np.random.default_rng(seed)
        perms = np.array([rng.permutation(T) for _ in range(n_perm)], dtype=np.int64)
    if not math.isfinite(tau):
        return PermutationKendall(label, statistic, math.nan, math.nan, None, exact, len(perms), T, len(gaps),
                                  math.nan, "one side is constant: τ undefined")
    taus = np.concatenate([_tau_many(expand(sh[p]), y) for p in np.array_split(perms, max(1, len(perms) // 5000))])
    hit = np.abs(taus) >= abs(tau) - 1e-12
    if exact:
        p = float(hit.mean())
        a = np.abs(taus[np.isfinite(taus)])
        min_p = float(np.mean(a >= a.max() - 1e-12))
    else:
        p = float((1 + hit.sum()) / (1 + len(perms)))
        min_p = 1.0 / (1 + len(perms))
    return PermutationKendall(label, statistic, float(tau), p, None, exact, len(perms), T, len(gaps), min_p)


def recipe_kendall(sharpness: Mapping[str, float], gaps: Sequence[tuple[str, float]], recipe_of: Mapping[str, str],
                   *, n_perm: int = 20000, seed: int = 0, label: str = "") -> PermutationKendall:
    r"""Kendall tau_b at the recipe level: recipe means, permutations of whole recipes.

    .. math::
        \bar s_r = \frac{1}{|T_r|}\sum_{t\in T_r} s_t,\qquad
        \bar g_r = \frac{1}{|T_r|}\sum_{t\in T_r} \frac{1}{|S_t|}\sum_{u\in S_t} g_u,\qquad
        \tau_b\big((\bar s_r)_r, (\bar g_r)_r\big),

    with ``T_r`` the teachers of recipe ``r`` and ``S_t`` the students (gap values) of teacher ``t``; the p-value
    is that of :func:`permutation_kendall` over the ``R`` recipes (all ``R!`` permutations for ``R <= 8``).

    Args:
        sharpness: ``{teacher: sharpness}``.
        gaps: ``[(teacher, gap), ...]`` (one or more per teacher).
        recipe_of: ``{teacher: recipe}`` for every teacher with gaps.
        n_perm: random permutations when ``R > 8``.
        seed: their seed.
        label: recorded.

    Returns:
        :class:`PermutationKendall` with ``unit="recipe"``, ``n_recipes = R`` and ``n_teachers`` the teachers
        averaged (``p_holm`` ``None`` until :func:`kendall_tests`).

    Raises:
        ValueError: a teacher without a recipe or a sharpness value, fewer than 3 recipes, non-finite values.
        TypeError: ``sharpness`` or ``recipe_of`` not a mapping, ``gaps`` not ``(teacher, gap)`` pairs.
    """
    _check_gaps(sharpness, gaps)
    if not isinstance(recipe_of, Mapping):
        raise TypeError(f"recipe_of: expected a mapping {{teacher: recipe}}, got {type(recipe_of).__name__}")
    teachers = sorted({t for t, _ in gaps})
    missing = [t for t in teachers if t not in recipe_of]
    if missing:
        raise ValueError(f"recipe_of: teachers {missing} have no recipe; pass one per teacher")
    missing = [t for t in teachers if t not in sharpness]
    if missing:
        raise ValueError(f"gaps: teachers {missing} have no sharpness value; pass one per teacher")
    per_teacher: dict[str, list[float]] = {}
    for t, g in gaps:
        per_teacher.setdefault(t, []).append(float(g))
    recipes: dict[str, list[str]] = {}
    for t in teachers:
        recipes.setdefault(str(recipe_of[t]), []).append(t)
    r_sharp = {r: float(np.mean([float(sharpness[t]) for t in ts])) for r, ts in recipes.items()}
    r_gaps = [(r, float(np.mean([np.mean(per_teacher[t]) for t in ts]))) for r, ts in recipes.items()]
    if len(recipes) < 3:
        raise ValueError(f"recipe_of: need teachers of at least 3 recipes for a recipe-level rank correlation, got "
                         f"{len(recipes)}")
    res = permutation_kendall(r_sharp, r_gaps, statistic="teacher_mean", n_perm=n_perm, seed=seed, label=label)
    return dataclasses.replace(res, statistic="recipe_mean", unit="recipe", n_recipes=len(recipes),
                               n_teachers=len(teachers), n_students=len(gaps))


def kendall_tests(tests: Sequence[PermutationKendall]) -> tuple[PermutationKendall, ...]:
    """Holm-adjust the p-values of the reported tests together (undefined ones are left out).

    Args:
        tests: the tests reported together.

    Returns:
        The tests in the same order with ``p_holm`` set where the p-value is defined.
    """
    ok = [i for i, t in enumerate(tests) if math.isfinite(t.p_value)]
    adj = holm_adjust([tests[i].p_value for i in ok]) if ok else []
    out = list(tests)
    for k, i in enumerate(ok):
        out[i] = dataclasses.replace(tests[i], p_holm=float(adj[k]))
    return tuple(out)
