"""The MobileNetV2 layer-wise space of SurgeNAS and LightNAS (thesis Table 3.1, Sec 3.3.2 and 4.3.1).

Layout for 224x224 ImageNet: stem 3x3 conv, 40 channels, stride 2; a fixed MBConv k3 e1 with 24 channels; 21
searchable layers in stages (channels, repeats, first stride) (32,4,2) (56,4,2) (112,4,2) (128,4,1) (256,4,2)
(432,1,1); a 1x1 head conv with 1728 channels, global average pooling and a linear classifier. Activations are
ReLU6 (MobileNetV2), no squeeze-excitation (thesis Sec 4.3.1).

Candidates per layer: MBConv with kernel {3,5,7} x expansion {3,6}, and ``skip``. A skip cannot change the tensor
shape, so it is masked out of every layer whose stride is 2 or whose channels change (the first layer of each stage,
6 of the 21): |A| = 7^15 x 6^6 ~ 2.2e17 instead of the thesis' 7^21.

Width multiplier: every channel count, the stem and the head included, is multiplied and rounded to a multiple of 8
(:func:`edgenas.nn.make_divisible`), so the same multiplier scales the network uniformly (Comfort Zone scaling,
thesis Eq 3.20, needs exactly that).

``mbv2-cifar`` (our choice for 32x32 inputs, used by every CPU experiment): stem stride 1 and stage strides
(1, 2, 2, 1, 2, 1), i.e. the first stage keeps 32x32 and the network downsamples 8x in total, so the last feature
map is 4x4 -- the same total stride HW-NAS-Bench uses for FBNet on CIFAR. 10 classes, width 1.0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from edgenas.nn.blocks import ConvBNAct, MBConv
from edgenas.spaces._base import config_from_options
from edgenas.spaces._layout import LayerShape, LayerwiseNet, StagedSpace
from edgenas.spaces._registry import register_space

STEM_CHANNELS = 40
FIRST_CHANNELS = 24
STAGE_CHANNELS = (32, 56, 112, 128, 256, 432)
STAGE_REPEATS = (4, 4, 4, 4, 4, 1)
HEAD_CHANNELS = 1728
KERNELS = (3, 5, 7)
EXPANSIONS = (3, 6)


@dataclass(frozen=True)
class MBV2Config:
    """Options of the ``mbv2`` space.

    Attributes:
        resolution: input height and width (px).
        num_classes: classifier outputs.
        width: channel multiplier applied to every layer.
        stem_stride: stride of the stem conv (1 or 2).
        stage_strides: stride of the first layer of each of the 6 stages (1 or 2 each).
        dropout: dropout probability before the classifier.
    """

    resolution: int = 224
    num_classes: int = 1000
    width: float = 1.0
    stem_stride: int = 2
    stage_strides: tuple[int, ...] = (2, 2, 2, 1, 2, 1)
    dropout: float = 0.0


CIFAR_PRESET = MBV2Config(resolution=32, num_classes=10, stem_stride=1, stage_strides=(1, 2, 2, 1, 2, 1))


class MBV2Space(StagedSpace):
    """MobileNetV2-style layer-wise space with 21 searchable layers and 7 candidates (see module docstring)."""

    family = "mbv2"
    stage_channels = STAGE_CHANNELS
    stage_repeats = STAGE_REPEATS
    op_names = (*(f"k{k}e{e}" for k in KERNELS for e in EXPANSIONS), "skip")
    SKIP = len(op_names) - 1

    def stage_input_channels(self) -> int:
        return self.channels(FIRST_CHANNELS)

    def _allowed(self, layer: int) -> tuple[int, ...]:
        everything = tuple(range(len(self.op_names)))
        return everything if self.layer_shapes[layer].keeps_shape else everything[: self.SKIP]

    def disallowed_reason(self, layer: int, op: int) -> str:
        s = self.layer_shapes[layer]
        return f"skip cannot change the shape: {s.in_channels}->{s.out_channels} channels, stride {s.stride}"

    def _op(self, name: str, shape: LayerShape, hidden_scale: float = 1.0) -> nn.Module:
        if name == "skip":
            return nn.Identity()
        kernel, expansion = int(name[1]), int(name[3:])
        return MBConv(
            shape.in_channels,
            shape.out_channels,
            kernel,
            expansion,
            shape.stride,
            act=nn.ReLU6,
            hidden_scale=hidden_scale,
        )

    def _assemble(self, layers: list[nn.Module]) -> nn.Module:
        c = self.config
        stem_out, first_out, head = (
            self.channels(STEM_CHANNELS),
            self.channels(FIRST_CHANNELS),
            self.channels(HEAD_CHANNELS),
        )
        stem = nn.Sequential(
            ConvBNAct(3, stem_out, 3, stride=c.stem_stride, act=nn.ReLU6),
            MBConv(stem_out, first_out, 3, 1, 1, act=nn.ReLU6),  # the fixed first layer (k3 e1, 24 channels)
        )
        last = self.layer_shapes[-1].out_channels
        return LayerwiseNet(stem, layers, ConvBNAct(last, head, 1, act=nn.ReLU6), head, int(c.num_classes), c.dropout)


@register_space("mbv2")
def mbv2(**options: Any) -> MBV2Space:
    """The thesis' MobileNetV2 space at its ImageNet defaults (224x224, 1000 classes)."""
    return MBV2Space("mbv2", config_from_options(MBV2Config, MBV2Config(), options, "mbv2"))


@register_space("mbv2-cifar")
def mbv2_cifar(**options: Any) -> MBV2Space:
    """The ``mbv2`` space preset for 32x32 CIFAR inputs (stem stride 1, stage strides 1,2,2,1,2,1; 4x4 last map)."""
    return MBV2Space("mbv2-cifar", config_from_options(MBV2Config, CIFAR_PRESET, options, "mbv2-cifar"))
