r"""Triton backend of the K * 2^k transform: ``y = s (H_K kron H_p) pad_n(x)``, ``p = n / K``.

Same contract as ``zerofwht::fwht_kron`` (zerofwht/kron.py): the row of x, zero-padded to n, seen
as a K x p matrix X (K the slow index) gives ``H_K X H_p``; fp16 / bf16 accumulate in fp32.

Two plans (``plan``):

* ``fused`` (``KP = max(16, next_pow2(K)) <= 64`` and ``KP * p <= 2^13`` elements; ``2^12`` for
  fp64 or KP = 64): one pass. A program holds ``R`` rows as one ``[KP, R * p]`` tile (column ``r * p + j``
  is element ``j`` of block row ``i`` of row ``r``): the register butterfly of
  zerofwht/triton_fwht.py along ``j`` (the tile viewed as ``[KP * R, p]``), then ``tl.dot`` with the
  zero-padded ``[KP, KP]`` base (``input_precision="ieee"``: +-1 times fp32 is exact, so no TF32
  rounding). Covers K <= 60 (12, 20, ..., 60) up to p = 2^9 (KP = 16), 2^8 (KP = 32), 2^6 (KP = 64).
* ``two_pass``: every other case up to ``p = 2^14``: the power-of-two transform of each length-p
  segment into an fp32 (fp64) workspace with triton_fwht's row kernel, then a tiled matrix product
  ``H_K @ W`` where W is the workspace seen as a ``K x (rows * p)`` matrix (only the
  ``ceil(d_in / p)`` block columns that meet input are read, only the ``ceil(d_out / p)`` block
  rows that are kept are computed).

The kernels run under ``TRITON_INTERPRET=1`` on CPU tensors (tests) and compile ahead of time for
sm_80 / sm_90 (``kernel_configs``; scripts/aot_triton_fwht.py compiles the transform's kernels).
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from . import triton_fwht as tf
from ._checks import triton_interpreting
from ._kron_common import check_op_args, register

try:
    import triton
    import triton.language as tl
    from torch.library import triton_op, wrap_triton
except Exception as exc:  # ImportError, or a triton / torch too old for triton_op
    triton = None
    IMPORT_ERROR: Optional[str] = f"{type(exc).__name__}: {exc}"
else:
    IMPORT_ERROR = None

__all__ = ["plan", "refuse", "fwht_kron_triton_launch", "kernel_configs", "MAX_LOG_P"]

MAX_LOG_P = 14
FUSED_MAX_KP = 64
TWO_PASS_TILE = {"BM": 32, "BN": 64, "BK": 32}


def _kp(k: int) -> int:
    return max(16, 1 << (k - 1).bit_length())


def plan(k: int, p: int, dtype: torch.dtype) -> dict:
    """Kernel choice and constexprs for base order ``k`` and power-of-two factor ``p``."""
    kp = _kp(k)
    f64 = dtype == torch.float64
    log_p = p.bit_length() - 1
    # tiles of up to 2^13 fp32 / 2^12 fp64 elements (2^12 with a 64 x 64 base) compile without
    # spills for sm_80 / sm_90 (scripts/aot_triton_kron.py)
    limit = 1 << (12 if f64 or kp == 64 else 13)
    if kp <= FUSED_MAX_KP and kp * p <= limit:
        r = max(1, -(-16 // p))  # tl.dot needs >= 16 columns
        while kp * r * p * 2 <= 4096:  # several rows per program for small rows: ~4096-elt tiles
            r *= 2
        elems = kp * r * p
        return {"kind": "fused", "P": p, "LOG_P": log_p, "KP": kp, "R": r, "F64": f64,
                "num_warps": max(4, min(16, elems // 512))}
    return {"kind": "two_pass", "P": p, "LOG_P": log_p, "F64": f64, "num_warps": 4,
            "row": tf.row_meta(log_p, f64), **TWO_PASS_TILE}


def refuse(x: torch.Tensor, k: int, p: Optional[int] = None) -> Optional[str]:
    """Why this backend cannot run ``x`` with a base of order ``k`` (None if it can)."""
    if IMPORT_ERROR is not None:
        return f"triton is not importable ({IMPORT_ERROR})"
    reason = tf.refuse(x, 1)
    if reason:
        return reason
    if p is not None and p > (1 << MAX_LOG_P):
        return f"it supports n / K <= 2^{MAX_LOG_P}, got n / K = {p}"
    return None


# ----------------------------------------------------------------------------------------------
# Kernels
# ----------------------------------------------------------------------------------------------
if IMPORT_ERROR is None:

    @triton.jit
    def _kron_fused_kernel(
        x_ptr, h_ptr, y_ptr,
        rows, k_order,             # rows of x; order K of the base (<= KP)
        d_in, d_out,               # valid input / stored output columns of a row
        sx, sy,                    # row strides (elements)
        scale_hi, scale_lo,        # scale = hi + lo (two fp32, for fp64 accuracy)
        P: tl.constexpr, LOG_P: tl.constexpr, KP: tl.constexpr, R: tl.constexpr,
        F64: tl.constexpr,
    ):
        pid = tl.program_id(0)
        c = tl.arange(0, R * P)[None, :]
        row = pid * R + c // P
        j = c % P
        i = tl.arange(0, KP)[:, None]
        col = i * P + j                                   # [KP, R * P] column inside the row
        live = (row < rows) & (i < k_order)
        row64 = row.to(tl.int64)
        v = tl.load(x_ptr + (row64 * sx + col), mask=live & (col < d_in), other=0.0)
        acc = v.to(tl.float64) if F64 else v.to(tl.float32)
        # H_p along j: the register butterfly over the tile seen as [KP * R, P]
        acc = tl.reshape(acc, (KP * R, P))
        for _ in tl.static_range(LOG_P):
            acc = tl.reshape(acc, (KP * R, P // 2, 2))
            lo, hi = tl.split(acc)
            acc = tl.permute(tl.join(lo + hi, lo - hi), (0, 2, 1))
            acc = tl.reshape(acc, (KP * R, P))
        acc = tl.reshape(acc, (KP, R * P))
        # H_K along i: one product with the zero-padded base (+-1 entries: exact in "ieee")
        hi_ = tl.arange(0, KP)[:, None]
        hj_ = tl.arange(0, KP)[None, :]
        h = tl.load(h_ptr + hi_ * k_order + hj_, mask=(hi_ < k_order) & (hj_ < k_order), other=0.0)
        h = h.to(tl.float64) if F64 else h.to(tl.float32)
        if F64:
            acc = tl.dot(h, acc, input_precision="ieee", out_dtype=tl.float64)
            acc = acc * scale_hi + acc * scale_lo
        else:
            acc = tl.dot(h, acc, input_precision="ieee") * scale_hi
        tl.store(y_ptr + (row64 * sy + col), acc.to(y_ptr.dtype.element_ty),
                 mask=live & (col < d_out))

    @triton.jit
    def _kron_kstage_kernel(
        w_ptr, h_ptr, y_ptr,
        ncols,                     # rows * P: columns of the workspace seen as a K x (rows*P) matrix
        k_order, ki,               # base order K; block columns holding input (<= K)
        d_out,                     # stored output columns of a row
        sw, sy,                    # row strides (elements) of workspace and output
        scale_hi, scale_lo,
        P: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
        F64: tl.constexpr,
    ):
        pid_n = tl.program_id(0)
        pid_m = tl.program_id(1)
        c = pid_n * BN + tl.arange(0, BN)
        row64 = (c // P).to(tl.int64)
        j = c % P
        i = pid_m * BM + tl.arange(0, BM)
        if F64:
            acc = tl.full((BM, BN), 0.0, tl.float64)  # tl.full: a builtin (tl.zeros is a jit helper the late interpreter twin cannot call)
        else:
            acc = tl.full((BM, BN), 0.0, tl.float32)
        for k0 in range(0, ki, BK):
            kk = k0 + tl.arange(0, BK)
            h = tl.load(h_ptr + i[:, None] * k_order + kk[None, :], mask=(i[:, None] < k_order) & (kk[None, :] < ki),
                        other=0.0)
            w = tl.load(w_ptr + (row64[None, :] * sw + kk[:, None] * P + j[None, :]),
                        mask=(kk[:, None] < ki) & (c[None, :] < ncols), other=0.0)
            if F64:
                acc += tl.dot(h.to(tl.float64), w, input_precision="ieee", out_dtype=tl.float64)
            else:
                acc += tl.dot(h.to(tl.float32), w, input_precision="ieee")
        if F64:
            acc = acc * scale_hi + acc * scale_lo
        else:
            acc = acc * scale_hi
        col = i[:, None] * P + j[None, :]
        tl.store(y_ptr + (row64[None, :] * sy + col), acc.to(y_ptr.dtype.element_ty),
                 mask=(i[:, None] < k_order) & (col < d_out) & (c[None, :] < ncols))

    KERNELS = {"fused": _kron_fused_kernel, "kstage": _kron_kstage_kernel}
else:  # pragma: no cover
    KERNELS = {}

_INTERPRETED: dict = {}


def _kernel(name: str):
    """The jit kernel, or its interpreted twin when TRITON_INTERPRET=1 at launch time."""
    k = KERNELS[name]
    if not triton_interpreting():
        return k
    from triton.runtime.interpreter import InterpretedFunction
    if isinstance(k, InterpretedFunction):
        return k
    if name not in _INTERPRETED:
        _INTERPRETED[name] = InterpretedFunction(k.fn)
    return _INTERPRETED[name]


def kernel_configs() -> list:
    """Every (kernel, constexprs, num_warps, dtypes) the launcher can pick for the built-in K and
    p = 2^0 .. 2^MAX_LOG_P (for the ahead-of-time compile)."""
    from . import bases
    seen, out = set(), []
    for dtype in tf.DTYPES:
        f64 = dtype == torch.float64
        ws = torch.float64 if f64 else torch.float32
        for k in bases.BUILTIN_K:
            for log_p in range(MAX_LOG_P + 1):
                m = plan(k, 1 << log_p, dtype)
                if m["kind"] == "fused":
                    cfg = {"kernel": "fused", "src": dtype, "dst": dtype,
                           "constexprs": {"P": m["P"], "LOG_P": m["LOG_P"], "KP": m["KP"], "R": m["R"],
                                          "F64": f64}, "num_warps": m["num_warps"]}
                else:
                    cfg = {"kernel": "kstage", "src": ws, "dst": dtype,
                           "constexprs": {"P": m["P"], "BM": m["BM"], "BN": m["BN"], "BK": m["BK"],
                                          "F64": f64}, "num_warps": m["num_warps"]}
                key = (cfg["kernel"], cfg["src"], cfg["dst"], tuple(sorted(cfg["constexprs"].items())),
                       cfg["num_warps"])
                if key not in seen:
                    seen.add(key)
                    out.append(cfg)
    return out


# ----------------------------------------------------------------------------------------------
# Launcher
# ----------------------------------------------------------------------------------------------
def _check(where: str, x, base, n, out_features) -> None:
    check_op_args(where, x, base, n, out_features)
    if n // base.shape[0] > (1 << MAX_LOG_P):
        raise ValueError(f"{where}: the Triton kron backend supports n / K <= 2^{MAX_LOG_P}, got "
                         f"n={n}, K={base.shape[0]}")


def _launch(x2: torch.Tensor, hk: torch.Tensor, y2: torch.Tensor, n: int, scale: float) -> None:
    """x2 (rows, d_in), y2 (rows, d_out), both unit column stride; hk (K, K) contiguous."""
    rows, d_in = x2.shape
    d_out = y2.shape[1]
    if rows == 0 or d_out == 0:
        return
    if d_in == 0:
        y2.zero_()
        return
    k = hk.shape[0]
    p = n // k
    m = plan(k, p, x2.dtype)
    f64 = m["F64"]
    hi, lo = tf._split_scale(scale)
    post = None
    if f64 and scale != 0.0 and math.isfinite(scale) and abs(hi + lo - scale) > 1e-15 * abs(scale):
        post, (hi, lo) = scale, (1.0, 0.0)
    hk = hk.to(torch.float64 if f64 else torch.float32).contiguous()
    if m["kind"] == "fused":
        grid = (triton.cdiv(rows, m["R"]),)
        wrap_triton(_kernel("fused"))[grid](
            x2, hk, y2, rows, k, d_in, d_out, x2.stride(0), y2.stride(0), hi, lo,
            P=p, LOG_P=m["LOG_P"], KP=m["KP"], R=m["R"], F64=f64, num_warps=m["num_warps"])
    else:
        ki = -(-d_in // p)
        ko = -(-d_out // p)
        ws = torch.empty((rows, ki * p), dtype=torch.float64 if f64 else torch.float32,
                         device=x2.device)
        rm = m["row"]
        n_vrows = rows * ki
        wrap_triton(tf._kernel("rows"))[(triton.cdiv(n_vrows, rm["R"]),)](
            x2, ws, n_vrows, ki, d_in, ki * p, x2.stride(0), ws.stride(0), 1.0, 0.0,
            N=p, LOG_N=rm["LOG_N"], R=rm["R"], F64=f64, num_warps=rm["num_warps"])
        grid = (triton.cdiv(rows * p, m["BN"]), triton.cdiv(ko, m["BM"]))
        wrap_triton(_kernel("kstage"))[grid](
            ws, hk, y2, rows * p, k, ki, d_out, ws.stride(0), y2.stride(0), hi, lo,
            P=p, BM=m["BM"], BN=m["BN"], BK=m["BK"], F64=f64, num_warps=m["num_warps"])
    if post is not None:
        y2.mul_(post)


def fwht_kron_triton_launch(x: torch.Tensor, base: torch.Tensor, n: int, out_features: int,
                            scale: float = 1.0) -> torch.Tensor:
    """The transform over the last dim with the Triton kernels (no autograd: use the op)."""
    _check("fwht_kron_triton", x, base, n, out_features)
    if IMPORT_ERROR is not None:
        raise RuntimeError(f"fwht_kron_triton: triton is not importable ({IMPORT_ERROR})")
    y = x.new_empty((*x.shape[:-1], out_features))
    if y.numel():
        _launch(tf._as_rows(x), base, y.view(-1, out_features), n, scale)
    return y


if IMPORT_ERROR is None:

    @triton_op("zerofwht::fwht_kron_triton", mutates_args=())
    def fwht_kron_triton(x: torch.Tensor, base: torch.Tensor, n: int, out_features: int,
                         scale: float) -> torch.Tensor:
        _check("zerofwht::fwht_kron_triton", x, base, n, out_features)
        y = x.new_empty((*x.shape[:-1], out_features))
        if y.numel():
            _launch(tf._as_rows(x), base, y.view(-1, out_features), n, scale)
        return y

    register("fwht_kron_triton")  # explicit fake (the interpreter cannot trace), autograd, vmap
