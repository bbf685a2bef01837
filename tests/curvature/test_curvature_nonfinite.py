"""Estimators never report a non-finite curvature as converged (issue 17): a non-finite matrix is
refused at the door, and an operator whose products turn non-finite raises a clear error."""

from __future__ import annotations

import math

import pytest
import torch

from kdbounds.curvature import (CurvatureOperator, MatrixOperator, hutchinson_trace, power_iteration,
                                spectral_density, top_eigenvalues)


class _Poisoned(CurvatureOperator):
    """A 6×6 operator whose products are NaN (or inf) — a model whose loss went non-finite."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.shape, self.dtype, self.device, self.value = (6, 6), torch.float64, torch.device("cpu"), value

    def _matmat(self, V):
        return torch.full_like(V, self.value)


ESTIMATORS = {
    "hutchinson_trace": lambda op: hutchinson_trace(op, num_matvecs=12, seed=0),
    "top_eigenvalues": lambda op: top_eigenvalues(op, k=1, max_matvecs=6, seed=0),
    "power_iteration": lambda op: power_iteration(op, max_matvecs=6, seed=0),
    "spectral_density": lambda op: spectral_density(op, num_probes=2, num_steps=4, seed=0),
}


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_matrix_with_nonfinite_entries_is_refused_naming_the_argument(bad):
    A = torch.eye(5, dtype=torch.float64)
    A[1, 1] = bad
    with pytest.raises(ValueError, match=r"^A: .*finite"):
        MatrixOperator(A)
    for est in ESTIMATORS.values():  # a matrix given to an estimator is its argument op
        with pytest.raises(ValueError, match=r"^op: .*finite"):
            est(A)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_nonfinite_products_raise_instead_of_converging(name, bad):
    with pytest.raises(FloatingPointError, match="NaN or infinite"):
        ESTIMATORS[name](_Poisoned(bad))


def test_finite_operator_still_works():
    A = torch.diag(torch.arange(1.0, 7.0, dtype=torch.float64))
    assert math.isclose(top_eigenvalues(A, k=1, max_matvecs=6, seed=0).eigenvalues[0], 6.0, rel_tol=1e-6)


@pytest.mark.parametrize("case", ["label_out_of_range", "batch_mismatch", "wrong_input_shape"])
def test_bad_data_is_reported_in_our_words(case):
    """Labels out of range, x/y batch mismatch and inputs the model cannot take are reported as
    ``ValueError`` naming ``data`` and the fix, not as a raw torch error from inside autograd."""
    from kdbounds.curvature import HessianOperator

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    if case == "label_out_of_range":
        y = y.clone()
        y[0] = 12
    elif case == "batch_mismatch":
        y = y[:5]
    else:
        x = torch.randn(8, 5)
    with pytest.raises(ValueError, match=r"^data: "):
        op = HessianOperator(model, torch.nn.functional.cross_entropy, [(x, y)])
        op @ torch.randn(op.shape[0])
