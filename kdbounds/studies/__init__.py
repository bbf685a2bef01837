"""Studies: the top of the library (they train, measure and write files); one public module per study.

Every study has the same shape (a frozen ``Config``, ``PRESETS``, ``run``, ``write_results``, plots) and
runs as ``kdbounds-study <name>``: any public module here is a study, and no study imports another.
What they share lives below them: the run cache, sweep runner, training grids, splits and priors in
:mod:`kdbounds.runs`, the figures in :mod:`kdbounds.figures`; here only the command line (``_cli``, ``__main__``), the
report tables (``_tables``), a result read back (``_results``) and the provenance of a result (``_provenance``).
Nothing is imported here, so ``import kdbounds.studies`` stays cheap.
"""
