"""Triton backend of the transform (issue 5), in two layers (DESIGN.md section 5).

Contract (DESIGN.md section 2), over the LAST dimension of ``x`` with shape ``(..., d_in)``::

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

Layer 2, the launchers:

* ``fwht_triton_launch(x, n, out_features, scale, out=None)``: plain Python; picks the plan
  (``plan``) and the configuration of each pass from ``N`` and the dtype, launches through
  ``wrap_triton``; ``out`` may be ``x`` itself (in place, ``d_in == n == out_features``).
* ``torch.library.triton_op`` ops: ``zerofwht::fwht_triton(Tensor x, int n, int out_features,
  float scale) -> Tensor`` (fake kernel and autograd registered: backward is the same op with
  ``d_in`` and ``out_features`` swapped, so double backward works), and the two mutating forms
  ``zerofwht::fwht_triton_out(x, n, out_features, scale, Tensor(a!) out) -> ()`` and
  ``zerofwht::fwht_triton_inplace(Tensor(a!) x, float scale) -> ()``.

Rows: ``x`` is viewed as ``(rows, d_in)`` with one row stride (``x.reshape(-1, d_in)``: a view
whenever the batch dims merge and the last dim is contiguous, else one copy). Without a GPU the
kernels run in Triton's CPU interpreter on CPU tensors when ``TRITON_INTERPRET=1`` is set at launch
time (triton 3.9 reads the variable when a kernel is decorated; ``_kernel`` builds the
interpreted twin when the variable is set later). The module imports without triton
(``refuse`` then says why the backend is unavailable).
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Optional

import torch

try:
    import triton
    import triton.language as tl
    from torch.library import triton_op, wrap_triton
except Exception as exc:  # ImportError, or a triton / torch too old for triton_op
    triton = None
    tl = None
    IMPORT_ERROR: Optional[str] = f"{type(exc).__name__}: {exc}"
else:
    IMPORT_ERROR = None

__all__ = ["fwht_triton_launch", "refuse", "plan", "pass_configs", "kernel_configs", "Limits",
           "default_limits", "limits_for_shared_memory", "device_limits", "DTYPES", "MAX_LOG_N",
           "IMPORT_ERROR"]

DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
MAX_LOG_N = 30  # largest transform: 2^30 (flat indices inside a row are int32)
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
# Why the backend cannot run an input
# ----------------------------------------------------------------------------------------------
def _interpreting() -> bool:
    from ._backends import triton_interpreting
    return triton_interpreting()


def refuse(x: torch.Tensor, n: int) -> Optional[str]:
    """Why the Triton backend cannot transform ``x`` (last dim) with length ``n``; None if it can."""
    if IMPORT_ERROR is not None:
        return f"triton is not importable ({IMPORT_ERROR})"
    if x.device.type != "cuda":
        if x.device.type == "cpu" and _interpreting():
            pass  # Triton's CPU interpreter (tests)
        else:
            return (f"it runs on CUDA tensors (CPU tensors only under TRITON_INTERPRET=1), got a "
                    f"tensor on {x.device}")
    elif torch.version.hip is not None:
        return "it is checked on NVIDIA GPUs only (this is a ROCm build of torch)"
    else:
        cap = torch.cuda.get_device_capability(x.device)
        if cap < (7, 5):
            return f"Triton needs compute capability >= 7.5, got {cap[0]}.{cap[1]}"
        if x.dtype == torch.bfloat16 and cap < (8, 0):
            return f"bfloat16 needs compute capability >= 8.0, got {cap[0]}.{cap[1]}"
    if x.dtype not in DTYPES:
        return f"it supports dtypes float16, bfloat16, float32, float64, got {x.dtype}"
    if n > (1 << MAX_LOG_N):
        return f"it supports n <= 2^{MAX_LOG_N}, got n={n}"
    return None


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
    if not _interpreting():
        return k
    from triton.runtime.interpreter import InterpretedFunction
    if isinstance(k, InterpretedFunction):  # the variable was already set at import
        return k
    if name not in _INTERPRETED:
        _INTERPRETED[name] = InterpretedFunction(k.fn)
    return _INTERPRETED[name]


# ----------------------------------------------------------------------------------------------
# Layer 2: launcher
# ----------------------------------------------------------------------------------------------
def _fp32(v: float) -> float:
    """v rounded to fp32 (pure Python: no tensor, so torch.compile traces the launcher)."""
    try:
        return struct.unpack("f", struct.pack("f", v))[0]
    except OverflowError:
        return math.copysign(math.inf, v)


def _split_scale(scale: float):
    """scale as hi + lo, two fp32 values (hi + lo carries ~48 bits, enough for fp64 results)."""
    hi = _fp32(scale)
    lo = _fp32(scale - hi) if math.isfinite(hi) else 0.0
    return hi, lo


def _check_args(where: str, x: torch.Tensor, n: int, out_features: int) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{where}: x must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in DTYPES:
        raise TypeError(f"{where}: x must be a floating tensor (float16/bfloat16/float32/float64), "
                        f"got dtype={x.dtype}")
    if x.dim() < 1:
        raise ValueError(f"{where}: x must have at least 1 dimension, got a 0-d tensor")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1 or n & (n - 1) or n < x.shape[-1]:
        raise ValueError(f"{where}: n must be a power of two >= x.shape[-1]={x.shape[-1]}, got n={n!r}")
    if n > (1 << MAX_LOG_N):
        raise ValueError(f"{where}: the Triton backend supports n <= 2^{MAX_LOG_N}, got n={n}")
    if isinstance(out_features, bool) or not isinstance(out_features, int) or not 1 <= out_features <= n:
        raise ValueError(f"{where}: out_features must be in [1, n={n}], got out_features={out_features!r}")


def _rows_view(t: torch.Tensor, width: int) -> Optional[torch.Tensor]:
    """``t`` as a (rows, width) view with unit column stride, or None if no such view exists."""
    if t.dim() == 0:
        return None
    try:
        v = t.view(-1, width)
    except RuntimeError:
        return None
    if v.shape[0] > 1 and v.stride(0) < width:
        return None  # overlapping rows (e.g. expanded): cannot be written, and odd to read
    if width > 1 and v.stride(1) != 1:
        return None
    return v


def _as_rows(x: torch.Tensor) -> torch.Tensor:
    """x as (rows, d_in) with unit column stride: a view when one exists, else a copy."""
    d_in = x.shape[-1]
    rows = math.prod(x.shape[:-1])
    if d_in == 0:
        return x.new_empty((rows, 0))
    v = _rows_view(x, d_in)
    return v if v is not None else x.reshape(rows, d_in).contiguous()


def _launch(x2: torch.Tensor, y2: torch.Tensor, n: int, scale: float,
            workspace_dtype: Optional[torch.dtype], limits: Optional[Limits]) -> None:
    """Transform the rows of x2 (rows, d_in) into y2 (rows, out_features); both have unit column
    stride. y2 may be x2 itself (in place)."""
    rows, d_in = x2.shape
    d_out = y2.shape[1]
    if rows == 0:
        return
    if d_in == 0:  # H (pad of nothing) = 0; an empty x may have no storage to hand a kernel
        y2.zero_()
        return
    dtype = x2.dtype
    f64 = dtype == torch.float64
    passes = pass_configs(n, dtype, limits or device_limits(x2))
    ws_dtype = _workspace_dtype(dtype, workspace_dtype)
    # fp64: the scale travels as two fp32 (hi + lo); if that cannot hold it, apply it afterwards
    post_scale = None
    hi, lo = _split_scale(scale)
    carried = hi + lo
    if f64 and scale != 0.0 and math.isfinite(scale) and (
            carried == 0.0 or abs(carried - scale) > 1e-15 * abs(scale)):
        post_scale, scale = scale, 1.0
    if len(passes) == 1:
        meta = passes[0][1]
        if rows + meta["R"] >= INDEX_LIMIT:
            raise ValueError(f"fwht_triton: {rows} rows is too many for one launch (int32 row counter)")
        grid = (triton.cdiv(rows, meta["R"]),)
        hi, lo = _split_scale(scale)
        wrap_triton(_kernel("rows"))[grid](
            x2, y2, rows, 1, d_in, d_out, x2.stride(0), y2.stride(0), hi, lo,
            N=meta["N"], LOG_N=meta["LOG_N"], R=meta["R"], F64=f64, num_warps=meta["num_warps"])
    else:
        _launch_multipass(x2, y2, n, scale, passes, ws_dtype, f64)
    if post_scale is not None:
        y2.mul_(post_scale)


def _launch_multipass(x2, y2, n, scale, passes, ws_dtype, f64) -> None:
    rows, d_in = x2.shape
    d_out = y2.shape[1]
    if d_out == n and y2.dtype == ws_dtype:
        ws = y2  # the output holds the intermediate (also when y2 is x2: every pass is tile-local)
    else:
        ws = torch.empty((rows, n), dtype=ws_dtype, device=x2.device)
    undo = 1.0  # product of the 2^floor(k/2) factors taken out by the non-final passes
    below = 0
    valid = n
    last = len(passes) - 1
    for i, (kind, meta) in enumerate(passes):
        k = meta["LOG_N"] if kind == "rows" else meta["LOG_M"]
        if i == last:
            s, dst, sd, dmax = scale * undo, y2, y2.stride(0), d_out
        else:
            f = 2.0 ** (k // 2)
            s, dst, sd, dmax = 1.0 / f, ws, ws.stride(0), n
            undo *= f
        hi, lo = _split_scale(s)
        if kind == "rows":
            seg_len = meta["N"]
            segs_in = -(-d_in // seg_len)  # segments holding input; the others transform to 0
            valid = segs_in * seg_len     # the next pass reads what lies beyond as zeros
            n_vrows = rows * segs_in
            if n_vrows + meta["R"] >= INDEX_LIMIT:
                raise ValueError(f"fwht_triton: rows x segments = {n_vrows} is too many for one launch")
            if n_vrows:
                grid = (triton.cdiv(n_vrows, meta["R"]),)
                wrap_triton(_kernel("rows"))[grid](
                    x2, dst, n_vrows, segs_in, d_in, dmax, x2.stride(0), sd, hi, lo,
                    N=seg_len, LOG_N=meta["LOG_N"], R=meta["R"], F64=f64, num_warps=meta["num_warps"])
        else:
            m, bc = meta["M"], meta["BC"]
            c = 1 << below
            a_blocks = n // (m * c)
            c_blocks = c // bc
            total = rows * a_blocks * c_blocks
            if total >= INDEX_LIMIT:
                raise ValueError(f"fwht_triton: {total} programs is too many for one launch")
            wrap_triton(_kernel("cols"))[(total,)](
                ws, dst, a_blocks, c_blocks, c, valid, dmax, ws.stride(0), sd, hi, lo,
                M=m, LOG_M=meta["LOG_M"], BC=bc, F64=f64, num_warps=meta["num_warps"])
            valid = n
        below += k


def fwht_triton_launch(x: torch.Tensor, n: int, out_features: int, scale: float = 1.0,
                       out: Optional[torch.Tensor] = None, *,
                       workspace_dtype: Optional[torch.dtype] = None,
                       limits: Optional[Limits] = None) -> torch.Tensor:
    """``scale * (H_n @ pad_n(x))[..., :out_features]`` over the last dim, with the Triton kernels.

    Args:
        x: (..., d_in) fp16 / bf16 / fp32 / fp64, CUDA (or CPU under TRITON_INTERPRET=1).
        n: power of two >= d_in, <= 2^30. out_features: 1..n. scale: any float.
        out: optional (..., out_features) tensor of x's dtype and device; may be x itself when
            d_in == n == out_features (in place). Written through a (rows, out_features) view
            when one exists, else via a temporary and ``copy_``.
        workspace_dtype: intermediate dtype of multi-pass plans (n > 2^15; 2^14 for fp64):
            None (x's dtype) or torch.float32.
        limits: force the plan's on-chip limits (tests); default ``default_limits(x.dtype)``.

    Returns ``out`` (or a new contiguous tensor). No autograd: use the ops for that.
    """
    _check_args("fwht_triton", x, n, out_features)
    if IMPORT_ERROR is not None:
        raise RuntimeError(f"fwht_triton: triton is not importable ({IMPORT_ERROR})")
    shape = (*x.shape[:-1], out_features)
    if out is None:
        out = torch.empty(shape, dtype=x.dtype, device=x.device)
        in_place = False
    else:
        _check_out(x, out, shape)
        in_place = out.data_ptr() == x.data_ptr() and out.stride() == x.stride()
    _launch_into(x, out, n, scale, in_place, workspace_dtype, limits)
    return out


def _check_out(x: torch.Tensor, out: torch.Tensor, shape: tuple) -> None:
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"fwht_triton: out must be a torch.Tensor, got {type(out).__name__}")
    if tuple(out.shape) != tuple(shape) or out.dtype != x.dtype or out.device != x.device:
        raise ValueError(f"fwht_triton: out must have shape {tuple(shape)}, dtype {x.dtype} and device "
                         f"{x.device}; got {tuple(out.shape)}, {out.dtype}, {out.device}")


def _launch_into(x: torch.Tensor, out: torch.Tensor, n: int, scale: float, in_place: bool,
                 workspace_dtype: Optional[torch.dtype] = None, limits: Optional[Limits] = None) -> None:
    """Writes the transform of x into out (shapes checked). in_place: out is x (same strides)."""
    if out.numel() == 0:
        return
    out_features = out.shape[-1]
    y2 = _rows_view(out, out_features)
    x2 = y2 if (in_place and y2 is not None) else _as_rows(x)
    if y2 is None:
        tmp = torch.empty((x2.shape[0], out_features), dtype=x.dtype, device=x.device)
        _launch(x2, tmp, n, scale, workspace_dtype, limits)
        out.copy_(tmp.view(out.shape))
    else:
        _launch(x2, y2, n, scale, workspace_dtype, limits)


# ----------------------------------------------------------------------------------------------
# Layer 2: registered ops (torch.library.triton_op), fake kernels, autograd
# ----------------------------------------------------------------------------------------------
if IMPORT_ERROR is None:

    @triton_op("zerofwht::fwht_triton", mutates_args=())
    def fwht_triton(x: torch.Tensor, n: int, out_features: int, scale: float) -> torch.Tensor:
        """Functional form: a new tensor (..., out_features)."""
        _check_args("zerofwht::fwht_triton", x, n, out_features)
        y = x.new_empty((*x.shape[:-1], out_features))
        if y.numel():
            _launch(_as_rows(x), y.view(-1, out_features), n, scale, None, None)
        return y

    @triton_op("zerofwht::fwht_triton_out", mutates_args={"out"})
    def fwht_triton_out(x: torch.Tensor, n: int, out_features: int, scale: float,
                        out: torch.Tensor) -> None:
        """``out=`` form: writes the result into ``out`` (shape (..., out_features))."""
        _check_args("zerofwht::fwht_triton_out", x, n, out_features)
        _check_out(x, out, (*x.shape[:-1], out_features))
        _launch_into(x, out, n, scale, False)  # the schema says out does not alias x

    @triton_op("zerofwht::fwht_triton_inplace", mutates_args={"x"})
    def fwht_triton_inplace(x: torch.Tensor, scale: float) -> None:
        """In-place form: ``x <- scale * H_n x`` with n = x.shape[-1] (a power of two)."""
        n = x.shape[-1]
        _check_args("zerofwht::fwht_triton_inplace", x, n, n)
        _launch_into(x, x, n, scale, True)

    def _fake(x, n, out_features, scale):
        _check_args("zerofwht::fwht_triton", x, n, out_features)
        return x.new_empty((*x.shape[:-1], out_features))

    def _fake_out(x, n, out_features, scale, out):
        _check_args("zerofwht::fwht_triton_out", x, n, out_features)
        _check_out(x, out, (*x.shape[:-1], out_features))

    def _fake_inplace(x, scale):
        _check_args("zerofwht::fwht_triton_inplace", x, x.shape[-1], x.shape[-1])

    def _register() -> None:
        # Explicit fake kernels: triton_op derives one by running the launcher on fake tensors,
        # which works with compiled kernels but not with the CPU interpreter's twins.
        for name, fn in (("fwht_triton", _fake), ("fwht_triton_out", _fake_out),
                         ("fwht_triton_inplace", _fake_inplace)):
            torch.library.register_fake(f"zerofwht::{name}")(fn)
        # Same autograd as every transform op (ops.py): the backward is this op with d_in and
        # out_features swapped, so double backward works.
        from . import ops
        torch.library.register_autograd("zerofwht::fwht_triton",
                                        ops._make_backward(torch.ops.zerofwht.fwht_triton),
                                        setup_context=ops._setup_context)

    _register()
