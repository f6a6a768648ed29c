"""Measuring on a device that cannot run edgenas: export ONNX models with a manifest, measure them there with the
stand-alone :mod:`edgenas.hardware.runner` (onnxruntime and numpy only), read the results back into the store;
:class:`RemoteDevice` does all three through a command template, as one :class:`~edgenas.hardware.device.Device`.

The folder layout: ``manifest.json`` (format, id, input shape, threads, protocol, the space, one entry per model
with its file and arch string), ``model_0000.onnx`` …, and after the runner ``results.json`` (the device's
fingerprint and one row per model). A command template (``ssh pi python runner.py {dir}``; ``{dir}`` is the folder,
``{runner}`` the runner's path here) lets a search measure through the same files with the device in the loop.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from torch import nn

from edgenas._io import write_text_atomic
from edgenas.errors import MeasurementError, StoreError
from edgenas.hardware import runner
from edgenas.hardware.device import (
    REMOTE_LATENCY_ONLY,
    Device,
    Measurable,
    Measurement,
    ProfileProgress,
    anchor_arch,
    check_request,
    labels_of,
    measurement_from_loads,
    modules_of,
)
from edgenas.hardware.fingerprint import default_device_name
from edgenas.hardware.measure import ProfileReport
from edgenas.hardware.protocol import DEFAULT_PROTOCOL, LatencyStats, Protocol
from edgenas.hardware.reference import Anchor, reference_arch
from edgenas.hardware.runtimes import RuntimeOptions
from edgenas.hardware.store import MeasurementKey, MeasurementStore
from edgenas.spaces import ArchSpec, get_space, space_of

#: The runtime name the runner's rows are filed under: the same ONNX Runtime CPU protocol as ``ort-cpu``.
RUNNER_RUNTIME = "ort-cpu"
#: Longest a remote command may run before it is stopped (s).
REMOTE_TIMEOUT_S = 3600.0


def runner_path() -> Path:
    """The stand-alone runner file to copy to the device."""
    return Path(runner.__file__)


def export_archs(
    specs: Sequence[ArchSpec],
    folder: str | Path,
    options: RuntimeOptions,
    protocol: Protocol = DEFAULT_PROTOCOL,
    *,
    reference: ArchSpec | None = None,
) -> Path:
    """Write ``specs`` (one space) as ONNX models and the manifest into ``folder``, with the reference the runner
    times beside each (``reference``: an arch of any space, default: the space's
    :func:`~edgenas.hardware.reference.reference_arch`);
    returns the manifest path.

    Raises:
        MeasurementError: no spec, or specs of several spaces.
    """
    specs = list(dict.fromkeys(specs))
    if not specs or len({s.space_hash for s in specs}) != 1:
        raise MeasurementError("export archs of exactly one space (and at least one)")
    space = space_of(specs[0])
    space_info = {"name": space.name, "options": dict(specs[0].options)}
    ref = reference if reference is not None else reference_arch(space)
    models = [(str(s), space.build(s)) for s in specs]
    reference_model = (str(ref), space_of(ref).build(ref))
    return export_models(
        models,
        folder,
        options,
        protocol,
        space=space_info,
        reference=reference_model,
        reference_space_hash=ref.space_hash,
    )


def export_models(
    models: Sequence[tuple[str, nn.Module]],
    folder: str | Path,
    options: RuntimeOptions,
    protocol: Protocol = DEFAULT_PROTOCOL,
    *,
    space: dict[str, Any] | None = None,
    reference: tuple[str, nn.Module] | None = None,
    reference_space_hash: str = "",
) -> Path:
    """Write ``(label, model)`` pairs as ONNX models and the manifest into ``folder`` (``space``: name and options
    when the labels are arch strings of that space, so the results can be filed in a store; ``reference``: a
    ``(label, model)`` the runner times beside every model)."""
    from edgenas.export import export_onnx
    from edgenas.nn.reparam import collapsed_copy

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for i, (label, model) in enumerate(models):
        name = f"model_{i:04d}.onnx"
        export_onnx(collapsed_copy(model).eval(), folder / name, options.input_shape)
        entries.append({"file": name, "arch": label})
    reference_entry = None
    if reference is not None:
        reference_entry = {"file": "reference.onnx", "arch": reference[0], "space_hash": reference_space_hash}
        export_onnx(collapsed_copy(reference[1]).eval(), folder / "reference.onnx", options.input_shape)
    manifest = {
        "format": runner.FORMAT,
        "runtime": RUNNER_RUNTIME,
        "input_shape": list(options.input_shape),
        "threads": options.threads,
        "protocol": {
            "warmup": protocol.warmup,
            "repeats": protocol.repeats,
            "max_rel_iqr": protocol.max_rel_iqr,
            "max_retries": protocol.max_retries,
        },
        "space": space,
        "models": entries,
        "reference": reference_entry,
    }
    manifest["id"] = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]
    path = folder / runner.MANIFEST
    write_text_atomic(path, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return path


@dataclass
class RunnerResults:
    """What a runner measured: the device's fingerprint, and per arch its latency statistics (ms)."""

    fingerprint: dict[str, Any]
    key: MeasurementKey
    rows: list[tuple[ArchSpec, dict[str, Any]]]
    reference: str | None = None
    reference_space_hash: str = ""

    @property
    def device_name(self) -> str:
        return default_device_name(self.fingerprint)


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``, or a :class:`StoreError` saying the file is not one."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"{path} is not a JSON file written by runner.py ({type(exc).__name__})") from exc
    if not isinstance(value, dict):
        raise StoreError(f"{path} is not a JSON object written by runner.py")
    return value


def read_results(folder_or_file: str | Path) -> RunnerResults:
    """Read ``results.json`` (and the manifest beside it) back into specs and statistics.

    Raises:
        StoreError: no results, another format, or results of another export than the manifest beside them.
    """
    path = Path(folder_or_file)
    folder = path if path.is_dir() else path.parent
    results_file = folder / runner.RESULTS if path.is_dir() else path
    manifest_file = folder / runner.MANIFEST
    if not results_file.is_file():
        raise StoreError(f"{folder} holds no runner results ({runner.RESULTS}): run runner.py on that folder first")
    if results_file.stat().st_size == 0:
        raise StoreError(f"{results_file} is empty: expected the {runner.RESULTS} that runner.py writes")
    if not manifest_file.is_file():
        raise StoreError(
            f"no {runner.MANIFEST} beside {results_file}: runner results are read with the manifest of the folder "
            "`edgenas profile --export` wrote"
        )
    results, manifest = _read_json(results_file), _read_json(manifest_file)
    if results.get("format") != runner.FORMAT or results.get("manifest") != manifest.get("id"):
        raise StoreError(f"{results_file} was not written by the runner for the manifest beside it")
    if not manifest.get("space"):
        raise StoreError(f"{manifest_file} lists models, not archs of a space: there is nothing to file in a store")
    space = get_space(manifest["space"]["name"], **manifest["space"]["options"])
    batch, _, resolution, _ = manifest["input_shape"]
    key = MeasurementKey(manifest["runtime"], "latency_ms", batch, resolution, manifest["threads"])
    rows = [(space.parse(row["arch"]), row) for row in results["rows"]]
    entry = manifest.get("reference") or {}
    return RunnerResults(results["fingerprint"], key, rows, entry.get("arch"), entry.get("space_hash", ""))


def import_results(store: MeasurementStore, results: RunnerResults, device_name: str | None = None) -> tuple[str, int]:
    """File the runner's rows in ``store`` as device ``device_name`` (default: from its fingerprint); returns the
    device name and how many rows were new."""
    name = device_name or results.device_name
    device = store.device_id(name, kind="measured", fingerprint=results.fingerprint, source="edgenas runner.py")
    added = 0
    for spec, row in results.rows:
        session = None
        if (
            results.reference is not None
            and row.get("relative") is not None
            and not store.has(device, spec, results.key)
        ):
            # each model was timed beside the reference in rounds of its own: one session per row
            session = store.add_session(
                device, results.key, results.reference, row["reference_ms"], space_hash=results.reference_space_hash
            )
        added += bool(
            store.add(
                device,
                spec,
                results.key,
                row["median_ms"],
                iqr=row["iqr_ms"],
                mean=row["mean_ms"],
                minimum=row["min_ms"],
                n=row["n"],
                flagged=row["flagged"],
                session=session,
                relative=row.get("relative"),
            )
        )
    return name, added


def run_remote(command: str, folder: str | Path, timeout_s: float = REMOTE_TIMEOUT_S) -> list[dict[str, Any]]:
    """Run the command template on ``folder`` (``{dir}``: the folder, ``{runner}``: the runner file here) and return
    the rows it left in ``results.json``, in the manifest's order (``median_ms``, ``iqr_ms``, ... per model).

    Raises:
        MeasurementError: the command failed or timed out.
    """
    folder = Path(folder)
    line = command.format(dir=shlex.quote(str(folder)), runner=shlex.quote(str(runner_path())))
    try:
        done = subprocess.run(line, shell=True, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise MeasurementError(f"the remote command ran past {timeout_s:.0f} s: {line}") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise MeasurementError(f"the remote command failed (exit {done.returncode}): {line}: {tail[0]}")
    manifest = json.loads((folder / runner.MANIFEST).read_text())
    results_file = folder / runner.RESULTS
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    rows = {row["file"]: row for row in results.get("rows", [])} if results.get("manifest") == manifest["id"] else {}
    missing = [m["file"] for m in manifest["models"] if m["file"] not in rows]
    if missing:
        raise MeasurementError(f"the remote command left no results for {len(missing)} model(s) in {folder}: {line}")
    return [rows[m["file"]] for m in manifest["models"]]


@dataclass
class RemoteDevice:
    """A device reached through a command template that runs the stand-alone runner on a folder of ONNX models. The
    runner times the models of one load one after another (its own order), not round-robin.

    Attributes:
        command: the template; ``{dir}`` is the folder, ``{runner}`` the runner's path here.
        options: batch, resolution and threads of the input.
        workdir: where each measurement's folder is made.
        protocol: warm-up, repeats and noise handling, written into the manifest for the runner.
        anchor: the reference the runner times beside every model, and the nominal level (None: none).
    """

    command: str
    options: RuntimeOptions
    workdir: Path
    protocol: Protocol = DEFAULT_PROTOCOL
    anchor: Anchor | None = None

    def __post_init__(self) -> None:
        if "{dir}" not in self.command:
            raise MeasurementError(f"a remote command must contain {{dir}} (where the models are): {self.command!r}")
        self.workdir = Path(self.workdir)

    @property
    def name(self) -> str:
        return f"remote: {self.command}"

    def measure(self, items: Sequence[Measurable], *, loads: int = 1, labels: Sequence[str] = ()) -> list[Measurement]:
        check_request(items, loads)
        names, options = labels_of(items, labels), self.options
        self.workdir.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="measure-", dir=self.workdir))
        anchor = self.anchor
        reference = (anchor.name, modules_of([anchor.reference])[0]) if anchor is not None else None
        export_models(
            list(zip(names, modules_of(items), strict=True)), folder, options, self.protocol, reference=reference
        )
        runs = [self._fresh_run(folder) for _ in range(loads)]
        return [
            measurement_from_loads(names[i], [_runner_stats(rows[i]) for rows in runs], RUNNER_RUNTIME, options, anchor)
            for i in range(len(items))
        ]

    def _fresh_run(self, folder: Path) -> list[dict[str, Any]]:
        """One load: one runner process measuring every model of ``folder`` anew (the runner skips the models a
        ``results.json`` holds, which is how a killed profile resumes, so a load starts without one)."""
        (folder / runner.RESULTS).unlink(missing_ok=True)
        return run_remote(self.command, folder)

    def profile(
        self,
        specs: Sequence[ArchSpec],
        store: MeasurementStore,
        *,
        device_name: str | None = None,
        energy: bool = False,
        interleave: int = 1,
        on_progress: ProfileProgress | None = None,
    ) -> ProfileReport:
        """Export ``specs`` once into a folder under ``workdir`` (``export``, or ``export-<digest>`` for another set of
        archs), run the command (the runner resumes a folder it started), file the results in ``store``.
        ``energy`` is refused: the runner reads no energy counter; ``interleave`` is the runner's own (one by one)."""
        if energy:
            raise MeasurementError(REMOTE_LATENCY_ONLY)
        unique = list(dict.fromkeys(specs))
        start = time.perf_counter()
        given = anchor_arch(self.anchor)
        if given is None and device_name is not None:  # a device keeps the reference its sessions time
            known = store.reference(device_name, self.key(), unique[0].space_hash)  # no row for a new name
            given = space_of(unique[0]).parse(known) if known else None
        folder = self._export(unique, given)
        if on_progress is not None:
            on_progress(0, len(unique), f"running: {self.command}")
        rows = run_remote(self.command, folder)
        results = read_results(folder)
        name, added = import_results(store, results, device_name)
        if on_progress is not None:
            on_progress(len(unique), len(unique), "imported")
        report = ProfileReport(name, len(unique), len(unique) - added, added, energy_note=REMOTE_LATENCY_ONLY)
        report.flagged = sum(bool(row.get("flagged")) for row in rows)
        report.seconds, report.key = time.perf_counter() - start, results.key
        report.rows = [{"arch": str(s), **row} for s, row in results.rows]
        return report

    def _export(self, specs: list[ArchSpec], reference: ArchSpec | None) -> Path:
        """The folder holding exactly ``specs`` and their reference (exported now when new)."""
        import hashlib
        import json

        archs = [str(s) for s in specs]
        folder = self.workdir / "export"
        manifest = folder / "manifest.json"
        if manifest.is_file() and [m["arch"] for m in json.loads(manifest.read_text())["models"]] != archs:
            folder = self.workdir / f"export-{hashlib.sha256(chr(10).join(archs).encode()).hexdigest()[:8]}"
        if not (folder / "manifest.json").is_file():
            export_archs(specs, folder, self.options, self.protocol, reference=reference)
        return folder

    def key(self) -> MeasurementKey:
        o = self.options
        return MeasurementKey(RUNNER_RUNTIME, "latency_ms", o.batch, o.resolution, o.threads)

    def store_name(self) -> str | None:
        return None

    def energy_reading(self) -> tuple[bool, str]:
        return False, REMOTE_LATENCY_ONLY

    def with_options(self, options: RuntimeOptions) -> Device:
        return replace(self, options=options)

    def with_anchor(self, anchor: Anchor | None) -> Device:
        return replace(self, anchor=anchor)


def _runner_stats(row: dict[str, Any]) -> LatencyStats:
    """The runner's row of one model as :class:`LatencyStats`."""
    fields = ("median_ms", "iqr_ms", "mean_ms", "min_ms", "n", "attempts", "flagged", "reference_ms", "relative")
    return LatencyStats(**{f: row[f] for f in fields if f in row})
