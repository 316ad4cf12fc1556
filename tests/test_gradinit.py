"""GradInit (zerofwht.gradinit): the multipliers' optimizer on hand-computed sequences, the whole
procedure on a one-parameter model computed by hand, and on small models: the loss after one
target-optimizer step is lower with GradInit than without; determinism; batch norm; errors."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import zerofwht
from zerofwht.gradinit import MultiplierAdam, gradinit, multiplier_grad

B1, B2, EPS = 0.9, 0.999, 1e-8


# ----------------------------------------------------------------------------------------------
# The multipliers' Adam, by hand
# ----------------------------------------------------------------------------------------------
def test_multiplier_adam_hand_sequence():
    opt = MultiplierAdam(["w"], lr=0.1, min_scale=0.0, grad_clip=0.0)
    # step 1, g = 2: m = 0.2, v = 0.004; m_hat = 2, v_hat = 4 -> alpha = 1 - 0.1 * 2 / (2 + eps)
    opt.step({"w": 2.0})
    a1 = 1 - 0.1 * 2 / (2 + EPS)
    assert opt.alpha["w"] == pytest.approx(a1, abs=1e-15)
    # step 2, g = -1: m = 0.9 * 0.2 - 0.1 = 0.08, v = 0.999 * 0.004 + 0.001 = 0.004996
    # m_hat = 0.08 / 0.19, v_hat = 0.004996 / 0.001999
    opt.step({"w": -1.0})
    a2 = a1 - 0.1 * (0.08 / 0.19) / (math.sqrt(0.004996 / 0.001999) + EPS)
    assert opt.alpha["w"] == pytest.approx(a2, abs=1e-14)
    assert a2 == pytest.approx(0.87337, abs=1e-5)  # 0.9 - 0.1 * 0.42105 / 1.58091
    # step 3, g = 0.5: m = 0.072 + 0.05 = 0.122, v = 0.004991004 + 0.00025 = 0.005241004
    opt.step({"w": 0.5})
    a3 = a2 - 0.1 * (0.122 / (1 - 0.9 ** 3)) / (math.sqrt(0.005241004 / (1 - 0.999 ** 3)) + EPS)
    assert opt.alpha["w"] == pytest.approx(a3, abs=1e-14)


def test_multiplier_adam_clip_floor_cap_and_separate_constraint_state():
    opt = MultiplierAdam(["a", "b"], lr=0.5, min_scale={"a": 0.7, "b": 0.0}, max_scale=1.2,
                         grad_clip=1.0)
    opt.step({"a": 100.0, "b": -100.0})     # first step moves by lr * sign: 0.5 / 1.5
    assert opt.alpha == {"a": 0.7, "b": 1.2}  # floored / capped
    # a constraint step starts fresh moments: again exactly lr * sign (up to eps)
    opt.step({"b": 3.0}, constraint=True)
    assert opt.alpha["b"] == pytest.approx(1.2 - 0.5, abs=1e-7)
    assert opt.state["b"]["objective"]["t"] == 1 and opt.state["b"]["constraint"]["t"] == 1
    assert opt.state["b"]["constraint"]["m"] == pytest.approx(0.1)  # clipped g = 1
    assert opt.state["a"]["constraint"]["t"] == 0  # "a" was not in the step


def test_multiplier_grad_is_chain_rule():
    g = torch.Generator().manual_seed(0)
    theta0 = torch.randn(4, 3, generator=g, dtype=torch.float64)
    alpha = torch.tensor(0.37, dtype=torch.float64, requires_grad=True)
    target = torch.randn(4, 3, generator=g, dtype=torch.float64)
    p = (alpha * theta0).detach().requires_grad_()
    f = lambda w: ((w - target) ** 3).sum()  # noqa: E731
    (dp,) = torch.autograd.grad(f(p), p)
    (da,) = torch.autograd.grad(f(alpha * theta0), alpha)
    assert multiplier_grad(dp, p, theta0.norm().item()) == pytest.approx(da.item(), rel=1e-12)
    assert multiplier_grad(dp, torch.zeros(4, 3), 1.0) == 0.0


# ----------------------------------------------------------------------------------------------
# The whole procedure on y = w x, L = mean((w x - t)^2), by hand
# ----------------------------------------------------------------------------------------------
def test_gradinit_one_parameter_hand_computed():
    # w0 = 2, x = 1, t = 0: L(w) = w^2, g = 2w, ||g|| = |2w|, eta = 0.1, gamma = 3.5,
    # gradinit_lr = 0.1, grad_clip = 50. multiplier gradient = dF/dw * w0 (w = alpha * w0 > 0).
    model = nn.Linear(1, 1, bias=False, dtype=torch.float64)
    with torch.no_grad():
        model.weight.fill_(2.0)
    batch = (torch.ones(1, 1, dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64))
    hist = []
    scales = gradinit(model, nn.MSELoss(), [batch], lr=0.1, gradinit_lr=0.1, gradinit_iters=4,
                      grad_norm_bound=3.5, grad_clip=50.0, min_scale=0.01, overlap=False,
                      progress=False, history=hist)
    # it 1: w = 2, |g| = 4 > 3.5 -> constraint: d|g|/dw = 2, alpha-grad = 2 * 2 = 4;
    #       first Adam step (constraint moments): alpha = 1 - 0.1 * 4 / (4 + eps)
    a1 = 1 - 0.1 * 4 / (4 + EPS)
    # it 2: w = 1.8, |g| = 3.6 > 3.5 -> constraint again, alpha-grad 4; m = 0.76, v = 0.031984
    a2 = a1 - 0.1 * (0.76 / 0.19) / (math.sqrt(0.031984 / 0.001999) + EPS)
    # it 3: w = 2 * a2 = 1.6, |g| = 3.2 <= 3.5 -> objective: w' = w - 0.1 * 2w = 0.8 w = 1.28,
    #       F = w'^2 / 0.1, dF/dw = 2 w' / 0.1 = 25.6 (g detached), alpha-grad = 51.2 -> clip 50;
    #       first step of the objective moments: alpha = a2 - 0.1 * 50 / (50 + eps)
    w3 = 2 * a2
    assert w3 == pytest.approx(1.6, abs=1e-7)
    a3 = a2 - 0.1 * 50 / (50 + EPS)
    # it 4: w = 2 * a3 = 1.4, w' = 1.12, alpha-grad = 2 * 2 * 1.12 / 0.1 * ... = 44.8 (no clip):
    #       m = 0.9 * 5 + 0.1 * 44.8 = 8.98, v = 0.999 * 2.5 + 0.001 * 44.8^2 = 4.50454
    w4 = 2 * a3
    ga4 = 2 * (0.8 * w4) / 0.1 * 2.0
    assert ga4 == pytest.approx(44.8, abs=1e-5)
    m4 = 0.9 * (0.1 * 50) + 0.1 * ga4
    v4 = 0.999 * (0.001 * 50 ** 2) + 0.001 * ga4 ** 2
    a4 = a3 - 0.1 * (m4 / 0.19) / (math.sqrt(v4 / 0.001999) + EPS)
    assert a4 == pytest.approx(0.60044, abs=1e-4)
    assert [h["constrained"] for h in hist] == [True, True, False, False]
    got = [h["scales"]["weight"] for h in hist]
    assert got == pytest.approx([a1, a2, a3, a4], abs=1e-12)
    assert scales == {"weight": pytest.approx(a4, abs=1e-12)}
    assert model.weight.item() == pytest.approx(2 * a4, abs=1e-12)
    assert hist[2]["loss_after_step"] == pytest.approx(1.28 ** 2, abs=1e-6)


def test_gradinit_adam_target_hand_computed():
    # Adam's first step: w' = w - eta * sign(g); norm is |g| (L1). w0 = 2, L = w^2, eta = 0.5:
    # w' = 2 - 0.5 = 1.5, dF/dw = 2 * 1.5 / 0.5 = 6, alpha-grad = 12 -> clip 1 -> alpha = 1 - lr.
    model = nn.Linear(1, 1, bias=False, dtype=torch.float64)
    with torch.no_grad():
        model.weight.fill_(2.0)
    batch = (torch.ones(1, 1, dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64))
    hist = []
    gradinit(model, nn.MSELoss(), [batch], optimizer="adam", lr=0.5, gradinit_lr=0.05,
             gradinit_iters=1, grad_norm_bound=10.0, overlap=False, progress=False, history=hist)
    assert hist[0]["loss_after_step"] == pytest.approx(2.25)
    assert model.weight.item() == pytest.approx(2 * (1 - 0.05 * 1 / (1 + EPS)), abs=1e-12)


def test_min_scale_floor_and_zero_norm_skipped():
    model = nn.Linear(3, 2, dtype=torch.float64)
    with torch.no_grad():
        model.weight.fill_(1.0)
        model.bias.zero_()  # zero norm: skipped, keeps scale 1 and stays zero
    x = torch.randn(8, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    # gamma tiny: every step is a constraint step shrinking the weight; the floor stops it.
    scales = gradinit(model, nn.MSELoss(), [(x, torch.zeros(8, 2, dtype=torch.float64))],
                      gradinit_lr=0.5, gradinit_iters=10, grad_norm_bound=1e-9, min_scale=0.25,
                      progress=False)
    assert scales["weight"] == 0.25 and scales["bias"] == 1.0
    assert torch.equal(model.weight, torch.full((2, 3), 0.25, dtype=torch.float64))
    assert torch.equal(model.bias, torch.zeros(2, dtype=torch.float64))


# ----------------------------------------------------------------------------------------------
# Agreement with the authors' released algorithm on three details
# ----------------------------------------------------------------------------------------------
def test_multiplier_at_zero_is_not_revived_by_old_moments():
    # One objective step pushes the multiplier up (objective m < 0), then constraint steps (their
    # own moments) drive it to its floor 0. A later objective step sees gradient 0 (zero norm);
    # the objective moments of step 1 would give 0 + 0.5 * (0.09 / 0.19) / sqrt(0.000999 /
    # 0.001999) = 0.335 if they were applied. The authors skip a tensor at zero norm.
    opt = MultiplierAdam(["b"], lr=0.5, min_scale=0.0, grad_clip=0.0)
    opt.step({"b": -1.0})
    assert opt.alpha["b"] == pytest.approx(1.5, abs=1e-7)
    for _ in range(4):
        opt.step({"b": 1.0}, constraint=True)
    assert opt.alpha["b"] == 0.0
    opt.step({"b": 0.0})
    opt.step({"b": -5.0}, constraint=True)
    assert opt.alpha["b"] == 0.0
    assert opt.state["b"]["objective"]["t"] == 1 and opt.state["b"]["constraint"]["t"] == 4


def test_gradinit_bias_at_zero_stays_zero():
    # y = w x + b, w0 = 1, b0 = 0.5, target 1, one sample: objective and constraint steps
    # alternate; the bias multiplier reaches exactly 0 on an objective step and the next
    # constraint step would have revived it (0.67 before the fix).
    model = nn.Linear(1, 1, dtype=torch.float64)
    with torch.no_grad():
        model.weight.fill_(1.0)
        model.bias.fill_(0.5)
    batch = (torch.ones(1, 1, dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64))
    hist = []
    scales = gradinit(model, nn.MSELoss(), [batch], lr=0.1, gradinit_lr=1.0, gradinit_iters=8,
                      grad_norm_bound=2.0, grad_clip=0.0, progress=False, history=hist)
    bias = [r["scales"]["bias"] for r in hist]
    first = bias.index(0.0)  # ValueError (test fails) if the multiplier never reaches 0
    assert first < len(bias) - 2 and any(r["constrained"] for r in hist[first + 1:])
    assert bias[first:] == [0.0] * (len(bias) - first), bias
    assert scales["bias"] == 0.0 and model.bias.item() == 0.0


class _Recorder(nn.Module):
    """A linear model that records the sample ids (its first input column) of every forward."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 1, dtype=torch.float64)
        self.seen = []

    def forward(self, x):
        self.seen.append([int(v) for v in x[:, 0].tolist()])
        return self.lin(x)


def _id_batches(count, rows=2):
    # batch k holds samples 10k .. 10k + rows - 1; column 0 is the sample id, column 1 a feature
    out = []
    for k in range(count):
        ids = torch.arange(10 * k, 10 * k + rows, dtype=torch.float64)
        x = torch.stack([ids, torch.linspace(-1, 1, rows, dtype=torch.float64)], dim=1)
        out.append((x, torch.zeros(rows, 1, dtype=torch.float64)))
    return out


@pytest.mark.parametrize("overlap", [True, False])
def test_s1_s2_batches_match_authors(overlap):
    model = _Recorder()
    with torch.no_grad():
        model.lin.weight.fill_(1e-3)  # small gradients: every iteration is an objective step
    gradinit(model, nn.MSELoss(), _id_batches(8), gradinit_iters=2, grad_norm_bound=1e9,
             overlap=overlap, progress=False)
    b = lambda k: [10 * k, 10 * k + 1]  # noqa: E731
    if overlap:   # three draws per iteration: S1 = b0 + b1, S2 = b0 + b2
        assert model.seen == [b(0) + b(1), b(0) + b(2), b(3) + b(4), b(3) + b(5)]
    else:         # four draws: S1 = b0 + b1, S2 = b3 + b2, two full batches sharing nothing
        assert model.seen == [b(0) + b(1), b(3) + b(2), b(4) + b(5), b(7) + b(6)]


class _RnnLikeBias(nn.Module):
    """y = w x + bias_ih_l0: a bias named as in nn.RNN / nn.LSTM."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, 1, dtype=torch.float64))
        self.bias_ih_l0 = nn.Parameter(torch.full((1,), 0.5, dtype=torch.float64))

    def forward(self, x):
        return x @ self.weight.T + self.bias_ih_l0


def test_bias_floor_applies_to_rnn_bias_names():
    # The first objective step drives both multipliers far down: the weight stops at min_scale,
    # the bias (floor bias_min_scale = 0) goes below it.
    model = _RnnLikeBias()
    batch = (torch.ones(1, 1, dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64))
    hist = []
    gradinit(model, nn.MSELoss(), [batch], lr=0.1, gradinit_lr=1.0, gradinit_iters=1,
             grad_norm_bound=2.0, grad_clip=0.0, min_scale=0.5, progress=False, history=hist)
    assert not hist[0]["constrained"]
    assert hist[0]["scales"]["weight"] == 0.5
    assert hist[0]["scales"]["bias_ih_l0"] < 0.1
    names = [n for n, _ in nn.RNN(2, 3).named_parameters()]
    names += [n for n, _ in nn.MultiheadAttention(4, 2, add_bias_kv=True).named_parameters()]
    from zerofwht.gradinit import _is_bias
    assert sorted(n for n in names if _is_bias(n)) == sorted(
        ["bias_ih_l0", "bias_hh_l0", "in_proj_bias", "bias_k", "bias_v", "out_proj.bias"])


# ----------------------------------------------------------------------------------------------
# Small models
# ----------------------------------------------------------------------------------------------
def _data(seed=0, n=512, d=16, k=4):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(k, d, generator=g) * 1.5
    y = torch.randint(0, k, (n,), generator=g)
    x = centers[y] + torch.randn(n, d, generator=g)
    return x, y


def _mlp(seed=0, gain=3.0, bn=False, dropout=0.0):
    torch.manual_seed(seed)
    layers = [nn.Linear(16, 64)]
    if bn:
        layers.append(nn.BatchNorm1d(64))
    layers += [nn.ReLU(), nn.Dropout(dropout), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4)]
    model = nn.Sequential(*layers)
    with torch.no_grad():  # a badly scaled start: Kaiming times `gain`
        for m in model:
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                m.weight.mul_(gain)
                m.bias.zero_()
    return model


def _loss_after_one_step(model, x, y, lr, pairs=8, seed=123):
    """Mean over batch pairs of the loss on batch B after one SGD step of lr on batch A."""
    g = torch.Generator().manual_seed(seed)
    total = 0.0
    for _ in range(pairs):
        perm = torch.randperm(x.shape[0], generator=g)
        a, b = perm[:64], perm[64:128]
        m = _clone(model)
        opt = torch.optim.SGD(m.parameters(), lr=lr)
        nn.functional.cross_entropy(m(x[a]), y[a]).backward()
        opt.step()
        with torch.no_grad():
            total += nn.functional.cross_entropy(m(x[b]), y[b]).item()
    return total / pairs


def _clone(model):
    import copy
    return copy.deepcopy(model)


def test_loss_after_one_step_lower_with_gradinit():
    x, y = _data()
    lr = 0.1
    model = _mlp(gain=3.0)
    before = _loss_after_one_step(model, x, y, lr)
    scales = gradinit(model, nn.CrossEntropyLoss(), (x, y), batch_size=64, lr=lr, gradinit_lr=0.05,
                      gradinit_iters=60, grad_norm_bound=50.0, generator=torch.Generator().manual_seed(1),
                      progress=False)
    after = _loss_after_one_step(model, x, y, lr)
    assert after < 0.8 * before, (before, after, scales)
    assert set(scales) == {n for n, _ in model.named_parameters()}


def test_deterministic_given_generator():
    x, y = _data(1)
    runs = []
    for seed in (7, 7, 8):
        model = _mlp(seed=0, dropout=0.5)
        runs.append(gradinit(model, nn.CrossEntropyLoss(), (x, y), batch_size=32, gradinit_iters=8,
                             grad_norm_bound=50.0, grad_clip=0.0, generator=torch.Generator().manual_seed(seed),
                             progress=False))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_batchnorm_uses_batch_stats_and_keeps_running_stats():
    x, y = _data(2)
    model = _mlp(bn=True, dropout=0.3)
    model.train()
    bn = model[1]
    with torch.no_grad():
        bn.running_mean.fill_(5.0)  # wrong running stats: GradInit must neither use nor update them
    mean0, var0, nbt0 = bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone()
    hist = []
    gradinit(model, nn.CrossEntropyLoss(), (x, y), batch_size=32, gradinit_iters=3,
             grad_norm_bound=1e9, generator=torch.Generator().manual_seed(0), progress=False,
             history=hist)
    assert torch.equal(bn.running_mean, mean0) and torch.equal(bn.running_var, var0)
    assert torch.equal(bn.num_batches_tracked, nbt0)
    assert model.training and bn.training and bn.track_running_stats and model[3].training
    # the first loss is the one with batch statistics (and no dropout) on the first two draws
    # (initial parameters: reproduce with a copy whose BN has no running statistics, eval mode)
    ref = _mlp(bn=True, dropout=0.3).eval()
    ref[1].running_mean = ref[1].running_var = None
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))
    idx = perm[:64]
    want = nn.functional.cross_entropy(ref(x[idx]), y[idx]).item()
    assert hist[0]["loss"] == pytest.approx(want, rel=1e-6)


def test_works_on_zero_init_model_and_hadamard_linear():
    import zerofwht.nn  # noqa: F401
    from zerofwht import nn as znn
    x, y = _data(3)
    model = nn.Sequential(znn.HadamardLinear(16, 64, learnable_scale=True), nn.ReLU(),
                          nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))
    zerofwht.init.init_model_(model, "zero", residual_last=())  # a plain MLP: no residual branch
    scales = gradinit(model, nn.CrossEntropyLoss(), (x, y), batch_size=64, gradinit_iters=5,
                      generator=torch.Generator().manual_seed(0), progress=False)
    assert scales["0.bias"] == 1.0 and scales["2.bias"] == 1.0  # zero norm: skipped
    assert scales["0.output_scale"] != 1.0 or scales["2.weight"] != 1.0


def test_progress_lines(capsys):
    x, y = _data(4)
    gradinit(_mlp(), nn.CrossEntropyLoss(), (x, y), batch_size=32, gradinit_iters=4, progress=2,
             generator=torch.Generator().manual_seed(0))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith("gradinit 2/4") and err[1].startswith("gradinit 4/4")
    gradinit(_mlp(), nn.CrossEntropyLoss(), (x, y), batch_size=32, gradinit_iters=2, progress=False,
             generator=torch.Generator().manual_seed(0))
    assert capsys.readouterr().err == ""


def test_iterable_batches_cycle_and_one_shot_iterator_runs_out():
    x, y = _data(5)
    batches = [(x[i:i + 32], y[i:i + 32]) for i in range(0, 96, 32)]  # 3 batches, cycled
    gradinit(_mlp(), nn.CrossEntropyLoss(), batches, gradinit_iters=4, grad_norm_bound=1e9,
             progress=False)
    with pytest.raises(ValueError, match="batches ran out after 3 batches"):
        gradinit(_mlp(), nn.CrossEntropyLoss(), iter(batches), gradinit_iters=4,
                 grad_norm_bound=1e9, progress=False)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(optimizer="rmsprop"), ValueError, "optimizer='rmsprop'"),
    (dict(lr=0.0), ValueError, "lr must be > 0, got lr=0.0"),
    (dict(gradinit_iters=0), ValueError, "gradinit_iters must be an int >= 1, got 0"),
    (dict(grad_norm_bound=-1), ValueError, "grad_norm_bound must be > 0"),
    (dict(min_scale=-0.1), ValueError, "min_scale must be >= 0.0"),
    (dict(generator=3), TypeError, "generator must be a torch.Generator"),
    (dict(optimizer="adam", normalize_grad=True), ValueError, "sgd"),
    (dict(progress="yes"), TypeError, "progress must be a bool"),
    (dict(batch_size=None), ValueError, "needs batch_size="),
])
def test_errors(kwargs, exc, match):
    x, y = _data(6, n=64)
    kw = dict(batch_size=16, progress=False, gradinit_iters=1)
    kw.update(kwargs)
    with pytest.raises(exc, match=match):
        gradinit(_mlp(), nn.CrossEntropyLoss(), (x, y), **kw)
