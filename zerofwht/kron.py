r"""Exact Hadamard transforms of order ``n = K * 2^k``: ``y = s (H_K kron H_{2^k}) pad_n(x)``.

Operators (namespace ``zerofwht``), over the LAST dimension of ``x``, shape ``(..., d_in)``:

* ``fwht_kron(Tensor x, Tensor base, int n, int out_features, float scale) -> Tensor``: the fused
  C++ kernels (CPU; CUDA when built), registered by the compiled extension when present; its
  fake kernel and autograd are registered here.
* ``fwht_kron_torch(...)`` (same schema): pure PyTorch, any device; the reference backend.
* ``fwht_kron_triton(...)`` (same schema): Triton (zerofwht/triton_kron.py).

``base`` is the ``K x K`` matrix ``H_K`` (entries +-1, float32, on x's device; row i, column j =
``H_K[i, j]``), ``n = K * 2^k >= d_in``; the row of x zero-padded to n is viewed as a
``K x 2^k`` matrix X (K the slow index) and ``H_K X H_{2^k}`` is returned, flattened, times
``scale``, truncated to ``out_features``. Half types accumulate in fp32.

Gradient: ``(H_K kron H_p)^T = H_K^T kron H_p``, so ``grad_x`` is the same op on ``grad_y`` with
the transposed base and ``d_in`` / ``out_features`` swapped. That is exact for every Hadamard
base, symmetric or not (Paley I and Williamson matrices are not symmetric), and double backward
goes through the same formula again.

:func:`fwht_kron` is the Python front end behind ``zerofwht.fwht(x, n=K * 2**k, base=...)``:
sizes, norms (computed with the real n), ``dim``, ``out=``, backend choice.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.autograd.forward_ad as fwAD

from . import bases, reference
from ._backends import EXTENSION, canonical_name
from ._checks import check_int, check_out, check_out_features, resolve_scale
from ._kron_common import check_op_args, register

__all__ = ["fwht_kron", "fwht_kron_inplace", "resolve", "kron_torch", "select_backend"]


def kron_torch(x: torch.Tensor, base: torch.Tensor, n: int, out_features: int,
               scale: float) -> torch.Tensor:
    """Pure-PyTorch transform: power-of-two butterfly along the fast index, then one batched
    matrix product with the needed block of H_K (only the ``ceil(d_in / p)`` columns of H_K
    that meet input and the ``ceil(out_features / p)`` rows that are kept)."""
    k = base.shape[0]
    p = n // k
    d_in = x.shape[-1]
    batch = x.shape[:-1]
    rows = math.prod(batch)
    compute = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    if d_in == 0 or rows == 0:
        return x.new_zeros((*batch, out_features))
    ki = -(-d_in // p)
    ko = -(-out_features // p)
    xx = x.reshape(rows, d_in).to(compute)
    if d_in < ki * p:
        xx = torch.nn.functional.pad(xx, (0, ki * p - d_in))
    xp = reference.fwht_butterfly(xx.reshape(rows * ki, p), p, p, 1.0).view(rows, ki, p)
    y = torch.matmul(base[:ko, :ki].to(compute), xp)  # (ko, ki) @ (rows, ki, p) -> (rows, ko, p)
    y = y.reshape(rows, ko * p)[:, :out_features]
    if scale != 1.0:
        y = y * scale
    return y.to(x.dtype).reshape(*batch, out_features).contiguous()


# ----------------------------------------------------------------------------------------------
# Registration: the pure-PyTorch op; fake kernels and autograd for every kron op.
# ----------------------------------------------------------------------------------------------
@torch.library.custom_op("zerofwht::fwht_kron_torch", mutates_args=())
def _fwht_kron_torch(x: torch.Tensor, base: torch.Tensor, n: int, out_features: int,
                     scale: float) -> torch.Tensor:
    check_op_args("zerofwht::fwht_kron_torch", x, base, n, out_features)
    return kron_torch(x, base, n, out_features, scale)


register("fwht_kron_torch")
_COMPILED = []


def register_compiled_ops() -> None:
    """Called once zerofwht._C is imported: registers fake + autograd for the C++ op
    ``zerofwht::fwht_kron`` when the extension defines it (an older build may not)."""
    if not _COMPILED and _has_cpp_op():
        register("fwht_kron")
        _COMPILED.append(True)
        _has_kernel("CPU")
        _has_kernel("CUDA")


def _has_cpp_op() -> bool:
    return EXTENSION["loaded"] and hasattr(torch.ops.zerofwht, "fwht_kron")


# ----------------------------------------------------------------------------------------------
# Backend choice (kept beside the op: the C++ op may be absent in an older build)
# ----------------------------------------------------------------------------------------------
_KERNELS: dict = {}  # dispatch key -> whether fwht_kron has a kernel for it (fixed once _C is loaded)


def _has_kernel(key: str) -> bool:
    # Cached (and filled at registration): torch.compile cannot trace the dispatcher query.
    if key not in _KERNELS:
        try:
            _KERNELS[key] = torch._C._dispatch_has_kernel_for_dispatch_key("zerofwht::fwht_kron", key)
        except RuntimeError:  # schema not registered
            _KERNELS[key] = False
    return _KERNELS[key]


def _refuse(name: str, x: torch.Tensor, k: int, p: Optional[int] = None) -> Optional[str]:
    if name == "torch":
        return None
    if name in ("cpp", "cuda"):
        if not _has_cpp_op():
            return ("the compiled extension has no zerofwht::fwht_kron op "
                    f"({EXTENSION['error'] or 'built before the op existed'})")
        dev = "cpu" if name == "cpp" else "cuda"
        if x.device.type != dev:
            return f"it runs on {dev} tensors, got a tensor on {x.device}"
        if not _has_kernel("CPU" if dev == "cpu" else "CUDA"):
            return f"zerofwht._C has no {dev.upper()} kernel for fwht_kron"
        return None
    if name == "triton":
        try:
            from . import triton_kron
        except Exception as exc:  # noqa: BLE001
            return f"the Triton kron backend failed to import ({type(exc).__name__}: {exc})"
        return triton_kron.refuse(x, k, p)
    raise AssertionError(name)


_AUTO = {"cpu": ("cpp", "torch"), "cuda": ("cuda", "triton", "torch")}


def select_backend(x: torch.Tensor, k: int, backend: Optional[str], p: Optional[int] = None) -> str:
    key = canonical_name(backend)
    if key is not None:
        reason = _refuse(key, x, k, p)
        if reason:
            raise RuntimeError(f"zerofwht backend {key!r} cannot run this K * 2^k transform "
                               f"(K={k}): {reason}")
        return key
    for key in _AUTO.get(x.device.type, ("torch",)):
        if _refuse(key, x, k, p) is None:
            return key
    return "torch"


def _op(name: str):
    if name == "torch":
        return torch.ops.zerofwht.fwht_kron_torch.default
    if name == "triton":
        from . import triton_kron  # noqa: F401  (registers the op)
        return torch.ops.zerofwht.fwht_kron_triton.default
    return torch.ops.zerofwht.fwht_kron.default


# ----------------------------------------------------------------------------------------------
# Front end
# ----------------------------------------------------------------------------------------------
def _below_autograd(x: torch.Tensor) -> bool:
    """No gradient can flow: call the op below the autograd keys (as zerofwht.ops does)."""
    return not (x.requires_grad and torch.is_grad_enabled()) and not torch.compiler.is_compiling()


def _forward_tangent(x: torch.Tensor):
    if fwAD._current_level < 0 or torch.compiler.is_compiling():
        return None
    return fwAD.unpack_dual(x).tangent


def resolve(d_in: int, n, base, device, *, check_values: bool = True):
    """(n, K, base tensor on ``device`` as float32) for a K * 2^k transform of ``d_in`` inputs.

    ``base`` None: n must be supported (``bases.split``); K by the representation rule.
    ``base`` given: validated (``bases.check_base``); n defaults to the smallest K * 2^k >= d_in
    and must otherwise be K * 2^k."""
    if base is None:
        n = check_int(n, "n")
        s = bases.split(n)
        if s is None:
            raise ValueError(bases.unsupported_message(n))
        k = s[0]
        hk = bases.hadamard_base(k, torch.float32, device)
    else:
        k = bases.check_base(base, "base", values=check_values and not torch.compiler.is_compiling())
        if n is None:
            n = k * reference.next_power_of_two(-(-d_in // k) if d_in else 1)
        else:
            n = check_int(n, "n")
            p = n // k
            if n < 1 or n % k or p & (p - 1):
                raise ValueError(f"n={n} must be K * 2^k for the given base of order K={k} "
                                 f"(e.g. n={k * reference.next_power_of_two(max(1, -(-d_in // k)))})")
        if n > bases.MAX_N:
            raise ValueError(f"n={n} is larger than the largest transform, {bases.MAX_N}")
        hk = base.detach().to(dtype=torch.float32, device=device).contiguous()
    if n < d_in:
        raise ValueError(f"n={n} is smaller than the input size {d_in} along dim; the transform "
                         f"pads but never crops its input (use n >= {d_in})")
    return n, k, hk


def _call(name: str, xt: torch.Tensor, hk, n: int, out_features: int, s: float) -> torch.Tensor:
    op = _op(name)
    if name in ("cpp", "cuda"):
        # The C++ op takes (rows, d_in) with a unit-stride last dimension.
        batch = xt.shape[:-1]
        x2 = xt.reshape(-1, xt.shape[-1])
        if x2.shape[-1] > 1 and x2.stride(-1) != 1:
            x2 = x2.contiguous()
        return op(x2, hk, n, out_features, s).view(*batch, out_features)
    return op(xt, hk, n, out_features, s)


def fwht_kron(x: torch.Tensor, n, dim: int, norm, *, out_features=None, scale=None, out=None,
              backend=None, base=None) -> torch.Tensor:
    """``zerofwht.fwht`` for ``n = K * 2^k`` or a given ``base`` (x checked, dim canonical)."""
    d_in = x.shape[dim]
    n, k, hk = resolve(d_in, n, base, x.device)
    out_features = check_out_features(out_features, n)
    s = resolve_scale(norm, scale, n)
    tangent = _forward_tangent(x)
    if tangent is not None:  # forward-mode AD: linear, the JVP is the transform of the tangent
        if out is not None:
            raise RuntimeError("fwht(..., out=...) does not support forward-mode AD (x is a dual "
                               "tensor); call fwht(x) without out= instead")
        primal = fwAD.unpack_dual(x).primal
        kw = dict(dim=dim, out_features=out_features, scale=s, backend=backend, base=hk)
        return fwAD.make_dual(fwht_kron(primal, n, norm=None, **kw), fwht_kron(tangent, n, norm=None, **kw))
    name = select_backend(x, k, backend, n // k)
    last = dim == x.dim() - 1
    xt = x if last else x.movedim(dim, -1)
    if out is not None:
        shape = list(x.shape)
        shape[dim] = out_features
        check_out(out, x, tuple(shape))
    if xt.numel() == 0 or d_in == 0:
        y = x.new_zeros((*xt.shape[:-1], out_features))
    elif _below_autograd(xt):
        with torch._C._AutoDispatchBelowAutograd():
            y = _call(name, xt, hk, n, out_features, s)
    else:
        y = _call(name, xt, hk, n, out_features, s)
    if not last:
        y = y.movedim(-1, dim)
    if out is None:
        return y
    # The kron kernels have no out= form: one extra copy of the result.
    out.copy_(y)
    if not torch.compiler.is_compiling():
        torch.autograd.graph.increment_version(out)
    return out


def fwht_kron_inplace(x: torch.Tensor, n, dim: int, norm, *, scale=None, backend=None,
                      base=None) -> torch.Tensor:
    """``zerofwht.fwht_`` for ``n = K * 2^k``: x.shape[dim] must equal n. Computes into a new
    tensor and copies back (the kron kernels have no in-place form)."""
    d_in = x.shape[dim]
    if n is None and base is None:
        n = d_in
    if n is not None:
        n = check_int(n, "n")
    n, k, hk = resolve(d_in, n, base, x.device)
    if n != d_in:
        raise ValueError(f"fwht_ transforms in place, so x.shape[dim]={d_in} must equal n "
                         f"(got n={n}); use fwht(x, n=...) to pad")
    s = resolve_scale(norm, scale, n)
    if _forward_tangent(x) is not None:
        raise RuntimeError("fwht_ does not support forward-mode AD (x is a dual tensor); use "
                           "fwht(x) instead")
    if torch.is_grad_enabled() and x.requires_grad:
        if x.is_leaf:
            raise RuntimeError("fwht_: x is a leaf tensor that requires grad; PyTorch forbids "
                               "in-place operations on it (use fwht(x) or torch.no_grad())")
        return x.copy_(fwht_kron(x, n, dim, None, scale=s, backend=backend, base=hk))
    if x.numel() == 0:
        return x
    return x.copy_(fwht_kron(x, n, dim, None, scale=s, backend=backend, base=hk))
