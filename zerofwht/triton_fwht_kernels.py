"""Triton FWHT, layer 1: the ``@triton.jit`` kernels and the plans that choose them.

The launcher and the registered ops live in ``zerofwht.triton_fwht``; this module holds what the
ahead-of-time compile (scripts/aot_triton_fwht.py) needs without a GPU: the kernels, ``plan`` /
``pass_configs`` (pure Python, importable and tested without triton) and ``kernel_configs``.

Contract (docs/design.md), over the LAST dimension of ``x`` with shape ``(..., d_in)``::

    y = scale * (H_N @ pad_N(x))[..., :out_features]      H_N = scipy.linalg.hadamard(N)

Padding and truncation are masked loads / stores (no padded copy); fp16 / bf16 load and store in
their type and accumulate in fp32, fp32 in fp32, fp64 in fp64. NaN / Inf propagate.

Layer 1, the ``@triton.jit`` kernels (each program keeps its tile on chip, registers plus the
shared memory the compiler uses for layout conversions):

* ``_fwht_rows_kernel``: a tile of ``R`` rows x ``N`` columns; transforms every row along the
  columns. This is the single-pass kernel for ``N <= 2^15`` (``2^14`` for fp64), and the first
  pass of the multi-pass scheme (then each "row" is one segment of ``N`` consecutive elements of a
  longer row; ``segs`` segments per row).
* ``_fwht_cols_kernel``: the later passes of the multi-pass scheme. The row is viewed as
  ``(A, M, C)`` (row-major) and a tile of ``BC`` consecutive columns ``c`` x all ``M`` indices
  ``m`` is transformed along ``m`` (strided loads, coalesced across the ``BC`` columns).

  Plans (``plan``): one pass for N <= 2^15 (fp64: 2^14); a row pass of 2^14 plus one column
  pass of M = N / 2^14 <= 2^10 for N <= 2^24 (each pass reads and writes the row once: twice the
  traffic of a single pass); three or more passes up to 2^30.

  Why this is the whole transform: ``H_N`` is the Kronecker product of ``H_2`` over the index bits
  (``H[i, j] = (-1)^popcount(i & j)``), so transforming along any partition of the index bits, in
  any order, gives ``H_N``. The row pass takes the low ``log2 N2`` bits, each column pass the next
  ``log2 M`` bits.

The on-chip transform (both kernels) is a register butterfly: for each of the ``log2 N`` bits the
tile ``[R, N]`` is viewed as ``[R, N/2, 2]``, split into the two halves of the lowest bit, turned
into ``(a + b, a - b)``, joined, and the bits are rotated by one (``permute`` to ``[R, 2, N/2]``)
so that the next bit becomes the lowest; after ``log2 N`` rotations the natural order is back.
Triton keeps the low bits of each thread's elements in registers and rotates them for free; the
compiler inserts a shared-memory exchange only when the register bits are used up (about
``log2 N / log2(elements per thread)`` exchanges). See scripts/aot_triton_fwht.py for the
registers, spills and shared memory of every configuration.

Multi-pass precision: the intermediate is stored in ``workspace_dtype`` (default: x's dtype, the
fast choice: each pass reads and writes the tensor's type, so fp16 / bf16 are rounded twice
instead of once; pass ``workspace_dtype=torch.float32`` for a single rounding at 1.5x the
traffic). To keep half-precision intermediates in range each non-final pass of ``k`` bits scales
by ``2^-floor(k/2)`` (exact) and the last pass applies ``scale`` times the product of the
inverses.

Without a GPU the kernels run in Triton's CPU interpreter on CPU tensors when ``TRITON_INTERPRET=1``
is set at launch time (``_kernel`` builds the interpreted twin when the variable is set after
import). The module imports without triton (``IMPORT_ERROR`` then says why).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ._checks import TRITON_MAX_LOG_N, triton_interpreting

try:
    import triton
    import triton.language as tl
    from torch.library import triton_op, wrap_triton  # noqa: F401  (a torch too old: unavailable)
except Exception as exc:  # ImportError, or a triton / torch too old for triton_op
    triton = None
    tl = None
    IMPORT_ERROR: Optional[str] = f"{type(exc).__name__}: {exc}"
else:
    IMPORT_ERROR = None

__all__ = ["plan", "pass_configs", "kernel_configs", "Limits", "default_limits",
           "limits_for_shared_memory", "device_limits", "DTYPES", "MAX_LOG_N", "IMPORT_ERROR",
           "KERNELS"]

DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
MAX_LOG_N = TRITON_MAX_LOG_N  # largest transform: 2^30 (flat indices inside a row are int32)
INDEX_LIMIT = 2 ** 31  # programs / virtual rows are counted in int32


# ----------------------------------------------------------------------------------------------
# Plans and configurations (pure Python: usable, and tested, without triton)
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Limits:
    """On-chip limits (log2 of a length) that decide the plan.

    single: the largest N done in one pass; row: the bits of the first (row) pass of a multi-pass
    plan; col: the most bits of one column pass. The defaults depend on the accumulator width
    (``default_limits``); tests force small values to run the multi-pass code on small N."""
    single: int
    row: int
    col: int


def default_limits(dtype: torch.dtype) -> Limits:
    if dtype == torch.float64:  # fp64 accumulators take twice the registers / shared memory
        return Limits(single=14, row=14, col=10)
    return Limits(single=15, row=14, col=10)


def limits_for_shared_memory(dtype: torch.dtype, shared_bytes: int) -> Limits:
    """The default limits, lowered so that every tile fits the shared memory one block may use
    (``shared_bytes``): the compiler's layout exchanges use up to one accumulator per element of
    the tile (2^15 fp32 = 128 KB: sm_80 / sm_90 have 163 / 227 KB, sm_86 / sm_89 / sm_120 99 KB,
    sm_75 64 KB)."""
    lim = default_limits(dtype)
    elems = max(1, shared_bytes // (8 if dtype == torch.float64 else 4))
    single = min(lim.single, elems.bit_length() - 1)
    col = max(1, min(lim.col, (elems // 16).bit_length() - 1))
    return Limits(single=single, row=min(lim.row, single), col=col)


_DEVICE_SHARED: dict = {}


def device_limits(x: torch.Tensor) -> Limits:
    """Limits for x's device: the defaults (sm_80 / sm_90 and the CPU interpreter), lowered on GPUs
    with less shared memory per block (``limits_for_shared_memory``)."""
    if x.device.type != "cuda":
        return default_limits(x.dtype)
    idx = x.device.index if x.device.index is not None else torch.cuda.current_device()
    if idx not in _DEVICE_SHARED:
        props = torch.cuda.get_device_properties(idx)
        _DEVICE_SHARED[idx] = int(getattr(props, "shared_memory_per_block_optin", 0) or 48 * 1024)
    return limits_for_shared_memory(x.dtype, _DEVICE_SHARED[idx])


def plan(n: int, dtype: torch.dtype = torch.float32, limits: Optional[Limits] = None) -> list:
    """The passes for a transform of length ``n``: a list of ``("rows", k)`` / ``("cols", k)``
    (k = bits of the index transformed by the pass, lowest bits first). One ``("rows", log2 n)``
    pass when ``n <= 2^limits.single``; else a row pass of ``limits.row`` bits and
    ``ceil(rest / limits.col)`` column passes sharing the rest evenly."""
    lim = limits or default_limits(dtype)
    L = int(n).bit_length() - 1
    if L <= lim.single:
        return [("rows", L)]
    k_row = min(lim.row, L - 1)
    rest = L - k_row
    ncol = -(-rest // lim.col)
    base, extra = divmod(rest, ncol)
    return [("rows", k_row)] + [("cols", base + (1 if i < extra else 0)) for i in range(ncol)]


def _warps(elems: int, f64: bool) -> int:
    """Warps for a tile of ``elems`` elements: about 32 fp32 (16 fp64) accumulators per thread,
    4 to 16 warps (16 warps cap a thread at 128 registers: 64 fp32 / 32 fp64 elements)."""
    per_thread = 16 if f64 else 32
    return max(4, min(16, elems // (32 * per_thread)))


def row_meta(k: int, f64: bool) -> dict:
    """Configuration of the row kernel for N = 2^k: rows per program R and warps.

    Tiles of 2048 (N <= 16) or 4096 elements for N <= 4096: several rows per program so that
    each program moves 4-32 KB; the row alone for N >= 4096. Warps: see ``_warps``."""
    n = 1 << k
    tile = 2048 if n <= 16 else 4096
    r = max(1, tile // n)
    return {"N": n, "LOG_N": k, "R": r, "num_warps": _warps(r * n, f64)}


def col_meta(k: int, c: int, f64: bool) -> dict:
    """Configuration of the column kernel for M = 2^k columns of stride C: BC consecutive columns
    per program (at least 16 so that each strided access covers a 32-byte sector or more; tiles
    of >= 4096 elements; BC <= C), warps by tile size (``_warps``)."""
    m = 1 << k
    tile = max(4096, 16 * m)
    bc = max(1, min(c, tile // m))
    return {"M": m, "LOG_M": k, "BC": bc, "num_warps": _warps(bc * m, f64)}


def pass_configs(n: int, dtype: torch.dtype, limits: Optional[Limits] = None) -> list:
    """(kernel name, meta) of each pass of the plan for ``n``."""
    f64 = dtype == torch.float64
    out, below = [], 0
    for kind, k in plan(n, dtype, limits):
        if kind == "rows":
            out.append(("rows", row_meta(k, f64)))
        else:
            out.append(("cols", col_meta(k, 1 << below, f64)))
        below += k
    return out


def _workspace_dtype(dtype: torch.dtype, workspace_dtype: Optional[torch.dtype]) -> torch.dtype:
    if workspace_dtype is None:
        return dtype
    if dtype == torch.float64:
        return torch.float64
    if workspace_dtype not in (dtype, torch.float32):
        raise ValueError(f"workspace_dtype must be None, x's dtype or torch.float32, got {workspace_dtype}")
    return workspace_dtype


def kernel_configs() -> list:
    """Every (kernel, constexpr configuration) the launcher can choose on a GPU, for the
    ahead-of-time compile (scripts/aot_triton_fwht.py). Each entry: ``kernel`` ("rows" / "cols"),
    ``single`` (the row kernel of a one-pass plan: launched with segs == 1, which Triton's JIT
    specializes to a constant, as every int argument equal to 1), ``last`` (the last pass: a
    column pass then has a_blocks == 1), ``src`` / ``dst`` (element dtypes of the two pointers),
    ``constexprs`` and ``num_warps``. Covers every n = 2^0 .. 2^MAX_LOG_N, every dtype and both
    workspace choices (x's dtype; fp32 for half inputs)."""
    seen, out = set(), []
    for dtype in DTYPES:
        f64 = dtype == torch.float64
        for ws in dict.fromkeys((_workspace_dtype(dtype, None), _workspace_dtype(dtype, torch.float32))):
            for L in range(MAX_LOG_N + 1):
                passes = pass_configs(1 << L, dtype)
                for i, (kind, meta) in enumerate(passes):
                    src = dtype if i == 0 else ws
                    dst = dtype if i == len(passes) - 1 else ws
                    single = len(passes) == 1
                    last = i == len(passes) - 1
                    consts = {k: v for k, v in meta.items() if k != "num_warps"}
                    consts["F64"] = f64
                    key = (kind, single, last, src, dst, tuple(sorted(consts.items())), meta["num_warps"])
                    if key in seen:
                        continue
                    seen.add(key)
                    out.append({"kernel": kind, "single": single, "last": last, "src": src, "dst": dst,
                                "constexprs": consts, "num_warps": meta["num_warps"]})
    return out


# ----------------------------------------------------------------------------------------------
# Layer 1: kernels
# ----------------------------------------------------------------------------------------------
if IMPORT_ERROR is None:

    @triton.jit
    def _fwht_rows_kernel(
        x_ptr, y_ptr,              # source (masked to d_in) and destination (masked to d_out)
        n_vrows,                   # virtual rows: rows * segs (segments of N of each row)
        segs,                      # segments per row (1: single pass)
        d_in, d_out,               # valid source / stored destination columns of a whole row
        sx, sy,                    # row strides (elements) of source and destination
        scale_hi, scale_lo,        # scale = hi + lo (two fp32, for fp64 accuracy)
        N: tl.constexpr, LOG_N: tl.constexpr, R: tl.constexpr, F64: tl.constexpr,
    ):
        pid = tl.program_id(0)
        vr = pid * R + tl.arange(0, R)
        row = vr // segs
        seg = vr % segs
        col = seg[:, None] * N + tl.arange(0, N)[None, :]       # column inside the whole row
        live = (vr < n_vrows)[:, None]
        row64 = row.to(tl.int64)[:, None]
        v = tl.load(x_ptr + (row64 * sx + col), mask=live & (col < d_in), other=0.0)
        acc = v.to(tl.float64) if F64 else v.to(tl.float32)
        # register butterfly over the LOG_N bits of the column (lowest bit first, then rotate)
        for _ in tl.static_range(LOG_N):
            acc = tl.reshape(acc, (R, N // 2, 2))
            lo, hi = tl.split(acc)
            acc = tl.permute(tl.join(lo + hi, lo - hi), (0, 2, 1))
            acc = tl.reshape(acc, (R, N))
        if F64:
            acc = acc * scale_hi + acc * scale_lo     # fp64 products: the scale to ~48 bits
        else:
            acc = acc * scale_hi
        tl.store(y_ptr + (row64 * sy + col), acc.to(y_ptr.dtype.element_ty), mask=live & (col < d_out))

    @triton.jit
    def _fwht_cols_kernel(
        src_ptr, dst_ptr,
        a_blocks, c_blocks,        # the row is (a_blocks, M, C); C is split in c_blocks of BC
        stride_m,                  # stride of m (elements): C, the size of the bits already done
        valid_in,                  # source elements at flat index >= valid_in read as 0
        d_out,                     # destination elements at flat index >= d_out are not stored
        s_src, s_dst,              # row strides (elements)
        scale_hi, scale_lo,
        M: tl.constexpr, LOG_M: tl.constexpr, BC: tl.constexpr, F64: tl.constexpr,
    ):
        pid = tl.program_id(0)
        per_row = a_blocks * c_blocks
        row = pid // per_row
        rem = pid % per_row
        a = rem // c_blocks
        cb = rem % c_blocks
        c = cb * BC + tl.arange(0, BC)
        m = tl.arange(0, M)
        flat = a * (M * stride_m) + m[None, :] * stride_m + c[:, None]          # [BC, M], int32 (< N <= 2^30)
        row64 = row.to(tl.int64)
        v = tl.load(src_ptr + (row64 * s_src + flat), mask=flat < valid_in, other=0.0)
        acc = v.to(tl.float64) if F64 else v.to(tl.float32)
        for _ in tl.static_range(LOG_M):
            acc = tl.reshape(acc, (BC, M // 2, 2))
            lo, hi = tl.split(acc)
            acc = tl.permute(tl.join(lo + hi, lo - hi), (0, 2, 1))
            acc = tl.reshape(acc, (BC, M))
        if F64:
            acc = acc * scale_hi + acc * scale_lo     # fp64 products: the scale to ~48 bits
        else:
            acc = acc * scale_hi
        tl.store(dst_ptr + (row64 * s_dst + flat), acc.to(dst_ptr.dtype.element_ty), mask=flat < d_out)

    KERNELS = {"rows": _fwht_rows_kernel, "cols": _fwht_cols_kernel}
else:  # pragma: no cover - exercised only without triton
    KERNELS = {}

_INTERPRETED: dict = {}


def _kernel(name: str):
    """The jit kernel, or its interpreted twin when TRITON_INTERPRET=1 at launch time (the kernels
    call no other jit function, so the twin needs nothing else)."""
    k = KERNELS[name]
    if not triton_interpreting():
        return k
    from triton.runtime.interpreter import InterpretedFunction
    if isinstance(k, InterpretedFunction):  # the variable was already set at import
        return k
    if name not in _INTERPRETED:
        _INTERPRETED[name] = InterpretedFunction(k.fn)
    return _INTERPRETED[name]


