"""docs/your_model.md runs as written: its Python blocks, in order, in one namespace, at smoke sizes.

The guide is the one document a new user follows from ``pip install`` to a certificate (issue 24), so
its code is executed here, not only read: every name it uses must exist, every call must accept what
the guide passes, and the certificate at the end must be a number in ``[0, 1]``. Two things change:

* ``load_cifar`` returns synthetic uint8 images (CIFAR-10's shapes and dtypes, 10 balanced classes),
  so the test needs no data set;
* the sizes shrink by literal replacements listed in :data:`SMOKE` (each must occur exactly once: a
  guide edit that removes one fails here, and the list is updated with it), and the guide's own
  ``MyTeacher`` / ``my_training_loop`` run narrower and for one epoch.

Besides: every ``from kdbounds... import`` of the guide imports from the top level, and every kdbounds
name the guide mentions in backticks is a top-level name (a user reads a name and imports it).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import pkgutil
import re
from pathlib import Path

import numpy as np
import pytest

import kdbounds

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "your_model.md"
PY_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)

# guide text -> smoke text; each must occur exactly once in the guide's code
SMOKE = {
    "choice(len(labels), 3000, replace=False)": "choice(len(labels), 300, replace=False)",
    "make_split(labels[pool], 1000, seed=0)": "make_split(labels[pool], 100, seed=0)",
    "stratified_subset(test_labels, 100, seed=1)": "stratified_subset(test_labels, 10, seed=1)",
    "top_eigenvalues(H, 1, max_matvecs=20)": "top_eigenvalues(H, 1, max_matvecs=6)",
    "hutchinson_trace(H, 48)": "hutchinson_trace(H, 6)",
    "evaluate_pair(teacher, student, eval_train, eval_test)":
        "evaluate_pair(teacher, student, eval_train, eval_test, mc_draws=4, n_boot=50)",
    "epochs=5, lr=0.005, seed=0)": "epochs=1, lr=0.005, seed=0)",
}


def guide_blocks(text: str) -> list[str]:
    """The guide's Python code blocks, in order."""
    return PY_BLOCK.findall(text)


def smoke(code: str, replacements: dict[str, str]) -> str:
    """``code`` with each replacement applied; each must occur exactly once."""
    for old, new in replacements.items():
        count = code.count(old)
        if count != 1:
            raise AssertionError(f"the guide's code has {count} occurrences of {old!r} (expected 1): "
                                 f"update SMOKE in {Path(__file__).name} with the guide")
        code = code.replace(old, new)
    return code


def _fake_cifar(name: str, root=None, split: str = "train", download: bool = False, cache: bool = True):
    """CIFAR-10's shapes and dtypes, balanced classes in a shuffled order, no files read."""
    assert name == "cifar10", name
    n = 600 if split == "train" else 200
    rng = np.random.default_rng(0 if split == "train" else 1)
    labels = rng.permutation(np.arange(n) % 10).astype(np.int64)
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    images[..., 0] = np.clip(images[..., 0].astype(int) // 2 + 12 * labels[:, None, None], 0, 255)  # learnable
    return images, labels


def _run_guide(monkeypatch) -> dict:
    blocks = guide_blocks(GUIDE.read_text(encoding="utf-8"))
    assert len(blocks) >= 6 and "def my_normalise" in blocks[0], "the first block defines the user's pieces"
    code = smoke("\n".join(blocks[1:]), SMOKE)
    monkeypatch.setattr(kdbounds, "load_cifar", _fake_cifar, raising=False)
    ns: dict = {"__name__": "your_model_guide"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(blocks[0], f"{GUIDE.name} (block 1)", "exec"), ns)
        teacher_cls, loop = ns["MyTeacher"], ns["my_training_loop"]
        ns["MyTeacher"] = functools.partial(teacher_cls, width=2)   # the guide's network, narrower
        ns["MyStudent"] = functools.partial(teacher_cls, width=1)
        ns["my_training_loop"] = functools.partial(loop, epochs=1)  # the guide's loop, one epoch
        exec(compile(code, f"{GUIDE.name} (blocks 2-{len(blocks)}, smoke sizes)", "exec"), ns)
    ns["_stdout"] = out.getvalue()
    return ns


@pytest.mark.filterwarnings("ignore:.*KL.*:UserWarning")
def test_the_guide_runs_from_data_to_certificate(monkeypatch):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    ns = _run_guide(monkeypatch)
    assert 0.0 <= ns["k"].value < float("inf") and ns["k"].ci_low <= ns["k"].value <= ns["k"].ci_high
    assert np.isfinite(ns["lam"].eigenvalues[0]) and np.isfinite(ns["tr"].value)
    verdicts = {r.verdict for r in ns["records"]}
    assert ns["records"] and verdicts <= {"holds", "violated", "inconclusive", "not_defined"}, verdicts
    cert, baseline = ns["cert"], ns["baseline"]
    assert 0.0 < cert.risk_upper <= 1.0 and 0.0 < baseline.risk_upper <= 1.0
    assert cert.divergence > 0.0 and baseline.divergence == pytest.approx(0.0, abs=1e-9)  # Q moved; Q = P did not
    assert cert.n_s == len(ns["y_s"]) == 100
    assert "nan" not in ns["_stdout"].lower(), ns["_stdout"]


def test_the_users_pieces_run_at_the_guide_sizes():
    torch = pytest.importorskip("torch")
    ns: dict = {}
    exec(guide_blocks(GUIDE.read_text(encoding="utf-8"))[0], ns)
    images, labels = _fake_cifar("cifar10")
    x = ns["my_normalise"](images[:8])
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32
    assert ns["MyTeacher"]()(x).shape == ns["MyStudent"]()(x).shape == (8, 10)


def test_every_import_is_from_the_top_level():
    imports = re.findall(r"from\s+(kdbounds[\w.]*)\s+import", GUIDE.read_text(encoding="utf-8"))
    assert imports and set(imports) == {"kdbounds"}, sorted(set(imports))


def _public_names_anywhere() -> set[str]:
    """The public names of every topic package and of each of its modules, and the top level's."""
    names: set[str] = set(kdbounds.__all__)
    for topic in kdbounds._TOPICS:
        package = importlib.import_module(f"kdbounds.{topic}")
        modules = [package] + [importlib.import_module(f"kdbounds.{topic}.{m.name}")
                               for m in pkgutil.iter_modules(getattr(package, "__path__", []))
                               if not m.name.startswith("_")]
        for module in modules:
            names |= set(getattr(module, "__all__", ())) | set(getattr(module, "_LAZY", ()))
    return names


def guide_mentions(text: str, public: set[str]) -> set[str]:
    """kdbounds public names the text shows in backticks (alone or called: `name`, `name(...)`)."""
    spans = re.findall(r"`([^`\n]+)`", PY_BLOCK.sub("", text))
    return {w for span in spans for w in re.findall(r"\b([A-Za-z_]\w*)\b", span) if w in public}


def test_every_kdbounds_name_the_guide_mentions_is_at_the_top_level():
    public = _public_names_anywhere()
    mentioned = guide_mentions(GUIDE.read_text(encoding="utf-8"), public)
    assert {"evaluate_pair", "measure_teacher_curvature", "select_scales", "posterior_from_run"} <= mentioned
    assert not mentioned - set(kdbounds.__all__), sorted(mentioned - set(kdbounds.__all__))


def test_smoke_replacements_are_exact():
    assert smoke("a(1) b(2)", {"a(1)": "a(0)"}) == "a(0) b(2)"
    with pytest.raises(AssertionError, match="0 occurrences"):
        smoke("a(1)", {"c(1)": "c(0)"})
    with pytest.raises(AssertionError, match="2 occurrences"):
        smoke("a(1) a(1)", {"a(1)": "a(0)"})
