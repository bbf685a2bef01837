"""``learn_posterior``: a PAC-Bayes posterior for any ``nn.Module``, through the trainer's own step.

Oracles: the project's CLI trainer (``kdbounds.distill.train`` with methods ``pbb``/``pbkd``, read back with
``posterior_from_run``) — same prior file, data order, seed and hyper-parameters must give the same mean
and scale tensors, bit for bit; ``torch.distributions.kl_divergence`` for the differentiable KL with
per-element prior scales (which the trainer, with one ``sigma_prior``, never exercises); the prior's
frozen tensors, copied before the call, for "BatchNorm statistics stay the prior's"; and a forward-pass
counter for "every argument is checked before any work".
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Normal, kl_divergence
from torch.utils.data import DataLoader, TensorDataset

from kdbounds import GaussianKernel, check_compatible, kernel_kl, learn_posterior
from kdbounds.data import TensorLoader
from kdbounds.distill import TrainConfig, TrainingDiverged, load_checkpoint_model, train
from kdbounds.distill.pbb import gaussian_kl
from kdbounds.models import build_model
from kdbounds.runs.posteriors import posterior_from_run, prior_from_run


def _cifar(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    y = np.arange(n) % 10
    return x, y, x[:10], y[:10]


@pytest.fixture(scope="module")
def prior_files(tmp_path_factory):
    """A model file per architecture, trained one epoch on D_T (the prior's centre and pbkd's teacher)."""
    root = tmp_path_factory.mktemp("priors")
    out = {}
    for arch in ("mlp256", "resnet8"):
        cfg = TrainConfig(arch=arch, epochs=1, batch_size=20, lr=0.05, device="cpu", augment=False, seed=1)
        out[arch] = train(cfg, root / arch, data=_cifar(seed=1), progress=False).paths["model"]
    return out


# (method, arch, channels_last, extra): mlp256 with channels-last inputs; resnet8 (convolutions, BatchNorm
# frozen to the prior's) with pbkd, a starting scale and fclassic
EQUAL_CASES = [
    ("pbb", "mlp256", True, {}),
    ("pbkd", "resnet8", False, {"sigma_init": 0.03, "objective": "fclassic", "alpha": 0.5, "T": 2.0}),
]


@pytest.mark.parametrize("method, arch, channels_last, extra", EQUAL_CASES, ids=[c[0] for c in EQUAL_CASES])
def test_same_kernel_as_the_cli_trainer(tmp_path, prior_files, method, arch, channels_last, extra):
    path, data = prior_files[arch], _cifar()
    mk = {"prior": path, "sigma_prior": 0.02, "n_bound": 30, "delta": 0.05, **extra}
    cfg = TrainConfig(arch=arch, epochs=2, batch_size=20, lr=0.005, momentum=0.9, weight_decay=5e-4, device="cpu",
                      augment=False, schedule="cosine", seed=3, method=method, method_kwargs=mk,
                      channels_last=channels_last, teacher_ckpt=path if method == "pbkd" else None)
    run = train(cfg, tmp_path / "cli", data=data, progress=False)
    q_cli, p_cli = posterior_from_run(run), prior_from_run(run)

    prior = GaussianKernel.from_model(load_checkpoint_model(path), 0.02)
    # the trainer's own training loader (same seed: the same order every epoch, through set_epoch)
    loader = TensorLoader(data[0], data[1], batch_size=20, shuffle=True, augment=False, seed=3,
                          normalize="cifar10", channels_last=channels_last)
    list(loader)  # a loader already iterated once (it advanced to epoch 1): learn_posterior restarts it at 0
    q = learn_posterior(build_model(arch, seed=99), prior, loader, n_bound=30, method=method, delta=0.05,
                        teacher=load_checkpoint_model(path) if method == "pbkd" else None, epochs=2, lr=0.005,
                        momentum=0.9, weight_decay=5e-4, schedule="cosine", seed=3, progress=False, **extra)
    assert q.names == q_cli.names == prior.names
    for n in q.names:
        assert torch.equal(q.mean[n], q_cli.mean[n]), n
        assert torch.equal(q.std[n], q_cli.std[n]), n
        assert torch.equal(prior.mean[n], p_cli.mean[n]), n
    assert any(not torch.equal(q.mean[n], prior.mean[n]) for n in q.names)  # it moved: not a trivial equality
    assert set(q.frozen) == set(q_cli.frozen)
    for n, t in q.frozen.items():  # BatchNorm statistics: the prior's, in both
        assert torch.equal(t, q_cli.frozen[n]), n
    assert kernel_kl(q, prior).total == kernel_kl(q_cli, p_cli).total > 0


class UserNet(nn.Module):
    """A user's own network with BatchNorm, a buffer the certificate must keep frozen."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 12), nn.BatchNorm1d(12), nn.ReLU())
        self.head = nn.Linear(12, 3)
        self.forwards = 0

    def forward(self, x):
        self.forwards += 1
        return self.head(self.body(x))


def _user_data(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()


def _trained_user_net():
    torch.manual_seed(0)
    net = UserNet()
    x, y = _user_data()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(20):  # the user's own loop: BatchNorm statistics move away from (0, 1)
        loss = nn.functional.cross_entropy(net(x * 2 + 1), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def test_user_module_with_batchnorm_keeps_the_prior_buffers_and_is_not_modified():
    net = _trained_user_net()
    prior = GaussianKernel.from_model(net, 0.05)
    assert not torch.equal(prior.frozen["body.1.running_mean"], torch.zeros(12))
    frozen_before = {n: t.clone() for n, t in prior.frozen.items()}
    state_before = {n: t.clone() for n, t in net.state_dict().items()}
    net.train()  # a module left in train mode: learn_posterior must not update its statistics
    x, y = _user_data(seed=1)
    q = learn_posterior(net, prior, DataLoader(TensorDataset(x, y), batch_size=12, shuffle=True), n_bound=48,
                        epochs=3, lr=0.05, seed=0, progress=False)
    assert net.training and all(m.training for m in net.modules())  # flags restored
    for n, t in net.state_dict().items():
        assert torch.equal(t, state_before[n]), n  # the user's module is untouched
    for n, t in prior.frozen.items():
        assert torch.equal(t, frozen_before[n]), n  # no running-statistics update through functional_call
        assert torch.equal(q.frozen[n], t), n
    check_compatible(q, prior)  # same space, same buffers: a finite KL, certifiable against the prior
    kl = kernel_kl(q, prior)
    assert 0 < kl.total < float("inf") and kl.mean_term > 0
    assert q.model is net


def test_gaussian_kl_with_per_element_prior_scales_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    shapes = {"a": (3, 4), "b": (5,)}
    mq, mp = ({n: torch.randn(s, generator=g, dtype=torch.float64) for n, s in shapes.items()} for _ in range(2))
    sq, sp = ({n: torch.rand(s, generator=g, dtype=torch.float64) + 0.1 for n, s in shapes.items()} for _ in range(2))
    ref = sum(float(kl_divergence(Normal(mq[n], sq[n]), Normal(mp[n], sp[n])).sum()) for n in shapes)
    assert float(gaussian_kl(mq, sq, mp, sp)) == pytest.approx(ref, rel=1e-12)


def test_non_isotropic_prior_kernel_learns_and_its_kl_is_the_kernels():
    """A prior with a scale per tensor: the learnt kernel's KL (kernel_kl, float64) equals the training KL."""
    net = _trained_user_net()
    prior = GaussianKernel.from_model(net, {n: (0.02 if "head" in n else 0.08) for n, _ in net.named_parameters()})
    q = learn_posterior(net, prior, _user_data(), n_bound=48, batch_size=16, epochs=2, lr=0.05, progress=False)
    train_kl = gaussian_kl({n: q.mean[n].double() for n in q.names}, {n: q.std[n].double() for n in q.names},
                           {n: prior.mean[n].double() for n in q.names}, {n: prior.std[n].double() for n in q.names})
    assert kernel_kl(q, prior).total == pytest.approx(float(train_kl), rel=1e-12)
    assert q.std["head.weight"].mean() < 0.05 < q.std["body.0.weight"].mean()  # each started at its prior's scale


def test_pbkd_uses_the_teacher_and_alpha_zero_is_pbb():
    net = _trained_user_net()
    torch.manual_seed(5)
    teacher = UserNet().eval()
    prior = GaussianKernel.from_model(net, 0.05)
    common = dict(n_bound=48, batch_size=16, epochs=2, lr=0.05, seed=4, progress=False)
    pbb = learn_posterior(net, prior, _user_data(), **common)
    zero = learn_posterior(net, prior, _user_data(), method="pbkd", teacher=teacher, alpha=0.0, **common)
    kd = learn_posterior(net, prior, _user_data(), method="pbkd", teacher=teacher, alpha=1.0, **common)
    assert teacher.forwards > 0
    for n in pbb.names:
        assert torch.equal(pbb.mean[n], zero.mean[n]) and torch.equal(pbb.std[n], zero.std[n]), n
    assert any(not torch.equal(pbb.mean[n], kd.mean[n]) for n in pbb.names)


def test_seed_decides_the_noise_and_the_global_rng_is_untouched():
    net, x_y = _trained_user_net(), _user_data()
    prior = GaussianKernel.from_model(net, 0.05)
    common = dict(n_bound=48, batch_size=16, lr=0.05, progress=False)
    state = torch.random.get_rng_state()
    a, b, c = (learn_posterior(net, prior, x_y, seed=s, **common) for s in (0, 0, 1))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(a.mean[n], b.mean[n]) for n in a.names)
    assert any(not torch.equal(a.mean[n], c.mean[n]) for n in a.names)


def test_non_finite_objective_is_an_error():
    net = _trained_user_net()
    x, y = _user_data()
    x[3, 2] = float("nan")
    with pytest.raises(TrainingDiverged, match="NaN"):
        learn_posterior(net, GaussianKernel.from_model(net, 0.05), (x, y), n_bound=48, progress=False)


BAD = [
    ({"model": "net"}, TypeError, "^model: expected an nn.Module"),
    ({"model": nn.Linear(6, 3)}, ValueError, "^model: its parameters and buffers are not the prior's"),
    ({"prior": "prior"}, TypeError, "^prior: expected a GaussianKernel"),
    ({"data": 42}, TypeError, "^data: expected"),
    ({"data": "x"}, TypeError, "^data: expected"),
    ({"method": "kd"}, ValueError, "^method: expected one of 'pbb', 'pbkd'"),
    ({"method": "pbkd"}, TypeError, "^teacher: method 'pbkd'"),
    ({"teacher": "T"}, ValueError, "^teacher: method 'pbb' uses no teacher"),
    ({"n_bound": 0}, ValueError, "^n_bound: expected \\|D_S\\|"),
    ({"n_bound": None}, ValueError, "n_bound=None must be of type int"),
    ({"delta": 1.0}, ValueError, "^delta: expected a number in \\(0, 1\\)"),
    ({"delta": float("nan")}, ValueError, "delta=nan must be finite"),
    ({"p_min": 0.0}, ValueError, "^p_min: expected a number in \\(0, 1\\)"),
    ({"objective": "mcallester"}, ValueError, "^objective: expected one of"),
    ({"kl_weight": -1.0}, ValueError, "^kl_weight: expected a finite number >= 0"),
    ({"sigma_init": 0.0}, ValueError, "^sigma_init: expected a finite number > 0, got 0.0; or None"),
    ({"method": "pbkd", "alpha": -1.0, "teacher": "T"}, ValueError, "^alpha: expected a finite number >= 0"),
    ({"method": "pbkd", "T": 0.0, "teacher": "T"}, ValueError, "^T: expected a finite number > 0"),
    ({"epochs": 0}, ValueError, "^epochs: expected an integer >= 1"),
    ({"batch_size": 0}, ValueError, "^batch_size: expected an integer >= 1"),
    ({"lr": 0.0}, ValueError, "^lr: expected a finite number > 0"),
    ({"momentum": 1.0}, ValueError, "^momentum: expected a number in \\[0, 1\\)"),
    ({"schedule": "triangular"}, ValueError, "^schedule: expected one of 'constant', 'cosine', 'step'"),
    ({"seed": -1}, ValueError, "^seed: expected an integer >= 0"),
    ({"grad_clip": 0.0}, ValueError, "^grad_clip: expected a finite number > 0, got 0.0; or None"),
    ({"progress": "yes"}, TypeError, "^progress: expected True or False"),
]


@pytest.mark.parametrize("kw, exc, msg", BAD, ids=[next(iter(k)) + f"-{i}" for i, (k, _, _) in enumerate(BAD)])
def test_bad_input_is_refused_before_any_forward_pass(kw, exc, msg):
    net = _trained_user_net()
    teacher = UserNet()
    args = {"model": net, "prior": GaussianKernel.from_model(net, 0.05), "data": _user_data(), "n_bound": 48,
            "progress": False, **kw}
    if args.get("teacher") == "T":
        args["teacher"] = teacher
    net.forwards = 0
    with pytest.raises(exc, match=msg):
        learn_posterior(**args)
    assert net.forwards == 0 and teacher.forwards == 0


# ---- what loss= means on a pbb/pbkd progress line (objective_note) ----------------------------------
@pytest.mark.parametrize("kind", ["fquad", "fclassic"])
@pytest.mark.parametrize("kl", [0.0, 3.0, 1e4, 1e7])
@pytest.mark.parametrize("emp", [0.0, 0.3, 1.0])
def test_objective_note_floor_is_a_floor_of_the_objective(kind, kl, emp):
    from kdbounds.distill.pbb import pac_bayes_objective
    from kdbounds.runs.posterior_learning import objective_note

    n, delta = 2000, 0.025
    value = float(pac_bayes_objective(torch.tensor(emp, dtype=torch.float64), torch.tensor(kl, dtype=torch.float64),
                                      n, delta, kind))
    floor = 2 * kl / n if kind == "fquad" else (kl / (2 * n)) ** 0.5
    assert value >= floor * (1 - 1e-12)
    note = objective_note("pbb", kind)
    assert ("2·KL(Q‖P)/n_bound" in note) == (kind == "fquad") and "not a cross-entropy" in note
    assert ("KD" in objective_note(("pbb", "pbkd"), kind)) and "KD" not in note
    with pytest.raises(ValueError, match="objective"):
        objective_note("pbb", "quad")


def test_the_training_cli_says_what_a_pbb_loss_is_before_it_trains(monkeypatch, capsys):
    import kdbounds.runs.cache as run_cache
    from kdbounds import train as cli

    def stop(*args, **kwargs):
        raise ValueError("stopped before training")

    monkeypatch.setattr(run_cache, "train_cached", stop)
    code = cli.main(["distill", "--method", "pbb", "--arch", "mlp256", "--method-arg", "prior=random:0",
                     "--method-arg", "n_bound=100", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "stopped before training" in err
    assert err.index("note: loss= on a pbb run's progress line is its training objective") < err.index("stopped")
    code = cli.main(["distill", "--method", "kd", "--arch", "mlp256", "--teacher", __file__])
    assert "note: loss=" not in capsys.readouterr().err  # only the PAC-Bayes methods
