"""Process-group setup for ``torchrun`` (env:// only), and the helpers the trainer needs under DDP.

``torchrun --nproc-per-node N -m edgenas train ...`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``
and ``MASTER_PORT``; we read nothing else and hard-code no address. Backend: NCCL on CUDA, Gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistEnv:
    """Where this process runs: its rank, the world size and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only rank that logs and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when more than one process trains."""
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistEnv:
    """Join the process group when launched by ``torchrun`` with more than one process; pick the device.

    Args:
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", init_method="env://")
    return DistEnv(rank, world_size, local_rank, dev)


def shutdown_distributed() -> None:
    """Leave the process group (a no-op when none was joined)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over all ranks (returns it unchanged in a single process)."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        values = values.clone()
        dist.all_reduce(values)
    return values


def barrier() -> None:
    """Wait for every rank (a no-op in a single process)."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks whose backward sums the incoming gradients over ranks too (the adjoint of a sum-all-reduce)."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm whose training statistics cover the global batch of all ranks, on any device and backend.

    ``nn.SyncBatchNorm`` runs only on GPUs; this one all-reduces per-channel sums with a differentiable all-reduce,
    so Gloo on CPUs works and DDP over N processes computes exactly what one
    process computes on the whole batch. Outside a multi-process training step it is a plain BatchNorm2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        # two passes (mean first, then the centred second moment), as BatchNorm computes it: the one-pass
        # E[x^2] - E[x]^2 cancels badly and lets 1-process and N-process runs drift apart step after step
        count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype, device=x.device)
        sums = _AllReduceSum.apply(torch.cat([x.sum((0, 2, 3)), count]))
        total = sums[-1]
        mean = sums[:-1] / total
        centred = x - mean.view(1, -1, 1, 1)
        var = _AllReduceSum.apply((centred * centred).sum((0, 2, 3))) / total
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * total / (total - 1).clamp_min(1), alpha=m)
        scale = torch.rsqrt(var + self.eps)
        if self.affine:
            return centred * (scale * self.weight).view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return centred * scale.view(1, -1, 1, 1)


def convert_batchnorm_for_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """Replace BatchNorm2d layers by ones that normalise over the global batch (SyncBatchNorm on CUDA)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)

    def convert(module: nn.Module) -> nn.Module:
        if type(module) is nn.BatchNorm2d:
            new = GlobalBatchNorm2d(
                module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
            )
            new.load_state_dict(module.state_dict())
            return new
        for name, child in module.named_children():
            setattr(module, name, convert(child))
        return module

    return convert(model)


def revert_batchnorm(model: nn.Module) -> nn.Module:
    """Turn the synchronised BatchNorm layers back into ``nn.BatchNorm2d`` (for saving a standalone model)."""
    for name, child in model.named_children():
        if isinstance(child, nn.SyncBatchNorm | GlobalBatchNorm2d):
            plain = nn.BatchNorm2d(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
            )
            plain.load_state_dict(child.state_dict())
            setattr(model, name, plain.to(next(child.parameters()).device))
        else:
            revert_batchnorm(child)
    return model
