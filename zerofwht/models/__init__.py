"""Models built on the fast Walsh-Hadamard transform: ZerO's AugSkip ResNets.

::

    from zerofwht.models import augskip_resnet18, augskip_resnet50
    net = augskip_resnet18(num_classes=10, width=64, init="zero")          # CIFAR-style
    with torch.device("meta"):                                             # large models:
        big = augskip_resnet50()                                           # no memory, no init
    big.to_empty(device="cpu"); big.reset_parameters()                     # materialize + init
"""
from .augskip import (INITS, AugSkipBasicBlock, AugSkipBottleneck, AugSkipResNet,
                      augskip_resnet18, augskip_resnet50)
from .layers import (SHORTCUTS, AugSkipShortcut, ChannelHadamard, ZeroReLU, channel_hadamard,
                     zero_relu)

__all__ = ["augskip_resnet18", "augskip_resnet50", "AugSkipResNet", "AugSkipBasicBlock",
           "AugSkipBottleneck", "AugSkipShortcut", "ChannelHadamard", "ZeroReLU", "zero_relu", "channel_hadamard",
           "INITS", "SHORTCUTS"]
