"""The teacher bank: one file per teacher whoever asks (a study, two processes at once, the CLI)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kdbounds.runs.bank import BankTeacher, bank_root, bank_teacher

ROOT = Path(__file__).resolve().parents[2]

_ASK = textwrap.dedent("""
    import sys
    import numpy as np
    import torch
    from kdbounds.runs.bank import BankTeacher, bank_teacher
    torch.set_num_threads(1)
    g = np.random.default_rng(0)
    x = g.integers(0, 255, (40, 32, 32, 3)).astype(np.uint8)
    y = np.arange(40) % 4
    spec = BankTeacher(arch="airbench_s", epochs=2, batch_size=16, fields={"device": "cpu"},
                       recipe_kwargs={"whiten_images": 16, "tta_level": 0})
    r = bank_teacher(spec, data=(x[:32], y[:32], x[32:], y[32:]))
    print("MODEL", r.paths["model"])
""")


def test_two_processes_asking_at_once_train_the_teacher_once(tmp_path):
    script = tmp_path / "ask.py"
    script.write_text(_ASK)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "KDBOUNDS_BANK": str(tmp_path / "bank"),
           "KDBOUNDS_PROGRESS": "lines"}
    procs = [subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    models = {line.split(" ", 1)[1] for o in outs for line in o[0].splitlines() if line.startswith("MODEL")}
    assert len(models) == 1 and Path(models.pop()).is_file()
    epoch_lines = sum(o[1].count("2/2 eps") for o in outs)  # the trainer's last progress line
    assert epoch_lines == 1, [o[1] for o in outs]
    again = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert "teacher bank: reusing airbench_s-fast-e2-s0" in again.stderr and "eps" not in again.stderr


def test_bank_root_order(tmp_path, monkeypatch):
    monkeypatch.setenv("KDBOUNDS_BANK", str(tmp_path / "b"))
    assert bank_root() == tmp_path / "b" and bank_root(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("KDBOUNDS_BANK")
    monkeypatch.setenv("KDBOUNDS_CACHE", str(tmp_path / "c"))
    assert bank_root() == tmp_path / "c" / "bank"


def test_bank_teacher_refuses_bad_fields_before_any_work():
    with pytest.raises(ValueError, match="epochs"):
        BankTeacher(epochs=0)
    with pytest.raises(ValueError, match="lookahed"):
        BankTeacher(recipe_kwargs={"lookahed": False})
    with pytest.raises(ValueError, match="recipe"):
        BankTeacher(recipe="slow")


@pytest.mark.skipif(not os.environ.get("KDBOUNDS_DATA"), reason="needs real CIFAR-10 ($KDBOUNDS_DATA)")
def test_cli_bank_writes_the_file_a_study_gets(tmp_path, monkeypatch):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "KDBOUNDS_BANK": str(tmp_path / "bank")}
    cli = subprocess.run([sys.executable, "-m", "kdbounds.train", "teacher", "--recipe", "fast", "--arch", "airbench_s",
                          "--epochs", "1", "--batch-size", "50", "--n-per-class", "5", "--recipe-arg", "tta_level=0",
                          "--device", "cpu", "--bank", "--no-progress", "--threads", "1"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert cli.returncode == 0, cli.stderr[-2000:]
    spec = BankTeacher(arch="airbench_s", epochs=1, batch_size=50, n_per_class=5, recipe_kwargs={"tta_level": 0},
                       fields={"device": "cpu"})
    monkeypatch.setenv("KDBOUNDS_BANK", str(tmp_path / "bank"))
    r = bank_teacher(spec, progress=False)
    assert f'"model": "{r.paths["model"]}"' in cli.stdout


def test_first_use_cost_names_the_one_thread_time_when_training_on_one_thread():
    # A Ray worker with --threads 1 trained seed 5's teacher in 42 min while the line said "about 23 min on 2 idle
    # cores"; on one thread the line now gives the one-thread figure too.
    import torch

    from kdbounds.runs.bank import _ONE_THREAD_FACTOR, _cost_words

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert _cost_words(1380.0) == ", about 23 min on 2 idle cores"
        torch.set_num_threads(1)
        assert _cost_words(1380.0) == (f", about 23 min on 2 idle cores (this process uses 1 thread: about "
                                       f"{1380.0 * _ONE_THREAD_FACTOR / 60:.0f} min)")
        assert 40 <= 1380.0 * _ONE_THREAD_FACTOR / 60 <= 44
    finally:
        torch.set_num_threads(before)
