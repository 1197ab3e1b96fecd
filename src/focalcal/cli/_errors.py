"""Which exceptions the ``focalcal`` command reports as one line, and with which exit status.

The rule: a user's mistake or a fault of the environment is reported as one line
``focalcal COMMAND: error: MESSAGE`` with no traceback; anything else is a bug of ours and keeps
its traceback. The library raises, for the first kind:

* ``ValueError`` / ``TypeError`` — a bad argument or config value (the validation helpers);
* ``FileNotFoundError``, ``FileExistsError``, ``NotADirectoryError``, ``IsADirectoryError`` —
  a path that names nothing, or a run folder in a state that the command may not touch.

These are usage errors: exit status 2, as argparse gives for a bad flag. Runtime faults exit 1:

* :class:`focalcal._io.FileWriteError` and any ``OSError`` of a full, read-only or forbidden
  disk (``ENOSPC``, ``EDQUOT``, ``EROFS``, ``EACCES``, ``EPERM``) — the message names the file;
* an ``ImportError`` raised by :func:`focalcal._optional.require` for a missing extra (its
  message tells which ``pip install`` fixes it);
* a ``ConnectionError`` (a dataset download without a network,
  :class:`focalcal.data.io.DownloadError`; the message names the URL and the remedy).

A run stopped by a signal exits ``128 + signal number`` (143 for SIGTERM, 130 for SIGINT), the
status a shell reports for a process killed by that signal, so that a scheduler sees a failure.
"""

from __future__ import annotations

import errno
import signal
import sys
from pathlib import Path

USAGE_ERROR = 2
RUNTIME_FAULT = 1
CTRL_C = 128 + int(signal.SIGINT)

_USAGE_ERRORS = (
    ValueError,
    TypeError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
)
_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})
# the text every ImportError of `focalcal._optional.require` carries
_MISSING_EXTRA = 'pip install "focalcal['


class Interrupted(Exception):
    """Training was stopped by a signal; the run folder can be resumed."""

    def __init__(self, signum: int, run_dir: Path) -> None:
        name = signal.Signals(signum).name
        super().__init__(
            f"stopped by {name}; {run_dir} keeps its last complete checkpoint; resume with: "
            f"focalcal train --resume --out {run_dir}"
        )
        self.status = 128 + signum


def exit_status(err: BaseException) -> int | None:
    """The exit status for ``err``, or ``None`` when it is a bug (re-raise it)."""
    if isinstance(err, Interrupted):
        return err.status
    if isinstance(err, OSError) and err.errno in _DISK_ERRNOS:
        return RUNTIME_FAULT
    if isinstance(err, _USAGE_ERRORS):
        return USAGE_ERROR
    if isinstance(err, ImportError) and _MISSING_EXTRA in str(err):
        return RUNTIME_FAULT
    if isinstance(err, ConnectionError):
        return RUNTIME_FAULT
    return None


def one_line(err: BaseException) -> str:
    """The message of ``err`` on one line (an ``OSError`` from the system names its file)."""
    if isinstance(err, OSError) and err.strerror and err.filename is not None:
        text = f"{err.strerror}: {str(err.filename)!r}"
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            text += "; free some space or choose another --out"
        elif err.errno in _DISK_ERRNOS:
            text += "; choose a writable --out"
    elif isinstance(err, OSError) and err.strerror:
        text = err.strerror  # the library's OSErrors carry the whole message there
    else:
        text = str(err) or type(err).__name__
    return " ".join(text.split())


def report(command: str, err: BaseException) -> int | None:
    """Print ``err`` as ``focalcal COMMAND: error: …`` and return its exit status, or return
    ``None`` (printing nothing) when it is a bug."""
    status = exit_status(err)
    if status is not None:
        print(f"focalcal {command}: error: {one_line(err)}", file=sys.stderr)
    return status
