"""kdbounds._io.canonical_json / json_sha256: the one JSON hash of the project (run ids, sweep fingerprints,
published teacher measurements). Oracles: ``json.dumps(..., sort_keys=True, separators=(",", ":"))`` of the plain
data and ``hashlib.sha256`` of its bytes; key order and container types that JSON cannot tell apart must not move it.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdbounds._io import canonical_json, json_sha256

_plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=5), kids, max_size=4),
    max_leaves=10)


@settings(max_examples=50, deadline=None)
@given(_plain)
def test_plain_data_is_the_compact_sorted_json_and_its_sha256(x):
    text = json.dumps(x, sort_keys=True, separators=(",", ":"))
    assert canonical_json(x) == text
    assert json_sha256(x) == hashlib.sha256(text.encode()).hexdigest()
    assert text.isascii() and json.loads(canonical_json(x)) == x


@settings(max_examples=30, deadline=None)
@given(st.dictionaries(st.text(max_size=4), st.integers(), min_size=2, max_size=6), st.randoms())
def test_key_order_does_not_move_the_hash(d, rnd):
    items = list(d.items())
    rnd.shuffle(items)
    assert json_sha256(dict(items)) == json_sha256(d)


def test_jsonable_values_hash_as_their_json_form():
    a = {"t": (1, 2), "i": np.int64(3), "f": np.float32(0.5), "p": Path("/x/y"), "arr": np.arange(2)}
    b = {"t": [1, 2], "i": 3, "f": 0.5, "p": "/x/y", "arr": [0, 1]}
    assert canonical_json(a) == canonical_json(b) == '{"arr":[0,1],"f":0.5,"i":3,"p":"/x/y","t":[1,2]}'
    assert canonical_json({"x": math.inf, "y": math.nan}) == '{"x":null,"y":null}'  # strict: never Infinity/NaN
    with pytest.raises(TypeError, match="cannot write object as JSON"):
        canonical_json({"x": object()})
