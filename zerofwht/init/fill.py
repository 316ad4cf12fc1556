r"""Deterministic initializers that write identity, Hadamard and IDI weights in place, on the
tensor's own device, for any size and shard by shard (DESIGN.md section 4).

They follow ``torch.nn.init``: a trailing underscore, in-place under ``no_grad`` (no autograd
history), the same tensor returned, ``generator=`` where randomness exists, a no-op with a warning
on meta tensors, fp16 / bf16 / fp32 / fp64. Weights are ``(out, in)`` (``nn.Linear``) or
``(out, in, *kernel)`` with 1-, 2- or 3-d kernels (``nn.Conv{1,2,3}d``; grouped convs use their
weight's shape ``(out, in / groups, *kernel)`` as is).

Every element is computed from its global index by ONE fused kernel launch that writes the tensor
once (op ``zerofwht::init_fill_``: C++ on CPU, CUDA or Triton on CUDA tensors, a chunked pure-PyTorch
fallback on any other device; see ``zerofwht._backends.INIT_BACKENDS``): no dense matrix is built
on the host, nothing is copied host to device, no intermediate of the weight's size is allocated.
Non-contiguous destinations (a transposed view, a slice of a bigger buffer) are written in place.

Shards: every initializer takes keyword ``offset=`` (global index of ``w[0, 0, ...]``, one entry
per dimension) and ``full_shape=`` (shape of the full logical weight) and fills exactly that block
of the full weight; a ``torch.distributed.tensor.DTensor`` (Shard / Replicate placements, any mesh)
is filled shard by shard from its placements, with no communication.

Conv weights: ``partial_identity_``, ``hadamard_``, ``zero_init_``, ``idi_`` and ``idiz_`` use the
ZerO / ``dirac_`` conv form (the ``(out, in)`` matrix at the centre tap ``(k0//2, k1//2, ...)``,
every other tap 0); ``idic_`` and ``idizc_`` use IDInit's patch-maintain form (IDI / IDIZ of
``w.reshape(out, -1)``). Model level: :func:`init_model_`.
"""
from __future__ import annotations

import math
import numbers
import warnings
from typing import Iterable, Optional, Sequence

import torch
from torch import nn

from .. import _backends, reference

__all__ = [
    "partial_identity_",
    "hadamard_",
    "zero_init_",
    "idi_",
    "idiz_",
    "idic_",
    "idizc_",
    "init_model_",
    "SCHEMES",
]

# Rule codes of zerofwht::init_fill_ (csrc/init_params.h) and its tap modes.
KIND_ZEROS, KIND_PARTIAL_IDENTITY, KIND_HADAMARD, KIND_IDI, KIND_IDIZ = 0, 1, 2, 3, 4
KIND_NAMES = {0: "zeros", 1: "partial_identity", 2: "hadamard", 3: "idi", 4: "idiz"}
TAP_FLATTEN, TAP_CENTRE = 0, 1
_INT_OF_SIZE = {2: torch.int16, 4: torch.int32, 8: torch.int64}
_FLOAT_DTYPES = _backends.FLOAT_DTYPES
_TORCH_CHUNK = 1 << 20  # elements per step of the pure-PyTorch fallback


# ----------------------------------------------------------------------------------------------
# Pure-PyTorch fallback op (any device) and fake kernels.
# ----------------------------------------------------------------------------------------------
def _check_op_args(op: str, w: torch.Tensor, kind: int, tap_mode: int, offset, full_shape) -> None:
    # The ops check their arguments too: users may call torch.ops.zerofwht.* directly.
    if w.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{op}: w must be a floating tensor (float16, bfloat16, float32 or float64), "
                        f"got dtype={w.dtype}")
    if not 2 <= w.dim() <= 6:
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


def _fill_torch(w: torch.Tensor, kind: int, value: float, tap_mode: int, offset, full_shape) -> None:
    """The rule of csrc/init_params.h in plain PyTorch ops, a few rows at a time (bounded memory)."""
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
            from . import triton_init
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
        return w
    kind, value = rule(full_shape)
    fill_(local, kind, value, tap_mode if nd > 2 else TAP_FLATTEN, offset, full_shape, backend)
    if after is not None:
        with torch.no_grad():
            after(local, offset, full_shape)
    return w


def _centre(w) -> int:
    return TAP_CENTRE


# ----------------------------------------------------------------------------------------------
# Public initializers
# ----------------------------------------------------------------------------------------------
def partial_identity_(w: torch.Tensor, *, offset: Optional[Sequence[int]] = None,
                      full_shape: Optional[Sequence[int]] = None,
                      backend: Optional[str] = None) -> torch.Tensor:
    r"""Partial identity ``I*``: ``w[i, i] = 1`` for ``i < min(out, in)``, every other entry 0.

    Args:
        w: ``(out, in)`` or conv ``(out, in, *kernel)`` floating tensor (or DTensor), any strides.
        offset: global index of ``w[0, 0, ...]`` in the full weight (one int per dim; default 0s).
        full_shape: shape of the full logical weight ``w`` is a block of (default ``w.shape``).
        backend: ``"cpp"``, ``"cuda"``, ``"triton"``, ``"torch"`` or None (auto).

    Returns:
        ``w``, filled in place.

    Equivalent dense formula (conv: this matrix at the centre tap, other taps 0)::

        w = torch.eye(out, in)          # zerofwht.reference.partial_identity_matrix(out, in)
    """
    return _apply("partial_identity_", w, lambda f: (KIND_PARTIAL_IDENTITY, 1.0), TAP_CENTRE,
                  offset, full_shape, backend)


def _hadamard_value(fname, scale):
    if isinstance(scale, str):
        if scale not in ("code", "paper"):
            raise ValueError(f'{fname}: scale must be None, "code", "paper" or a number, got '
                             f"scale={scale!r}")
    elif scale is not None:
        _real(scale, "scale")
    return lambda f: (KIND_HADAMARD, reference.hadamard_scale(f[0], f[1], scale))


def hadamard_(w: torch.Tensor, scale=None, *, offset: Optional[Sequence[int]] = None,
              full_shape: Optional[Sequence[int]] = None, backend: Optional[str] = None) -> torch.Tensor:
    r"""Hadamard block: ``w[i, j] = c * (-1)^popcount(i & j)``, the top-left ``out x in`` block of
    the Sylvester ``H_P`` (``scipy.linalg.hadamard(P)``), ``P = 2^m = 2^ceil(log2(max(out, in)))``.

    Args:
        w: ``(out, in)`` or conv ``(out, in, *kernel)`` floating tensor (or DTensor), any strides.
        scale: ``c``. None or ``"code"``: ``P^-1/2`` (the ZerO authors' code, default);
            ``"paper"``: ``2^-(m-1)/2`` (the ZerO paper's pseudo-code, sqrt(2) larger); or any
            real number.
        offset, full_shape, backend: as in :func:`partial_identity_`.

    Returns:
        ``w``, filled in place.

    Equivalent dense formula (conv: this matrix at the centre tap, other taps 0)::

        w = c * torch.tensor(scipy.linalg.hadamard(P))[:out, :in]
    """
    return _apply("hadamard_", w, _hadamard_value("hadamard_", scale), TAP_CENTRE, offset,
                  full_shape, backend)


def _zero_rule(f):
    out, inp = f[0], f[1]
    if out <= inp:
        return KIND_PARTIAL_IDENTITY, 1.0
    return KIND_HADAMARD, reference.hadamard_scale(out, inp)  # q = ceil(log2(out)): c = 2^(-q/2)


def zero_init_(w: torch.Tensor, *, offset: Optional[Sequence[int]] = None,
               full_shape: Optional[Sequence[int]] = None, backend: Optional[str] = None) -> torch.Tensor:
    r"""ZerO initialization (Zhao et al. 2021, Algorithm 1).

    ``out <= in``: partial identity ``I*``; ``out > in``: ``2^(-q/2) H_{2^q}[:out, :in]`` with
    ``q = ceil(log2(out))``. Conv weights ``(out, in, *kernel)``: every tap 0 except the centre tap
    ``(k0//2, k1//2, ...)``, which holds that ``(out, in)`` matrix.

    Args:
        w: ``(out, in)`` or ``(out, in, *kernel)`` floating tensor (or DTensor), any strides.
        offset, full_shape, backend: as in :func:`partial_identity_`.

    Returns:
        ``w``, filled in place.

    Equivalent dense formula (``zerofwht.reference.zero_init_matrix``)::

        w = torch.eye(out, in) if out <= in else \
            2 ** (-q / 2) * torch.tensor(scipy.linalg.hadamard(2 ** q))[:out, :in]
    """
    return _apply("zero_init_", w, _zero_rule, TAP_CENTRE, offset, full_shape, backend)


def _idi_noise(tau: float, noise_std: float, generator, tap_mode: int):
    """Replace each tau entry (one per row) by a draw from N(tau, noise_std^2); draw ``r`` is the
    one of global row ``r`` (R draws, whatever the shard), so shards agree with the full tensor."""
    def after(local: torch.Tensor, offset, full_shape):
        R, C, col_steps, tap_steps, tap_centre = logical_matrix(full_shape, tap_mode)
        dev, nd = local.device, local.dim()
        gdev = generator.device if generator is not None else dev
        ndtype = torch.float64 if local.dtype == torch.float64 else torch.float32
        draws = torch.empty(R, dtype=ndtype, device=gdev).normal_(tau, noise_std, generator=generator)
        rows = torch.arange(offset[0], offset[0] + local.shape[0], device=dev)
        col = rows % C
        # global index of the tau entry of each row, then local, then keep those inside the shard
        idx = [rows]
        if tap_mode == TAP_FLATTEN or nd == 2:
            rest = col
            for d in range(nd - 1, 0, -1):
                idx.insert(1, rest % full_shape[d])
                rest = rest // full_shape[d]
        else:
            idx.append(col)
            idx += [torch.full_like(rows, full_shape[d] // 2) for d in range(2, nd)]
        local_idx = [g - offset[d] for d, g in enumerate(idx)]
        keep = torch.ones_like(rows, dtype=torch.bool)
        for d, li in enumerate(local_idx):
            keep &= (li >= 0) & (li < local.shape[d])
        sel = [li[keep] for li in local_idx]
        vals = draws.to(dev)[rows[keep]] if gdev != dev else draws[rows[keep]]
        local[tuple(sel)] = vals.to(local.dtype)
    return after


def idi_(w: torch.Tensor, tau: float = 1.0, noise_std: float = 0.0,
         generator: Optional[torch.Generator] = None, *, offset: Optional[Sequence[int]] = None,
         full_shape: Optional[Sequence[int]] = None, backend: Optional[str] = None) -> torch.Tensor:
    r"""IDI_tau (IDInit): ``w[m, j] = tau`` iff ``m = j (mod in)``, else 0.

    ``out > in``: identities stacked down the rows; ``out <= in``: ``[tau I | 0]``. E.g. (5, 3):
    rows e0, e1, e2, e0, e1 (times tau). Conv ``(out, in, *kernel)``: this matrix at the centre tap
    (see :func:`idic_` for IDInit's patch-maintain conv rule).

    Args:
        w: ``(out, in)`` or ``(out, in, *kernel)`` floating tensor (or DTensor), any strides.
        tau: the identity value.
        noise_std: optional loosening: each tau entry (one per row) is drawn from
            ``N(tau, noise_std^2)``; 0 (default) keeps it exactly tau. The draw of row ``m`` is the
            ``m``-th of ``out`` draws from ``generator`` (in the weight's dtype, fp32 for fp16 /
            bf16), so shards filled from identically seeded generators agree with the full weight.
        generator: ``torch.Generator`` for the noise (default: the global one of w's device).
        offset, full_shape, backend: as in :func:`partial_identity_`.

    Returns:
        ``w``, filled in place.

    Equivalent dense formula (``zerofwht.reference.idi_matrix``)::

        w = torch.zeros(out, in); w[m, m % in] = tau  for every m
    """
    tau = _real(tau, "tau")
    noise_std = _real(noise_std, "noise_std", minimum=0.0)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"idi_: generator must be a torch.Generator or None, got "
                        f"{type(generator).__name__}")
    after = _idi_noise(tau, noise_std, generator, TAP_CENTRE) if noise_std > 0 else None
    return _apply("idi_", w, lambda f: (KIND_IDI, tau), TAP_CENTRE, offset, full_shape, backend,
                  after)


def idiz_(w: torch.Tensor, eps: float = 1e-6, *, offset: Optional[Sequence[int]] = None,
          full_shape: Optional[Sequence[int]] = None, backend: Optional[str] = None) -> torch.Tensor:
    r"""IDIZ_eps (IDInit, for the last layer of a residual branch): IDI_eps, plus ``-eps`` entries:

    * ``out < in``: columns ``out..in-1`` hold IDI_-eps: ``w[m, out + j] = -eps`` iff
      ``m = j (mod in - out)``;
    * ``out >= in``: ``w[m, (m + 1) mod in] = -eps`` (where this meets the ``+eps`` entry, i.e.
      ``in == 1``, ``-eps`` wins).

    E.g. (3, 5) in units of eps: [[1,0,0,-1,0],[0,1,0,0,-1],[0,0,1,-1,0]]. Conv weights: this
    matrix at the centre tap (see :func:`idizc_` for the patch-maintain rule).

    Args:
        w: ``(out, in)`` or ``(out, in, *kernel)`` floating tensor (or DTensor), any strides.
        eps: ``>= 0``.
        offset, full_shape, backend: as in :func:`partial_identity_`.

    Returns:
        ``w``, filled in place.

    Equivalent dense formula: ``zerofwht.reference.idiz_matrix(out, in, eps)``.
    """
    eps = _real(eps, "eps", minimum=0.0)
    return _apply("idiz_", w, lambda f: (KIND_IDIZ, eps), TAP_CENTRE, offset, full_shape, backend)


def idic_(w: torch.Tensor, tau: float = 1.0, *, offset: Optional[Sequence[int]] = None,
          full_shape: Optional[Sequence[int]] = None, backend: Optional[str] = None) -> torch.Tensor:
    r"""IDIC_tau, IDInit's patch-maintain conv rule: IDI_tau of the weight viewed as
    ``(out, in * prod(kernel))`` in PyTorch's own order (``w.reshape(out, -1)``), viewed back.

    E.g. (4, 2, 3, 3) with tau = 1: ones at (0,0,0,0), (1,0,0,1), (2,0,0,2), (3,0,1,0). On a 2-D
    weight it equals :func:`idi_`.

    Args:
        w: ``(out, in, *kernel)`` (or ``(out, in)``) floating tensor (or DTensor), any strides.
        tau: the identity value.
        offset, full_shape, backend: as in :func:`partial_identity_`.

    Returns:
        ``w``, filled in place.

    Equivalent dense formula::

        w = zerofwht.reference.idi_matrix(out, in * prod(kernel), tau).reshape(w.shape)
    """
    tau = _real(tau, "tau")
    return _apply("idic_", w, lambda f: (KIND_IDI, tau), TAP_FLATTEN, offset, full_shape, backend)


def idizc_(w: torch.Tensor, eps: float = 1e-6, *, offset: Optional[Sequence[int]] = None,
           full_shape: Optional[Sequence[int]] = None, backend: Optional[str] = None) -> torch.Tensor:
    r"""IDIZC_eps: IDIZ_eps of the weight viewed as ``(out, in * prod(kernel))``, viewed back.

    Args:
        w: ``(out, in, *kernel)`` (or ``(out, in)``) floating tensor (or DTensor), any strides.
        eps: ``>= 0``.
        offset, full_shape, backend: as in :func:`partial_identity_`.

    Returns:
        ``w``, filled in place.

    Equivalent dense formula::

        w = zerofwht.reference.idiz_matrix(out, in * prod(kernel), eps).reshape(w.shape)
    """
    eps = _real(eps, "eps", minimum=0.0)
    return _apply("idizc_", w, lambda f: (KIND_IDIZ, eps), TAP_FLATTEN, offset, full_shape, backend)


# ----------------------------------------------------------------------------------------------
# Model level
# ----------------------------------------------------------------------------------------------
SCHEMES = ("zero", "idinit", "partial_identity", "zero_weight_random_bias")
_LAYER_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _is_meta(t: torch.Tensor) -> bool:
    if t.is_meta:
        return True
    return _is_dtensor(t) and t._local_tensor.is_meta


def _resolve_layers(model: nn.Module, which, what: str, named: dict) -> set:
    if which is None:
        return set()
    if isinstance(which, (str, nn.Module)):
        which = (which,)
    names = set()
    by_module = {id(m): n for n, m in named.items()}
    for item in which:
        if isinstance(item, nn.Module):
            if id(item) not in by_module:
                raise ValueError(f"{what}: module {type(item).__name__} is not a Linear/Conv layer of "
                                 f"the model")
            names.add(by_module[id(item)])
        elif isinstance(item, str):
            if item not in named:
                raise ValueError(f"{what}: {item!r} is not the name of a Linear/Conv layer of the model; "
                                 f"layers: {sorted(named)}")
            names.add(item)
        else:
            raise TypeError(f"{what} must hold layer names or modules, got {type(item).__name__}")
    return names


def init_model_(model: nn.Module, scheme: str, *, residual_last: Iterable = (),
                classifier="auto", generator: Optional[torch.Generator] = None, tau: float = 1.0,
                first_tau: Optional[float] = math.sqrt(2.0), eps: float = 1e-6,
                noise_std: float = 0.0, bias_init: str = "normal", bias_std: float = 1e-2,
                bias_a: float = 1e-2, backend: Optional[str] = None) -> list[dict]:
    r"""Initialize every ``nn.Linear`` and ``nn.Conv{1,2,3}d`` of ``model`` in place with a scheme.

    Schemes:

    * ``"zero"``: ZerO (:func:`zero_init_`) on every weight; biases zeroed.
    * ``"idinit"``: IDInit: :func:`idi_` (Linear) / :func:`idic_` (Conv) with ``tau`` everywhere,
      ``first_tau`` (default sqrt(2), for ReLU nets; None = ``tau``) on the first layer;
      :func:`idiz_` / :func:`idizc_` with ``eps`` on the layers named in ``residual_last`` (the last
      layer of each residual branch) and on the classifier; biases zeroed. ``noise_std`` /
      ``generator`` loosen the IDI layers (see :func:`idi_`).
    * ``"partial_identity"``: :func:`partial_identity_` on every weight; biases zeroed.
    * ``"zero_weight_random_bias"``: every weight 0, biases from ``N(0, bias_std^2)``
      (``bias_init="normal"``) or ``U[0, bias_a)`` (``bias_init="uniform"``), drawn from
      ``generator`` (the symmetry-breaking baseline).

    Args:
        model: the module; its layers may be on any device, sharded (DTensor) or on meta (skipped,
            with a warning: materialize with ``model.to_empty(device=...)`` first).
        scheme: one of ``SCHEMES``.
        residual_last: names (as in ``model.named_modules()``) or modules of the layers that end a
            residual branch ("idinit" only).
        classifier: the final classifier, by name or module; ``"auto"`` (default): the last
            ``nn.Linear`` in module order; None: none.
        backend: the fill backend (see :func:`partial_identity_`).

    Returns:
        A summary, one record per layer in module order: ``{"name", "type", "shape", "rule",
        "params", "bias"}`` (``rule`` names the initializer, or ``"skipped (meta)"``).
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got scheme={scheme!r}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if bias_init not in ("normal", "uniform"):
        raise ValueError(f'bias_init must be "normal" or "uniform", got bias_init={bias_init!r}')
    tau = _real(tau, "tau")
    eps = _real(eps, "eps", minimum=0.0)
    bias_std = _real(bias_std, "bias_std", minimum=0.0)
    bias_a = _real(bias_a, "bias_a", minimum=0.0)
    first_tau = tau if first_tau is None else _real(first_tau, "first_tau")
    named = {n: m for n, m in model.named_modules() if isinstance(m, _LAYER_TYPES)}
    last_names = _resolve_layers(model, residual_last, "residual_last", named)
    if classifier == "auto":
        linears = [n for n, m in named.items() if isinstance(m, nn.Linear)]
        cls_names = {linears[-1]} if linears else set()
    else:
        cls_names = _resolve_layers(model, classifier, "classifier", named)
    first = next(iter(named), None)

    summary = []
    with torch.no_grad():
        for name, mod in named.items():
            w = mod.weight
            is_conv = not isinstance(mod, nn.Linear)
            rec = {"name": name, "type": type(mod).__name__, "shape": tuple(w.shape),
                   "rule": None, "params": {}, "bias": None}
            if _is_meta(w):
                warnings.warn(f"zerofwht.init.init_model_: layer {name!r} is on the meta device; "
                              f"skipped (materialize with model.to_empty(device=...) first)",
                              UserWarning, stacklevel=2)
                rec["rule"] = "skipped (meta)"
                rec["bias"] = "skipped (meta)" if mod.bias is not None else None
                summary.append(rec)
                continue
            if scheme == "zero":
                zero_init_(w, backend=backend)
                rec["rule"] = "zero_init_"
            elif scheme == "partial_identity":
                partial_identity_(w, backend=backend)
                rec["rule"] = "partial_identity_"
            elif scheme == "zero_weight_random_bias":
                w.zero_()
                rec["rule"] = "zeros_"
            else:  # idinit
                if name in last_names or name in cls_names:
                    (idizc_ if is_conv else idiz_)(w, eps, backend=backend)
                    rec["rule"] = "idizc_" if is_conv else "idiz_"
                    rec["params"] = {"eps": eps}
                    if name in cls_names:
                        rec["params"]["classifier"] = True
                else:
                    t = first_tau if name == first else tau
                    if is_conv:
                        idic_(w, t, backend=backend)
                        rec["rule"] = "idic_"
                        rec["params"] = {"tau": t}
                    else:
                        idi_(w, t, noise_std, generator, backend=backend)
                        rec["rule"] = "idi_"
                        rec["params"] = {"tau": t, "noise_std": noise_std} if noise_std else {"tau": t}
            if mod.bias is not None:
                b = mod.bias
                if _is_meta(b):
                    rec["bias"] = "skipped (meta)"
                elif scheme == "zero_weight_random_bias":
                    if bias_init == "normal":
                        b.normal_(0.0, bias_std, generator=generator)
                        rec["bias"] = f"normal(0, {bias_std:g}^2)"
                    else:
                        b.uniform_(0.0, bias_a, generator=generator)
                        rec["bias"] = f"uniform[0, {bias_a:g})"
                else:
                    b.zero_()
                    rec["bias"] = "zeros"
            summary.append(rec)
    return summary
