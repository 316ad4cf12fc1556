"""Hadamard transforms of order n = K * 2^k (zerofwht.bases, zerofwht.kron, fwht(n=..., base=...)).

Every built-in K x K matrix is checked exactly (entries +-1, H H^T = K I). Transforms are compared
with a dense fp64 reference built here with torch.kron from the same rounded input, over K from
the required set, padded / truncated sizes, batch shapes, dim=, strides, dtypes, out= (NaN-poisoned)
and in place; plus gradcheck / double backward with non-symmetric bases, opcheck and
torch.compile(fullgraph=True). Backends: the pure-PyTorch op always, the C++ op when the
extension defines zerofwht::fwht_kron.
"""
from __future__ import annotations

import math

import pytest
import torch

import zerofwht
from zerofwht import bases, kron, reference

from conftest import assert_close_to_reference, dtype_id, make_input, poison

ISSUE_K = (12, 20, 28, 36, 44, 52, 60, 108, 140, 148, 156, 172)
DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
BACKENDS = ["torch"] + (["cpp"] if kron._refuse("cpp", torch.empty(1), 12) is None else [])
H2 = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64)


def sylvester(p: int) -> torch.Tensor:
    h = torch.ones(1, 1, dtype=torch.float64)
    while h.shape[0] < p:
        h = torch.kron(H2, h)  # same matrix as scipy.linalg.hadamard (Kronecker order is symmetric here)
    return h


def dense(x: torch.Tensor, hk: torch.Tensor, n: int, out_features=None, scale=1.0, dim=-1):
    """fp64 reference: scale * (kron(H_K, H_p) @ pad_n(x))[:out_features] along dim."""
    hk = hk.to(torch.float64)
    h = torch.kron(hk, sylvester(n // hk.shape[0]))
    xt = x.movedim(dim, -1).to(torch.float64)
    xt = torch.nn.functional.pad(xt, (0, n - xt.shape[-1]))
    y = (xt @ h.T)[..., : (out_features or n)] * scale
    return y.movedim(-1, dim)


def random_equivalent(hk: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """P D H D' Q: another Hadamard matrix of the same order (rows / columns permuted and
    negated), in general neither symmetric nor normalized."""
    g = torch.Generator().manual_seed(seed)
    k = hk.shape[0]
    d1 = torch.randint(0, 2, (k,), generator=g).to(hk.dtype) * 2 - 1
    d2 = torch.randint(0, 2, (k,), generator=g).to(hk.dtype) * 2 - 1
    p1, p2 = torch.randperm(k, generator=g), torch.randperm(k, generator=g)
    return (d1[:, None] * hk * d2[None, :])[p1][:, p2].contiguous()


# ----------------------------------------------------------------------------------------------
# Built-in bases and sizes
# ----------------------------------------------------------------------------------------------
def test_every_builtin_base_is_hadamard():
    assert set(ISSUE_K) <= set(bases.BUILTIN_K)
    for k in bases.BUILTIN_K:
        h = bases.hadamard_base(k, torch.float64)
        assert h.shape == (k, k)
        assert torch.equal(h.abs(), torch.ones_like(h)), k
        assert torch.equal(h @ h.T, k * torch.eye(k, dtype=torch.float64)), k
        assert torch.equal(bases.hadamard_base(k), h.float())  # the float32 copy the kernels take


def test_constructions_named_and_paley1_not_symmetric():
    names = {k: bases.construction(k) for k in ISSUE_K}
    assert names[12].startswith("Paley I ") and names[28] == "Paley I over GF(27 = 3^3)"
    assert names[36].startswith("Paley II") and names[52] == "Paley II over GF(25 = 5^2)"
    assert names[156].startswith("Williamson, m = 39") and names[172].startswith("Williamson, m = 43")
    for k in (12, 20, 28, 44, 60, 108, 140, 156, 172):  # the backward must use H_K^T
        h = bases.hadamard_base(k)
        assert not torch.equal(h, h.T), k
    with pytest.raises(ValueError, match=r"K=188 is not a built-in Hadamard order"):
        bases.construction(188)
    with pytest.raises(ValueError, match=r"K=24 is not a built-in"):
        bases.hadamard_base(24)


@pytest.mark.parametrize("n,k", [(768, 12), (3072, 12), (11008, 172), (13824, 108), (14336, 28),
                                 (18944, 148), (3584, 28), (40, 20), (40 * 64, 20), (1024, 1),
                                 (1, 1), (12, 12), (156 * 2, 156)])
def test_representation_rule(n, k):
    assert bases.split(n) == (k, n // k)
    assert bases.is_supported(n)


@pytest.mark.parametrize("n", [6, 24 // 4 * 3, 13696, 10944, 188 * 4, 0, -4, 12 * 2 ** 28])
def test_unsupported_sizes(n):
    assert bases.split(n) is None
    with pytest.raises(ValueError, match=rf"n={n}\b.*nearest supported: "):
        zerofwht.fwht(torch.ones(2, 4), n=n)


def test_unsupported_message_lists_the_neighbours():
    below, above = bases.supported_near(752)
    assert below == [736, 720, 704] and above == [768, 784, 800]
    msg = bases.unsupported_message(752)
    assert "736 = 92*2^3" in msg and "768 = 12*2^6" in msg


@pytest.mark.parametrize("n", [12, 40, 24 * 2, 156 * 4, 64])
def test_hadamard_matrix_is_the_kron(n):
    k, p = bases.split(n)
    h = reference.hadamard_matrix(n, dtype=torch.float64)
    assert torch.equal(h, torch.kron(bases.hadamard_base(k, torch.float64), sylvester(p)))
    assert torch.equal(h @ h.T, n * torch.eye(n, dtype=torch.float64))
    if reference.is_power_of_two(n):  # H_2 kron H_{n/2} = Sylvester's H_n
        assert torch.equal(reference.hadamard_matrix(n, dtype=torch.float64, base=H2), sylvester(n))
    else:
        with pytest.raises(ValueError, match=rf"n={n} must be K \* 2\^k for the base's K=2"):
            reference.hadamard_matrix(n, base=H2)


# ----------------------------------------------------------------------------------------------
# Forward against the dense fp64 reference
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("k", ISSUE_K)
def test_forward_every_k(backend, k):
    hk = bases.hadamard_base(k, torch.float64)
    for p, d_in, out_features in ((4, 4 * k, None), (8, 5 * k + 3, 3 * k - 1), (1 << 6, 7, 64 * k - 5)):
        n = k * p
        x = make_input((3, d_in), torch.float64, seed=k + p)
        out = poison(torch.empty(3, out_features or n, dtype=torch.float64))
        got = zerofwht.fwht(x, n=n, out_features=out_features, backend=backend, out=out)
        assert got is out
        assert_close_to_reference(got, dense(x, hk, n, out_features), torch.float64, n)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_dtypes_and_norms(backend, dtype):
    n = 12 * 32
    x = make_input((2, 3, 300), dtype, seed=1)
    hk = bases.hadamard_base(12)
    for norm, s in ((None, 1.0), ("ortho", 1 / math.sqrt(n)), ("forward", 1 / n)):
        got = zerofwht.fwht(x, n=n, norm=norm, backend=backend)
        assert_close_to_reference(got, dense(x, hk, n, scale=s), dtype, n)
    got = zerofwht.fwht(x, n=n, scale=-0.25, out_features=100, backend=backend)
    assert_close_to_reference(got, dense(x, hk, n, 100, scale=-0.25), dtype, n)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dim_strides_batch_shapes(backend):
    n = 20 * 8
    hk = bases.hadamard_base(20)
    base = make_input((4, 150, 6), torch.float32, seed=2)
    for x, dim in ((base, 1), (base.transpose(0, 2), 1), (base[:, ::2, :], 1), (base[1], 0),
                   (base[..., 0], -1), (base[:, :, 1:5].permute(2, 0, 1), 2)):
        x_in = x.movedim(dim, -1)
        if x_in.shape[-1] > n:
            continue
        got = zerofwht.fwht(x, n=n, dim=dim, out_features=130, backend=backend)
        assert_close_to_reference(got, dense(x, hk, n, 130, dim=dim), torch.float32, n)
    x = make_input((150,), torch.float32)
    assert_close_to_reference(zerofwht.fwht(x, n=n, backend=backend), dense(x, hk, n), torch.float32, n)
    empty = torch.empty(0, 40)
    assert zerofwht.fwht(empty, n=40, backend=backend).shape == (0, 40)


@pytest.mark.parametrize("backend", BACKENDS)
def test_in_place(backend):
    n = 28 * 4
    x = make_input((3, n), torch.float64, seed=3)
    ref = dense(x, bases.hadamard_base(28), n, scale=1 / math.sqrt(n))
    y = x.clone()
    assert zerofwht.fwht_(y, norm="ortho", backend=backend) is y
    assert_close_to_reference(y, ref, torch.float64, n)
    with pytest.raises(ValueError, match=r"x.shape\[dim\]=112 must equal n"):
        zerofwht.fwht_(x.clone(), n=224)
    # the ortho transform is orthogonal: its inverse is the transform with the transposed base
    hk = bases.hadamard_base(28)
    back = zerofwht.fwht(y, norm="ortho", base=hk.T.contiguous(), backend=backend)
    torch.testing.assert_close(back, x, rtol=0, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_nonfinite_propagate(backend):
    x = make_input((2, 48), torch.float32)
    x[0, 5] = float("nan")
    x[1, 7] = float("inf")
    y = zerofwht.fwht(x, n=48, backend=backend)
    assert torch.isnan(y[0]).all() and not torch.isfinite(y[1]).all()


# ----------------------------------------------------------------------------------------------
# base=
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_user_base(backend):
    hk = random_equivalent(bases.hadamard_base(20, torch.float64), seed=4)
    x = make_input((5, 70), torch.float64, seed=5)
    got = zerofwht.fwht(x, base=hk, backend=backend)  # n = 20 * 4, the smallest >= 70
    assert got.shape == (5, 80)
    assert_close_to_reference(got, dense(x, hk, 80), torch.float64, 80)
    got = zerofwht.fwht(x, n=160, base=hk.float(), out_features=33, backend=backend)
    assert_close_to_reference(got, dense(x, hk, 160, 33), torch.float64, 160)
    minus = -torch.ones(1, 1)  # K = 1: the plain transform, negated
    assert_close_to_reference(zerofwht.fwht(x, base=minus, backend=backend),
                              -dense(x, torch.ones(1, 1), 128), torch.float64, 128)
    assert_close_to_reference(zerofwht.fwht(x, n=128, base=H2, backend=backend),
                              dense(x, H2, 128), torch.float64, 128)


def test_user_base_validated():
    x = torch.ones(2, 8)
    with pytest.raises(ValueError, match=r"base must be a square K x K matrix, got shape \(3, 4\)"):
        zerofwht.fwht(x, base=torch.ones(3, 4))
    with pytest.raises(ValueError, match=r"entries \+1/-1 only; base\[0, 1\] = 0.5"):
        zerofwht.fwht(x, base=torch.tensor([[1.0, 0.5], [1.0, -1.0]]))
    with pytest.raises(ValueError, match=r"not a Hadamard matrix: rows 0 and 1"):
        zerofwht.fwht(x, base=torch.tensor([[1.0, 1.0], [1.0, 1.0]]))
    with pytest.raises(TypeError, match=r"base must be a torch.Tensor"):
        zerofwht.fwht(x, base=[[1, 1], [1, -1]])
    with pytest.raises(ValueError, match=r"n=36 must be K \* 2\^k for the given base of order K=12"):
        zerofwht.fwht(x, n=36, base=bases.hadamard_base(12))
    with pytest.raises(ValueError, match=r"n=12 is smaller than the input size 20"):
        zerofwht.fwht(torch.ones(20), n=12)


# ----------------------------------------------------------------------------------------------
# Autograd, opcheck, compile
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck_nonsymmetric_bases(backend):
    for k, p, d_in, out_features in ((12, 2, 17, 20), (20, 1, 20, 20), (28, 2, 40, 56)):
        hk = bases.hadamard_base(k)
        assert not torch.equal(hk, hk.T)
        x = make_input((2, d_in), torch.float64, seed=k).requires_grad_()
        f = lambda t: zerofwht.fwht(t, n=k * p, out_features=out_features, norm="ortho",  # noqa: E731
                                    backend=backend)
        assert torch.autograd.gradcheck(f, (x,))
        if k == 12:  # double backward once (slow): the backward is the same op, transposed base
            assert torch.autograd.gradgradcheck(f, (x,))
    hk = random_equivalent(bases.hadamard_base(12, torch.float64), seed=6)
    x = make_input((3, 20), torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: zerofwht.fwht(t, base=hk, dim=0, backend=backend), (x,))


def test_backward_uses_the_transposed_base():
    # d/dx sum(w * y) = s * H^T w (padded / truncated): compare with the dense formula directly
    k, n = 12, 48
    x = make_input((1, 40), torch.float64).requires_grad_()
    w = make_input((1, 30), torch.float64, seed=9)
    (zerofwht.fwht(x, n=n, out_features=30, backend="torch") * w).sum().backward()
    h = torch.kron(bases.hadamard_base(k, torch.float64), sylvester(4))
    expect = (torch.nn.functional.pad(w, (0, n - 30)) @ h)[:, :40]
    torch.testing.assert_close(x.grad, expect, rtol=0, atol=1e-12)


def test_forward_mode_ad():
    import torch.autograd.forward_ad as fwAD
    x = make_input((2, 24), torch.float64)
    t = make_input((2, 24), torch.float64, seed=1)
    with fwAD.dual_level():
        y = zerofwht.fwht(fwAD.make_dual(x, t), n=24, out_features=20)
        tangent = fwAD.unpack_dual(y).tangent
    hk = bases.hadamard_base(12)
    torch.testing.assert_close(tangent, dense(t, hk, 24, 20), rtol=0, atol=1e-12)


def test_opcheck():
    hk = bases.hadamard_base(12)
    ops = ["fwht_kron_torch"] + (["fwht_kron"] if "cpp" in BACKENDS else [])
    for name in ops:
        op = getattr(torch.ops.zerofwht, name)
        for args in ((make_input((3, 40), torch.float64).requires_grad_(), hk, 48, 30, 0.5),
                     (make_input((4, 48), torch.float32), hk, 48, 48, 1.0),
                     (make_input((2, 5), torch.bfloat16), hk, 24, 7, 1.0)):
            torch.library.opcheck(op, args)


@pytest.mark.parametrize("backend", BACKENDS)
def test_compile_fullgraph(backend):
    torch._dynamo.reset()
    hk = random_equivalent(bases.hadamard_base(20), seed=7)

    def f(t):
        return zerofwht.fwht(t, n=80, norm="ortho", out_features=70, backend=backend).relu().sum() + \
            zerofwht.fwht(t, base=hk, out_features=60, backend=backend).sum()

    x = make_input((3, 64), torch.float32).requires_grad_()
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    got = compiled(x)
    got.backward()
    g = x.grad.clone()
    x.grad = None
    f(x).backward()
    torch.testing.assert_close(got, f(x))
    torch.testing.assert_close(g, x.grad)


def test_vmap_matches_a_loop():
    x = make_input((3, 4, 40), torch.float64)
    for in_dims in (0, 1):
        f = torch.vmap(lambda t: zerofwht.fwht(t, n=48, out_features=30, backend="torch"), in_dims=in_dims)
        got = f(x)
        loop = torch.stack([zerofwht.fwht(x.select(in_dims, i), n=48, out_features=30, backend="torch")
                            for i in range(x.shape[in_dims])])
        torch.testing.assert_close(got, loop, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------------------------
# On a GPU (the GPU check): every CUDA-capable backend against the same fp64 reference
# ----------------------------------------------------------------------------------------------
GPU_BACKENDS = [b for b in ("cuda", "triton", "torch")
                if torch.cuda.is_available() and kron._refuse(b, torch.empty(1, device="cuda"), 12) is None]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_gpu_backends(dtype):
    assert GPU_BACKENDS, "no backend runs the K * 2^k transform on this GPU"
    for backend in GPU_BACKENDS:
        for k in ISSUE_K:
            for p, d_in, out_features in ((64, 64 * k - 5, None), (2, 2 * k, 2 * k - 3)):
                n = k * p
                x = make_input((33, d_in), dtype, seed=k).cuda()
                got = zerofwht.fwht(x, n=n, out_features=out_features, norm="ortho", backend=backend)
                ref = dense(x.cpu(), bases.hadamard_base(k), n, out_features, scale=n ** -0.5)
                assert_close_to_reference(got.cpu(), ref, dtype, n)
        if dtype == torch.float64:
            x = make_input((2, 40), torch.float64).cuda().requires_grad_()
            assert torch.autograd.gradcheck(
                lambda t: zerofwht.fwht(t, n=48, out_features=30, backend=backend), (x,))
            compiled = torch.compile(lambda t: zerofwht.fwht(t, n=48, backend=backend), fullgraph=True)
            torch.testing.assert_close(compiled(x.detach()), zerofwht.fwht(x.detach(), n=48, backend=backend))
