"""kdbounds._io: the one non-finite policy (null + ``*_reason``) and its read-back, used by the
fidelity and stats records. Oracle: the floats themselves (``math.inf``, ``-math.inf``, ``nan``)
compared after a strict ``json`` round trip."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kdbounds._io import float_field, with_reasons
from kdbounds.fidelity import MetricEstimate
from kdbounds.stats import compare_groups


@given(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(["", "n = 1"]))
def test_with_reasons_round_trips_every_float_through_strict_json(x, why):
    d = json.loads(json.dumps(with_reasons({"v": x, "n": 3, "s": "a"}, why=why), allow_nan=False))
    assert d["n"] == 3 and d["s"] == "a"
    back = float_field(d, "v")
    if math.isnan(x):
        assert math.isnan(back) and d["v"] is None and d["v_reason"].startswith("nan")
    else:
        assert back == x
        assert ("v_reason" in d) == math.isinf(x)
    if "v_reason" in d and why:
        assert d["v_reason"].endswith(why)


def test_with_reasons_numpy_floats_and_ints():
    d = with_reasons({"a": np.float32("inf"), "b": np.int64(4), "c": np.float64(-np.inf)})
    assert d == {"a": None, "a_reason": "+inf", "b": 4, "c": None, "c_reason": "-inf"}
    assert float_field({}, "missing") != float_field({}, "missing")  # nan


@pytest.mark.parametrize("est", [MetricEstimate(0.5, math.inf, 1), MetricEstimate(math.nan, math.nan, 0),
                                 MetricEstimate(math.inf, 0.1, 7), MetricEstimate(0.25, 0.01, 9)])
def test_metric_estimate_round_trip(est):
    d = json.loads(json.dumps(est.to_dict(), allow_nan=False))
    assert all(not isinstance(v, str) or k.endswith("_reason") for k, v in d.items())
    back = MetricEstimate.from_dict(d)
    assert back.n == est.n
    for a, b in ((back.value, est.value), (back.stderr, est.stderr)):
        assert (math.isnan(a) and math.isnan(b)) or a == b


def test_group_comparison_writes_null_with_reason_for_infinite_statistics():
    c = compare_groups([0.7, 0.7], [0.5, 0.5], ("kd", "rcd"))
    assert c.welch_t == math.inf
    d = json.loads(json.dumps(c.to_dict(), allow_nan=False))
    assert d["welch_t"] is None and d["welch_t_reason"] == "+inf: zero variance in both groups"
    assert d["cohens_d"] is None and float_field(d, "cohens_d") == math.inf
    assert d["diff"] == pytest.approx(0.2) and "diff_reason" not in d


def test_read_json_reads_gzip_strictly_and_names_a_damaged_archive(tmp_path):
    """Committed large results are gzip-compressed (``results.json.gz``): read as the same strict JSON; NaN inside
    refused; a truncated or non-gzip archive a ``DamagedFileError`` naming the file."""
    import gzip

    import pytest

    from kdbounds._io import DamagedFileError, read_json

    good = tmp_path / "r.json.gz"
    good.write_bytes(gzip.compress(b'{"a": [1, 2.5]}'))
    assert read_json(good) == {"a": [1, 2.5]}
    bad = tmp_path / "nan.json.gz"
    bad.write_bytes(gzip.compress(b'{"a": NaN}'))
    with pytest.raises(DamagedFileError, match="nan.json.gz"):
        read_json(bad)
    cut = tmp_path / "cut.json.gz"
    cut.write_bytes(gzip.compress(b'{"a": [1, 2.5]}' * 50)[:20])
    with pytest.raises(DamagedFileError, match="cut.json.gz"):
        read_json(cut)
    plain = tmp_path / "plain.json.gz"
    plain.write_text('{"a": 1}')
    with pytest.raises(DamagedFileError, match="plain.json.gz"):
        read_json(plain)
