"""Triton backend of the fused weight fill (zerofwht.init), in two layers:

* ``_init_fill_kernel``: the ``@triton.jit`` kernel. It writes one tile of ``BLOCK_O`` runs x
  ``BLOCK_I`` elements of the local tensor, each element computed from its global (row, col, tap)
  index by the rule of ``csrc/init_params.h``, as an integer bit pattern (the launcher views the
  weight as int16 / int32 / int64 and passes the bits of +value and -value), so every floating
  dtype is served by the same code and nothing is rounded on the GPU.
* ``init_fill_triton_``: the ``torch.library.triton_op`` launcher (op
  ``zerofwht::init_fill_triton_``): builds the iteration layout (``layout()``, the Python twin of
  ``build_layout`` in csrc/init_params.h), picks the configuration and launches ONE kernel (one
  per index of the extra leading dims for the rare layouts with more than 4 unmergeable dims).

Kernel configurations (the constexpr parameters; ``configs()`` lists them all, and
scripts/aot_triton.py compiles every one for sm_80 and sm_90): KIND (0..4, the rule); ROW_VARIES
(the innermost dimension moves the logical row, as in a transposed view: the per-row quantities
are then computed per element); BLOCK_I in (16, 128, 1024) with BLOCK_O = 1024 // BLOCK_I (8
elements per thread at 4 warps); USE_POPC (PTX popc on a GPU, a shift/xor parity under the CPU
interpreter); and the element width (int16 / int32 / int64). Logical indices are int32 (weights
with a dimension -- rows or columns of the logical matrix, taps, runs, run length -- within one tile
of 2^31 are refused with a message: see ``check_index_range``), memory offsets int64.

Under ``TRITON_INTERPRET=1`` (checked at launch time) the kernel runs in Triton's CPU interpreter,
on CPU tensors: that is how the tests check it without a GPU.
"""
from __future__ import annotations

import itertools
import math
from typing import Sequence

import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton

from . import _backends

MAX_OUTER = 3          # outer iteration dims one launch decomposes (more: one launch per index
                       # of the extra leading dims; only unmergeable 5- and 6-d layouts need that)
BLOCKS_I = (16, 128, 1024)
TILE = 1024            # elements per program (8 per thread: no spills, see scripts/aot_triton.py)
INDEX_LIMIT = 2 ** 31  # logical indices are int32 in the kernel
NUM_WARPS = 4
KINDS = (0, 1, 2, 3, 4)
ELEM_TYPES = {2: torch.int16, 4: torch.int32, 8: torch.int64}


@triton.jit
def _init_fill_kernel(
    w_ptr,                                 # int16/int32/int64 view of the destination
    n_outer, n_inner, n_inner_blocks,      # runs, run length, programs per run
    s1, s2,                                # sizes of outer dims 1, 2 (dim 0: the rest)
    m0, m1, m2,                            # memory strides of outer dims 0..2 (elements)
    r0, r1, r2,                            # logical row step of outer dims 0..2
    c0, c1, c2,                            # logical column step of outer dims 0..2
    t0, t1, t2,                            # logical tap step of outer dims 0..2
    inner_stride, ir, ic, it,              # innermost dim: memory stride, row / col / tap step
    row0, col0, tap0, tap_centre,          # logical index of element 0, the tap holding the matrix
    full_rows, full_cols, idiz_period,     # R, C, max(C - R, 1)
    pos, neg,                              # bits of +value / -value (signed, element width)
    KIND: tl.constexpr, ROW_VARIES: tl.constexpr, BLOCK_O: tl.constexpr, BLOCK_I: tl.constexpr,
    USE_POPC: tl.constexpr,
):
    # Logical indices (row, col, tap, run and element counters) are int32: the launcher only
    # takes weights with every dimension + one tile < 2^31. Memory offsets are int64.
    pid = tl.program_id(0)
    pid_o = pid // n_inner_blocks
    pid_i = pid % n_inner_blocks
    o = pid_o * BLOCK_O + tl.arange(0, BLOCK_O)
    i = pid_i * BLOCK_I + tl.arange(0, BLOCK_I)
    # outer flat index -> (i0, i1, i2), row-major
    i2 = o % s2
    q = o // s2
    i1 = q % s1
    i0 = q // s1
    mem_o = i0.to(tl.int64) * m0 + i1.to(tl.int64) * m1 + i2.to(tl.int64) * m2
    row_o = row0 + i0 * r0 + i1 * r1 + i2 * r2
    col_o = col0 + i0 * c0 + i1 * c1 + i2 * c2
    tap_o = tap0 + i0 * t0 + i1 * t1 + i2 * t2
    # row / col / tap of each element; the row is per tile row unless the innermost dim moves it
    # (then the per-row quantities below are computed per element)
    if ROW_VARIES:
        row = row_o[:, None] + (i * ir)[None, :]
    else:
        row = row_o[:, None]
    col = col_o[:, None] + (i * ic)[None, :]
    tap = tap_o[:, None] + (i * it)[None, :]

    if KIND == 0:
        val = tl.zeros([BLOCK_O, BLOCK_I], dtype=tl.int32)
    elif KIND == 2:
        rc = row & col
        if USE_POPC:
            par = tl.inline_asm_elementwise("popc.b32 $0, $1;", "=r,r", [rc], dtype=tl.int32,
                                            is_pure=True, pack=1) & 1
        else:
            x = rc ^ (rc >> 16)
            x = x ^ (x >> 8)
            x = x ^ (x >> 4)
            x = x ^ (x >> 2)
            x = x ^ (x >> 1)
            par = x & 1
        val = tl.where(par != 0, neg, pos)
    else:
        if KIND == 1:
            plus = tl.where(row < full_cols, row, -1)
        else:
            plus = row % full_cols
        val = tl.where(col == plus, pos, 0)
        if KIND == 4:
            minus = tl.where(full_rows < full_cols, full_rows + row % idiz_period,
                             (row + 1) % full_cols)
            val = tl.where(col == minus, neg, val)
    val = tl.where(tap == tap_centre, val, 0)
    mask = (o < n_outer)[:, None] & (i < n_inner)[None, :]
    ptrs = w_ptr + (mem_o[:, None] + (i.to(tl.int64) * inner_stride)[None, :])
    tl.store(ptrs, val.to(w_ptr.dtype.element_ty), mask=mask)


# ----------------------------------------------------------------------------------------------
# Layout (Python twin of build_layout in csrc/init_params.h)
# ----------------------------------------------------------------------------------------------
def layout(sizes: Sequence[int], strides: Sequence[int], offset: Sequence[int],
           full_shape: Sequence[int], tap_mode: int) -> dict:
    """Iteration dims of a local tensor (outermost first; size-1 dims dropped, ordered by
    decreasing stride, evenly stepping neighbours merged) and its logical origin."""
    from .init import logical_matrix  # no cycle at import time
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


_INTERPRETED = {}


def _kernel():
    """The jit kernel, or its interpreted twin when TRITON_INTERPRET=1 at launch time."""
    k = _init_fill_kernel
    if not _backends.triton_interpreting():
        return k, True
    from triton.runtime.interpreter import InterpretedFunction
    if isinstance(k, InterpretedFunction):  # the env var was already set at import
        return k, False
    if "k" not in _INTERPRETED:
        _INTERPRETED["k"] = InterpretedFunction(k.fn)
    return _INTERPRETED["k"], False


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
    from .init import _check_op_args
    _check_op_args("zerofwht::init_fill_triton_", w, kind, tap_mode, offset, full_shape)
    wi = w.view(ELEM_TYPES[w.element_size()])
    kernel, on_gpu = _kernel()
    for mem, args, meta, grid in launches(w, kind, pos_bits, neg_bits, tap_mode, offset, full_shape):
        dst = wi if mem == 0 else wi.as_strided((1,), (1,), wi.storage_offset() + mem)
        wrap_triton(kernel)[grid](dst, *args, **meta, USE_POPC=on_gpu, num_warps=NUM_WARPS)


# ----------------------------------------------------------------------------------------------
# Ahead-of-time compilation support (scripts/aot_triton.py)
# ----------------------------------------------------------------------------------------------
def configs() -> list[dict]:
    """Every configuration the launcher can produce on a GPU (USE_POPC=True)."""
    out = []
    for elem in sorted(ELEM_TYPES):
        for kind in KINDS:
            for row_varies in (False, True):
                for block_i in BLOCKS_I:
                    out.append(dict(elem_bytes=elem, KIND=kind, ROW_VARIES=row_varies, BLOCK_I=block_i,
                                    BLOCK_O=TILE // block_i, USE_POPC=True))
    return out


def signature(elem_bytes: int) -> dict:
    """Argument types of _init_fill_kernel for triton.compile: memory strides as i64 (the widest
    case), logical indices as i32 (what the launcher guarantees), value bits of the element width."""
    import inspect
    ptr = {2: "*i16", 4: "*i32", 8: "*i64"}[elem_bytes]
    wide = {"m0", "m1", "m2", "inner_stride"}
    if elem_bytes == 8:
        wide |= {"pos", "neg"}
    sig = {}
    for n in inspect.signature(_init_fill_kernel.fn).parameters:
        if n == "w_ptr":
            sig[n] = ptr
        elif n.isupper():
            sig[n] = "constexpr"
        else:
            sig[n] = "i64" if n in wide else "i32"
    return sig
