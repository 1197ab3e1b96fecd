"""File helpers shared by the dataset readers: checksums, downloads, safe extraction, atomic
writes (through :mod:`focalcal._io`), clear missing-file errors, and threaded image decoding with an on-disk cache."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO

import numpy as np

from .._io import atomic_write
from .._optional import require

__all__ = [
    "ChecksumError",
    "DownloadError",
    "cache_dir",
    "decode_images",
    "download_file",
    "ensure_downloaded",
    "extract_archive",
    "md5sum",
    "missing_file_error",
]

IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".ppm",
    ".pgm",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
)


class ChecksumError(ValueError):
    """A file's MD5 does not match the official one."""


class DownloadError(ConnectionError):
    """A dataset file could not be downloaded (no network, host unreachable, time-out)."""


def md5sum(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Hex MD5 of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def missing_file_error(
    path: Path, dataset: str, url: str | None, extra: str = ""
) -> FileNotFoundError:
    """A ``FileNotFoundError`` naming the file and how to get it."""
    how = (
        f"download it from {url} (or pass download=True)"
        if url
        else "see the focalcal README (data section) for where to get it"
    )
    return FileNotFoundError(f"{dataset}: file not found: {path}. {how}.{extra}")


def download_file(url: str, dest: Path, md5: str | None = None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` atomically; verify ``md5`` (mismatch → :class:`ChecksumError`,
    and the bad file is not kept)."""

    def write(fh: IO[bytes]) -> None:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            shutil.copyfileobj(response, fh, length=1 << 20)

    tmp_dest = dest.with_name(dest.name + ".part")
    try:
        atomic_write(tmp_dest, write)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError(
            f"{url}: cannot download ({reason}); check the network connection, or download "
            f"the file by other means and put it at {dest}"
        ) from None
    if md5 is not None:
        got = md5sum(tmp_dest)
        if got != md5:
            tmp_dest.unlink(missing_ok=True)
            raise ChecksumError(f"{url}: MD5 mismatch, expected {md5}, got {got}; file discarded")
    os.replace(tmp_dest, dest)
    return dest


def ensure_downloaded(url: str, dest: Path, md5: str) -> Path:
    """Reuse ``dest`` when its MD5 matches, else download it; a mismatch is an error."""
    if dest.exists():
        got = md5sum(dest)
        if got == md5:
            return dest
        raise ChecksumError(
            f"{dest}: MD5 mismatch, expected {md5}, got {got}; delete the file and retry "
            f"(it is downloaded from {url})"
        )
    return download_file(url, dest, md5)


def _check_member(name: str, target: Path) -> Path:
    dest = (target / name).resolve()
    if Path(name).is_absolute() or not dest.is_relative_to(target):
        raise ValueError(
            f"archive member {name!r} would be written outside {target}; refusing to extract"
        )
    return dest


def _through_link(name: str, links: set[str]) -> str | None:
    """The link among ``links`` (archive paths) that ``name`` would be written through, if any."""
    parts = Path(name).parts
    for depth in range(1, len(parts)):
        prefix = Path(*parts[:depth]).as_posix()
        if prefix in links:
            return prefix
    return None


def _check_tar_members(members: list[tarfile.TarInfo], target: Path) -> None:
    """Refuse the whole archive if any member could land outside ``target``.

    Each member is checked against the links declared before it, so a chain such as
    ``a -> .``, ``a/b -> ..``, ``a/b/x`` is refused even though each link alone points inside:
    no member may be written through a link of the same archive, and every link target must
    resolve inside ``target``. Device and FIFO members are refused too.
    """
    links: set[str] = set()
    for m in members:
        dest = _check_member(m.name, target)
        via = _through_link(m.name, links)
        if via is not None:
            raise ValueError(
                f"archive member {m.name!r} would be written through the link {via!r} of the "
                f"same archive; refusing to extract"
            )
        if m.issym() or m.islnk():
            link_base = dest.parent if m.issym() else target
            _check_member(str(Path(os.path.relpath(link_base, target)) / m.linkname), target)
            links.add(Path(m.name).as_posix())
        elif not (m.isfile() or m.isdir()):
            raise ValueError(f"archive member {m.name!r} is a device or FIFO; refusing to extract")


def extract_archive(archive: Path, target: Path) -> Path:
    """Extract a .tar(.gz/.bz2/.xz) or .zip into ``target``, refusing unsafe members.

    Every member must stay inside ``target`` (no absolute paths, no ``..``, nothing written
    through a link of the same archive); tar links must point inside too, and device/FIFO
    members are rejected. All members are checked before anything is written, so nothing is
    extracted if any member is unsafe, on every supported Python (with or without
    ``tarfile.data_filter``, which is applied as a second line of defence where it exists).
    """
    target = Path(target).resolve()
    target.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                _check_member(name, target)
            zf.extractall(target)
        return target
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        _check_tar_members(members, target)
        if hasattr(tarfile, "data_filter"):
            tf.extractall(target, members=members, filter="data")
        else:
            tf.extractall(target, members=members)
    return target


def cache_dir() -> Path:
    """``$FOCALCAL_CACHE`` or ``~/.cache/focalcal``."""
    base = os.environ.get("FOCALCAL_CACHE")
    return Path(base) if base else Path.home() / ".cache" / "focalcal"


def _listing_key(paths: Sequence[Path], image_size: tuple[int, int] | None, mode: str) -> str:
    """Cache key over the files' absolute paths, sizes and mtimes, the size and the mode."""
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(repr((image_size, mode, len(paths))).encode())
    parts = []
    for p in paths:
        name = os.path.abspath(p)
        st = os.stat(name)
        parts.append(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n")
    digest.update("".join(parts).encode())
    return digest.hexdigest()[:24]


def decode_images(
    paths: Sequence[Path],
    *,
    image_size: tuple[int, int] | None = None,
    mode: str = "RGB",
    cache: bool | str | os.PathLike[str] = True,
    workers: int | None = None,
) -> np.ndarray:
    """Decode image files into one uint8 (N, C, H, W) array, with a thread pool.

    Args:
        paths: image files (JPEG, PNG, ...).
        image_size: ``(H, W)`` to resize every image to (bilinear, antialiased); ``None`` requires
            all images to share one size.
        mode: PIL mode, ``"RGB"`` (C = 3) or ``"L"`` (C = 1).
        cache: ``True`` caches the decoded array as ``.npy`` under :func:`cache_dir`, a path caches
            there, ``False`` disables. The key covers the files' paths, sizes and mtimes, the size
            and the mode, so edited files are decoded again. Written atomically.
        workers: decoding threads (default: CPU count, at most 16).
    """
    Image = require("PIL.Image", "data")
    if not paths:
        raise ValueError("paths: expected at least one image file, got none")
    key = None
    cache_file = None
    if cache:
        key = _listing_key(paths, image_size, mode)
        folder = cache_dir() / "images" if cache is True else Path(cache)
        cache_file = folder / f"{key}.npy"
        if cache_file.exists():
            try:
                arr = np.load(cache_file, allow_pickle=False)
                if arr.dtype == np.uint8 and arr.ndim == 4 and arr.shape[0] == len(paths):
                    return arr
            except (OSError, ValueError):
                pass  # a damaged cache is rebuilt below

    def load(path: Path) -> np.ndarray:
        try:
            with Image.open(path) as im:
                im = im.convert(mode)
                if image_size is not None and im.size != (image_size[1], image_size[0]):
                    im = im.resize((image_size[1], image_size[0]), Image.Resampling.BILINEAR)
                return np.asarray(im, dtype=np.uint8)
        except OSError as err:
            raise ValueError(
                f"{path}: cannot decode image ({err}); the file may be corrupt"
            ) from err

    first = load(paths[0])
    if first.ndim == 2:
        first = first[:, :, None]
    h, w, c = first.shape
    out = np.empty((len(paths), c, h, w), dtype=np.uint8)

    def fill(i: int) -> None:
        img = first if i == 0 else load(paths[i])
        if img.ndim == 2:
            img = img[:, :, None]
        if img.shape != (h, w, c):
            raise ValueError(
                f"{paths[i]}: image size {img.shape[1]}×{img.shape[0]} differs from "
                f"{w}×{h} of {paths[0]}; pass image_size=(H, W) to resize"
            )
        out[i] = img.transpose(2, 0, 1)

    n_workers = workers or min(16, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        list(pool.map(fill, range(len(paths)), chunksize=256))
    if cache_file is not None:
        atomic_write(cache_file, lambda fh: np.save(fh, out, allow_pickle=False))
    return out
