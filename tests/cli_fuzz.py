"""The CLI fuzz matrix: every command of the Typer app, every numeric option and every path input fed bad values.

Shared by ``tests/test_cli_fuzz.py`` (which asserts the contract) and ``benchmarks/cli_fuzz.py`` (which reports the
matrix's size, the share that meets the contract and the time).

The contract for each case (a command, one parameter, one value, plain or ``--json``):

- exit 0: the value is valid (inside the option's declared range, or a path the command may create or overwrite)
  and the command did its job; nothing is checked beyond "no traceback";
- exit 2: one line on stderr starting with ``error:`` and nothing on stdout (``--json``: one JSON object
  ``{"error", "kind"}`` on stdout and nothing on stderr); a number refused while parsing names its option; no file
  was created or changed anywhere under the workspace;
- anything else (another exit code, an exception escaping ``main``) breaks the contract.

Numbers tried: 0, -1, NaN, inf, -inf and 1e30. Paths tried: a missing file, an empty file, a folder and a file of
random bytes. Each case runs in-process on tiny fixtures (a 4-channel NAS-Bench-201 cell, the shipped CIFAR-10
sample) in a fresh case folder, so a case that is accepted and writes its output does not disturb the next.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import time
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: The bad numbers, by name.
NUMBERS = {"zero": "0", "minus one": "-1", "nan": "nan", "inf": "inf", "-inf": "-inf", "huge": "1e30"}
#: The bad paths, by name.
PATHS = ("missing", "empty", "folder", "garbage")
#: Positional arguments and string options that name an input location (no Path annotation: they also take names).
PATHLIKE_STRINGS = {"arch", "model", "--data", "--model", "--teacher"}

NB201_TINY = ("channels=4", "cells_per_stage=1")
MBV2_TINY = ("width=0.25", "resolution=16")


@dataclass
class Workspace:
    """Fixtures every case reads (never written by a case)."""

    root: Path
    spec: Path  # a tiny NAS-Bench-201 cell
    mbv2_spec: Path  # a tiny MobileNetV2-CIFAR arch
    table: Path  # nb201 arch strings with two additive "devices"
    store: Path  # two measured devices on the table's archs
    mbv2_store: Path  # whole-network torch-cpu measurements of tiny mbv2 archs (for predictor lut)
    predictor: Path  # a LUT predictor of the tiny nb201 space
    target_ms: float  # a latency target inside the predictor's range
    run: Path  # a trained tiny nb201 run
    model: Path  # a grafted tiny mbv2 model file
    bench_dir: Path  # hand-made NAS-Bench-201 + HW-NAS-Bench tables
    run_config: Path  # a tiny `edgenas run` configuration
    run_dir: Path  # a run directory of `edgenas run` with no stage finished yet
    mask_predictor: Path | None = None  # a latency predictor of the tiny mbv2 arch's grafting masks
    channel_predictor: Path | None = None  # a latency predictor of its channel configurations
    job: Path | None = None  # a job file: resume the finished tiny training of a copy of `run` (repeatable)


def _tiny_nb201():
    from edgenas.spaces import get_space

    return get_space("nb201", **{k: int(v) for k, v in (o.split("=") for o in NB201_TINY)})


def build_workspace(root: Path) -> Workspace:
    """Write the fixtures under ``root/fixtures`` (about 15 s: one tiny training, one tiny graft)."""
    from edgenas.hardware.store import MeasurementKey, MeasurementStore
    from edgenas.predictors import FitConfig, fit_predictor, table_from_csv
    from edgenas.spaces import get_space, save_specs

    fixtures = root / "fixtures"
    fixtures.mkdir(parents=True)
    space = _tiny_nb201()
    spec = save_specs(fixtures / "cell.json", [space.from_index(6111)])
    mbv2 = get_space("mbv2-cifar", width=0.25, resolution=16)
    mbv2_spec = save_specs(fixtures / "mbv2.json", [mbv2.sample(seed=0)[0]])

    rng = np.random.default_rng(0)
    op_cost = rng.uniform(0.05, 0.5, size=len(space.op_names))
    archs = [space.from_index(int(i)) for i in rng.choice(15625, size=80, replace=False)]
    table = fixtures / "table.csv"
    with table.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["arch", "dev_a", "dev_b"])
        for arch in archs:
            cost = 1.0 + float(space.one_hot(arch).numpy().sum(axis=0) @ op_cost)
            writer.writerow([str(arch), cost, 2.5 * cost])
    store = fixtures / "store.sqlite"
    with MeasurementStore(store) as db:
        for name, factor in (("dev-a", 1.0), ("dev-b", 2.5)):
            device = db.device_id(name, source="fuzz fixture")
            for i, arch in enumerate(archs):
                db.add(device, arch, MeasurementKey("ort-cpu", resolution=32), factor * (1.0 + i / 10))
    mbv2_store = fixtures / "mbv2.sqlite"
    with MeasurementStore(mbv2_store) as db:
        device = db.device_id("cpu", source="fuzz fixture")
        for i, arch in enumerate(mbv2.sample(seed=1, n=6)):
            db.add(device, arch, MeasurementKey("torch-cpu", resolution=16), 1.0 + i / 10)
    fitted = fit_predictor("lut", table_from_csv(table, space, "arch", "dev_a"), FitConfig(epochs=50, seed=0))
    predictor = fitted.save(fixtures / "predictor.pt")
    values = fitted.predict([space.from_index(i) for i in range(0, 15625, 97)])
    target = float(np.median(values))

    run = fixtures / "run"
    code, _, err = invoke(["train", str(spec), "-o", str(run), *_train_options(), "--json"])
    assert code == 0, err
    model = fixtures / "grafted.pt"
    code, _, err = invoke(["graft", str(mbv2_spec), "--mask", "all", "-o", str(model), "--json"])
    assert code == 0, err
    from conftest import write_nb201_tables

    bench_dir = write_nb201_tables(fixtures / "bench")
    run_config, run_dir = _pipeline_fixtures(fixtures)
    job = _job_fixture(fixtures, spec, run)
    return Workspace(
        root,
        spec,
        mbv2_spec,
        table,
        store,
        mbv2_store,
        predictor,
        target,
        run,
        model,
        bench_dir,
        run_config,
        run_dir,
        mask_predictor=_made_up_predictor(_mask_space(mbv2_spec), fixtures / "masks.pt"),
        channel_predictor=_made_up_predictor(_channel_space(mbv2_spec), fixtures / "channels.pt"),
        job=job,
    )


def _job_fixture(fixtures: Path, spec: Path, run: Path) -> Path:
    """A train job resuming a finished copy of ``run``: running it again and again finishes at once, alike."""
    from edgenas.jobs import TrainJob, save_job

    job_run = fixtures / "job-run"
    shutil.copytree(run, job_run)
    recorded = json.loads((run / "config.json").read_text())["train"]
    return save_job(TrainJob(str(spec), recorded, "sample", str(job_run), resume=True), fixtures / "job.json")


def _mask_space(spec_file: Path):
    from edgenas.models import load_model
    from edgenas.spaces.domino import mask_space

    return mask_space(load_model(spec_file).recipe)


def _channel_space(spec_file: Path):
    from edgenas.spaces import load_specs
    from edgenas.spaces.channels import channel_space

    return channel_space(load_specs(spec_file)[0])


def _made_up_predictor(space, path: Path) -> Path:
    """An MLP over ``space`` fitted on a made-up latency (1 ms + 0.1 per choice index), so that commands that would
    profile first (channels, compress domino) can skip it in the fuzz matrix."""
    from edgenas.predictors import ArchTable, FitConfig, fit_predictor

    specs = space.sample(seed=0, n=12)
    values = np.array([1.0 + 0.1 * sum(s.choices) for s in specs])
    table = ArchTable(space, specs, values, "latency_ms", "fuzz fixture")
    return fit_predictor("mlp", table, FitConfig(epochs=20, seed=0)).save(path)


#: A pipeline a CPU runs in seconds: 8 tiny archs measured 3 times, two search epochs, one training epoch.
TINY_RUN = """
[device]
runtime = "torch-cpu"        # no ONNX export per profiled arch: the fuzz runs this pipeline several times
[data]
subset = 40
test_subset = 20
[space]
options = { width = 0.25, resolution = 16 }
[budget]
latency_quantile = 0.5
[profile]
n = 8
sampling = "uniform"
warmup = 0
repeats = 3
[predictor]
kind = "lut"
epochs = 5
[search]
epochs = 2
subset = 40
batch_size = 20
alpha_batch_size = 10
calibrate = 0
correct_rounds = 0
close_loop = 2
oneshot_candidates = 2
device = "cpu"
[train]
epochs = 1
batch_size = 20
device = "cpu"
[compress]
enabled = false
"""


def _pipeline_fixtures(fixtures: Path) -> tuple[Path, Path]:
    """A tiny run configuration, and a run directory holding only its resolved configuration."""
    from edgenas.pipeline import RunConfig

    config = fixtures / "tiny.toml"
    config.write_text(TINY_RUN)
    run_dir = fixtures / "pipeline-run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps(RunConfig().to_dict()))
    return config, run_dir


def _train_options() -> list[str]:
    return ["--data", "sample", "--subset", "40", "--test-subset", "20", "--batch-size", "20", "--device", "cpu"]


def _search_options(ws: Workspace) -> list[tuple[str, str | None]]:
    return [
        ("--space", "nb201"),
        ("--set", NB201_TINY[0]),
        ("--set", NB201_TINY[1]),
        ("--predictor", str(ws.predictor)),
        ("--target-ms", f"{ws.target_ms:.4f}"),
        ("--data", "sample"),
        ("--epochs", "2"),
        ("--warmup-epochs", "1"),
        ("--batch-size", "16"),
        ("--subset", "64"),
        ("--val-fraction", "0.5"),
        ("--device", "cpu"),
        ("-o", "{out}/run"),
    ]


def base_invocations(ws: Workspace) -> dict[str, tuple[list[str], list[tuple[str, str | None]]]]:
    """Per command: (positional arguments, options as (name, value or None for a flag)), valid and cheap.

    ``{out}`` stands for the case's own folder.
    """
    table = [("--table", str(ws.table)), ("--arch-column", "arch")]
    nb_set = [("--set", NB201_TINY[0]), ("--set", NB201_TINY[1])]
    timing = [("--runtime", "torch-cpu"), ("--warmup", "1"), ("--repeats", "3")]
    return {
        "space list": ([], []),
        "space show": (["nb201"], []),
        "arch sample": (["nb201"], [("-o", "{out}/a.jsonl"), ("--n", "2"), ("--seed", "0")]),
        "arch show": ([str(ws.spec)], [("--input-batch", "1")]),
        "arch export": ([str(ws.spec)], [("-o", "{out}/m.onnx"), ("--index", "0")]),
        "train": (
            [str(ws.spec)],
            [("-o", "{out}/run"), *_pairs(_train_options()), ("--epochs", "1"), ("--log-every", "1")],
        ),
        "eval": ([str(ws.run)], [("--data", "sample"), ("--test-subset", "20"), ("--device", "cpu")]),
        "profile": (["nb201"], [("--store", "{out}/m.sqlite"), *nb_set, ("--n", "2"), *timing]),
        "measure": ([str(ws.spec)], [*timing, ("--index", "0")]),
        "comfort": ([str(ws.spec)], [*timing, ("--scales", "1,2"), ("--index", "0"), ("--plot", "{out}/z.png")]),
        "monotonic": ([], [("--store", str(ws.store)), ("--threshold", "0.8")]),
        "store info": ([], [("--store", str(ws.store))]),
        "store import": (
            [str(ws.table)],
            [
                ("--store", "{out}/m.sqlite"),
                ("--space", "nb201"),
                ("--arch-column", "arch"),
                ("--value-column", "dev_a"),
            ],
        ),
        "store export": ([], [("--store", str(ws.store)), ("-o", "{out}/all.csv")]),
        "predictor fit": (
            [],
            [
                *table,
                ("--space", "nb201"),
                *nb_set,
                ("--value-column", "dev_a"),
                ("--kind", "lut"),
                ("--epochs", "5"),
                ("--train-size", "0.8"),
                ("-o", "{out}/p.pt"),
            ],
        ),
        "predictor eval": ([str(ws.predictor)], [*table, ("--value-column", "dev_a")]),
        "predictor compare": (
            [],
            [
                *table,
                ("--space", "nb201"),
                ("--value-column", "dev_a"),
                ("--kinds", "lut"),
                ("--epochs", "5"),
                ("--train-size", "0.8"),
                ("--plot", "{out}/s.png"),
            ],
        ),
        "predictor adapt": (
            [str(ws.predictor)],
            [*table, ("--value-column", "dev_b"), ("--shots", "10"), ("--steps", "5"), ("-o", "{out}/q.pt")],
        ),
        "predictor lut": (
            ["mbv2-cifar"],
            [
                ("--set", MBV2_TINY[0]),
                ("--set", MBV2_TINY[1]),
                ("--store", str(ws.mbv2_store)),
                ("--store-device", "cpu"),
                *timing,
                ("-o", "{out}/lut.pt"),
            ],
        ),
        "search lightnas": ([], _search_options(ws)),
        "search fbnet": ([], [*_search_options(ws), ("--lambda", "0.1")]),
        "search gdas": ([], [*_search_options(ws), ("--search-set", "cells_per_stage=1")]),
        "search darts": ([], _search_options(ws)),
        "search surgenas": (
            [],
            [o for o in _search_options(ws) if o[0] not in ("--target-ms", "--val-fraction")] + [("--beta", "0.1")],
        ),
        "scale": (
            [str(ws.spec)],
            [*timing, ("--index", "0"), ("--step", "0.5"), ("--max-scale", "1.5"), ("-o", "{out}/s.json")],
        ),
        "search random": (
            [],
            [o for o in _search_options(ws) if o[0] not in ("--predictor", "--target-ms")] + [("--time-budget", "1")],
        ),
        "graft": ([str(ws.mbv2_spec)], [("--mask", "all"), ("-o", "{out}/g.pt")]),
        "bench lookup": (["6111"], [("--bench-dir", str(ws.bench_dir))]),
        "bench oracle": (
            [],
            [
                ("--latency-column", "edgegpu"),
                ("--target-ms", "5"),
                ("--judge", "300"),
                ("--tolerance", "0.02"),
                ("--bench-dir", str(ws.bench_dir)),
            ],
        ),
        "reparam": ([str(ws.model)], [("-o", "{out}/r.onnx"), ("--check", None)]),
        "run": ([str(ws.run_config)], [("-o", "{out}/run")]),
        "report": ([str(ws.run_dir)], []),
        "job": ([str(ws.job)], []),
        "channels": (
            [str(ws.mbv2_spec)],
            [
                ("--target-ms", "100"),
                ("-o", "{out}/ch"),
                ("--predictor", str(ws.channel_predictor)),
                ("--warmup", "1"),
                ("--repeats", "3"),
                ("--population", "2"),
                ("--iterations", "1"),
                ("--top-k", "1"),
                ("--images", "16"),
                ("--batch-size", "8"),
                ("--epochs", "2"),
                ("--close-loop", "2"),
                ("--loads", "1"),
                ("--data", "sample"),
            ],
        ),
        "compress domino": (
            [],
            [
                ("--model", str(ws.mbv2_spec)),
                ("--target-ms", "1000"),
                ("-o", "{out}/d"),
                ("--aggressive", None),
                ("--predictor", str(ws.mask_predictor)),
                ("--calibration-masks", "0"),
                ("--loads", "1"),
                ("--epochs", "1"),
                ("--images", "16"),
                ("--test-images", "16"),
                ("--batch-size", "8"),
                ("--warmup", "1"),
                ("--repeats", "3"),
                ("--data", "sample"),
            ],
        ),
        "bench proxies": (
            [],
            [
                ("--n-archs", "3"),
                ("--epochs", "2"),
                ("--images", "20"),
                ("--batch-size", "10"),
                ("--cells-per-stage", "1"),
                ("--channels", "4"),
                ("--bootstrap", "10"),
                ("--data", "sample"),
                ("--bench-dir", str(ws.bench_dir)),
                ("-o", "{out}/p"),
            ],
        ),
        "bench nb201": (
            [],
            [
                ("--strategy", "gdas"),
                ("--seeds", "1"),
                ("--subset", "20"),
                ("--epochs", "2"),
                ("--batch-size", "10"),
                ("--data", "sample"),
                ("--bench-dir", str(ws.bench_dir)),
                ("-o", "{out}/b"),
            ],
        ),
    }


def _pairs(flat: list[str]) -> list[tuple[str, str | None]]:
    return list(zip(flat[::2], flat[1::2], strict=True))


# ----- the parameters of every command ----------------------------------------------------------------------------
def _commands() -> Iterator[tuple[str, typing.Any]]:
    from edgenas.cli._app import click_command

    def walk(command: typing.Any, path: list[str]) -> Iterator[tuple[str, typing.Any]]:
        subs = getattr(command, "commands", None)
        if subs is None:
            yield " ".join(path), command
            return
        for name, sub in subs.items():
            yield from walk(sub, [*path, name])

    yield from walk(click_command(), [])


def _annotation(param: typing.Any) -> typing.Any:
    """The Python type a parameter was declared with, ``X | None`` and ``list[X]`` unwrapped to ``X``."""
    annotation = param.type_descriptor.annotation
    while typing.get_origin(annotation) in (typing.Union, types.UnionType, list):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation


def numeric_and_path_params(command: typing.Any) -> tuple[list[typing.Any], list[typing.Any]]:
    """The command's int/float parameters and its path parameters (Path-typed, or a location given as a string)."""
    numbers, paths = [], []
    for param in command.params:
        kind = _annotation(param)
        name = param.opts[0] if param.param_type_name == "option" else param.name
        if kind in (int, float) and not getattr(param, "is_flag", False):
            numbers.append(param)
        elif kind is Path or name in PATHLIKE_STRINGS:
            paths.append(param)
    return numbers, paths


def numeric_callbacks_missing() -> list[str]:
    """``command --option`` of every int/float option not declared through ``edgenas.cli._options.number``."""
    missing = []
    for name, command in _commands():
        for param in numeric_and_path_params(command)[0]:
            callback = getattr(param.type_descriptor.parameter_info, "callback", None)
            if not getattr(callback, "edgenas_number", False):
                missing.append(f"{name} {param.opts[0] if param.opts else param.name}")
    return missing


# ----- cases ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    command: str
    param: str  # option name (--lr) or argument name (arch)
    value_name: str  # a key of NUMBERS or one of PATHS
    as_json: bool = False

    @property
    def id(self) -> str:
        return f"{self.command} {self.param}={self.value_name}" + (" --json" if self.as_json else "")


def cases(ws: Workspace) -> list[Case]:
    """Every (command, numeric option or path, bad value) of the app, plain."""
    bases = base_invocations(ws)
    found = []
    for name, command in _commands():
        if name not in bases:
            raise AssertionError(f"the fuzz matrix has no base invocation for '{name}': add one to tests/cli_fuzz.py")
        numbers, paths = numeric_and_path_params(command)
        for param in numbers:
            found += [Case(name, _param_name(param), value) for value in NUMBERS]
        for param in paths:
            found += [Case(name, _param_name(param), value) for value in PATHS]
    return found


def _param_name(param: typing.Any) -> str:
    return param.opts[0] if param.param_type_name == "option" else param.name


def _argv(ws: Workspace, case: Case, out: Path) -> list[str]:
    positionals, options = base_invocations(ws)[case.command]
    command = dict(_commands())[case.command]
    positionals = list(positionals)
    options = list(options)
    aliases = set(next(p.opts for p in command.params if _param_name(p) == case.param))
    if case.value_name in NUMBERS:
        value = NUMBERS[case.value_name]
    else:
        value = _path_value(case, out, next((v for k, v in options if k in aliases), None), positionals)
    if case.param.startswith("-"):
        options = [(k, v) for k, v in options if k not in aliases] + [(case.param, value)]
    else:
        arguments = [p.name for p in command.params if p.param_type_name == "argument"]
        positionals[arguments.index(case.param)] = value
    argv = [*case.command.split(), *positionals]
    for key, val in options:
        argv += [key] if val is None else [key, val.replace("{out}", str(out))]
    return [*argv, "--json"] if case.as_json else argv


def _path_value(case: Case, out: Path, base: str | None, positionals: list[str]) -> str:
    """Make the bad path inside the case folder (suffix of the base value, so only the content is wrong)."""
    if base is None and not case.param.startswith("-"):
        base = positionals[0] if positionals else ""
    suffix = Path(str(base or "x")).suffix
    if case.value_name == "missing":
        return str(out / "absent" / f"thing{suffix}")
    if case.value_name == "folder":
        folder = out / f"folder{suffix}"
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder)
    file = out / f"{case.value_name}{suffix}"
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_bytes(b"" if case.value_name == "empty" else np.random.default_rng(1).bytes(4096))
    return str(file)


# ----- running ------------------------------------------------------------------------------------------------------
def invoke(argv: list[str]) -> tuple[int | None, str, str]:
    """Run ``edgenas ARGV`` in-process: (exit code, stdout, stderr); an escaping exception gives code None."""
    from edgenas.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    code: int | None
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            main(argv)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except Exception as exc:  # the contract is broken; report it as a case result
            code = None
            stderr.write(f"{type(exc).__name__}: {exc}\n")
    return code, stdout.getvalue(), stderr.getvalue()


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root``: (size, mtime) of files; folders by name only (SQLite's -wal and -shm
    files come and go inside a folder while a store is read)."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else (0, 0)
        for p in sorted(root.rglob("*"))
    }


@dataclass
class Outcome:
    case: Case
    code: int | None
    seconds: float
    violations: list[str] = field(default_factory=list)
    message: str = ""

    @property
    def ok(self) -> bool:
        return not self.violations


def run_case(ws: Workspace, case: Case, index: int) -> Outcome:
    """Run one case in its own folder and check the contract."""
    out = ws.root / "cases" / f"{index:04d}"
    out.mkdir(parents=True)
    argv = _argv(ws, case, out)
    before = _snapshot(ws.root)
    start = time.perf_counter()
    code, stdout, stderr = invoke(argv)
    outcome = Outcome(case, code, time.perf_counter() - start)
    shown = (stdout if case.as_json else stderr).strip().splitlines()
    outcome.message = shown[-1] if shown else ""
    if "Traceback" in stderr or code is None:
        outcome.violations.append(f"crashed: {stderr.strip()[-300:]}")
    elif code == 2:
        outcome.violations += _error_violations(case, stdout, stderr)
        if _snapshot(ws.root) != before:
            outcome.violations.append("files were created or changed by a refused command")
    elif code != 0:
        outcome.violations.append(f"exit code {code}: {stderr.strip()[-300:]}")
    shutil.rmtree(out, ignore_errors=True)
    return outcome


def _error_violations(case: Case, stdout: str, stderr: str) -> list[str]:
    problems = []
    if case.as_json:
        lines = stdout.strip().splitlines()
        try:
            payload = json.loads(lines[0]) if len(lines) == 1 else None
        except json.JSONDecodeError:
            payload = None
        if not isinstance(payload, dict) or set(payload) != {"error", "kind"}:
            problems.append(f"--json error is not one JSON object {{error, kind}}: {stdout!r}")
        if stderr.strip():
            problems.append(f"--json error also wrote to stderr: {stderr!r}")
        text = payload["error"] if isinstance(payload, dict) and "error" in payload else ""
    else:
        lines = stderr.strip().splitlines()
        if stdout.strip():
            problems.append(f"an error printed on stdout: {stdout!r}")
        if len(lines) != 1 or not lines[0].startswith("error:"):
            problems.append(f"the error is not one line 'error: ...': {stderr!r}")
        text = stderr
    refused_while_parsing = "Invalid value for" in text
    if case.value_name in NUMBERS and refused_while_parsing and case.param not in text:
        problems.append(f"the refusal does not name {case.param}: {text.strip()!r}")
    return problems


def run_matrix(root: Path, *, on_case: typing.Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Build the workspace under ``root`` and run every case plain, then every refused case again with ``--json``."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    ws = build_workspace(root)
    outcomes = []
    for i, case in enumerate(cases(ws)):
        outcomes.append(run_case(ws, case, i))
        if on_case:
            on_case(outcomes[-1])
    refused = [o.case for o in outcomes if o.code == 2]
    for i, case in enumerate(refused, start=len(outcomes)):
        outcomes.append(run_case(ws, Case(case.command, case.param, case.value_name, as_json=True), i))
        if on_case:
            on_case(outcomes[-1])
    return outcomes
