"""Convolutional building blocks: conv-BN-activation and the inverted residual (MBConv) of MobileNetV2/FBNet.

Sub-modules have stable names (``expand``, ``depthwise``, ``project``; inside them ``conv``, ``bn``, ``act``) because
later stages address them: BN folding and reparameterisation walk ``ConvBNAct`` modules, and grafting swaps the
``act`` of a block for an identity.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

ActFactory = Callable[[], nn.Module]


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to the nearest multiple of ``divisor`` without going below 90% of ``value``.

    This is the MobileNetV2 rule for width multipliers (Sandler et al. 2018), so scaled layouts stay hardware-friendly.
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm2d -> optional activation; padding keeps ``H_out = ceil(H_in / stride)``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: ActFactory | None = nn.ReLU,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)
        if act is not None:
            self.act = act()


class ChannelShuffle(nn.Module):
    """Interleave the channels of ``groups`` groups (ShuffleNet), so grouped 1x1 convs mix information."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # unflatten/flatten rather than reshape with x.shape, so torch.fx can trace it (reparameterize)
        return x.unflatten(1, (self.groups, -1)).transpose(1, 2).flatten(1, 2)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand -> kxk depthwise -> 1x1 project (+ identity when shapes match).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: depthwise kernel size (3, 5 or 7).
        expansion: ratio of hidden to input channels.
        stride: depthwise stride (1 or 2).
        groups: groups of the two 1x1 convs (FBNet's ``_g2`` ops); a channel shuffle follows the expand conv when > 1.
        act: activation factory (``nn.ReLU6`` for MobileNetV2, ``nn.ReLU`` for FBNet).
        expand_at_e1: keep the expand conv when ``expansion == 1`` (FBNet does; MobileNetV2 drops it).
        hidden_scale: multiplies the hidden channels (``in_channels * expansion``, then rounded to a multiple of 8):
            the per-layer channel configuration of LightNets++ (thesis Sec 4.3.5); needs the expand conv.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        expansion: int,
        stride: int = 1,
        groups: int = 1,
        act: ActFactory = nn.ReLU6,
        expand_at_e1: bool = False,
        hidden_scale: float = 1.0,
    ) -> None:
        super().__init__()
        has_expand = expansion != 1 or expand_at_e1
        if hidden_scale != 1.0 and not has_expand:
            raise ValueError("a block without an expand conv keeps its hidden channels (hidden_scale must be 1)")
        hidden = in_channels * expansion
        if hidden_scale != 1.0:
            hidden = make_divisible(hidden * hidden_scale)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.expansion, self.stride, self.groups = kernel_size, expansion, stride, groups
        self.use_residual = stride == 1 and in_channels == out_channels
        self.expand: nn.Module = (
            ConvBNAct(in_channels, hidden, 1, groups=groups, act=act) if has_expand else nn.Identity()
        )
        self.shuffle: nn.Module = ChannelShuffle(groups) if groups > 1 else nn.Identity()
        self.depthwise = ConvBNAct(hidden, hidden, kernel_size, stride=stride, groups=hidden, act=act)
        self.project = ConvBNAct(hidden, out_channels, 1, groups=groups, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.shuffle(self.expand(x))))
        return out + x if self.use_residual else out

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}->{self.out_channels}, k={self.kernel_size}, e={self.expansion}, s={self.stride}, "
            f"g={self.groups}, residual={self.use_residual}"
        )
