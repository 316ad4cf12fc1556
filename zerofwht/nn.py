r"""Modules built on the fast Walsh-Hadamard transform.

:class:`HadamardLinear` is a drop-in for ``torch.nn.Linear`` whose weight is a fixed, scaled block
of the Sylvester Hadamard matrix: ZerO's "dimension-increasing" layer, a Hadamard rotation, or a
1x1 Hadamard convolution (``dim=1`` on NCHW input). It stores no weight matrix and costs
O(N log N) per row instead of O(in * out), through :func:`zerofwht.fwht`. It follows the
conventions of ``torch/nn/modules/linear.py``: factory kwargs, :meth:`reset_parameters`,
:meth:`extra_repr`.
"""
from __future__ import annotations

import math
import numbers
from typing import Optional, Union

import torch
from torch import Tensor, nn

from . import _backends, reference
from .ops import fwht

__all__ = ["HadamardLinear"]


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"HadamardLinear: {name} must be an int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"HadamardLinear: {name} must be >= 1, got {name}={value}")
    return int(value)


def _resolve_scale(scale, out_features: int, in_features: int) -> float:
    if isinstance(scale, str):
        if scale not in ("code", "paper"):
            raise ValueError(f'HadamardLinear: scale must be None, "code", "paper" or a finite real '
                             f"number, got scale={scale!r}")
    elif scale is not None:
        if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
            raise TypeError(f"HadamardLinear: scale must be None, \"code\", \"paper\" or a finite "
                            f"real number, got {type(scale).__name__} {scale!r}")
        if not math.isfinite(float(scale)):
            raise ValueError(f"HadamardLinear: scale must be finite, got scale={scale!r}")
    return reference.hadamard_scale(out_features, in_features, scale)


def _transform_size(n, in_features: int, out_features: int) -> int:
    from . import bases
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"HadamardLinear: n must be an int, got {type(n).__name__} {n!r}")
    n = int(n)
    if bases.split(n) is None:
        raise ValueError(f"HadamardLinear: {bases.unsupported_message(n)}")
    if n < max(in_features, out_features):
        raise ValueError(f"HadamardLinear: n={n} must be >= max(in_features, out_features) = "
                         f"{max(in_features, out_features)}")
    return n


def _scale_for_n(scale, n: int) -> float:
    if scale is None or scale == "code":
        return n ** -0.5
    if scale == "paper":
        return (n / 2) ** -0.5
    return float(scale)


class HadamardLinear(nn.Module):
    r"""Applies a fixed scaled Hadamard block to the input: :math:`y = s\,I^*_{out\times N}\,H_N\,
    I^*_{N\times in}\,x + b`, in O(N log N) per row.

    ``N = 2^ceil(log2(max(in_features, out_features)))`` and ``H_N`` is the Sylvester Hadamard
    matrix (``scipy.linalg.hadamard(N)``, entries +-1). The input is zero-padded to ``N`` (implicitly,
    no padded copy), transformed, and the first ``out_features`` outputs are kept. This is ZerO's
    initial dimension-increasing layer (Zhao et al. 2021, Algorithm 1) kept fixed, or, with
    ``in_features == out_features`` and the default scale, an orthogonal rotation. No weight matrix
    is stored; the only parameters are the optional bias and the optional per-output scale.

    ``dim`` selects the feature dimension, so ``HadamardLinear(C_in, C_out, dim=1)`` on an
    ``(N, C, H, W)`` tensor is a 1x1 Hadamard convolution.

    Args:
        in_features: size of each input sample along ``dim``.
        out_features: size of each output sample along ``dim``.
        bias: if ``True`` (default), adds a learnable bias, initialized to **zero** (the ZerO
            convention, unlike ``nn.Linear``'s random bias).
        scale: the constant ``s``. ``None`` or ``"code"`` (default): ``N^-1/2`` (the ZerO
            authors' code; with ``in == out`` the layer is then orthogonal); ``"paper"``: the ZerO
            paper's pseudo-code constant ``2^-(m-1)/2`` with ``N = 2^m`` (sqrt(2) larger); or any
            finite real number.
        dim: the feature dimension of the input (default -1, as ``nn.Linear``).
        learnable_scale: if ``True``, adds a learnable per-output scale vector ``output_scale`` of
            shape ``(out_features,)`` initialized to ``s``, applied after the transform (the
            transform then runs with scale 1). Default ``False``.
        device, dtype: factory kwargs of the parameters (bias, output_scale).
        backend: FWHT backend passed to :func:`zerofwht.fwht` (``"cpp"``, ``"cuda"``,
            ``"triton"``, ``"torch"``, or ``None``/``"auto"``, the default).
        n: the transform size ``N >= max(in_features, out_features)`` instead of the next power
            of two: a power of two or ``K * 2^k`` with a built-in Hadamard order K
            (``zerofwht.bases``; ``H_N = H_K kron H_{2^k}``, e.g. ``n=768`` for a 768-wide
            model: exactly orthogonal with ``in == out == n``). The default scale is then
            ``N^-1/2`` (``"paper"``: ``(N/2)^-1/2``).

    Shape:
        - Input: :math:`(*, H_{in}, *)` where :math:`H_{in} = \text{in\_features}` sits at ``dim``
          and :math:`*` means any number of dimensions (including none).
        - Output: the input shape with ``dim`` resized to :math:`H_{out} = \text{out\_features}`.

    Attributes:
        n: the transform length ``N`` (a power of two).
        scale: the constant ``s`` (a float).
        bias: the learnable bias of shape ``(out_features,)``, or ``None``.
        output_scale: the learnable per-output scale of shape ``(out_features,)`` (only with
            ``learnable_scale=True``), else ``None``.

    Equivalent dense formula (``to_linear()`` builds exactly this ``nn.Linear``)::

        H = torch.tensor(scipy.linalg.hadamard(N))[:out_features, :in_features]
        weight = s * H                                   # (out_features, in_features)
        if learnable_scale: weight = output_scale[:, None] * H
        y = (x.movedim(dim, -1) @ weight.T + bias).movedim(-1, dim)

    Examples::

        >>> m = zerofwht.nn.HadamardLinear(64, 256)        # N = 256, s = 1/16
        >>> m(torch.randn(32, 64)).shape
        torch.Size([32, 256])
        >>> conv = zerofwht.nn.HadamardLinear(3, 16, dim=1) # 1x1 Hadamard conv on NCHW
        >>> conv(torch.randn(8, 3, 32, 32)).shape
        torch.Size([8, 16, 32, 32])
    """

    __constants__ = ["in_features", "out_features", "n", "scale", "dim", "learnable_scale"]
    in_features: int
    out_features: int
    n: int
    scale: float
    dim: int

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 scale: Union[None, str, float] = None, dim: int = -1,
                 learnable_scale: bool = False, device=None, dtype=None,
                 backend: Optional[str] = None, n: Optional[int] = None) -> None:
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__()
        self.in_features = _positive_int(in_features, "in_features")
        self.out_features = _positive_int(out_features, "out_features")
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
            raise TypeError(f"HadamardLinear: dim must be an int, got {type(dim).__name__} {dim!r}")
        if not isinstance(bias, bool):
            raise TypeError(f"HadamardLinear: bias must be a bool, got {type(bias).__name__} {bias!r}")
        if not isinstance(learnable_scale, bool):
            raise TypeError(f"HadamardLinear: learnable_scale must be a bool, got "
                            f"{type(learnable_scale).__name__} {learnable_scale!r}")
        if dtype is not None and dtype not in _backends.FLOAT_DTYPES:
            raise TypeError(f"HadamardLinear: dtype must be a floating dtype (float16, bfloat16, "
                            f"float32 or float64), got dtype={dtype}")
        if backend is not None:
            try:
                _backends.canonical_name(backend)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"HadamardLinear: {exc}") from None
        self.dim = int(dim)
        if n is None:
            self.n = reference.next_power_of_two(max(self.in_features, self.out_features))
            self.scale = _resolve_scale(scale, self.out_features, self.in_features)
        else:  # an exact K * 2^k (or power-of-two) transform size: H_n = H_K kron H_{2^k}
            self.n = _transform_size(n, self.in_features, self.out_features)
            _resolve_scale(scale, self.out_features, self.in_features)  # checks the argument
            self.scale = _scale_for_n(scale, self.n)
        self.learnable_scale = learnable_scale
        self.backend = backend
        if learnable_scale:
            self.output_scale = nn.Parameter(torch.empty(self.out_features, **factory_kwargs))
        else:
            self.register_parameter("output_scale", None)
        if bias:
            self.bias = nn.Parameter(torch.empty(self.out_features, **factory_kwargs))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Bias to zero (the ZerO convention), ``output_scale`` (if any) to ``scale``. No-op on
        meta tensors; after ``to_empty(device=...)`` call it to materialize the values."""
        with torch.no_grad():
            if self.output_scale is not None:
                self.output_scale.fill_(self.scale)
            if self.bias is not None:
                self.bias.zero_()

    def _along_dim(self, v: Tensor, ndim: int) -> Tensor:
        # A (out_features,) vector shaped to broadcast along the feature dimension.
        d = self.dim % ndim
        if d == ndim - 1:
            return v
        return v.view((-1,) + (1,) * (ndim - 1 - d))

    def forward(self, input: Tensor) -> Tensor:
        if not isinstance(input, Tensor):
            raise TypeError(f"HadamardLinear: input must be a torch.Tensor, got {type(input).__name__}")
        if input.dim() == 0:
            raise ValueError("HadamardLinear: input must have at least 1 dimension, got a 0-d tensor")
        if not -input.dim() <= self.dim < input.dim():
            raise IndexError(f"HadamardLinear: dim={self.dim} is out of range for an input with "
                             f"{input.dim()} dimension(s)")
        if input.shape[self.dim] != self.in_features:
            raise ValueError(f"HadamardLinear: input.shape[{self.dim}]={input.shape[self.dim]} does "
                             f"not match in_features={self.in_features} (input shape "
                             f"{tuple(input.shape)})")
        s = 1.0 if self.output_scale is not None else self.scale
        y = fwht(input, self.n, self.dim, out_features=self.out_features, scale=s,
                 backend=self.backend)
        if self.output_scale is not None:
            y = y * self._along_dim(self.output_scale, y.dim())
        if self.bias is not None:
            b = self._along_dim(self.bias, y.dim())
            # y is this call's own new tensor (never the input or a view of it): adding in place
            # saves a second output-sized allocation, which for large outputs is fresh memory
            # page-faulted in on every call (CPU, one thread, (8192, 768) -> 3072: 68 ms per
            # forward with y + b, 13 ms with the add in place; see the README).
            # Only when y and b have one dtype (a promoting sum, bf16 input and fp32 bias,
            # allocates) and y is not a view (autograd forbids writing into a view that a custom
            # op returned, e.g. the torch backend's truncated output, or a movedim of one); not
            # under torch.compile, whose generated code fuses the add anyway.
            in_place = not torch.compiler.is_compiling() and b.dtype == y.dtype and not y._is_view()
            y = y.add_(b) if in_place else y + b
        return y

    def dense_weight(self, *, device=None, dtype=None) -> Tensor:
        """The ``(out_features, in_features)`` matrix this layer multiplies by (detached):
        ``s * H_N[:out, :in]``, rows times ``output_scale`` when the scale is learnable. Device /
        dtype default to the parameters' (or the torch defaults when the layer has none)."""
        ref = self.output_scale if self.output_scale is not None else self.bias
        if device is None:
            device = ref.device if ref is not None else None
        if dtype is None:
            dtype = ref.dtype if ref is not None else torch.get_default_dtype()
        if self.n != reference.next_power_of_two(max(self.in_features, self.out_features)):
            h = reference.hadamard_matrix(self.n, dtype=torch.float64, device=device)
            h = h[:self.out_features, :self.in_features]
            if self.output_scale is not None:
                w = h * self.output_scale.detach().to(device=h.device, dtype=torch.float64)[:, None]
            else:
                w = h * self.scale
        elif self.output_scale is not None:
            h = reference.hadamard_block(self.out_features, self.in_features, 1.0, device=device)
            w = h * self.output_scale.detach().to(device=h.device, dtype=torch.float64)[:, None]
        else:
            w = reference.hadamard_block(self.out_features, self.in_features, self.scale,
                                         device=device)
        return w.to(dtype)

    def to_linear(self, *, device=None, dtype=None) -> nn.Linear:
        """The equal dense ``nn.Linear`` (weight from :meth:`dense_weight`, bias copied): O(in * out)
        memory, for checks and export. Device / dtype as in :meth:`dense_weight`."""
        w = self.dense_weight(device=device, dtype=dtype)
        lin = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                        device=w.device, dtype=w.dtype)
        with torch.no_grad():
            lin.weight.copy_(w)
            if self.bias is not None:
                lin.bias.copy_(self.bias.detach())
        return lin

    def extra_repr(self) -> str:
        s = (f"in_features={self.in_features}, out_features={self.out_features}, n={self.n}, "
             f"scale={self.scale:.6g}, bias={self.bias is not None}")
        if self.dim != -1:
            s += f", dim={self.dim}"
        if self.learnable_scale:
            s += ", learnable_scale=True"
        if self.backend is not None:
            s += f", backend={self.backend!r}"
        return s
