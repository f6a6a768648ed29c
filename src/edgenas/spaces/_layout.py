"""The macro skeleton shared by the layer-wise spaces: stem -> searchable layers -> head -> pool -> classifier."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import nn

from edgenas.errors import SpaceConfigError
from edgenas.nn.blocks import make_divisible
from edgenas.spaces._base import ChoiceFactory, LayerwiseSpace
from edgenas.spaces.spec import ArchSpec


@dataclass(frozen=True)
class LayerShape:
    """Shape of one searchable layer: input and output channels, stride, and its place in the stage layout."""

    in_channels: int
    out_channels: int
    stride: int
    stage: int
    block: int

    @property
    def keeps_shape(self) -> bool:
        """True when an identity can replace the layer (same channels, stride 1)."""
        return self.stride == 1 and self.in_channels == self.out_channels


def stage_layer_shapes(
    in_channels: int, channels: Sequence[int], repeats: Sequence[int], strides: Sequence[int]
) -> tuple[LayerShape, ...]:
    """Per-layer shapes of stages given as (channels, repeats, first stride); stages are numbered from 1."""
    shapes = []
    current = in_channels
    for stage, (c, n, s) in enumerate(zip(channels, repeats, strides, strict=True), start=1):
        for block in range(n):
            shapes.append(LayerShape(current, c, s if block == 0 else 1, stage, block + 1))
            current = c
    return tuple(shapes)


class LayerwiseNet(nn.Module):
    """A standalone network of a layer-wise space; ``layers`` holds one module per searchable layer."""

    def __init__(
        self,
        stem: nn.Module,
        layers: Sequence[nn.Module],
        head: nn.Module,
        head_channels: int,
        num_classes: int,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.stem = stem
        self.layers = nn.Sequential(*layers)
        self.head = head
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(head_channels, num_classes))
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map after the head conv, ``N x C_head x h x w``."""
        return self.head(self.layers(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.forward_features(x)), 1))


def init_weights(model: nn.Module) -> None:
    """He-normal convs with the fan-out counted per group, unit BN, small-normal linear layers.

    torch's ``kaiming_normal_(mode="fan_out")`` counts every output channel of a depthwise conv as fan-out, which
    shrinks depthwise weights by sqrt(channels) and makes the signal of an untrained deep net vanish; counting
    ``out_channels / groups * k_h * k_w`` (as EfficientNet's reference init does) keeps activations at unit scale.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.out_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
            nn.init.normal_(m.weight, std=math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)


class StagedSpace(LayerwiseSpace):
    """A layer-wise space whose searchable layers fill stages of (channels, repeats, first stride).

    Subclasses set ``stage_channels`` and ``stage_repeats`` (base channel counts at width 1) and
    :meth:`stage_input_channels`; the config needs ``width``, ``stem_stride``, ``stage_strides``, ``resolution``,
    ``num_classes`` and ``dropout``.
    """

    stage_channels: tuple[int, ...] = ()
    stage_repeats: tuple[int, ...] = ()

    def check_config(self) -> None:
        c = self.config
        if len(c.stage_strides) != len(self.stage_channels):
            raise SpaceConfigError(
                f"{self.name}: stage_strides needs {len(self.stage_channels)} values, got {list(c.stage_strides)}"
            )
        if any(s not in (1, 2) for s in (c.stem_stride, *c.stage_strides)):
            raise SpaceConfigError(f"{self.name}: strides must be 1 or 2")
        if not 0 < float(c.width) <= 8:
            raise SpaceConfigError(f"{self.name}: width must be in (0, 8], got {c.width}")
        if int(c.num_classes) < 1 or not 0 <= float(c.dropout) < 1:
            raise SpaceConfigError(f"{self.name}: num_classes must be >= 1 and dropout in [0, 1)")
        total_stride = math.prod((c.stem_stride, *c.stage_strides))
        if int(c.resolution) < total_stride:
            raise SpaceConfigError(f"{self.name}: resolution {c.resolution} is below the total stride {total_stride}")

    def scale_width(self, factor: float) -> LayerwiseSpace:
        from edgenas.spaces._registry import get_space

        return get_space(self.name, **{**dict(self.options), "width": round(float(self.config.width) * factor, 6)})

    def channels(self, base: int) -> int:
        """A base channel count scaled by the width multiplier and rounded to a multiple of 8."""
        return make_divisible(base * float(self.config.width))

    def stage_input_channels(self) -> int:
        """Channels entering the first searchable layer (at the configured width)."""
        raise NotImplementedError

    @cached_property
    def layer_shapes(self) -> tuple[LayerShape, ...]:
        """In/out channels and stride of each searchable layer."""
        return stage_layer_shapes(
            self.stage_input_channels(),
            [self.channels(c) for c in self.stage_channels],
            self.stage_repeats,
            self.config.stage_strides,
        )

    def layer_names(self) -> tuple[str, ...]:
        return tuple(f"stage{s.stage}.block{s.block}" for s in self.layer_shapes)

    def _op(self, name: str, shape: LayerShape, hidden_scale: float = 1.0) -> nn.Module:
        """The module of op ``name`` at a layer of ``shape``, its hidden channels times ``hidden_scale`` (spaces
        implement it)."""
        raise NotImplementedError

    def has_hidden(self, op: int) -> bool:
        """Whether op ``op`` has hidden channels a channel configuration can scale (every op but ``skip``)."""
        return self.op_names[op] != "skip"

    def _assemble(self, layers: list[nn.Module]) -> nn.Module:
        """The whole network around its searchable ``layers`` (stem, head, classifier; spaces implement it)."""
        raise NotImplementedError

    def _build(self, spec: ArchSpec) -> nn.Module:
        return self.build_scaled(spec, [1.0] * self.num_layers)

    def build_scaled(self, spec: ArchSpec, hidden_scales: Sequence[float]) -> nn.Module:
        """``spec``'s network with the hidden channels of layer ``l`` multiplied by ``hidden_scales[l]`` (1 for a
        layer without hidden channels).

        Raises:
            SpaceConfigError: a scale count other than L, or a scale other than 1 on a layer without hidden channels.
        """
        spec = self.check_spec(spec)
        if len(hidden_scales) != self.num_layers:
            raise SpaceConfigError(f"{self.name}: {len(hidden_scales)} hidden scales for {self.num_layers} layers")
        for layer, (op, scale) in enumerate(zip(spec.choices, hidden_scales, strict=True)):
            if scale != 1.0 and not self.has_hidden(op):
                raise SpaceConfigError(f"{self.name}: layer {layer} ({self.op_names[op]}) has no hidden channels")
        ops = zip(spec.choices, self.layer_shapes, hidden_scales, strict=True)
        return self._assemble([self._op(self.op_names[i], shape, float(scale)) for i, shape, scale in ops])

    def supernet_backbone(self, choice: ChoiceFactory) -> nn.Module:
        """The network of the first allowed op per layer, each searchable layer replaced by its choice layer."""
        net = self.build(self.make_spec([ops[0] for ops in self.allowed_ops]))
        for layer, ops in enumerate(self.allowed_ops):
            layer_choice = choice(layer, {k: self.layer_module(layer, k) for k in ops})
            init_weights(layer_choice)
            net.layers[layer] = layer_choice
        return net

    def layer_module(self, layer: int, op: int) -> nn.Module:
        """Op ``op`` of searchable layer ``layer`` as a standalone module (to time it in isolation, for a LUT)."""
        return self._op(self.op_names[op], self.layer_shapes[layer])

    def layer_input_size(self, layer: int) -> int:
        """Height and width (px) of the feature map entering searchable layer ``layer``."""
        size = math.ceil(int(self.config.resolution) / int(self.config.stem_stride))
        for shape in self.layer_shapes[:layer]:
            size = math.ceil(size / shape.stride)
        return size
