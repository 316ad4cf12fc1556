"""Triton backend of the fused weight fill, layer 1: the ``@triton.jit`` kernel and its
configurations (the launcher and the op are in ``zerofwht.triton_init``).

``_init_fill_kernel`` writes one tile of ``BLOCK_O`` runs x ``BLOCK_I`` elements of the local
tensor, each element computed from its global (row, col, tap) index by the rule of the fill
(``zerofwht._checks.KIND_*``; the C++ twin is in csrc's init params header), as an integer bit
pattern (the launcher views the weight as int16 / int32 / int64 and passes the bits of +value and
-value), so every floating dtype is served by the same code and nothing is rounded on the GPU.

Kernel configurations (the constexpr parameters; ``configs()`` lists them all, and
scripts/aot_triton.py compiles every one for sm_80 and sm_90): KIND (0..4, the rule); ROW_VARIES
(the innermost dimension moves the logical row, as in a transposed view: the per-row quantities
are then computed per element); BLOCK_I in (16, 128, 1024) with BLOCK_O = 1024 // BLOCK_I (8
elements per thread at 4 warps); USE_POPC (PTX popc on a GPU, a shift/xor parity under the CPU
interpreter); and the element width (int16 / int32 / int64). Logical indices are int32 (weights
whose logical matrix reaches 2^31 rows or columns are refused with a message), memory offsets
int64.

Under ``TRITON_INTERPRET=1`` (checked at launch time) the kernel runs in Triton's CPU interpreter,
on CPU tensors: that is how the tests check it without a GPU.
The module imports without triton (``IMPORT_ERROR`` then says why).
"""
from __future__ import annotations

import torch

from ._checks import triton_interpreting

try:
    import triton
    import triton.language as tl
    from torch.library import triton_op, wrap_triton  # noqa: F401  (a torch too old: unavailable)
except Exception as exc:  # ImportError, or a triton / torch too old for triton_op
    triton = None
    tl = None
    IMPORT_ERROR = f"{type(exc).__name__}: {exc}"
else:
    IMPORT_ERROR = None

BLOCKS_I = (16, 128, 1024)
TILE = 1024            # elements per program (8 per thread: no spills, see scripts/aot_triton.py)
NUM_WARPS = 4
KINDS = (0, 1, 2, 3, 4)
ELEM_TYPES = {2: torch.int16, 4: torch.int32, 8: torch.int64}

if IMPORT_ERROR is None:

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
        # takes weights whose full logical matrix and tap count are < 2^31. Memory offsets are int64.
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

else:  # pragma: no cover - exercised only without triton
    _init_fill_kernel = None

_INTERPRETED = {}


def _kernel():
    """The jit kernel, or its interpreted twin when TRITON_INTERPRET=1 at launch time."""
    k = _init_fill_kernel
    if not triton_interpreting():
        return k, True
    from triton.runtime.interpreter import InterpretedFunction
    if isinstance(k, InterpretedFunction):  # the env var was already set at import
        return k, False
    if "k" not in _INTERPRETED:
        _INTERPRETED["k"] = InterpretedFunction(k.fn)
    return _INTERPRETED["k"], False


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
