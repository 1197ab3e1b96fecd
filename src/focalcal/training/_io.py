"""Atomic writes of text, torch objects and npz archives, on top of :func:`focalcal.data.io.atomic_write`
(temporary file in the same folder, then ``os.replace``).

A reader, or a process restarted after SIGKILL, sees either the old file or the complete new
one, never a truncated file.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.io import atomic_write

__all__ = ["atomic_save_npz", "atomic_torch_save", "atomic_write", "atomic_write_text"]


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (serialised in memory first)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write(path, lambda f: f.write(buffer.getbuffer()))


def atomic_save_npz(path: str | Path, **arrays: np.ndarray) -> Path:
    """``numpy.savez_compressed`` to ``path`` atomically."""
    return atomic_write(path, lambda f: np.savez_compressed(f, **arrays))
