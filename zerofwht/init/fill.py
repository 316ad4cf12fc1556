r"""The fill op layer of zerofwht.init: the op ``zerofwht::init_fill_`` (C++ / CUDA, with its fake
kernel), its pure-PyTorch twin ``zerofwht::init_fill_torch_``, the launch through the backend table
(``fill_``), and the argument / shard handling every initializer shares (``_apply``: offsets,
``full_shape``, DTensor local shards, meta tensors). The rules themselves are in initializers.py."""
from __future__ import annotations

import math
import numbers
import warnings
from typing import Optional, Sequence

import torch

from .. import _backends
# Rule codes, tap modes and the argument checks of the fill ops live in the package's one
# argument-check module (shared with the Triton launcher); re-exported here for zerofwht.init.
from .._checks import (FLOAT_DTYPES as _FLOAT_DTYPES, KIND_HADAMARD, KIND_IDI, KIND_IDIZ,  # noqa: F401
                       KIND_NAMES, KIND_PARTIAL_IDENTITY, KIND_ZEROS, TAP_CENTRE, TAP_FLATTEN,
                       check_fill_args as _check_op_args, logical_matrix)

_INT_OF_SIZE = {2: torch.int16, 4: torch.int32, 8: torch.int64}
_TORCH_CHUNK = 1 << 20  # elements per step of the pure-PyTorch fallback


# ----------------------------------------------------------------------------------------------
# Pure-PyTorch fallback op (any device) and fake kernels.
# ----------------------------------------------------------------------------------------------
def _fill_torch(w: torch.Tensor, kind: int, value: float, tap_mode: int, offset, full_shape) -> None:
    """The rule of csrc/shared/init_params.h in plain PyTorch ops, a few rows at a time (bounded memory)."""
    R, C, col_steps, tap_steps, tap_centre = logical_matrix(full_shape, tap_mode)
    dev, nd = w.device, w.dim()
    calc = torch.float32 if dev.type == "mps" else torch.float64
    pos = torch.full((), value, dtype=calc, device=dev).to(w.dtype)
    neg = torch.full((), -value, dtype=calc, device=dev).to(w.dtype)
    zero = torch.zeros((), dtype=w.dtype, device=dev)

    def grid(d, lo, n):  # global indices along dim d, shaped to broadcast
        shape = [1] * nd
        shape[d] = n
        return torch.arange(offset[d] + lo, offset[d] + lo + n, device=dev,
                            dtype=torch.int64).view(shape)

    col = sum((grid(d, 0, w.shape[d]) * col_steps[d] for d in range(1, nd) if col_steps[d]),
              torch.zeros((), dtype=torch.int64, device=dev))
    tap = sum((grid(d, 0, w.shape[d]) * tap_steps[d] for d in range(2, nd) if tap_steps[d]),
              torch.zeros((), dtype=torch.int64, device=dev))
    per_row = max(1, math.prod(w.shape[1:]))
    step = max(1, _TORCH_CHUNK // per_row)
    for lo in range(0, w.shape[0], step):
        n = min(step, w.shape[0] - lo)
        row = grid(0, lo, n)
        if kind == KIND_ZEROS:
            val = zero.expand(w[lo:lo + n].shape)
        elif kind == KIND_HADAMARD:
            rc = row & col
            par = torch.zeros_like(rc)
            for shift in range(max(R, C).bit_length()):  # parity of the set bits of row & col
                par ^= (rc >> shift) & 1
            val = torch.where(par.bool(), neg, pos)
        else:
            if kind == KIND_PARTIAL_IDENTITY:
                plus, minus = torch.where(row < C, row, -1), None
            else:
                plus = row % C
                minus = None
                if kind == KIND_IDIZ:
                    minus = R + row % (C - R) if R < C else (row + 1) % C
            val = torch.where(col == plus, pos, zero)
            if minus is not None:
                val = torch.where(col == minus, neg, val)
        val = torch.where(tap == tap_centre, val, zero)
        w[lo:lo + n].copy_(val.expand(w[lo:lo + n].shape))


@torch.library.custom_op("zerofwht::init_fill_torch_", mutates_args=("w",))
def _init_fill_torch_op(w: torch.Tensor, kind: int, value: float, tap_mode: int, offset: list[int],
                        full_shape: list[int]) -> None:
    _check_op_args("zerofwht::init_fill_torch_", w, kind, tap_mode, offset, full_shape)
    with torch.no_grad():
        _fill_torch(w, kind, value, tap_mode, offset, full_shape)


@_init_fill_torch_op.register_fake
def _(w, kind, value, tap_mode, offset, full_shape):
    _check_op_args("zerofwht::init_fill_torch_", w, kind, tap_mode, offset, full_shape)
    return None


_COMPILED_FAKE = []


def _register_compiled_fake() -> None:
    """Fake kernel of the C++ op (called once zerofwht._C has registered its schema)."""
    if _COMPILED_FAKE or not _backends.EXTENSION["loaded"]:
        return
    try:
        torch.ops.zerofwht.init_fill_.default
    except (AttributeError, RuntimeError):
        return  # an extension built before the op existed: the table says so
    _COMPILED_FAKE.append(True)

    @torch.library.register_fake("zerofwht::init_fill_")
    def _(w, kind, value, tap_mode, offset, full_shape):
        _check_op_args("zerofwht::init_fill_", w, kind, tap_mode, offset, full_shape)
        return None


_register_compiled_fake()
for _key in ("CPU", "CUDA"):  # fill the backend table's cache now (torch.compile then reads constants)
    _backends._init_op_kernel(_key)


def value_bits(value: float, dtype: torch.dtype) -> int:
    """Bits of ``value`` converted to ``dtype`` exactly as ``Tensor.to(dtype)`` converts a float64,
    as a signed integer of the element's width (what the Triton kernel stores)."""
    t = torch.tensor(value, dtype=torch.float64).to(dtype)
    return int(t.view(_INT_OF_SIZE[t.element_size()]).item())


def fill_(w: torch.Tensor, kind: int, value: float, tap_mode: int, offset: Sequence[int],
          full_shape: Sequence[int], backend: Optional[str] = None) -> torch.Tensor:
    """Low-level fused fill of a plain local tensor (no argument conversion, no DTensor): the block
    of the full weight at ``offset`` gets rule ``kind`` times ``value``. Returns ``w``."""
    chosen = _backends.select_init(w, backend)
    offset, full_shape = [int(o) for o in offset], [int(f) for f in full_shape]
    with torch.no_grad():
        if chosen.name in ("cpp", "cuda"):
            torch.ops.zerofwht.init_fill_(w, kind, float(value), tap_mode, offset, full_shape)
        elif chosen.name == "triton":
            from .. import triton_init
            triton_init.init_fill_triton_(w, kind, value_bits(value, w.dtype),
                                          value_bits(-value, w.dtype), tap_mode, offset, full_shape)
        else:
            torch.ops.zerofwht.init_fill_torch_(w, kind, float(value), tap_mode, offset, full_shape)
    return w


# ----------------------------------------------------------------------------------------------
# Argument handling shared by the initializers.
# ----------------------------------------------------------------------------------------------
def _int_list(value, name: str, ndim: int) -> list:
    if isinstance(value, torch.Size):
        value = tuple(value)
    if isinstance(value, (bool, numbers.Integral)) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a sequence of {ndim} ints (one per dimension of w), got "
                        f"{type(value).__name__} {value!r}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{name} must contain ints, got {name}={value!r}")
        out.append(int(v))
    if len(out) != ndim:
        raise ValueError(f"{name} must have one entry per dimension of w ({ndim}), got "
                         f"{name}={tuple(out)}")
    return out


def _real(value, name: str, *, minimum: Optional[float] = None) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {name}={value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum:g}, got {name}={value:g}")
    return value


def _is_dtensor(w) -> bool:
    try:
        from torch.distributed.tensor import DTensor
    except Exception:  # torch without distributed
        return False
    return isinstance(w, DTensor)


def _dtensor_local(w, fname: str):
    """(local tensor, global offset, global shape) of a DTensor; refuses Partial placements."""
    from torch.distributed.tensor import Replicate, Shard
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    for p in w.placements:
        if not isinstance(p, (Shard, Replicate)):
            raise ValueError(f"{fname}: w is a DTensor with placement {p}; only Shard and Replicate "
                             f"placements can be initialized shard by shard")
    shape = tuple(w.shape)
    local = w._local_tensor
    if local.numel() == 0 or local.is_meta:  # an empty shard (uneven split) or meta: no offsets
        return local, [0] * len(shape), shape
    _, global_offset = compute_local_shape_and_global_offset(shape, w.device_mesh, w.placements)
    return local, list(global_offset), shape


def _apply(fname: str, w, rule, tap_mode: int, offset, full_shape, backend, after=None):
    """The common driver: checks, meta no-op, DTensor unwrap, shard offsets, the fused fill.

    ``rule(full_shape) -> (kind, value)`` may depend on the full shape (ZerO, Hadamard scale);
    ``after(local, offset, full_shape)`` runs after the fill (the IDI noise)."""
    if not isinstance(w, torch.Tensor):
        raise TypeError(f"{fname}: w must be a torch.Tensor, got {type(w).__name__}")
    if w.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{fname}: w must be a floating tensor (float16, bfloat16, float32 or "
                        f"float64), got dtype={w.dtype}")
    if w.dim() < 2:
        raise ValueError(f"{fname}: w must have at least 2 dimensions ((out, in) or (out, in, "
                         f"*kernel)), got a {w.dim()}-d tensor of shape {tuple(w.shape)}")
    if w.dim() > 6:
        raise ValueError(f"{fname}: w must have at most 6 dimensions, got shape {tuple(w.shape)}")
    nd = w.dim()
    local = w
    base = [0] * nd
    if _is_dtensor(w):
        local, base, dshape = _dtensor_local(w, fname)
        if full_shape is None:
            full_shape = dshape
            if offset is not None:
                raise ValueError(f"{fname}: offset= without full_shape= for a DTensor w; give the "
                                 f"full_shape of the weight the DTensor is a block of")
    if w.is_meta or local.is_meta:
        warnings.warn(f"zerofwht.init.{fname}: w is on the meta device (no data); nothing was "
                      f"initialized. Materialize it first, e.g. module.to_empty(device=...), then "
                      f"call {fname} again.", UserWarning, stacklevel=3)
        return w
    if full_shape is None:
        if offset is not None:
            raise ValueError(f"{fname}: offset={offset!r} needs full_shape= (the shape of the full "
                             f"weight that w is a block of)")
        full_shape = tuple(w.shape)
    full_shape = _int_list(full_shape, "full_shape", nd)
    offset = [0] * nd if offset is None else _int_list(offset, "offset", nd)
    if local is w and any(s < 1 for s in w.shape):
        raise ValueError(f"{fname}: w has a zero-size dimension (shape {tuple(w.shape)}); there is "
                         f"nothing to initialize")
    if any(s < 1 for s in full_shape):
        raise ValueError(f"{fname}: full_shape has a zero-size dimension (full_shape="
                         f"{tuple(full_shape)}); there is nothing to initialize")
    offset = [o + b for o, b in zip(offset, base)]
    for d in range(nd):
        if offset[d] < 0 or offset[d] + local.shape[d] > full_shape[d]:
            raise ValueError(f"{fname}: offset[{d}]={offset[d]} with w.shape[{d}]={local.shape[d]} "
                             f"lies outside full_shape[{d}]={full_shape[d]} (offset={tuple(offset)}, "
                             f"full_shape={tuple(full_shape)})")
    if local.numel() == 0:  # an empty local shard of a DTensor
        if after is not None:  # draw what the other shards draw: generators stay in step
            with torch.no_grad():
                after(local, offset, full_shape)
        return w
    kind, value = rule(full_shape)
    fill_(local, kind, value, tap_mode if nd > 2 else TAP_FLATTEN, offset, full_shape, backend)
    if after is not None:
        with torch.no_grad():
            after(local, offset, full_shape)
    return w
