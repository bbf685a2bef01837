"""kdbounds._records.Estimate, the one estimate record (fidelity's ``MetricEstimate`` is the same class).

Oracles: the JSON the two former records wrote, written out here — ``MetricEstimate.to_dict`` was
``with_reasons({"value", "stderr", "n"}, why)`` (``why`` "no samples" at n = 0, "one sample" at n = 1), the checks'
``Estimate.to_dict`` was ``dataclasses.asdict`` (every interval key, ``None`` for none; a non-finite number left to
the strict writer, which made it a bare ``null``) — and the floats themselves after a strict JSON round trip.
"""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdbounds._io import dumps_strict, with_reasons
from kdbounds._records import Estimate
from kdbounds.fidelity import MetricEstimate

_any = st.floats(allow_nan=True, allow_infinity=True)


def _old_metric_json(value, stderr, n):
    return with_reasons({"value": value, "stderr": stderr, "n": n}, why={0: "no samples", 1: "one sample"}.get(n, ""))


def test_fidelity_estimates_are_the_one_record():
    assert MetricEstimate is Estimate
    e = MetricEstimate(math.nan, math.nan, 0)
    assert not e.defined and not e.finite and str(e) == "undefined (n=0)"
    assert MetricEstimate(0.5, math.inf, 1).defined and str(MetricEstimate(0.5, 0.25, 4)) == "0.5000 ± 0.2500 (n=4)"


@settings(max_examples=60, deadline=None)
@given(_any, _any, st.integers(0, 50))
def test_an_estimate_without_interval_writes_what_metric_estimate_wrote(value, stderr, n):
    """The fidelity reports' JSON (functional_transfer's results) is unchanged, byte for byte."""
    assert dumps_strict(Estimate(value, stderr, n)) == dumps_strict(_old_metric_json(value, stderr, n))


@settings(max_examples=60, deadline=None)
@given(_any, _any, st.integers(0, 50), st.none() | st.tuples(_any, _any, st.sampled_from([0.9, 0.95, 0.99])))
def test_strict_json_round_trip_keeps_every_float(value, stderr, n, interval):
    est = Estimate(value, stderr, n, *(interval or ()))
    d = json.loads(dumps_strict(est))
    assert ("ci_low" in d) == (interval is not None)
    back = Estimate.from_dict(d)
    for f in dataclasses.fields(Estimate):
        a, b = getattr(back, f.name), getattr(est, f.name)
        assert (a is None and b is None) or a == b or (math.isnan(a) and math.isnan(b)), f.name


def test_the_checks_json_changes_exactly_so_and_old_files_read_back():
    """The change for the checks' records (sharpness_vs_gap's ``pairs``): no ``ci_*``/``level`` keys without an
    interval, and a ``*_reason`` next to each ``null``; the former files still read."""
    assert Estimate(0.1, 0.01, 5).to_dict() == {"value": 0.1, "stderr": 0.01, "n": 5}  # was + 3 null keys
    assert Estimate(0.1, math.inf, 1).to_dict() == {"value": 0.1, "stderr": None, "stderr_reason": "+inf: one sample",
                                                    "n": 1}  # was a bare null
    assert Estimate(0.1, 0.01, 5, 0.08, 0.12, 0.95).to_dict() == {"value": 0.1, "stderr": 0.01, "n": 5,
                                                                   "ci_low": 0.08, "ci_high": 0.12, "level": 0.95}
    old = {"value": 0.1, "stderr": None, "n": 1, "ci_low": None, "ci_high": None, "level": None}
    back = Estimate.from_dict(old)
    assert not back.has_interval and back.value == 0.1 and math.isnan(back.stderr)  # a bare null: NaN, as documented
    assert Estimate.from_dict({"value": 1.0, "stderr": 0.5, "n": 3, "ci_low": 0.0, "ci_high": 2.0, "level": 0.9}) \
        == Estimate(1.0, 0.5, 3, 0.0, 2.0, 0.9)


@pytest.mark.parametrize("est", [Estimate(0.5, 0.1, 4), Estimate(0.5, 0.1, 4, 0.3, 0.7, 0.95)])
def test_upper_and_lower_use_the_interval_when_there_is_one(est):
    if est.has_interval:
        assert (est.lower(), est.upper()) == (0.3, 0.7)
    else:
        assert est.lower() == pytest.approx(0.5 - 0.196) and est.upper() == pytest.approx(0.5 + 0.196)
