"""Architecture specs: the one type that crosses every stage boundary.

An :class:`ArchSpec` is frozen and hashable: the space name, the space's resolved options, a hash of the space
configuration, and one choice index per searchable layer (an index into the space's candidate list ``op_names``).

Forms:

* human form, ``str(spec)``: one token per layer joined by ``-`` (``k5e6-skip-k3e3-...``), or the NAS-Bench-201
  cell string for the cell space;
* file form: JSON with a ``format_version`` (see :func:`spec_to_json` / :func:`spec_from_json`), and JSON Lines for
  many specs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgenas._io import atomic_output
from edgenas.errors import SpecFileError

#: Version of the JSON file form; bump it when the layout changes and keep reading the old one.
SPEC_FORMAT_VERSION = 1


def freeze(value: Any) -> Any:
    """Turn lists (and nested lists) into tuples so option values are hashable."""
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Turn tuples back into lists for JSON."""
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class ArchSpec:
    """One architecture of one search space.

    Attributes:
        space: registered name of the search space (``mbv2-cifar``, ``fbnet``, ``nb201`` ...).
        options: the space's resolved options as sorted ``(name, value)`` pairs (values frozen to tuples).
        space_hash: hash of the space configuration; two specs are comparable only when their hashes agree.
        choices: per searchable layer, the index of the chosen op in the space's ``op_names``.
    """

    space: str
    options: tuple[tuple[str, Any], ...]
    space_hash: str
    choices: tuple[int, ...]

    def __str__(self) -> str:
        from edgenas.spaces._registry import space_of

        return space_of(self).format(self)

    @property
    def num_layers(self) -> int:
        """Number of searchable layers (edges for the cell space)."""
        return len(self.choices)

    def options_dict(self) -> dict[str, Any]:
        """The space options as a plain dict (tuples kept)."""
        return dict(self.options)


def spec_to_dict(spec: ArchSpec) -> dict[str, Any]:
    """The JSON-ready file form of ``spec``."""
    return {
        "format_version": SPEC_FORMAT_VERSION,
        "space": spec.space,
        "space_options": {k: thaw(v) for k, v in spec.options},
        "space_hash": spec.space_hash,
        "arch": str(spec),
        "choices": list(spec.choices),
    }


def spec_to_json(spec: ArchSpec) -> str:
    """The file form of ``spec`` as one line of JSON."""
    return json.dumps(spec_to_dict(spec), sort_keys=True)


def spec_from_dict(data: Mapping[str, Any], *, source: str = "spec") -> ArchSpec:
    """Rebuild a spec from its file form, checking the format version, the space hash and every layer.

    Raises:
        SpecFileError: missing keys or an unsupported format version.
        UnknownSpaceError, SpaceMismatchError, ArchError: the content does not fit a registered space.
    """
    from edgenas.spaces._registry import get_space

    if not isinstance(data, Mapping):
        raise SpecFileError(f"{source}: expected a JSON object, got {type(data).__name__}")
    version = data.get("format_version")
    if version != SPEC_FORMAT_VERSION:
        raise SpecFileError(
            f"{source}: unsupported format_version {version!r} (this edgenas reads {SPEC_FORMAT_VERSION})"
        )
    missing = [key for key in ("space", "arch") if key not in data]
    if missing:
        raise SpecFileError(f"{source}: missing key(s) {', '.join(missing)}")
    options = data.get("space_options") or {}
    if not isinstance(options, Mapping):
        raise SpecFileError(f"{source}: space_options must be an object")
    space = get_space(str(data["space"]), **{k: freeze(v) for k, v in options.items()})
    spec = space.parse(str(data["arch"]))
    expected_hash = data.get("space_hash")
    if expected_hash is not None and expected_hash != space.config_hash:
        from edgenas.errors import SpaceMismatchError

        raise SpaceMismatchError(
            f"{source}: space hash {expected_hash} does not match {space.name} with these options "
            f"({space.config_hash}); the spec was written by a different space definition"
        )
    return spec


def spec_from_json(text: str, *, source: str = "spec") -> ArchSpec:
    """Parse one spec from its JSON file form."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecFileError(f"{source}: malformed JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from exc
    return spec_from_dict(data, source=source)


def load_specs(path: str | os.PathLike[str]) -> list[ArchSpec]:
    """Read specs from a ``.json`` file (one spec) or a JSON Lines file (one spec per non-empty line).

    Raises:
        SpecFileError: the file is missing, unreadable, empty or malformed; the message names the line.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise SpecFileError(f"no such spec file: {file}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecFileError(f"cannot read spec file {file}: {exc}") from exc
    stripped = text.strip()
    if not stripped:
        raise SpecFileError(f"spec file {file} is empty")
    if file.suffix != ".jsonl":
        try:
            json.loads(stripped)
        except json.JSONDecodeError:
            pass  # maybe JSON Lines with a .json name: fall through to the line reader
        else:
            return [spec_from_json(stripped, source=str(file))]
    specs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            specs.append(spec_from_json(line, source=f"{file}:{number}"))
    return specs


def save_specs(path: str | os.PathLike[str], specs: Iterable[ArchSpec]) -> Path:
    """Write specs atomically: JSON Lines for ``.jsonl`` paths, a single pretty JSON object otherwise."""
    specs = list(specs)
    target = Path(path)
    if target.suffix == ".jsonl":
        text = "".join(spec_to_json(s) + "\n" for s in specs)
    else:
        if len(specs) != 1:
            raise SpecFileError(f"{target}: a .json file holds one spec, got {len(specs)}; use a .jsonl name")
        text = json.dumps(spec_to_dict(specs[0]), indent=2, sort_keys=True) + "\n"
    with atomic_output(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return target
