"""Bounds on what a zip-based file featx reads may inflate to.

A bundle's model files are zip archives: ``model.skops`` (skops), ``model.keras``
(Keras 3), and the ``.npz`` arrays (``model_arrays.npz``, ``model_check.npz``,
``distance.npz``, ``baseline.npz``). The libraries that read them inflate every
member whole, so a small file that declares a huge member (a decompression bomb)
would take that memory and time. :func:`check_archive` reads the archive's
directory and each member's compressed bytes once, before anything parses it, and
refuses

* a member compressed other than stored or deflated, or encrypted;
* more than :data:`MAX_MEMBERS` members, or more than :data:`MAX_TOTAL` bytes in all;
* a member declared larger than :data:`SMALL_MEMBER` bytes and more than
  :data:`MAX_MEMBER_RATIO` times its compressed size, and a whole archive declaring
  more than :data:`SMALL_MEMBER` plus :data:`MAX_RATIO` times its compressed bytes
  (numbers barely compress: featx's own model files inflate at most about 8 times as a
  whole, their largest text member about 51 times; ``bench/bundle_archive_sizes.py``
  and ``docs/guarantees.rst`` give the figures);
* a member whose bytes inflate to more, or fewer, than its declared size (a lying
  header): inflating stops one byte past the declared size, so the check itself
  never holds more than a block of output.
"""
from __future__ import annotations

import struct
import zipfile
import zlib
from pathlib import Path

from ..errors import BundleError

__all__ = ["MAX_MEMBERS", "MAX_MEMBER_RATIO", "MAX_RATIO", "MAX_TOTAL", "SMALL_MEMBER", "check_archive"]

#: Most bytes all members of one archive may inflate to (16 GiB): twice what the largest
#: random forest featx trains (10,000 trees on the 9,990 rows of GTZAN's 3-s table) needs by
#: extrapolation from 2,000 trees on 599 rows (95 MB).
MAX_TOTAL = 16 * 2**30
#: Most members in one archive.
MAX_MEMBERS = 200_000
#: Most times a whole archive may inflate its compressed bytes (beyond :data:`SMALL_MEMBER`).
MAX_RATIO = 32
#: Most times one member larger than :data:`SMALL_MEMBER` may inflate its compressed size
#: (skops's ``schema.json`` of a random forest, text, reaches 51).
MAX_MEMBER_RATIO = 256
#: Members up to this size (1 MiB) may compress as well as they like.
SMALL_MEMBER = 2**20

_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
_BLOCK = 1 << 20


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n} bytes"


def _inflated_size(fh, info: zipfile.ZipInfo) -> int:
    """How many bytes ``info``'s compressed data inflates to, stopping one block past its
    declared size."""
    fh.seek(info.header_offset)
    header = fh.read(_LOCAL_HEADER.size)
    if len(header) != _LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
        raise ValueError("its local header is missing")
    fields = _LOCAL_HEADER.unpack(header)
    fh.seek(info.header_offset + _LOCAL_HEADER.size + fields[-2] + fields[-1])
    left = info.compress_size
    if info.compress_type == zipfile.ZIP_STORED:
        return left
    inflate = zlib.decompressobj(-zlib.MAX_WBITS)
    out = 0
    budget = info.file_size + 1
    while True:
        if inflate.unconsumed_tail:
            data = inflate.unconsumed_tail
        elif left > 0:
            data = fh.read(min(_BLOCK, left))
            if not data:
                raise ValueError("its compressed data is cut short")
            left -= len(data)
        else:
            data = b""  # all read: what the inflater still holds
        chunk = inflate.decompress(data, min(_BLOCK, budget - out))
        out += len(chunk)
        if out > info.file_size or inflate.eof or not (chunk or data):
            break
    return out


def check_archive(path, *, error=BundleError) -> None:
    """Refuse a zip archive whose members would inflate to more than the limits allow.

    Parameters
    ----------
    path : path
        The archive (``.npz``, ``.skops``, ``.keras``).
    error : type
        The :class:`~featx.errors.FeatxError` subclass raised.

    Raises
    ------
    error
        One line naming the file, the member, its declared or inflated size and the
        limit; or that the file is not a zip archive it can read.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            try:
                members = zipfile.ZipFile(fh).infolist()
            except (zipfile.BadZipFile, ValueError, EOFError, OSError) as exc:
                raise error(f"corrupt bundle: {path}: cannot read it as a zip archive ({exc})") from None
            if len(members) > MAX_MEMBERS:
                raise error(f"corrupt bundle: {path}: holds {len(members)} members; at most {MAX_MEMBERS} "
                            "are read")
            total = compressed = 0
            for info in members:
                where = f"corrupt bundle: {path}: member {info.filename!r}"
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or info.flag_bits & 1:
                    raise error(f"{where} is encrypted or compressed with method {info.compress_type}; "
                                "expected stored or deflated")
                ratio = info.file_size / max(info.compress_size, 1)
                if info.file_size > SMALL_MEMBER and ratio > MAX_MEMBER_RATIO:
                    raise error(f"{where} declares {_size(info.file_size)} from {_size(info.compress_size)} "
                                f"(ratio {ratio:.0f}); a member over {_size(SMALL_MEMBER)} may inflate at most "
                                f"{MAX_MEMBER_RATIO} times (a decompression bomb?)")
                total += info.file_size
                compressed += info.compress_size
                if total > MAX_TOTAL:
                    raise error(f"{where}: the members declare more than {_size(MAX_TOTAL)} in all; at most "
                                f"{_size(MAX_TOTAL)} are read")
            if total > SMALL_MEMBER + MAX_RATIO * compressed:
                biggest = max(members, key=lambda m: m.file_size)
                raise error(f"corrupt bundle: {path}: its {len(members)} members declare {_size(total)} from "
                            f"{_size(compressed)} (largest {biggest.filename!r}, {_size(biggest.file_size)}); at "
                            f"most {_size(SMALL_MEMBER)} plus {MAX_RATIO} times the compressed bytes are read "
                            "(a decompression bomb?)")
            for info in members:
                try:
                    inflated = _inflated_size(fh, info)
                except (ValueError, zlib.error, OSError) as exc:
                    raise error(f"corrupt bundle: {path}: member {info.filename!r} cannot be inflated "
                                f"({exc})") from None
                if inflated != info.file_size:
                    more = "more than" if inflated > info.file_size else "fewer than"
                    raise error(f"corrupt bundle: {path}: member {info.filename!r} inflates to {more} the "
                                f"{_size(info.file_size)} its header declares")
    except OSError as exc:
        raise error(f"corrupt bundle: {path}: cannot be read ({exc.strerror or exc})") from None
