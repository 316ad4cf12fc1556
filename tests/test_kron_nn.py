"""HadamardLinear(in, out, n=K * 2^k) and the initializers hadamard_ / zero_init_ with n=: the
weight is the top-left out x in block of n^-1/2 H_n, H_n = H_K kron H_{2^k} (dense fp64 reference
built here with torch.kron), also per shard and at a conv weight's centre tap."""
from __future__ import annotations

import pytest
import torch

import zerofwht
from zerofwht import bases, reference
from zerofwht.nn import HadamardLinear

from conftest import make_input


def h_dense(n: int) -> torch.Tensor:
    k, p = bases.split(n)
    return torch.kron(bases.hadamard_base(k, torch.float64), reference.hadamard_matrix(p, torch.float64))


@pytest.mark.parametrize("in_f,out_f,n", [(700, 768, 768), (768, 768, 768), (40, 96, 96), (20, 7, 24),
                                          (33, 60, 120)])
def test_hadamard_linear_matches_dense(in_f, out_f, n):
    m = HadamardLinear(in_f, out_f, n=n, dtype=torch.float64)
    with torch.no_grad():
        m.bias.copy_(make_input((out_f,), torch.float64, seed=3))
    w = h_dense(n)[:out_f, :in_f] * n ** -0.5
    torch.testing.assert_close(m.dense_weight(), w, rtol=0, atol=0)
    x = make_input((4, in_f), torch.float64, seed=1).requires_grad_()
    y = m(x)
    torch.testing.assert_close(y, x @ w.T + m.bias, rtol=0, atol=1e-12)
    torch.testing.assert_close(m.to_linear()(x), y, rtol=0, atol=1e-12)
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.ones(4, out_f, dtype=torch.float64) @ w, rtol=0, atol=1e-12)
    assert f"n={n}" in repr(m)


def test_hadamard_linear_square_is_orthogonal_and_dim():
    m = HadamardLinear(12 * 8, 12 * 8, bias=False, n=96)
    w = m.dense_weight(dtype=torch.float64)
    torch.testing.assert_close(w @ w.T, torch.eye(96, dtype=torch.float64), rtol=0, atol=1e-14)
    conv = HadamardLinear(20, 40, n=40, dim=1, dtype=torch.float32)
    x = make_input((2, 20, 3, 3), torch.float32)
    ref = torch.einsum("oi,bihw->bohw", conv.dense_weight(dtype=torch.float64), x.double())
    torch.testing.assert_close(conv(x).double(), ref + 0.0, rtol=0, atol=1e-5)


def test_hadamard_linear_n_errors():
    with pytest.raises(ValueError, match=r"n=752 is not a supported transform size.*nearest supported"):
        HadamardLinear(700, 752, n=752)
    with pytest.raises(ValueError, match=r"n=384 must be >= max\(in_features, out_features\) = 700"):
        HadamardLinear(700, 100, n=384)
    with pytest.raises(TypeError, match=r"n must be an int"):
        HadamardLinear(7, 7, n=12.0)


@pytest.mark.parametrize("shape,n", [((768, 500), 768), ((96, 96), 96), ((60, 13), 120), ((24, 24, 3, 3), 24)])
def test_hadamard_init_n(shape, n):
    w = torch.full(shape, float("nan"), dtype=torch.float32)
    assert zerofwht.init.hadamard_(w, n=n) is w
    block = h_dense(n)[:shape[0], :shape[1]] * n ** -0.5
    if len(shape) == 2:
        torch.testing.assert_close(w.double(), block, rtol=0, atol=1e-7)
    else:  # conv: the block at the centre tap, every other tap 0
        ref = torch.zeros(shape, dtype=torch.float64)
        ref[:, :, 1, 1] = block
        torch.testing.assert_close(w.double(), ref, rtol=0, atol=1e-7)
    w2 = torch.empty(shape[:2], dtype=torch.float64)
    zerofwht.init.hadamard_(w2, scale=0.5, n=n)
    torch.testing.assert_close(w2, h_dense(n)[:shape[0], :shape[1]] * 0.5, rtol=0, atol=0)


def test_zero_init_n_and_linear_agree():
    w = torch.empty(768, 700, dtype=torch.float64)
    zerofwht.init.zero_init_(w, n=768)
    torch.testing.assert_close(w, HadamardLinear(700, 768, n=768, dtype=torch.float64).dense_weight(),
                               rtol=0, atol=0)
    w = torch.empty(500, 768, dtype=torch.float64)  # out <= in: the partial identity, n unused
    zerofwht.init.zero_init_(w, n=768)
    torch.testing.assert_close(w, torch.eye(500, 768, dtype=torch.float64), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"zero_init_: n=512 is smaller than max\(out, in\) = 768"):
        zerofwht.init.zero_init_(torch.empty(768, 700), n=512)
    with pytest.raises(ValueError, match=r"hadamard_: n=100000 is not a supported"):
        zerofwht.init.hadamard_(torch.empty(4, 4), n=100000)


def test_hadamard_init_n_shards():
    full = torch.empty(96, 40, dtype=torch.float64)
    zerofwht.init.hadamard_(full, n=96)
    for r0, c0, r, c in ((0, 0, 50, 40), (50, 0, 46, 40), (7, 13, 30, 20)):
        shard = torch.full((r, c), float("nan"), dtype=torch.float64)
        zerofwht.init.hadamard_(shard, n=96, offset=(r0, c0), full_shape=(96, 40))
        torch.testing.assert_close(shard, full[r0:r0 + r, c0:c0 + c], rtol=0, atol=0)
