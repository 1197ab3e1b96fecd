"""The one home of file writing in focalcal: every file the project writes goes through here.

A file is written to a temporary file in the same folder, flushed to disk, and moved into place
with ``os.replace``, so a reader, or a process restarted after SIGKILL, sees either the old file
or the complete new one, never a truncated file.

**File mode.** A new file gets ``0o666 & ~umask``, exactly what ``open(path, "w")`` gives (the
temporary file is created with ``os.open(..., 0o666)``, so the kernel applies the umask); a file
that is replaced keeps its permission bits, as ``open`` on an existing file does.

**Temporaries.** They are named ``.<name>.<16 hex digits>.tmp``. A kill at the wrong moment can
leave one behind; :func:`remove_stale_temporaries` removes them (the run layer calls it when a
run folder is next used).

**Errors.** An ``OSError`` while writing (a full disk, a read-only folder, no permission) is
re-raised as :class:`FileWriteError`, an ``OSError`` with the same ``errno`` whose message names
the file and the remedy; the temporary file is removed and the old file, if any, is untouched.

Example:
    >>> import os, tempfile
    >>> from focalcal._io import atomic_write_text
    >>> path = atomic_write_text(os.path.join(tempfile.mkdtemp(), "note.txt"), "hello\\n")
    >>> path.read_text()
    'hello\\n'
"""

from __future__ import annotations

import errno
import io
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = [
    "FileWriteError",
    "atomic_save_npz",
    "atomic_torch_save",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "remove_stale_temporaries",
]

_TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{16}\.tmp$")

_REMEDIES = {
    errno.ENOSPC: "free some space on that disk or write elsewhere",
    errno.EDQUOT: "free some space (disk quota exceeded) or write elsewhere",
    errno.EROFS: "the file system is read-only: write elsewhere",
    errno.EACCES: "check the folder's permissions or write elsewhere",
    errno.EPERM: "check the folder's permissions or write elsewhere",
}


class FileWriteError(OSError):
    """A file could not be written (disk full, read-only folder, no permission, ...)."""


def _write_error(path: Path, error: OSError) -> FileWriteError:
    remedy = _REMEDIES.get(error.errno, "check the disk and the folder, then retry")
    reason = error.strerror or str(error)
    return FileWriteError(error.errno, f"cannot write {str(path)!r}: {reason}; {remedy}")


def _temporary_beside(path: Path) -> tuple[int, Path]:
    """Create ``.<name>.<hex>.tmp`` beside ``path`` with mode ``0o666 & ~umask``."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(fh)`` on a temporary file beside ``path``, then move it into place.

    Args:
        path: the file to write; its folder is created if missing.
        write: writes the content to the binary file handle it is given.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        FileWriteError: the disk is full, the folder is read-only, or permission is denied.
    """
    path = Path(path)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _temporary_beside(path)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except OSError as error:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if isinstance(error, FileWriteError) or error.errno not in _REMEDIES:
            raise
        raise _write_error(path, error) from None
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes | memoryview) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (serialised in memory first)."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write_bytes(path, buffer.getbuffer())


def atomic_save_npz(path: str | os.PathLike[str], **arrays: Any) -> Path:
    """``numpy.savez_compressed(**arrays)`` to ``path`` atomically."""
    import numpy as np

    return atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))


def remove_stale_temporaries(folder: str | os.PathLike[str], recursive: bool = True) -> list[Path]:
    """Delete the temporary files that an interrupted :func:`atomic_write` left in ``folder``.

    Only names of the form ``.<name>.<16 hex digits>.tmp`` are touched. Returns the paths
    removed (none if the folder does not exist).

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / ".last.ckpt.0123456789abcdef.tmp").write_bytes(b"half")
        >>> [p.name for p in remove_stale_temporaries(folder)]
        ['.last.ckpt.0123456789abcdef.tmp']
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    candidates = folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp")
    removed = []
    for candidate in candidates:
        if _TEMPORARY.match(candidate.name) and candidate.is_file():
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return sorted(removed)
