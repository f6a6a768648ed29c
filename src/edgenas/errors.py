"""The errors a user can cause.

Every error that a user can trigger (a bad arch string, an unknown space, an unwritable path) raises a subclass of
:class:`EdgeNASError` with a message that says what went wrong and what to do. The CLI prints the message as one line
and exits with code 2; library callers catch the class they care about.
"""

from __future__ import annotations


class EdgeNASError(Exception):
    """Base class of every error a user of edgenas can cause."""


class UnknownSpaceError(EdgeNASError, KeyError):
    """A search space name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class DuplicateSpaceError(EdgeNASError):
    """A search space registered twice under the same name."""


class SpaceConfigError(EdgeNASError, ValueError):
    """A search-space option that is unknown or out of range."""


class ArchError(EdgeNASError, ValueError):
    """An architecture that does not belong to its search space (wrong length, unknown or disallowed op)."""


class SpecFileError(EdgeNASError):
    """An architecture spec file that cannot be read: missing, malformed JSON, wrong format version."""


class SpaceMismatchError(EdgeNASError):
    """A spec or encoding that was made for a different search space or space configuration."""


class OutputPathError(EdgeNASError, OSError):
    """An output path that cannot be written."""


class ExportError(EdgeNASError):
    """An export that failed or whose result does not match PyTorch."""


class DatasetNotFoundError(EdgeNASError, FileNotFoundError):
    """No dataset where the user pointed (``--data`` / ``EDGENAS_DATA``), or none given at all."""


class DatasetError(EdgeNASError, ValueError):
    """A dataset that exists but cannot be used as asked (corrupt file, subset larger than a class ...)."""


class CheckpointError(EdgeNASError):
    """A checkpoint that is missing, corrupt or incompatible, or a run directory in the wrong state for resuming."""


class NonFiniteLossError(EdgeNASError, FloatingPointError):
    """The training loss became NaN or infinite; the message names the step."""


class TrainConfigError(EdgeNASError, ValueError):
    """Training options that cannot work together (a batch not divisible by the world size, fp16 on a CPU ...)."""


class RuntimeUnavailableError(EdgeNASError):
    """A runtime name that is unknown, or known but not usable on this machine (the message says why)."""


class StoreError(EdgeNASError):
    """A measurement store that cannot be opened or written (unwritable path, corrupt file, wrong schema)."""


class MeasurementError(EdgeNASError):
    """A measurement that cannot be taken or compared (no common architectures, too few points ...)."""


class ReparamError(EdgeNASError, ValueError):
    """A module or chain that cannot be collapsed exactly into one convolution (the message names the layer)."""


class GraftError(EdgeNASError, ValueError):
    """A grafting mask or model that cannot be grafted: wrong mask length or characters, no graftable blocks."""


class ModelSourceError(EdgeNASError, ValueError):
    """A model reference (``torchvision:NAME``, spec file, graft file, checkpoint) that cannot be resolved."""


class SearchError(EdgeNASError, ValueError):
    """A search that cannot run as asked: an infeasible target, a predictor of another space, a supernet without
    a path, a run directory that does not match the options."""


class BenchError(EdgeNASError, ValueError):
    """A benchmark table that is missing or malformed, a cell it does not hold, or a budget no cell meets."""


class ProxyError(EdgeNASError, ValueError):
    """An unknown accuracy proxy, or settings a proxy cannot work with (too few epochs, an empty batch list)."""


class EvolutionError(EdgeNASError, ValueError):
    """An evolutionary search that cannot run: bad settings, or no architecture satisfies its constraint."""


class PredictorError(EdgeNASError, ValueError):
    """Settings or data a predictor cannot be trained with (e.g. too few pairs for the meta-accuracy predictor)."""


class DominoError(EdgeNASError, ValueError):
    """A Domino search that cannot run: a target no mask meets, pairs of another network, bad settings."""
