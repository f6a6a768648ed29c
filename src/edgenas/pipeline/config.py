"""The typed configuration of ``edgenas run``: one TOML file, one dataclass per section, validated key by key.

Every key has a type, a default and (where it matters) a range or a list of allowed values; an unknown key, a wrong
type or an out-of-range value raises :class:`ConfigError` naming the dotted key (``train.epochs``) and what is
allowed, before anything is written. The resolved configuration (defaults filled in) is what the stages hash, so a
changed default also re-runs the stages it touches.
"""

from __future__ import annotations

import dataclasses
import math
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from edgenas.errors import EdgeNASError

try:
    import tomllib
except ImportError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


class ConfigError(EdgeNASError, ValueError):
    """A configuration file that cannot be run: the message names the key and the allowed values."""


def _key(*, help: str, low: float | None = None, high: float | None = None, choices: tuple[str, ...] = ()) -> Any:
    """Metadata of one key: its help text, its closed range and its allowed values."""
    return {"help": help, "low": low, "high": high, "choices": choices}


def option(default: Any, **meta: Any) -> Any:
    """A dataclass field with a default and the metadata :func:`_key` describes."""
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=_key(**meta))
    return field(default=default, metadata=_key(**meta))


@dataclass(frozen=True)
class DataConfig:
    path: str = option(
        "sample", help="'sample' (the CIFAR-10 sample shipped with edgenas), a dataset folder, or '' for EDGENAS_DATA"
    )
    subset: int = option(0, help="class-balanced subset of the training images (0 = all)", low=0)
    test_subset: int = option(0, help="class-balanced subset of the test images (0 = all)", low=0)


@dataclass(frozen=True)
class SpaceConfig:
    name: str = option("mbv2-cifar", help="a registered search space (edgenas space list)")
    options: dict = option({}, help="space options, e.g. { width = 0.5 }")  # noqa: RUF009  (a default_factory)


@dataclass(frozen=True)
class DeviceConfig:
    runtime: str = option("ort-cpu", help="the runtime that measures latency (edgenas runtimes)")
    batch: int = option(1, help="input batch of every measurement", low=1, high=4096)
    threads: int = option(1, help="intra-op threads of CPU runtimes", low=0, high=256)
    name: str = option("", help="the device's name in the measurement store ('' = its fingerprint)")
    remote: str = option("", help="measure through a command, e.g. 'ssh pi python runner.py {dir}' ('' = here)")
    max_load: float = option(
        0.25, help="warn before measuring when other processes use more than this share of each core", low=0
    )


@dataclass(frozen=True)
class BudgetConfig:
    latency_ms: float = option(0.0, help="latency target T (ms); 0 = take latency_quantile of the profile", low=0)
    latency_quantile: float = option(0.3, help="target = this quantile of the profiled latencies", low=0, high=1)
    energy_mj: float = option(0.0, help="energy target (mJ per inference; needs an energy counter); 0 = none", low=0)
    tolerance: float = option(0.05, help="the final measured latency may miss T by this share", low=0, high=1)


@dataclass(frozen=True)
class ProfileConfig:
    n: int = option(120, help="architectures measured on the device", low=8, high=1_000_000)
    sampling: str = option("cover", help="how they are drawn", choices=("uniform", "ordered", "cover"))
    warmup: int = option(10, help="warm-up runs per measurement", low=0, high=10_000)
    repeats: int = option(30, help="timed runs per measurement", low=3, high=100_000)
    seed: int = option(0, help="seed of the sample", low=0)


@dataclass(frozen=True)
class PredictorConfig:
    kind: str = option(
        "mlp",
        help="predictor model (auto: the best of lut, mlp and gnn on a validation split of the fitted archs)",
        choices=("mlp", "gnn", "gcn", "lut", "auto"),
    )
    train_size: float = option(0.8, help="share of the profile used for fitting (the rest scores it)", low=0.1, high=1)
    epochs: int = option(200, help="maximum fitting epochs", low=1, high=100_000)


@dataclass(frozen=True)
class SearchStageConfig:
    strategy: str = option("lightnas", help="the search strategy", choices=("lightnas",))
    epochs: int = option(4, help="search epochs", low=1, high=10_000)
    warmup_epochs: int = option(1, help="weights-only epochs first", low=0, high=10_000)
    batch_size: int = option(64, help="images per weight step", low=1, high=65_536)
    alpha_batch_size: int = option(16, help="images per architecture step (0 = batch_size)", low=0, high=65_536)
    alpha_lr: float = option(0.01, help="Adam lr of the architecture logits", low=1e-8, high=10)
    subset: int = option(
        0, help="class-balanced training images the search uses (0 = data.subset: what the run trains on)", low=0
    )
    calibrate: int = option(0, help="archs near T measured to scale the predictor before the search (0 = off)", low=0)
    landing: str = option(
        "close-loop",
        help="how the found arch is brought onto T with the device: the closed loop on measurements, or rescale-and-"
        "refine rounds (the head-to-head: benchmarks/results/landing.md)",
        choices=("close-loop", "correct"),
    )
    close_loop: int = option(12, help="landing = close-loop: measurements it may spend", low=1, high=10_000)
    correct_rounds: int = option(
        0, help="landing = correct: measure-and-correct rounds (0 = measure the found arch once)", low=0, high=100
    )
    oneshot_candidates: int = option(
        0,
        help="profiled archs ranked by one-shot accuracy after the search, those of latency nearest the found arch's "
        "(0 = all: the report's Pareto view of the whole profile)",
        low=0,
        high=1_000_000,
    )
    device: str = option("auto", help="torch device", choices=("auto", "cpu", "cuda"))
    nproc: int = option(
        1, help="processes of the search (> 1: torchrun on this machine, one per GPU)", low=1, high=1024
    )


@dataclass(frozen=True)
class ChannelsStageConfig:
    enabled: bool = option(False, help="refine the found net's per-layer channels with BTE (thesis Algorithm 2)")
    profile_n: int = option(300, help="channel configurations measured for its latency predictor", low=12)
    sampling: str = option(
        "uniform", help="how they are drawn (cover: half spread over the latency range)", choices=("uniform", "cover")
    )
    proxy: str = option("bte", help="the fitness", choices=("bte", "tse", "tse-e", "jacobian"))
    epochs: int = option(3, help="epochs of each fitness probe (BTE: E)", low=1, high=100)
    images: int = option(2560, help="class-balanced training images each probe trains on", low=2)
    batch_size: int = option(64, help="images per probe step", low=1, high=65_536)
    population: int = option(20, help="candidates per generation", low=2, high=10_000)
    iterations: int = option(20, help="generations", low=1, high=10_000)
    top_k: int = option(10, help="candidates kept as parents (below population)", low=1, high=10_000)
    constraint: str = option("le", help="predicted latency <= T, or within tolerance of T", choices=("le", "eq"))
    tolerance: float = option(
        0.02, help="relative band of constraint eq, and of the landing on T (le: at most T + it)", low=1e-6, high=0.99
    )
    close_loop: int = option(
        12,
        help="measurements the landing of the found configuration on T may spend (the closed loop; 0 = measure once)",
        low=0,
        high=10_000,
    )


@dataclass(frozen=True)
class TrainStageConfig:
    epochs: int = option(15, help="training epochs of the found network", low=1, high=10_000)
    batch_size: int = option(64, help="images per step", low=1, high=65_536)
    lr: float = option(0.1, help="peak SGD learning rate (cosine decay)", low=1e-8, high=100)
    weight_decay: float = option(5e-4, help="weight decay", low=0, high=1)
    label_smoothing: float = option(0.0, help="label smoothing", low=0, high=0.99)
    amp: str = option("none", help="mixed precision", choices=("none", "bf16", "fp16"))
    device: str = option("auto", help="torch device", choices=("auto", "cpu", "cuda"))
    nproc: int = option(
        1, help="processes of the training (> 1: torchrun on this machine, one per GPU)", low=1, high=1024
    )


@dataclass(frozen=True)
class BaselineConfig:
    n: int = option(
        0, help="random profiled archs of the found one's latency trained beside it (0 = no baseline)", low=0, high=1000
    )
    epochs: int = option(5, help="training epochs of each (the found arch gets the same)", low=1, high=10_000)
    band: float = option(0.05, help="their measured latency within this share of the found arch's", low=0, high=1)
    width: bool = option(
        True,
        help="also train MobileNetV2 (torchvision) at the largest width multiplier whose latency, measured beside the "
        "found arch, meets the found arch's",
    )
    seeds: int = option(1, help="training seeds of each network (top-1 mean ± std over them)", low=1, high=100)


@dataclass(frozen=True)
class CompressConfig:
    enabled: bool = option(True, help="graft and collapse the blocks whose collapse pays on the device")
    min_gain: float = option(0.03, help="graft a block when collapsing it alone saves this share of latency", low=0)
    finetune_epochs: int = option(3, help="epochs of training of the grafted network", low=0, high=10_000)
    finetune_lr: float = option(0.01, help="peak learning rate of that training", low=1e-8, high=100)
    max_accuracy_drop: float = option(3.0, help="keep the uncompressed net if top-1 drops more (points)", low=0)
    method: str = option(
        "blocks",
        help="'blocks': graft the blocks whose collapse alone pays; 'domino': Domino's mask search (predicted accuracy "
        "under a predicted latency, thesis Ch 5)",
        choices=("blocks", "domino"),
    )
    target_ms: float = option(0.0, help="domino: latency target of the compressed net (ms); 0 = the run's", low=0)
    latency_masks: int = option(250, help="domino: masks measured for its latency predictor", low=10, high=100_000)
    proxy_masks: int = option(100, help="domino: masks trained on the proxy task (meta-training)", low=20, high=100_000)
    target_masks: int = option(10, help="domino: masks fine-tuned like the final net (the shots)", low=1, high=10_000)
    proxy_epochs: int = option(3, help="domino: epochs of a proxy training", low=1, high=1000)
    proxy_images: int = option(1000, help="domino: class-balanced images of a proxy training", low=2)
    proxy_resolution: int = option(16, help="domino: input side of a proxy training (px)", low=8, high=1024)
    distill: bool = option(False, help="domino: distil the grafted net from the trained one")
    close_loop: int = option(
        12,
        help="domino: measurements the landing of the searched mask on T may spend (the closed loop; 0 = measure once)",
        low=0,
        high=10_000,
    )


@dataclass(frozen=True)
class ExportConfig:
    opset: int = option(17, help="ONNX opset", low=13, high=23)


@dataclass(frozen=True)
class RunConfig:
    """The whole run; each section is a table of the TOML file, ``seed`` a top-level key."""

    seed: int = option(0, help="seed of the search, the training and the sampling", low=0)
    data: DataConfig = field(default_factory=DataConfig)
    space: SpaceConfig = field(default_factory=SpaceConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    search: SearchStageConfig = field(default_factory=SearchStageConfig)
    channels: ChannelsStageConfig = field(default_factory=ChannelsStageConfig)
    train: TrainStageConfig = field(default_factory=TrainStageConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    compress: CompressConfig = field(default_factory=CompressConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    def to_dict(self) -> dict[str, Any]:
        """The resolved configuration as plain data (what the stages hash and the report shows)."""
        return dataclasses.asdict(self)


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a TOML run configuration.

    Raises:
        ConfigError: the file is missing or not TOML, or a key is unknown, of the wrong type or out of range.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no configuration file at {path}")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    return config_from_dict(raw)


def config_from_dict(raw: dict[str, Any]) -> RunConfig:
    """A :class:`RunConfig` from parsed TOML, checked key by key (see :func:`load_config`). The one table a file
    must have is ``[budget]``: a run without a stated budget is more likely an empty or wrong file than a wish for
    the defaults."""
    config = _build(RunConfig, raw, prefix="")
    if "budget" not in raw:
        raise ConfigError(
            "the configuration has no [budget]: give budget.latency_ms (ms) or budget.latency_quantile "
            "(a quantile of the latencies profiled on the device)"
        )
    _check_consistency(config)
    return config


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"config key '{prefix.rstrip('.')}' must be a table, got {_kind(raw)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = get_type_hints(cls)
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        where = f"[{prefix.rstrip('.')}]" if prefix else "the top level"
        raise ConfigError(
            f"unknown config key '{prefix}{unknown[0]}'; keys allowed in {where}: {', '.join(sorted(fields))}"
        )
    values = {}
    for name, value in raw.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            values[name] = _build(kind, value, f"{prefix}{name}.")
        else:
            values[name] = _checked(f"{prefix}{name}", value, kind, fields[name].metadata)
    return cls(**values)


def _checked(key: str, value: Any, kind: Any, meta: Any) -> Any:
    """``value`` of ``key`` after checking its type, range and allowed values (ints are accepted for floats)."""
    kinds = get_args(kind) if get_origin(kind) in (Union, types.UnionType) else (kind,)
    expected = kinds[0]
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ConfigError(f"config key '{key}' must be {_type_name(expected)}, got {_kind(value)} {value!r}")
    if expected is float and not math.isfinite(value):
        raise ConfigError(f"config key '{key}' must be a finite number, got {value!r}")
    choices = meta.get("choices") or ()
    if choices and value not in choices:
        raise ConfigError(f"config key '{key}' must be one of {', '.join(choices)}; got {value!r}")
    low, high = meta.get("low"), meta.get("high")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"in [{low:g}, {high:g}]" if low is not None and high is not None else f">= {low:g}"
        raise ConfigError(f"config key '{key}' must be {bounds}; got {value!r}")
    return value


def _type_name(kind: type) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "a table"}[kind]


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", dict: "a table"}.get(
        type(value), type(value).__name__
    )


def _check_consistency(config: RunConfig) -> None:
    """Rules across keys: the warm-up is shorter than the search; the space and the runtime exist."""
    from edgenas.hardware.runtimes import RUNTIMES
    from edgenas.spaces import get_space, list_spaces

    if config.search.warmup_epochs >= config.search.epochs:
        raise ConfigError(
            f"config key 'search.warmup_epochs' ({config.search.warmup_epochs}) must be below search.epochs "
            f"({config.search.epochs})"
        )
    if config.search.landing == "close-loop" and config.search.correct_rounds:
        raise ConfigError(
            "config key 'search.correct_rounds' goes with search.landing = 'correct'; the default landing is now the "
            "closed loop (search.close_loop measurements), which won benchmarks/results/landing.md: drop the key, "
            "or set search.landing = 'correct'"
        )
    if config.channels.top_k >= config.channels.population:
        raise ConfigError(
            f"config key 'channels.top_k' ({config.channels.top_k}) must be below channels.population "
            f"({config.channels.population})"
        )
    if config.channels.images < config.channels.batch_size:
        raise ConfigError("config key 'channels.images' must hold at least one batch of channels.batch_size")
    for key, value, allowed in (
        ("space.name", config.space.name, list_spaces()),
        ("device.runtime", config.device.runtime, list(RUNTIMES)),
    ):
        if value not in allowed:
            raise ConfigError(f"config key '{key}' must be one of {', '.join(allowed)}; got {value!r}")
    try:
        get_space(config.space.name, **config.space.options)
    except EdgeNASError as exc:
        raise ConfigError(f"config key 'space.options': {exc}") from exc
    if config.device.remote and "{dir}" not in config.device.remote:
        raise ConfigError("config key 'device.remote' must contain {dir} (where the models to measure are)")


def describe_keys() -> list[tuple[str, Any, str]]:
    """Every key as ``(dotted name, default, help)`` (documentation of the file format)."""
    rows = []
    for section in dataclasses.fields(RunConfig):
        if section.default_factory is dataclasses.MISSING:
            rows.append((section.name, section.default, section.metadata["help"]))
            continue
        for f in dataclasses.fields(section.default_factory()):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            rows.append((f"{section.name}.{f.name}", default, f.metadata["help"]))
    return rows
