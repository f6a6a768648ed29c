"""Deployment-time folding of BatchNorm into the preceding convolution (eval-mode semantics)."""

from __future__ import annotations

import copy
import itertools

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batchnorm(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """A copy of ``model`` in eval mode where every ``Conv2d`` directly followed by a ``BatchNorm2d`` inside an
    ``nn.Sequential`` (our ``ConvBNAct``, NAS-Bench-201's ReLU-conv-BN, stems) is replaced by one biased conv and the
    BatchNorm by an identity. The function is exact in eval mode: outputs change only by float rounding.
    """
    model = model if inplace else copy.deepcopy(model)
    model.eval()
    for module in list(model.modules()):
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for first, second in itertools.pairwise(names):
            conv, bn = module._modules[first], module._modules[second]
            if isinstance(conv, nn.Conv2d) and type(bn) is nn.BatchNorm2d and bn.track_running_stats:
                module._modules[first] = fuse_conv_bn_eval(conv, bn)
                module._modules[second] = nn.Identity()
    return model
