"""Linear-Gaussian distillation trade-offs (theory.md §3–§4) as a study: sweeps over the student's rank r, the
sample size n, the temperature ratio tau_S/tau_T and the student ridge lam_S of :mod:`linear_gaussian.sweeps`.

Per (seed, sweep, value): the three terms of the distillation divergence, K = B + R_r + V (the rank bottleneck
R_r grows like n, the bias B like 1/n, the variance V stays bounded; theory.md §3.4), and every bound next to
the exact gap difference (tightness ratios). One run per (seed, sweep) on the sweep runner:
``--executor ray --workers N`` spreads them over Ray workers with the same rows. Exact computation on
generated data: nothing is trained, nothing is cached, no data set is read.

Presets: ``smoke`` (CI, seconds: d = 8, k = 4, three values per grid, one seed; formerly ``--quick``) and
``cpu`` (the default: d = 20, k = 8, the full grids, three seeds; under a minute).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from linear_gaussian.sweeps import SWEEPS, TradeoffConfig, summarize, sweep_rows

from .._io import atomic_write_csv, atomic_write_json
from ..runs.sweep import RunSpec, run_sweep
from ..figures import save_figure
from ._provenance import with_provenance

__all__ = ["Config", "PRESETS", "Result", "run", "write_results", "summary"]


@dataclass(frozen=True)
class Config:
    """A run of the study: the sweeps' :class:`~linear_gaussian.sweeps.TradeoffConfig` and whether to draw.

    Attributes:
        preset: the preset's name.
        tradeoff: the base instance, the grids and the seeds.
        plots: write the figures (``terms_vs_<sweep>.png``, ``bounds_vs_<sweep>.png``).
    """

    preset: str
    tradeoff: TradeoffConfig
    plots: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.tradeoff, TradeoffConfig):
            raise TypeError(f"tradeoff: expected a linear_gaussian.sweeps.TradeoffConfig, got "
                            f"{type(self.tradeoff).__name__}")
        if not self.tradeoff.seeds:
            raise ValueError("tradeoff.seeds: expected at least one seed, got none")

    def with_seeds(self, seeds: tuple[int, ...] | None) -> "Config":
        """This config with other seeds (``None``: unchanged).

        Args:
            seeds: the seeds.

        Returns:
            The new config.
        """
        if seeds is None:
            return self
        return dataclasses.replace(self, tradeoff=dataclasses.replace(self.tradeoff, seeds=tuple(seeds)))

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON values.

        Returns:
            ``preset``, every field of the trade-off config, ``plots``.
        """
        return {"preset": self.preset, **self.tradeoff.to_dict(), "plots": self.plots}


PRESETS: dict[str, Config] = {
    "smoke": Config(preset="smoke", tradeoff=TradeoffConfig.quick()),
    "cpu": Config(preset="cpu", tradeoff=TradeoffConfig()),
}

#: the data these results come from, for ``results.json``'s provenance (generated, not read)
SYNTHETIC = {"name": "linear-Gaussian", "kind": "synthetic",
             "generator": "linear_gaussian.model.random_problem, seeded per (seed, sweep value)"}

#: the sweeps drawn, each with its x scale (logarithmic or not)
_LOG_X = {"rank": False, "n": True, "tau_ratio": True, "lam_S": True}


@dataclass(frozen=True)
class Result:
    """Every row (seed, sweep, x) and the summary (log–log slopes against n, bound validity and tightness).

    Attributes:
        config: :meth:`Config.to_dict`.
        rows: one dict per (seed, sweep, value), in the order of :func:`linear_gaussian.sweeps.run_sweeps`.
        summary: :func:`linear_gaussian.sweeps.summarize` of the rows, with ``seconds``.
        executor: ``local`` or ``ray``.
        threads: intra-op threads per run (``None``: the default).
    """

    config: dict[str, Any]
    rows: tuple[dict[str, Any], ...]
    summary: dict[str, Any]
    executor: str = "local"
    threads: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The result as plain JSON values.

        Returns:
            ``{"config", "summary", "rows"}``.
        """
        return {"config": self.config, "summary": self.summary, "rows": list(self.rows)}


def run(config: Config, out_dir: str | os.PathLike, *, cache_root: str | os.PathLike | None = None,
        progress: bool = True, sweep: Mapping[str, Any] | None = None) -> Result:
    """Run every sweep and write the results to ``out_dir``.

    Args:
        config: e.g. ``PRESETS["smoke"]``.
        out_dir: the output folder (created).
        cache_root: not used (nothing is trained or cached); accepted for the common study signature.
        progress: the sweep runner's progress bar.
        sweep: options of :func:`~kdbounds.runs.sweep.run_sweep` (``executor``, ``workers``, ``threads``, ...).

    Returns:
        The :class:`Result` (also written: :func:`write_results`).

    Raises:
        TypeError: ``config`` is not a :class:`Config`.
    """
    if not isinstance(config, Config):
        raise TypeError(f"config: expected a linear_gaussian_tradeoffs.Config (e.g. PRESETS['smoke']), got "
                        f"{type(config).__name__}")
    sweep = dict(sweep or {})
    t0 = time.perf_counter()
    cfg = config.tradeoff.to_dict()
    specs = [RunSpec(f"{name}-seed{seed}", sweep_rows, {"config": cfg, "sweep": name, "seed": seed})
             for seed in config.tradeoff.seeds for name in SWEEPS]
    done = run_sweep(specs, progress=progress, desc="linear-Gaussian sweeps", **sweep)
    rows = tuple(r for s in specs for r in done[s.key])  # the order of run_sweeps: seeds, then sweeps, then x
    summ = {**summarize(list(rows)), "seconds": time.perf_counter() - t0}
    result = Result(config.to_dict(), rows, summ, sweep.get("executor", "local"), sweep.get("threads"))
    write_results(result, out_dir, plots=config.plots)
    return result


def write_results(result: Result, out_dir: str | os.PathLike, plots: bool = True) -> dict[str, Path]:
    """Write ``config.json``, ``results.csv``, ``results.json`` (strict JSON, with provenance) and the figures.

    Args:
        result: the study's result.
        out_dir: the folder (created).
        plots: also draw ``terms_vs_<sweep>.png`` and ``bounds_vs_<sweep>.png`` for each sweep.

    Returns:
        ``{name: path}`` of the files written.
    """
    from linear_gaussian.plots import plot_bounds, plot_terms

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seeds = result.config.get("seeds")
    paths = {"config": atomic_write_json(out / "config.json", {"config": result.config,
                                                                "preset": result.config.get("preset"),
                                                                "executor": result.executor,
                                                                "threads": result.threads}),
             "csv": atomic_write_csv(out / "results.csv", list(result.rows)),
             "json": atomic_write_json(out / "results.json",
                                       with_provenance(result.to_dict(), data={**SYNTHETIC, "seeds": seeds}))}
    if plots:
        rows = list(result.rows)
        for name, logx in _LOG_X.items():
            paths[f"terms_{name}"] = save_figure(plot_terms(rows, name, logx=logx), out / f"terms_vs_{name}.png",
                                                 dpi=120)
            paths[f"bounds_{name}"] = save_figure(plot_bounds(rows, name, logx=logx), out / f"bounds_vs_{name}.png",
                                                  dpi=120)
    return paths


def summary(result: Result) -> str:
    """The summary printed after a run (the JSON of :attr:`Result.summary`).

    Args:
        result: the study's result.

    Returns:
        The text.
    """
    return json.dumps(result.summary, indent=2, default=str)
