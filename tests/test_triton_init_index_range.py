"""The Triton init launcher refuses sizes its int32 kernel indices cannot hold.

A program's indices run one tile past the last element before the masks apply, so a dimension
within one tile of 2^31 would wrap negative and pass the masks. The launcher must refuse such a
weight before launching anything. Checked on meta tensors (shapes only, nothing allocated) and on
the check function directly.
"""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("triton")

from zerofwht import init  # noqa: E402
from zerofwht import triton_init  # noqa: E402

LIMIT = 2 ** 31
TILE = triton_init.TILE


def _launch_plan(shape, full_shape=None, offset=None):
    w = torch.empty(shape, device="meta")
    full_shape = list(full_shape or shape)
    offset = list(offset or [0] * len(shape))
    return triton_init.launches(w, init.KIND_IDI, 1, 0, init.TAP_FLATTEN, offset, full_shape)


@pytest.mark.parametrize("shape", [(LIMIT - TILE, 1), (1, LIMIT - TILE), (LIMIT - 1, 1), (LIMIT - 3, 1)],
                         ids=["rows_one_tile_short", "cols_one_tile_short", "rows_max_int32", "rows_near"])
def test_dimension_within_one_tile_of_2_31_is_refused(shape):
    with pytest.raises(ValueError, match=r"needs every dimension \+ one tile \(1024\) < 2\^31"):
        _launch_plan(shape)


def test_block_of_a_huge_logical_matrix_is_refused():
    # A small local block of a weight whose logical matrix is within one tile of 2^31 rows: the
    # row indices the kernel computes are the global ones.
    with pytest.raises(ValueError, match=r"full rows = 2147483000"):
        _launch_plan((4, 8), full_shape=(2147483000, 8), offset=(2147482000, 0))


@pytest.mark.parametrize("shape", [(LIMIT - TILE - 1, 1), (1, LIMIT - TILE - 1), (1 << 20, 1 << 10)],
                         ids=["rows_largest_taken", "cols_largest_taken", "big_2d"])
def test_largest_sizes_still_taken(shape):
    (launch,) = _launch_plan(shape)
    _, args, meta, grid = launch
    assert grid[0] >= 1 and meta["BLOCK_I"] * meta["BLOCK_O"] == TILE
    # the int32 arguments the kernel gets all fit, with a tile to spare
    assert all(abs(a) + TILE < LIMIT for a in args[:3])


def test_check_function_names_the_dimension():
    triton_init.check_index_range(LIMIT - TILE - 1, 5, 1, 7, 9, (LIMIT - TILE - 1, 5))
    for pos, what in enumerate(["full rows", "full columns", "taps", "runs of w", "run length of w"]):
        sizes = [3, 5, 1, 7, 9]
        sizes[pos] = LIMIT - TILE
        with pytest.raises(ValueError, match=rf"{what} = {LIMIT - TILE}"):
            triton_init.check_index_range(*sizes, (3, 5))
