"""Build the API reference of kdbounds and linear_gaussian from their docstrings with pdoc (``make docs``).

    python docs/build_api.py                 # writes docs/api/ (index.html, one page per module)
    python docs/build_api.py --out DIR       # somewhere else (the test suite builds into a temporary folder)

Any warning raised while pdoc imports or renders a module — a docstring it cannot parse, an
annotation it cannot resolve, a module that fails to import — fails the build (warnings are errors).

Why pdoc and not mkdocs + mkdocstrings: pdoc documents what ``import kdbounds`` exposes with no
configuration file, no theme and no plugin chain (one pinned package with three small dependencies,
the ``docs`` extra), reads the Google-style sections and the ``.. math::`` blocks our docstrings use,
renders the maths (MathJax) and cross-links names, and builds the whole reference in seconds, so CI can
build it on every run. The hand-written guides stay Markdown files in ``docs/`` that read well on a
code host; mkdocs would be worth its configuration only for a combined, searchable site of both.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("kdbounds", "linear_gaussian")
DEFAULT_OUT = ROOT / "docs" / "api"

__all__ = ["build", "main"]


def build(out: Path = DEFAULT_OUT) -> list[Path]:
    """Render the reference into ``out``; raise on any warning.

    Args:
        out: the output folder (created; existing pages are overwritten).

    Returns:
        The HTML files written.

    Raises:
        RuntimeError: pdoc (or an import it triggered) raised warnings; the message lists them.
    """
    import pdoc
    import pdoc.render

    sys.path.insert(0, str(ROOT))  # document the checkout next to this script, not an installed copy
    pdoc.render.configure(docformat="google", math=True, search=True, show_source=False,
                          footer_text="kdbounds API reference (make docs)")
    out.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pdoc.pdoc(*MODULES, output_directory=out)
    # a ResourceWarning is the garbage collector closing a socket or file some earlier code in this process
    # left open (e.g. a Ray client in the same test worker), not a problem of the documentation
    problems = [f"{w.category.__name__}: {w.message} ({Path(w.filename).name}:{w.lineno})" for w in caught
                if not issubclass(w.category, ResourceWarning)]
    if problems:
        raise RuntimeError(f"the API reference built with {len(problems)} warning(s) (warnings are errors):\n  "
                           + "\n  ".join(problems[:40]))
    return sorted(out.rglob("*.html"))


def main(argv: list[str] | None = None) -> int:
    """Command line: build the reference and print where it went."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default docs/api)")
    args = parser.parse_args(argv)
    try:
        pages = build(args.out)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{len(pages)} pages in {args.out} (open {args.out / 'index.html'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
