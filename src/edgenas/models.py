"""Model references for the compression commands: a torchvision name, a spec file, a training run, or a model file.

A *recipe* is the JSON description that rebuilds a model's structure: ``{"torchvision": NAME, "num_classes": N}`` or
``{"arch": SPEC_DICT}``, plus ``"graft"``, the list of grafting steps applied to it (mask, kept activation,
Domino-Pro). A *model file* (``edgenas graft -o graft.pt``) stores the recipe and the state dict, so it loads with
``weights_only=True`` and needs no pickled classes.

References (``load_model``):
    ``torchvision:mobilenet_v2``, ``torchvision:resnet50``, ... (random weights: this machine has no network for
    pretrained ones; graft a trained instance from Python with ``edgenas.nn.graft``), with constructor options after
    a ``?`` (``torchvision:mobilenet_v2?width_mult=0.5``: the uniform width multiplier), a spec file
    (``.json``/``.jsonl`` with one spec), an ``edgenas train`` run directory or its ``model.pt``, or a model file.

A recipe may also carry ``"resolution"`` (the input side it is meant for, e.g. 32 for a torchvision model on
CIFAR-10) and a grafting step ``"reparameterize_first": true`` (thesis Fig 5.15's ablation: the grafted blocks are
collapsed *before* training, so the single conv is what trains).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from edgenas._io import atomic_output
from edgenas.errors import CheckpointError, ModelSourceError
from edgenas.nn.graft import DominoPro, graft, graftable_blocks, parse_mask, pro_to_dict

MODEL_FILE_VERSION = 1
TORCHVISION_PREFIX = "torchvision:"
#: Constructor options a ``torchvision:`` reference may set (name -> type), per model.
TORCHVISION_OPTIONS: dict[str, dict[str, type]] = {"mobilenet_v2": {"width_mult": float}}
#: torchvision constructors whose blocks can be grafted (MobileNetV2 inverted residuals, ResNet/ResNeXt blocks).
TORCHVISION_MODELS = (
    "mobilenet_v2",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "resnext101_64x4d",
    "wide_resnet50_2",
    "wide_resnet101_2",
)


@dataclass
class LoadedModel:
    """A model with the recipe that rebuilds it.

    Attributes:
        model: the network (train mode as built; callers switch to eval).
        recipe: JSON-ready structure description (see the module docstring).
        resolution: the input size the model is meant for (pixels): 224 for torchvision, the space's for specs.
        source: the reference it was loaded from, for messages.
    """

    model: nn.Module
    recipe: dict[str, Any]
    resolution: int
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def graft_steps(self) -> list[dict[str, Any]]:
        return list(self.recipe.get("graft", []))


def build_from_recipe(recipe: dict[str, Any]) -> tuple[nn.Module, int]:
    """Build ``(model, resolution)`` from a recipe, applying its grafting steps (weights are fresh).

    Raises:
        ModelSourceError: an unknown torchvision name or a malformed recipe.
    """
    if "torchvision" in recipe:
        name = str(recipe["torchvision"])
        options = {k: recipe[k] for k in TORCHVISION_OPTIONS.get(name, {}) if k in recipe}
        model = _torchvision(name, int(recipe.get("num_classes", 1000)), options)
        resolution = 224
    elif "arch" in recipe:
        from edgenas.spaces import space_of, spec_from_dict

        spec = spec_from_dict(recipe["arch"], source="model recipe")
        space = space_of(spec)
        model, resolution = space.build(spec), space.resolution
    else:
        raise ModelSourceError("a model recipe names either 'torchvision' or 'arch'")
    for step in recipe.get("graft", []):
        pro = DominoPro(**step["pro"]) if step.get("pro") else None
        graft(model, step["mask"], keep_activation=bool(step.get("keep_activation", True)), pro=pro)
        if step.get("reparameterize_first"):
            collapse_in_place(model)
    return model, int(recipe.get("resolution", resolution))


def collapse_in_place(model: nn.Module) -> nn.Module:
    """Switch every grafted block of ``model`` to its single collapsed conv (Reparameterize-First: the conv trains)."""
    from edgenas.nn.graft import GraftedBlock

    for module in model.modules():
        if isinstance(module, GraftedBlock):
            module.reparameterize()
    return model


def _torchvision(name: str, num_classes: int, options: dict[str, Any] | None = None) -> nn.Module:
    import torchvision

    if name not in TORCHVISION_MODELS:
        raise ModelSourceError(
            f"torchvision model {name!r} is not supported for grafting; supported: {', '.join(TORCHVISION_MODELS)}"
        )
    return getattr(torchvision.models, name)(weights=None, num_classes=num_classes, **(options or {}))


def torchvision_recipe(ref: str, num_classes: int | None = None) -> dict[str, Any]:
    """The recipe of a ``torchvision:NAME[?key=value&...]`` reference.

    Raises:
        ModelSourceError: an option the model does not take, or a value of the wrong type.
    """
    name, _, query = ref[len(TORCHVISION_PREFIX) :].partition("?")
    recipe: dict[str, Any] = {"torchvision": name, "num_classes": num_classes or 1000}
    allowed = TORCHVISION_OPTIONS.get(name, {})
    for item in filter(None, query.split("&")):
        key, _, value = item.partition("=")
        if key not in allowed:
            known = ", ".join(allowed) or "none"
            raise ModelSourceError(f"{ref}: torchvision:{name} takes no option {key!r} (options: {known})")
        try:
            number = allowed[key](value)
        except ValueError as exc:
            raise ModelSourceError(f"{ref}: {key} must be a {allowed[key].__name__}, got {value!r}") from exc
        if not (math.isfinite(number) and number > 0):
            raise ModelSourceError(f"{ref}: {key} must be a positive number, got {value!r}")
        recipe[key] = number
    return recipe


def is_model_reference(ref: str | os.PathLike[str]) -> bool:
    """Whether ``ref`` names a model rather than a spec: ``torchvision:NAME``, a ``.pt`` file or a run directory."""
    text = str(ref)
    return text.startswith(TORCHVISION_PREFIX) or text.endswith(".pt") or Path(text).is_dir()


def load_model(
    ref: str | os.PathLike[str], *, num_classes: int | None = None, resolution: int | None = None
) -> LoadedModel:
    """Resolve a model reference (see the module docstring).

    Args:
        ref: the reference.
        num_classes: classifier size for ``torchvision:`` references (default 1000); other references fix it.
        resolution: the input side (px) a ``torchvision:`` model is meant for (default 224; e.g. 32 on CIFAR-10).

    Raises:
        ModelSourceError: unknown reference, or ``num_classes`` given for a reference that fixes it.
        CheckpointError / SpecFileError: unreadable files.
    """
    text = str(ref)
    if text.startswith(TORCHVISION_PREFIX):
        recipe = torchvision_recipe(text, num_classes)
        if resolution is not None:
            recipe["resolution"] = int(resolution)
        model, size = build_from_recipe(recipe)
        return LoadedModel(model, recipe, size, text)
    if num_classes is not None or resolution is not None:
        raise ModelSourceError(
            "--num-classes and --resolution apply to torchvision: models only; files fix their classifier and input"
        )
    path = Path(text)
    if path.is_dir():
        path = path / "model.pt"
        if not path.is_file():
            raise ModelSourceError(f"{ref} is a directory without model.pt (not a finished edgenas train run)")
    if not path.exists():
        raise ModelSourceError(
            f"no model {text!r}: give torchvision:NAME ({', '.join(TORCHVISION_MODELS[:3])}, ...), a spec file, "
            "a training run directory or a .pt model file"
        )
    if path.suffix in (".json", ".jsonl"):
        return _from_spec_file(path)
    return _from_checkpoint(path)


def _from_spec_file(path: Path) -> LoadedModel:
    from edgenas.spaces import spec_to_dict
    from edgenas.spaces.spec import load_specs

    specs = load_specs(path)
    if len(specs) != 1:
        raise ModelSourceError(f"{path} holds {len(specs)} specs; give a file with one (edgenas arch show --index)")
    recipe = {"arch": spec_to_dict(specs[0])}
    model, resolution = build_from_recipe(recipe)
    return LoadedModel(model, recipe, resolution, str(path))


def _from_checkpoint(path: Path) -> LoadedModel:
    from edgenas.train.checkpoint import load_checkpoint

    payload = load_checkpoint(path)
    if payload.get("recipe"):
        if payload.get("version") != MODEL_FILE_VERSION:
            raise CheckpointError(f"{path}: model file version {payload.get('version')}, expected {MODEL_FILE_VERSION}")
        recipe = payload["recipe"]
    elif payload.get("arch") and "model" in payload:
        recipe = {"arch": payload["arch"]}
    else:
        raise CheckpointError(f"{path} is neither an edgenas model file nor a training run's model.pt")
    model, resolution = build_from_recipe(recipe)
    resolution = int(payload.get("resolution") or resolution)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the recorded model ({str(exc).splitlines()[0]})") from exc
    meta = {k: v for k, v in payload.items() if k not in ("model", "recipe", "arch", "version")}
    return LoadedModel(model, recipe, resolution, str(path), meta)


def graft_loaded(
    loaded: LoadedModel,
    mask: str,
    *,
    keep_activation: bool = True,
    pro: DominoPro | None = None,
    reparameterize_first: bool = False,
) -> LoadedModel:
    """Graft ``loaded.model`` in place and record the step in its recipe (already grafted blocks must be 0 in ``mask``).
    With ``reparameterize_first`` the grafted blocks are collapsed at once (thesis Fig 5.15's ablation).

    Raises:
        GraftError: see :func:`edgenas.nn.graft.graft`.
    """
    values = parse_mask(mask, len(graftable_blocks(loaded.model)))
    graft(loaded.model, values, keep_activation=keep_activation, pro=pro)
    step: dict[str, Any] = {
        "mask": "".join(map(str, values)),
        "keep_activation": keep_activation,
        "pro": pro_to_dict(pro),
    }
    if reparameterize_first:
        collapse_in_place(loaded.model)
        step["reparameterize_first"] = True
    loaded.recipe = {**loaded.recipe, "graft": [*loaded.graft_steps, step]}
    return loaded


def save_model_file(path: str | os.PathLike[str], loaded: LoadedModel) -> Path:
    """Write ``{version, recipe, resolution, model}`` atomically; ``load_model(path)`` rebuilds it exactly."""
    payload = {
        "version": MODEL_FILE_VERSION,
        "recipe": loaded.recipe,
        "resolution": loaded.resolution,
        "model": {k: v.detach().cpu() for k, v in loaded.model.state_dict().items()},
    }
    import torch

    with atomic_output(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)
