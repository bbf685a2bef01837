"""Print which notebooks executed (and how long each took) at the end of the test run, also under
pytest-xdist: the smoke tests record a ``notebook_executed`` user property, which xdist forwards."""

from __future__ import annotations


def pytest_terminal_summary(terminalreporter):
    lines = [value for rep in terminalreporter.stats.get("passed", [])
             for name, value in getattr(rep, "user_properties", ()) if name == "notebook_executed"]
    if lines:
        terminalreporter.section("notebooks executed")
        for line in sorted(lines):
            terminalreporter.write_line(line)
