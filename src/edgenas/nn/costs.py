"""Structural cost figures of a network: parameters, FLOPs, memory accesses and arithmetic intensity.

Definitions (written down because papers disagree):

* ``flops``: what :class:`torch.utils.flop_counter.FlopCounterMode` counts for one forward pass at the given input
  shape: 2 FLOPs per multiply-add of convolutions and matrix products; BN, activations and pooling are not counted.
* ``mult_adds`` = ``flops / 2``: the multiply-adds, the quantity the thesis (Eq 3.18) and NAS-Bench-201 call FLOPs.
* ``memory_accesses``: thesis Eq 3.18, ``MACs = H W (I + O) + I O K_H K_W``, generalised to strides and groups as
  ``input elements + output elements + weight elements`` of each ``nn.Conv2d``, summed over convolutions. Elements,
  not bytes. Activations scale with the batch, weights do not.
* ``intensity`` = ``mult_adds / memory_accesses`` (thesis Eq 3.19), multiply-adds per element accessed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass(frozen=True)
class CostReport:
    """Cost figures of one network at one input shape (see the module docstring for the definitions).

    Attributes:
        input_shape: ``(N, C, H, W)`` the figures were computed at.
        params: trainable and non-trainable parameters (count).
        flops: FLOPs of one forward pass (count; 2 per multiply-add).
        mult_adds: multiply-adds of one forward pass (count).
        memory_accesses: elements read and written by the convolutions (count).
        intensity: multiply-adds per element accessed.
    """

    input_shape: tuple[int, ...]
    params: int
    flops: int
    mult_adds: int
    memory_accesses: int
    intensity: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict, with the figures in millions added (``params_M``, ``mflops``, ``mult_adds_M``, ...)."""
        out = asdict(self)
        out["input_shape"] = list(self.input_shape)
        out.update(
            params_M=self.params / 1e6,
            mflops=self.flops / 1e6,
            mult_adds_M=self.mult_adds / 1e6,
            memory_accesses_M=self.memory_accesses / 1e6,
        )
        return out


def count_params(model: nn.Module) -> int:
    """Number of parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())


def measure_costs(model: nn.Module, input_shape: tuple[int, ...]) -> CostReport:
    """Params, FLOPs, multiply-adds, memory accesses and intensity of ``model`` for one input of ``input_shape``.

    The model runs one forward pass in eval mode under ``torch.no_grad`` on a zero input on its own device; its
    training mode is restored afterwards.
    """
    accesses = 0

    def count_conv(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal accesses
        accesses += inputs[0].numel() + output.numel() + module.weight.numel()

    hooks = [m.register_forward_hook(count_conv) for m in model.modules() if isinstance(m, nn.Conv2d)]
    was_training = model.training
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        model.eval()
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(torch.zeros(input_shape, device=device))
        flops = int(counter.get_total_flops())
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    mult_adds = flops // 2
    return CostReport(
        input_shape=tuple(int(d) for d in input_shape),
        params=count_params(model),
        flops=flops,
        mult_adds=mult_adds,
        memory_accesses=accesses,
        intensity=mult_adds / accesses if accesses else 0.0,
    )


def count_mult_adds(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """The multiply-adds of the convolutions and linear layers in one forward pass on a zero input of
    ``input_shape`` (what :func:`measure_costs` counts on these networks, by forward hooks: several times faster than
    its ``FlopCounterMode``, for callers that rank many networks). Eval mode and ``no_grad``; the mode is restored."""
    total = 0

    def count(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        per_output = module.in_features if isinstance(module, nn.Linear) else module.weight[0].numel()
        total += output.numel() * per_output

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        with torch.no_grad():
            model.eval()(torch.zeros(input_shape, device=device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return total
