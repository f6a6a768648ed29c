"""Architecture search: the shared supernet, LightNAS (a search that meets a latency/energy target) and the FBNet
baseline."""

from edgenas.search.supernet import ChoiceLayer, PathState, Supernet

__all__ = ["ChoiceLayer", "PathState", "Supernet"]
