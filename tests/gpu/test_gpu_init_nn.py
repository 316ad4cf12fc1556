"""The init fills on a GPU (cuda, triton and torch backends) against the C++ CPU kernel, bit for
bit, on poisoned tensors of every dtype, 2-d and conv shapes, shards and strided views; and
HadamardLinear on CUDA against its dense nn.Linear twin (forward and backward, fp64 reference).
Skipped with the reason without a GPU or in the dry run of scripts/gpu_check.sh."""
from __future__ import annotations

import math

import pytest
import torch

from zerofwht import init, nn as znn
from _gpu_common import DEV, QUICK, needs_gpu
from conftest import FLOAT_DTYPES, assert_close_to_reference, dtype_id

pytestmark = needs_gpu

INITS = [
    ("partial_identity", init.partial_identity_, {}),
    ("hadamard", init.hadamard_, {}),
    ("hadamard-paper", init.hadamard_, {"scale": "paper"}),
    ("zero", init.zero_init_, {}),
    ("idi", init.idi_, {"tau": math.sqrt(2.0)}),
    ("idiz", init.idiz_, {"eps": 0.25}),
    ("idic", init.idic_, {"tau": 0.5}),
    ("idizc", init.idizc_, {"eps": 1e-3}),
]
SHAPES = [(1, 1), (7, 1), (5, 3), (3, 5), (64, 64), (100, 37), (37, 100), (4, 2, 3), (4, 2, 3, 3),
          (6, 3, 3, 3, 3), (8, 4, 2, 2)]
if not QUICK:
    SHAPES += [(1000, 3000), (4096, 1024), (130, 70, 3, 3)]


def _fill(fn, params, w, backend, **kw):
    return fn(w, **params, backend=backend, **kw)


def _poisoned(shape, dtype, device):
    return torch.full(shape, float("nan"), dtype=dtype, device=device)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("name,fn,params", INITS, ids=[i[0] for i in INITS])
@pytest.mark.parametrize("backend", ["cuda", "triton", "torch"])
def test_fill_bitwise_equal_to_cpu_kernel(backend, name, fn, params, dtype):
    if name in ("idic", "idizc"):
        shapes = [s for s in SHAPES if len(s) > 2]
    else:
        shapes = SHAPES
    for shape in shapes:
        want = _fill(fn, params, _poisoned(shape, dtype, "cpu"), "cpp")
        got = _fill(fn, params, _poisoned(shape, dtype, DEV), backend)
        assert got.device.type == DEV
        assert torch.equal(got.cpu().view(_int(dtype)), want.view(_int(dtype))), \
            f"{name} {shape} {dtype}: differs from the CPU kernel"


def _int(dtype):
    return {2: torch.int16, 4: torch.int32, 8: torch.int64}[dtype.itemsize]


@pytest.mark.parametrize("backend", ["cuda", "triton", "torch"])
def test_fill_shards_and_strided_views(backend):
    full = (40, 24, 3, 3)
    want = init.hadamard_(_poisoned(full, torch.float32, "cpu"), backend="cpp")
    # a shard (rows 8..20 of the logical weight) into a strided view of a larger poisoned buffer
    buf = _poisoned((30, 50, 3, 3), torch.float32, DEV)
    w = buf[5:17, 10:34]
    init.hadamard_(w, offset=[8, 0, 0, 0], full_shape=list(full), backend=backend)
    assert torch.equal(w.cpu(), want[8:20])
    mask = torch.ones(buf.shape, dtype=torch.bool, device=DEV)
    mask[5:17, 10:34] = False
    assert bool(buf[mask].isnan().all()), "elements outside the view were written"
    wt = _poisoned((24, 40), torch.bfloat16, DEV).t()  # transposed (40, 24)
    init.idi_(wt, 1.5, backend=backend)
    assert torch.equal(wt.cpu(), init.idi_(_poisoned((40, 24), torch.bfloat16, "cpu"), 1.5, backend="cpp"))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64], ids=dtype_id)
@pytest.mark.parametrize("d_in,d_out", [(12, 10), (1000, 3000), (4096, 1024), (3000, 70000)], ids=str)
def test_hadamard_linear_cuda(dtype, d_in, d_out):
    torch.manual_seed(d_in)
    layer = znn.HadamardLinear(d_in, d_out, device=DEV, dtype=dtype)
    with torch.no_grad():
        layer.bias.normal_()
    lin = layer.to_linear(dtype=torch.float64)
    x = torch.randn(5, d_in, device=DEV, dtype=torch.float64)
    xs = x.to(dtype).requires_grad_()
    y = layer(xs)
    assert y.device.type == DEV and y.dtype == dtype and y.shape == (5, d_out)
    n = 1 << (max(d_in, d_out) - 1).bit_length()
    want = lin(xs.detach().to(torch.float64))
    assert_close_to_reference(y.detach(), want.detach(), dtype, n)
    g = torch.randn(5, d_out, device=DEV, dtype=torch.float64)
    y.backward(g.to(dtype))
    assert_close_to_reference(xs.grad, g @ lin.weight.detach(), dtype, n)
    assert_close_to_reference(layer.bias.grad, g.to(dtype).to(torch.float64).sum(0), dtype, 8)
