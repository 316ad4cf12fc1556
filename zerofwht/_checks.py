"""Argument checking for every backend: the one place that says what a valid call is.

Used by the public functions (``ops.py``), the registered ops and their fake kernels (the C++
op's fake, the pure-PyTorch op, the Triton ops), the Triton launchers and the backend table
(``_backends.py``). The C++ glue keeps only the checks that guard memory safety.

Three groups:

* the public front end (``fwht``, ``fwht_``, ``hadamard_transform``): ``check_tensor``,
  ``check_int``, ``canonical_dim``, ``resolve_sizes``, ``resolve_scale``, ``check_out``;
* the op level (``zerofwht::fwht*`` called through ``torch.ops`` directly): ``check_op_args``,
  ``check_out_tensor``;
* the fused weight fill (``zerofwht::init_fill*``): ``check_fill_args`` and the geometry of the
  logical matrix, ``logical_matrix``, shared by the torch, C++-fake and Triton paths.

Errors name the argument and the value. This module imports only ``reference`` from the package, so
any module may import it (no import circle).
"""
from __future__ import annotations

import math
import numbers
import os
from typing import Optional, Sequence

import torch

from .reference import is_power_of_two, next_power_of_two

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
TRITON_MAX_LOG_N = 30  # the Triton transform's longest length: flat indices in a row are int32


class DimensionError(IndexError, ValueError):
    """``dim`` out of range (an IndexError like torch's, and a ValueError like our other checks)."""


def triton_interpreting() -> bool:
    """Whether Triton kernels would run under the CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


# ----------------------------------------------------------------------------------------------
# Public front end
# ----------------------------------------------------------------------------------------------
def check_tensor(x, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        kind = "complex" if x.is_complex() else ("bool" if x.dtype == torch.bool else "integer")
        raise TypeError(f"{name} must be a real floating tensor (float16, bfloat16, float32 or "
                        f"float64); got {kind} dtype {x.dtype}")
    if x.dim() == 0:
        raise ValueError(f"{name} must have at least 1 dimension, got a 0-d tensor")


def check_int(value, name: str) -> int:
    if type(value) is int:  # the common case, without the slower check against numbers.Integral
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    return int(value)


def canonical_dim(dim, ndim: int) -> int:
    dim = check_int(dim, "dim")
    if not -ndim <= dim < ndim:
        raise DimensionError(f"dim={dim} is out of range for a tensor with {ndim} dimension(s) "
                             f"(expected a value in [{-ndim}, {ndim - 1}])")
    return dim % ndim


def resolve_scale(norm, scale, n: int) -> float:
    if scale is not None:
        if norm is not None:
            raise ValueError(f"give either norm or scale, not both (got norm={norm!r}, scale={scale!r})")
        if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
            raise TypeError(f"scale must be a real number, got {type(scale).__name__} {scale!r}")
        return float(scale)
    if norm is None or norm == "backward":
        return 1.0
    if norm == "ortho":
        return 1.0 / math.sqrt(n)
    if norm == "forward":
        return 1.0 / n
    raise ValueError(f'norm must be None, "backward", "ortho" or "forward", got norm={norm!r}')


def resolve_sizes(d_in: int, n, out_features):
    """``(n, out_features)`` with their defaults (the next power of two >= d_in; n), checked."""
    if n is None:
        n = next_power_of_two(d_in)
    else:
        n = check_int(n, "n")
        if not is_power_of_two(n):
            from .bases import unsupported_message
            raise ValueError(f"n must be a power of two, got n={n} (or K * 2^k: "
                             f"{unsupported_message(n)})")
        if n < d_in:
            raise ValueError(f"n={n} is smaller than the input size {d_in} along dim; the transform "
                             f"pads but never crops its input (use n >= {d_in})")
    return n, check_out_features(out_features, n)


def check_out_features(out_features, n: int) -> int:
    """``out_features`` (None: ``n``) as an int in ``[1, n]``."""
    if out_features is None:
        return n
    out_features = check_int(out_features, "out_features")
    if not 1 <= out_features <= n:
        raise ValueError(f"out_features must be in [1, n={n}], got out_features={out_features}")
    return out_features


def check_out(out, x: torch.Tensor, shape: tuple) -> None:
    """``out=`` of the public functions: the right tensor, and no autograd through it."""
    check_out_tensor("fwht", out, x, shape)
    if torch.is_grad_enabled() and (x.requires_grad or out.requires_grad):
        raise RuntimeError("fwht(..., out=...) does not support automatic differentiation: x or out "
                           "requires grad; call fwht(x) without out= instead")


# ----------------------------------------------------------------------------------------------
# Op level: every registered transform op (and its fake kernel) checks its own arguments, since
# users may call torch.ops.zerofwht.* directly.
# ----------------------------------------------------------------------------------------------
def check_op_args(op: str, x: torch.Tensor, n: int, out_features: int,
                  max_n: Optional[int] = None, backend: str = "") -> None:
    """``x`` floating with >= 1 dims, ``n`` a power of two >= x.shape[-1] (and <= ``max_n`` when
    the backend has a limit), ``1 <= out_features <= n``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{op}: x must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: x must be a floating tensor (float16/bfloat16/float32/float64), "
                        f"got dtype={x.dtype}")
    if x.dim() < 1:
        raise ValueError(f"{op}: x must have at least 1 dimension, got a 0-d tensor")
    if isinstance(n, bool) or not is_power_of_two(n) or n < x.shape[-1]:
        raise ValueError(f"{op}: n must be a power of two >= x.shape[-1]={x.shape[-1]}, got n={n!r}")
    if max_n is not None and n > max_n:
        raise ValueError(f"{op}: the {backend} backend supports n <= 2^{max_n.bit_length() - 1}, "
                         f"got n={n}")
    # out_features may be a SymInt (fake kernels under dynamic shapes: the gradient's width).
    if isinstance(out_features, bool) or not isinstance(out_features, (int, torch.SymInt)) \
            or not 1 <= out_features <= n:
        raise ValueError(f"{op}: out_features must be in [1, n={n}], got out_features={out_features!r}")


def check_out_tensor(where: str, out, x: torch.Tensor, shape: tuple) -> None:
    """``out`` has the result's shape, x's dtype and x's device."""
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{where}: out must be a torch.Tensor, got {type(out).__name__}")
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"{where}: out has shape {tuple(out.shape)}, expected {tuple(shape)}")
    if out.dtype != x.dtype:
        raise TypeError(f"{where}: out has dtype {out.dtype}, expected x's dtype {x.dtype}")
    if out.device != x.device:
        raise RuntimeError(f"{where}: out is on {out.device} but x is on {x.device}; they must be "
                           "on the same device")


# ----------------------------------------------------------------------------------------------
# The fused weight fill (zerofwht::init_fill_, init_fill_torch_, init_fill_triton_)
# ----------------------------------------------------------------------------------------------
# Rule codes of zerofwht::init_fill_ (csrc's init params) and its tap modes.
KIND_ZEROS, KIND_PARTIAL_IDENTITY, KIND_HADAMARD, KIND_IDI, KIND_IDIZ = 0, 1, 2, 3, 4
KIND_NAMES = {0: "zeros", 1: "partial_identity", 2: "hadamard", 3: "idi", 4: "idiz"}
TAP_FLATTEN, TAP_CENTRE = 0, 1
FILL_MAX_DIMS = 6


def fill_refusal(w: torch.Tensor) -> Optional[str]:
    """Why no fill backend can fill ``w`` (dtype, rank), or None; the init backend table's check."""
    if w.dtype not in FLOAT_DTYPES:
        return f"it fills floating tensors (float16, bfloat16, float32, float64), got {w.dtype}"
    if not 2 <= w.dim() <= FILL_MAX_DIMS:
        return f"it fills tensors of 2 to {FILL_MAX_DIMS} dimensions, got {w.dim()}"
    return None


def check_fill_args(op: str, w: torch.Tensor, kind: int, tap_mode: int, offset,
                    full_shape) -> None:
    """Arguments of the fill ops: a floating 2-6 d ``w`` that is the block at ``offset`` of a
    ``full_shape`` weight, a known rule ``kind`` and ``tap_mode``."""
    if w.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: w must be a floating tensor (float16, bfloat16, float32 or float64), "
                        f"got dtype={w.dtype}")
    if not 2 <= w.dim() <= FILL_MAX_DIMS:
        raise ValueError(f"{op}: w must have 2 to 6 dimensions ((out, in) or (out, in, *kernel)), got "
                         f"shape {tuple(w.shape)}")
    if kind not in KIND_NAMES:
        raise ValueError(f"{op}: kind must be in [0, 5), got kind={kind}")
    if tap_mode not in (TAP_FLATTEN, TAP_CENTRE):
        raise ValueError(f"{op}: tap_mode must be 0 (flatten) or 1 (centre), got tap_mode={tap_mode}")
    if len(offset) != w.dim() or len(full_shape) != w.dim():
        raise ValueError(f"{op}: offset and full_shape must have one entry per dimension of w "
                         f"({w.dim()}), got offset={list(offset)}, full_shape={list(full_shape)}")
    for d in range(w.dim()):
        if w.shape[d] < 1:
            raise ValueError(f"{op}: w has a zero-size dimension (shape {tuple(w.shape)}); there is "
                             f"nothing to initialize")
        if offset[d] < 0 or offset[d] + w.shape[d] > full_shape[d]:
            raise ValueError(f"{op}: offset[{d}]={offset[d]} with w.shape[{d}]={w.shape[d]} lies "
                             f"outside full_shape[{d}]={full_shape[d]}")


def logical_matrix(full_shape: Sequence[int], tap_mode: int):
    """``(R, C, col_steps, tap_steps, tap_centre)`` of the logical 2-D view of a full weight: the
    column (tap) of global index ``g`` is ``sum(g[d] * col_steps[d])`` (``tap_steps``)."""
    nd = len(full_shape)
    col_steps, tap_steps = [0] * nd, [0] * nd
    tap_centre = 0
    if tap_mode == TAP_FLATTEN:
        step = 1
        for d in range(nd - 1, 0, -1):
            col_steps[d] = step
            step *= full_shape[d]
        cols = step
    else:
        col_steps[1] = 1
        cols = full_shape[1]
        step = 1
        for d in range(nd - 1, 1, -1):
            tap_steps[d] = step
            tap_centre += (full_shape[d] // 2) * step
            step *= full_shape[d]
    return full_shape[0], cols, col_steps, tap_steps, tap_centre
