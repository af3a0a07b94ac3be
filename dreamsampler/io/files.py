"""Atomic file writes: a reader (or a run killed mid-write) never sees half a file."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Callable

from ..errors import InputError


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], what: str = "file") -> Path:
    """``write(tmp)`` to a temp file beside ``path``, then rename it over ``path``; a path that cannot be written
    is one :class:`InputError` naming it (``what`` says which kind of file), and no temp file is left behind."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "it is a directory")
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, path)
    except OSError as err:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise InputError(f"cannot write {what} file {str(path)!r} ({err.strerror or err})") from err
    return path


def write_text(text: str, path: str | os.PathLike, what: str = "text") -> Path:
    """Write a UTF-8 text file atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), what)
