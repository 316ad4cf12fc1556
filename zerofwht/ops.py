"""Public transform ops and their registration (fake kernels, autograd).

Operators (namespace ``zerofwht``), all over the LAST dimension of ``x`` with shape ``(..., d_in)``:

* ``fwht(Tensor x, int n, int out_features, float scale) -> Tensor`` (C++: CPU and CUDA kernels)
* ``fwht_out(Tensor x, int n, int out_features, float scale, Tensor(a!) out) -> ()``
* ``fwht_inplace(Tensor(a!) x, float scale) -> ()`` (``d_in == n == out_features``)
* ``fwht_torch(Tensor x, int n, int out_features, float scale) -> Tensor`` (pure PyTorch, any device)

each computing ``y = scale * (H_n @ pad_n(x))[..., :out_features]`` (docs/design.md). The
gradient is the same operator with ``d_in`` and ``out_features`` swapped, so one op serves forward,
backward and double backward. The Python functions below add the torch.fft-style interface
(``n``, ``dim``, ``norm``); argument checks live in ``_checks.py``, backend selection in
``_backends.py``, the autograd formula in ``_autograd.py``.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.autograd.forward_ad as fwAD

from . import _autograd, _backends, bases, kron, reference
from ._checks import DimensionError  # noqa: F401  (public: zerofwht.DimensionError)
from ._checks import canonical_dim as _canonical_dim, check_int as _check_int  # noqa: F401
from ._checks import check_op_args as _check_op_args, check_out as _check_out
from ._checks import check_out_tensor as _check_out_tensor, check_tensor as _check_tensor
from ._checks import resolve_scale as _resolve_scale, resolve_sizes as _resolve_sizes

__all__ = ["fwht", "fwht_", "hadamard_transform", "DimensionError"]


# ----------------------------------------------------------------------------------------------
# Registration: the pure-PyTorch op, and fake + autograd for every op (one block, here).
# ----------------------------------------------------------------------------------------------
@torch.library.custom_op("zerofwht::fwht_torch", mutates_args=())
def _fwht_torch(x: torch.Tensor, n: int, out_features: int, scale: float) -> torch.Tensor:
    _check_op_args("zerofwht::fwht_torch", x, n, out_features)
    return reference.fwht_butterfly(x, n, out_features, scale)


def _fake_fwht(x, n, out_features, scale):
    _check_op_args("zerofwht::fwht", x, n, out_features)
    return x.new_empty((*x.shape[:-1], out_features))


torch.library.register_fake("zerofwht::fwht_torch")(_fake_fwht)
_autograd.register("fwht_torch")


def register_compiled_ops() -> None:
    """Fake kernels and autograd for the C++ ops; called once zerofwht._C has been imported."""
    torch.library.register_fake("zerofwht::fwht")(_fake_fwht)
    _autograd.register("fwht")

    @torch.library.register_fake("zerofwht::fwht_out")
    def _(x, n, out_features, scale, out):
        _check_op_args("zerofwht::fwht_out", x, n, out_features)
        _check_out_tensor("zerofwht::fwht_out", out, x, (*x.shape[:-1], out_features))
        return None

    @torch.library.register_fake("zerofwht::fwht_inplace")
    def _(x, scale):
        return None

    kron.register_compiled_ops()  # zerofwht::fwht_kron (K * 2^k), when the extension has it


# ----------------------------------------------------------------------------------------------
# Backend implementations of the three call forms.
# ----------------------------------------------------------------------------------------------
def _triton_ops():
    from . import triton_fwht  # noqa: F401  (importing it registers the zerofwht::fwht_triton* ops)
    return torch.ops.zerofwht


_FUNCTIONAL: dict = {}  # backend name -> its op's default overload, looked up once


def _functional(backend: str):
    op = _FUNCTIONAL.get(backend)
    if op is None:
        if backend == "torch":
            op = torch.ops.zerofwht.fwht_torch.default
        elif backend == "triton":
            op = _triton_ops().fwht_triton.default
        else:  # C++ op: CPU and (when built) CUDA kernels by dispatch key
            op = torch.ops.zerofwht.fwht.default
        _FUNCTIONAL[backend] = op
    return op


def _run_out(backend: str, x, n, out_features, scale, out):
    if backend == "torch":
        out.copy_(torch.ops.zerofwht.fwht_torch(x, n, out_features, scale))
        return
    if backend == "triton":
        _triton_ops().fwht_triton_out(x, n, out_features, scale, out)
    else:
        torch.ops.zerofwht.fwht_out(x, n, out_features, scale, out)
    _bump_version(out)


def _run_inplace(backend: str, x, scale):
    n = x.shape[-1]
    if backend == "torch":
        x.copy_(torch.ops.zerofwht.fwht_torch(x, n, n, scale))
        return
    if backend == "triton":
        _triton_ops().fwht_triton_inplace(x, scale)
    else:
        torch.ops.zerofwht.fwht_inplace(x, scale)
    _bump_version(x)


def _bump_version(t: torch.Tensor) -> None:
    # Tell autograd the tensor changed (as every in-place ATen op does), so that a tensor saved
    # for backward and overwritten here raises instead of giving silently wrong gradients.
    # Inside torch.compile the write is functionalized and versions do not apply.
    if not torch.compiler.is_compiling():
        torch.autograd.graph.increment_version(t)


def _below_autograd(x: torch.Tensor) -> bool:
    """True when no gradient can flow through this call: then the op is called below the autograd
    dispatch keys. (Its autograd formula is registered from Python, and even a call that records
    nothing passes through it: about 4 us of a 7 us call on a small tensor.) Never while
    torch.compile traces (it sees the op itself)."""
    return not (x.requires_grad and torch.is_grad_enabled()) and not torch.compiler.is_compiling()


def _forward_tangent(x: torch.Tensor) -> Optional[torch.Tensor]:
    """x's forward-mode tangent at the current dual level (None when there is none)."""
    if fwAD._current_level < 0 or torch.compiler.is_compiling():
        return None
    return fwAD.unpack_dual(x).tangent


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------
def fwht(x: torch.Tensor, n: Optional[int] = None, dim: int = -1, norm: Optional[str] = None, *,
         out_features: Optional[int] = None, scale: Optional[float] = None,
         out: Optional[torch.Tensor] = None, backend: Optional[str] = None,
         base: Optional[torch.Tensor] = None) -> torch.Tensor:
    r"""Fast Walsh-Hadamard transform along ``dim`` (torch.fft conventions).

    ``y = s * (H_n @ pad_n(x))[:out_features]`` along ``dim``, where ``H_n`` is the Sylvester
    Hadamard matrix (``scipy.linalg.hadamard(n)``, entries +-1), ``pad_n`` appends zeros up to
    length ``n`` (implicitly: no padded copy is made) and only the first ``out_features`` outputs
    are computed and stored. Cost O(n log n) per transformed vector.

    Args:
        x: real floating tensor (fp16, bf16, fp32, fp64), shape ``(..., d_in, ...)`` with ``d_in =
            x.shape[dim]``; any strides. Half types accumulate in fp32.
        n: transform length ``>= d_in``: a power of two, or ``K * 2^k`` with K a built-in
            Hadamard order (``zerofwht.bases``; then ``H_n = H_K kron H_{2^k}``, see
            docs/kron.md). Default: the next power of two ``>= d_in`` (with ``base``: the
            smallest ``K * 2^k >= d_in``). An unsupported n raises a ValueError that lists
            the nearest supported sizes.
        dim: the dimension to transform (default -1).
        norm: ``"backward"`` / None (``s = 1``), ``"ortho"`` (``s = n**-0.5``, then the transform
            is its own inverse) or ``"forward"`` (``s = 1/n``).
        out_features: number of outputs kept, ``1 <= out_features <= n`` (default ``n``).
        scale: any real scale ``s`` instead of ``norm``.
        out: optional output tensor of the result's shape, dtype and device (no autograd).
        backend: ``"cpp"``, ``"cuda"``, ``"triton"``, ``"torch"`` or ``"auto"``/None (default; the
            environment variable ``ZEROFWHT_BACKEND`` overrides auto). A named backend that cannot
            run the input raises a RuntimeError with the reason.
        base: a ``K x K`` Hadamard matrix (entries +-1, ``base @ base.T == K * I``; checked) used
            as ``H_K`` instead of the built-in one: ``y = s * (base kron H_{n/K}) pad_n(x)``.

    Returns:
        Tensor of shape ``x.shape`` with ``dim`` resized to ``out_features``, dtype of ``x``.

    Equivalent dense formula (O(n^2), see ``zerofwht.reference.fwht_dense``)::

        H = scipy.linalg.hadamard(n)[:d_in, :out_features]      # (d_in, out_features)
        y = s * (x.movedim(dim, -1) @ H).movedim(-1, dim)

    Example::

        >>> x = torch.randn(8, 1000)             # (batch, d_in)
        >>> zerofwht.fwht(x).shape               # n = 1024
        torch.Size([8, 1024])
        >>> zerofwht.fwht(x, norm="ortho", out_features=1000).shape
        torch.Size([8, 1000])
    """
    _check_tensor(x, "x")
    dim = _canonical_dim(dim, x.dim())
    d_in = x.shape[dim]
    if base is not None or (n is not None and not reference.is_power_of_two(n) and
                            bases.is_supported(n)):
        return kron.fwht_kron(x, n, dim, norm, out_features=out_features, scale=scale, out=out,
                              backend=backend, base=base)
    if d_in == 0 and n is None and out_features is None:
        # Empty along dim in, empty along dim out (there is no transform length to infer).
        result = x.clone()
        if out is not None:
            _check_out(out, x, tuple(x.shape))
            out.copy_(result)
            return out
        return result
    n, out_features = _resolve_sizes(d_in, n, out_features)
    s = _resolve_scale(norm, scale, n)
    tangent = _forward_tangent(x)
    if tangent is not None:  # forward-mode AD: the transform is linear, its JVP is itself
        if out is not None:
            raise RuntimeError("fwht(..., out=...) does not support forward-mode AD (x is a dual "
                               "tensor); call fwht(x) without out= instead")
        primal = fwAD.unpack_dual(x).primal
        kw = dict(n=n, dim=dim, out_features=out_features, scale=s, backend=backend)
        return fwAD.make_dual(fwht(primal, **kw), fwht(tangent, **kw))
    chosen = _backends.select(x, n, backend)
    last = dim == x.dim() - 1
    xt = x if last else x.movedim(dim, -1)
    if out is None:
        op = _functional(chosen.name)
        if _below_autograd(xt):
            with torch._C._AutoDispatchBelowAutograd():
                y = op(xt, n, out_features, s)
        else:
            y = op(xt, n, out_features, s)
        return y if last else y.movedim(-1, dim)
    shape = list(x.shape)
    shape[dim] = out_features
    _check_out(out, x, tuple(shape))
    _run_out(chosen.name, xt, n, out_features, s, out if last else out.movedim(dim, -1))
    return out


def fwht_(x: torch.Tensor, n: Optional[int] = None, dim: int = -1, norm: Optional[str] = None, *,
          scale: Optional[float] = None, backend: Optional[str] = None,
          base: Optional[torch.Tensor] = None) -> torch.Tensor:
    """In-place transform: ``x <- s * H_n x`` along ``dim``; needs ``x.shape[dim] == n`` (a power
    of two, or ``K * 2^k`` / ``base`` as in :func:`fwht`: then computed out of place and copied
    back). Returns ``x``. Same ``norm`` / ``scale`` / ``backend`` as :func:`fwht`.

    Under autograd it follows PyTorch's in-place rules: a leaf that requires grad is refused;
    a non-leaf is recorded (as ``x.copy_(fwht(x))``) so gradients stay correct.
    """
    _check_tensor(x, "x")
    dim = _canonical_dim(dim, x.dim())
    d_in = x.shape[dim]
    if base is not None or (not reference.is_power_of_two(d_in if n is None else n) and
                            bases.is_supported(d_in if n is None else n)):
        return kron.fwht_kron_inplace(x, n, dim, norm, scale=scale, backend=backend, base=base)
    if n is None:
        n = d_in
    n = _check_int(n, "n")
    if n != d_in or not reference.is_power_of_two(n):
        raise ValueError(f"fwht_ transforms in place, so x.shape[dim]={d_in} must equal n and be a "
                         f"power of two (got n={n}); use fwht(x, n=...) to pad")
    s = _resolve_scale(norm, scale, n)
    if _forward_tangent(x) is not None:
        raise RuntimeError("fwht_ does not support forward-mode AD (x is a dual tensor); use "
                           "fwht(x) instead")
    chosen = _backends.select(x, n, backend)
    if torch.is_grad_enabled() and x.requires_grad:
        if x.is_leaf:
            raise RuntimeError("fwht_: x is a leaf tensor that requires grad; PyTorch forbids "
                               "in-place operations on it (use fwht(x) or torch.no_grad())")
        return x.copy_(fwht(x, n, dim, scale=s, backend=chosen.name))
    if x.numel() == 0:
        return x
    xt = x if dim == x.dim() - 1 else x.movedim(dim, -1)
    _run_inplace(chosen.name, xt, s)
    return x


def hadamard_transform(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Drop-in for ``fast_hadamard_transform.hadamard_transform``.

    Transforms the last dimension: pads ``x`` of shape ``(..., d)`` to the next power of two
    ``n``, multiplies by ``H_n`` and returns the first ``d`` outputs times ``scale``. Output shape
    equals input shape. Differentiable.
    """
    _check_tensor(x, "x")
    d = x.shape[-1]
    if d == 0:
        return x.clone()
    return fwht(x, scale=scale, out_features=d)
