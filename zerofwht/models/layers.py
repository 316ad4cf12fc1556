"""Building blocks of ZerO's AugSkip residual networks.

* :func:`zero_relu` / :class:`ZeroReLU`: ``max(x, 0)`` whose gradient is 1 where ``x == 0``.
  At ZerO initialization most pre-activations are exactly zero (zero convolutions feeding skips),
  and ``torch.relu``'s gradient there is 0: the branches would never start learning.
* :func:`channel_hadamard`: the fixed normalized Hadamard transform over the channels of an
  ``(N, C, H, W)`` tensor (a :class:`zerofwht.nn.HadamardLinear` with ``dim=1``), with the same
  numbers as the ZerO authors' dense ``C x C`` product at every pixel, in O(C log C) per pixel.
* :class:`AugSkipShortcut`: the shortcut of a downsampling block: a trainable strided 1x1
  convolution followed by that fixed transform (or, in the paper's text variant, the convolution
  alone, initialized to ``c * H * I*``).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from ..nn import HadamardLinear
from ..ops import fwht
from ..reference import next_power_of_two

__all__ = ["zero_relu", "ZeroReLU", "ChannelHadamard", "channel_hadamard", "AugSkipShortcut", "SHORTCUTS"]

SHORTCUTS = ("hadamard", "dense_init")


def zero_relu(x: Tensor) -> Tensor:
    """``max(x, 0)`` with gradient 1 at ``x == 0`` (0 below), as in the ZerO authors' code.

    Written with ``torch.where`` rather than a custom autograd function so that
    ``torch.compile(fullgraph=True)`` traces and fuses it: ``where(x < 0, 0, x)`` routes the
    gradient to ``x`` wherever ``x < 0`` is false, i.e. for ``x >= 0``. NaN propagates (NaN < 0 is
    false), like ``torch.relu``.
    """
    return torch.where(x < 0, 0.0, x)


class ZeroReLU(nn.Module):
    """Module form of :func:`zero_relu`."""

    def forward(self, x: Tensor) -> Tensor:
        return zero_relu(x)


class ChannelHadamard(HadamardLinear):
    r"""The fixed ``s * I* H_N I*`` over the channels (dim 1) of an ``(N, C, H, W)`` tensor: a
    :class:`zerofwht.nn.HadamardLinear` (``bias=False, dim=1``, default scale ``N^-1/2``) with a
    faster path for contiguous NCHW input.

    ``HadamardLinear(dim=1)`` transforms rows along dim 1; in a contiguous NCHW tensor those rows
    are strided by ``H * W``, so :func:`zerofwht.fwht` first gathers them with a transposing copy,
    which costs more than the transform. Here, for contiguous-row NCHW input (fp32 / fp64, eager
    mode), the transform over channels is done by two transforms over contiguous rows, with
    ``P = 2^ceil(log2(H * W))``::

        Z = (I_C (x) H_P) pad_P(X)       # each channel's H*W pixels, zero-padded to P
        Y = (H_N (x) H_P) Z / P           # one row of length C*P per image, padded to N*P
          = (H_N H_I* (x) I_P) pad_P(X)   # since H_P H_P = P I

    and the first ``H * W`` of each output row of length ``P`` are returned, as a view (row
    stride ``P``). Both passes read and write contiguous memory, their outputs come from the
    transform's reusable output buffers, and the backward pass is the same with in / out
    swapped. Channels-last input (channel stride 1) already has contiguous channel rows and goes
    straight to :func:`zerofwht.fwht`; so do half types (their intermediate rounding would grow
    with the extra ``H_P`` passes) and everything under ``torch.compile`` (which sees the plain op).
    """

    def __init__(self, in_channels: int, out_channels: int, **kwargs) -> None:
        super().__init__(in_channels, out_channels, bias=False, dim=1, **kwargs)

    def forward(self, input: Tensor) -> Tensor:
        if (isinstance(input, Tensor) and input.dim() == 4 and _flattened_path(input)
                and input.shape[1] == self.in_features and self.backend is None
                and self.output_scale is None and not torch.compiler.is_compiling()):
            return _ChannelFWHT.apply(input, self.n, self.out_features, self.scale)
        return super().forward(input)


def _flattened_path(x: Tensor) -> bool:
    b, c, h, w = x.shape
    return (x.dtype in (torch.float32, torch.float64) and h * w > 1 and x.stride(1) != 1
            and x.numel() > 0)


def _channel_transform(x: Tensor, n: int, out_channels: int, scale: float) -> Tensor:
    """``scale * (H_n pad_n(x))[:out_channels]`` over dim 1 of ``x`` (N, C, H, W)."""
    if not _flattened_path(x):
        return fwht(x, n, 1, out_features=out_channels, scale=scale)
    b, c, h, w = x.shape
    hw = h * w
    p = next_power_of_two(hw)
    if x.stride(3) != 1 or (h > 1 and x.stride(2) != w):
        x = x.contiguous()
    z = fwht(x.reshape(b, c, hw), p)                                        # (b, c, p)
    y = fwht(z.view(b, c * p), n * p, out_features=out_channels * p, scale=scale / p)
    return y.view(b, out_channels, p)[:, :, :hw].view(b, out_channels, h, w)


class _ChannelFWHT(torch.autograd.Function):
    # The adjoint of s * I*(out x n) H_n I*(n x in) over channels is the same with in and out
    # swapped (H_n is symmetric): the backward pass runs the same two-pass transform.
    @staticmethod
    def forward(ctx, x, n, out_channels, scale):
        ctx.cfg = (n, x.shape[1], scale)
        return _channel_transform(x, n, out_channels, scale)

    @staticmethod
    def backward(ctx, grad):
        n, in_channels, scale = ctx.cfg
        return _channel_transform(grad, n, in_channels, scale), None, None, None


def channel_hadamard(in_channels: int, out_channels: int) -> ChannelHadamard:
    """The fixed ``s * I* H_N I*`` over the channel dim of NCHW input, ``N`` the next power of two
    of ``max(in, out)``, ``s = N^-1/2``: for ``in == out == N`` the orthonormal Hadamard transform
    (the authors' ``hadamard(C) / 2^(log2(C)/2)``); for ``in < out`` the zero-padding of the input
    channels followed by it (the stem's fixed path). No parameters. See :class:`ChannelHadamard`.
    """
    return ChannelHadamard(in_channels, out_channels)


class AugSkipShortcut(nn.Module):
    """Shortcut of a downsampling block: ``transform(conv1x1_stride(x))``.

    ``kind="hadamard"``: trainable strided 1x1 convolution (initialized to the partial identity
    ``I*`` by the model) followed by the fixed :func:`channel_hadamard` over the output channels.
    ``kind="dense_init"``: the convolution alone (initialized to ``c * H * I*`` by the model's ZerO
    init), no fixed transform. At ZerO initialization the two compute the same function when
    ``out_channels > in_channels``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, kind: str = "hadamard",
                 device=None, dtype=None) -> None:
        super().__init__()
        if kind not in SHORTCUTS:
            raise ValueError(f"shortcut must be one of {SHORTCUTS}, got shortcut={kind!r}")
        self.kind = kind
        self.conv = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False,
                              device=device, dtype=dtype)
        self.conv.augskip_role = "shortcut"
        self.transform: Optional[ChannelHadamard] = (
            channel_hadamard(out_channels, out_channels) if kind == "hadamard" else None)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        return y if self.transform is None else self.transform(y)
