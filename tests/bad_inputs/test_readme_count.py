"""README's size of the bad-input table (issue 26 item 5) is the real one: the table cases collected from
``tests/bad_inputs`` (every parametrized case of the table files; the fault and signal tests are not table rows),
rounded to the hundred as README writes it ("a table of ≈ 1,200 bad inputs"). Oracle: pytest's own collection."""

from __future__ import annotations

import re
import subprocess
import sys

from bad_input_helpers import ROOT

NOT_TABLE = ("test_bad_inputs_faults.py", "test_bad_inputs_signals.py")


def table_size() -> int:
    """The number of bad-input cases: parametrized tests of ``tests/bad_inputs`` outside the fault/signal files."""
    p = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
                        "tests/bad_inputs"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    ids = [ln for ln in p.stdout.splitlines() if "::" in ln and "[" in ln]
    assert ids, p.stdout[-2000:] + p.stderr[-2000:]
    return sum(1 for ln in ids if not ln.split("::")[0].endswith(NOT_TABLE))


def test_readme_states_the_table_size():
    text = (ROOT / "README.md").read_text()
    m = re.search(r"a table of ≈ ([\d,]+) bad inputs", text)
    assert m, "README no longer says 'a table of ≈ N bad inputs' (Development section)"
    stated = int(m.group(1).replace(",", ""))
    n = table_size()
    assert stated == round(n, -2), (f"README says ≈ {stated:,} bad inputs, the table has {n}: write "
                                    f"'a table of ≈ {round(n, -2):,} bad inputs'")
