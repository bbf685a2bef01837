"""kdbounds._checks: the shared argument checks (message style "name: expected X, got Y")."""

from __future__ import annotations

import numpy as np
import pytest

from kdbounds._checks import check_bool, check_finite_array, check_int, check_nonnegative, check_positive, check_square_matrix


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


def test_check_int_names_the_argument_and_appends_the_fix():
    assert check_int("n", np.int64(3), minimum=1) == 3 and check_int("n", 4.0) == 4 and type(check_int("n", 4.0)) is int
    with pytest.raises(ValueError, match=r"^threads: expected an integer >= 1, got 0; or None$"):
        check_int("threads", 0, minimum=1, fix="or None")
    with pytest.raises(TypeError, match=r"^n: expected an integer, got float 1.5; the number of draws$"):
        check_int("n", 1.5, minimum=1, fix="the number of draws")
    with pytest.raises(TypeError, match=r"^n: expected an integer, got bool True$"):
        check_int("n", True)
    with pytest.raises(ValueError, match=r"^sigma: expected a finite number > 0, got 0; or None$"):
        check_positive("sigma", 0, fix="or None")


def test_check_bool_takes_only_true_or_false():
    assert check_bool("progress", True) is True and check_bool("progress", np.bool_(False)) is False
    for bad in (1, 0, "yes", None, 1.0):
        with pytest.raises(TypeError, match=r"^progress: expected True or False, got "):
            check_bool("progress", bad)
