"""Checksums of files featx reads and records (tables, label lists, training data)."""
from __future__ import annotations

import hashlib

__all__ = ["file_sha256"]


def file_sha256(path) -> str:
    """The SHA-256 of a file's bytes, as hex (read a megabyte at a time)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
