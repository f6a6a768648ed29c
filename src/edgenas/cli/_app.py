"""The Typer app, its consoles and the helpers every command module shares.

Every command takes ``--json`` and then prints exactly one JSON object on stdout. User errors (``EdgeNASError``)
become one red line on stderr and exit code 2; nothing is left half-written because the library writes atomically.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from edgenas.errors import EdgeNASError, SpaceConfigError, SpecFileError
from edgenas.spaces import ArchSpec, get_space, load_specs
from edgenas.spaces.spec import freeze

app = typer.Typer(
    name="edgenas",
    help="Hardware-aware neural architecture search and compression for a given device under a given budget.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
space_app = typer.Typer(help="Inspect search spaces.", no_args_is_help=True)
arch_app = typer.Typer(help="Sample, inspect and export architectures.", no_args_is_help=True)
app.add_typer(space_app, name="space")
app.add_typer(arch_app, name="arch")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
if not out.is_terminal:  # piped or captured: rich would assume 80 columns and squeeze tables of long arch names
    out.width = max(out.width, 160)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout instead of tables.")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", metavar="KEY=VALUE", help="Space option, e.g. --set width=0.5 (repeatable; JSON values)."),
]
SpaceOpt = Annotated[str | None, typer.Option("--space", "-s", help="Space of ARCH when ARCH is a string.")]
ArchArg = Annotated[str, typer.Argument(help="A spec file (.json/.jsonl) or an arch string with --space.")]


def _print_version(value: bool) -> None:
    if value:
        from edgenas import __version__

        out.print(f"edgenas {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Hardware-aware neural architecture search and compression for a given device under a given budget."""


def emit_json(payload: dict[str, Any]) -> None:
    """Print ``payload`` as one line of JSON on stdout (the ``--json`` output of every command)."""
    sys.stdout.write(json.dumps(payload, sort_keys=True) + "\n")


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """``--set KEY=VALUE`` pairs as space options; values are parsed as JSON when they can be (``0.5``, ``[1,2]``)."""
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise SpaceConfigError(f"--set expects KEY=VALUE, got {pair!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        options[key.strip()] = freeze(value)
    return options


def resolve_archs(arch: str, space: str | None, options: dict[str, Any]) -> list[ArchSpec]:
    """Specs named by ARCH: a spec file, an arch string of ``space``, or an NB201 index with ``--space nb201``."""
    path = Path(arch)
    if path.is_file():
        if space is not None or options:
            raise SpaceConfigError("--space/--set apply to arch strings; a spec file names its own space")
        return load_specs(path)
    if path.suffix in (".json", ".jsonl"):
        raise SpecFileError(f"no such spec file: {path}")
    if space is None:
        raise SpecFileError(f"{arch!r} is not a spec file; to give an arch string, name its space with --space")
    resolved = get_space(space, **options)
    if arch.isdigit() and hasattr(resolved, "from_index"):
        return [resolved.from_index(int(arch))]
    return [resolved.parse(arch)]


def resolve_one_arch(arch: str, space: str | None, set_: list[str] | None, index: int = 0) -> ArchSpec:
    """The ``index``-th spec named by ARCH (see :func:`resolve_archs`), with a clear error when out of range."""
    specs = resolve_archs(arch, space, parse_options(set_))
    if index >= len(specs):
        raise SpecFileError(f"--index {index} is out of range: {arch} holds {len(specs)} spec(s)")
    return specs[index]


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user errors into one line on stderr and exit code 2.

    Usage errors (a missing argument, a bad option value) are Typer's own: a short usage text and exit code 2.
    """
    try:
        app(args=argv, prog_name="edgenas")
    except EdgeNASError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise SystemExit(2) from None
