"""The device a CLI command measures on: ``--runtime`` here or ``--remote CMD`` there, checked before any work."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edgenas.errors import MeasurementError

#: The runtime the stand-alone runner times (``edgenas.hardware.remote.RUNNER_RUNTIME``; kept here as a literal so
#: the CLI's option checks do not import torch).
RUNNER_RUNTIME = "ort-cpu"


def device_runtime(runtime: str | None, remote: str | None) -> str | None:
    """The runtime a command measures with: ``runtime``, or the runner's with ``--remote``.

    Raises:
        MeasurementError: a remote command without ``{dir}``, or with a runtime the runner does not time.
    """
    if remote is None:
        return runtime
    if "{dir}" not in remote:
        raise MeasurementError(f"--remote must contain {{dir}} (where the models to measure are): {remote!r}")
    if runtime not in (None, RUNNER_RUNTIME):
        raise MeasurementError(
            f"--remote measures with the stand-alone runner ({RUNNER_RUNTIME}); drop --runtime {runtime}"
        )
    return RUNNER_RUNTIME


def command_device(
    runtime: str,
    remote: str | None,
    workdir: Path | None,
    *,
    batch: int = 1,
    resolution: int = 32,
    threads: int = 1,
    protocol: Any = None,
    energy: bool = False,
) -> Any:
    """The :class:`edgenas.hardware.device.Device` of a command: ``--remote`` (models exported under ``workdir``)
    when given, else ``runtime`` here."""
    from edgenas.hardware import DEFAULT_PROTOCOL, RuntimeOptions
    from edgenas.hardware.device import open_device

    options = RuntimeOptions(batch=batch, resolution=resolution, threads=threads)
    return open_device(
        runtime, options, remote=remote, workdir=workdir, protocol=protocol or DEFAULT_PROTOCOL, energy=energy
    )


@contextmanager
def opened_device(runtime: str, remote: str | None, **options: Any) -> Iterator[Any]:
    """:func:`command_device` for a command without a run directory: a remote device exports its models into a
    temporary folder, removed when the command ends."""
    if remote is None:
        yield command_device(runtime, None, None, **options)
        return
    with tempfile.TemporaryDirectory(prefix="edgenas-remote-") as folder:
        yield command_device(runtime, remote, Path(folder), **options)
