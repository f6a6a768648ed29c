"""The Typer app, its consoles and the helpers every command module shares.

Every command takes ``--json`` and then prints exactly one JSON object on stdout. User errors (``EdgeNASError`` and
Click's usage errors) become one red line on stderr, or with ``--json`` one ``{"error", "kind"}`` object on stdout,
and exit code 2; nothing is left half-written because the library writes atomically. The options themselves, one
name per concept, live in :mod:`edgenas.cli._options`.
"""

from __future__ import annotations

import functools
import importlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import typer.main
from rich.console import Console
from rich.markup import escape

from edgenas.cli._commands import COMMAND_MODULES, COMMAND_SUMMARIES
from edgenas.cli._options import ArchArg, JsonOpt, SetOpt, SpaceOpt  # noqa: F401  (re-exported to the commands)
from edgenas.errors import EdgeNASError, SpaceConfigError, SpecFileError

if TYPE_CHECKING:
    from edgenas.spaces import ArchSpec

try:  # typer >= 0.22 ships its own copy of click
    from typer._click import exceptions as _click_errors
    from typer._click.utils import make_default_short_help
except ImportError:  # pragma: no cover - older typer depends on click
    from click import exceptions as _click_errors  # type: ignore[no-redef]
    from click.utils import make_default_short_help  # type: ignore[no-redef]
# click >= 8.2 raises this for a group named without a sub-command; older versions print the help themselves
_NO_ARGS_IS_HELP = getattr(_click_errors, "NoArgsIsHelpError", ())

_ROOT_SETTINGS: dict[str, Any] = {
    "name": "edgenas",
    "help": "Hardware-aware neural architecture search and compression for a given device under a given budget.",
    "no_args_is_help": True,
    "add_completion": False,
    "pretty_exceptions_enable": False,
    "rich_markup_mode": None,  # plain Click help: no "<bool>" metavars on flags, no boxes around one-line errors
}
app = typer.Typer(**_ROOT_SETTINGS)


def sub_app(name: str, help: str) -> typer.Typer:
    """A command group ``edgenas NAME ...`` with the root's settings."""
    group = typer.Typer(help=help, no_args_is_help=True, add_completion=False, rich_markup_mode=None)
    app.add_typer(group, name=name)
    return group


space_app = sub_app("space", "Inspect search spaces.")
arch_app = sub_app("arch", "Sample, inspect and export architectures.")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
if not out.is_terminal:  # piped or captured: rich would assume 80 columns and squeeze tables of long arch names
    out.width = max(out.width, 160)


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


def parse_options(pairs: list[str] | None, flag: str = "--set") -> dict[str, Any]:
    """``--set KEY=VALUE`` pairs as space options; values are parsed as JSON when they can be (``0.5``, ``[1,2]``).
    ``flag`` names the option in the error."""
    from edgenas.spaces.spec import freeze

    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise SpaceConfigError(f"{flag} expects KEY=VALUE, got {pair!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        options[key.strip()] = freeze(value)
    return options


def resolve_archs(arch: str, space: str | None, options: dict[str, Any]) -> list[ArchSpec]:
    """Specs named by ARCH: a spec file, an arch string of ``space``, or an NB201 index with ``--space nb201``."""
    from edgenas.spaces import get_space, load_specs

    if not arch.strip():
        raise SpecFileError(
            "ARCH is empty: give a spec file (.json/.jsonl), an arch string with --space, or a benchmark index"
        )
    path = Path(arch)
    if path.is_file():
        if space is not None or options:
            raise SpaceConfigError("--space/--set apply to arch strings; a spec file names its own space")
        return load_specs(path)
    if path.is_dir():
        raise SpecFileError(f"{path} is a folder, not a spec file or an arch string")
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


#: Options renamed when the CLI got one vocabulary, by (command, old spelling); "" = any command that lacks it.
RENAMED_OPTIONS = {
    **{
        (command, "--device"): "--store-device (a device in the measurement store)"
        for command in ("predictor fit", "predictor eval", "predictor compare", "predictor adapt", "predictor lut")
    },
    ("store import", "--device"): "--store-device",
    ("store import", "--target"): "--value-column",
    ("", "--device-name"): "--store-device",
    ("", "--target"): "--value-column",
    ("", "--batch"): "--input-batch",
    ("", "--tolerance"): "--max-error (export, reparam) or --noise-band (comfort)",
    ("train", "--warmup-epochs"): "--lr-warmup-epochs",
    ("comfort", "-o"): "--plot",
}


#: Options removed, by (command, spelling): what does their work now (a one-line pointer in the error).
REMOVED_OPTIONS: dict[tuple[str, str], str] = {}


def _pointer(exc: BaseException) -> str | None:
    """What to use instead of an option that a usage error calls unknown, when it was renamed or removed."""
    option = getattr(exc, "option_name", None)
    ctx = getattr(exc, "ctx", None)
    if not isinstance(exc, _click_errors.NoSuchOption) or not option:
        return None
    command = " ".join(ctx.command_path.split()[1:]) if ctx is not None else ""
    renamed = RENAMED_OPTIONS.get((command, option)) or RENAMED_OPTIONS.get(("", option))
    if renamed:
        return f"this option was renamed: use {renamed}"
    removed = REMOVED_OPTIONS.get((command, option))
    return f"this option was removed: {removed}" if removed else None


def _error_line(exc: BaseException) -> tuple[str, str]:
    """(message, kind) of an error the CLI reports: one line, the kind being the exception's class name."""
    if isinstance(exc, _click_errors.UsageError):
        message = exc.format_message().strip().splitlines()
        text = " ".join(line.strip() for line in message if line.strip())
        pointer = _pointer(exc)
        if pointer:  # Click's guesses by spelling ("Possible options: ...") would point elsewhere
            text = text.split(" (Possible options:")[0] + f"; {pointer}"
        if exc.ctx is not None:
            text += f" (see '{exc.ctx.command_path} --help')"
        return text, type(exc).__name__
    if isinstance(exc, _click_errors.ClickException):  # FileError and the like
        return " ".join(exc.format_message().split()), type(exc).__name__
    return " ".join(str(exc).split()), type(exc).__name__


def _report(exc: BaseException, as_json: bool) -> None:
    message, kind = _error_line(exc)
    if as_json:
        emit_json({"error": message, "kind": kind})
    else:
        err.print(f"[red]error:[/red] {escape(message)}")


def register_commands() -> typer.Typer:
    """Import every command module (each registers its commands on :data:`app`) and return the app."""
    for module in COMMAND_MODULES:
        importlib.import_module(f"edgenas.cli.{module}")
    return app


@functools.cache
def click_command() -> typer.core.TyperGroup:
    """The app as a Click command, built once per process: building it inspects every command's signature (about
    0.1 s here), which a process that runs many commands in turn (the test suite, the fuzz matrix) would otherwise
    pay on every call. Click commands are stateless between invocations, so one object serves them all."""
    return typer.main.get_command(register_commands())


def command_summaries() -> dict[str, str]:
    """First paragraph of every registered top-level command's help (what :data:`COMMAND_SUMMARIES` must hold)."""
    group = click_command()
    context = typer.Context(group)
    summaries = {}
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        if command is not None and not command.hidden:
            summaries[name] = (command.short_help or command.help or "").split("\n\n")[0].strip()
    return summaries


class _LazyRoot(typer.core.TyperGroup):
    """``edgenas`` itself: its help lists :data:`COMMAND_SUMMARIES`; naming a command loads them all (the lazy
    sub-command pattern of Click's documentation, with the listing kept in a table)."""

    def list_commands(self, ctx: typer.Context) -> list[str]:
        return list(COMMAND_SUMMARIES)

    def get_command(self, ctx: typer.Context, cmd_name: str) -> Any:
        return click_command().get_command(ctx, cmd_name)

    def resolve_command(self, ctx: typer.Context, args: list[str]) -> Any:
        return click_command().resolve_command(ctx, args)

    def format_commands(self, ctx: typer.Context, formatter: Any) -> None:
        limit = formatter.width - 6 - max(len(name) for name in COMMAND_SUMMARIES)
        rows = [(name, make_default_short_help(text, limit)) for name, text in COMMAND_SUMMARIES.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@functools.cache
def entry_command() -> _LazyRoot:
    """The root group ``main`` runs: the root's own options and help, the commands loaded when one is named."""
    root = typer.main.get_command(typer.Typer(**_ROOT_SETTINGS, callback=_root))
    return _LazyRoot(
        name=root.name,
        params=root.params,
        callback=root.callback,
        help=root.help,
        no_args_is_help=True,
        rich_markup_mode=None,
        context_settings=root.context_settings,
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; every user error becomes one line on stderr (or, with ``--json``, one JSON object
    ``{"error": ..., "kind": ...}`` on stdout) and exit code 2.

    User errors are :class:`EdgeNASError` raised by the library and Click's usage errors (an unknown option, a value
    refused while parsing, a missing argument). ``edgenas`` alone prints the help.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in args
    command = entry_command()
    try:
        code = command.main(args=args, prog_name="edgenas", standalone_mode=False)
    except _NO_ARGS_IS_HELP as exc:  # a group named without a sub-command: show its help
        out.print(exc.format_message(), markup=False, highlight=False)
        raise SystemExit(0) from None
    except (EdgeNASError, _click_errors.ClickException) as exc:
        _report(exc, as_json)
        raise SystemExit(2) from None
    except (typer.Abort, KeyboardInterrupt):
        _report(EdgeNASError("interrupted"), as_json)
        raise SystemExit(130) from None
    raise SystemExit(code if isinstance(code, int) else 0)
