"""Triton backend of the fused weight fill, layer 2: the launcher (op
``zerofwht::init_fill_triton_``, a ``torch.library.triton_op``).

The kernel and its configurations are in ``zerofwht.triton_init_kernels`` (layer 1). The launcher
builds the iteration layout (``layout()``, the Python twin of ``build_layout`` in csrc's init
params header), picks the configuration and launches ONE kernel (one per index of the extra
leading dims for the rare layouts with more than 4 unmergeable dims).
"""
from __future__ import annotations

import itertools
import math
from typing import Sequence

import torch
import triton
from torch.library import triton_op, wrap_triton

from ._checks import check_fill_args, logical_matrix
from .triton_init_kernels import (BLOCKS_I, ELEM_TYPES, KINDS, NUM_WARPS, TILE,  # noqa: F401
                                  _init_fill_kernel, _kernel, configs, signature)

MAX_OUTER = 3          # outer iteration dims one launch decomposes (more: one launch per index
                       # of the extra leading dims; only unmergeable 5- and 6-d layouts need that)
INDEX_LIMIT = 2 ** 31  # logical indices are int32 in the kernel


# ----------------------------------------------------------------------------------------------
# Layout (Python twin of build_layout in csrc/shared/init_params.h)
# ----------------------------------------------------------------------------------------------
def layout(sizes: Sequence[int], strides: Sequence[int], offset: Sequence[int],
           full_shape: Sequence[int], tap_mode: int) -> dict:
    """Iteration dims of a local tensor (outermost first; size-1 dims dropped, ordered by
    decreasing stride, evenly stepping neighbours merged) and its logical origin."""
    nd = len(sizes)
    R, C, col_steps, tap_steps, tap_centre = logical_matrix(full_shape, tap_mode)
    row_steps = [1] + [0] * (nd - 1)
    origin = {
        "row0": offset[0],
        "col0": sum(o * s for o, s in zip(offset, col_steps)),
        "tap0": sum(o * s for o, s in zip(offset, tap_steps)),
        "tap_centre": tap_centre, "full_rows": R, "full_cols": C,
    }
    order = sorted((d for d in range(nd) if sizes[d] != 1), key=lambda d: -strides[d])
    dims = []  # [size, stride, row_step, col_step, tap_step]
    for d in order:
        s = sizes[d]
        cur = [s, strides[d], row_steps[d], col_steps[d], tap_steps[d]]
        if dims:
            o = dims[-1]
            if all(o[k] == cur[k] * s for k in range(1, 5)):
                dims[-1] = [o[0] * s] + cur[1:]
                continue
        dims.append(cur)
    if not dims:
        dims = [[1, 1, 0, 0, 0]]
    origin["dims"] = dims
    return origin


def _block_i(n_inner: int) -> int:
    for b in BLOCKS_I:
        if n_inner <= b:
            return b
    return BLOCKS_I[-1]


def check_index_range(full_rows: int, full_cols: int, taps: int, n_outer: int, n_inner: int,
                      full_shape: Sequence[int]) -> None:
    """Refuses sizes the int32 indices of the kernel cannot hold. A program's indices run up to
    one tile past the last element (``pid * BLOCK + arange(BLOCK)``, masked afterwards), so each
    dimension must stay below 2^31 by a whole tile: a size within one tile of 2^31 would wrap to
    negative indices that pass the ``< n`` masks."""
    dims = {"full rows": full_rows, "full columns": full_cols, "taps": taps,
            "runs of w": n_outer, "run length of w": n_inner}
    for what, size in dims.items():
        if size + TILE >= INDEX_LIMIT:
            raise ValueError(f"init_fill_triton_: the Triton kernel indexes with int32 and needs every "
                             f"dimension + one tile ({TILE}) < 2^31; full_shape={tuple(full_shape)} has "
                             f"{what} = {size}: use backend='cuda' or 'torch'")


def launches(w: torch.Tensor, kind: int, pos_bits: int, neg_bits: int, tap_mode: int,
             offset: Sequence[int], full_shape: Sequence[int]) -> list:
    """The kernel launches that fill ``w``: a list of (element offset of the launch's origin from
    w's element 0, positional args after the pointer, constexpr kwargs, grid). One launch, except
    for layouts with more than MAX_OUTER + 1 unmergeable dims (one launch per index of the extra
    leading dims)."""
    lay = layout(list(w.shape), list(w.stride()), list(offset), list(full_shape), tap_mode)
    dims = lay["dims"]
    inner, outer = dims[-1], dims[:-1]
    extra, outer = outer[:max(0, len(outer) - MAX_OUTER)], outer[max(0, len(outer) - MAX_OUTER):]
    outer = [[1, 0, 0, 0, 0]] * (MAX_OUTER - len(outer)) + outer
    n_outer = math.prod(d[0] for d in outer)
    n_inner = inner[0]
    taps = math.prod(full_shape[2:]) if tap_mode == 1 else 1
    block_i = _block_i(n_inner)
    block_o = TILE // block_i
    check_index_range(lay["full_rows"], lay["full_cols"], taps, n_outer, n_inner, full_shape)
    n_inner_blocks = triton.cdiv(n_inner, block_i)
    R, C = lay["full_rows"], lay["full_cols"]
    meta = dict(KIND=int(kind), ROW_VARIES=inner[2] != 0, BLOCK_O=block_o, BLOCK_I=block_i)
    grid = (triton.cdiv(n_outer, block_o) * n_inner_blocks,)
    out = []
    for idx in itertools.product(*(range(d[0]) for d in extra)):
        mem, row, col, tap = 0, lay["row0"], lay["col0"], lay["tap0"]
        for i, d in zip(idx, extra):
            mem, row, col, tap = mem + i * d[1], row + i * d[2], col + i * d[3], tap + i * d[4]
        args = [n_outer, n_inner, n_inner_blocks]
        args += [d[0] for d in outer[1:]]
        for k in (1, 2, 3, 4):  # memory, row, col, tap steps of the outer dims
            args += [d[k] for d in outer]
        args += [inner[1], inner[2], inner[3], inner[4], row, col, tap, lay["tap_centre"],
                 R, C, max(C - R, 1), pos_bits, neg_bits]
        out.append((mem, args, meta, grid))
    return out


@triton_op("zerofwht::init_fill_triton_", mutates_args={"w"})
def init_fill_triton_(w: torch.Tensor, kind: int, pos_bits: int, neg_bits: int, tap_mode: int,
                      offset: list[int], full_shape: list[int]) -> None:
    """Fills ``w`` (the block at ``offset`` of a ``full_shape`` weight) with rule ``kind``; the
    values are given as the bits of +value / -value in w's dtype. One kernel launch (see
    :func:`launches` for the rare exception)."""
    check_fill_args("zerofwht::init_fill_triton_", w, kind, tap_mode, offset, full_shape)
    wi = w.view(ELEM_TYPES[w.element_size()])
    kernel, on_gpu = _kernel()
    for mem, args, meta, grid in launches(w, kind, pos_bits, neg_bits, tap_mode, offset, full_shape):
        dst = wi if mem == 0 else wi.as_strided((1,), (1,), wi.storage_offset() + mem)
        wrap_triton(kernel)[grid](dst, *args, **meta, USE_POPC=on_gpu, num_warps=NUM_WARPS)
