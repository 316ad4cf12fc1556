"""Correctness of zerofwht.fwht / fwht_ / hadamard_transform against fp64 references.

Every implementation (the C++ kernel once per CPU instruction set, and the pure-PyTorch backend)
is compared with the fp64 dense reference over sizes, batch shapes, padding / truncation,
strides, ``dim`` and dtypes; outputs written through ``out=`` are NaN-poisoned first.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.linalg
import torch

import zerofwht
from zerofwht import reference

from conftest import (
    FLOAT_DTYPES,
    IMPLS,
    assert_close_to_reference,
    butterfly_reference,
    dense_reference,
    dtype_id,
    hadamard_column,
    make_input,
    poison,
    set_impl,
)

DTYPE_PARAMS = [pytest.param(dt, id=dtype_id(dt)) for dt in FLOAT_DTYPES]
BATCHES = [(), (3,), (2, 5)]


def batch_id(batch) -> str:
    return "batch" + ("x".join(map(str, batch)) if batch else "0d")


def rect_sizes(n: int, rect: str):
    """(d_in, out_features) for a transform length n: square, padded input, truncated output, both."""
    d_pad, d_trunc = n // 2 + 1, n // 3 + 1
    return {"square": (n, n), "pad": (d_pad, n), "trunc": (n, d_trunc), "pad+trunc": (d_pad, d_trunc)}[rect]


NORMS = [None, "ortho", "forward"]


def _norm_scale(norm, n: int) -> float:
    return {None: 1.0, "ortho": n ** -0.5, "forward": 1.0 / n}[norm]


def _sweep_cases():
    """(n, batch, d_in, out_features, norm) cases, sampled from sizes x batches x shapes x norms.

    Small n: every batch shape with every rectangular form. Medium n: every rectangular form,
    batch shapes rotating. Large n: a single row (the intra-row parallel path with 2 threads),
    square and padded+truncated, plus one batched truncated case. Norms rotate over the cases.
    """
    rects = ["square", "pad", "trunc", "pad+trunc"]
    cases = []
    for k in range(15):
        n = 1 << k
        if n <= 64:
            combos = [(b, r) for b in BATCHES for r in rects]
        elif n <= 2048:
            combos = [(BATCHES[(k + i) % 3], r) for i, r in enumerate(rects)]
        else:
            combos = [((), "square"), ((), "pad+trunc"), ((2, 5), "trunc")]
        seen = set()
        for batch, rect in combos:
            d_in, d_out = rect_sizes(n, rect)
            if (batch, d_in, d_out) in seen:
                continue
            seen.add((batch, d_in, d_out))
            norm = NORMS[len(cases) % len(NORMS)]
            cases.append(pytest.param(n, batch, d_in, d_out, norm,
                                      id=f"n{n}-{batch_id(batch)}-din{d_in}-dout{d_out}-{norm or 'backward'}"))
    return cases


_REF_CACHE: dict = {}


def _sweep_input_and_ref(n, batch, d_in, d_out, norm, dtype):
    key = (n, batch, d_in, d_out, norm, dtype)
    if key not in _REF_CACHE:
        seed = 1_000_003 * n + 1009 * d_in + 17 * d_out + len(batch) + 100 * FLOAT_DTYPES.index(dtype)
        x = make_input((*batch, d_in), dtype, seed=seed)
        _REF_CACHE[key] = (x, dense_reference(x, n, out_features=d_out, scale=_norm_scale(norm, n)))
    return _REF_CACHE[key]


# ----------------------------------------------------------------------------------------------
# The references themselves
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1 << k for k in range(11)], ids=lambda n: f"n{n}")
def test_hadamard_matrix_is_scipy(n):
    h = reference.hadamard_matrix(n, dtype=torch.float64)
    assert torch.equal(h, torch.from_numpy(scipy.linalg.hadamard(n).astype(np.float64)))


@pytest.mark.parametrize("n,d_in,d_out,dim", [
    pytest.param(n, d_in, d_out, dim, id=f"n{n}-din{d_in}-dout{d_out}-dim{dim}")
    for n, d_in, d_out, dim in [(1, 1, 1, -1), (8, 5, 3, -1), (64, 64, 64, 0), (256, 200, 256, 1),
                                (1024, 1024, 7, -1)]])
def test_dense_reference_is_scipy(n, d_in, d_out, dim):
    shape = [3, 4, 2]
    shape[dim] = d_in
    x = make_input(shape, torch.float64, seed=n + d_in)
    h = torch.from_numpy(scipy.linalg.hadamard(n).astype(np.float64))[:d_in, :d_out]
    expected = (x.movedim(dim, -1) @ h * 0.25).movedim(-1, dim)
    got = reference.fwht_dense(x, n, dim, out_features=d_out, scale=0.25)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12 * expected.abs().max().item())


@pytest.mark.parametrize("n", [2048, 4096], ids=lambda n: f"n{n}")
def test_kronecker_dense_helper_is_fwht_dense(n):
    # The test helper reaches n > 2^10 through H_{mL} = H_m (x) H_L; check it against the plain one.
    x = make_input((3, n - 5), torch.float64, seed=n)
    expected = reference.fwht_dense(x, n, out_features=n - 100)
    got = dense_reference(x, n, out_features=n - 100)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12 * expected.abs().max().item())


@pytest.mark.parametrize("n", [1 << k for k in range(0, 13, 2)], ids=lambda n: f"n{n}")
def test_butterfly_reference_is_dense(n):
    # fwht_butterfly is the reference of the largest sizes (2^22): check it against dense first.
    x = make_input((2, n // 2 + 1), torch.float64, seed=n)
    got = reference.fwht_butterfly(x, n, n // 3 + 1, 0.5)
    expected = dense_reference(x, n, out_features=n // 3 + 1, scale=0.5)
    assert_close_to_reference(got, expected, torch.float64, n)


# ----------------------------------------------------------------------------------------------
# The sweep: every implementation x dtype x size x batch x rectangular form
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,batch,d_in,d_out,norm", _sweep_cases())
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
def test_matches_dense_reference(impl, dtype, n, batch, d_in, d_out, norm):
    x, ref = _sweep_input_and_ref(n, batch, d_in, d_out, norm, dtype)
    x_before = x.clone()
    y = zerofwht.fwht(x, n, norm=norm, out_features=d_out, backend=impl)
    assert_close_to_reference(y, ref, dtype, n)
    # The same through a NaN-poisoned out=: every element written, same bits as the functional form.
    out = poison(torch.empty_like(y))
    zerofwht.fwht(x, n, norm=norm, out_features=d_out, out=out, backend=impl)
    assert torch.equal(out, y), f"out= differs from the functional result ({int(out.isnan().sum())} NaN)"
    assert torch.equal(x, x_before), "the input was modified"


LARGE_CASES = [
    pytest.param(1 << 15, (3,), "square", id="n32768-batch3-square"),
    pytest.param(1 << 16, (), "pad+trunc", id="n65536-single-row-pad+trunc"),
    pytest.param(1 << 18, (), "square", id="n262144-single-row-square"),
    pytest.param(1 << 18, (2,), "pad+trunc", id="n262144-batch2-pad+trunc"),
]


@pytest.mark.slow
@pytest.mark.parametrize("n,batch,rect", LARGE_CASES)
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
def test_large_n_matches_dense_reference(impl, dtype, n, batch, rect):
    # Rows longer than a cache block: the two-sweep (blocks, then column groups) path.
    d_in, d_out = rect_sizes(n, rect)
    key = ("large", n, batch, rect, dtype)
    if key not in _REF_CACHE:
        x = make_input((*batch, d_in), dtype, seed=n + d_in)
        _REF_CACHE[key] = (x, dense_reference(x, n, out_features=d_out))
    x, ref = _REF_CACHE[key]
    y = zerofwht.fwht(x, n, out_features=d_out, backend=impl)
    assert_close_to_reference(y, ref, dtype, n)


HUGE_CASES = [
    pytest.param(torch.float32, "square", id="fp32-square"),
    pytest.param(torch.float32, "pad+trunc", id="fp32-pad+trunc"),
    pytest.param(torch.float16, "square", id="fp16-square"),
    pytest.param(torch.bfloat16, "pad+trunc", id="bf16-pad+trunc"),
    pytest.param(torch.float64, "square", id="fp64-square"),
]


_LONG_ROWS = {  # row size -> (dtype, n, rect) cases
    # rows of 1-8 MB: eight blocks, then one pass across them (whole rows per thread)
    "1-4MB": [
        (torch.float32, 1 << 19, "square"), (torch.float32, 1 << 19, "pad+trunc"),
        (torch.float32, 1 << 19, "trunc"), (torch.float32, 1 << 19, "half-padding"),
        (torch.bfloat16, 1 << 19, "pad+trunc"), (torch.float64, 1 << 18, "square"),
        (torch.float32, 1 << 20, "square")],
    # rows of 512 KB (compute type): one sweep in 64 KB pieces where L2 is 2 MB (L1d 48 KB), eight
    # blocks of 64 KB where L2 is 1 MB
    "512KB": [
        (torch.float32, 1 << 17, "square"), (torch.float32, 1 << 17, "pad+trunc"),
        (torch.float32, 1 << 17, "tail-padding"), (torch.bfloat16, 1 << 17, "pad+trunc"),
        (torch.float64, 1 << 16, "square")],
}
LONG_ROW_CASES = [pytest.param(dt, n, rect, id=f"{path}-{dtype_id(dt)}-n{n}-{rect}")
                  for path, cases in _LONG_ROWS.items() for dt, n, rect in cases]
LONG_ROW_SIZES = {  # (d_in, d_out) of the rectangular kinds only these cases use
    "half-padding": lambda n: (n // 2 - 3, n - 5),  # the second half of the row is padding
    "tail-padding": lambda n: (n // 4 + 3, n),      # most pieces are padding
}


@pytest.mark.parametrize("threads", [1, 2], ids=lambda t: f"threads{t}")
@pytest.mark.parametrize("dtype,n,rect", LONG_ROW_CASES)
def test_long_rows_match_butterfly_reference(num_threads, impl, threads, dtype, n, rect):
    num_threads(threads)
    d_in, d_out = LONG_ROW_SIZES[rect](n) if rect in LONG_ROW_SIZES else rect_sizes(n, rect)
    x = make_input((2, d_in), dtype, seed=19)
    y = zerofwht.fwht(x, n, out_features=d_out, scale=0.5, backend=impl)
    assert_close_to_reference(y, butterfly_reference(x, n, d_out, 0.5), dtype, n)


# Outputs of 32 MB and more are written with non-temporal stores (the kernel's kStreamBytes), as are
# short rows whose input and output together fill L3. (n, rows, d_in, d_out, misaligned out=).
STREAMED_CASES = [
    pytest.param(64, 1 << 17, 64, 64, False, id="n64-packed"),
    pytest.param(1024, 1 << 14, 1000, 1021, False, id="n1024-pad+trunc"),
    pytest.param(1024, 1 << 13, 1024, 1024, True, id="n1024-misaligned-out"),
    pytest.param(1 << 20, 8, (1 << 20) - 7, 1 << 20, False, id="n2^20-blocked-pad"),
    # truncated: the blocks go through a separate work row, the second sweep streams into y
    pytest.param(1 << 21, 5, 1 << 21, (1 << 21) - 9, False, id="n2^21-blocked-trunc"),
    # rows of 32 MB: larger than half an L3 of up to 64 MB, so the first sweep streams too
    pytest.param(1 << 23, 2, (1 << 23) - 3, (1 << 23) - 9, False, id="n2^23-blocked-trunc"),
]


@pytest.mark.parametrize("threads", [1, 2], ids=lambda t: f"threads{t}")
@pytest.mark.parametrize("n,rows,d_in,d_out,misaligned", STREAMED_CASES)
def test_streamed_outputs_match_butterfly_reference(num_threads, impl, threads, n, rows, d_in, d_out,
                                                     misaligned):
    num_threads(threads)
    key = ("streamed", n, rows, d_in, d_out)
    if key not in _REF_CACHE:
        x = make_input((rows, d_in), torch.float32, seed=31)
        _REF_CACHE[key] = (x, butterfly_reference(x, n, d_out, n ** -0.5))
    x, expected = _REF_CACHE[key]
    assert rows * d_out * 4 >= 32 << 20  # large enough to stream on any machine
    # a misaligned out= (4 bytes past a 64-byte boundary) takes the plain stores instead
    storage = torch.empty(rows * d_out + 1, dtype=torch.float32)
    out = poison(storage[1:] if misaligned else storage[:-1]).view(rows, d_out)
    y = zerofwht.fwht(x, n, out_features=d_out, norm="ortho", out=out, backend=impl)
    assert y.data_ptr() == out.data_ptr()
    assert_close_to_reference(y, expected, torch.float32, n)


# On one thread, outputs also stream when input and output together fill the L3 (rows of any
# length that do not take two sweeps inside y; rows of at least L2 go through a work row, each
# row's second sweep overlapped with the next row's first). Rows are counted from the L3 this
# machine reports so that these inputs do fill it (up to a 64 MB L3; beyond that they take the
# cached path, which the other tests cover). (n, d_in, d_out, misaligned out=)
L3_FILLING_CASES = [
    pytest.param(1 << 11, 1 << 11, 1 << 11, False, id="n2^11"),
    pytest.param(1 << 12, 4000, 4093, False, id="n2^12-pad+trunc"),
    pytest.param(1 << 14, 1 << 14, 1 << 14, True, id="n2^14-misaligned-out"),
    pytest.param(1 << 16, (1 << 16) - 5, 1 << 16, False, id="n2^16-pad"),
    pytest.param(1 << 18, 1 << 18, 1 << 18, False, id="n2^18-work-row"),
    pytest.param(1 << 20, (1 << 20) - 3, (1 << 20) - 7, True, id="n2^20-pad+trunc-misaligned-out"),
]


@pytest.mark.parametrize("n,d_in,d_out,misaligned", L3_FILLING_CASES)
def test_one_thread_outputs_filling_l3_match_butterfly_reference(num_threads, impl, n, d_in, d_out, misaligned):
    num_threads(1)
    tuning = zerofwht._C.cpu_tuning()
    l3 = min(tuning["l3_bytes"] or (32 << 20), 64 << 20)
    rows = -(-l3 // (4 * (d_in + d_out)))  # input + output >= L3
    if 0 < tuning["l3_bytes"] <= 64 << 20 and tuning["stream_override"] != 0:
        plan = zerofwht._C.cpu_plan(n, rows, d_in, d_out, threads=1)
        assert plan["stream"]  # the path meant here
        if plan["blocked"] and n * 4 >= tuning["l2_bytes"]:
            assert plan["needs_work"] and plan["overlap_rows"] and rows >= 2
    key = ("l3-filling", n, rows, d_in, d_out)
    if key not in _REF_CACHE:
        x = make_input((rows, d_in), torch.float32, seed=37)
        _REF_CACHE[key] = (x, butterfly_reference(x, n, d_out, 0.25))
    x, expected = _REF_CACHE[key]
    storage = torch.empty(rows * d_out + 1, dtype=torch.float32)
    out = poison(storage[1:] if misaligned else storage[:-1]).view(rows, d_out)
    y = zerofwht.fwht(x, n, out_features=d_out, scale=0.25, out=out, backend=impl)
    assert y.data_ptr() == out.data_ptr()
    assert_close_to_reference(y, expected, torch.float32, n)
    fresh = zerofwht.fwht(x, n, out_features=d_out, scale=0.25, backend=impl)  # allocated output
    assert torch.equal(fresh, y)


@pytest.mark.parametrize("n", [1 << 8, 1 << 11, 1 << 16, 1 << 18], ids=lambda n: f"n2^{n.bit_length() - 1}")
def test_one_thread_in_place_filling_l3_equals_out_of_place(num_threads, n):
    # Out of place, rows up to 2^16 stream their output on one thread at this size; in place
    # nothing streams (the lines were just read), a different code path that must give the same
    # bits.
    num_threads(1)
    tuning = zerofwht._C.cpu_tuning()
    l3 = min(tuning["l3_bytes"] or (32 << 20), 64 << 20)
    rows = -(-l3 // (8 * n))
    if tuning["stream_override"] == -1:
        assert not zerofwht._C.cpu_plan(n, rows, threads=1, in_place=True)["stream"]
    x = make_input((rows, n), torch.float32, seed=41)
    expected = zerofwht.fwht(x, scale=0.5)
    y = x.clone()
    assert zerofwht.fwht_(y, scale=0.5) is y
    assert torch.equal(y, expected)
    # and against the reference on a few rows
    assert_close_to_reference(y[:3], butterfly_reference(x[:3], n, n, 0.5), torch.float32, n)


def test_cpu_tuning_reports_plausible_cache_sizes():
    t = zerofwht._C.cpu_tuning()
    assert 16 << 10 <= t["l1d_bytes"] <= 1 << 20, t
    assert 256 << 10 <= t["l2_bytes"] <= 64 << 20, t
    assert t["l3_bytes"] == 0 or t["l3_bytes"] >= t["l2_bytes"], t
    assert isinstance(t["amd"], bool), t


def test_cpu_plan_takes_one_leaf_pass_for_short_rows_only_where_stores_do_not_miss():
    # Zen 4 with AVX-512: the first pass keeps 8 vectors, except for rows of at most 16 vectors
    # (fp32 n <= 2^8) whose stores stream or land on lines just read (in place): one pass of 16.
    t = zerofwht._C.cpu_tuning()
    if not (t["amd"] and zerofwht._C.cpu_isa() == "avx512" and t["stream_override"] == -1):
        pytest.skip(f"rule of AMD CPUs with AVX-512 (this CPU: amd={t['amd']}, isa {zerofwht._C.cpu_isa()}, "
                    f"stream override {t['stream_override']})")
    plan = zerofwht._C.cpu_plan
    big = (64 << 20) // (4 * 256)  # 64 MB of output: streams on any thread count
    assert plan(256, big, threads=2)["stream"] and plan(256, big, threads=2)["leaf_radix_log2"] == 4
    assert not plan(256, 4, threads=2)["stream"] and plan(256, 4, threads=2)["leaf_radix_log2"] == 3
    assert plan(256, 4, threads=2, in_place=True)["leaf_radix_log2"] == 4
    assert plan(512, 4, threads=2, in_place=True)["leaf_radix_log2"] == 3  # too long for one pass
    assert plan(128, 4, threads=2)["leaf_radix_log2"] == 3  # one pass of 8 either way


def test_cpu_plan_streamed_long_rows_use_a_work_row():
    # One thread, streamed output, fp32 rows at least as large as L2: the first sweep goes into a
    # work row and the second streams from it into y. Not in place, not on two threads, and not for
    # blocked rows smaller than L2 (they stay in y).
    t = zerofwht._C.cpu_tuning()
    plan = zerofwht._C.cpu_plan
    n = max(t["l2_bytes"] // 4, 1 << 16)
    rows = max((64 << 20) // (4 * n), 1)  # 64 MB of output: streams on any thread count
    one = plan(n, rows, threads=1)
    assert one["blocked"]
    assert one["needs_work"] == one["stream"]
    assert one["overlap_rows"] == one["needs_work"]  # each row's second sweep beside the next's first
    if t["stream_override"] == -1:
        assert one["stream"] and one["needs_work"] and not one["stream_blocks"]
    assert not plan(n, rows, threads=1, in_place=True)["needs_work"]
    two = plan(n, rows, threads=2)
    assert two["blocked"] and not two["needs_work"] and not two["stream"]
    assert not two["overlap_rows"]
    shorter = plan(n // 2, 2 * rows, threads=1)
    assert shorter["blocked"] and not shorter["needs_work"] and not shorter["overlap_rows"]
    # rows streamed into the work row too (larger than half the L3) are not overlapped
    huge = plan(1 << 24, 4, threads=1)  # 64 MB rows
    if t["stream_override"] == -1 and 0 < t["l3_bytes"] < (128 << 20):
        assert huge["needs_work"] and huge["stream_blocks"]
    assert not (huge["stream_blocks"] and huge["overlap_rows"])


def test_cpu_plan_describes_blocking_and_streaming():
    t = zerofwht._C.cpu_tuning()
    small = zerofwht._C.cpu_plan(1 << 10, 4)
    assert not small["blocked"] and small["block"] == 1 << 10 and small["num_blocks"] == 1
    big = zerofwht._C.cpu_plan(1 << 22, 1)  # 16 MB rows: larger than any L2 the plans assume
    assert big["blocked"] and big["block"] * big["num_blocks"] == 1 << 22
    # Rows inside y unless the output is truncated (or, below, streamed on one thread).
    assert not zerofwht._C.cpu_plan(1 << 22, 1, threads=2)["needs_work"]
    assert zerofwht._C.cpu_plan(1 << 22, 1, d_out=(1 << 22) - 1, threads=2)["needs_work"]
    if t["stream_override"] == -1:
        assert zerofwht._C.cpu_plan(1 << 10, 1 << 13)["stream"]  # 32 MB of output
        assert not zerofwht._C.cpu_plan(1 << 10, 4)["stream"]
        assert not zerofwht._C.cpu_plan(1 << 10, 1 << 13, in_place=True)["stream"]  # never in place
    with pytest.raises(ValueError, match="in_place needs d_in == d_out == n = 16, got d_in 16, d_out 8"):
        zerofwht._C.cpu_plan(16, 1, d_out=8, in_place=True)
    with pytest.raises(ValueError, match="n must be a power of two >= 1, got 1000"):
        zerofwht._C.cpu_plan(1000, 1)
    with pytest.raises(ValueError, match="d_out must be in \\[1, n = 16\\], got 17"):
        zerofwht._C.cpu_plan(16, 1, d_out=17)
    with pytest.raises(ValueError, match="dtype must be .* got 'int8'"):
        zerofwht._C.cpu_plan(16, 1, dtype="int8")


@pytest.mark.slow
@pytest.mark.parametrize("dtype,rect", HUGE_CASES)
def test_n_2_22_single_row_matches_butterfly_reference(impl, dtype, rect):
    n = 1 << 22
    d_in, d_out = rect_sizes(n, rect)
    key = ("huge", dtype, rect)
    if key not in _REF_CACHE:
        x = make_input((d_in,), dtype, seed=22)
        _REF_CACHE[key] = (x, butterfly_reference(x, n, d_out))
    x, ref = _REF_CACHE[key]
    y = zerofwht.fwht(x, n, out_features=d_out, backend=impl)
    assert_close_to_reference(y, ref, dtype, n)


@pytest.mark.parametrize("impl_name", IMPLS)
def test_equals_x_times_scipy_hadamard_for_every_n_up_to_4096(impl_name):
    backend = set_impl(impl_name)
    for k in range(13):
        n = 1 << k
        x = make_input((4, n), torch.float64, seed=k)
        expected = x @ torch.from_numpy(scipy.linalg.hadamard(n).astype(np.float64))
        got = zerofwht.fwht(x, backend=backend)
        atol = 4 * torch.finfo(torch.float64).eps * max(1, k) * expected.abs().max().item()
        torch.testing.assert_close(got, expected, rtol=0, atol=atol, msg=lambda m: f"n={n}: {m}")


# ----------------------------------------------------------------------------------------------
# Strides, views and dim
# ----------------------------------------------------------------------------------------------
def _layout(name: str, d: int, dtype: torch.dtype, seed: int):
    """(x, dim) where x is a view of the named layout with x.shape[dim] == d."""
    if name == "contiguous":
        return make_input((4, d), dtype, seed), -1
    if name == "transposed":  # last dim has stride 6
        return make_input((d, 6), dtype, seed).t(), -1
    if name == "rows-step3":  # rows of a bigger tensor, every third one
        return make_input((12, d), dtype, seed)[::3], -1
    if name == "last-dim-step2":  # strided last dimension
        return make_input((5, 2 * d), dtype, seed)[..., ::2], -1
    if name == "expanded-batch":  # batch stride 0
        return make_input((1, 4, d), dtype, seed).expand(3, 4, d), -1
    if name == "misaligned":  # storage offset of one element
        return make_input((5 * d + 1,), dtype, seed)[1:].view(5, d), -1
    if name == "dim0":
        return make_input((d, 4), dtype, seed), 0
    if name == "dim-middle":
        return make_input((3, d, 4), dtype, seed), 1
    if name == "permuted-batch":  # last dim contiguous, batch dims that do not merge
        return make_input((4, 3, d), dtype, seed).permute(1, 0, 2), -1
    if name == "seven-batch-dims":  # more batch dims than the kernel's row layout holds
        return make_input((2,) * 7 + (d,), dtype, seed).permute(6, 5, 4, 3, 2, 1, 0, 7), -1
    raise AssertionError(name)


LAYOUTS = ["contiguous", "transposed", "rows-step3", "last-dim-step2", "expanded-batch", "misaligned",
           "dim0", "dim-middle", "permuted-batch", "seven-batch-dims"]
LAYOUT_SIZES = [  # (d_in, n, out_features)
    pytest.param(1, 1, 1, id="d1"),
    pytest.param(5, 8, 8, id="d5-n8"),
    pytest.param(64, 64, 21, id="d64-dout21"),
    pytest.param(3000, 4096, 4096, id="d3000-n4096"),
]


@pytest.mark.parametrize("d_in,n,d_out", LAYOUT_SIZES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [pytest.param(torch.float32, id="fp32"),
                                   pytest.param(torch.bfloat16, id="bf16")])
def test_strided_inputs_and_dim(impl, dtype, layout, d_in, n, d_out):
    x, dim = _layout(layout, d_in, dtype, seed=d_in)
    x_before = x.clone()
    y = zerofwht.fwht(x, n, dim, out_features=d_out, backend=impl)
    ref = dense_reference(x.contiguous(), n, dim, out_features=d_out)
    assert_close_to_reference(y, ref, dtype, n)
    assert torch.equal(x, x_before), "the input was modified"


@pytest.mark.parametrize("dtype", [pytest.param(torch.float32, id="fp32"),
                                   pytest.param(torch.float16, id="fp16")])
def test_single_large_row_strided(impl, dtype):
    # One long row read through a strided last dim (copy path) and the intra-row split.
    n = 1 << 14
    x = make_input((2 * (n // 2 + 1),), dtype, seed=14)[::2]
    y = zerofwht.fwht(x, n, out_features=n - 3, backend=impl)
    assert_close_to_reference(y, dense_reference(x.contiguous(), n, out_features=n - 3), dtype, n)


# ----------------------------------------------------------------------------------------------
# out=
# ----------------------------------------------------------------------------------------------
OUT_KINDS = ["contiguous", "transposed-buffer", "slice-of-bigger", "dim0", "seven-batch-dims"]


@pytest.mark.parametrize("out_kind", OUT_KINDS)
@pytest.mark.parametrize("dtype", [pytest.param(torch.float32, id="fp32"),
                                   pytest.param(torch.float64, id="fp64"),
                                   pytest.param(torch.bfloat16, id="bf16")])
@pytest.mark.parametrize("d_in,n,d_out", [pytest.param(8, 8, 8, id="square-n8"),
                                          pytest.param(37, 64, 50, id="din37-n64-dout50"),
                                          pytest.param(1000, 1024, 1024, id="din1000-n1024")])
def test_out_every_element_written(impl, dtype, out_kind, d_in, n, d_out):
    sentinel = -7.25
    big = None
    dim = -1
    if out_kind == "contiguous":
        x = make_input((3, d_in), dtype, seed=1)
        out = poison(torch.empty(3, d_out, dtype=dtype))
    elif out_kind == "transposed-buffer":
        x = make_input((3, d_in), dtype, seed=2)
        out = poison(torch.empty(d_out, 3, dtype=dtype)).t()
    elif out_kind == "slice-of-bigger":
        x = make_input((2, 3, d_in), dtype, seed=3)
        big = torch.full((4, 5, d_out + 3), sentinel, dtype=dtype)
        out = poison(big[1:3, 1:4, 2:2 + d_out])
    elif out_kind == "dim0":
        x = make_input((d_in, 3), dtype, seed=4)
        dim = 0
        out = poison(torch.empty(d_out, 3, dtype=dtype))
    else:  # seven batch dims that cannot be merged: the kernel falls back to a temporary
        x = make_input((2,) * 7 + (d_in,), dtype, seed=5)
        out = poison(torch.empty((2,) * 7 + (d_out,), dtype=dtype).permute(6, 5, 4, 3, 2, 1, 0, 7))
    result = zerofwht.fwht(x, n, dim, out_features=d_out, out=out, backend=impl)
    assert result is out
    assert not out.isnan().any(), f"{int(out.isnan().sum())} elements of out were not written"
    assert_close_to_reference(out, dense_reference(x, n, dim, out_features=d_out), dtype, n)
    if big is not None:
        mask = torch.ones(big.shape, dtype=torch.bool)
        mask[1:3, 1:4, 2:2 + d_out] = False
        assert bool((big[mask] == sentinel).all()), "out= wrote outside the view"


@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("n", [1, 16, 1 << 16], ids=lambda n: f"n{n}")
def test_out_aliasing_x_is_in_place(impl, dtype, n):
    rows = 1 if n > 4096 else 6
    x = make_input((rows, n), dtype, seed=n)
    ref = dense_reference(x, n, scale=0.5)
    result = zerofwht.fwht(x, scale=0.5, out=x, backend=impl)
    assert result is x
    assert_close_to_reference(x, ref, dtype, n)


@pytest.mark.parametrize("n", [8, 256], ids=lambda n: f"n{n}")
def test_out_partially_overlapping_x(impl, n):
    buf = make_input((5 * n + n // 2,), torch.float32, seed=n)
    x = buf[: 5 * n].view(5, n)
    ref = dense_reference(x, n)
    out = buf[n // 2:].view(5, n)
    zerofwht.fwht(x, out=out, backend=impl)
    assert_close_to_reference(out, ref, torch.float32, n)


def test_out_empty(backend):
    x = make_input((0, 8), torch.float32)
    out = torch.empty(0, 8)
    assert zerofwht.fwht(x, out=out, backend=backend) is out


# ----------------------------------------------------------------------------------------------
# In place
# ----------------------------------------------------------------------------------------------
INPLACE_LAYOUTS = ["contiguous", "rows-of-bigger", "last-dim-step2", "dim0-of-transposed", "dim-middle"]


@pytest.mark.parametrize("layout", INPLACE_LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("n", [1, 8, 512, 1 << 14], ids=lambda n: f"n{n}")
def test_fwht_inplace(impl, dtype, layout, n):
    sentinel = 3.5
    rows = 1 if n >= 1 << 14 else 4
    dim = -1
    if layout == "contiguous":
        base = make_input((rows, n), dtype, seed=n)
        x, view_index = base, (slice(None), slice(None))
    elif layout == "rows-of-bigger":
        base = torch.full((rows + 2, n + 2), sentinel, dtype=dtype)
        view_index = (slice(1, rows + 1), slice(1, n + 1))
        base[view_index] = make_input((rows, n), dtype, seed=n)
        x = base[view_index]
    elif layout == "last-dim-step2":
        base = torch.full((rows, 2 * n), sentinel, dtype=dtype)
        view_index = (slice(None), slice(None, None, 2))
        base[view_index] = make_input((rows, n), dtype, seed=n)
        x = base[view_index]
    elif layout == "dim0-of-transposed":
        base = make_input((rows, n), dtype, seed=n)
        view_index = (slice(None), slice(None))
        x, dim = base.t(), 0
    else:
        base = make_input((2, n, 3), dtype, seed=n)
        view_index = (slice(None),) * 3
        x, dim = base, 1
    ref = dense_reference(x, n, dim, scale=1.0 / math.sqrt(n))
    untouched = base.clone()
    result = zerofwht.fwht_(x, dim=dim, norm="ortho", backend=impl)
    assert result is x
    assert_close_to_reference(x, ref, dtype, n)
    mask = torch.ones(base.shape, dtype=torch.bool)
    mask[view_index] = False
    assert torch.equal(base[mask], untouched[mask]), "fwht_ wrote outside the view"


@pytest.mark.parametrize("n", [4, 1 << 13], ids=lambda n: f"n{n}")
def test_fwht_inplace_on_non_leaf_gives_correct_gradient(backend, n):
    leaf = make_input((3, n), torch.float64, seed=1).requires_grad_()
    weight = make_input((3, n), torch.float64, seed=2)
    a = leaf * 2.0  # non-leaf
    b = zerofwht.fwht_(a, scale=0.5, backend=backend)
    assert b is a
    (b * weight).sum().backward()
    # d/dleaf sum(w * 0.5 * H (2 leaf)) = H w (H symmetric)
    assert_close_to_reference(leaf.grad, dense_reference(weight, n), torch.float64, n)
    assert_close_to_reference(a.detach(), dense_reference(leaf * 2.0, n, scale=0.5), torch.float64, n)


def test_fwht_inplace_under_no_grad_on_leaf_requiring_grad(backend):
    x = make_input((2, 16), torch.float32).requires_grad_()
    ref = dense_reference(x, 16)
    with torch.no_grad():
        zerofwht.fwht_(x, backend=backend)
    assert_close_to_reference(x.detach(), ref, torch.float32, 16)


@pytest.mark.parametrize("call", ["fwht_", "out="])
def test_inplace_write_bumps_version_counter(backend, call):
    # A tensor saved for backward and then overwritten must make backward fail loudly (as with
    # any PyTorch in-place op), never silently give a wrong gradient.
    w = make_input((4, 8), torch.float64, seed=1).requires_grad_()
    x = make_input((8, 8), torch.float64, seed=2)
    loss = (w @ x).sum()  # saves x for w's gradient
    version = x._version
    if call == "fwht_":
        zerofwht.fwht_(x, backend=backend)
    else:
        zerofwht.fwht(make_input((8, 8), torch.float64, seed=3), out=x, backend=backend)
    assert x._version > version, "the write did not bump x._version"
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


# ----------------------------------------------------------------------------------------------
# NaN / Inf, empty tensors
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("n,d_in,d_out", [pytest.param(1, 1, 1, id="n1"),
                                          pytest.param(16, 16, 16, id="n16"),
                                          pytest.param(1024, 1000, 300, id="din1000-n1024-dout300"),
                                          pytest.param(1 << 15, 1 << 15, 1 << 15, id="n32768")])
def test_nan_and_inf_propagate_to_their_rows_only(impl, dtype, n, d_in, d_out):
    x = make_input((5, d_in), dtype, seed=d_in)
    p = d_in // 2
    x[1, p] = float("nan")
    x[2, p] = float("inf")
    x[3, d_in - 1] = float("-inf")
    y = zerofwht.fwht(x, n, out_features=d_out, norm="ortho", backend=impl)
    finite = [0, 4]
    ref = dense_reference(x[finite], n, out_features=d_out, scale=n ** -0.5)
    assert_close_to_reference(y[finite], ref, dtype, n)
    assert bool(y[1].isnan().all()), "a NaN must reach every output of its row"
    # One infinity per row: every output is +-inf with the sign of H[k, p] (no inf - inf).
    inf = float("inf")
    expected2 = (hadamard_column(n, p)[:d_out] * inf).to(dtype)
    expected3 = (hadamard_column(n, d_in - 1)[:d_out] * -inf).to(dtype)
    assert torch.equal(y[2], expected2)
    assert torch.equal(y[3], expected3)


@pytest.mark.parametrize("shape,kwargs,expected_shape", [
    pytest.param((0, 8), {}, (0, 8), id="0x8"),
    pytest.param((0, 8), {"n": 16, "out_features": 3}, (0, 3), id="0x8-n16-dout3"),
    pytest.param((4, 0), {}, (4, 0), id="4x0"),
    pytest.param((4, 0), {"n": 4}, (4, 4), id="4x0-n4"),
    pytest.param((2, 0, 3), {"n": 2, "dim": 1}, (2, 2, 3), id="2x0x3-n2-dim1"),
    pytest.param((0,), {}, (0,), id="0"),
])
def test_empty_tensors(backend, shape, kwargs, expected_shape):
    x = torch.empty(shape)
    y = zerofwht.fwht(x, backend=backend, **kwargs)
    assert tuple(y.shape) == expected_shape
    assert y.dtype == x.dtype
    if y.numel():  # n given for an empty dim: the transform of zero padding is zero
        assert bool((y == 0).all())


def test_empty_inplace_and_hadamard_transform(backend):
    x = torch.empty(0, 8)
    assert zerofwht.fwht_(x, backend=backend) is x
    assert tuple(zerofwht.hadamard_transform(torch.empty(0, 5)).shape) == (0, 5)
    assert tuple(zerofwht.hadamard_transform(torch.empty(3, 0)).shape) == (3, 0)


# ----------------------------------------------------------------------------------------------
# hadamard_transform, norm, scale
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("batch,d", [
    pytest.param(batch, d, id=f"{batch_id(batch)}-d{d}")
    for batch, d in [((), 1), ((3,), 3), ((2, 5), 5), ((4,), 100), ((2,), 1000), ((1,), 4097)]])
def test_hadamard_transform(dtype, batch, d):
    x = make_input((*batch, d), dtype, seed=d)
    n = zerofwht.reference.next_power_of_two(d)
    y = zerofwht.hadamard_transform(x, scale=0.125)
    assert tuple(y.shape) == tuple(x.shape)
    assert_close_to_reference(y, dense_reference(x, n, out_features=d, scale=0.125), dtype, n)


def test_hadamard_transform_default_scale_is_one():
    x = make_input((3, 6), torch.float32)
    assert_close_to_reference(zerofwht.hadamard_transform(x), dense_reference(x, 8, out_features=6),
                              torch.float32, 8)


@pytest.mark.parametrize("norm,kind", [pytest.param(None, "none", id="None"),
                                       pytest.param("backward", "backward", id="backward"),
                                       pytest.param("ortho", "ortho", id="ortho"),
                                       pytest.param("forward", "forward", id="forward")])
def test_norm(backend, norm, kind):
    n = 64
    x = make_input((3, 50), torch.float64, seed=7)
    s = {"none": 1.0, "backward": 1.0, "ortho": n ** -0.5, "forward": 1.0 / n}[kind]
    y = zerofwht.fwht(x, n, norm=norm, backend=backend)
    assert_close_to_reference(y, dense_reference(x, n, scale=s), torch.float64, n)


@pytest.mark.parametrize("scale", [0.37, -2.0, 3, 0.0], ids=lambda s: f"scale{s}")
def test_scale(backend, scale):
    x = make_input((2, 32), torch.float32, seed=8)
    y = zerofwht.fwht(x, scale=scale, backend=backend)
    ref = dense_reference(x, 32, scale=float(scale))
    if scale == 0.0:
        assert bool((y == 0).all())
    else:
        assert_close_to_reference(y, ref, torch.float32, 32)


def test_ortho_is_its_own_inverse(backend):
    x = make_input((4, 256), torch.float64, seed=9)
    y = zerofwht.fwht(zerofwht.fwht(x, norm="ortho", backend=backend), norm="ortho", backend=backend)
    torch.testing.assert_close(y, x, rtol=0, atol=1e-13)


def test_forward_after_backward_is_identity(backend):
    x = make_input((4, 128), torch.float64, seed=10)
    y = zerofwht.fwht(zerofwht.fwht(x, backend=backend), norm="forward", backend=backend)
    torch.testing.assert_close(y, x, rtol=0, atol=1e-13)


def test_default_n_is_next_power_of_two(backend):
    x = make_input((2, 1000), torch.float32, seed=11)
    y = zerofwht.fwht(x, backend=backend)
    assert tuple(y.shape) == (2, 1024)
    assert_close_to_reference(y, dense_reference(x, 1024), torch.float32, 1024)


# ----------------------------------------------------------------------------------------------
# Backend selection
# ----------------------------------------------------------------------------------------------
def test_auto_selects_cpp_on_cpu(monkeypatch):
    monkeypatch.delenv("ZEROFWHT_BACKEND", raising=False)
    x = torch.ones(2, 8)
    assert zerofwht._backends.select(x, 8).name == "cpp"
    assert zerofwht._backends.select(x, 8, "auto").name == "cpp"


def test_auto_choice_on_cpu_is_remembered_per_dtype_and_n(monkeypatch):
    monkeypatch.delenv("ZEROFWHT_BACKEND", raising=False)
    monkeypatch.setattr(zerofwht._backends, "_AUTO_CPU", {})
    select = zerofwht._backends.select
    x = make_input((2, 8), torch.float32)
    first = select(x, 8)
    assert first.name == "cpp"
    assert zerofwht._backends._AUTO_CPU == {(torch.float32, 8): first}
    assert select(x, 8) is first
    assert select(x.double(), 16).name == "cpp"
    assert set(zerofwht._backends._AUTO_CPU) == {(torch.float32, 8), (torch.float64, 16)}
    monkeypatch.setenv("ZEROFWHT_BACKEND", "torch")  # still read at every call, before the memo
    assert select(x, 8).name == "torch"
    assert_close_to_reference(zerofwht.fwht(x), dense_reference(x, 8), torch.float32, 8)


def test_env_var_overrides_auto_at_call_time(monkeypatch):
    x = make_input((2, 8), torch.float32)
    monkeypatch.setenv("ZEROFWHT_BACKEND", "torch")
    assert zerofwht._backends.select(x, 8).name == "torch"
    assert zerofwht._backends.select(x, 8, "cpp").name == "cpp"  # an explicit backend wins
    assert_close_to_reference(zerofwht.fwht(x), dense_reference(x, 8), torch.float32, 8)
    monkeypatch.setenv("ZEROFWHT_BACKEND", "cpp")
    assert zerofwht._backends.select(x, 8).name == "cpp"


@pytest.mark.parametrize("alias,name", [("reference", "torch"), ("cpu", "cpp"), ("c++", "cpp"),
                                        ("CPP", "cpp"), ("Torch", "torch")])
def test_backend_aliases(alias, name):
    x = make_input((2, 8), torch.float32)
    assert zerofwht._backends.select(x, 8, alias).name == name
    assert_close_to_reference(zerofwht.fwht(x, backend=alias), dense_reference(x, 8), torch.float32, 8)


def test_meta_tensor_shape_via_torch_backend():
    x = torch.empty(3, 100, device="meta")
    y = zerofwht.fwht(x, out_features=77)
    assert y.device.type == "meta" and tuple(y.shape) == (3, 77)


def test_backend_table_lists_every_backend_with_reasons():
    rows = {r["name"]: r for r in zerofwht.backends()}
    assert set(rows) == {"cpp", "cuda", "triton", "torch"}
    assert rows["cpp"]["available"] and rows["torch"]["available"]
    # The CUDA transform kernel is not written yet: the table must say so, with a reason.
    assert not rows["cuda"]["available"] and rows["cuda"]["reason"]
    # Triton is available when triton imports and has something to run on (a CUDA device, or the
    # CPU interpreter); otherwise the table says why, and how to run it on CPU tensors.
    import importlib.util
    runs_here = torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"
    assert rows["triton"]["available"] == (importlib.util.find_spec("triton") is not None and runs_here)
    if not rows["triton"]["available"] and importlib.util.find_spec("triton") is not None:
        assert "TRITON_INTERPRET=1" in rows["triton"]["reason"]
    if os.environ.get("TRITON_INTERPRET") != "1":
        reason = zerofwht._backends.BACKENDS["triton"].refuse(torch.randn(2, 8), 8)
        assert reason and "CUDA" in reason


def test_cpu_isa_selection():
    for isa in zerofwht._C.supported_cpu_isas().split(","):
        zerofwht._C.set_cpu_isa(isa)
        assert zerofwht._C.cpu_isa() == isa == zerofwht.cpu_isa()
    zerofwht._C.set_cpu_isa("auto")
    assert zerofwht._C.cpu_isa() == zerofwht._C.supported_cpu_isas().split(",")[0]
    with pytest.raises(ValueError, match="bogus"):
        zerofwht._C.set_cpu_isa("bogus")
    assert zerofwht._C.cpu_isa() == zerofwht._C.supported_cpu_isas().split(",")[0]


def test_cpu_isa_environment_variable():
    env = dict(os.environ, ZEROFWHT_CPU_ISA="generic")
    out = subprocess.run([sys.executable, "-c", "import zerofwht; print(zerofwht.cpu_isa())"],
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "generic"
