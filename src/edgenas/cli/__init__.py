"""The ``edgenas`` command line: one Typer app, each command a thin wrapper over a public function.

Every command takes ``--json`` and then prints exactly one JSON object on stdout. User errors (``EdgeNASError``)
become one red line on stderr and exit code 2; nothing is left half-written because the library writes atomically.
"""

from edgenas.cli import (  # noqa: F401  (register the commands)
    bench,
    channels,
    compress,
    compress_domino,
    hardware,
    pipeline,
    predictors,
    scaling,
    search,
    search_strategies,
    search_surgenas,
    spaces,
    store,
    training,
)
from edgenas.cli._app import app, main, resolve_archs

__all__ = ["app", "main", "resolve_archs"]
