"""The transform on a GPU, every backend (cuda, triton, torch) x dtype x size, against fp64
references computed on the GPU (dense for n <= 2^15, butterfly above), with poisoned outputs.

Run by scripts/gpu_check.sh (which also runs tests/test_fwht_cuda.py: bitwise equality of the CUDA
kernel with the C++ CPU kernel, opcheck, NaN/Inf rows, streams). Without a GPU, or in the script's
dry run, every test is skipped with the reason.
"""
from __future__ import annotations

import pytest
import torch

import zerofwht
from _gpu_common import BACKENDS, DEV, MULTI_PASS_LOG_N, ONE_PASS_LOG_N, needs_gpu, rows_for
from conftest import FLOAT_DTYPES, assert_close_to_reference, butterfly_reference, dense_reference, dtype_id, poison

pytestmark = needs_gpu

DTYPES = [pytest.param(dt, id=dtype_id(dt)) for dt in FLOAT_DTYPES]


def gpu_input(shape, dtype, seed):
    g = torch.Generator(device=DEV).manual_seed(seed)
    return torch.randn(tuple(shape), generator=g, device=DEV, dtype=torch.float64).to(dtype)


def reference(x, n, out_features=None, scale=1.0):
    return (dense_reference(x, n, out_features=out_features, scale=scale) if n <= 1 << 15
            else butterfly_reference(x, n, out_features, scale))


@pytest.mark.parametrize("log_n", ONE_PASS_LOG_N, ids=lambda v: f"n2^{v}")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_one_pass(backend, dtype, log_n):
    n = 1 << log_n
    rows = rows_for(n)
    for d_in, d_out, scale in ((n, n, 1.0), (max(1, n - n // 3), max(1, n // 2 + 1), n ** -0.5)):
        x = gpu_input((rows, d_in), dtype, seed=log_n * 7 + d_in)
        out = poison(torch.empty(rows, d_out, device=DEV, dtype=dtype))
        y = zerofwht.fwht(x, n, out_features=d_out, scale=scale, backend=backend, out=out)
        assert y.data_ptr() == out.data_ptr()
        assert_close_to_reference(y, reference(x, n, d_out, scale), dtype, n)


@pytest.mark.parametrize("log_n", MULTI_PASS_LOG_N, ids=lambda v: f"n2^{v}")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_multi_pass(backend, dtype, log_n):
    n = 1 << log_n
    rows = rows_for(n, 1 << 26)
    for d_in, d_out in ((n, n), (n // 2 + 5, n // 3 + 1)):
        x = gpu_input((rows, d_in), dtype, seed=log_n + d_in)
        # orthonormal scale: fp16 outputs of 2^26 unscaled normals would come near its range
        y = zerofwht.fwht(x, n, out_features=d_out, norm="ortho", backend=backend)
        assert_close_to_reference(y, reference(x, n, d_out, n ** -0.5), dtype, n)
        del x, y


LAYOUTS = ["transposed", "strided_rows", "column_step", "dim0", "batched_3d"]


def _layout(kind, d, dtype, seed):
    """An input of row length d in layout `kind` and the dim to transform."""
    if kind == "transposed":  # (7, d) view of a (d, 7) tensor: element stride 7
        return gpu_input((d, 7), dtype, seed).t(), -1
    if kind == "strided_rows":  # padded rows: row stride d + 13
        return gpu_input((5, d + 13), dtype, seed)[:, 3:3 + d], -1
    if kind == "column_step":  # every other element
        return gpu_input((3, 2 * d), dtype, seed)[:, ::2], -1
    if kind == "dim0":
        return gpu_input((d, 6), dtype, seed), 0
    return gpu_input((2, d, 3), dtype, seed), 1


@pytest.mark.parametrize("d,n,d_out", [(1, 1, 1), (37, 64, 50), (1000, 1024, 700), (30000, 1 << 15, 1 << 15),
                                       (40000, 1 << 17, 5000)], ids=lambda v: str(v))
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=dtype_id)
@pytest.mark.parametrize("backend", BACKENDS)
def test_rectangular_and_strided(backend, dtype, layout, d, n, d_out):
    x, dim = _layout(layout, d, dtype, seed=d)
    before = x.clone()
    y = zerofwht.fwht(x, n, dim, out_features=d_out, backend=backend)
    want = reference(x.movedim(dim, -1).contiguous(), n, d_out).movedim(-1, dim)
    assert_close_to_reference(y, want, dtype, n)
    assert torch.equal(x, before), "the input was modified"


@pytest.mark.parametrize("n", [1, 16, 1024, 1 << 15, 1 << 17], ids=lambda n: f"n{n}")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_in_place_and_out(backend, dtype, n):
    x = gpu_input((3, n), dtype, seed=n)
    want = reference(x, n)
    xi = x.clone()
    zerofwht.fwht_(xi, backend=backend)
    assert_close_to_reference(xi, want, dtype, n)
    # out= a slice of a larger sentinel buffer: nothing outside the slice may change
    big = torch.full((5, n + 9), -7.25, dtype=dtype, device=DEV)
    out = poison(big[1:4, 4:4 + n])
    zerofwht.fwht(x, out=out, backend=backend)
    assert_close_to_reference(out, want, dtype, n)
    mask = torch.ones_like(big, dtype=torch.bool)
    mask[1:4, 4:4 + n] = False
    assert bool((big[mask] == -7.25).all()), "elements outside out= were written"


@pytest.mark.parametrize("backend", BACKENDS)
def test_autograd(backend):
    x = gpu_input((3, 12), torch.float64, seed=9).requires_grad_()
    f = lambda t: zerofwht.fwht(t, 16, out_features=10, norm="ortho", backend=backend)  # noqa: E731
    assert torch.autograd.gradcheck(f, (x,))
    # a long multi-pass transform: the gradient of sum(w * y) is H^T w = H w (truncated to d_in)
    n = 1 << 18
    x = gpu_input((2, n - 100), torch.float32, seed=3).requires_grad_()
    w = gpu_input((2, n // 2), torch.float32, seed=4)
    (zerofwht.fwht(x, n, out_features=n // 2, backend=backend) * w).sum().backward()
    want = butterfly_reference(w, n)[:, :n - 100]
    assert_close_to_reference(x.grad, want, torch.float32, n)


@pytest.mark.parametrize("backend", BACKENDS)
def test_torch_compile_fullgraph(backend):
    torch._dynamo.reset()
    f = torch.compile(lambda t: zerofwht.fwht(t, norm="ortho", backend=backend) * 2, fullgraph=True)
    for d in (1000, 70000):
        x = gpu_input((4, d), torch.float32, seed=d).requires_grad_()
        n = 1 << (d - 1).bit_length()
        y = f(x)
        y.sum().backward()
        assert_close_to_reference(y.detach(), reference(x.detach(), n, scale=2 * n ** -0.5), torch.float32, n)
        ones = torch.ones(4, n, device=DEV, dtype=torch.float32)
        assert_close_to_reference(x.grad, reference(ones, n, scale=2 * n ** -0.5)[:, :d], torch.float32, n)


def test_hadamard_transform_drop_in():
    x = gpu_input((3, 1000), torch.float16, seed=1)
    y = zerofwht.hadamard_transform(x, scale=0.5)
    assert y.shape == x.shape
    assert_close_to_reference(y, reference(x, 1024, 1000, 0.5), torch.float16, 1024)


def test_auto_backend_table_on_cuda():
    rows = {b["name"]: b for b in zerofwht.backends()}
    assert rows["cuda"]["available"], f"CUDA backend unavailable: {rows['cuda'].get('reason')}"
    assert zerofwht._backends.select(torch.empty(2, 8, device=DEV), 8).name == "cuda"
