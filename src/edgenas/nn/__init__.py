"""Building blocks shared by the search spaces, the supernets and the compression code."""

from edgenas.nn.blocks import ChannelShuffle, ConvBNAct, MBConv, make_divisible
from edgenas.nn.graft import DominoPro, GraftedBlock, graft, graft_block, graftable_blocks, parse_mask
from edgenas.nn.reparam import LinearMap, reparameterize

__all__ = [
    "ChannelShuffle",
    "ConvBNAct",
    "DominoPro",
    "GraftedBlock",
    "LinearMap",
    "MBConv",
    "graft",
    "graft_block",
    "graftable_blocks",
    "make_divisible",
    "parse_mask",
    "reparameterize",
]
