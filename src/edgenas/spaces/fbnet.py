"""The FBNet layer-wise space (Wu et al., CVPR 2019) as HW-NAS-Bench (Li et al., ICLR 2021) adapted it to 32x32.

22 searchable layers in stages (channels, repeats, first stride) (16,1,1) (24,4,1) (32,4,2) (64,4,2) (112,4,1)
(184,4,2) (352,1,1) after a 3x3 stem conv of 16 channels with stride 1, then a 1x1 head conv of 1504 channels, global
pooling and a linear classifier. These are the CIFAR settings of HW-NAS-Bench's FBNet model (ImageNet: stem stride 2,
first-stage strides 1,2,2,2,1,2,1, head 1984): the last feature map is 4x4 at 32x32. Activations are ReLU.

9 candidates per layer, in HELP's ``op_idx`` order: ``k3_e1``, ``k3_e1_g2``, ``k3_e3``, ``k3_e6``, ``k5_e1``,
``k5_e1_g2``, ``k5_e3``, ``k5_e6``, ``skip``. Each MBConv keeps its 1x1 expand conv even at expansion 1 (FBNet's
block), ``_g2`` makes both 1x1 convs 2-group convs with a channel shuffle after the first. ``skip`` is allowed at every
layer: where the shape changes it is a 1x1 conv-BN-ReLU projection with the layer's stride (FBNet's ``Identity``), so
|A| = 9^22. ``num_classes`` defaults to 10 (CIFAR-10); HW-NAS-Bench and HELP measured the 100-class head, which
differs by 1504 x 90 multiply-adds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from edgenas.errors import SpaceConfigError
from edgenas.nn.blocks import ConvBNAct, MBConv
from edgenas.spaces._base import config_from_options
from edgenas.spaces._layout import LayerShape, LayerwiseNet, StagedSpace
from edgenas.spaces._registry import register_space

STEM_CHANNELS = 16
STAGE_CHANNELS = (16, 24, 32, 64, 112, 184, 352)
STAGE_REPEATS = (1, 4, 4, 4, 4, 4, 1)
OPS = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")


@dataclass(frozen=True)
class FBNetConfig:
    """Options of the ``fbnet`` space.

    Attributes:
        resolution: input height and width (px).
        num_classes: classifier outputs.
        width: channel multiplier (rounded to multiples of 8; FBNet's own counts are multiples of 8 already).
        stem_stride: stride of the stem conv.
        stage_strides: stride of the first layer of each of the 7 stages.
        head_channels: channels of the 1x1 head conv before scaling (1504 for CIFAR, 1984 for ImageNet).
        dropout: dropout probability before the classifier.
    """

    resolution: int = 32
    num_classes: int = 10
    width: float = 1.0
    stem_stride: int = 1
    stage_strides: tuple[int, ...] = (1, 1, 2, 2, 1, 2, 1)
    head_channels: int = 1504
    dropout: float = 0.0


class FBNetSpace(StagedSpace):
    """FBNet's 22-layer, 9-candidate space (see module docstring)."""

    family = "fbnet"
    stage_channels = STAGE_CHANNELS
    stage_repeats = STAGE_REPEATS
    op_names = OPS

    def check_config(self) -> None:
        super().check_config()
        if int(self.config.head_channels) < 1:
            raise SpaceConfigError(f"{self.name}: head_channels must be >= 1")

    def stage_input_channels(self) -> int:
        return self.channels(STEM_CHANNELS)

    def _allowed(self, layer: int) -> tuple[int, ...]:
        return tuple(range(len(OPS)))

    def _op(self, name: str, s: LayerShape, hidden_scale: float = 1.0) -> nn.Module:
        if name == "skip":
            return (
                nn.Identity() if s.keeps_shape else ConvBNAct(s.in_channels, s.out_channels, 1, s.stride, act=nn.ReLU)
            )
        parts = name.split("_")
        kernel, expansion = int(parts[0][1:]), int(parts[1][1:])
        groups = int(parts[2][1:]) if len(parts) == 3 else 1
        return MBConv(
            s.in_channels,
            s.out_channels,
            kernel,
            expansion,
            s.stride,
            groups,
            act=nn.ReLU,
            expand_at_e1=True,
            hidden_scale=hidden_scale,
        )

    def _assemble(self, layers: list[nn.Module]) -> nn.Module:
        c = self.config
        stem = ConvBNAct(3, self.channels(STEM_CHANNELS), 3, stride=c.stem_stride, act=nn.ReLU)
        head = self.channels(int(c.head_channels))
        last = self.layer_shapes[-1].out_channels
        return LayerwiseNet(stem, layers, ConvBNAct(last, head, 1, act=nn.ReLU), head, int(c.num_classes), c.dropout)


@register_space("fbnet")
def fbnet(**options: Any) -> FBNetSpace:
    """FBNet's space with HW-NAS-Bench's CIFAR layout (32x32 input, 4x4 last feature map)."""
    return FBNetSpace("fbnet", config_from_options(FBNetConfig, FBNetConfig(), options, "fbnet"))
