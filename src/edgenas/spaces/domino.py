"""The grafting-mask space of one network (Domino, thesis Sec 5.3.1): every graftable block either keeps its
non-linear activations or is grafted (its inner activations become identities, and it deploys as one conv).

One searchable layer per graftable block of the base network (torchvision MobileNetV2's inverted residuals,
ResNet's bottlenecks, the MBConv blocks of a searched spec), with two "ops": ``graft`` (index 0) and ``keep``
(index 1), so a spec's choices are the thesis' mask alpha in {0, 1}^L and its human form is that mask as digits
(``edgenas graft --mask`` reads the same string).

``build`` returns the grafted network in its *training form* (:class:`~edgenas.nn.graft.GraftedBlock`): that is
what trains (Train-First). Every runtime measures a network as it deploys (grafted blocks collapsed,
:func:`edgenas.nn.reparam.collapsed_copy`), so ``profile``, the store and ``predictor fit`` see the latency after
reparameterisation, as the thesis' latency predictor does.

Registered as ``domino`` with options ``model`` (``torchvision:NAME[?width_mult=W]`` or a spec of any space as a
JSON object), ``num_classes`` (torchvision models), ``resolution`` (input side in px; 0 = the model's own: 224 for
torchvision, the space's for a spec) and ``keep_activation`` (the one activation a grafted block keeps at its end,
thesis Fig 5.10). :func:`mask_space` makes it from a model reference's recipe.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from torch import nn

from edgenas.errors import ArchError, GraftError, ModelSourceError, SpaceConfigError
from edgenas.spaces._base import LayerwiseSpace, config_from_options
from edgenas.spaces._registry import register_space
from edgenas.spaces.spec import ArchSpec

GRAFT, KEEP = 0, 1


@dataclass(frozen=True)
class MaskConfig:
    """Options of the ``domino`` space (see the module docstring)."""

    model: str = "torchvision:mobilenet_v2"
    num_classes: int = 10
    resolution: int = 0
    keep_activation: bool = True


class MaskSpace(LayerwiseSpace):
    """Keep or graft each graftable block of one network (see the module docstring)."""

    family = "domino"
    op_names = ("graft", "keep")

    def check_config(self) -> None:
        if self.config.resolution < 0 or self.config.num_classes < 1:
            raise SpaceConfigError(f"{self.name}: resolution must be >= 0 and num_classes >= 1")
        if not self.block_names:
            raise SpaceConfigError(f"{self.name}: {self.config.model} has no graftable block")

    @cached_property
    def recipe(self) -> dict[str, Any]:
        """The base network's model recipe (:mod:`edgenas.models`), without grafting steps."""
        from edgenas.models import TORCHVISION_PREFIX, torchvision_recipe

        text = self.config.model.strip()
        try:
            if text.startswith(TORCHVISION_PREFIX):
                recipe = torchvision_recipe(text, self.config.num_classes)
            elif text.startswith("{"):
                recipe = {"arch": json.loads(text)}
            else:
                raise SpaceConfigError(
                    f"{self.name}: model must be torchvision:NAME[?width_mult=W] or a spec as a JSON object, got "
                    f"{text[:60]!r}"
                )
        except (json.JSONDecodeError, ModelSourceError) as exc:
            raise SpaceConfigError(f"{self.name}: model option: {exc}") from exc
        if self.config.resolution:
            recipe["resolution"] = self.config.resolution
        return recipe

    def _base(self) -> tuple[nn.Module, int]:
        from edgenas.models import build_from_recipe

        try:
            return build_from_recipe(self.recipe)
        except (ModelSourceError, ArchError) as exc:
            raise SpaceConfigError(f"{self.name}: model option: {exc}") from exc

    @cached_property
    def _base_resolution(self) -> int:
        return self._base()[1]

    @cached_property
    def block_names(self) -> tuple[str, ...]:
        """Qualified module names of the graftable blocks, in order."""
        from edgenas.nn.graft import graftable_blocks

        model, resolution = self._base()
        self.__dict__["_base_resolution"] = resolution
        return tuple(name for name, _ in graftable_blocks(model))

    @property
    def resolution(self) -> int:
        return self._base_resolution

    def layer_names(self) -> tuple[str, ...]:
        return self.block_names

    def _allowed(self, layer: int) -> tuple[int, ...]:
        return (GRAFT, KEEP)

    def parse(self, text: str) -> ArchSpec:
        """A mask as ``edgenas graft --mask`` writes it: one 0 (graft) / 1 (keep) per block, or ``all``/``none``."""
        from edgenas.nn.graft import parse_mask

        try:
            return self.make_spec(list(parse_mask(text, self.num_layers)))
        except GraftError as exc:
            raise ArchError(f"{self.name}: {exc}") from exc

    def format(self, spec: ArchSpec) -> str:
        return "".join(str(c) for c in spec.choices)

    def graft_all(self) -> ArchSpec:
        """Domino-Aggressive: every block grafted."""
        return self.make_spec([GRAFT] * self.num_layers)

    def keep_all(self) -> ArchSpec:
        """The base network unchanged."""
        return self.make_spec([KEEP] * self.num_layers)

    def _build(self, spec: ArchSpec) -> nn.Module:
        from edgenas.nn.graft import graft

        model, _ = self._base()
        if GRAFT in spec.choices:
            graft(model, spec.choices, keep_activation=self.config.keep_activation)
        return model

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "model": self.config.model}


@register_space("domino")
def domino(**options: Any) -> MaskSpace:
    """Keep or graft each graftable block of a network (``model``, ``num_classes``, ``resolution``,
    ``keep_activation``; see the module docstring)."""
    if isinstance(options.get("model"), str) and options["model"].strip().startswith("{"):
        # one network, one hash: however the JSON was spaced or ordered (a malformed one: check_config names it)
        with contextlib.suppress(json.JSONDecodeError):
            options["model"] = json.dumps(json.loads(options["model"]), sort_keys=True, separators=(",", ":"))
    return MaskSpace("domino", config_from_options(MaskConfig, MaskConfig(), options, "domino"))


def mask_space(recipe: dict[str, Any], *, keep_activation: bool = True) -> MaskSpace:
    """The mask space of the network a model recipe builds (``torchvision`` or ``arch``; no grafting steps).

    Raises:
        SpaceConfigError: the recipe has grafting steps already, or names no network the space can hold.
    """
    from edgenas.spaces._registry import get_space

    if recipe.get("graft"):
        raise SpaceConfigError("the mask space is made from an ungrafted network; this model is grafted already")
    options: dict[str, Any] = {"keep_activation": keep_activation}
    if "torchvision" in recipe:
        query = "&".join(f"{k}={recipe[k]:g}" for k in ("width_mult",) if k in recipe)
        options["model"] = f"torchvision:{recipe['torchvision']}" + (f"?{query}" if query else "")
        options["num_classes"] = int(recipe.get("num_classes", 1000))
    elif "arch" in recipe:
        options["model"] = json.dumps(recipe["arch"], sort_keys=True, separators=(",", ":"))
    else:
        raise SpaceConfigError("a model recipe names either 'torchvision' or 'arch'")
    if "resolution" in recipe:
        options["resolution"] = int(recipe["resolution"])
    space = get_space("domino", **options)
    assert isinstance(space, MaskSpace)
    return space
