"""kdbounds: the generalization theory of knowledge distillation, turned into experiments.

Subpackages (import what you need; nothing heavy is imported here):

- ``kdbounds.bounds``      Theorems 1, 2, 3A, 3B as pure functions of measured quantities (numpy).
- ``kdbounds.curvature``   Hessian operators and estimators with ``torch.func``.
- ``kdbounds.divergence``  predictive (and Laplace weight-space) distillation divergence.
- ``kdbounds.pid``         partial information decomposition of distilled knowledge.
- ``kdbounds.fidelity``    functional-transfer statistics.
- ``kdbounds.data``, ``kdbounds.models``, ``kdbounds.distill``  CIFAR data, model zoo, trainer.
- ``kdbounds.bound_checks`` a teacher–student pair -> losses, gaps, divergence, curvature, every bound.

Orchestration (may write files):

- ``kdbounds.studies.cache``          run cache: ``train_cached(cfg, cache_root)`` reuses or resumes runs by config hash.
- ``kdbounds.sharpness_study`` the flagship study behind ``experiments/sharpness_vs_gap.py``.
- ``kdbounds.pid_tracking``  trainer callback recording Red/Uni of teacher vs student features.
- ``kdbounds.report``        plots and markdown tables.
"""

__version__ = "0.1.0"
