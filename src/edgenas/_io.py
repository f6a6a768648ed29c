"""File helpers shared by every stage: writes are atomic so that a failure never leaves a half-written file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from edgenas.errors import OutputPathError


def check_writable(path: str | os.PathLike[str]) -> Path:
    """Return ``path`` as a :class:`Path` after checking that its folder exists (creating it) and is writable.

    Raises:
        OutputPathError: the folder cannot be created or written, or ``path`` is a folder.
    """
    target = Path(path)
    if target.is_dir():
        raise OutputPathError(f"output path {target} is a folder; give a file name")
    parent = target.parent if str(target.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(f"cannot create folder {parent}: {exc.strerror or exc}") from exc
    if not os.access(parent, os.W_OK):
        raise OutputPathError(f"cannot write to {parent}: permission denied")
    return target


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, on any error delete it.

    The temporary file lives in the same folder so the final ``os.replace`` is atomic on POSIX file systems.
    """
    target = check_writable(path)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise OutputPathError(f"cannot write to {target.parent}: {exc.strerror or exc}") from exc
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the result the permissions open() would
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically and return the final path."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` (a PNG, say) to ``path`` atomically and return the final path."""
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)
