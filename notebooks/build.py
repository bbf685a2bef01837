"""Build the notebooks: convert each jupytext source ``notebooks/NN_*.py`` to ``.ipynb`` and execute it
top to bottom with nbclient, saving the outputs.

The ``.py`` files (jupytext percent format) are the source; the committed ``.ipynb`` files are
generated from them by this script in full mode and carry the outputs of that run.

    python notebooks/build.py                      # full mode, every notebook, writes notebooks/NN_*.ipynb
    python notebooks/build.py 01_linear_gaussian_tightness   # one notebook (name, stem or path)
    python notebooks/build.py --smoke              # smoke mode (KDBOUNDS_NOTEBOOK_SMOKE=1), writes build/notebooks-smoke/
    python notebooks/build.py --check              # only check that every .ipynb is in sync with its .py

The kernel is always the interpreter running this script (``sys.executable`` with ipykernel), never a
``python3`` kernelspec installed elsewhere; the checkout's root is put first on the kernel's
``PYTHONPATH`` so the notebooks run against the code they sit next to. Each notebook runs with its own
folder (or ``--workdir``) as working directory, so its relative paths resolve the same way as in Jupyter.
The test suite (``tests/notebooks/test_notebooks.py``) uses the same functions in smoke mode.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

NOTEBOOK_DIR = Path(__file__).resolve().parent
REPO_ROOT = NOTEBOOK_DIR.parent
SMOKE_ENV = "KDBOUNDS_NOTEBOOK_SMOKE"
SOURCE_GLOB = "[0-9][0-9]_*.py"
JUPYTEXT_FORMAT = "py:percent"
KERNEL_NAME = "python3"
STARTUP_TIMEOUT = 60  # seconds for the kernel to start and answer

__all__ = [
    "ExecutionReport",
    "SyncProblem",
    "command_for",
    "execute_notebook",
    "find_sources",
    "kernel_argv",
    "read_source",
    "sync_problems",
]


@dataclass(frozen=True)
class ExecutionReport:
    """What one execution did: source, output file, mode, number of code cells, wall seconds."""

    source: str
    output: str | None
    smoke: bool
    code_cells: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SyncProblem:
    """One reason why a committed ``.ipynb`` does not match its ``.py`` source."""

    notebook: str
    problem: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def find_sources(names: Sequence[str] = (), notebook_dir: Path = NOTEBOOK_DIR) -> list[Path]:
    """The notebook sources ``NN_*.py`` in ``notebook_dir`` (all, or those named).

    Args:
        names: notebook names, stems (``01_linear_gaussian_tightness``), their number (``01``),
            ``.py``/``.ipynb`` file names or paths; empty selects every source.
        notebook_dir: folder holding the sources.

    Returns:
        Sorted list of source paths.

    Raises:
        ValueError: a name that matches no source (the message lists the available ones).
    """
    available = sorted(p for p in Path(notebook_dir).glob(SOURCE_GLOB) if p.is_file())
    if not names:
        return available
    by_stem = {p.stem: p for p in available}
    picked: list[Path] = []
    for name in names:
        stem = Path(name).stem
        prefixed = [s for s in by_stem if s.startswith(f"{stem}_")]
        if stem not in by_stem and len(prefixed) == 1:  # "01" -> "01_linear_gaussian_tightness"
            stem = prefixed[0]
        if stem not in by_stem:
            raise ValueError(
                f"notebook {name!r} not found in {notebook_dir}; available: {sorted(by_stem)}"
            )
        if by_stem[stem] not in picked:
            picked.append(by_stem[stem])
    return picked


def command_for(source: Path, smoke: bool = False) -> str:
    """The command that builds ``source`` (written at the top of each notebook)."""
    return f"python notebooks/build.py {'--smoke ' if smoke else ''}{Path(source).stem}"


def read_source(source: Path) -> Any:
    """Read a jupytext percent source into an ``nbformat`` notebook (no outputs).

    Raises:
        FileNotFoundError: ``source`` does not exist.
    """
    import jupytext

    source = Path(source)
    if not source.is_file():
        raise FileNotFoundError(f"notebook source {source} not found")
    nb = jupytext.reads(source.read_text(encoding="utf-8"), fmt=JUPYTEXT_FORMAT)
    for i, cell in enumerate(nb.cells):  # stable ids (position + content): rebuilds do not churn the diff
        cell.id = f"c{i:03d}-{hashlib.sha256(cell.source.encode()).hexdigest()[:8]}"
    nb.metadata["jupytext"] = {"formats": "ipynb,py:percent", "notebook_metadata_filter": "kdbounds"}
    nb.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "Python 3 (ipykernel)", "language": "python"}
    return nb


def kernel_argv() -> list[str]:
    """The command line of the kernel nbclient will start: the running interpreter's ipykernel."""
    return list(_kernel_spec_manager().get_kernel_spec(KERNEL_NAME).argv)


def _kernel_spec_manager() -> Any:
    # kernel_dirs=[]: ignore kernelspecs installed on the machine (one named python3 may point at
    # another interpreter); jupyter_client then falls back to ipykernel's spec for sys.executable.
    from jupyter_client.kernelspec import KernelSpecManager

    return KernelSpecManager(kernel_dirs=[])


def _kernel_manager(socket_dir: Path) -> Any:
    """A kernel manager whose sockets live in ``socket_dir``, a folder of this kernel's own.

    Over TCP (jupyter_client's default) the client picks five free ports, closes them, and the kernel binds
    them later: another process binding one of them in between kills the kernel at start ("Address already
    in use", seen in CI beside the Ray tests on the other xdist worker). Unix-domain sockets in a fresh
    folder cannot collide. Windows has no such sockets and keeps TCP.
    """
    from jupyter_client.manager import KernelManager

    if os.name == "nt":
        return KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=_kernel_spec_manager())
    return KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=_kernel_spec_manager(), transport="ipc",
                         connection_file=str(socket_dir / "kernel.json"), ip=str(socket_dir / "k"))


def _kernel_env(smoke: bool, extra_env: dict[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # ipykernel selects the inline backend (headless, figures as PNG outputs)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    if smoke:
        env[SMOKE_ENV] = "1"
    else:
        env.pop(SMOKE_ENV, None)
    env.setdefault("OMP_NUM_THREADS", "1")
    if extra_env:
        env.update(extra_env)
    return env


def execute_notebook(
    source: Path,
    output: Path | None,
    *,
    smoke: bool,
    workdir: Path | None = None,
    timeout: int = 1800,
    extra_env: dict[str, str] | None = None,
) -> ExecutionReport:
    """Convert ``source`` to a notebook, execute every cell in order and (optionally) save it.

    Args:
        source: jupytext percent ``.py`` source.
        output: where to write the executed ``.ipynb`` (``None``: do not write).
        smoke: set ``KDBOUNDS_NOTEBOOK_SMOKE=1`` in the kernel (the notebooks' smoke switch).
        workdir: the kernel's working directory (default: the source's folder, as in Jupyter).
        timeout: per-cell timeout in seconds.
        extra_env: extra environment variables for the kernel.

    Returns:
        An :class:`ExecutionReport`.

    Raises:
        nbclient.exceptions.CellExecutionError: a cell raised (the message names the cell and error).
        ValueError: ``timeout`` is not a positive int.
    """
    import nbformat
    from nbclient import NotebookClient

    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout <= 0:
        raise ValueError(f"timeout: expected a positive int (seconds), got {timeout!r}")
    if workdir is not None and not Path(workdir).is_dir():
        raise ValueError(f"workdir: {os.fspath(workdir)!r} is not an existing folder; create it or drop --workdir")
    source = Path(source)
    nb = read_source(source)
    nb.metadata["kdbounds"] = {
        **dict(nb.metadata.get("kdbounds", {})),
        "mode": "smoke" if smoke else "full",
        "command": command_for(source, smoke),
        "source": source.name,
    }
    cwd = Path(workdir) if workdir is not None else source.parent
    t0 = time.perf_counter()
    # sockets in a short folder (a socket path holds ~100 bytes at most), removed whatever happens
    with tempfile.TemporaryDirectory(prefix="kdb-kernel-", ignore_cleanup_errors=True) as socket_dir:
        km = _kernel_manager(Path(socket_dir))
        client = NotebookClient(nb, km=km, timeout=timeout, kernel_name=KERNEL_NAME, allow_errors=False,
                                resources={"metadata": {"path": str(cwd)}}, record_timing=False,
                                startup_timeout=STARTUP_TIMEOUT)
        try:
            client.execute(env=_kernel_env(smoke, extra_env), cwd=str(cwd))
        finally:
            if km.has_kernel:  # a kernel left running would keep this process alive
                km.shutdown_kernel(now=True)
    seconds = time.perf_counter() - t0
    if output is not None:
        output = Path(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = output.with_name(output.name + ".tmp")
        nbformat.write(nb, str(tmp))
        os.replace(tmp, output)
    n_code = sum(c.cell_type == "code" for c in nb.cells)
    return ExecutionReport(str(source), None if output is None else str(output), smoke, n_code, seconds)


def sync_problems(source: Path, notebook: Path | None = None) -> list[SyncProblem]:
    """Why the committed ``.ipynb`` of ``source`` is not a full-mode build of it (empty: in sync).

    Checks: the ``.ipynb`` exists; same cells (type and source, in order) as the ``.py``; it was
    built in full mode; every code cell was executed, in order (execution counts 1, 2, ...); no
    cell output is an error; the notebook has at least one output.
    """
    import nbformat

    source = Path(source)
    notebook = Path(notebook) if notebook is not None else source.with_suffix(".ipynb")
    name = notebook.name
    if not notebook.is_file():
        return [SyncProblem(name, f"missing: run `{command_for(source)}`")]
    want = read_source(source)
    got = nbformat.read(str(notebook), as_version=4)
    problems: list[SyncProblem] = []
    w = [(c.cell_type, c.source) for c in want.cells]
    g = [(c.cell_type, c.source) for c in got.cells]
    if w != g:
        first = next((i for i, (a, b) in enumerate(zip(w, g)) if a != b), min(len(w), len(g)))
        problems.append(SyncProblem(name, f"cells differ from {source.name} (first difference at cell {first}; "
                                          f"{len(w)} vs {len(g)} cells): run `{command_for(source)}`"))
    mode = got.metadata.get("kdbounds", {}).get("mode")
    if mode != "full":
        problems.append(SyncProblem(name, f"built in mode {mode!r}, expected 'full': run `{command_for(source)}`"))
    counts = [c.get("execution_count") for c in got.cells if c.cell_type == "code"]
    if counts != list(range(1, len(counts) + 1)):
        problems.append(SyncProblem(name, f"code cells not executed top to bottom in one run (execution counts {counts})"))
    outputs = [o for c in got.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    if not outputs:
        problems.append(SyncProblem(name, "no outputs saved"))
    errors = [o for o in outputs if o.get("output_type") == "error"]
    if errors:
        problems.append(SyncProblem(name, f"{len(errors)} error output(s) saved"))
    return problems


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return v


def _writable_folder(text: str) -> Path:
    """An output folder that can be created and written (checked before any notebook runs)."""
    p = Path(text).expanduser()
    try:
        p.mkdir(parents=True, exist_ok=True)
        probe = p / f".build-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise argparse.ArgumentTypeError(f"cannot write into {text!r} ({e.strerror or e}); choose another folder")
    return p


def _existing_folder(text: str) -> Path:
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is not an existing folder; create it first")
    return Path(text)


def _end(message: str, status: int) -> None:
    """Print one line and leave at once: after a failed kernel start, jupyter_client's threads can keep
    the interpreter from exiting (and ignore SIGTERM), so the exit does not wait for them."""
    print(message, file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(status)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="notebooks to build (default: all NN_*.py in notebooks/)")
    ap.add_argument("--smoke", action="store_true", help=f"smoke mode ({SMOKE_ENV}=1); never overwrites the committed notebooks")
    ap.add_argument("--out", type=_writable_folder, default=None,
                    help="output folder (default: notebooks/ in full mode, build/notebooks-smoke in smoke mode)")
    ap.add_argument("--workdir", type=_existing_folder, default=None,
                    help="kernel working directory (default: the notebook's folder)")
    ap.add_argument("--timeout", type=_positive_int, default=1800, help="per-cell timeout in seconds (default 1800)")
    ap.add_argument("--check", action="store_true", help="only check that each .ipynb is in sync with its .py source")
    args = ap.parse_args(argv)
    try:
        sources = find_sources(args.names)
    except ValueError as exc:
        ap.error(str(exc))
    if not sources:
        ap.error(f"no notebook sources {SOURCE_GLOB} in {NOTEBOOK_DIR}")
    if args.check:
        problems = [p for s in sources for p in sync_problems(s)]
        for p in problems:
            print(f"{p.notebook}: {p.problem}")
        print(f"{len(sources)} notebook(s) checked, {len(problems)} problem(s)")
        return 1 if problems else 0
    out_dir = args.out or (REPO_ROOT / "build" / "notebooks-smoke" if args.smoke else NOTEBOOK_DIR)
    src = None
    try:
        print(f"kernel: {' '.join(kernel_argv())}", flush=True)
        for src in sources:
            print(f"executing {src.name} ({'smoke' if args.smoke else 'full'} mode) ...", flush=True)
            rep = execute_notebook(src, out_dir / f"{src.stem}.ipynb", smoke=args.smoke, workdir=args.workdir,
                                   timeout=args.timeout)
            print(f"  {rep.code_cells} code cells in {rep.seconds:.1f} s -> {rep.output}", flush=True)
    except KeyboardInterrupt:
        _end("interrupted; nothing half-written was saved (each notebook is written atomically)", 130)
    except Exception as e:  # one line, never a traceback, never a hang
        where = f" {src.name}" if src is not None else ""
        text = str(e).strip()  # a failing cell's error names the cell: kept whole; anything else: its first line
        first = text if type(e).__name__ == "CellExecutionError" else (text.splitlines() or [""])[0]
        _end(f"error building{where}: {type(e).__name__}: {first}", 1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
