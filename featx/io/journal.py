"""The append-only journal that makes long runs resumable."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path


from ..errors import OutputError

logger = logging.getLogger(__name__)
_JOURNAL_VERSION = 1


# --------------------------------------------------------------------------- journal


class Journal:
    """Append-only record of finished files; see the module docstring."""

    def __init__(self, path: Path, header: dict):
        self.path = path
        self.header = header
        self.done: dict[str, int] = {}  # file key -> byte offset of its record
        self._fh = None

    def open(self, *, overwrite: bool) -> None:
        if self.path.exists() and not overwrite:
            self._recover()
        else:
            with open(self.path, "wb") as fh:
                fh.write((json.dumps(self.header) + "\n").encode())
        self._fh = open(self.path, "ab", buffering=0)

    def _recover(self) -> None:
        good_end = 0
        with open(self.path, "rb") as fh:
            first = fh.readline()
            try:
                header = json.loads(first)
            except ValueError:
                header = None
            if header is None or not first.endswith(b"\n"):
                # killed before the header was complete: nothing was done yet
                fh.close()
                with open(self.path, "wb") as out:
                    out.write((json.dumps(self.header) + "\n").encode())
                return
            if header != self.header:
                raise OutputError(
                    f"{self.path} holds an unfinished run with other settings "
                    f"({_settings_diff(header, self.header)}); re-run with those settings "
                    "to finish it, or pass --overwrite to start again"
                )
            good_end = fh.tell()
            while True:
                offset = fh.tell()
                line = fh.readline()
                if not line:
                    break
                if not line.endswith(b"\n"):
                    break  # cut short by an interruption
                try:
                    record = json.loads(line)
                    key = record["key"]
                except (ValueError, KeyError, TypeError):
                    break
                self.done[key] = offset
                good_end = fh.tell()
        if good_end < self.path.stat().st_size:
            logger.info("discarding an incomplete last record in %s", self.path)
            with open(self.path, "r+b") as fh:
                fh.truncate(good_end)

    def append(self, record: dict) -> None:
        data = (json.dumps(record, allow_nan=False) + "\n").encode()
        offset = self._fh.seek(0, os.SEEK_END)
        self._fh.write(data)  # one write: a kill leaves the whole line or a cut one
        self.done[record["key"]] = offset

    def read(self, key: str) -> dict:
        with open(self.path, "rb") as fh:
            fh.seek(self.done[key])
            return json.loads(fh.readline())

    def close(self) -> None:
        if self._fh is not None:
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None


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
