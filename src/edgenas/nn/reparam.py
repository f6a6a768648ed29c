"""Linear reparameterisation: collapse chains of linear layers (conv, BN, channel shuffle, identity) into one conv.

Thesis Sec 5.3.5, Eq 5.1-5.8: two convolutions applied one after the other are one convolution with kernel
``K* = K1 + S1 (K2 - 1)`` and stride ``S1 S2`` (``K1 + K2 - 1`` at stride 1), and a parallel branch (an identity or
projection shortcut) adds into the same kernel (RepVGG, Ding et al. 2021). Everything here is a ``LinearMap``: a
dense weight ``O x I x kh x kw``, a bias, a stride and the zero padding applied once to the *input*; maps are
composed in float64 so that the collapsed conv matches the chain to ~1e-15.

Exactness needs care at the borders. A conv with a bias followed by a *zero-padded* conv is not one conv: the padded
zeros stand for outputs the first conv would have given the bias to. So composition only accepts an unpadded second
map; the grafted training-time block (``edgenas.nn.graft.GraftedBlock``) pads its input once and runs every inner
conv without padding, which is exactly what the collapsed conv computes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from edgenas.errors import ReparamError
from edgenas.nn.blocks import ChannelShuffle

Pair = tuple[int, int]


def _pair(value: int | tuple[int, ...] | str, what: str) -> Pair:
    if isinstance(value, str):
        raise ReparamError(f"{what}={value!r} is not supported; give explicit integer padding")
    if isinstance(value, int):
        return (value, value)
    if len(value) != 2:
        raise ReparamError(f"{what}={value!r}: expected two values")
    return (int(value[0]), int(value[1]))


@dataclass(frozen=True)
class LinearMap:
    """``y = conv2d(pad(x, padding), weight, stride) + bias`` with a dense (groups=1) float64 kernel.

    Attributes:
        weight: ``out_channels x in_channels x kh x kw``.
        bias: ``out_channels``.
        stride: (sh, sw).
        padding: zeros added on each side of the input, (ph, pw).
    """

    weight: torch.Tensor
    bias: torch.Tensor
    stride: Pair = (1, 1)
    padding: Pair = (0, 0)

    @property
    def in_channels(self) -> int:
        return int(self.weight.shape[1])

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[0])

    @property
    def kernel_size(self) -> Pair:
        return (int(self.weight.shape[2]), int(self.weight.shape[3]))

    def is_pointwise_without_bias(self) -> bool:
        return self.kernel_size == (1, 1) and self.stride == (1, 1) and self.padding == (0, 0) and not self.bias.any()

    def then(self, second: LinearMap) -> LinearMap:
        """The map ``second(self(x))``.

        Raises:
            ReparamError: channel counts differ, or ``second`` pads its input after a map that is not a bias-free
                pointwise map (the result would not be one conv at the borders).
        """
        if second.in_channels != self.out_channels:
            raise ReparamError(f"cannot chain {self.out_channels} output channels into {second.in_channels} inputs")
        padding = self.padding
        if second.padding != (0, 0):
            if not self.is_pointwise_without_bias():
                raise ReparamError(
                    "a padded conv after another linear layer does not collapse exactly at the borders; "
                    "pad the block input once and use unpadded inner convs (graft the block first)"
                )
            padding = second.padding
        (k1h, k1w), (s1h, s1w) = self.kernel_size, self.stride
        k2h, k2w = second.kernel_size
        kh, kw = k1h + s1h * (k2h - 1), k1w + s1w * (k2w - 1)
        weight = self.weight.new_zeros(second.out_channels, self.in_channels, kh, kw)
        # BN and depthwise kernels are diagonal in the channels: scaling rows is exact and avoids C x C matmuls
        diagonal = second.channel_diagonal()
        for i in range(k2h):
            for j in range(k2w):
                # each tap of the second kernel sees the first kernel shifted by (stride x tap) input pixels
                if diagonal is not None:
                    tap = diagonal[:, i, j, None, None, None] * self.weight
                else:
                    tap = torch.einsum("om,mihw->oihw", second.weight[:, :, i, j], self.weight)
                weight[:, :, s1h * i : s1h * i + k1h, s1w * j : s1w * j + k1w] += tap
        bias = second.bias + second.weight.sum(dim=(2, 3)) @ self.bias
        stride = (s1h * second.stride[0], s1w * second.stride[1])
        return LinearMap(weight, bias, stride, padding)

    def plus(self, other: LinearMap) -> LinearMap:
        """The map ``self(x) + other(x)`` (a residual or parallel branch), kernels aligned on their centres.

        Raises:
            ReparamError: the two maps differ in channels or stride, or produce different output sizes.
        """
        if (self.in_channels, self.out_channels) != (other.in_channels, other.out_channels):
            raise ReparamError("parallel branches differ in their channel counts")
        if self.stride != other.stride:
            raise ReparamError(f"parallel branches differ in stride: {self.stride} vs {other.stride}")
        for dim in (0, 1):
            if self.kernel_size[dim] - 2 * self.padding[dim] != other.kernel_size[dim] - 2 * other.padding[dim]:
                raise ReparamError("parallel branches give different output sizes (kernel minus padding differ)")
        padding = (max(self.padding[0], other.padding[0]), max(self.padding[1], other.padding[1]))
        kh = max(padding[0] - m.padding[0] + m.kernel_size[0] for m in (self, other))
        kw = max(padding[1] - m.padding[1] + m.kernel_size[1] for m in (self, other))
        weight = self.weight.new_zeros(self.out_channels, self.in_channels, kh, kw)
        for m in (self, other):
            top, left = padding[0] - m.padding[0], padding[1] - m.padding[1]
            weight[:, :, top : top + m.kernel_size[0], left : left + m.kernel_size[1]] += m.weight
        return LinearMap(weight, self.bias + other.bias, self.stride, padding)

    def channel_diagonal(self) -> torch.Tensor | None:
        """The per-channel kernels ``C x kh x kw`` when output channel c reads input channel c only, else None."""
        o, i = self.out_channels, self.in_channels
        if o != i:
            return None
        index = torch.arange(o)
        diagonal = self.weight[index, index]
        off_diagonal = self.weight.clone()
        off_diagonal[index, index] = 0
        return None if off_diagonal.any() else diagonal

    def groups(self) -> int:
        """``in_channels`` when the kernel is depthwise (one input channel per output), else 1."""
        return self.in_channels if self.in_channels > 1 and self.channel_diagonal() is not None else 1

    def to_conv(self, dtype: torch.dtype = torch.float32) -> nn.Conv2d:
        """One ``nn.Conv2d`` (grouped when the kernel is depthwise) computing this map."""
        groups = self.groups()
        weight = self.weight
        if groups > 1:
            weight = self.channel_diagonal().unsqueeze(1)
        conv = nn.Conv2d(
            self.in_channels,
            self.out_channels,
            self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            groups=groups,
            bias=True,
            dtype=dtype,
        )
        with torch.no_grad():
            conv.weight.copy_(weight)
            conv.bias.copy_(self.bias)
        return conv

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Run the map on ``x`` (float64 reference, for tests)."""
        return F.conv2d(F.pad(x, (self.padding[1],) * 2 + (self.padding[0],) * 2), self.weight, self.bias, self.stride)


def identity_map(channels: int, *, dtype: torch.dtype = torch.float64) -> LinearMap:
    """The identity on ``channels`` channels."""
    weight = torch.eye(channels, dtype=dtype).reshape(channels, channels, 1, 1)
    return LinearMap(weight, torch.zeros(channels, dtype=dtype))


def conv_map(conv: nn.Conv2d) -> LinearMap:
    """The ``LinearMap`` of a ``Conv2d`` (groups expanded into a block-diagonal dense kernel).

    Raises:
        ReparamError: dilation other than 1, a padding mode other than zeros, or string padding.
    """
    if _pair(conv.dilation, "dilation") != (1, 1):
        raise ReparamError(f"dilated convolutions are not supported ({conv})")
    if conv.padding_mode != "zeros":
        raise ReparamError(f"padding_mode={conv.padding_mode!r} is not supported ({conv})")
    weight = conv.weight.detach().to(torch.float64)
    out_ch, in_per_group = weight.shape[:2]
    groups = conv.groups
    dense = weight.new_zeros(out_ch, in_per_group * groups, *weight.shape[2:])
    out_per_group = out_ch // groups
    for g in range(groups):
        rows = slice(g * out_per_group, (g + 1) * out_per_group)
        dense[rows, g * in_per_group : (g + 1) * in_per_group] = weight[rows]
    bias = conv.bias.detach().to(torch.float64) if conv.bias is not None else weight.new_zeros(out_ch)
    return LinearMap(dense, bias, _pair(conv.stride, "stride"), _pair(conv.padding, "padding"))


def batchnorm_map(bn: nn.BatchNorm2d) -> LinearMap:
    """The eval-mode ``BatchNorm2d`` as a diagonal 1x1 map: ``y = (x - mean) / sqrt(var + eps) * gamma + beta``.

    Raises:
        ReparamError: the BN keeps no running statistics (its eval output depends on the batch).
    """
    if bn.running_mean is None or bn.running_var is None:
        raise ReparamError("a BatchNorm without running statistics cannot be folded")
    mean = bn.running_mean.detach().to(torch.float64)
    scale = 1.0 / torch.sqrt(bn.running_var.detach().to(torch.float64) + bn.eps)
    shift = -mean * scale
    if bn.affine:
        gamma, beta = bn.weight.detach().to(torch.float64), bn.bias.detach().to(torch.float64)
        scale, shift = scale * gamma, shift * gamma + beta
    return LinearMap(torch.diag(scale).reshape(*scale.shape, scale.shape[0], 1, 1), shift)


def shuffle_map(shuffle: ChannelShuffle, channels: int) -> LinearMap:
    """A channel shuffle as a 1x1 permutation map."""
    order = torch.arange(channels).reshape(shuffle.groups, channels // shuffle.groups).t().reshape(-1)
    weight = torch.zeros(channels, channels, 1, 1, dtype=torch.float64)
    weight[torch.arange(channels), order] = 1.0
    return LinearMap(weight, torch.zeros(channels, dtype=torch.float64))


def chain_map(modules: list[nn.Module] | nn.Sequential, channels: int) -> LinearMap:
    """Compose a chain of linear modules (Conv2d, BatchNorm2d, ChannelShuffle, Identity, nested Sequential).

    Args:
        modules: the chain, first module first.
        channels: input channels of the chain (needed when it starts with a shape-free module).

    Raises:
        ReparamError: a module that is not linear, or a padded conv after a biased or spatial map.
    """
    result = identity_map(channels)
    for module in modules:
        result = result.then(module_map(module, result.out_channels))
    return result


def module_map(module: nn.Module, channels: int) -> LinearMap:
    """The ``LinearMap`` of one linear module with ``channels`` input channels.

    Raises:
        ReparamError: the module is not one of the linear kinds.
    """
    if isinstance(module, nn.Conv2d):
        return conv_map(module)
    if isinstance(module, nn.BatchNorm2d):
        return batchnorm_map(module)
    if isinstance(module, ChannelShuffle):
        return shuffle_map(module, channels)
    if isinstance(module, nn.Identity):
        return identity_map(channels)
    if isinstance(module, nn.Sequential):
        return chain_map(list(module), channels)
    raise ReparamError(f"{type(module).__name__} is not a linear layer; it cannot be collapsed into a conv")


def collapsed_copy(model: nn.Module) -> nn.Module:
    """``model`` as it deploys: an eval-mode copy with every collapsible block (``to_plain()``) as its one conv, or
    ``model`` itself when it holds none. Runtimes measure this form, so a grafted network is timed after collapse
    (thesis Sec 5.3.2: latency is measured after reparameterisation)."""
    if not any(hasattr(m, "to_plain") for m in model.modules()):
        return model
    plain = copy.deepcopy(model).eval()
    for name, module in list(plain.named_modules()):
        if name and hasattr(module, "to_plain") and callable(module.to_plain):
            plain.set_submodule(name, module.to_plain())
    return plain.to_plain() if hasattr(plain, "to_plain") else plain


def reparameterize(model: nn.Module, *, fold_batchnorm: bool = True) -> nn.Module:
    """An inference copy of ``model`` with every collapsible block as one conv, as a plain ``nn.Module``.

    Blocks that collapse are those with a ``to_plain()`` method (``GraftedBlock``); each becomes
    ``nn.Sequential(conv, activation)``. With ``fold_batchnorm`` the remaining conv-BN pairs are folded too (ONNX
    Runtime and TensorRT do that themselves, so it does not change deployed speed). The result is traced with
    ``torch.fx`` into a ``GraphModule`` made of torch modules only, so running or pickling it needs no edgenas class;
    a model fx cannot trace is returned untraced (BN folded where it sits in an ``nn.Sequential``).

    The copy is in eval mode: BN running statistics are baked in.
    """
    import warnings

    from torch import fx
    from torch.fx.experimental.optimization import fuse

    from edgenas.nn.fuse import fold_batchnorm as fold_sequential

    plain = _inference_copy(model)
    try:
        # in place: ``plain`` is already this function's own copy (fuse would deep-copy it once more)
        traced = fuse(plain, inplace=True) if fold_batchnorm else fx.symbolic_trace(plain)
    except Exception as exc:  # fx raises many kinds (TraceError, TypeError on Proxy iteration ...)
        warnings.warn(
            f"torch.fx cannot trace {type(model).__name__} ({type(exc).__name__}: {exc}); returning the module "
            "untraced",
            stacklevel=2,
        )
        plain = _inference_copy(model)  # fuse works in place: it may have changed ``plain`` before it failed
        return fold_sequential(plain, inplace=True) if fold_batchnorm else plain
    return traced.eval()


def _inference_copy(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with its collapsible blocks collapsed, never ``model`` itself."""
    plain = collapsed_copy(model)
    return (copy.deepcopy(plain) if plain is model else plain).eval()


def collapse_error(
    model: nn.Module,
    input_shape: tuple[int, int, int, int],
    *,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
) -> float:
    """How far :func:`reparameterize` changes ``model``: a copy in ``dtype`` (CPU, eval mode) is collapsed and both
    run on one random input; returns the largest absolute output difference over the largest |output|.

    In float64 an exact collapse gives ~1e-15; collapsing in float32 would add the weights' float32 rounding.
    """
    original = copy.deepcopy(model).to("cpu", dtype).eval()
    collapsed = reparameterize(original)
    x = torch.randn(input_shape, generator=torch.Generator().manual_seed(seed)).to(dtype)
    with torch.no_grad():
        expected, got = original(x), collapsed(x)
    return float((got - expected).abs().max() / expected.abs().max().clamp_min(torch.finfo(dtype).tiny))
