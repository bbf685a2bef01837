"""Shared test configuration.

Hypothesis profiles: ``ci`` (derandomized) when ``CI`` is set, else ``dev``.
Every test runs with one torch intra-op thread (restored afterwards): the suite runs as two pytest
workers on two cores, and oversubscribed threads made small ops up to 100x slower on this machine.

Shared toy models (defined once): :class:`TinyCifarNet`, handed to tests by the ``tiny_net`` fixture.
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings
from torch import nn

from kdbounds.models import CifarModel

# CI (CI=true) draws the same hypothesis examples on every run, so a red CI always reproduces;
# local runs keep exploring new examples. Timing health checks are off: the 2 cores are shared.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session", autouse=True)
def _private_user_cache(tmp_path_factory):
    """The suite's decoded arrays and teacher bank in a folder of its own (``$KDBOUNDS_CACHE``, inherited by the
    subprocesses tests start; ``$KDBOUNDS_BANK`` unset): fake data sets never land in the user's
    ``~/.cache/kdbounds``. Real CIFAR-10 is decoded once per session."""
    saved = {k: os.environ.get(k) for k in ("KDBOUNDS_CACHE", "KDBOUNDS_BANK")}
    os.environ["KDBOUNDS_CACHE"] = str(tmp_path_factory.mktemp("kdbounds-user-cache"))
    os.environ.pop("KDBOUNDS_BANK", None)
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class TinyCifarNet(CifarModel):
    """Conv-BN-ReLU stages with the feature API of ``CifarModel`` (stage maps 8x8 and 4x4 on 8x8 inputs).

    Args:
        widths: channels of each stage.
        strides: stride of each stage's 3x3 convolution.
        num_classes: outputs of the linear head.
        seed: ``None`` keeps torch's default initialisation (drawn from the global generator);
            an integer draws the convolution weights from ``N(0, 0.3^2)`` with its own generator.
    """

    def __init__(self, widths=(2, 3), strides=(1, 2), num_classes=4, seed=None):
        super().__init__()
        g = None if seed is None else torch.Generator().manual_seed(seed)
        self.arch, self.num_classes = "tiny", num_classes
        self.stage_channels, self.feature_dim = tuple(widths), widths[-1]
        blocks, c = [], 3
        for w, s in zip(widths, strides):
            conv = nn.Conv2d(c, w, 3, s, 1, bias=False)
            if g is not None:
                with torch.no_grad():
                    conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * 0.3)
            blocks.append(nn.Sequential(conv, nn.BatchNorm2d(w), nn.ReLU()))
            c = w
        self.blocks = nn.ModuleList(blocks)
        self.classifier = nn.Linear(c, num_classes)

    def forward_features(self, x):
        stages = []
        for b in self.blocks:
            x = b(x)
            stages.append(x)
        return stages, x.mean((2, 3))


@pytest.fixture(scope="session")  # a class (stateless): also usable under hypothesis @given
def tiny_net():
    """The :class:`TinyCifarNet` factory: ``tiny_net(widths, strides=..., num_classes=..., seed=...)``."""
    return TinyCifarNet


def _kill_resume_check(tmp_path, script_text: str, n_epochs: int, kill_at: int = 1) -> None:
    """Run a training script (argv[1] = out folder; it SIGKILLs itself mid-epoch ``$KILL_AT_EPOCH``) three
    times: uninterrupted, killed, resumed; assert the resumed model file and loss log equal the uninterrupted."""
    import hashlib
    import json
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from kdbounds.distill.checkpoint import read_checkpoint

    script = tmp_path / "runner.py"
    script.write_text(script_text)
    root = Path(__file__).resolve().parents[1]

    def run(out, kill=None):
        env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
        env.pop("KILL_AT_EPOCH", None)
        if kill is not None:
            env["KILL_AT_EPOCH"] = str(kill)
        return subprocess.run([sys.executable, str(script), str(out)], env=env, capture_output=True, text=True,
                              timeout=300)

    def sha(p):
        return hashlib.sha256(Path(p).read_bytes()).hexdigest()

    full = run(tmp_path / "full")
    assert full.returncode == 0, full.stderr
    killed = run(tmp_path / "cut", kill_at)
    assert killed.returncode == -signal.SIGKILL
    assert read_checkpoint(tmp_path / "cut" / "checkpoint.pt")["epoch"] == kill_at
    assert not (tmp_path / "cut" / "model.pt").exists()
    resumed = run(tmp_path / "cut")
    assert resumed.returncode == 0, resumed.stderr
    assert sha(tmp_path / "cut" / "model.pt") == sha(tmp_path / "full" / "model.pt")
    logs = [[json.loads(l)["train_loss"] for l in open(tmp_path / d / "log.jsonl")] for d in ("full", "cut")]
    assert logs[0] == logs[1] and len(logs[0]) == n_epochs


@pytest.fixture(scope="session")
def kill_resume_check():
    """``kill_resume_check(tmp_path, script_text, n_epochs)``: kill -9 mid-epoch, resume, compare bytes."""
    return _kill_resume_check
