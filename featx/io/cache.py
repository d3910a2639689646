"""featx's cache folder: data featx can always make again, kept to save time.

``$FEATX_CACHE_DIR``, else ``$XDG_CACHE_HOME/featx``, else ``~/.cache/featx``
(see :func:`cache_root` for relative paths and a missing home folder).
It holds the compiled feature kernels (``kernels/``,
:mod:`featx.features.native`) and the musicnn weights as ``.npz``
(``musicnn/``, :mod:`featx.extract.musicnn`). Every file carries a SHA-256 of its
content (and of what it was made from), checked before use; a damaged file is made
again. Deleting the folder loses nothing.
"""
from __future__ import annotations

import hashlib
import logging
import os
import stat
import zipfile
from pathlib import Path

import numpy as np

from .atomic import atomic_open

__all__ = ["cache_root", "read_arrays", "write_arrays"]

logger = logging.getLogger(__name__)

#: Member of a cached ``.npz`` file holding the SHA-256 of its source and arrays.
DIGEST_MEMBER = "__featx_sha256__"


def cache_root() -> Path:
    """featx's cache folder (see the module docstring), as an absolute path; it may not exist yet.

    A relative ``FEATX_CACHE_DIR`` is taken from the current folder; a relative
    ``XDG_CACHE_HOME`` is ignored, as the XDG specification says; without a home
    folder, a per-user folder in the system's temporary folder is used.
    """
    root = os.environ.get("FEATX_CACHE_DIR")
    if root:
        return Path(os.path.abspath(root))
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "featx"
    home = os.path.expanduser("~")
    if os.path.isabs(home):
        return Path(home) / ".cache" / "featx"
    import tempfile  # only on this path

    user = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"featx-cache-{user}"


def _arrays_digest(source: str, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """SHA-256 of ``source`` and every array (name, dtype, shape, bytes), as 32 uint8."""
    digest = hashlib.sha256(source.encode())
    for name in sorted(arrays):
        value = np.ascontiguousarray(arrays[name])
        digest.update(f"\0{name}\0{value.dtype.str}\0{value.shape}\0".encode())
        digest.update(value.tobytes())
    return np.frombuffer(digest.digest(), dtype=np.uint8)


def write_arrays(path, arrays: dict[str, np.ndarray], source: str) -> Path:
    """Write ``arrays`` as an uncompressed ``.npz`` cache file at ``path``, atomically, with a
    digest of ``source`` (what the arrays were made from) and of every array.

    Raises
    ------
    OSError, OutputError
        The file cannot be written (a read-only folder, a symbolic link at ``path``...).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as fh:
        np.savez(fh, **arrays, **{DIGEST_MEMBER: _arrays_digest(source, arrays)})
    return path


def read_arrays(path, source: str, *, max_bytes: int, what: str = "cache file") -> dict[str, np.ndarray] | None:
    """The arrays :func:`write_arrays` stored at ``path`` from ``source``, or None.

    None, quietly, for a missing path, a symbolic link or anything but a regular file;
    None with one log line naming ``what`` for a file that cannot be read, is larger
    than ``max_bytes`` (checked before reading), has compressed members or members
    larger than ``max_bytes`` in all (checked before any is read: a zip bomb never
    inflates), is damaged in any way, or whose digest does not match its arrays and
    ``source``. The caller then makes the arrays again.
    """
    path = Path(path)
    try:
        info = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.warning("%s: cannot read the %s (%s); making it again", path, what, exc.strerror or exc)
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    why = None
    if info.st_size > max_bytes:
        why = f"{info.st_size} bytes, more than the {max_bytes} it can hold"
    else:
        try:
            _check_members(path, max_bytes)
            with np.load(path, allow_pickle=False) as data:
                stored = {name: data[name] for name in data.files}
        except Exception as exc:  # noqa: BLE001 - any damage (zip, CRC, zlib, EOF): the file is remade
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else "damaged"
            why = f"{type(exc).__name__}: {first}"
        else:
            digest = stored.pop(DIGEST_MEMBER, None)
            if digest is None or not np.array_equal(digest, _arrays_digest(source, stored)):
                why = "its digest does not match its content and its source"
    if why is None:
        return stored
    logger.warning("%s: damaged %s (%s); making it again", path, what, why)
    return None


def _check_members(path: Path, max_bytes: int) -> None:
    """Refuse a ``.npz`` whose members are compressed, or larger than ``max_bytes`` in all."""
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
    if any(m.compress_type != zipfile.ZIP_STORED for m in members):
        raise ValueError("a compressed member (featx stores them uncompressed)")
    total = sum(m.file_size for m in members)
    if total > max_bytes:
        raise ValueError(f"members of {total} bytes, more than the {max_bytes} it can hold")
