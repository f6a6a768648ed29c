"""Architecture search: the shared supernet, an engine that runs any registered strategy on it (LightNAS: a search
that meets a latency/energy target; the FBNet baseline), the budget controller and the device in the loop."""

from edgenas.search import darts, fbnet, lightnas, random_search, surgenas  # noqa: F401  (register the built-in strategies)
from edgenas.search.strategy import Strategy, get_strategy, list_strategies, register_strategy
from edgenas.search.supernet import ChoiceLayer, PathState, Supernet

__all__ = ["ChoiceLayer", "PathState", "Strategy", "Supernet", "get_strategy", "list_strategies", "register_strategy"]
