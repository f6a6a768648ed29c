"""The channel space of a found network: LightNets++' per-layer channel configuration (thesis Sec 4.3.5, Eq 4.13).

One searchable layer per searchable layer of the base network; its "ops" are the channel scales
{0.5, 0.75, ..., 2.0} (7 choices, thesis). A scale multiplies the layer's *hidden* channels (the expanded width of
its MBConv, rounded to a multiple of 8), so the network keeps its stage widths, strides and every residual
connection, and the all-1 configuration is exactly the base network. A ``skip`` layer has no hidden channels: its
only choice is 1. (Scaling each layer's output channels instead would break the residual additions inside a stage
and every skip layer whenever two neighbours differ; once-for-all's elastic width is the hidden width too.)

The space is registered as ``channels`` with three options: ``base`` (the base space's name), ``arch`` (the base
network in its human form) and ``base_options`` (the base space's options as JSON). Specs of it therefore rebuild
anywhere, and the store, ``profile``, ``predictor fit`` and the evolution apply unchanged; :func:`channel_space`
makes it from a spec of the base space.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from torch import nn

from edgenas.errors import SpaceConfigError
from edgenas.spaces._base import LayerwiseSpace, config_from_options
from edgenas.spaces._layout import StagedSpace
from edgenas.spaces._registry import get_space, register_space
from edgenas.spaces.spec import ArchSpec, thaw

#: The channel scales of a layer (thesis: 0.5 to 2.0 in steps of 0.25).
SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
UNSCALED = SCALES.index(1.0)


@dataclass(frozen=True)
class ChannelConfig:
    """Options of the ``channels`` space.

    Attributes:
        base: the base network's space (a staged space: ``mbv2``, ``mbv2-cifar``, ``fbnet``).
        arch: the base network in its space's human form (empty: the first allowed op of every layer, a template
            for listing and tests).
        base_options: the base space's options as a JSON object.
    """

    base: str = "mbv2-cifar"
    arch: str = ""
    base_options: str = "{}"


class ChannelSpace(LayerwiseSpace):
    """Per-layer hidden-channel scales of one base network (see the module docstring)."""

    family = "channels"
    op_names = tuple(f"x{s:g}" for s in SCALES)

    def check_config(self) -> None:
        _ = self.base_spec  # parses the base network now: a bad option fails here, naming itself

    @cached_property
    def base_space(self) -> StagedSpace:
        """The base network's space."""
        try:
            options = json.loads(self.config.base_options)
        except json.JSONDecodeError as exc:
            raise SpaceConfigError(f"{self.name}: base_options is not JSON: {exc}") from exc
        if not isinstance(options, dict):
            raise SpaceConfigError(f"{self.name}: base_options must be a JSON object")
        base = get_space(self.config.base, **options)
        if not isinstance(base, StagedSpace):
            raise SpaceConfigError(f"{self.name}: base {self.config.base} has no per-layer channels to scale")
        return base

    @cached_property
    def base_spec(self) -> ArchSpec:
        """The base network (``arch``; without it, the base space's first allowed op in every layer)."""
        base = self.base_space
        return base.parse(self.config.arch) if self.config.arch else base.make_spec([o[0] for o in base.allowed_ops])

    @property
    def resolution(self) -> int:
        return self.base_space.resolution

    def input_shape(self, batch: int = 1, resolution: int | None = None) -> tuple[int, int, int, int]:
        return self.base_space.input_shape(batch, resolution)

    def layer_names(self) -> tuple[str, ...]:
        return self.base_space.layer_names()

    def _allowed(self, layer: int) -> tuple[int, ...]:
        scalable = self.base_space.has_hidden(self.base_spec.choices[layer])
        return tuple(range(len(SCALES))) if scalable else (UNSCALED,)

    def disallowed_reason(self, layer: int, op: int) -> str:
        return f"the base layer ({self.base_space.op_names[self.base_spec.choices[layer]]}) has no hidden channels"

    def scales(self, spec: ArchSpec) -> list[float]:
        """The per-layer hidden-channel scales of ``spec``."""
        return [SCALES[c] for c in self.check_spec(spec).choices]

    def uniform(self, scale: float) -> ArchSpec:
        """Every scalable layer at ``scale`` (one of :data:`SCALES`); ``uniform(1.0)`` is the base network."""
        if scale not in SCALES:
            raise SpaceConfigError(f"scale {scale} is not one of {', '.join(map(str, SCALES))}")
        return self.make_spec([SCALES.index(scale) if len(ops) > 1 else UNSCALED for ops in self.allowed_ops])

    @cached_property
    def unscaled(self) -> ArchSpec:
        """The base network itself (every layer at scale 1)."""
        return self.uniform(1.0)

    def _build(self, spec: ArchSpec) -> nn.Module:
        return self.base_space.build_scaled(self.base_spec, [SCALES[c] for c in spec.choices])

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "base": self.config.base, "base_arch": self.config.arch}


def _canonical_json(options: dict[str, Any]) -> str:
    return json.dumps({k: thaw(v) for k, v in options.items()}, sort_keys=True, separators=(",", ":"))


@register_space("channels")
def channels(**options: Any) -> ChannelSpace:
    """Per-layer channel scales of a base network (``base``, ``arch``, ``base_options``; see the module docstring)."""
    if isinstance(options.get("base_options"), str):
        # one network, one hash: however the JSON was spaced or ordered (a malformed one: check_config names it)
        with contextlib.suppress(json.JSONDecodeError):
            options["base_options"] = _canonical_json(json.loads(options["base_options"]))
    return ChannelSpace("channels", config_from_options(ChannelConfig, ChannelConfig(), options, "channels"))


def channel_space(base_spec: ArchSpec) -> ChannelSpace:
    """The channel space of a network of a staged space (``mbv2``, ``mbv2-cifar``, ``fbnet``).

    Raises:
        SpaceConfigError: the spec's space has no per-layer channels to scale.
    """
    space = get_space(
        "channels", base=base_spec.space, arch=str(base_spec), base_options=_canonical_json(dict(base_spec.options))
    )
    assert isinstance(space, ChannelSpace)
    return space
