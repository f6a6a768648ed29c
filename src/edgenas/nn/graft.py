"""Linearity grafting (Domino, thesis Ch 5): replace the inner non-linear activations of chosen blocks by identities,
so that each grafted block is a linear map plus one kept activation and collapses into a single conv.

Grafting mask (thesis Sec 5.3.1): one character per graftable block in module order, ``0`` = grafted, ``1`` = kept.
Graftable blocks: torchvision's MobileNetV2 ``InvertedResidual`` and ResNet ``Bottleneck``/``BasicBlock``, and the
``MBConv`` of our search spaces. A grafted block becomes a :class:`GraftedBlock` in its *training form*: it pads its
input once by the padding the whole chain needs and runs every inner conv unpadded (pad-then-valid), which is what
makes the collapse exact at the borders (``edgenas.nn.reparam``; METHODS.md Ch 5). Relative to the original block
this changes only border pixels that saw the inner biases — the grafted network is trained after grafting anyway
(thesis Train-First).

The kept activation (thesis Fig 5.10; ablation Fig 5.16): MobileNetV2 and MBConv blocks end with the block's own
activation (ReLU6) applied after the residual sum; ResNet blocks keep their final ReLU. ``keep_activation=False``
drops it, so the block is purely linear.

Domino-Pro (Sec 5.3.5, Fig 5.9): :class:`DominoPro` widens the inner channels and inserts extra 1x1 convs in the
training form; the block collapses to a conv of the same shape, so inference costs the same.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from edgenas.errors import GraftError
from edgenas.nn.blocks import ChannelShuffle, MBConv
from edgenas.nn.reparam import LinearMap, chain_map, module_map

ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.SiLU, nn.GELU, nn.LeakyReLU, nn.Hardtanh, nn.ELU, nn.Mish)
_LINEAR = (nn.Conv2d, nn.BatchNorm2d, ChannelShuffle, nn.Identity)


@dataclass(frozen=True)
class DominoPro:
    """Over-parameterised training form of grafted blocks (thesis Fig 5.9).

    Attributes:
        width: multiplier of every inner channel count (the expanded/bottleneck channels); depthwise convs stay
            depthwise at the new width.
        extra_pointwise: extra 1x1 conv + BN pairs inserted after the last spatial conv.
    """

    width: float = 2.0
    extra_pointwise: int = 1

    def __post_init__(self) -> None:
        if not self.width >= 1.0:
            raise GraftError(f"Domino-Pro width must be >= 1 (got {self.width})")
        if self.extra_pointwise < 0:
            raise GraftError(f"Domino-Pro extra_pointwise must be >= 0 (got {self.extra_pointwise})")


class GraftedBlock(nn.Module):
    """A grafted block: ``act(stages(pad(x)) + shortcut(x))`` with linear stages and unpadded inner convs.

    ``reparameterize()`` switches it in place to one conv (timm's ``reparameterize_model`` calls it);
    ``to_plain()`` returns that conv and the activation as a plain ``nn.Sequential``.

    Args:
        stages: linear modules (Conv2d with padding 0, BatchNorm2d, ChannelShuffle, Identity), first first.
        padding: zeros added to each side of the input, (ph, pw).
        in_channels / out_channels: channel counts of the block.
        shortcut: ``None`` (no residual), ``nn.Identity`` or a linear projection (e.g. 1x1 conv + BN, unpadded).
        activation: the kept activation after the sum, or ``None``.
    """

    def __init__(
        self,
        stages: Sequence[nn.Module],
        padding: tuple[int, int],
        in_channels: int,
        out_channels: int,
        shortcut: nn.Module | None = None,
        activation: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.stages = nn.Sequential(*stages)
        self.padding = (int(padding[0]), int(padding[1]))
        self.in_channels, self.out_channels = in_channels, out_channels
        self.shortcut = shortcut
        self.activation = activation if activation is not None else nn.Identity()
        self.collapsed: nn.Conv2d | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.collapsed is not None:
            return self.activation(self.collapsed(x))
        ph, pw = self.padding
        out = self.stages(F.pad(x, (pw, pw, ph, ph)))
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.activation(out)

    def linear_map(self) -> LinearMap:
        """The block without its activation as one float64 map (eval-mode BN)."""
        main = chain_map(list(self.stages), self.in_channels)
        main = LinearMap(main.weight, main.bias, main.stride, self.padding)
        if self.shortcut is None:
            return main
        return main.plus(module_map(self.shortcut, self.in_channels))

    def _collapsed_conv(self) -> nn.Conv2d:
        reference = next(self.parameters(), None)
        if self.collapsed is not None:
            return copy.deepcopy(self.collapsed)
        conv = self.linear_map().to_conv(reference.dtype if reference is not None else torch.float32)
        return conv.to(reference.device) if reference is not None else conv

    def reparameterize(self) -> None:
        """Collapse in place: the stages and the shortcut become one conv (eval-mode BN statistics are used)."""
        if self.collapsed is None:
            self.collapsed = self._collapsed_conv()
            self.stages = nn.Sequential()
            self.shortcut = None

    def to_plain(self) -> nn.Module:
        """``nn.Sequential(conv, activation)`` with no edgenas classes."""
        return nn.Sequential(self._collapsed_conv(), copy.deepcopy(self.activation))

    def extra_repr(self) -> str:
        form = "collapsed" if self.collapsed is not None else f"{len(self.stages)} stages, pad={self.padding}"
        return f"{self.in_channels}->{self.out_channels}, {form}"


def is_graftable(module: nn.Module) -> bool:
    """Whether :func:`graft` knows how to graft ``module`` (or it is grafted already)."""
    return isinstance(module, (GraftedBlock, MBConv)) or type(module).__name__ in _TORCHVISION_BLOCKS


def graftable_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(qualified name, module)`` of every graftable block in module order; nested blocks are not searched."""
    found: list[tuple[str, nn.Module]] = []

    def walk(module: nn.Module, prefix: str) -> None:
        for name, child in module.named_children():
            qualified = f"{prefix}.{name}" if prefix else name
            if is_graftable(child):
                found.append((qualified, child))
            else:
                walk(child, qualified)

    walk(model, "")
    return found


def parse_mask(mask: str | Sequence[int | bool], n_blocks: int) -> tuple[int, ...]:
    """A grafting mask as a tuple of 0/1, one per block (``0`` = grafted).

    Accepts a string of ``0``/``1`` (spaces, commas and underscores are ignored), ``"all"`` (graft every block),
    ``"none"``, or a sequence of ints/bools.

    Raises:
        GraftError: wrong length or characters.
    """
    if isinstance(mask, str):
        text = mask.strip().lower()
        if text == "all":
            return (0,) * n_blocks
        if text == "none":
            return (1,) * n_blocks
        cleaned = text.replace(" ", "").replace(",", "").replace("_", "")
        if not cleaned or set(cleaned) - {"0", "1"}:
            raise GraftError(f"grafting mask {mask!r}: use one 0 (graft) or 1 (keep) per block, or 'all'/'none'")
        values = tuple(int(c) for c in cleaned)
    else:
        values = tuple(int(bool(v)) for v in mask)
    if len(values) != n_blocks:
        raise GraftError(f"grafting mask has {len(values)} entries but the model has {n_blocks} graftable blocks")
    return values


def graft(
    model: nn.Module,
    mask: str | Sequence[int | bool],
    *,
    keep_activation: bool = True,
    pro: DominoPro | None = None,
) -> nn.Module:
    """Graft the blocks of ``model`` whose mask entry is 0, in place, and return ``model``.

    Works on any model holding graftable blocks, e.g. a torchvision ``mobilenet_v2()`` or ``resnet50()`` instance
    with the user's own trained weights (kept as they are in the grafted block unless ``pro`` is given: Domino-Pro's
    wider blocks start from fresh weights).

    Raises:
        GraftError: the model has no graftable block, the mask does not fit, an already grafted block is marked 1
            (grafting cannot be undone), or a block holds a non-linear layer other than its activations.
    """
    blocks = graftable_blocks(model)
    if not blocks:
        raise GraftError(
            f"{type(model).__name__} has no graftable block (MobileNetV2 InvertedResidual, ResNet Bottleneck/"
            "BasicBlock or edgenas MBConv)"
        )
    values = parse_mask(mask, len(blocks))
    for (name, block), keep in zip(blocks, values, strict=True):
        if isinstance(block, GraftedBlock):
            if keep:
                raise GraftError(f"block {name} is already grafted; grafting cannot be undone")
            continue
        if keep:
            continue
        model.set_submodule(name, graft_block(block, keep_activation=keep_activation, pro=pro))
    return model


def graft_block(block: nn.Module, *, keep_activation: bool = True, pro: DominoPro | None = None) -> GraftedBlock:
    """The grafted training form of one block (see module docstring); ``block`` itself is left unchanged.

    Raises:
        GraftError: the block kind is unknown or holds a non-linear layer other than its activations.
    """
    leaves, shortcut, activation = _describe(block)
    in_channels = next(m for m in leaves if isinstance(m, nn.Conv2d)).in_channels
    out_channels = [m for m in leaves if isinstance(m, nn.Conv2d)][-1].out_channels
    linear = [copy.deepcopy(m) for m in leaves if not isinstance(m, ACTIVATIONS)]
    if pro is not None:
        linear = _over_parameterise(linear, pro)
    stages, padding = _move_padding_to_input(linear)
    kept = copy.deepcopy(activation) if keep_activation and activation is not None else None
    return GraftedBlock(stages, padding, in_channels, out_channels, copy.deepcopy(shortcut), kept)


_TORCHVISION_BLOCKS = ("InvertedResidual", "Bottleneck", "BasicBlock")


def _flatten(module: nn.Module, owner: str) -> list[nn.Module]:
    if isinstance(module, nn.Sequential):
        return [leaf for child in module for leaf in _flatten(child, owner)]
    if isinstance(module, (*_LINEAR, *ACTIVATIONS)):
        return [module]
    raise GraftError(
        f"cannot graft {owner}: it holds a {type(module).__name__}, which is neither linear nor an activation"
    )


def _describe(block: nn.Module) -> tuple[list[nn.Module], nn.Module | None, nn.Module | None]:
    """(leaf modules in order, shortcut or None, the activation to keep at the end)."""
    kind = type(block).__name__
    if isinstance(block, MBConv):
        leaves = _flatten(nn.Sequential(block.expand, block.shuffle, block.depthwise, block.project), "MBConv")
        shortcut = nn.Identity() if block.use_residual else None
    elif kind == "InvertedResidual" and hasattr(block, "conv") and hasattr(block, "use_res_connect"):
        leaves = _flatten(block.conv, kind)
        shortcut = nn.Identity() if block.use_res_connect else None
    elif kind == "Bottleneck" and hasattr(block, "conv3"):
        leaves = [block.conv1, block.bn1, block.conv2, block.bn2, block.conv3, block.bn3]
        shortcut = block.downsample if block.downsample is not None else nn.Identity()
        return _checked(leaves, kind), shortcut, block.relu
    elif kind == "BasicBlock" and hasattr(block, "conv2"):
        leaves = [block.conv1, block.bn1, block.conv2, block.bn2]
        shortcut = block.downsample if block.downsample is not None else nn.Identity()
        return _checked(leaves, kind), shortcut, block.relu
    else:
        raise GraftError(f"do not know how to graft a {kind}")
    activation = next((m for m in leaves if isinstance(m, ACTIVATIONS)), None)
    return leaves, shortcut, activation


def _checked(leaves: list[nn.Module], owner: str) -> list[nn.Module]:
    for leaf in leaves:
        _flatten(leaf, owner)
    return leaves


def _move_padding_to_input(stages: list[nn.Module]) -> tuple[list[nn.Module], tuple[int, int]]:
    """Unpad every conv and return the input padding that keeps the outputs aligned.

    A conv with padding p after convs of total stride S needs ``S * p`` more input pixels on each side, so the
    block input is padded by ``sum_i S_i p_i`` (per spatial dimension).
    """
    total, stride = [0, 0], [1, 1]
    for stage in stages:
        if isinstance(stage, nn.Conv2d):
            if stage.padding_mode != "zeros" or isinstance(stage.padding, str):
                raise GraftError(f"cannot graft a conv with padding={stage.padding!r}, mode {stage.padding_mode!r}")
            for dim in (0, 1):
                total[dim] += stride[dim] * int(stage.padding[dim])
                stride[dim] *= int(stage.stride[dim])
            stage.padding = (0, 0)
    return stages, (total[0], total[1])


def _over_parameterise(linear: list[nn.Module], pro: DominoPro) -> list[nn.Module]:
    """Domino-Pro: the same chain of convs with ``pro.width`` x inner channels (fresh weights), 1x1 convs made dense
    (a channel shuffle adds nothing to a dense linear chain, so it is dropped), and ``pro.extra_pointwise`` 1x1
    conv + BN pairs after the last spatial conv."""
    convs = [m for m in linear if isinstance(m, nn.Conv2d)]
    widths = [convs[0].in_channels] + [max(1, math.ceil(c.out_channels * pro.width)) for c in convs[:-1]]
    widths.append(convs[-1].out_channels)
    last_spatial = max((i for i, c in enumerate(convs) if c.kernel_size != (1, 1)), default=len(convs) - 2)
    out: list[nn.Module] = []
    for i, conv in enumerate(convs):
        depthwise = conv.groups > 1 and conv.groups == conv.in_channels == conv.out_channels
        c_in, c_out = widths[i], widths[i + 1]
        if depthwise:
            c_out = c_in  # a depthwise conv keeps its width; the next conv reads it
            widths[i + 1] = c_in
        new = nn.Conv2d(
            c_in,
            c_out,
            conv.kernel_size,
            stride=conv.stride,
            padding=conv.padding,
            groups=c_in if depthwise else 1,
            bias=False,
        )
        nn.init.kaiming_normal_(new.weight, mode="fan_out")
        out += [new, nn.BatchNorm2d(c_out)]
        if i == last_spatial:
            for _ in range(pro.extra_pointwise):
                extra = nn.Conv2d(c_out, c_out, 1, bias=False)
                nn.init.kaiming_normal_(extra.weight, mode="fan_out")
                out += [extra, nn.BatchNorm2d(c_out)]
    return out


def pro_to_dict(pro: DominoPro | None) -> dict | None:
    """JSON form of a Domino-Pro configuration (``None`` stays ``None``)."""
    return asdict(pro) if pro is not None else None
