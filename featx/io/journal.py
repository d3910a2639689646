"""The append-only journal that makes long runs resumable.

One journal serves every long run (``featx extract``, ``featx sweep``): a file of
JSON lines whose first line is a header holding the run's settings, then one
record per finished unit of work, each with a unique ``"key"``.

- **Locked.** The journal is opened without following a symbolic link and locked
  with an exclusive, non-blocking ``fcntl`` lock held until :meth:`Journal.close`;
  a second run on the same output is refused with one line, so two writers never
  interleave.
- **One write per record.** A kill leaves each record whole or its last one cut
  short, never two records mixed.
- **Recovery.** On reopening, a cut-off last line and an unparsable last record
  are dropped (the file is truncated after the last good record); everything
  before them is kept. A header made with other settings is refused.
"""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import stat
from pathlib import Path

from ..errors import OutputError

logger = logging.getLogger(__name__)
_JOURNAL_VERSION = 2
#: Every journal's first line starts with this (``json.dumps`` keeps key order).
_MAGIC = b'{"featx_journal"'


# --------------------------------------------------------------------------- journal


class Journal:
    """Append-only, locked JSON-lines record of finished work.

    Parameters
    ----------
    path : path
        The journal file. It is created if absent; a symbolic link there is refused.
    header : dict
        The run's settings, written as the first line. A journal left by an
        earlier run is resumed only when its header equals this one.
    allow_nan : bool
        Whether records may hold NaN or infinity (written as JSON's extensions).
    headerless : bool
        Also resume a journal of records without a header line (as sweeps of
        earlier featx versions wrote); new journals always get one.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "run.partial"
    >>> with Journal(path, {"settings": 1}) as journal:
    ...     journal.append({"key": "a", "value": 1})
    >>> with Journal(path, {"settings": 1}) as journal:
    ...     sorted(journal.records)
    ['a']
    """

    def __init__(self, path, header: dict, *, allow_nan: bool = False, headerless: bool = False):
        self.path = Path(path)
        self.header = {"featx_journal": _JOURNAL_VERSION, **header}
        self.allow_nan = allow_nan
        self.headerless = headerless
        #: ``{key: record}`` of every record, the last one where a key repeats.
        self.records: dict[str, dict] = {}
        #: Whether :meth:`open` created the file (no earlier run had left one).
        self.created = False
        self._fd: int | None = None

    # ------------------------------------------------------------------ opening

    def open(self, *, fresh: bool = False) -> dict[str, dict]:
        """Lock the journal and return ``{key: record}`` of what it holds.

        Parameters
        ----------
        fresh : bool
            Start again: drop whatever a previous run of featx left.

        Raises
        ------
        OutputError
            The path is a symbolic link or not a regular file, another run holds
            the lock, the file is not a featx journal, or it holds an unfinished
            run with other settings.
        """
        self.lock()
        try:
            data = _read_all(self._fd)
            first, newline, rest = data.partition(b"\n")
            if self.headerless and not fresh and newline and _parse(first) is not None:
                self._recover(data, 0)  # records from the first line on
                return self.records
            if data and not (data.startswith(_MAGIC) or _MAGIC.startswith(data)):
                raise OutputError(
                    f"{self.path} exists and is not a featx journal; featx does not overwrite "
                    "it: move it away or choose another output"
                )
            if fresh or not newline:  # new, or killed before its header was complete
                self._rewrite_header()
            else:
                self._check_header(first)
                self._recover(rest, len(first) + 1)
        except BaseException:
            self.close()
            raise
        return self.records

    def lock(self) -> None:
        """Take the exclusive lock (creating the file if absent) without reading or writing it.

        For a caller that must decide under the lock how to open (``open`` then keeps
        the lock); :meth:`close` releases it.

        Raises
        ------
        OutputError
            As :meth:`open`: a link, not a regular file, or another run holds the lock.
        """
        if self._fd is None:
            self._fd = self._lock()

    def _lock(self) -> int:
        """Open without following links and take the exclusive lock; retry if the file was replaced."""
        flags = os.O_RDWR | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
        for _ in range(100):
            try:
                try:  # O_EXCL first: tells whether this run created the file
                    fd = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, 0o666)
                    self.created = True
                except FileExistsError:
                    fd = os.open(self.path, flags)
                    self.created = False
            except FileNotFoundError:  # removed between the two opens: try again
                continue
            except OSError as exc:
                if exc.errno == errno.ELOOP or self.path.is_symlink():
                    raise OutputError(
                        f"{self.path} is a symbolic link; featx never writes through a link: "
                        "remove it or choose another output"
                    ) from None
                raise OutputError(f"{self.path}: cannot be opened ({exc.strerror}); "
                                  "expected a writable journal file") from None
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                os.close(fd)
                raise OutputError(f"{self.path} is not a regular file; expected featx's journal "
                                  "there: move it away or choose another output")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise OutputError(
                    f"another featx run is writing to {self.path}; wait for it or use another output"
                ) from None
            os.set_blocking(fd, True)
            try:  # the run that held the lock may have finished and removed the file meanwhile
                same = os.stat(self.path, follow_symlinks=False).st_ino == info.st_ino
            except FileNotFoundError:
                same = False
            if same:
                return fd
            os.close(fd)
        raise OutputError(f"{self.path} keeps being replaced by another process; "
                          "wait for it or use another output")

    def _rewrite_header(self) -> None:
        os.ftruncate(self._fd, 0)
        os.write(self._fd, (json.dumps(self.header) + "\n").encode())
        self.records = {}

    def _check_header(self, first: bytes) -> None:
        try:
            header = json.loads(first)
        except ValueError:
            header = None
        if header != self.header:
            if not isinstance(header, dict):
                detail = "unreadable header"
            elif header.get("featx_journal") != _JOURNAL_VERSION:
                detail = (f"journal format {header.get('featx_journal')!r} of another featx version, "
                          f"{_JOURNAL_VERSION} now")
            else:
                detail = _settings_diff(header, self.header)
            raise OutputError(
                f"{self.path} holds an unfinished run with other settings ({detail}); re-run "
                "with those settings to finish it, or pass overwrite=True to start again"
            )

    def _recover(self, body: bytes, start: int) -> None:
        """Read the records after the header; truncate after the last good one."""
        records: dict[str, dict] = {}
        complete = body.split(b"\n")[:-1]  # what follows the last newline is a cut-off line
        good_end = offset = start
        for number, line in enumerate(complete):
            end = offset + len(line) + 1
            record = _parse(line)
            if record is not None:
                records[str(record["key"])] = record
                good_end = end
            elif number < len(complete) - 1:  # not the last: keep the line, skip the record
                if line.strip():
                    logger.warning("%s: ignoring an unreadable record (line %d)", self.path, number + 2)
                good_end = end
            offset = end
        size = start + len(body)
        if good_end < size:
            logger.warning("%s: dropping a cut-off or unreadable last record (%d bytes) of an "
                           "interrupted run", self.path, size - good_end)
            os.ftruncate(self._fd, good_end)
        self.records = records

    # ------------------------------------------------------------------ writing

    def append(self, record: dict) -> None:
        """Add one record (a dict with a ``"key"``) with a single write."""
        if self._fd is None:
            raise RuntimeError("the journal is not open")
        data = (json.dumps(record, allow_nan=self.allow_nan) + "\n").encode()
        written = os.write(self._fd, data)  # one write: a kill leaves the whole line or a cut one
        if written != len(data):  # a full disk: a record is never left half-written and kept
            raise OSError(errno.ENOSPC, f"{self.path}: only {written} of {len(data)} bytes written")
        self.records[str(record["key"])] = record

    @property
    def unused(self) -> bool:
        """Whether this run created the journal and has recorded nothing in it yet: a
        failed start leaves nothing behind when it is closed with ``remove=journal.unused``."""
        return self.created and not self.records

    def close(self, *, remove: bool = False) -> None:
        """Flush and release the lock; ``remove=True`` deletes the journal first (still locked)."""
        if self._fd is None:
            return
        try:
            if remove:
                try:
                    if os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(self._fd).st_ino:
                        self.path.unlink()
                except FileNotFoundError:
                    pass
            else:
                os.fsync(self._fd)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "Journal":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _parse(line: bytes) -> dict | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or "key" not in record:
        return None
    return record


def _settings_diff(old: dict, new: dict) -> str:
    parts = []
    for key in sorted(set(old) | set(new)):
        if key == "version":
            continue
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            parts += [f"{k}: {a.get(k)!r} there, {b.get(k)!r} now" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif a != b:
            parts.append(f"{key}: {a!r} there, {b!r} now")
    return "; ".join(parts) or "format version differs"
