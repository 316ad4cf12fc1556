"""Triton FWHT, layer 2: the launcher and the ``torch.library.triton_op`` ops.

The kernels, the plans and the configurations are in ``zerofwht.triton_fwht_kernels`` (layer 1).
Contract (docs/design.md), over the LAST dimension of ``x`` with shape ``(..., d_in)``::

    y = scale * (H_N @ pad_N(x))[..., :out_features]      H_N = scipy.linalg.hadamard(N)

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
from typing import Optional

import torch

from . import _autograd, _backends, _checks
from .triton_fwht_kernels import (DTYPES, IMPORT_ERROR, INDEX_LIMIT, MAX_LOG_N, KERNELS,  # noqa: F401
                                  Limits, _kernel, _workspace_dtype, col_meta, default_limits,
                                  device_limits, kernel_configs, limits_for_shared_memory,
                                  pass_configs, plan, row_meta)

if IMPORT_ERROR is None:
    import triton
    from torch.library import triton_op, wrap_triton

def refuse(x: torch.Tensor, n: int) -> Optional[str]:
    """Why the Triton backend cannot transform ``x`` (last dim) with length ``n``; None if it can
    (the backend table's entry, ``zerofwht._backends.BACKENDS["triton"]``)."""
    return _backends.BACKENDS["triton"].refuse(x, n)


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
    _checks.check_op_args(where, x, n, out_features, max_n=1 << MAX_LOG_N, backend="Triton")


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
    _checks.check_out_tensor("fwht_triton", out, x, shape)


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
        # Same autograd and vmap rules as every transform op (_autograd.py): the backward is this op
        # with d_in and out_features swapped, so double backward works.
        _autograd.register("fwht_triton")

    _register()
