r"""ZerO's AugSkip residual networks (Zhao et al. 2021, "ZerO Initialization", Figures 4-5).

Pre-activation ResNets in which every place that increases the channel count goes through columns
of a Hadamard matrix, ``H * I*``, so that a network whose every trainable convolution starts at
zero (or at a partial identity) still passes its input on without losing information:

* stem: trainable convolution (zero) **plus** a fixed path that zero-pads the input channels to
  ``width`` and applies the normalized Hadamard transform over channels;
* downsampling shortcut: trainable strided 1x1 convolution (``I*``) followed by a fixed normalized
  Hadamard transform over its output channels (``shortcut="hadamard"``, O(C log C) per pixel), or
  the 1x1 convolution alone initialized to ``c * H * I*`` (``shortcut="dense_init"``);
* basic block: each 3x3 convolution (zero) has its own skip ("AugSkip");
* bottleneck: 1x1 (``I*``), 3x3 (zero) with a skip around it (subsampled with the block's stride),
  1x1 (zero), and a skip around the block;
* with batch normalization: BN scale 1, bias 0; without: Fixup-style learnable scalar biases
  before and after each convolution and a scalar multiplier on the branch's last one;
* classifier weight and bias zero; the ReLU passes the gradient where its input is exactly 0.

At ZerO initialization the network's output is exactly zero and its features are the stem's
Hadamard transform of the padded input carried through identities, with one more Hadamard
transform at each downsampling shortcut.
"""
from __future__ import annotations

import numbers
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..init import idic_, idiz_, idizc_, partial_identity_, zero_init_
from .layers import SHORTCUTS, AugSkipShortcut, channel_hadamard, zero_relu

__all__ = ["AugSkipBasicBlock", "AugSkipBottleneck", "AugSkipResNet", "augskip_resnet18",
           "augskip_resnet50", "INITS"]

INITS = ("zero", "kaiming", "xavier", "idinit")


def _scalar(value: float, fk: dict) -> nn.Parameter:
    return nn.Parameter(torch.full((1,), value, **fk))


def _reset_scalars(block: nn.Module) -> None:
    with torch.no_grad():
        for name, p in block.named_parameters(recurse=False):
            p.fill_(1.0 if name == "scale" else 0.0)


def _conv(cin: int, cout: int, k: int, stride: int, role: str, fk: dict) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False, **fk)
    # The role decides the initializer (see AugSkipResNet.reset_parameters): "zero" convolutions
    # end a branch that has its own skip, "identity" ones start a bottleneck branch.
    conv.augskip_role = role
    return conv


class AugSkipBasicBlock(nn.Module):
    """Pre-activation basic block with a skip around each 3x3 convolution.

    With BN: ``u = bn1(relu(x)); h = conv1(u) + (shortcut(u) or x); y = conv2(bn2(relu(h))) + h``.
    Without BN: ``u = relu(x) + a1; h = conv1(u) + b1 + (shortcut(u) or x);
    y = scale * conv2(relu(h) + a2) + b2 + h``.
    """

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int, batchnorm: bool, shortcut: str,
                 fk: dict) -> None:
        super().__init__()
        self.batchnorm = batchnorm
        self.conv1 = _conv(cin, planes, 3, stride, "zero", fk)
        self.conv2 = _conv(planes, planes, 3, 1, "zero", fk)
        if batchnorm:
            self.bn1 = nn.BatchNorm2d(cin, **fk)
            self.bn2 = nn.BatchNorm2d(planes, **fk)
        else:
            self.bias1a, self.bias1b = _scalar(0.0, fk), _scalar(0.0, fk)
            self.bias2a, self.bias2b = _scalar(0.0, fk), _scalar(0.0, fk)
            self.scale = _scalar(1.0, fk)
        self.shortcut = (AugSkipShortcut(cin, planes, stride, shortcut, **fk)
                         if stride != 1 or cin != planes else None)

    def reset_scalars(self) -> None:
        """Fixup-style scalars (no-BN model): biases 0, the multiplier 1."""
        _reset_scalars(self)

    def forward(self, x: Tensor) -> Tensor:
        u = self.bn1(zero_relu(x)) if self.batchnorm else zero_relu(x) + self.bias1a
        skip = x if self.shortcut is None else self.shortcut(u)
        h = self.conv1(u)
        if not self.batchnorm:
            h = h + self.bias1b
        h = h + skip
        if self.batchnorm:
            return self.conv2(self.bn2(zero_relu(h))) + h
        return self.conv2(zero_relu(h) + self.bias2a) * self.scale + self.bias2b + h


class AugSkipBottleneck(nn.Module):
    """Pre-activation bottleneck: 1x1 (``I*``), 3x3 (zero, strided) with its own skip (the 1x1's
    output subsampled by the stride), 1x1 (zero, 4x wider), and a skip around the block.

    With BN: ``u = bn1(relu(x)); a = conv1(u); b = conv2(bn2(relu(a))) + a[::s, ::s];
    y = conv3(bn3(relu(b))) + (shortcut(u) or x)``. Without BN (the authors' Fixup-style
    variant): scalar biases around each convolution and a multiplier on ``conv3``.
    """

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, batchnorm: bool, shortcut: str,
                 fk: dict) -> None:
        super().__init__()
        cout = planes * self.expansion
        self.batchnorm = batchnorm
        self.stride = stride
        self.conv1 = _conv(cin, planes, 1, 1, "identity", fk)
        self.conv2 = _conv(planes, planes, 3, stride, "zero", fk)
        self.conv3 = _conv(planes, cout, 1, 1, "zero", fk)
        if batchnorm:
            self.bn1 = nn.BatchNorm2d(cin, **fk)
            self.bn2 = nn.BatchNorm2d(planes, **fk)
            self.bn3 = nn.BatchNorm2d(planes, **fk)
        else:
            self.bias1a, self.bias1b = _scalar(0.0, fk), _scalar(0.0, fk)
            self.bias2a, self.bias2b = _scalar(0.0, fk), _scalar(0.0, fk)
            self.bias3a, self.bias3b = _scalar(0.0, fk), _scalar(0.0, fk)
            self.scale = _scalar(1.0, fk)
        self.shortcut = (AugSkipShortcut(cin, cout, stride, shortcut, **fk)
                         if stride != 1 or cin != cout else None)

    def reset_scalars(self) -> None:
        """Fixup-style scalars (no-BN model): biases 0, the multiplier 1."""
        _reset_scalars(self)

    def forward(self, x: Tensor) -> Tensor:
        bn = self.batchnorm
        u = self.bn1(zero_relu(x)) if bn else zero_relu(x) + self.bias1a
        a = self.conv1(u)
        if not bn:
            a = a + self.bias1b
        # The 3x3's own skip: a kernel-1 average pool with the stride is a subsampling, the same
        # grid the strided 3x3 (padding 1) produces.
        a_skip = a if self.stride == 1 else a[:, :, ::self.stride, ::self.stride]
        if bn:
            b = self.conv2(self.bn2(zero_relu(a))) + a_skip
            y = self.conv3(self.bn3(zero_relu(b)))
        else:
            b = self.conv2(zero_relu(a) + self.bias2a) + self.bias2b + a_skip
            y = self.conv3(zero_relu(b) + self.bias3a) * self.scale + self.bias3b
        return y + (x if self.shortcut is None else self.shortcut(u))


def _check_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {name}={value}")
    return int(value)


class AugSkipResNet(nn.Module):
    r"""AugSkip pre-activation ResNet; use :func:`augskip_resnet18` / :func:`augskip_resnet50`.

    Args:
        block: :class:`AugSkipBasicBlock` or :class:`AugSkipBottleneck`.
        layers: blocks per stage (four stages of widths ``width * (1, 2, 4, 8)``).
        num_classes, in_channels, width: classifier outputs, input channels, stem width.
        stem: ``"cifar"`` (3x3 stride 1) or ``"imagenet"`` (7x7 stride 2, then a 3x3 stride-2 max
            pool; the fixed path sees the input max-pooled to the same grid, as in the authors'
            code).
        init: ``"zero"``, ``"kaiming"``, ``"xavier"`` or ``"idinit"`` (see
            :meth:`reset_parameters`).
        batchnorm: BN layers (scale 1, bias 0) or the Fixup-style scalars.
        shortcut: ``"hadamard"`` or ``"dense_init"`` (see :class:`AugSkipShortcut`).
        device, dtype: factory kwargs. On ``device="meta"`` (or under ``torch.device("meta")``)
            nothing is initialized: call ``model.to_empty(device=...)`` then
            ``model.reset_parameters()``.
    """

    def __init__(self, block, layers: Sequence[int], num_classes: int = 10, in_channels: int = 3,
                 width: int = 64, stem: str = "cifar", init: str = "zero", batchnorm: bool = True,
                 shortcut: str = "hadamard", *, device=None, dtype=None) -> None:
        super().__init__()
        num_classes = _check_int(num_classes, "num_classes")
        in_channels = _check_int(in_channels, "in_channels")
        width = _check_int(width, "width")
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got init={init!r}")
        if shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut must be one of {SHORTCUTS}, got shortcut={shortcut!r}")
        if not isinstance(batchnorm, bool):
            raise TypeError(f"batchnorm must be a bool, got {type(batchnorm).__name__} {batchnorm!r}")
        if stem not in ("cifar", "imagenet"):
            raise ValueError(f'stem must be "cifar" or "imagenet", got stem={stem!r}')
        fk = {"device": device, "dtype": dtype}
        self.init, self.batchnorm, self.shortcut_kind, self.stem = init, batchnorm, shortcut, stem
        self.num_classes, self.in_channels, self.width = num_classes, in_channels, width

        k, s = (3, 1) if stem == "cifar" else (7, 2)
        self.stem_conv = _conv(in_channels, width, k, s, "stem", fk)
        self.stem_fixed = channel_hadamard(in_channels, width)
        if batchnorm:
            self.stem_bn = nn.BatchNorm2d(width, **fk)
        else:
            self.stem_bias = _scalar(0.0, fk)
        cin = width
        for i, (planes, n) in enumerate(zip((width, 2 * width, 4 * width, 8 * width), layers)):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(block(cin, planes, stride, batchnorm, shortcut, fk))
                cin = planes * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.num_features = cin
        if batchnorm:
            self.final_bn = nn.BatchNorm2d(cin, **fk)
        else:
            self.final_bias = _scalar(0.0, fk)
        self.fc = nn.Linear(cin, num_classes, **fk)
        if not any(p.is_meta for p in self.parameters()):
            self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self, generator: Optional[torch.Generator] = None, *,
                         idinit_eps: float = 1e-6) -> None:
        """(Re)apply ``self.init`` to every trainable tensor (and reset BN running statistics).

        * ``"zero"`` (ZerO): stem conv and every branch-ending conv 0, bottleneck first 1x1 ``I*``,
          shortcut conv ``I*`` (``"hadamard"``) or :func:`zerofwht.init.zero_init_`
          (``"dense_init"``: ``c * H * I*``), classifier weight and bias 0. Deterministic.
        * ``"kaiming"`` / ``"xavier"``: ``kaiming_normal_`` (fan-in, ReLU gain) / ``xavier_normal_``
          on every trainable conv and the classifier weight (drawn from ``generator``); the fixed
          Hadamard paths stay. The paper's baselines on the same architecture.
        * ``"idinit"``: IDInit: :func:`~zerofwht.init.idizc_` (``idinit_eps``) on every conv that
          ends a branch with a skip (stem, 3x3, bottleneck last 1x1),
          :func:`~zerofwht.init.idic_` (tau 1) on the bottleneck first 1x1 and the shortcut conv,
          :func:`~zerofwht.init.idiz_` on the classifier. Deterministic.

        Always: BN scale 1, bias 0, running stats reset; Fixup biases 0, multipliers 1; classifier
        bias 0.
        """
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()
            elif isinstance(m, (AugSkipBasicBlock, AugSkipBottleneck)):
                m.reset_scalars()
            elif isinstance(m, nn.Conv2d):
                self._init_conv(m, generator, idinit_eps)
        if not self.batchnorm:
            self.stem_bias.zero_()
            self.final_bias.zero_()
        w = self.fc.weight
        if self.init == "zero":
            w.zero_()
        elif self.init == "kaiming":
            nn.init.kaiming_normal_(w, nonlinearity="relu", generator=generator)
        elif self.init == "xavier":
            nn.init.xavier_normal_(w, generator=generator)
        else:
            idiz_(w, idinit_eps)
        self.fc.bias.zero_()

    def _init_conv(self, conv: nn.Conv2d, generator, eps: float) -> None:
        w, role, init = conv.weight, conv.augskip_role, self.init
        if init == "kaiming":
            nn.init.kaiming_normal_(w, nonlinearity="relu", generator=generator)
        elif init == "xavier":
            nn.init.xavier_normal_(w, generator=generator)
        elif init == "zero":
            if role in ("stem", "zero"):
                w.zero_()
            elif role == "identity" or self.shortcut_kind == "hadamard":
                partial_identity_(w)
            else:  # dense_init shortcut: the paper's text variant, c * H * I* in the weight
                zero_init_(w)
        elif role in ("stem", "zero"):  # idinit: branch-ending layers
            idizc_(w, eps)
        else:
            idic_(w, 1.0)

    def forward_features(self, x: Tensor) -> Tensor:
        """The ``(N, num_features)`` features the classifier sees."""
        if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1] != self.in_channels:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"AugSkipResNet: input must be (N, {self.in_channels}, H, W), got {shape}")
        fixed_in = x if self.stem == "cifar" else F.max_pool2d(x, 3, 2, 1)
        h = self.stem_conv(x) + self.stem_fixed(fixed_in)
        if self.batchnorm:
            h = self.stem_bn(zero_relu(h))
        else:
            h = zero_relu(h + self.stem_bias)
        if self.stem == "imagenet":
            h = F.max_pool2d(h, 3, 2, 1)
        h = self.layer4(self.layer3(self.layer2(self.layer1(h))))
        h = self.final_bn(zero_relu(h)) if self.batchnorm else zero_relu(h) + self.final_bias
        return h.mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.forward_features(x))

    def extra_repr(self) -> str:
        return (f"stem={self.stem!r}, init={self.init!r}, batchnorm={self.batchnorm}, "
                f"shortcut={self.shortcut_kind!r}")


def augskip_resnet18(num_classes: int = 10, in_channels: int = 3, width: int = 64,
                     init: str = "zero", batchnorm: bool = True, shortcut: str = "hadamard", *,
                     device=None, dtype=None) -> AugSkipResNet:
    """AugSkip ResNet-18 (basic blocks 2-2-2-2, CIFAR stem: 3x3 stride 1, no max pool).

    Input ``(N, in_channels, H, W)``, output ``(N, num_classes)``; stage widths ``width * (1, 2,
    4, 8)``, spatial size halved at stages 2-4 (32x32 input: 32, 16, 8, 4). See
    :class:`AugSkipResNet` for the arguments.
    """
    return AugSkipResNet(AugSkipBasicBlock, (2, 2, 2, 2), num_classes, in_channels, width, "cifar",
                         init, batchnorm, shortcut, device=device, dtype=dtype)


def augskip_resnet50(num_classes: int = 1000, in_channels: int = 3, width: int = 64,
                     init: str = "zero", batchnorm: bool = True, shortcut: str = "hadamard", *,
                     device=None, dtype=None) -> AugSkipResNet:
    """AugSkip ResNet-50 (bottlenecks 3-4-6-3, ImageNet stem: 7x7 stride 2 and a 3x3 stride-2 max
    pool). Input ``(N, in_channels, H, W)`` (224x224: stages at 56, 28, 14, 7 with ``4 * width *
    (1, 2, 4, 8)`` channels), output ``(N, num_classes)``. See :class:`AugSkipResNet`.
    """
    return AugSkipResNet(AugSkipBottleneck, (3, 4, 6, 3), num_classes, in_channels, width,
                         "imagenet", init, batchnorm, shortcut, device=device, dtype=dtype)

