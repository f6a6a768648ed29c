"""Proxies of architectures: each spec built with a seeded initialisation and probed on the same fixed batches."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from edgenas._random import seeded_torch
from edgenas.errors import ProxyError
from edgenas.proxies._registry import get_proxy
from edgenas.proxies.probe import ProbeSettings, Trace, probe
from edgenas.spaces import ArchSpec, build
from edgenas.train.data import FixedOrderBatches, ImageData, balanced_subset

Batch = tuple[torch.Tensor, torch.Tensor]


def proxy_batches(
    data: ImageData, images: int, batch_size: int, *, seed: int = 0, size: int | None = None
) -> list[Batch]:
    """The fixed batches every architecture is probed on: a class-balanced subset of ``images`` training images in
    a fixed order, normalised, no augmentation, channels-last, held in memory so every epoch sees the same tensors.

    Raises:
        ProxyError: fewer than one batch of images.
    """
    if images < batch_size:
        raise ProxyError(f"{images} images make no batch of {batch_size}")
    indices = balanced_subset(data.train_labels, images, seed=seed)
    return list(FixedOrderBatches(data, batch_size, indices=indices.tolist(), size=size, channels_last=True))


def probe_spec(
    spec: ArchSpec,
    batches: Sequence[Batch],
    settings: ProbeSettings,
    *,
    seed: int = 0,
    on_epoch: Callable[[int], None] | None = None,
) -> Trace:
    """Build ``spec`` with weights drawn from ``seed`` (the caller's torch generator untouched) and probe it."""
    with seeded_torch(seed):
        model = build(spec).to(memory_format=torch.channels_last)
        return probe(model, batches, settings, on_epoch=on_epoch)


def settings_for(proxy_names: Sequence[str], epochs: int, base: ProbeSettings | None = None) -> ProbeSettings:
    """Probe settings that serve every named proxy at ``epochs``: no training when all are training-free, the
    Jacobian only when one reads it.

    Raises:
        ProxyError: an unknown proxy, or ``epochs`` below a proxy's minimum.
    """
    proxies = [get_proxy(name) for name in proxy_names]
    for proxy in proxies:
        if epochs < proxy.min_epochs:
            raise ProxyError(f"proxy {proxy.name} needs at least {proxy.min_epochs} epochs, got {epochs}")
    trained = any(p.min_epochs for p in proxies)
    base = base or ProbeSettings()
    return ProbeSettings(
        epochs=epochs if trained else 0,
        lr=base.lr,
        momentum=base.momentum,
        weight_decay=base.weight_decay,
        jacobian=any(p.needs_jacobian for p in proxies),
        jacobian_images=base.jacobian_images,
    )
