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

__all__ = ["zero_relu", "ZeroReLU", "channel_hadamard", "AugSkipShortcut", "SHORTCUTS"]

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


def channel_hadamard(in_channels: int, out_channels: int) -> HadamardLinear:
    """The fixed ``s * I* H_N I*`` over the channel dim of NCHW input, ``N`` the next power of two
    of ``max(in, out)``, ``s = N^-1/2``: for ``in == out == N`` the orthonormal Hadamard transform
    (the authors' ``hadamard(C) / 2^(log2(C)/2)``); for ``in < out`` the zero-padding of the input
    channels followed by it (the stem's fixed path). No parameters.

    On a ``torch.channels_last`` tensor the channels of each pixel are contiguous and the transform
    runs on contiguous rows (the fast path); on a contiguous NCHW tensor the channels are strided by
    ``H * W`` and :func:`zerofwht.fwht` first gathers them into rows (a transposing copy).
    """
    return HadamardLinear(in_channels, out_channels, bias=False, dim=1)


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
        self.transform: Optional[HadamardLinear] = (
            channel_hadamard(out_channels, out_channels) if kind == "hadamard" else None)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        return y if self.transform is None else self.transform(y)
