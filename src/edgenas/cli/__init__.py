"""The ``edgenas`` command line: one Typer app, each command a thin wrapper over a public function.

Every command takes ``--json`` and then prints exactly one JSON object on stdout. User errors (``EdgeNASError``)
become one red line on stderr and exit code 2; nothing is left half-written because the library writes atomically.
The command modules are imported when a command is first needed (``edgenas --help`` does not import torch); reading
:data:`app` here registers them all.
"""

from __future__ import annotations

from typing import Any

from edgenas.cli._app import main, register_commands, resolve_archs

__all__ = ["app", "main", "resolve_archs"]


def __getattr__(name: str) -> Any:
    if name == "app":
        return register_commands()
    raise AttributeError(f"module 'edgenas.cli' has no attribute {name!r}")
