"""Run cache (orchestration): one folder per distinct training configuration.

``train_cached(cfg, cache_root, ...)`` trains into ``cache_root/<method>-<arch>-<id>/`` where
``id`` = the first 12 hex digits of SHA-256 over the canonical JSON of

* the config (:meth:`TrainConfig.to_dict`) with the method's hyper-parameters completed by their
  defaults (so ``{}`` and ``{"T": 4.0}`` for KD are the same run) and the teacher path dropped,
* the SHA-256 of the teacher checkpoint file's bytes (a retrained teacher at the same path is a
  different run; a copied teacher at another path is the same run),
* a fingerprint of preloaded ``data`` arrays when given (SHA-256 of their bytes),
* a fingerprint of the training code (:func:`code_fingerprint`: SHA-256 over the code of the source files
  of ``kdbounds.data``, ``kdbounds.models`` and ``kdbounds.distill`` — their syntax trees without
  docstrings, :func:`code_meaning` —), so a bug fix in the trainer or a method never silently reuses a
  model trained by the old code, while a docstring, comment or layout edit retrains nothing.

A finished run (``result.json`` with all epochs) is returned without training; an unfinished one is
resumed from its checkpoint; ``run.json`` records the id and its ingredients, and, once the run is
finished, the SHA-256 of its ``model.pt`` and ``checkpoint.pt`` (``sha256``).

**Relocatable.** The cache is a folder, not a set of absolute paths: the paths a trainer wrote into
``result.json`` are read back relative to the folder the file is found in (:func:`load_cached`), a
student names its teacher by the teacher run's result (so by the folder it is found in now) and its
run id by the teacher's bytes, and a partial student resumes after a move. Moving, renaming or
copying a cache therefore retrains nothing, and a copy never reads the original's files.

**Verified reuse.** A finished run whose ``model.pt`` or ``checkpoint.pt`` does not match the recorded
``sha256`` (truncated, overwritten, missing) is never returned: :func:`load_cached` reports it
unfinished, and :func:`train_cached` names the file on stderr, drops it and rebuilds the model from the
run's checkpoint (or retrains when the checkpoint is the damaged one or gone). Runs finished before the
seal existed are accepted unverified. A ``pbb``/``pbkd`` prior pinned by ``prior_sha256`` enters the
run id by its bytes, not its path (runs cached under the earlier, path-based id are still found).
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from .._io import arrays_sha256, atomic_write_json, file_sha256, json_sha256, read_json
from ..distill.config import TrainConfig
from ..distill.methods import coerce_hparams, get_method
from ..distill.trainer import CHECKPOINT, MODEL, RESULT, EpochInfo, TrainResult, train
from .cache_layout import resolve_cache_root  # the one default layout (re-exported: studies import it from here)

#: the run's record of its id, the id's ingredients and (once finished) its model's SHA-256
RUN_META = "run.json"

__all__ = ["RUN_META", "resolve_cache_root", "code_fingerprint", "code_meaning", "data_fingerprint", "run_dir",
           "run_id", "run_key", "train_cached", "load_cached", "run_damage"]


def data_fingerprint(data: Sequence[Any]) -> str:
    """SHA-256 (hex) over the dtype, shape and bytes of each array in ``data``.

    Args:
        data: arrays or tensors (e.g. ``(train_x, train_y, test_x, test_y)``).

    Returns:
        64 hex digits (:func:`kdbounds._io.arrays_sha256`).
    """
    return arrays_sha256(data)


_CODE_PACKAGES = ("data", "models", "distill")
_MEANING: dict[bytes, bytes] = {}  # SHA-256 of a file's bytes -> digest of its code's meaning (parsed once)


def _canonical(node: Any) -> str:
    """A Python-version-stable text of an AST: node types and fields, no positions, empty fields left out."""
    if isinstance(node, ast.AST):
        fields = ((k, getattr(node, k, None)) for k in node._fields)
        return type(node).__name__ + "(" + ",".join(f"{k}={_canonical(v)}" for k, v in fields
                                                     if v is not None and v != []) + ")"
    if isinstance(node, list):
        return "[" + ",".join(_canonical(v) for v in node) + "]"
    return repr(node)


def _is_bare_string(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def code_meaning(source: bytes | str, filename: str = "<source>") -> str:
    """The text of a Python source's code with its documentation left out: what :func:`code_fingerprint` hashes.

    The source is parsed (comments and layout are not in the syntax tree) and every statement that is a bare
    string — module, class and function docstrings, attribute docstrings — is removed (a body left empty
    becomes ``pass``, which does the same); the tree is then written out with node types and fields only
    (no line numbers, no empty fields, so the text does not depend on the Python version's optional fields).

    Args:
        source: the file's bytes or text.
        filename: named in a syntax error.

    Returns:
        The canonical text; equal for two sources that differ only in comments, docstrings or layout.

    Raises:
        SyntaxError: ``source`` is not Python.
    """
    tree = ast.parse(source, filename=filename)
    for node in ast.walk(tree):
        for name in ("body", "orelse", "finalbody"):
            body = getattr(node, name, None)
            if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
                kept = [b for b in body if not _is_bare_string(b)]
                setattr(node, name, kept or ([ast.Pass()] if name == "body" else []))
    return _canonical(tree)


def code_fingerprint(packages: Sequence[str] = _CODE_PACKAGES, root: str | os.PathLike | None = None) -> str:
    """SHA-256 (hex) over the relative paths and the code (:func:`code_meaning`) of the ``.py`` files of
    ``packages``, in sorted order: a docstring, comment or layout edit keeps it, a code edit changes it.

    Args:
        packages: folders of ``root``; default the ones that train models (``data``, ``models``,
            ``distill``); ``(".",)``: the whole package.
        root: the package folder (default: the installed ``kdbounds`` package; a copy in tests).

    Returns:
        64 hex digits.

    Raises:
        SyntaxError: a file that is not Python (named).
    """
    base = Path(root) if root is not None else Path(__file__).resolve().parents[1]  # the kdbounds package
    h = hashlib.sha256()
    for pkg in packages:
        for f in sorted((base / pkg).rglob("*.py")):
            data = f.read_bytes()
            key = hashlib.sha256(data).digest()
            if key not in _MEANING:
                _MEANING[key] = hashlib.sha256(code_meaning(data, str(f)).encode()).digest()
            h.update(f.relative_to(base).as_posix().encode())
            h.update(_MEANING[key])
    return h.hexdigest()


def _with_teacher(cfg: TrainConfig, teacher_ckpt: str | os.PathLike | None) -> TrainConfig:
    if teacher_ckpt is None:
        return cfg
    t = str(teacher_ckpt)
    if cfg.teacher_ckpt is not None and Path(cfg.teacher_ckpt).resolve() != Path(t).resolve():
        raise ValueError(f"teacher_ckpt={t!r} differs from cfg.teacher_ckpt={cfg.teacher_ckpt!r}; give one")
    return cfg.replace(teacher_ckpt=t)


def run_key(cfg: TrainConfig, teacher_ckpt: str | os.PathLike | None = None,
            data: Sequence[Any] | None = None, _prior_path: bool = False) -> dict[str, Any]:
    """The dict whose canonical JSON is hashed into the run id (see module docstring).

    Args:
        cfg: the run's config.
        teacher_ckpt: the teacher checkpoint (or ``cfg.teacher_ckpt``); its bytes are hashed.
        data: optional preloaded arrays, fingerprinted.
        _prior_path: keep the path of a ``pbb``/``pbkd`` prior pinned by ``prior_sha256`` (the ids of
            runs cached before the cache was relocatable; internal).

    Returns:
        ``{"config", "teacher_sha256", "data", "code"}`` (a prior pinned by its SHA-256 enters by its
        bytes, not its path).

    Raises:
        FileNotFoundError: the teacher checkpoint does not exist.
        ValueError: ``teacher_ckpt`` differs from ``cfg.teacher_ckpt``.
    """
    cfg = _with_teacher(cfg, teacher_ckpt)
    d = cfg.to_dict()
    d["method_kwargs"] = coerce_hparams(cfg.method, get_method(cfg.method).defaults, cfg.method_kwargs)
    mk = d["method_kwargs"]
    if not _prior_path and mk.get("prior") and mk.get("prior_sha256"):  # pinned: its bytes are the identity
        d["method_kwargs"] = {**mk, "prior": ""}
    t = d.pop("teacher_ckpt")
    key: dict[str, Any] = {"config": d, "teacher_sha256": None, "data": None, "code": code_fingerprint()}
    if t is not None:
        if not Path(t).is_file():
            raise FileNotFoundError(f"teacher checkpoint {t!r} does not exist")
        key["teacher_sha256"] = file_sha256(t)
    if data is not None:
        key["data"] = data_fingerprint(data)
    init = d.pop("init_ckpt", None)
    if init is not None:  # a student started from a model file: its bytes, not its path, are the identity
        if not Path(init).is_file():
            raise FileNotFoundError(f"init checkpoint {init!r} does not exist")
        key["init_sha256"] = file_sha256(init)
    return key


def run_id(cfg: TrainConfig, teacher_ckpt: str | os.PathLike | None = None,
           data: Sequence[Any] | None = None, _key: dict[str, Any] | None = None) -> str:
    """12-hex-digit id of the run: the start of the SHA-256 of :func:`run_key`'s canonical JSON
    (:func:`kdbounds._io.json_sha256`; ids pinned by ``tests/runs/test_run_ids_pinned.py``).

    Args:
        cfg, teacher_ckpt, data: as for :func:`run_key`.
        _key: a precomputed :func:`run_key` (internal).

    Returns:
        12 hex digits.
    """
    key = _key if _key is not None else run_key(cfg, teacher_ckpt, data)
    return json_sha256(key)[:12]


def run_dir(cfg: TrainConfig, cache_root: str | os.PathLike, teacher_ckpt: str | os.PathLike | None = None,
            data: Sequence[Any] | None = None) -> Path:
    """The run's folder ``cache_root/<method>-<arch>-<id>``.

    Args:
        cfg, teacher_ckpt, data: as for :func:`run_key`.
        cache_root: the cache folder.

    Returns:
        The folder (not created).
    """
    return Path(cache_root) / f"{cfg.method}-{cfg.arch}-{run_id(cfg, teacher_ckpt, data)}"


def _rebased(result: TrainResult, folder: Path) -> TrainResult:
    """``result`` with every path the trainer wrote under its ``out_dir`` moved under ``folder``."""
    old = Path(result.paths.get("out_dir", folder))

    def move(value: str) -> str:
        try:
            return str(folder / Path(value).relative_to(old))
        except ValueError:
            return value

    paths = {k: str(folder) if k == "out_dir" else move(v) for k, v in result.paths.items()}
    return dataclasses.replace(result, paths=paths)


SEALED = (MODEL, CHECKPOINT)  # the files a finished run is reused through (model; posteriors read the checkpoint)


def _recorded_sha256(folder: Path) -> dict[str, str]:
    """``{file name: SHA-256}`` sealed in ``folder/run.json`` (empty: no seal, e.g. an older run)."""
    p = folder / RUN_META
    if not p.is_file():
        return {}
    meta = read_json(p)  # a damaged run.json: ValueError naming the file and the fix
    v = meta.get("sha256") if isinstance(meta, dict) else None
    return {k: h for k, h in v.items() if k in SEALED and isinstance(h, str)} if isinstance(v, dict) else {}


def run_damage(path: str | os.PathLike) -> dict[str, str]:
    """The sealed files of a finished run folder that cannot be trusted, each with the reason.

    Args:
        path: a run folder.

    Returns:
        ``{file name: sentence naming the file}``; empty when ``run.json`` seals nothing (an older run)
        or every sealed file (``model.pt``, ``checkpoint.pt``) matches its SHA-256.

    Raises:
        ValueError: ``run.json`` is not valid JSON (names the file and the fix).
    """
    folder = Path(path)
    bad = {}
    for name, want in _recorded_sha256(folder).items():
        f = folder / name
        if not f.is_file():
            bad[name] = f"{f} is missing (its run.json records SHA-256 {want[:12]}…)"
            continue
        got = file_sha256(f)
        if got != want:
            bad[name] = (f"{f} does not match the SHA-256 recorded in {folder / RUN_META} ({got[:12]}… instead of "
                         f"{want[:12]}…): it is damaged or was overwritten")
    return bad


def load_cached(path: str | os.PathLike) -> TrainResult | None:
    """The :class:`TrainResult` of a finished run folder, its paths inside that folder.

    Args:
        path: a run folder (where it is now: a moved or copied cache gives paths in the new place).

    Returns:
        The result, or ``None`` when the run is unfinished, absent, or a sealed file fails its
        recorded SHA-256 (:func:`run_damage`; :func:`train_cached` then rebuilds or retrains it).

    Raises:
        ValueError: ``result.json`` or ``run.json`` is not valid JSON (names the file and the fix).
    """
    folder = Path(path)
    p = folder / RESULT
    if not p.is_file():
        return None
    r = TrainResult.from_dict(read_json(p), source=p)  # both errors name the file and the fix
    if r.epochs_completed != int(r.config.get("epochs", -1)):
        return None
    if run_damage(folder):
        return None
    return _rebased(r, folder)


def _legacy_run(cfg: TrainConfig, cache_root: str | os.PathLike, data: Sequence[Any] | None,
                key: dict[str, Any]) -> TrainResult | None:
    """The finished run of ``cfg`` under its id before priors entered by their bytes (``None``: none)."""
    old = run_key(cfg, None, data, _prior_path=True)
    if old == key:
        return None
    return load_cached(Path(cache_root) / f"{cfg.method}-{cfg.arch}-{run_id(cfg, _key=old)}")


def _drop_damaged(out: Path) -> None:
    """Under the run's lock: remove a finished run's damaged files and its result (named on stderr).

    A damaged model is rebuilt from the checkpoint; a damaged checkpoint means training again.
    """
    bad = run_damage(out) if (out / RESULT).is_file() else {}
    if not bad:
        return
    drop = (RESULT, MODEL, CHECKPOINT) if CHECKPOINT in bad or not (out / CHECKPOINT).is_file() else (RESULT, MODEL)
    how = "rebuilding it from the run's checkpoint" if CHECKPOINT not in drop else "retraining the run"
    print(f"run cache: {'; '.join(bad.values())}; {how}", file=sys.stderr, flush=True)
    for name in drop:
        (out / name).unlink(missing_ok=True)


def _resume_teacher(cfg: TrainConfig, out: Path) -> tuple[TrainConfig, Any]:
    """The config and teacher module to resume ``out``'s checkpoint with, after the cache moved.

    The run id already pins the teacher's bytes; only its path may differ from the one in the
    checkpoint. Then the teacher is loaded from its path now and the checkpoint's path is kept in the
    config, so the trainer's configuration check passes.
    """
    if cfg.teacher_ckpt is None or not (out / CHECKPOINT).is_file():
        return cfg, None
    from ..distill.checkpoint import read_checkpoint
    from ..distill.trainer import load_checkpoint_model

    old = read_checkpoint(out / CHECKPOINT).get("config", {}).get("teacher_ckpt")
    if old is None or old == cfg.teacher_ckpt:
        return cfg, None
    return cfg.replace(teacher_ckpt=old), load_checkpoint_model(cfg.teacher_ckpt, map_location="cpu")


def train_cached(cfg: TrainConfig, cache_root: str | os.PathLike, teacher_ckpt: str | os.PathLike | None = None,
                 data: Sequence[Any] | None = None, callbacks: Sequence[Callable[[EpochInfo], None]] = (),
                 progress: bool = True, force: bool = False, teacher_cache: bool = False,
                 on_wait: Callable[[Path], None] | None = None) -> TrainResult:
    """Train ``cfg`` once per distinct configuration under ``cache_root`` (see module docstring).

    Safe under concurrency (the protocol of :mod:`kdbounds.runs.locking`): a finished run
    (``result.json``, written atomically as the trainer's last step) is returned without the lock;
    otherwise the run's lock is taken, the folder checked again, and only the lock holder trains —
    resuming from the run's checkpoint when an earlier process was killed mid-run. A second process
    (or Ray worker) asking for a run being trained waits for the lock and then returns the finished
    run without training.

    Args:
        cfg: the run's config.
        cache_root: folder holding one sub-folder per run.
        teacher_ckpt: the teacher checkpoint (or ``cfg.teacher_ckpt``) for methods with a teacher.
        data: optional preloaded ``(train_x, train_y, test_x, test_y)``; fingerprinted into the id.
        callbacks, progress: passed to :func:`kdbounds.distill.train` (callbacks only run for epochs
            actually trained now, i.e. never when the run was finished by someone else).
        force: retrain from scratch even if a finished or partial run exists (under the lock: a
            concurrent reader sees the old result or the new one, never a mix).
        on_wait: called with the lock path when another process holds the run's lock.
        teacher_cache: passed to :func:`kdbounds.distill.train` (exact; not part of the run id).

    Returns:
        The finished run's :class:`TrainResult`.

    Raises:
        FileNotFoundError: the teacher checkpoint does not exist.
        kdbounds.runs.locking.RunLockTimeout: another process held the run's lock longer than
            ``$KDBOUNDS_LOCK_TIMEOUT`` seconds (``--lock-timeout``; unset: no limit, with a line on stderr
            naming the holder after a few seconds); OSError when the cache's file system has no file locks.
    """
    from .locking import compute_once, run_lock

    cfg = _with_teacher(cfg, teacher_ckpt)
    key = run_key(cfg, None, data)
    rid = run_id(cfg, _key=key)
    out = Path(cache_root) / f"{cfg.method}-{cfg.arch}-{rid}"
    meta = {"run_id": rid, "key": key}
    if not force and not out.exists():
        old = _legacy_run(cfg, cache_root, data, key)
        if old is not None:
            return old

    def compute(resume: bool = True) -> TrainResult:
        created = not out.exists()
        out.mkdir(parents=True, exist_ok=True)
        try:
            if resume:
                _drop_damaged(out)
            atomic_write_json(out / RUN_META, meta, sort_keys=True)  # unsealed while training
            run_cfg, teacher = _resume_teacher(cfg, out) if resume else (cfg, None)
            res = train(run_cfg, out, teacher=teacher, data=data, callbacks=callbacks, progress=progress,
                        resume=resume, teacher_cache=teacher_cache)
        except BaseException:
            if created and not (out / CHECKPOINT).exists():  # nothing to resume: leave no junk folder
                shutil.rmtree(out, ignore_errors=True)
            raise
        seal = {name: file_sha256(out / name) for name in SEALED if (out / name).is_file()}
        atomic_write_json(out / RUN_META, {**meta, "sha256": seal}, sort_keys=True)
        return _rebased(res, out)

    if force:
        with run_lock(out, on_wait=on_wait):
            return compute(resume=False)  # resume=False: the trainer drops checkpoint, model and result first
    result, _ = compute_once(out, compute, load=load_cached, save=None, on_wait=on_wait)
    return result
