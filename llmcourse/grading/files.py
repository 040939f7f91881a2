"""Writing the grader's files: whole or not at all, never through a symbolic link.

A submissions folder belongs to whoever fills it: ``grades.csv`` there may be a link to a file
the grader must not overwrite (``~/.bashrc``), and a notebook may try to swap a folder for a link
while the grader runs. So a file is written as a new temporary file in its folder (opened with
``O_CREAT | O_EXCL | O_NOFOLLOW`` relative to the folder's open descriptor) and renamed over the
target in the same folder, which replaces a link itself, never what it points to; a target that
already is a link is refused with :class:`UnsafeOutput` before anything is written.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


class UnsafeOutput(ValueError):
    """The grader refuses to write here (a symbolic link, or not a plain file)."""


def check_output(path: Path) -> None:
    """Raise :class:`UnsafeOutput` when ``path`` is a link or something other than a file."""
    if path.is_symlink():
        raise UnsafeOutput(
            f"{path} is a symbolic link (to {os.readlink(path)}); the grader does not write "
            "through links. Remove it, or choose another file with --csv."
        )
    if path.exists() and not path.is_file():
        raise UnsafeOutput(f"{path} exists and is not a regular file; choose another file.")
    if not path.parent.is_dir():
        raise UnsafeOutput(f"{path.parent} is not a folder; the file cannot be written there.")


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` as one rename, inside ``path``'s folder, never via a link."""
    check_output(path)
    data = text.encode("utf-8")
    name = path.name
    temporary = f".{name}.{secrets.token_hex(6)}.partial"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    flags |= getattr(os, "O_CLOEXEC", 0)
    if os.open in os.supports_dir_fd and os.replace in os.supports_dir_fd:
        folder = os.open(path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            _write_and_rename(folder, temporary, name, flags, data)
        finally:
            os.close(folder)
    else:  # Windows: no descriptors for folders; the same steps by path
        _write_and_rename(None, str(path.parent / temporary), str(path), flags, data)


def _write_and_rename(
    folder: int | None, temporary: str, name: str, flags: int, data: bytes
) -> None:
    fd = (
        os.open(temporary, flags, 0o644, dir_fd=folder)
        if folder is not None
        else os.open(temporary, flags, 0o644)
    )
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if folder is not None:
            os.replace(temporary, name, src_dir_fd=folder, dst_dir_fd=folder)
        else:
            os.replace(temporary, name)
    except BaseException:
        with contextlib.suppress(OSError):
            if folder is not None:
                os.unlink(temporary, dir_fd=folder)
            else:
                os.unlink(temporary)
        raise
