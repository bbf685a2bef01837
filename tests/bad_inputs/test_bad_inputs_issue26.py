"""Bad-input table, issue 26: a fresh set of cases beyond the earlier table (tests/bad_inputs/*).

Doors: ``certify()``'s data (labels out of range, negative, float or bool; NaN/inf, float64, uint8,
1-channel or wrongly sized images; for ``D_S`` and the held-out set, under both losses) and its scalar
arguments; ``DataSplit``/``make_split`` indices and labels; the execution options of every study script
(``--address`` format and reachability, ``--workers``, ``--lock-timeout``, ...) and their sizes against
CIFAR-10 (``--n-per-class 6000``, ``--n-test 20000``, ``--n-s 100000``). Each case asserts the
error type, that the message names the argument (case-insensitive substring), and that it fails in
under 0.5 CPU seconds (parse-time refusals never import torch), the least of three calls: CPU time of
this process rather than wall time, which a loaded machine stretches without any change in the code
(:func:`bad_input_helpers.refusal`). Oracle: each argument's documented domain.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from bad_input_helpers import CPU_LIMIT_S, refusal, script
from kdbounds.certificates.split import DataSplit, make_split
from kdbounds.pacbayes import GaussianKernel, certify

NAN, INF = math.nan, math.inf


def _kernels():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
    return GaussianKernel.from_model(net, 0.01), GaussianKernel.from_model(net, 0.02)


Q, P = _kernels()
X = torch.randn(12, 3, 8, 8)
Y = torch.arange(12) % 10


def _xy(x=None, y=None):
    return (X if x is None else x, Y if y is None else y)


BAD_DATA = [  # (id, (x, y), exception, words in the message)
    ("labels y+10", _xy(y=Y + 10), ValueError, "labels"),
    ("labels = classes", _xy(y=torch.full((12,), 10)), ValueError, "labels"),
    ("labels negative", _xy(y=Y - 1), ValueError, "labels"),
    ("labels float", _xy(y=Y.float()), TypeError, "labels"),
    ("labels float64", _xy(y=Y.double()), TypeError, "labels"),
    ("labels bool", _xy(y=Y > 4), TypeError, "labels"),
    ("labels 2-D", _xy(y=Y.view(12, 1)), ValueError, "labels"),
    ("labels shorter", _xy(y=Y[:5]), ValueError, "same"),
    ("images NaN", _xy(x=X.masked_fill(X > 1.5, NAN)), ValueError, "non-finite"),
    ("images inf", _xy(x=X.masked_fill(X > 1.5, INF)), ValueError, "non-finite"),
    ("images -inf", _xy(x=X.masked_fill(X < -1.5, -INF)), ValueError, "non-finite"),
    ("images float64", _xy(x=X.double()), TypeError, "dtype"),
    ("images float16", _xy(x=X.half()), TypeError, "dtype"),
    ("images uint8", _xy(x=(X.abs() * 50).to(torch.uint8)), TypeError, "uint8"),
    ("images int64", _xy(x=X.long()), TypeError, "dtype"),
    ("images 1-channel", _xy(x=X[:, :1]), ValueError, "shape"),
    ("images 16x16", _xy(x=torch.randn(12, 3, 16, 16)), ValueError, "shape"),
    ("images flat", _xy(x=X.flatten(1)[:, :50]), ValueError, "shape"),
]


def _certify(which, data, loss):
    if which == "data_s":
        return lambda: certify(Q, P, data, loss=loss)
    return lambda: certify(Q, P, (X, Y), loss=loss, test_data=data)


CERTIFY_DATA = [(f"certify {which} {loss}: {i}", _certify(which, d, loss), e, which if e else None, w)
                for which in ("data_s", "test_data") for loss in ("zero_one", "bounded_ce")
                for i, d, e, w in BAD_DATA if e is not None]


def _arg(**kw):
    return lambda: certify(Q, P, (X, Y), **kw)


CERTIFY_ARGS = [(f"certify {k}={v!r}", _arg(**{k: v}), e, k, None) for k, v, e in [
    ("n_draws", 0, ValueError), ("n_draws", -1, ValueError), ("n_draws", 1.5, TypeError), ("n_draws", True, TypeError),
    ("n_draws", "2", TypeError), ("test_draws", 0, ValueError), ("delta", 0.0, ValueError), ("delta", 1.0, ValueError),
    ("delta", NAN, ValueError), ("delta", -0.1, ValueError), ("delta_mc", 0.0, ValueError), ("delta_mc", INF, ValueError),
    ("n_grid", 0, ValueError), ("n_grid", 2.5, TypeError), ("n_grid_mc", 0, ValueError), ("p_min", 0.0, ValueError),
    ("p_min", 1.0, ValueError), ("p_min", NAN, ValueError), ("seed", -1, ValueError), ("seed", 0.5, TypeError),
    ("batch_size", 0, ValueError), ("chunk", 0, ValueError), ("loss", "hinge", ValueError), ("draws", "all", ValueError),
    ("mode", "fast", ValueError), ("n_t", 0, ValueError), ("n_t", -5, ValueError), ("n_t", 2.5, TypeError),
    ("trivial", 0.0, ValueError), ("trivial", 1.5, ValueError), ("trivial", NAN, ValueError), ("trivial", -0.2, ValueError),
]]


SPLIT = [(f"split: {i}", f, e, n, None) for i, f, e, n in [
    ("teacher floats", lambda: DataSplit(teacher=[0.5, 1.7], cert=[3], n_total=5), TypeError, "teacher"),
    ("cert floats", lambda: DataSplit(teacher=[0, 1], cert=[3.0], n_total=5), TypeError, "cert"),
    ("teacher bool", lambda: DataSplit(teacher=[True, False], cert=[3], n_total=5), TypeError, "teacher"),
    ("cert strings", lambda: DataSplit(teacher=[0], cert=["3"], n_total=5), TypeError, "cert"),
    ("teacher object", lambda: DataSplit(teacher=np.array([0, None]), cert=[3], n_total=5), TypeError, "teacher"),
    ("teacher empty", lambda: DataSplit(teacher=[], cert=[3], n_total=5), ValueError, "teacher"),
    ("cert empty", lambda: DataSplit(teacher=[0], cert=np.array([], int), n_total=5), ValueError, "cert"),
    ("teacher out of range", lambda: DataSplit(teacher=[0, 5], cert=[3], n_total=5), ValueError, "teacher"),
    ("cert negative", lambda: DataSplit(teacher=[0], cert=[-1], n_total=5), ValueError, "cert"),
    ("teacher repeats", lambda: DataSplit(teacher=[0, 0], cert=[3], n_total=5), ValueError, "teacher"),
    ("overlap", lambda: DataSplit(teacher=[0, 3], cert=[3], n_total=5), ValueError, "overlap"),
    ("n_total float", lambda: DataSplit(teacher=[0], cert=[3], n_total=5.5), TypeError, "n_total"),
    ("n_total 1", lambda: DataSplit(teacher=[0], cert=[3], n_total=1), ValueError, "n_total"),
    ("make_split empty labels", lambda: make_split(np.array([], int), 1), ValueError, "labels"),
    ("make_split one label", lambda: make_split(np.array([3]), 1), ValueError, "labels"),
    ("make_split float labels", lambda: make_split(np.array([0.0, 1.0, 1.0]), 1), ValueError, "labels"),
    ("make_split 2-D labels", lambda: make_split(np.zeros((3, 2), int), 1), ValueError, "labels"),
    ("make_split n_s=0", lambda: make_split(np.arange(10) % 2, 0), ValueError, "n_s"),
    ("make_split n_s=n", lambda: make_split(np.arange(10) % 2, 10), ValueError, "n_s"),
    ("make_split n_s=1.5", lambda: make_split(np.arange(10) % 2, 1.5), TypeError, "n_s"),
    ("make_split n_t too big", lambda: make_split(np.arange(10) % 2, 5, n_t=6), ValueError, "n_t"),
    ("make_split n_t=0", lambda: make_split(np.arange(10) % 2, 5, n_t=0), ValueError, "n_t"),
    ("make_split seed=-1", lambda: make_split(np.arange(10) % 2, 5, seed=-1), ValueError, "seed"),
]]

STUDY_SCRIPTS = ("functional_transfer", "sharpness_vs_gap", "pid_transfer", "nuisance_teacher", "certify_flatness",
                 "certify_students")
EXECUTION = [  # (argv, words in the message)
    (["--executor", "ray", "--address", "garbage"], "--address"),
    (["--executor", "ray", "--address", "host:"], "--address"),
    (["--executor", "ray", "--address", ":6379"], "--address"),
    (["--executor", "ray", "--address", "host:0"], "--address"),
    (["--executor", "ray", "--address", "host:70000"], "--address"),
    (["--executor", "ray", "--address", "ray://"], "--address"),
    (["--executor", "ray", "--address", "http://h/x:1"], "--address"),
    (["--executor", "ray", "--address", "127.0.0.1:1"], "--address"),
    (["--executor", "ray", "--workers", "100000"], "--workers"),
    (["--workers", "3"], "--workers"),
    (["--address", "127.0.0.1:6379"], "--address"),
    (["--executor", "dask"], "--executor"),
    (["--lock-timeout", "-1"], "--lock-timeout"),
    (["--lock-timeout", "inf"], "--lock-timeout"),
    (["--lock-timeout", "soon"], "--lock-timeout"),
    (["--threads", "0"], "--threads"),
    (["--max-retries", "-1"], "--max-retries"),
    (["--workers", "0"], "--workers"),
]


def _parse(name, argv):
    return lambda: script(name).parse_args(argv)


CLI = [(f"{name} {' '.join(argv)}", _parse(name, argv), SystemExit, flag, None)
       for name in STUDY_SCRIPTS for argv, flag in EXECUTION]
CLI += [("certify_students --seeds 0 0", _parse("certify_students", ["--seeds", "0", "0"]), SystemExit, "--seeds", None),
        ("certify_students --merge without --out", _parse("certify_students", ["--merge", "x"]), SystemExit, "--merge",
         None),
        ("certify_students --merge empty folder", _parse("certify_students", ["--merge", "/", "--out", "/tmp"]),
         SystemExit, "--merge", "results.json")]

SIZES = [  # sizes beyond CIFAR-10, refused at parse time (the message says how many there are)
    ("functional_transfer", ["--n-per-class", "6000"], "--n-per-class"),
    ("functional_transfer", ["--n-test", "20000"], "--n-test"),
    ("sharpness_vs_gap", ["--n-per-class", "5001"], "--n-per-class"),
    ("nuisance_teacher", ["--n-per-class", "6000"], "--n-per-class"),
    ("nuisance_teacher", ["--test-per-class", "1001"], "--test-per-class"),
    ("certify_flatness", ["--n-s", "100000"], "--n-s"),
    ("certify_flatness", ["--n-s", "50000"], "--n-s"),
    ("certify_flatness", ["--n-t", "60000"], "--n-t"),
    ("certify_flatness", ["--test-n", "20000"], "--test-n"),
]
CLI += [(f"{name} {' '.join(argv)}", _parse(name, argv), SystemExit, flag, "CIFAR-10 has") for name, argv, flag in SIZES]

CASES = [(i, f, e, n, w) for i, f, e, n, w in CERTIFY_DATA] + CERTIFY_ARGS + SPLIT + CLI


def test_table_is_large_enough():
    assert len(CASES) >= 150, len(CASES)


@pytest.mark.parametrize("thunk,exc,name,words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_named_and_refused_fast(thunk, exc, name, words, capsys):
    info, cpu = refusal(thunk, exc)  # the least CPU time of three calls (the first may pay one-off imports)
    text = capsys.readouterr().err if exc is SystemExit else str(info.value)
    if exc is SystemExit:
        assert info.value.code == 2 and "Traceback" not in text
    for w in (name, words):
        if w is not None:
            assert w.lower() in text.lower(), text
    assert cpu < CPU_LIMIT_S, f"{cpu:.2f} CPU s before the refusal"


def test_study_scripts_parse_without_torch():
    """Every study script answers a bad flag before torch is imported (subprocess: a clean interpreter)."""
    import subprocess
    import sys

    from bad_input_helpers import ROOT

    code = ("import sys, importlib.util as u\n"
            "for n in %r:\n"
            "    s = u.spec_from_file_location('x' + n, f'experiments/{n}.py'); m = u.module_from_spec(s)\n"
            "    s.loader.exec_module(m)\n"
            "    try: m.parse_args(['--threads', '0'])\n"
            "    except SystemExit: pass\n"
            "print('torch' in sys.modules)\n") % (STUDY_SCRIPTS,)
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.stdout.strip() == "False", p.stdout + p.stderr
