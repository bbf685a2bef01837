"""kdbounds._checks: the shared argument checks (message style "name: expected X, got Y")."""

from __future__ import annotations

import numpy as np
import pytest

from kdbounds._checks import check_finite_array, check_nonnegative, check_square_matrix


def test_check_square_matrix_accepts_finite_square_and_names_the_argument():
    m = check_square_matrix("cov", [[1, 0], [0, 2]])
    assert m.dtype == np.float64 and m.shape == (2, 2)
    with pytest.raises(ValueError, match=r"^cov: expected a square matrix, got 'shape \(2, 3\)'"):
        check_square_matrix("cov", np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"^cov: expected a 2-dimensional array"):
        check_square_matrix("cov", np.ones(3))
    with pytest.raises(ValueError, match=r"^hessian: expected finite entries, got '1 non-finite \(NaN/inf\)"):
        check_square_matrix("hessian", [[1.0, np.nan], [0.0, 1.0]])
    with pytest.raises(TypeError, match="^grad: expected an array of real numbers"):
        check_finite_array("grad", [["a"]])


def test_check_nonnegative_appends_the_fix():
    assert check_nonnegative("divergence", 0.0) == 0.0
    with pytest.raises(ValueError, match=r"^divergence: expected a finite number >= 0, got -1e-300; clip"):
        check_nonnegative("divergence", -1e-300, "clip tiny negative KL estimates to 0 before calling")
