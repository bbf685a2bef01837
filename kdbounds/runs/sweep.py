"""One sweep runner for every study: a grid of runs with dependencies, run locally or on Ray.

A study declares its runs as :class:`RunSpec` objects — a key, a top-level function, its keyword
arguments, and the keys of the runs it needs (a student needs its teacher). :func:`run_sweep` checks
the graph (duplicate keys, unknown dependencies, cycles, functions that cannot be sent to a worker)
before anything runs, then executes it:

* ``executor="local"`` (default): in this process, one run at a time, in a topological order that
  keeps the order of the list where the dependencies allow. Needs nothing beyond the project.
* ``executor="ray"``: each run is a Ray task (install the ``ray`` extra). ``address=None`` starts a
  local cluster with ``workers * threads`` CPUs (``workers`` runs at once); ``address="host:port"``
  (or ``"auto"``) joins a running cluster, where ``workers`` (optional) caps the runs in flight.
  A local cluster runs its workers at normal priority (Ray's default is ``nice 15``, see
  :data:`RAY_LOCAL_SYSTEM_CONFIG`).
  A run starts when its dependencies have finished; each run asks for ``threads`` CPUs and, when the
  cluster has GPUs, ``gpus_per_run`` GPUs (default 1). A worker process that dies (killed, out of
  memory, node lost) is retried up to ``max_retries`` times; an exception raised by the run itself is
  not retried (it would fail again) and stops the sweep.

A run's function is called as ``fn(**kwargs)``, or ``fn(**kwargs, deps={dep_key: dep_result, ...})``
when its spec has dependencies. Every run executes with ``torch.set_num_threads(threads)`` (and, on
Ray, ``OMP_NUM_THREADS``/``MKL_NUM_THREADS``/``OPENBLAS_NUM_THREADS`` set to ``threads`` in the worker's
environment), so at equal ``threads`` both executors compute the same numbers.

**Resuming.** With ``out_dir``, each finished run is published atomically to
``out_dir/<key>/result.pkl`` by the process that computed it, under the run's lock
(:mod:`kdbounds.runs.locking`). A sweep started again — after Ctrl-C, a crash of the driver, or on
another machine sharing ``out_dir`` — loads published runs instead of executing them, and two sweeps
sharing ``out_dir`` never execute the same run twice. A published result is reused only if its *spec
fingerprint* matches: SHA-256 over the function's ``module:qualname``, the canonical JSON of the kwargs
(``repr`` when not JSON-able) and the fingerprints of its dependencies, so changing a teacher's
arguments re-executes the teacher and every student below it. Results are stored with ``pickle``:
``out_dir`` is a private cache of your own runs, do not load one from an untrusted source.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import os
import pickle
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .._checks import check_int, check_nonnegative
from .._io import atomic_write_bytes, atomic_write_json, bytes_sha256, canonical_json, json_sha256
from .._progress import progress_bar
from .allocator import tune_cpu_allocator
from .locking import compute_once

__all__ = ["EXECUTORS", "MAX_WORKERS_PER_CPU", "RAY_LOCAL_SYSTEM_CONFIG", "RunSpec", "ResultStore", "SweepError",
           "add_sweep_arguments", "check_execution", "probe_address", "run_sweep",
           "spec_fingerprints", "sweep_options", "topological_order"]

EXECUTORS = ("local", "ray")
_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_RESULT_FILE = "result.pkl"
_INFO_FILE = "run.json"
#: Ray starts its workers with ``nice 15`` by default (to favour the driver); on a machine shared with
#: other work at ``nice 0`` that starves the runs (measured: a sweep 4x slower than local on a loaded
#: 2-core machine). A local cluster started by :func:`run_sweep` runs its workers at the driver's priority.
RAY_LOCAL_SYSTEM_CONFIG = {"worker_niceness": 0}
_SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=+,@-]*$")


@dataclass(frozen=True, eq=False)
class RunSpec:
    """One run of a sweep.

    Attributes:
        key: unique name of the run in the sweep (e.g. ``"teacher-seed0"``); also its folder under
            ``out_dir``.
        fn: a module-level function (so it can be pickled by reference and sent to a worker).
        kwargs: keyword arguments of ``fn``; must be picklable for Ray.
        deps: keys of the runs whose results ``fn`` receives as ``deps={key: result}``.
    """

    key: str
    fn: Callable[..., Any]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    deps: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key.strip():
            raise TypeError(f"RunSpec.key: expected a non-empty string, got {self.key!r}")
        if not callable(self.fn):
            raise TypeError(f"RunSpec.fn of run {self.key!r}: expected a function, got {type(self.fn).__name__}")
        if not isinstance(self.kwargs, Mapping) or not all(isinstance(k, str) for k in self.kwargs):
            raise TypeError(f"RunSpec.kwargs of run {self.key!r}: expected a mapping with string keys, "
                            f"got {self.kwargs!r}")
        deps = (self.deps,) if isinstance(self.deps, str) else tuple(self.deps)
        if not all(isinstance(d, str) for d in deps):
            raise TypeError(f"RunSpec.deps of run {self.key!r}: expected run keys (strings), got {self.deps!r}")
        if len(set(deps)) != len(deps):
            raise ValueError(f"RunSpec.deps of run {self.key!r}: a dependency is listed twice: {deps!r}")
        if deps and "deps" in self.kwargs:
            raise ValueError(f"RunSpec.kwargs of run {self.key!r}: 'deps' is reserved for the results of "
                             f"its dependencies {deps!r}; rename that argument")
        object.__setattr__(self, "kwargs", dict(self.kwargs))
        object.__setattr__(self, "deps", deps)


class SweepError(RuntimeError):
    """A run of the sweep failed (raised, or its worker died more than ``max_retries`` times).

    Attributes:
        failures: ``{key: exception}`` of the failed runs.
        results: ``{key: result}`` of the runs that finished (published to ``out_dir`` if given, so a
            restart resumes after fixing the cause).
    """

    def __init__(self, failures: Mapping[str, BaseException], results: Mapping[str, Any], n_total: int,
                 skipped: Sequence[str] = ()) -> None:
        self.failures = dict(failures)
        self.results = dict(results)
        self.skipped = list(skipped)
        first_key, first = next(iter(self.failures.items()))
        msg = (f"{len(self.failures)} of {n_total} runs failed ({', '.join(map(repr, self.failures))}); "
               f"{len(self.results)} finished, {len(self.skipped)} not started. "
               f"First failure, run {first_key!r}: {type(first).__name__}: {first}")
        super().__init__(msg)


# ---------------------------------------------------------------------------------------------- graph

def _check_picklable_fn(spec: RunSpec) -> None:
    qual = getattr(spec.fn, "__qualname__", "")
    mod = getattr(spec.fn, "__module__", None)
    if "<lambda>" in qual or "<locals>" in qual or mod is None:
        raise TypeError(f"RunSpec.fn of run {spec.key!r}: {qual or spec.fn!r} is a lambda or a nested "
                        f"function; define it at the top level of a module so workers can import it")
    try:
        pickle.dumps(spec.fn)
    except Exception as e:  # noqa: BLE001 - any pickling failure gets the same advice
        raise TypeError(f"RunSpec.fn of run {spec.key!r}: cannot be pickled ({e}); use a module-level "
                        f"function") from None


def topological_order(specs: Sequence[RunSpec]) -> list[RunSpec]:
    """Check ``specs`` and return them in an order where each run comes after its dependencies.

    Among the runs that are ready, the one listed first in ``specs`` comes first, so a list that is
    already ordered is returned unchanged.

    Args:
        specs: the sweep's runs.

    Returns:
        The same runs, dependencies first.

    Raises:
        TypeError: an element is not a :class:`RunSpec`, or a function is not module-level/picklable.
        ValueError: a key appears twice, a dependency names no run of the sweep, or runs form a cycle
            (the message shows the cycle).
    """
    if isinstance(specs, (str, bytes, Mapping)) or not isinstance(specs, Sequence):
        raise TypeError(f"specs: expected a list of RunSpec, got {type(specs).__name__}")
    bad = [i for i, s in enumerate(specs) if not isinstance(s, RunSpec)]
    if bad:
        raise TypeError(f"specs: element {bad[0]} is a {type(specs[bad[0]]).__name__}, expected a RunSpec")
    index: dict[str, int] = {}
    dups: list[str] = []
    for i, s in enumerate(specs):
        if s.key in index:
            dups.append(s.key)
        index[s.key] = i
    if dups:
        raise ValueError(f"specs: duplicate run keys {sorted(set(dups))!r}; every run needs its own key")
    for s in specs:
        for d in s.deps:
            if d not in index:
                raise ValueError(f"run {s.key!r} depends on {d!r}, which is not a run of this sweep "
                                 f"(keys: {', '.join(map(repr, list(index)[:8]))}{', ...' if len(index) > 8 else ''})")
        _check_picklable_fn(s)
    children: dict[str, list[str]] = {s.key: [] for s in specs}
    n_deps = {s.key: len(s.deps) for s in specs}
    for s in specs:
        for d in s.deps:
            children[d].append(s.key)
    ready = [index[s.key] for s in specs if not s.deps]
    heapq.heapify(ready)
    order: list[RunSpec] = []
    while ready:
        s = specs[heapq.heappop(ready)]
        order.append(s)
        for c in children[s.key]:
            n_deps[c] -= 1
            if n_deps[c] == 0:
                heapq.heappush(ready, index[c])
    if len(order) < len(specs):
        raise ValueError(f"specs: the dependencies form a cycle: {_find_cycle(specs, n_deps)}")
    return order


def _find_cycle(specs: Sequence[RunSpec], remaining: Mapping[str, int]) -> str:
    deps = {s.key: [d for d in s.deps if remaining.get(d, 0) > 0] for s in specs if remaining[s.key] > 0}
    start = next(iter(deps))
    path, seen = [start], {start: 0}
    while True:  # every node left has a dependency left, so following them must close a loop
        nxt = deps[path[-1]][0]
        if nxt in seen:
            loop = path[seen[nxt]:] + [nxt]
            return " -> ".join(map(repr, loop)) + " (each needs the next)"
        seen[nxt] = len(path)
        path.append(nxt)


def _canonical(x: Any) -> str:
    """:func:`~kdbounds._io.canonical_json`, or ``repr`` for what has no JSON form (a function, a module)."""
    try:
        return canonical_json(x)
    except (TypeError, ValueError):
        return repr(x)


#: Keyword arguments that say how a run reports, not what it computes: left out of its fingerprint,
#: so a restart with or without progress (or on another executor, which turns the trainer's own
#: progress off) reuses the published result.
PRESENTATION_KWARGS = frozenset({"progress"})


def spec_fingerprints(order: Sequence[RunSpec]) -> dict[str, str]:
    """``{key: SHA-256 hex}`` over each run's function name, kwargs (less :data:`PRESENTATION_KWARGS`)
    and its dependencies' fingerprints (:func:`kdbounds._io.json_sha256`).

    Args:
        order: the runs in a topological order (:func:`topological_order`).

    Returns:
        Each run's fingerprint by key.
    """
    fps: dict[str, str] = {}
    for s in order:
        kwargs = {k: v for k, v in s.kwargs.items() if k not in PRESENTATION_KWARGS}
        body = {"fn": f"{s.fn.__module__}:{s.fn.__qualname__}", "kwargs": _canonical(kwargs),
                "deps": {d: fps[d] for d in s.deps}}
        fps[s.key] = json_sha256(body)
    return fps


# ---------------------------------------------------------------------------------------------- store

class ResultStore:
    """Published results of a sweep: ``root/<key>/result.pkl`` (+ ``run.json`` for humans).

    ``result.pkl`` holds ``{"key", "fingerprint", "result"}`` and is written atomically, last; its
    presence with a matching fingerprint means the run is finished. Keys that are not plain file names
    get a sanitised folder name plus a hash of the key.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (ResultStore, (os.fspath(self.root),))

    def run_dir(self, key: str) -> Path:
        """The folder of run ``key``: ``root/key``, or a sanitised name plus a hash of the key.

        Args:
            key: the run's key.

        Returns:
            The folder (not created).
        """
        if _SAFE_KEY.match(key) and len(key) <= 120:
            return self.root / key
        safe = re.sub(r"[^A-Za-z0-9._=+,@-]", "_", key)[:80].lstrip(".") or "run"
        return self.root / f"{safe}-{bytes_sha256(key.encode())[:10]}"

    def load(self, key: str, fingerprint: str) -> dict[str, Any] | None:
        """The stored payload of ``key`` if published with this ``fingerprint``, else ``None``.

        Args:
            key: the run's key.
            fingerprint: its spec's fingerprint (:func:`spec_fingerprints`); another one means stale.

        Returns:
            ``{"key", "fingerprint", "result"}``, or ``None``.

        Raises:
            ValueError: the file exists but cannot be unpickled (names the file and the fix).
        """
        p = self.run_dir(key) / _RESULT_FILE
        if not p.is_file():
            return None
        try:
            payload = pickle.loads(p.read_bytes())
        except Exception as e:  # noqa: BLE001 - a class renamed since, a truncated copy...
            raise ValueError(f"{p}: cannot load the stored result of run {key!r} ({type(e).__name__}: {e}); "
                             f"delete that folder to run it again") from None
        if not isinstance(payload, dict) or payload.get("key") != key or payload.get("fingerprint") != fingerprint:
            return None  # another spec under this key: stale, will be recomputed and replaced
        return payload

    def save(self, key: str, payload: Mapping[str, Any], info: Mapping[str, Any]) -> None:
        """Publish ``payload`` (atomically, last) after writing ``info`` to ``run.json``.

        Args:
            key: the run's key.
            payload: ``{"key", "fingerprint", "result"}`` (pickled).
            info: a strict-JSON description for humans.
        """
        d = self.run_dir(key)
        atomic_write_json(d / _INFO_FILE, info)
        atomic_write_bytes(d / _RESULT_FILE, pickle.dumps(dict(payload), protocol=pickle.HIGHEST_PROTOCOL))


# ---------------------------------------------------------------------------------------------- execution

@dataclass(frozen=True)
class _Job:
    key: str
    fn: Callable[..., Any]
    kwargs: dict[str, Any]
    deps: tuple[str, ...]
    fingerprint: str
    threads: int | None
    store: ResultStore | None


def _set_threads(threads: int | None, env: bool) -> int | None:
    """Set torch's intra-op threads (and the BLAS/OpenMP env vars when ``env``); returns the old count."""
    if threads is None:
        return None
    if env:
        for v in _THREAD_ENV:
            os.environ[v] = str(threads)
    import torch

    old = torch.get_num_threads()
    if old != threads:
        torch.set_num_threads(threads)
    return old


def _call(job: _Job, dep_results: Sequence[Any]) -> Any:
    if job.deps:
        return job.fn(**job.kwargs, deps=dict(zip(job.deps, dep_results)))
    return job.fn(**job.kwargs)


def _execute(job: _Job, dep_results: Sequence[Any], in_worker: bool) -> tuple[Any, bool, float]:
    """Run one job (under its lock and with publication when there is a store).

    Returns ``(result, computed, seconds)``; ``computed`` is False when another process published it.
    """
    _set_threads(job.threads, env=in_worker)
    tune_cpu_allocator()  # once per process: training's activations stay in the heap (runs/allocator.py)
    t0 = time.perf_counter()
    if job.store is None:
        return _call(job, dep_results), True, time.perf_counter() - t0
    store = job.store

    def compute() -> dict[str, Any]:
        return {"key": job.key, "fingerprint": job.fingerprint, "result": _call(job, dep_results)}

    def save(_: Path, payload: dict[str, Any]) -> None:
        info = {"key": job.key, "fingerprint": job.fingerprint, "fn": f"{job.fn.__module__}:{job.fn.__qualname__}",
                "kwargs": _canonical(job.kwargs), "deps": list(job.deps), "host": socket.gethostname(),
                "pid": os.getpid(), "seconds": time.perf_counter() - t0,
                "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        store.save(job.key, payload, info)

    payload, computed = compute_once(store.run_dir(job.key), compute,
                                     load=lambda _: store.load(job.key, job.fingerprint), save=save)
    return payload["result"], computed, time.perf_counter() - t0


def _ray_entry(job: _Job, *dep_outputs: tuple[Any, bool, float]) -> tuple[Any, bool, float]:
    """Body of the Ray task: dependencies arrive as the (resolved) outputs of their tasks."""
    return _execute(job, [o[0] for o in dep_outputs], in_worker=True)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ImportError("executor='ray' needs Ray: pip install 'kdbounds[ray]' (or use executor='local')") from None
    return ray


def _check_args(executor: str, workers: int | None, address: str | None, threads: int | None,
                max_retries: int, gpus_per_run: float | None) -> None:
    if executor not in EXECUTORS:
        raise ValueError(f"executor: expected one of {', '.join(EXECUTORS)}, got {executor!r}")
    for name, v in (("workers", workers), ("threads", threads)):
        if v is not None:
            check_int(name, v, minimum=1, fix="or None")
    check_int("max_retries", max_retries, minimum=0)
    if gpus_per_run is not None:
        check_nonnegative("gpus_per_run", gpus_per_run, fix="or None (automatic)")
    if executor == "local":
        if workers not in (None, 1):
            raise ValueError(f"workers={workers}: the local executor runs one run at a time; "
                             f"use executor='ray' to run {workers} at once")
        if address is not None:
            raise ValueError("address: only the ray executor joins a cluster; use executor='ray'")
    if address is not None and (not isinstance(address, str) or not address.strip()):
        raise ValueError(f"address: expected 'host:port' or 'auto', got {address!r}")


def run_sweep(specs: Sequence[RunSpec], executor: str = "local", workers: int | None = None,
              address: str | None = None, threads: int | None = 1, max_retries: int = 2,
              progress: bool = True, out_dir: str | os.PathLike | None = None,
              gpus_per_run: float | None = None, desc: str = "sweep",
              on_result: Callable[[str, Any], None] | None = None) -> dict[str, Any]:
    """Execute every run of ``specs`` once, dependencies first; return ``{key: result}``.

    Args:
        specs: the runs (see :class:`RunSpec`); checked before anything runs.
        executor: ``"local"`` (in this process, sequential) or ``"ray"``.
        workers: Ray only: runs at once (a local cluster gets ``workers * threads`` CPUs; default: the
            machine's CPUs divided by ``threads``). With ``address``: a cap on runs in flight (default
            none: the cluster's resources decide).
        address: Ray only: join this running cluster (``"auto"``, ``"host:6379"``,
            ``"ray://host:10001"``) instead of starting one. An already initialised Ray (``ray.init``
            called by the caller) is used as is.
        threads: intra-op threads per run (torch, and OpenMP/MKL/OpenBLAS in Ray workers); ``None``
            leaves them alone (then the executors may differ in the last bits).
        max_retries: Ray only: how often a run whose worker process died is started again.
        progress: a progress bar over runs (one line per finished run when stderr is not a terminal).
        out_dir: publish each finished run here and skip runs already published (see module doc).
        gpus_per_run: Ray only: GPUs reserved per run; default 1 when the cluster has GPUs, else 0.
        desc: label of the progress bar.
        on_result: called in this process as ``on_result(key, result)`` once per run, when its result
            is in (also for results already published in ``out_dir``): for messages while the sweep goes
            on (e.g. a study's per-teacher lines). Dependencies are reported before their dependents.

    Returns:
        ``{key: result}`` in the order of ``specs``, the same structure for both executors.

    Raises:
        TypeError, ValueError: bad specs or arguments (before anything runs).
        ImportError: ``executor="ray"`` without Ray installed.
        SweepError: a run failed; runs already finished are in ``.results`` (and in ``out_dir``).
    """
    _check_args(executor, workers, address, threads, max_retries, gpus_per_run)
    if executor == "ray":
        _import_ray()  # fail before anything runs
    order = topological_order(specs)
    fps = spec_fingerprints(order)
    store = ResultStore(out_dir) if out_dir is not None else None
    jobs = {s.key: _Job(s.key, s.fn, dict(s.kwargs), s.deps, fps[s.key], threads, store) for s in order}
    results: dict[str, Any] = {}
    if store is not None:
        for s in order:
            payload = store.load(s.key, fps[s.key])
            if payload is not None:
                results[s.key] = payload["result"]
                if on_result is not None:
                    on_result(s.key, results[s.key])
    with progress_bar(desc=desc, total=len(order), unit="run", enabled=progress) as bar:
        if results:
            bar.set_postfix_str(f"{len(results)} already published in {out_dir}")
            bar.update(len(results))
        todo = [s for s in order if s.key not in results]
        if executor == "local":
            _run_local(todo, jobs, results, bar, len(order), on_result)
        else:
            _run_ray(todo, jobs, results, bar, len(order), workers=workers, address=address, threads=threads,
                     max_retries=max_retries, gpus_per_run=gpus_per_run, on_result=on_result)
    return {s.key: results[s.key] for s in specs}


def _postfix(key: str, computed: bool, seconds: float) -> str:
    return f"{key} ({seconds:.1f} s)" if computed else f"{key} (published by another process)"


@contextlib.contextmanager
def _signal_handlers_kept() -> Iterator[None]:
    """SIGINT's and SIGTERM's handlers after the block are those before it (in the main thread): ``ray.init``
    installs its own (for SIGTERM, a stack dump and an abort), which would bypass the command line's one-line
    ending (:mod:`kdbounds._interrupts`)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            if handler is not None:
                signal.signal(s, handler)


def _run_local(todo: Sequence[RunSpec], jobs: Mapping[str, _Job], results: dict[str, Any], bar: Any,
               n_total: int, on_result: Callable[[str, Any], None] | None = None) -> None:
    if not todo:
        return
    threads = jobs[todo[0].key].threads
    old = None
    if threads is not None:
        import torch

        old = torch.get_num_threads()
    try:
        for i, s in enumerate(todo):
            try:
                res, computed, secs = _execute(jobs[s.key], [results[d] for d in s.deps], in_worker=False)
            except Exception as e:
                raise SweepError({s.key: e}, results, n_total, [t.key for t in todo[i + 1:]]) from e
            results[s.key] = res
            bar.set_postfix_str(_postfix(s.key, computed, secs))
            bar.update(1)
            if on_result is not None:
                on_result(s.key, res)
    finally:
        if old is not None:
            import torch

            torch.set_num_threads(old)


def _run_ray(todo: Sequence[RunSpec], jobs: Mapping[str, _Job], results: dict[str, Any], bar: Any, n_total: int,
             *, workers: int | None, address: str | None, threads: int | None, max_retries: int,
             gpus_per_run: float | None, on_result: Callable[[str, Any], None] | None = None) -> None:
    ray = _import_ray()
    started = False
    if address is not None:  # refused at once, also when this process is already connected to some cluster
        try:
            probe_address(address)  # Ray itself retries an unreachable address for minutes
        except ValueError as e:
            raise ConnectionError(str(e)) from None
    if not ray.is_initialized():
        env = {v: str(threads) for v in _THREAD_ENV} if threads is not None else {}
        from .locking import LOCK_TIMEOUT_ENV

        if os.environ.get(LOCK_TIMEOUT_ENV):  # the lock-wait limit (--lock-timeout) holds in the workers too
            env[LOCK_TIMEOUT_ENV] = os.environ[LOCK_TIMEOUT_ENV]
        kw: dict[str, Any] = {"include_dashboard": False, "runtime_env": {"env_vars": env}}
        with _signal_handlers_kept():  # ray.init replaces SIGTERM's handler (a C++ stack dump, then abort)
            if address is None:
                cpus = (workers or max(1, (os.cpu_count() or 1) // (threads or 1))) * (threads or 1)
                ray.init(num_cpus=cpus, _system_config=RAY_LOCAL_SYSTEM_CONFIG, **kw)
            else:
                ray.init(address=address, **kw)
        started = True
    try:
        if gpus_per_run is None:
            gpus_per_run = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        remote = ray.remote(_ray_entry).options(num_cpus=threads or 1, num_gpus=gpus_per_run,
                                                max_retries=max_retries, retry_exceptions=False)
        cap = workers if workers is not None else len(todo) or 1
        refs: dict[str, Any] = {k: ray.put((v, False, 0.0)) for k, v in results.items() if
                                any(k in s.deps for s in todo)}
        waiting = {s.key: sum(d not in results for d in s.deps) for s in todo}
        pos = {s.key: i for i, s in enumerate(todo)}
        children: dict[str, list[str]] = {s.key: [] for s in todo}
        for s in todo:
            for d in s.deps:
                if d in children:
                    children[d].append(s.key)
        ready = [pos[k] for k, n in waiting.items() if n == 0]
        heapq.heapify(ready)
        inflight: dict[Any, str] = {}
        failures: dict[str, BaseException] = {}
        while ready or inflight:
            while ready and not failures and len(inflight) < cap:
                s = todo[heapq.heappop(ready)]
                ref = remote.remote(jobs[s.key], *[refs[d] for d in s.deps])
                inflight[ref] = s.key
            if not inflight:
                break
            done, _ = ray.wait(list(inflight), num_returns=1)
            for ref in done:
                key = inflight.pop(ref)
                try:
                    res, computed, secs = ray.get(ref)
                except Exception as e:  # RayTaskError (the run raised) or WorkerCrashedError (retries used up)
                    failures[key] = e
                    continue
                results[key] = res
                refs[key] = ref
                bar.set_postfix_str(_postfix(key, computed, secs))
                bar.update(1)
                if on_result is not None:
                    on_result(key, res)
                for c in children[key]:
                    waiting[c] -= 1
                    if waiting[c] == 0:
                        heapq.heappush(ready, pos[c])
        if failures:
            raise SweepError(failures, results, n_total, [s.key for s in todo if s.key not in results
                                                          and s.key not in failures])
    finally:
        if started:
            ray.shutdown()


# ---------------------------------------------------------------------------------------------- CLI

def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the executor flags every experiment script shares: ``--executor``, ``--workers``,
    ``--address``, ``--threads``, ``--max-retries`` (read them back with :func:`sweep_options`).

    Args:
        parser: the script's parser (a group is added to it).
    """
    from .. import _cli_types as T  # the one set of typed converters

    g = parser.add_argument_group("execution (see docs/sweeps.md)")
    g.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="local: this process, one run at a time (default); ray: Ray tasks "
                        "(pip install 'kdbounds[ray]')")
    g.add_argument("--workers", type=T.positive_int, default=None,
                   help="ray: runs at once (a local cluster gets workers x threads CPUs; default: all CPUs)")
    g.add_argument("--address", type=T.ray_address, default=None,
                   help="ray: join this running cluster ('auto', 'host:6379') instead of starting one")
    g.add_argument("--threads", type=T.threads, default=None,
                   help="intra-op threads per run (default 1, or the study's own setting); equal --threads "
                        "give identical numbers on both executors")
    g.add_argument("--max-retries", type=T.nonneg_int, default=2,
                   help="ray: restarts of a run whose worker process died (default 2)")
    g.add_argument("--lock-timeout", type=T.nonneg_float, default=None,
                   help="seconds to wait for a run another process is computing before giving up "
                        "(default: no limit; a line names the holder after 5 s)")
    _check_after_parsing(parser)


def _check_after_parsing(parser: argparse.ArgumentParser) -> None:
    """Make ``parser`` check the execution options together as soon as it has parsed them."""
    parse_known = parser.parse_known_args

    def checked(args: Any = None, namespace: Any = None) -> Any:
        ns, rest = parse_known(args, namespace)
        try:
            check_execution(ns)
        except ValueError as e:
            parser.error(str(e))
        return ns, rest

    parser.parse_known_args = checked  # type: ignore[method-assign]  # parse_args goes through it


#: a local cluster with more workers than this many times the CPUs is refused
MAX_WORKERS_PER_CPU = 8


def probe_address(address: str, timeout: float = 3.0) -> None:
    """Check that something answers at a Ray ``host:port`` address (``auto``/``ray://`` are left to Ray).

    Args:
        address: the address given.
        timeout: seconds for the TCP connection.

    Raises:
        ValueError: nothing answers there (names the address and the fix).
    """
    if address == "auto" or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except (OSError, ValueError) as e:
        raise ValueError(f"address {address}: no Ray cluster answers there ({getattr(e, 'strerror', None) or e}); "
                         f"start one (`ray start --head` prints its address) or drop --address to start a local "
                         f"one") from None


def check_execution(ns: argparse.Namespace) -> None:
    """The execution options of one command line, checked together before any work.

    Refuses inconsistent options, ``--executor ray`` without Ray installed, an address where nothing
    answers, and a local cluster of more than ``MAX_WORKERS_PER_CPU`` workers per CPU; warns (one line
    on stderr) when the local cluster needs more CPUs than the machine has.

    Args:
        ns: parsed arguments with the options of :func:`add_sweep_arguments`.

    Raises:
        ValueError: any of the refusals above (names the option and the fix).
    """
    import importlib.util
    import sys

    executor, workers, address = ns.executor, ns.workers, ns.address
    threads = ns.threads if ns.threads is not None else 1
    try:
        _check_args(executor, workers, address, threads, ns.max_retries, None)
    except ValueError as e:
        raise ValueError(f"--{str(e).replace('_', '-')}") from None
    if executor != "ray":
        return
    if address is not None:
        try:
            probe_address(address)
        except ValueError as e:
            raise ValueError(f"--{e}") from None
    cpus = os.cpu_count() or 1
    if address is None and workers is not None and workers > MAX_WORKERS_PER_CPU * cpus:
        raise ValueError(f"--workers {workers}: a local cluster of more than {MAX_WORKERS_PER_CPU} x the {cpus} CPUs "
                         f"here; lower it (at most {cpus // threads or 1} runs at once fit), or join a cluster with "
                         f"--address")
    if importlib.util.find_spec("ray") is None:
        raise ValueError("--executor ray: Ray is not installed; pip install 'kdbounds[ray]' or use --executor local")
    if address is None and workers is not None and workers * threads > cpus:
        print(f"warning: --workers {workers} x --threads {threads} = {workers * threads} CPUs asked of a machine with "
              f"{cpus}; runs will share CPUs (at most {cpus // threads or 1} at once fit)", file=sys.stderr, flush=True)


def sweep_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :func:`run_sweep` keyword arguments from flags added by :func:`add_sweep_arguments`.

    Args:
        args: the parsed flags (``--lock-timeout``, where the parser has it, is exported to every run lock).

    Returns:
        ``{"executor", "workers", "address", "threads", "max_retries"}``.

    Raises:
        ValueError: an inconsistent combination (e.g. ``--workers 4`` with ``--executor local``),
            checked here so a script fails before loading data or training.
    """
    opts = {"executor": args.executor, "workers": args.workers, "address": args.address,
            "threads": args.threads if args.threads is not None else 1, "max_retries": args.max_retries}
    if getattr(args, "lock_timeout", None) is not None:  # read by every run lock, here and in Ray workers
        from .locking import LOCK_TIMEOUT_ENV

        os.environ[LOCK_TIMEOUT_ENV] = repr(float(args.lock_timeout))
    _check_args(opts["executor"], opts["workers"], opts["address"], opts["threads"], opts["max_retries"], None)
    return opts
