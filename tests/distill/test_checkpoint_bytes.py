"""A checkpoint's bytes depend on its content only, not on which string objects hold it.

The pickler memoises by identity: a config built in the driver shares one ``"cpu"`` object between
fields, the same config unpickled in a Ray worker may not. Students hash their teacher's file, so
unequal bytes would give them other run ids on another executor.
"""

from __future__ import annotations

import pickle

import torch

from kdbounds.distill.checkpoint import atomic_save


def _fresh(s: str) -> str:
    return "".join(list(s))  # an equal string that is a distinct object


def test_equal_payloads_with_shared_or_distinct_strings_give_identical_bytes(tmp_path):
    sd = {"w": torch.arange(6.0).reshape(2, 3)}
    shared = "cpu"
    a = {"format": "kdbounds-model-v1", "config": {"device": shared, "teacher_device": shared,
                                                    "names": [shared, shared]}, "state_dict": sd}
    b = {"format": _fresh("kdbounds-model-v1"),
         "config": {_fresh("device"): _fresh("cpu"), _fresh("teacher_device"): _fresh("cpu"),
                    "names": [_fresh("cpu"), _fresh("cpu")]}, "state_dict": sd}
    assert b["config"]["device"] is not b["config"]["teacher_device"]
    # the raw pickler does tell them apart (this is the effect being neutralised)
    assert pickle.dumps(a["config"]) != pickle.dumps(b["config"])
    atomic_save(a, tmp_path / "a.pt")
    atomic_save(b, tmp_path / "b.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


def test_interning_keeps_the_payload(tmp_path):
    payload = {"format": "kdbounds-model-v1", "config": {"lr": 0.1, "arch": "resnet8", "t": (1, "x")},
               "state_dict": {"w": torch.ones(2)}}
    atomic_save(payload, tmp_path / "m.pt")
    back = torch.load(tmp_path / "m.pt", weights_only=True)
    assert back["config"] == payload["config"] and torch.equal(back["state_dict"]["w"], torch.ones(2))
