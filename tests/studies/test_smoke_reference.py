"""Every study's ``smoke`` results are the committed reference numbers, to the last bit.

"Behaviour unchanged" for a refactoring (issue 22) means each study's smoke preset gives identical results before
and after. This test pins them: it runs ``kdbounds-study NAME --preset smoke --threads 1`` on a generated CIFAR-10
(``fake_cifar.write_fake_cifar10``, 130 training and 100 test images per class, seed 0: large enough for every
smoke preset, no download) in a fresh process with a private cache, normalises ``results.json`` and the CSV tables
as ``results_diff.py`` does (timings, paths, run ids, the provenance dropped), and compares them with
``smoke_reference.json`` — a failure lists the first differing fields.

Oracle: the reference was written by the code before the issue-22 refactoring (commit ab575da) and is identical to
the code after it (``results_diff.py`` printed ALL IDENTICAL for the same runs); ``sharpness_vs_gap``,
``certify_students`` and ``certify_flatness`` were compared the same way (ab575da against the refactoring's last
commit c16a980: identical but the grid ledger's wall-clock ``time``, now dropped) and recorded after the flagship
merge (9d73c9a), which changed the sharpness study; the sharpness study's again when its training-loss trace
moved onto the gap's probes (issue 25: 32 fewer Hessian products per teacher, other probes). Bit-identical results hold on one
platform (torch build and CPU instruction set: float reductions differ in their last bits across them), so the
reference records the platform it was written on and the test is skipped elsewhere, with the command that writes
it there::

    KDBOUNDS_WRITE_SMOKE_REFERENCE=1 python -m pytest -p no:xdist tests/studies/test_smoke_reference.py

A change meant to move numbers rewrites the reference in the same commit, and says why.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from results_diff import diff, norm

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = Path(__file__).with_name("smoke_reference.json")
STUDIES = ("linear_gaussian_tradeoffs", "functional_transfer", "pid_transfer", "nuisance_teacher", "sharpness_vs_gap",
           "certify_students", "certify_flatness")
#: studies whose reference is not recorded yet (record one with
#: ``KDBOUNDS_WRITE_SMOKE_REFERENCE=1 python -m pytest -p no:xdist tests/studies/test_smoke_reference.py -k NAME``
#: after moving it to STUDIES).
NOT_RECORDED: tuple[str, ...] = ()
NO_CACHE = {"linear_gaussian_tradeoffs"}  # trains nothing: refuses --cache-root
WRITE = os.environ.get("KDBOUNDS_WRITE_SMOKE_REFERENCE") == "1"


def platform() -> str:
    import torch

    return f"torch {torch.__version__} {torch.backends.cpu.get_cpu_capability()}"


def normalised(out: Path) -> dict:
    """``results.json`` (provenance dropped) and every CSV table of a study's output folder, normalised."""
    res = json.loads((out / "results.json").read_text())
    res.pop("provenance", None)
    tables = {c.name: [norm(r) for r in csv.DictReader(c.open())] for c in sorted(out.glob("*.csv"))}
    return {"results.json": norm(res), "tables": tables}


def test_every_study_is_pinned_or_listed():
    assert _studies() == set(STUDIES) | set(NOT_RECORDED), "a new study: add it to STUDIES and record its reference"
    assert set(json.loads(REFERENCE.read_text())["studies"]) == set(STUDIES)


def _studies() -> set[str]:
    """The public modules of ``kdbounds/studies`` (each one is a study)."""
    return {f.stem for f in (ROOT / "kdbounds" / "studies").glob("*.py") if not f.stem.startswith("_")}


@pytest.fixture(scope="module")
def fake_data(tmp_path_factory) -> Path:
    from fake_cifar import write_fake_cifar10

    return write_fake_cifar10(tmp_path_factory.mktemp("fakecifar"), per_class_train=130, per_class_test=100)


@pytest.mark.slow
@pytest.mark.parametrize("study", STUDIES)
def test_smoke_results_are_the_reference(study, fake_data, tmp_path):
    reference = json.loads(REFERENCE.read_text()) if REFERENCE.is_file() else {"platform": platform(), "studies": {}}
    if not WRITE and reference["platform"] != platform():
        pytest.skip(f"the reference was written on {reference['platform']}, this is {platform()}")
    env = {**os.environ, "KDBOUNDS_DATA": str(fake_data), "KDBOUNDS_CACHE": str(tmp_path / "kdcache"),
           "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "kdbounds.studies", study, "--preset", "smoke", "--threads", "1", "--no-progress",
           "--out", str(tmp_path / "out")] + ([] if study in NO_CACHE else ["--cache-root", str(tmp_path / "cache")])
    p = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    got = json.loads(json.dumps(normalised(tmp_path / "out")))  # the reference's JSON types (tuples -> lists)
    if WRITE:
        reference = json.loads(REFERENCE.read_text()) if REFERENCE.is_file() else reference
        reference["platform"] = platform()
        reference["written_by"] = "KDBOUNDS_WRITE_SMOKE_REFERENCE=1 (see the module docstring)"
        reference["studies"][study] = got
        REFERENCE.write_text(json.dumps(reference, indent=1, sort_keys=True) + "\n")
        return
    assert study in reference["studies"], f"no reference for {study}: write it (module docstring)"
    differences = diff(reference["studies"][study], got)
    assert not differences, f"{study}: {len(differences)} differences from the reference:\n" + "\n".join(differences[:20])
