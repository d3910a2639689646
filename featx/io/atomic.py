"""Writing files so that a reader never sees half of one.

Every file featx writes goes through :func:`atomic_open` (or its two shortcuts,
:func:`atomic_write` for bytes or text and :func:`atomic_save` for libraries that
insist on a file name). The rules, in one place:

* the data goes to a temporary file beside the target, is flushed to disk and then
  renamed over the target: a crash leaves the old file or the new one, never a mix;
* the new file gets the permissions of any new file (``0o666`` less the umask), not
  the owner-only mode of :func:`tempfile.mkstemp`;
* a symbolic link at the target is refused, never written through;
* inside a folder featx made (see :mod:`featx.io.guard`) a file is replaced only when
  the folder's marker lists it, and every file written there is added to the marker;
* a failure removes the temporary file and ends in one :class:`~featx.errors.OutputError`
  line naming the file ("no space left on the device" when the disk is full).
"""
from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Callable

from ..errors import OutputError
from .failures import write_error  # noqa: F401  (re-exported: the writers' one-line error)
from .guard import check_replaceable, note_written

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def refuse_symlink(path, *, what: str = "file") -> Path:
    """Raise :class:`OutputError` if ``path`` is a symbolic link (featx never writes through one).

    Parameters
    ----------
    path : str or Path
        Where featx is about to create or replace a file or folder.
    what : str
        What featx wanted to write there, for the message.
    """
    path = Path(path)
    if path.is_symlink():
        raise OutputError(
            f"{path}: is a symbolic link; featx does not write its {what} through links; "
            "remove the link or choose another path"
        )
    return path


def _check_target(path: Path) -> None:
    refuse_symlink(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; expected a file path to write")
    check_replaceable(path)


def _temp_path(path: Path) -> tuple[Path, int]:
    """Create an empty temporary file beside ``path`` (mode 0o666 less the umask)."""
    suffix = path.suffix if path.suffix else ""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp{suffix}")
        try:
            return tmp, os.open(tmp, _FLAGS, 0o666)
        except FileExistsError:  # pragma: no cover - 32 random bits collided
            continue
        except OSError as exc:
            raise write_error(path, exc) from None


def temp_beside(path) -> tuple[Path, int]:
    """Check ``path`` may be written, and create an empty temporary file beside it.

    For writers that manage the temporary file themselves; write and :func:`commit`
    inside :func:`discard_on_failure`, so that a failure removes the temporary file.
    Returns the temporary path and an open file descriptor for writing (mode ``0o666``
    less the umask).
    """
    path = Path(path)
    _check_target(path)
    return _temp_path(path)


def commit(tmp, path) -> Path:
    """Flush the finished temporary file ``tmp`` to disk and rename it to ``path``.

    The temporary file is removed when this fails (:class:`OutputError`).
    """
    tmp, path = Path(tmp), Path(path)
    with discard_on_failure(tmp, path):
        refuse_symlink(path)
        _finish(tmp, path)
    return path


@contextlib.contextmanager
def discard_on_failure(tmp, path):
    """Remove the temporary file ``tmp`` when the ``with`` block fails, and re-raise.

    The partner of :func:`temp_beside` for writers that manage the temporary file
    themselves: an ``OSError`` becomes the one-line :class:`OutputError` of
    :func:`write_error` naming ``path``; any other exception (``KeyboardInterrupt``
    included) propagates unchanged. ``tmp`` is left alone on success.

    Parameters
    ----------
    tmp : str or Path
        The temporary file being written.
    path : str or Path
        The file it will replace, named in the error.
    """
    tmp = Path(tmp)
    try:
        yield
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_error(path, exc) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _finish(tmp: Path, path: Path) -> None:
    fd = os.open(tmp, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    note_written(path)


@contextlib.contextmanager
def atomic_open(path, mode: str = "wb", *, encoding: str | None = None, newline: str | None = None):
    """Open a temporary file beside ``path``; on a clean exit, put it in place of ``path``.

    Parameters
    ----------
    path : str or Path
        The file to create or replace. Its folder must exist.
    mode : {"wb", "w"}
        Binary or text.
    encoding, newline : str, optional
        As for :func:`open` (text mode; ``encoding`` defaults to UTF-8).

    Yields
    ------
    file object
        Write to it; the rename happens when the ``with`` block ends without an error.

    Raises
    ------
    OutputError
        ``path`` is a symbolic link or a folder, is a file in a featx folder that featx
        did not write, or cannot be written (disk full, no permission).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "table.csv"
    >>> with atomic_open(target, "w", newline="") as fh:
    ...     _ = fh.write("a,b\\n1,2\\n")
    >>> target.read_text()
    'a,b\\n1,2\\n'
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w'. Received: mode={mode!r}")
    path = Path(path)
    _check_target(path)
    tmp, fd = _temp_path(path)
    with discard_on_failure(tmp, path):
        if mode == "w":
            fh = os.fdopen(fd, "w", encoding=encoding or "utf-8", newline=newline)
        else:
            fh = os.fdopen(fd, "wb")
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    note_written(path)


def atomic_write(path, data: str | bytes) -> Path:
    """Write ``data`` (text is encoded as UTF-8) to ``path`` atomically; see :func:`atomic_open`.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    with atomic_open(path, "wb") as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def atomic_save(path, save: Callable[[Path], object]) -> Path:
    """Let ``save(temporary_path)`` write a file, then put it in place of ``path`` atomically.

    For writers that need a file name rather than a file object (a Keras model's
    ``save``). The temporary name ends with the same suffix as ``path``; it exists
    (empty, with the umask's permissions) when ``save`` is called.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    _check_target(path)
    tmp, fd = _temp_path(path)
    os.close(fd)
    with discard_on_failure(tmp, path):
        save(tmp)
        if tmp.is_symlink() or not tmp.is_file():
            raise OutputError(f"{path}: the writer did not produce a file")
        _finish(tmp, path)
    return path
