"""The runs layer: how models get trained and reused, between the library and the studies.

* :mod:`~kdbounds.runs.cache` — the run cache: one folder per distinct training configuration
  (``train_cached``), locked per run (:mod:`~kdbounds.runs.locking`);
* :mod:`~kdbounds.runs.sweep` — the sweep runner (a grid of runs with dependencies, local or Ray);
* :mod:`~kdbounds.runs.grid` — training runs on the sweep: the data description ``DataSpec``, the
  worker-side config fill-in (:func:`~kdbounds.runs.grid.worker_config`: teacher and prior paths),
  ``train_run``/``train_spec``, ``Timed``/``train_timed``, and the teacher recipe record
  ``TeacherRecipe``;
* :mod:`~kdbounds.runs.splits` — the ``D_T``/``D_S`` split of CIFAR-10: its description
  ``SplitSpec`` and the one loader ``split_data``;
* :mod:`~kdbounds.runs.priors` — where a prior is trained (theory.md §7, kinds (a)–(d));
* :mod:`~kdbounds.runs.posteriors` — reading a finished ``pbb``/``pbkd`` run back as Gaussian kernels.
* :mod:`~kdbounds.runs.posterior_learning` — :func:`~kdbounds.runs.posterior_learning.learn_posterior`: a
  ``pbb``/``pbkd`` posterior for any ``nn.Module``, prior kernel and data, through the trainer's own step.

* :mod:`~kdbounds.runs.bank` — the teacher bank: one trained teacher per (recipe, architecture, data, seed),
  shared by every study (:func:`~kdbounds.runs.bank.bank_teacher`).

Nothing is imported here, so ``import kdbounds.runs`` stays cheap (the bank's names are also at the top
level: ``kdbounds.BankTeacher``).
"""

