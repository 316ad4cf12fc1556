"""The CUDA transform (csrc/cuda/fwht.cu) on a GPU, against the fp64 references and the C++ CPU
kernel (bit for bit in fp32 / fp64: same stage order, no FMA).

Every test here needs an NVIDIA GPU and an extension built with CUDA; without them they are
skipped with that reason. What CAN be checked without a GPU runs elsewhere in CI, every time:
tests/test_init_aot.py -> scripts/aot_nvcc.sh compiles the kernels for sm_80 and sm_90 (no
spills, no local memory) and runs tests/fwht_cuda_emulate.cu (the index arithmetic exhaustively,
shared-memory bank conflicts, and the kernel bodies emulated on the host against a butterfly, bit
for bit, over thousands of random shapes, strides, alignments, in place and multi-pass); and
scripts/build_cuda_ext.sh (.ci/run) builds the whole extension against CUDA torch and checks the
CUDA kernels registered.
"""
from __future__ import annotations

import pytest
import torch

import zerofwht
from conftest import (
    FLOAT_DTYPES,
    assert_close_to_reference,
    butterfly_reference,
    dense_reference,
    dtype_id,
    make_input,
    poison,
)
from test_fwht import LAYOUT_SIZES, LAYOUTS, _layout, _norm_scale, _sweep_cases

HAS_CUDA_KERNEL = (torch.cuda.is_available() and zerofwht._C is not None
                   and zerofwht._C.built_with_cuda())
pytestmark = pytest.mark.skipif(
    not HAS_CUDA_KERNEL,
    reason="needs an NVIDIA GPU and zerofwht._C built with CUDA (the GPU-free checks of the CUDA "
           "kernel run in tests/test_init_aot.py and scripts/build_cuda_ext.sh)")

DTYPE_PARAMS = [pytest.param(dt, id=dtype_id(dt)) for dt in FLOAT_DTYPES]
DEV = "cuda"


def cuda_fwht(x, *args, **kwargs):
    y = zerofwht.fwht(x.to(DEV), *args, backend="cuda", **kwargs)
    assert y.device.type == "cuda"
    return y.cpu()


@pytest.mark.parametrize("n,batch,d_in,d_out,norm", _sweep_cases())
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
def test_matches_dense_reference(dtype, n, batch, d_in, d_out, norm):
    x = make_input((*batch, d_in), dtype, seed=n + d_in)
    y = cuda_fwht(x, n, out_features=d_out, norm=norm)
    assert_close_to_reference(y, dense_reference(x, n, out_features=d_out, scale=_norm_scale(norm, n)), dtype, n)


LARGE = [(1 << k, b) for k in (15, 16, 17, 20) for b in ((), (3,))] + [(1 << 22, ()), (1 << 24, ())]


@pytest.mark.parametrize("n,batch", LARGE, ids=lambda v: str(v))
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
def test_large_n_and_multi_pass(dtype, n, batch):
    for d_in, d_out in ((n, n), (n // 2 + 3, n // 3 + 1)):
        x = make_input((*batch, d_in), dtype, seed=d_in)
        y = cuda_fwht(x, n, out_features=d_out)
        assert_close_to_reference(y, butterfly_reference(x, n, d_out), dtype, n)


def test_longest_supported_n_fp32():
    n = zerofwht._backends.cuda_max_n(torch.float32, torch.device(DEV))
    assert n >= 1 << 26
    x = make_input((1 << 20,), torch.float32, seed=7)  # padded to n: a sparse but non-zero row
    y = zerofwht.fwht(x.to(DEV), n, out_features=1 << 16, backend="cuda").cpu()
    assert_close_to_reference(y, butterfly_reference(x, n, 1 << 16), torch.float32, n)
    with pytest.raises(ValueError, match=rf"n={2 * n} is longer than the CUDA kernel takes"):
        torch.ops.zerofwht.fwht(x.to(DEV), 2 * n, 8, 1.0)
    with pytest.raises(RuntimeError, match=r"backend 'cuda' cannot run this input: it supports n <="):
        zerofwht.fwht(x.to(DEV), 2 * n, backend="cuda")


@pytest.mark.parametrize("n", [1 << k for k in range(0, 24)], ids=lambda n: f"n{n}")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=dtype_id)
def test_bitwise_equal_to_cpu_kernel(dtype, n):
    rows = max(1, min(64, (1 << 22) // n))
    x = make_input((rows, n), dtype, seed=n)
    for d_in, d_out, scale in ((n, n, 1.0), (max(1, n - 3), max(1, n // 2), 0.37)):
        got = torch.ops.zerofwht.fwht(x[:, :d_in].to(DEV), n, d_out, scale).cpu()
        want = torch.ops.zerofwht.fwht(x[:, :d_in], n, d_out, scale)
        assert torch.equal(got, want), f"d_in={d_in} d_out={d_out}: {(got != want).sum()} elements differ"


@pytest.mark.parametrize("d_in,n,d_out", LAYOUT_SIZES + [pytest.param(40000, 1 << 16, 1 << 15, id="multipass")])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=dtype_id)
def test_strided_inputs_and_dim(dtype, layout, d_in, n, d_out):
    x, dim = _layout(layout, d_in, dtype, seed=d_in)
    xc = _same_layout_on_cuda(x)
    assert xc.stride() == x.stride() and torch.equal(xc.cpu(), x)
    before = xc.clone()
    y = zerofwht.fwht(xc, n, dim, out_features=d_out, backend="cuda")
    assert_close_to_reference(y.cpu(), dense_reference(x.contiguous(), n, dim, out_features=d_out), dtype, n)
    assert torch.equal(xc, before), "the input was modified"


def _same_layout_on_cuda(x: torch.Tensor) -> torch.Tensor:
    """x's values on the GPU with x's strides and storage offset (a view into a copy of its storage)."""
    flat = x.as_strided((x.untyped_storage().nbytes() // x.element_size(),), (1,), 0)
    return flat.to(DEV).as_strided(x.shape, x.stride(), x.storage_offset())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=dtype_id)
@pytest.mark.parametrize("d_in,n,d_out", [(8, 8, 8), (37, 64, 50), (1000, 1024, 1024), (3000, 1 << 16, 5000)])
def test_out_every_element_written(dtype, d_in, n, d_out):
    x = make_input((2, 3, d_in), dtype, seed=3).to(DEV)
    big = torch.full((4, 5, d_out + 3), -7.25, dtype=dtype, device=DEV)
    out = poison(big[1:3, 1:4, 2:2 + d_out])
    zerofwht.fwht(x, n, out_features=d_out, out=out, backend="cuda")
    assert_close_to_reference(out.cpu(), dense_reference(x.cpu(), n, out_features=d_out), dtype, n)
    mask = torch.ones_like(big, dtype=torch.bool)
    mask[1:3, 1:4, 2:2 + d_out] = False
    assert bool((big[mask] == -7.25).all()), "elements outside out= were written"
    t = poison(torch.empty(d_out, 6, dtype=dtype, device=DEV)).t()  # transposed buffer: via a temporary
    zerofwht.fwht(x.reshape(6, d_in), n, out_features=d_out, out=t, backend="cuda")
    assert not bool(t.isnan().any())


@pytest.mark.parametrize("n", [1, 16, 1024, 1 << 15, 1 << 17], ids=lambda n: f"n{n}")
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
def test_in_place_and_aliasing_out(dtype, n):
    x = make_input((3, n), dtype, seed=n)
    ref = dense_reference(x, n) if n <= 1 << 15 else butterfly_reference(x, n)
    xg = x.to(DEV)
    zerofwht.fwht_(xg, backend="cuda")
    assert_close_to_reference(xg.cpu(), ref, dtype, n)
    xg = x.to(DEV)
    zerofwht.fwht(xg, out=xg, backend="cuda")
    assert_close_to_reference(xg.cpu(), ref, dtype, n)


def test_partially_overlapping_out():
    buf = make_input((3 * 64 + 32,), torch.float32, seed=2).to(DEV)
    x, out = buf[:192].view(3, 64), buf[32:].view(3, 64)
    ref = dense_reference(x.cpu(), 64)
    zerofwht.fwht(x, out=out, backend="cuda")
    assert_close_to_reference(out.cpu(), ref, torch.float32, 64)


@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
def test_nan_and_inf_stay_in_their_rows(dtype):
    x = make_input((4, 256), dtype, seed=1)
    x[1, 7], x[2, 100] = float("nan"), float("inf")
    y = cuda_fwht(x, 256)
    assert bool(y[1].isnan().all()) and bool(y[2].isinf().all() | y[2].isnan().all())
    assert bool(y[[0, 3]].isfinite().all())


def test_empty_tensors():
    assert cuda_fwht(torch.empty(0, 8), 8).shape == (0, 8)
    assert cuda_fwht(torch.empty(3, 0), 4).abs().sum() == 0


def test_auto_backend_on_cuda_is_cuda():
    assert zerofwht._backends.select(torch.empty(2, 8, device=DEV), 8).name == "cuda"


def test_non_default_stream_and_second_device_guard():
    x = make_input((64, 4096), torch.float32, seed=5).to(DEV)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        y = zerofwht.fwht(x, backend="cuda")
    torch.cuda.current_stream().wait_stream(s)
    assert torch.equal(y, zerofwht.fwht(x, backend="cuda"))


def test_gradcheck_and_gradgradcheck_fp64():
    x = make_input((3, 12), torch.float64, seed=9).to(DEV).requires_grad_()
    f = lambda t: zerofwht.fwht(t, 16, out_features=10, norm="ortho", backend="cuda")  # noqa: E731
    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradgradcheck(f, (x,))


@pytest.mark.parametrize("n,d_in,d_out", [(16, 12, 10), (1 << 16, 40000, 50000)])
def test_opcheck(n, d_in, d_out):
    x = make_input((2, d_in), torch.float32, seed=1).to(DEV)
    torch.library.opcheck(torch.ops.zerofwht.fwht.default, (x, n, d_out, 0.5))
    out = torch.empty(2, d_out, device=DEV)
    torch.library.opcheck(torch.ops.zerofwht.fwht_out.default, (x, n, d_out, 0.5, out))
    xs = make_input((2, n), torch.float32, seed=2).to(DEV)
    torch.library.opcheck(torch.ops.zerofwht.fwht_inplace.default, (xs, 0.5))


def test_torch_compile_fullgraph():
    f = torch.compile(lambda t: zerofwht.fwht(t, norm="ortho", backend="cuda") * 2, fullgraph=True)
    x = make_input((8, 1000), torch.float32, seed=3).to(DEV).requires_grad_()
    y = f(x)
    y.sum().backward()
    assert_close_to_reference(y.detach().cpu(), dense_reference(x.detach().cpu(), 1024, scale=2 / 32), torch.float32, 1024)
    assert x.grad is not None and x.grad.shape == x.shape


def test_cpu_tensor_with_cuda_backend_says_why():
    with pytest.raises(RuntimeError, match=r"backend 'cuda' cannot run this input: it runs on cuda tensors"):
        zerofwht.fwht(torch.randn(2, 8), backend="cuda")
