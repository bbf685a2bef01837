"""Studies: orchestration on top of the library (they train, measure and write files).

One module per study, all the same shape (a frozen ``Config``, ``PRESETS``, ``run``,
``write_results``, plots); :mod:`kdbounds.studies.cache` is the run cache they share, and
:mod:`kdbounds.studies.sweep` runs a study's grid locally or on Ray.
Nothing is imported here, so ``import kdbounds.studies`` stays cheap.
"""
