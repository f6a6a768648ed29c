"""Building blocks shared by the search spaces, the supernets and the compression code."""

from edgenas.nn.blocks import ChannelShuffle, ConvBNAct, MBConv, make_divisible

__all__ = ["ChannelShuffle", "ConvBNAct", "MBConv", "make_divisible"]
