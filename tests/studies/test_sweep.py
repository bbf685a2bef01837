"""Sweep runner: graph checks, local and Ray executors, retries, resuming from ``out_dir``.

Oracles: the toy functions called directly in dependency order (the runner must give exactly their
results); execution counts read from marker files each execution writes (independent of the runner);
the local executor for the Ray executor (identical numbers at equal threads).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sweep_toy as toy
from study_helpers import needs_ray
from kdbounds.runs.sweep import RunSpec, SweepError, run_sweep, spec_fingerprints, topological_order

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def grid(marker_dir: Path, teachers=(0, 1), students=(10, 11)) -> list[RunSpec]:
    """Teachers, then students that each need one teacher (listed students first, to test ordering)."""
    md = str(marker_dir)
    specs = [RunSpec(f"student-t{t}-s{s}", toy.toy_run, {"name": f"student-t{t}-s{s}", "seed": s, "marker_dir": md},
                     deps=(f"teacher-{t}",)) for t in teachers for s in students]
    specs += [RunSpec(f"teacher-{t}", toy.toy_run, {"name": f"teacher-{t}", "seed": t, "marker_dir": md})
              for t in teachers]
    return specs


def direct(specs: list[RunSpec]) -> dict:
    """The oracle: call each function by hand, teachers first."""
    out: dict = {}
    for s in sorted(specs, key=lambda s: len(s.deps)):
        kw = dict(s.kwargs)
        if s.deps:
            kw["deps"] = {d: out[d] for d in s.deps}
        out[s.key] = s.fn(**kw)
    return out


# ------------------------------------------------------------------------------------------ graph checks

def _never(**_):  # a module-level function that must never run
    raise AssertionError("ran")


def test_graph_errors_are_raised_before_anything_runs(tmp_path):
    md = str(tmp_path)
    ok = RunSpec("a", toy.toy_run, {"name": "a", "seed": 0, "marker_dir": md})
    with pytest.raises(ValueError, match="duplicate run keys \\['a'\\]"):
        run_sweep([ok, ok], progress=False)
    with pytest.raises(ValueError, match="'b' depends on 'zz', which is not a run"):
        run_sweep([ok, RunSpec("b", _never, deps=("zz",))], progress=False)
    cyc = [ok, RunSpec("b", _never, deps=("c",)), RunSpec("c", _never, deps=("d",)), RunSpec("d", _never, deps=("b",))]
    with pytest.raises(ValueError, match="cycle: '(b|c|d)' -> .* -> '(b|c|d)'"):
        run_sweep(cyc, progress=False)
    with pytest.raises(ValueError, match="cycle: 'a' -> 'a'"):
        run_sweep([RunSpec("a", _never, deps=("a",))], progress=False)
    with pytest.raises(TypeError, match="lambda or a nested function"):
        run_sweep([ok, RunSpec("l", lambda: 1)], progress=False)
    with pytest.raises(TypeError, match="element 1 is a dict"):
        run_sweep([ok, {"key": "x"}], progress=False)
    with pytest.raises(ValueError, match="'deps' is reserved"):
        RunSpec("s", _never, {"deps": 1}, deps=("a",))
    with pytest.raises(TypeError, match="RunSpec.key"):
        RunSpec("", _never)
    with pytest.raises(ValueError, match="executor: expected one of local, ray"):
        run_sweep([ok], executor="dask", progress=False)
    with pytest.raises(ValueError, match="workers=2: the local executor runs one run at a time"):
        run_sweep([ok], workers=2, progress=False)
    with pytest.raises(ValueError, match="^threads: expected an integer >= 1, got 0; or None"):
        run_sweep([ok], threads=0, progress=False)
    with pytest.raises(ValueError, match="max_retries"):
        run_sweep([ok], max_retries=-1, progress=False)
    assert list(tmp_path.iterdir()) == []  # nothing executed


@st.composite
def dags(draw):
    n = draw(st.integers(1, 12))
    perm = draw(st.permutations(range(n)))  # a hidden order; edges only go forward in it
    deps = {perm[j]: tuple(sorted({perm[i] for i in draw(st.sets(st.integers(0, j - 1), max_size=3))}))
            if j else () for j in range(n)}
    return [RunSpec(f"r{k}", _never, deps=tuple(f"r{d}" for d in deps[k])) for k in range(n)]


@settings(max_examples=60)
@given(dags())
def test_topological_order_puts_dependencies_first_and_keeps_list_order(specs):
    order = topological_order(specs)
    assert sorted(s.key for s in order) == sorted(s.key for s in specs)
    seen: set[str] = set()
    for s in order:
        assert set(s.deps) <= seen
        seen.add(s.key)
    assert [s.key for s in topological_order(order)] == [s.key for s in order]  # already ordered: unchanged


# ------------------------------------------------------------------------------------------ local

def test_local_gives_the_direct_results_with_dependencies_passed_in(tmp_path):
    specs = grid(tmp_path / "m")
    (tmp_path / "m").mkdir()
    out = run_sweep(specs, progress=False)
    assert list(out) == [s.key for s in specs]  # same order as the specs
    ref_dir = tmp_path / "ref"
    ref_dir.mkdir()
    ref = direct(grid(ref_dir))
    assert out == ref
    assert out["student-t1-s10"]["deps"] == ["teacher-1"]
    for s in specs:
        assert toy.count(tmp_path / "m", s.kwargs["name"], "start") == 1
    assert all(r.get("threads") == 1 for r in out.values())


def test_local_failure_is_a_sweep_error_with_the_finished_runs(tmp_path):
    md = str(tmp_path)
    specs = [RunSpec("a", toy.toy_run, {"name": "a", "seed": 0, "marker_dir": md}),
             RunSpec("bad", toy.toy_fail, {"name": "bad", "marker_dir": md}, deps=("a",)),
             RunSpec("c", toy.toy_run, {"name": "c", "seed": 1, "marker_dir": md})]
    with pytest.raises(SweepError, match="1 of 3 runs failed \\('bad'\\).*ValueError: bad failed on purpose") as ei:
        run_sweep(specs, progress=False)
    assert set(ei.value.results) == {"a"} and ei.value.skipped == ["c"]
    assert isinstance(ei.value.failures["bad"], ValueError)


def test_threads_are_set_for_each_run_and_restored(tmp_path):
    import torch

    torch.set_num_threads(1)
    out = run_sweep([RunSpec("a", toy.toy_run, {"name": "a", "seed": 0, "marker_dir": str(tmp_path)})],
                    threads=2, progress=False)
    assert out["a"]["threads"] == 2
    assert torch.get_num_threads() == 1


def test_progress_without_a_terminal_is_one_line_per_run(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("KDBOUNDS_PROGRESS", raising=False)
    (tmp_path / "m").mkdir()
    run_sweep(grid(tmp_path / "m"), desc="toy", progress=True)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "\r" not in err
    assert len(lines) == 6
    assert lines[-1].startswith("toy: 6/6 runs (100%)")
    assert all(line.startswith(f"toy: {i}/6 runs") for i, line in enumerate(lines, 1))


# ------------------------------------------------------------------------------------------ resuming

def interruptible_grid(marker_dir: Path, stop_file: Path) -> list[RunSpec]:
    md, sf = str(marker_dir), str(stop_file)
    specs = [RunSpec(f"teacher-{t}", toy.toy_run, {"name": f"teacher-{t}", "seed": t, "marker_dir": md})
             for t in (0, 1)]
    specs.insert(1, RunSpec("student-t0", toy.toy_interruptible, {"name": "student-t0", "seed": 5,
                                                                  "marker_dir": md, "stop_file": sf},
                            deps=("teacher-0",)))
    specs.append(RunSpec("student-t1", toy.toy_run, {"name": "student-t1", "seed": 6, "marker_dir": md},
                         deps=("teacher-1",)))
    return specs


def test_interrupted_sweep_restarted_executes_nothing_twice(tmp_path):
    md, out_dir, stop = tmp_path / "m", tmp_path / "out", tmp_path / "STOP"
    md.mkdir()
    stop.touch()
    specs = interruptible_grid(md, stop)
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C during the second run
        run_sweep(specs, out_dir=out_dir, progress=False)
    assert toy.count(md, "teacher-0") == 1 and toy.count(md, "teacher-1", "start") == 0
    stop.unlink()
    out = run_sweep(specs, out_dir=out_dir, progress=False)
    for name in ("teacher-0", "teacher-1", "student-t1"):
        assert toy.count(md, name, "start") == 1, name  # finished runs were not executed again
    assert toy.count(md, "student-t0", "start") == 2 and toy.count(md, "student-t0") == 1
    ref_md = tmp_path / "ref"
    ref_md.mkdir()
    assert out == run_sweep(interruptible_grid(ref_md, tmp_path / "no-stop"), progress=False)
    # a third start executes nothing and returns the same results
    assert run_sweep(specs, out_dir=out_dir, progress=False) == out
    assert len(list(md.glob("*.start.*"))) == 5


def test_changed_spec_reexecutes_that_run_and_its_dependents_only(tmp_path):
    md, out_dir = tmp_path / "m", tmp_path / "out"
    md.mkdir()
    specs = grid(md)
    first = run_sweep(specs, out_dir=out_dir, progress=False)
    changed = [RunSpec(s.key, s.fn, {**s.kwargs, "seed": 7}, s.deps) if s.key == "teacher-0" else s for s in specs]
    second = run_sweep(changed, out_dir=out_dir, progress=False)
    assert toy.count(md, "teacher-0") == 2 and toy.count(md, "student-t0-s10") == 2
    assert toy.count(md, "teacher-1") == 1 and toy.count(md, "student-t1-s11") == 1
    assert second["teacher-1"] == first["teacher-1"] and second["teacher-0"] != first["teacher-0"]


def test_on_result_reports_every_run_once_dependencies_first_also_when_published(tmp_path):
    md, out_dir = tmp_path / "m", tmp_path / "out"
    md.mkdir()
    specs = grid(md)
    for attempt in range(2):  # computed, then restored from out_dir
        seen: list[tuple[str, object]] = []
        out = run_sweep(specs, out_dir=out_dir, progress=False, on_result=lambda k, r: seen.append((k, r)))
        assert sorted(k for k, _ in seen) == sorted(s.key for s in specs), attempt
        assert dict(seen) == out
        at = {k: i for i, (k, _) in enumerate(seen)}
        assert all(at[d] < at[s.key] for s in specs for d in s.deps), seen


def test_progress_flag_does_not_change_fingerprints_but_a_real_argument_does():
    def spec(**kw):
        return [RunSpec("r", toy.toy_run, {"name": "r", "seed": 1, "marker_dir": "m", **kw})]

    fp = spec_fingerprints(spec(progress=True))["r"]
    assert spec_fingerprints(spec(progress=False))["r"] == fp
    assert spec_fingerprints(spec())["r"] == fp
    assert spec_fingerprints(spec(progress=True, seed=2))["r"] != fp


_CONCURRENT = """
import sys
sys.path[:0] = [{root!r}, {here!r}]
import sweep_toy as toy
from kdbounds.runs.sweep import RunSpec, run_sweep
md = {md!r}
specs = [RunSpec(f"r{{i}}", toy.toy_run, {{"name": f"r{{i}}", "seed": i, "marker_dir": md}}) for i in range(6)]
out = run_sweep(specs, out_dir={out!r}, progress=False)
print(sorted(v["value"] for v in out.values()))
"""


def test_two_processes_sharing_out_dir_execute_each_run_once(tmp_path):
    md, out_dir = tmp_path / "m", tmp_path / "out"
    md.mkdir()
    code = _CONCURRENT.format(root=str(ROOT), here=str(HERE), md=str(md), out=str(out_dir))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert outs[0][0] == outs[1][0]  # both processes return every result
    for i in range(6):
        assert toy.count(md, f"r{i}", "start") == 1


# ------------------------------------------------------------------------------------------ Ray

# ray_cluster: tests/studies/conftest.py (one cluster per pytest worker)


@needs_ray
@pytest.mark.xdist_group("ray")
def test_ray_gives_the_same_numbers_as_local(tmp_path, ray_cluster):
    (tmp_path / "l").mkdir()
    (tmp_path / "r").mkdir()
    local = run_sweep(grid(tmp_path / "l"), executor="local", threads=1, progress=False)
    seen: list[str] = []
    remote = run_sweep(grid(tmp_path / "r"), executor="ray", workers=2, threads=1, progress=False,
                       on_result=lambda k, r: seen.append(k))
    assert remote == local  # exact equality of every float
    assert sorted(seen) == sorted(local)  # reported once each, in the driver, as they came in
    assert list(remote) == list(local)
    for s in grid(tmp_path / "r"):
        assert toy.count(tmp_path / "r", s.kwargs["name"], "start") == 1


@needs_ray
@pytest.mark.xdist_group("ray")
def test_ray_worker_killed_mid_run_is_retried_once_and_nothing_is_lost(tmp_path, ray_cluster):
    md, pid_file = tmp_path / "m", tmp_path / "victim.pid"
    md.mkdir()
    specs = grid(md, teachers=(0,), students=(10,))
    specs.append(RunSpec("victim", toy.toy_killable, {"name": "victim", "seed": 3, "marker_dir": str(md),
                                                      "pid_file": str(pid_file)}, deps=("teacher-0",)))
    specs.append(RunSpec("after-victim", toy.toy_run, {"name": "after-victim", "seed": 4, "marker_dir": str(md)},
                         deps=("victim",)))
    killed: list[int] = []

    def killer():
        deadline = time.monotonic() + 90
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid_file.exists():
            pid = int(pid_file.read_text())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    th = threading.Thread(target=killer, daemon=True)
    th.start()
    out = run_sweep(specs, executor="ray", workers=2, threads=1, max_retries=2, progress=False,
                    out_dir=tmp_path / "out")
    th.join(5)
    assert killed, "the victim never started"
    assert set(out) == {s.key for s in specs}
    assert toy.count(md, "victim", "start") == 2  # killed once, retried once
    for s in specs:
        assert toy.count(md, s.kwargs["name"]) == 1, s.key  # every run completed exactly once
    assert out["after-victim"]["deps"] == ["victim"]


@needs_ray
@pytest.mark.xdist_group("ray")
def test_ray_without_retries_reports_the_dead_worker(tmp_path, ray_cluster):
    md, pid_file = tmp_path / "m", tmp_path / "victim.pid"
    md.mkdir()
    specs = [RunSpec("victim", toy.toy_killable, {"name": "victim", "seed": 3, "marker_dir": str(md),
                                                  "pid_file": str(pid_file)})]

    def killer():
        deadline = time.monotonic() + 90
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(int(pid_file.read_text()), signal.SIGKILL)

    th = threading.Thread(target=killer, daemon=True)
    th.start()
    with pytest.raises(SweepError, match="1 of 1 runs failed \\('victim'\\)"):
        run_sweep(specs, executor="ray", max_retries=0, progress=False)
    th.join(5)
    assert toy.count(md, "victim", "start") == 1


@needs_ray
@pytest.mark.xdist_group("ray")
def test_ray_failure_is_not_retried_and_resume_reuses_local_results(tmp_path, ray_cluster):
    md, out_dir = tmp_path / "m", tmp_path / "out"
    md.mkdir()
    specs = grid(md)
    local = run_sweep(specs, out_dir=out_dir, progress=False)
    again = run_sweep(specs, executor="ray", out_dir=out_dir, progress=False)  # everything published: no task
    assert again == local
    assert len(list(md.glob("*.start.*"))) == len(specs)
    bad = [RunSpec("bad", toy.toy_fail, {"name": "bad", "marker_dir": str(md)})]
    with pytest.raises(SweepError, match="ValueError.*bad failed on purpose"):
        run_sweep(bad, executor="ray", max_retries=2, progress=False)
    assert toy.count(md, "bad", "start") == 1  # an exception of the run itself is not retried


def test_keys_that_are_not_file_names_get_distinct_folders_and_a_corrupt_result_is_named(tmp_path):
    md, out_dir = tmp_path / "m", tmp_path / "out"
    md.mkdir()
    keys = ["teacher/seed=0", "teacher seed=0", "teacher_seed=0", "../escape", "a" * 300]
    specs = [RunSpec(k, toy.toy_run, {"name": f"r{i}", "seed": i, "marker_dir": str(md)}) for i, k in enumerate(keys)]
    out = run_sweep(specs, out_dir=out_dir, progress=False)
    folders = sorted(p for p in out_dir.iterdir() if p.is_dir())
    assert len(folders) == len(keys)
    assert all(p.parent == out_dir for p in folders)  # nothing escaped out_dir
    assert all((p / "result.pkl").is_file() for p in folders)
    assert run_sweep(specs, out_dir=out_dir, progress=False) == out
    assert len(list(md.glob("*.start.*"))) == len(keys)  # second sweep executed nothing
    (out_dir / "teacher_seed=0" / "result.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="teacher_seed=0/result.pkl: cannot load the stored result of run "
                                         "'teacher_seed=0'.*delete that folder"):
        run_sweep(specs, out_dir=out_dir, progress=False)


def test_cli_flags_map_to_run_sweep_arguments(tmp_path):
    import argparse

    from kdbounds.runs.sweep import add_sweep_arguments, sweep_options

    p = argparse.ArgumentParser()
    add_sweep_arguments(p)
    assert sweep_options(p.parse_args([])) == {"executor": "local", "workers": None, "address": None,
                                               "threads": 1, "max_retries": 2}
    opts = sweep_options(p.parse_args(["--executor", "ray", "--workers", "2", "--threads", "3",
                                       "--address", "auto", "--max-retries", "0"]))
    assert opts == {"executor": "ray", "workers": 2, "address": "auto", "threads": 3, "max_retries": 0}
    with pytest.raises(SystemExit):  # refused at parse time (issue 26) ...
        p.parse_args(["--workers", "4"])
    bad = argparse.Namespace(executor="local", workers=4, address=None, threads=None, max_retries=2)
    with pytest.raises(ValueError, match="workers=4: the local executor runs one run at a time"):
        sweep_options(bad)  # ... and by sweep_options for a namespace built by hand
    with pytest.raises(SystemExit):
        p.parse_args(["--threads", "0"])
    (tmp_path / "m").mkdir()
    specs = grid(tmp_path / "m", teachers=(0,), students=(1,))
    assert run_sweep(specs, progress=False, **sweep_options(p.parse_args(["--threads", "1"]))) == direct(
        grid(tmp_path / "m", teachers=(0,), students=(1,)))


def test_ray_executor_without_ray_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail as if not installed
    specs = [RunSpec("a", toy.toy_run, {"name": "a", "seed": 0, "marker_dir": str(tmp_path)})]
    with pytest.raises(ImportError, match="pip install 'kdbounds\\[ray\\]'.*executor='local'"):
        run_sweep(specs, executor="ray", progress=False)
    assert list(tmp_path.iterdir()) == []
