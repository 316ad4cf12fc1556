"""Many short rows that are padded (d_in < n), truncated (out_features < n) or not back to back.

The C++ kernel does rows of up to 512 elements that step evenly through x and y a chunk of rows at
a time (the chunk's rows laid side by side in one array), and finishes truncated or strided rows
of up to a few thousand elements in a scratch row before writing them to y in address order. These
tests give it enough rows for several chunks and a partial last one, rows that start anywhere in a
wider buffer, and out= views of wider rows (which are written directly, not through a temporary):
every element against the fp64 dense reference, out= poisoned, the buffer around the views left
alone, and one thread bitwise equal to two.
"""
from __future__ import annotations

import pytest
import torch

import zerofwht

from conftest import FLOAT_DTYPES, assert_close_to_reference, dense_reference, dtype_id, make_input, poison

SENTINEL = -7.25

# (n, d_in, d_out, x_gap, y_gap): x rows are d_in + x_gap apart, out= rows d_out + y_gap apart
CASES = [
    pytest.param(8, 8, 5, 0, 0, id="n8-trunc"),
    pytest.param(16, 16, 16, 3, 5, id="n16-square-gaps"),
    pytest.param(16, 9, 16, 0, 0, id="n16-pad"),
    pytest.param(64, 40, 64, 0, 0, id="n64-pad"),
    pytest.param(64, 64, 40, 0, 0, id="n64-trunc"),
    pytest.param(128, 100, 77, 7, 0, id="n128-pad+trunc-xgap"),
    pytest.param(256, 256, 256, 0, 64, id="n256-square-ygap64"),
    pytest.param(256, 256, 240, 0, 0, id="n256-trunc16"),
    pytest.param(256, 232, 232, 24, 24, id="n256-pad+trunc-gaps"),
    pytest.param(512, 512, 488, 0, 16, id="n512-trunc-ygap"),
    pytest.param(512, 300, 512, 0, 0, id="n512-pad"),
    pytest.param(1024, 1024, 1000, 0, 0, id="n1024-trunc"),
    pytest.param(1024, 1024, 1024, 0, 64, id="n1024-square-ygap"),
    pytest.param(2048, 2000, 2040, 5, 3, id="n2048-pad+trunc-gaps"),
]


def _rows_for(n: int) -> int:
    # a few of the kernel's 4 KB-to-8 KB chunks of rows, and a partial one
    return max(3, (3 << 13) // n + 3)


@pytest.mark.parametrize("dtype", [pytest.param(dt, id=dtype_id(dt)) for dt in FLOAT_DTYPES])
@pytest.mark.parametrize("n,d_in,d_out,x_gap,y_gap", CASES)
def test_strided_padded_truncated_short_rows(impl, num_threads, dtype, n, d_in, d_out, x_gap, y_gap):
    rows = _rows_for(n)
    x_buf = make_input((rows, d_in + x_gap), dtype, seed=n + d_in + x_gap)
    x = x_buf[:, x_gap:]  # rows start x_gap elements into each buffer row
    ref = dense_reference(x, n, out_features=d_out, scale=0.5)
    results = []
    for threads in (1, 2):
        num_threads(threads)
        y_buf = torch.full((rows, d_out + y_gap), SENTINEL, dtype=dtype)
        out = poison(y_buf[:, :d_out])
        result = zerofwht.fwht(x, n, out_features=d_out, scale=0.5, out=out, backend=impl)
        assert result is out
        assert not out.isnan().any(), f"{int(out.isnan().sum())} elements of out were not written"
        assert_close_to_reference(out, ref, dtype, n)
        assert bool((y_buf[:, d_out:] == SENTINEL).all()), "out= wrote into the gaps between its rows"
        fresh = zerofwht.fwht(x, n, out_features=d_out, scale=0.5, backend=impl)  # allocated output
        assert torch.equal(fresh, out)
        results.append(out.clone())
    assert torch.equal(results[0], results[1]), "one thread and two threads differ"


@pytest.mark.parametrize("n", [64, 1024], ids=lambda n: f"n{n}")
def test_in_place_on_rows_of_a_wider_buffer(impl, n):
    buf = make_input((_rows_for(n), n + 48), torch.float32, seed=n)
    view = buf[:, 16:16 + n]
    ref = dense_reference(view, n)
    before = buf.clone()
    zerofwht.fwht_(view, backend=impl)
    assert_close_to_reference(view, ref, torch.float32, n)
    assert torch.equal(buf[:, :16], before[:, :16]) and torch.equal(buf[:, 16 + n:], before[:, 16 + n:])


@pytest.mark.parametrize("n", [64, 1024], ids=lambda n: f"n{n}")
def test_out_in_the_same_buffer_as_x(impl, n):
    # Neither view is dense, so torch cannot tell whether they overlap; the kernel checks their
    # byte spans. Disjoint spans are written directly, interleaved ones through a temporary.
    rows = 6
    buf = make_input((2 * rows, 2 * n), torch.float32, seed=n + 1)
    x = buf[:rows, :n]
    ref = dense_reference(x, n)
    zerofwht.fwht(x, out=buf[rows:, :n], backend=impl)  # spans apart
    assert_close_to_reference(buf[rows:, :n], ref, torch.float32, n)

    buf = make_input((rows, 2 * n), torch.float32, seed=n + 2)
    x = buf[:, :n]
    ref = dense_reference(x, n)
    out = buf[:, n // 2:n // 2 + n]  # every row of out overlaps the same row of x
    zerofwht.fwht(x, out=out, backend=impl)
    assert_close_to_reference(out, ref, torch.float32, n)
