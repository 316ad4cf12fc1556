"""Rows padded to at most half of n are folded by the C++ kernel (``fold_padding`` in
csrc/cpu/fwht.h): with m the smallest power of two >= d_in (and >= 16), every block of m past the
first is zero until the stages of distance >= m, which only copy the first block's transform. The
kernel transforms m elements and writes the n / m copies (as ``t + 0``, the last one as ``t - 0``,
which is what those stages compute). These tests check that the fold happens (``cpu_plan``), that
its result is bitwise that of the full transform (the pure-PyTorch backend runs every stage),
signed zeros, NaN and Inf included, on every instruction set, dtype, layout and thread count, and
that it matches the fp64 reference with out= poisoned and the gaps around out= left alone."""
from __future__ import annotations

import pytest
import torch

import zerofwht

from conftest import CPU_ISAS, FLOAT_DTYPES, assert_close_to_reference, dense_reference, dtype_id, make_input, poison

SENTINEL = -7.25
INT_VIEW = {2: torch.int16, 4: torch.int32, 8: torch.int64}

# (rows, d_in, n, d_out)
CASES = [
    pytest.param(64, 768, 4096, 3072, id="din768-n4096-dout3072"),        # HadamardLinear 768 -> 3072
    pytest.param(33, 100, 1024, 1000, id="din100-n1024-dout1000"),        # 8 copies, the last one partial
    pytest.param(40, 16, 4096, 4096, id="din16-n4096"),                   # 256 copies, the last one whole
    pytest.param(50, 1, 256, 256, id="din1-n256"),                        # m = 16, the smallest fold
    pytest.param(9, 100, 4096, 50, id="din100-n4096-dout50"),             # d_out < m: one copy
    pytest.param(5, 300, 1024, 600, id="din300-n1024-dout600"),
    pytest.param(3, 3000, 1 << 16, (1 << 16) - 1, id="din3000-n65536-dout65535"),  # m = 4096
    pytest.param(2, 2000, 1 << 19, 1 << 19, id="din2000-n524288"),       # 256 copies of 2048
]


def _piece_bytes() -> int:
    """FwhtPlan::piece in bytes: the largest power of two at most 2/3 of L1d."""
    l1d = zerofwht._C.cpu_tuning()["l1d_bytes"]
    piece = 1
    while piece * 2 <= l1d * 2 // 3:
        piece *= 2
    return piece


def _folded_length(d_in: int, n: int, compute_bytes: int = 4) -> int:
    """The length the kernel transforms: m (the smallest power of two >= d_in, >= 16) when it is
    at most n / 2 and fits an L1 piece, else n."""
    m = 16
    while m < d_in:
        m *= 2
    return m if 2 * m <= n and m * compute_bytes <= _piece_bytes() else n


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(INT_VIEW[t.element_size()])


@pytest.mark.parametrize("rows,d_in,n,d_out", CASES)
@pytest.mark.parametrize("dtype,compute_bytes", [("float32", 4), ("bfloat16", 4), ("float64", 8)])
def test_plan_folds_padded_rows(rows, d_in, n, d_out, dtype, compute_bytes):
    m = _folded_length(d_in, n, compute_bytes)
    plan = zerofwht._C.cpu_plan(n, rows, d_in, d_out, dtype=dtype)
    assert (plan["n"], plan["copies"]) == (m, n // m)
    if d_in <= 1024:  # m <= 1024: fp64 rows of 8 KB fit the piece of any L1d of 12 KB or more
        assert m < n


def test_plan_does_not_fold_rows_filled_past_half():
    for d_in in (513, 1000, 1024):
        plan = zerofwht._C.cpu_plan(1024, 8, d_in, 1024)
        assert (plan["n"], plan["copies"]) == (1024, 1)


def test_plan_folds_rows_of_up_to_an_l1_piece():
    """Folded rows are transformed in an L1 scratch row; longer ones are not folded."""
    longest = _piece_bytes() // 4  # fp32 elements
    assert zerofwht._C.cpu_plan(4 * longest, 2, longest, 4 * longest)["copies"] == 4
    plan = zerofwht._C.cpu_plan(4 * longest, 2, longest + 1, 4 * longest)
    assert (plan["n"], plan["copies"]) == (4 * longest, 1)
    plan = zerofwht._C.cpu_plan(4 * longest, 2, longest, 4 * longest, dtype="float64")
    assert (plan["n"], plan["copies"]) == (4 * longest, 1)


@pytest.mark.parametrize("isa", CPU_ISAS)
@pytest.mark.parametrize("dtype", [pytest.param(dt, id=dtype_id(dt)) for dt in FLOAT_DTYPES])
@pytest.mark.parametrize("rows,d_in,n,d_out", CASES)
def test_folded_rows_bitwise_equal_full_transform(num_threads, isa, dtype, rows, d_in, n, d_out):
    if n > 1 << 16 and dtype in (torch.float16, torch.bfloat16):
        pytest.skip("the longest case runs in fp32 and fp64 only (the half types share its code path)")
    x = make_input((rows, d_in), dtype, seed=d_in + n)
    full = zerofwht.fwht(x, n, out_features=d_out, scale=0.5, backend="torch")
    assert_close_to_reference(full, dense_reference(x, n, out_features=d_out, scale=0.5), dtype, n)
    zerofwht._C.set_cpu_isa(isa)
    for threads in (1, 2):
        num_threads(threads)
        out = poison(torch.empty(rows, d_out, dtype=dtype))
        zerofwht.fwht(x, n, out_features=d_out, scale=0.5, out=out, backend="cpp")
        assert not out.isnan().any(), f"{int(out.isnan().sum())} elements of out were not written"
        assert torch.equal(_bits(out), _bits(full)), (
            f"{threads} thread(s): differs from the full transform, max abs diff "
            f"{(out.double() - full.double()).abs().max().item()}")


@pytest.mark.parametrize("isa", CPU_ISAS)
@pytest.mark.parametrize("dtype", [pytest.param(torch.float32, id="fp32"), pytest.param(torch.bfloat16, id="bf16")])
@pytest.mark.parametrize("n,d_in,d_out", [pytest.param(256, 40, 200, id="n256-din40-dout200"),
                                          pytest.param(4096, 700, 3000, id="n4096-din700-dout3000")])
def test_folded_rows_in_gapped_buffers(isa, dtype, n, d_in, d_out):
    """x rows inside a wider buffer, out= rows inside a wider buffer: only out's elements change."""
    rows = max(3, (3 << 13) // n + 3)
    x_buf = make_input((rows, d_in + 9), dtype, seed=n + d_in)
    x = x_buf[:, 5:5 + d_in]
    full = zerofwht.fwht(x, n, out_features=d_out, norm="ortho", backend="torch")
    zerofwht._C.set_cpu_isa(isa)
    y_buf = torch.full((rows, d_out + 24), SENTINEL, dtype=dtype)
    out = poison(y_buf[:, 8:8 + d_out])
    zerofwht.fwht(x, n, out_features=d_out, norm="ortho", out=out, backend="cpp")
    assert torch.equal(_bits(out), _bits(full))
    assert bool((y_buf[:, :8] == SENTINEL).all()) and bool((y_buf[:, 8 + d_out:] == SENTINEL).all()), \
        "out= wrote into the gaps between its rows"
    assert torch.equal(_bits(zerofwht.fwht(x, n, out_features=d_out, norm="ortho", backend="cpp")), _bits(full))


@pytest.mark.parametrize("isa", CPU_ISAS)
@pytest.mark.parametrize("dtype", [pytest.param(dt, id=dtype_id(dt)) for dt in FLOAT_DTYPES])
@pytest.mark.parametrize("scale", [1.0, -0.5], ids=["scale1", "scale-0.5"])
def test_folded_signed_zeros_nan_inf_match_full_transform(isa, dtype, scale):
    """The copies are t + 0 and t - 0, as in the full transform: -0 becomes +0 in all but the last
    copy; NaN and Inf reach exactly the rows (and the same positions) they reach there."""
    n, d_in = 1024, 100
    x = make_input((6, d_in), dtype, seed=7)
    x[0] = -0.0                      # every stage output is -0 or +0
    x[1, ::2] = -0.0
    x[1, 1::2] = 0.0
    x[2, 17] = float("nan")
    x[3, 3] = float("inf")
    x[4, :] = torch.where(torch.arange(d_in) % 3 == 0, -0.0, x[4].double()).to(dtype)
    full = zerofwht.fwht(x, n, scale=scale, backend="torch")
    zerofwht._C.set_cpu_isa(isa)
    got = zerofwht.fwht(x, n, scale=scale, backend="cpp")
    assert torch.equal(got.isnan(), full.isnan())
    assert got[2].isnan().all() and not got[[0, 1, 3, 4, 5]].isnan().any()
    finite_or_inf = ~full.isnan()
    assert torch.equal(_bits(got)[finite_or_inf], _bits(full)[finite_or_inf])
    # What the test relies on (in the full transform): row 0 is all zeros, the copies before the
    # last are +0 times the scale, and the last copy holds both signs of zero.
    m = 128
    first_copies, last_copy = full[0, : n - m], full[0, n - m:]
    assert bool((full[0] == 0).all())
    assert bool(first_copies.signbit().all()) if scale < 0 else not bool(first_copies.signbit().any())
    assert bool(last_copy.signbit().any()) and not bool(last_copy.signbit().all())
