"""zerofwht.nn.HadamardLinear against its dense equivalent (fp64 reference): outputs and gradients
(input, bias, learnable scale) for every dtype and CPU backend, rectangular both ways, dim=-1 and
dim=1 on 4-d input; to_linear, state_dict, meta device, torch.compile(fullgraph=True), errors."""
from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn

import zerofwht
import zerofwht.nn  # noqa: F401  (the lead adds `from . import nn` to zerofwht/__init__.py)
from zerofwht import nn as znn
from zerofwht import reference

from conftest import FLOAT_DTYPES, dtype_id, make_input

# max |got - ref| <= TOL[dtype] * max |ref|. The module rounds up to three times in half types
# (transform output, times output_scale, plus bias); fp32 accumulates over log2(N) stages.
TOL = {torch.float16: 4e-3, torch.bfloat16: 3e-2, torch.float32: 2e-5, torch.float64: 1e-12}

# (in_features, out_features): increasing, decreasing, square power of two, square non-power.
SHAPES = [(5, 12), (12, 5), (16, 16), (24, 24), (64, 256), (100, 3)]
SHAPE_IDS = [f"{a}to{b}" for a, b in SHAPES]


def _close(got: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype, what: str):
    assert got.dtype == dtype, f"{what}: dtype {got.dtype}, expected {dtype}"
    assert tuple(got.shape) == tuple(ref.shape), f"{what}: shape {tuple(got.shape)} vs {tuple(ref.shape)}"
    scale = ref.abs().max().item()
    assert scale > 0, f"{what}: degenerate reference"
    torch.testing.assert_close(got.to(torch.float64), ref, rtol=0.0, atol=TOL[dtype] * scale,
                               msg=lambda m: f"{what} ({dtype}): {m}")


def _randomize(m: znn.HadamardLinear, seed: int):
    """Non-trivial bias and output_scale (so that their effect and gradients are visible)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if m.bias is not None:
            m.bias.copy_(torch.randn(m.out_features, generator=g, dtype=torch.float64))
        if m.output_scale is not None:
            m.output_scale.copy_(m.scale * (1 + 0.5 * torch.rand(m.out_features, generator=g,
                                                                  dtype=torch.float64)))


def _dense_fp64(m: znn.HadamardLinear, x: torch.Tensor):
    """fp64 leaves (x, bias, output_scale) and the dense output along m.dim."""
    x64 = x.detach().to(torch.float64).requires_grad_()
    h = reference.hadamard_matrix(m.n, dtype=torch.float64)[:m.out_features, :m.in_features]
    b64 = m.bias.detach().to(torch.float64).requires_grad_() if m.bias is not None else None
    s64 = (m.output_scale.detach().to(torch.float64).requires_grad_()
           if m.output_scale is not None else None)
    w = h * (s64[:, None] if s64 is not None else m.scale)
    y = x64.movedim(m.dim, -1) @ w.T
    if b64 is not None:
        y = y + b64
    return x64, b64, s64, y.movedim(-1, m.dim)


def _check_against_dense(m, x, seed=0):
    dtype = x.dtype
    x = x.clone().requires_grad_()
    y = m(x)
    x64, b64, s64, ref = _dense_fp64(m, x)
    _close(y, ref.detach(), dtype, "output")
    gy = make_input(y.shape, dtype, seed=seed + 100)
    y.backward(gy)
    ref.backward(gy.to(torch.float64))
    _close(x.grad, x64.grad, dtype, "grad input")
    if m.bias is not None:
        _close(m.bias.grad, b64.grad, dtype, "grad bias")
    if m.output_scale is not None:
        _close(m.output_scale.grad, s64.grad, dtype, "grad output_scale")


@pytest.mark.parametrize("learnable", [False, True], ids=["fixed", "learnable"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_matches_dense_last_dim(backend, shape, dtype, learnable):
    fin, fout = shape
    m = znn.HadamardLinear(fin, fout, learnable_scale=learnable, dtype=dtype, backend=backend)
    _randomize(m, seed=fin * 31 + fout)
    _check_against_dense(m, make_input((2, 3, fin), dtype, seed=fin), seed=fout)


@pytest.mark.parametrize("learnable", [False, True], ids=["fixed", "learnable"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("shape", [(3, 16), (16, 3), (6, 6)], ids=["3to16", "16to3", "6to6"])
def test_matches_dense_channels_dim1(backend, shape, dtype, learnable):
    # dim=1 on NCHW: a 1x1 Hadamard convolution.
    cin, cout = shape
    m = znn.HadamardLinear(cin, cout, dim=1, learnable_scale=learnable, dtype=dtype, backend=backend)
    _randomize(m, seed=cin + 7 * cout)
    _check_against_dense(m, make_input((2, cin, 5, 3), dtype, seed=cin), seed=cout)


@pytest.mark.parametrize("dim", [-1, 0], ids=["dim-1", "dim0"])
@pytest.mark.parametrize("shape", [(16, 16), (12, 16), (16, 5)], ids=["16to16", "12to16", "16to5"])
def test_forward_adds_bias_without_touching_input_or_bias(backend, shape, dim):
    # The bias is added in place into the transform's own output where that is allowed; the
    # input, the parameters and a second call's result must not see it.
    fin, fout = shape
    m = znn.HadamardLinear(fin, fout, dim=dim, backend=backend)
    _randomize(m, seed=fin + fout)
    x = make_input((fin, 3) if dim == 0 else (3, fin), torch.float32, seed=fin)
    x_before, bias_before = x.clone(), m.bias.detach().clone()
    with torch.no_grad():
        first = m(x)
        second = m(x)
    assert torch.equal(x, x_before) and torch.equal(m.bias.detach(), bias_before)
    assert torch.equal(first, second)
    expected = zerofwht.fwht(x, m.n, dim, out_features=fout, scale=m.scale, backend=backend)
    expected = expected + (bias_before[:, None] if dim == 0 else bias_before)
    torch.testing.assert_close(first, expected, rtol=0, atol=0)


def test_dim1_equals_conv1x1_of_to_linear(backend):
    m = znn.HadamardLinear(3, 10, dim=1, learnable_scale=True, dtype=torch.float64, backend=backend)
    _randomize(m, seed=3)
    x = make_input((2, 3, 4, 7), torch.float64, seed=1)
    lin = m.to_linear()
    conv = nn.functional.conv2d(x, lin.weight[:, :, None, None], lin.bias)
    torch.testing.assert_close(m(x), conv, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dim", [0, 1, -2])
def test_other_dims(backend, dim):
    x = make_input((6, 6, 6), torch.float64, seed=dim % 3)
    m = znn.HadamardLinear(6, 9, dim=dim, dtype=torch.float64, backend=backend)
    _randomize(m, seed=1)
    _check_against_dense(m, x)


def test_default_scale_and_n():
    m = znn.HadamardLinear(64, 256)
    assert (m.n, m.scale) == (256, 1 / 16)
    m = znn.HadamardLinear(100, 3)  # N = 128 from max(in, out)
    assert m.n == 128 and m.scale == pytest.approx(128 ** -0.5, rel=1e-15)
    assert znn.HadamardLinear(64, 256, scale="paper").scale == pytest.approx(2 ** -3.5, rel=1e-15)
    assert znn.HadamardLinear(64, 256, scale="code").scale == 1 / 16
    assert znn.HadamardLinear(64, 256, scale=2).scale == 2.0
    assert znn.HadamardLinear(1, 1).n == 1


def test_square_default_is_orthogonal():
    m = znn.HadamardLinear(32, 32, bias=False)  # no parameters: dtype given to dense_weight
    w = m.dense_weight(dtype=torch.float64)
    torch.testing.assert_close(w @ w.T, torch.eye(32, dtype=torch.float64), rtol=0, atol=1e-14)


def test_matches_zero_init_hadamard_layer():
    # The fixed layer equals a Linear initialized by zerofwht.init.hadamard_ (the ZerO layer).
    m = znn.HadamardLinear(64, 200, bias=False, dtype=torch.float64)
    lin = nn.Linear(64, 200, bias=False, dtype=torch.float64)
    zerofwht.init.hadamard_(lin.weight)
    x = make_input((4, 64), torch.float64)
    torch.testing.assert_close(m(x), lin(x), rtol=0, atol=1e-12)


def test_parameters_and_reset():
    m = znn.HadamardLinear(8, 16)
    assert [n for n, _ in m.named_parameters()] == ["bias"]
    assert torch.equal(m.bias, torch.zeros(16))  # ZerO convention: zero bias
    m = znn.HadamardLinear(8, 16, bias=False)
    assert list(m.parameters()) == []
    m = znn.HadamardLinear(8, 16, learnable_scale=True)
    assert sorted(n for n, _ in m.named_parameters()) == ["bias", "output_scale"]
    assert torch.equal(m.output_scale, torch.full((16,), 0.25))
    with torch.no_grad():
        m.output_scale.mul_(3)
        m.bias.add_(1)
    m.reset_parameters()
    assert torch.equal(m.output_scale, torch.full((16,), 0.25)) and torch.equal(m.bias, torch.zeros(16))
    assert not hasattr(m, "weight")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_factory_kwargs(dtype):
    m = znn.HadamardLinear(8, 4, learnable_scale=True, dtype=dtype, device="cpu")
    assert m.bias.dtype == dtype and m.output_scale.dtype == dtype
    assert m(torch.randn(2, 8, dtype=dtype)).dtype == dtype


def test_extra_repr():
    r = repr(znn.HadamardLinear(64, 256))
    assert r == "HadamardLinear(in_features=64, out_features=256, n=256, scale=0.0625, bias=True)"
    r = repr(znn.HadamardLinear(3, 16, bias=False, dim=1, learnable_scale=True, backend="torch"))
    assert r == ("HadamardLinear(in_features=3, out_features=16, n=16, scale=0.25, bias=False, "
                 "dim=1, learnable_scale=True, backend='torch')")


@pytest.mark.parametrize("learnable", [False, True], ids=["fixed", "learnable"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=dtype_id)
def test_to_linear(learnable, dtype):
    m = znn.HadamardLinear(20, 7, learnable_scale=learnable, dtype=dtype)
    _randomize(m, 5)
    lin = m.to_linear()
    assert isinstance(lin, nn.Linear) and lin.weight.shape == (7, 20) and lin.weight.dtype == dtype
    x = make_input((5, 20), dtype, seed=2)
    _close(m(x), lin(x).to(torch.float64), dtype, "to_linear")
    assert torch.equal(lin.bias, m.bias)
    h = reference.hadamard_matrix(32, dtype=torch.float64)[:7, :20]
    s = m.output_scale.double()[:, None] if learnable else m.scale
    assert torch.equal(lin.weight, (h * s).to(dtype))
    assert not lin.weight.requires_grad or lin.weight.grad_fn is None
    assert znn.HadamardLinear(4, 4, bias=False).to_linear().bias is None


def test_state_dict_round_trip(tmp_path):
    m = znn.HadamardLinear(10, 24, learnable_scale=True)
    _randomize(m, 9)
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    m2 = znn.HadamardLinear(10, 24, learnable_scale=True)
    m2.load_state_dict(torch.load(buf, weights_only=True))
    assert set(m2.state_dict()) == {"bias", "output_scale"}
    x = torch.randn(3, 10)
    assert torch.equal(m(x), m2(x))
    with pytest.raises(RuntimeError, match="output_scale"):
        znn.HadamardLinear(10, 24).load_state_dict(m.state_dict())


def test_meta_to_empty_reset():
    m = znn.HadamardLinear(12, 40, learnable_scale=True, device="meta")
    assert m.bias.is_meta and m.output_scale.is_meta
    m.to_empty(device="cpu")
    m.reset_parameters()
    assert torch.equal(m.bias, torch.zeros(40))
    assert torch.equal(m.output_scale, torch.full((40,), 64 ** -0.5))
    x = make_input((2, 12), torch.float32)
    torch.testing.assert_close(m(x), m.to_linear()(x), rtol=0, atol=1e-5)
    # meta input: shape inference through the op's fake kernel
    mm = znn.HadamardLinear(12, 40, device="meta")
    assert mm(torch.empty(5, 12, device="meta")).shape == (5, 40)


@pytest.mark.parametrize("dim", [-1, 1], ids=["dim-1", "dim1"])
def test_compile_fullgraph_forward_backward(backend, dim):
    torch._dynamo.reset()
    m = znn.HadamardLinear(6, 20, dim=dim, learnable_scale=True, backend=backend)
    _randomize(m, 4)
    shape = (3, 6) if dim == -1 else (2, 6, 3, 3)
    x = make_input(shape, torch.float32, seed=8).requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    y = m(x)
    y.square().sum().backward()
    grads = (x.grad, m.bias.grad.clone(), m.output_scale.grad.clone())
    m.zero_grad()
    cm = torch.compile(m, fullgraph=True, backend="inductor")
    y2 = cm(x2)
    y2.square().sum().backward()
    torch.testing.assert_close(y2, y, rtol=1e-5, atol=1e-5)
    for got, want in zip((x2.grad, m.bias.grad, m.output_scale.grad), grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_gradcheck(backend):
    m = znn.HadamardLinear(5, 11, learnable_scale=True, dtype=torch.float64, backend=backend)
    _randomize(m, 2)
    x = make_input((3, 5), torch.float64).requires_grad_()
    b, s = m.bias, m.output_scale

    def f(x, b, s):
        return torch.func.functional_call(m, {"bias": b, "output_scale": s}, (x,))

    assert torch.autograd.gradcheck(f, (x, b, s))
    assert torch.autograd.gradgradcheck(f, (x, b, s))


def test_backend_passed_through(monkeypatch):
    seen = []
    real = zerofwht.nn.fwht

    def spy(*args, **kwargs):
        seen.append(kwargs.get("backend"))
        return real(*args, **kwargs)

    monkeypatch.setattr(zerofwht.nn, "fwht", spy)
    znn.HadamardLinear(4, 8, backend="torch")(torch.randn(2, 4))
    znn.HadamardLinear(4, 8)(torch.randn(2, 4))
    assert seen == ["torch", None]


def test_unavailable_backend_raises_with_reason():
    m = znn.HadamardLinear(4, 8, backend="triton")
    with pytest.raises(RuntimeError, match="triton"):
        m(torch.randn(2, 4))


def test_trains_in_a_model():
    torch.manual_seed(0)
    model = nn.Sequential(znn.HadamardLinear(8, 32, learnable_scale=True), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, t = torch.randn(64, 8), torch.randint(0, 2, (64,))
    losses = []
    for _ in range(20):
        loss = nn.functional.cross_entropy(model(x), t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert model[0].output_scale.grad is not None and model[0].bias.grad is not None


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(in_features=0, out_features=4), ValueError, "in_features must be >= 1, got in_features=0"),
    (dict(in_features=4, out_features=-2), ValueError, "out_features must be >= 1, got out_features=-2"),
    (dict(in_features=4.0, out_features=4), TypeError, "in_features must be an int, got float 4.0"),
    (dict(in_features=True, out_features=4), TypeError, "in_features must be an int, got bool"),
    (dict(in_features=4, out_features=4, scale="ortho"), ValueError, "scale=.ortho."),
    (dict(in_features=4, out_features=4, scale=float("nan")), ValueError, "scale must be finite"),
    (dict(in_features=4, out_features=4, scale=True), TypeError, "got bool True"),
    (dict(in_features=4, out_features=4, dim=1.5), TypeError, "dim must be an int, got float 1.5"),
    (dict(in_features=4, out_features=4, bias=1), TypeError, "bias must be a bool, got int 1"),
    (dict(in_features=4, out_features=4, learnable_scale="yes"), TypeError, "learnable_scale must be a bool"),
    (dict(in_features=4, out_features=4, dtype=torch.int32), TypeError, "dtype=torch.int32"),
    (dict(in_features=4, out_features=4, backend="fast"), ValueError, "backend='fast'"),
])
def test_constructor_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        znn.HadamardLinear(**kwargs)


def test_forward_errors():
    m = znn.HadamardLinear(4, 8)
    with pytest.raises(ValueError, match=r"input.shape\[-1\]=5 does not match in_features=4"):
        m(torch.randn(2, 5))
    with pytest.raises(IndexError, match="dim=1 is out of range"):
        znn.HadamardLinear(4, 8, dim=1)(torch.randn(4))
    with pytest.raises(ValueError, match="0-d"):
        m(torch.tensor(1.0))
    with pytest.raises(TypeError, match="integer"):
        znn.HadamardLinear(4, 8, bias=False)(torch.ones(2, 4, dtype=torch.int64))


def test_empty_batch():
    m = znn.HadamardLinear(4, 8)
    assert m(torch.randn(0, 4)).shape == (0, 8)


def test_large_width_matches_dense_spot_check():
    # N = 4096 (a realistic width); compare a few output columns with the dense formula.
    m = znn.HadamardLinear(3000, 4096, bias=False, dtype=torch.float64)
    x = make_input((2, 3000), torch.float64)
    y = m(x)
    cols = torch.tensor([0, 1, 1234, 4095])
    both = cols[:, None] & torch.arange(3000)[None, :]
    parity = torch.zeros_like(both)
    while bool(both.any()):
        parity ^= both & 1
        both >>= 1
    w = (1.0 - 2.0 * parity.double()) / math.sqrt(4096)
    torch.testing.assert_close(y[:, cols], x @ w.T, rtol=0, atol=1e-12)
