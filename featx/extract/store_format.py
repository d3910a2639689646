"""The spectrogram store's format: marker, row table, checksums, encoded images.

A store is a folder in the `Zarr <https://zarr.dev>`_ v3 format::

    STORE/
      zarr.json      the group; its attributes hold featx's marker: format, version,
                     settings
      mel/           one float32 array per kind, shape (n_segments, height, width):
        zarr.json    one segment's image is one chunk (blosc: lz4, byte shuffle), the
        c.0.0.0      chunks of 16 consecutive segments one file (a Zarr shard,
        c.1.0.0      c.<n>.0.0 holding segments 16n to 16n + 15)
        ...
      mfcc/, chroma/, musicnn/
      rows.jsonl     the row table: a header, then one line per finished file (its
                     segments' track id, segment, filename, label and length, the
                     CRC-32C of each of its images, and the source file's size and
                     modification time)

This module holds what the writer (:mod:`featx.extract.store_writer`) and the
reader (:mod:`featx.data.store`) share: the marker, the row table's header and the
checks of each of its records, and the images encoded as the store holds them
(:func:`encode_images`, run in worker processes).

Integrity
---------
Each image's CRC-32C (of its float32 values, little-endian, row-major; the checksum
zarr's ``crc32c`` codec uses, computed by ``google-crc32c``, zarr's own dependency) is
committed with its file's rows, and the reader checks every image it returns against
it, so a chunk that was deleted, replaced, cut short, swapped with another or changed
by one bit is an error naming the file and segment, never a wrong image. A per-image
checksum in the row table rather than zarr's ``crc32c`` codec on each chunk, because
the codec checks only the bytes of a chunk that is there: a deleted chunk reads as the
fill value and a chunk moved to another segment's place still passes, while the row
table says what each segment must hold. Non-finite values are refused when written
(and, in stores without checksums, when read). The checksum costs about 5
microseconds per 128x130 image (over 10 GB/s with the processor's CRC instruction),
a few per cent of reading an image.

Stores of featx 0.1.0 (format version 1: zarr's default codec, one file per chunk
under ``c/<segment>/0/0``, no checksums) are read, unverified, with a warning; featx
adds no file to them: ``overwrite=True`` rewrites them.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import google_crc32c
import numpy as np

from ..errors import ConfigError, DataError, OutputError
from ..features.spectrograms import SpectrogramSettings
from ..io.chunks import ChunkFileError, encode_chunk, read_file

__all__ = ["FORMAT", "FORMAT_VERSION", "ROW_COLUMNS", "ROWS_FILE", "EncodedImages", "checksum",
           "encode_images", "parse_rows", "read_marker"]

#: The marker in the group's attributes that proves featx made a folder.
FORMAT = "featx-spectrogram-store"
#: The format this version writes: 2 adds per-image checksums, blosc chunks in shards.
FORMAT_VERSION = 2
#: Formats this version reads.
READ_VERSIONS = (1, 2)
#: Columns of the row table, one row per segment.
ROW_COLUMNS = ("track", "segment", "filename", "label", "length")
ROWS_FILE = "rows.jsonl"
GROUP_FILE = "zarr.json"
#: Largest row table read (about 1 KB per file: millions of files).
MAX_ROWS_BYTES = 1 << 34


def marker(settings: SpectrogramSettings) -> dict:
    """The featx attributes of a store's group, for the version written now."""
    return {"format": FORMAT, "version": FORMAT_VERSION, "settings": settings.to_dict()}


def journal_header(settings: dict, version: int) -> dict:
    """``rows.jsonl``'s header (less the journal's own version) for a store of ``version``."""
    if version == 1:
        return {"store": FORMAT, "settings": settings}
    return {"store": FORMAT, "version": version, "settings": settings}


def check_marker(document, where) -> dict | None:
    """The featx marker of a group document: ``None`` when it is not a featx store.

    Raises
    ------
    DataError
        The document says it is a featx store, but its version or settings are not
        what featx writes (named, with what was expected).
    """
    attrs = document.get("attributes") if isinstance(document, dict) else None
    found = attrs.get("featx") if isinstance(attrs, dict) else None
    if not isinstance(found, dict) or found.get("format") != FORMAT:
        return None
    version = found.get("version")
    if version not in READ_VERSIONS:
        raise DataError(f"{where}: spectrogram store format version {version!r}; this featx reads "
                        f"versions {', '.join(map(str, READ_VERSIONS))}: use the featx that wrote it, "
                        "or make it again (spectrograms with overwrite=True)")
    settings = found.get("settings")
    if not isinstance(settings, dict):
        raise DataError(f"{where}: the store's settings are {settings!r}; expected the settings record "
                        "featx writes (a JSON object)")
    try:
        SpectrogramSettings.from_dict(settings)
    except (ConfigError, TypeError) as exc:
        raise DataError(f"{where}: the store's settings are not valid ({exc})") from None
    return found


def read_marker(path) -> dict | None:
    """The featx attributes of the group at ``path``, or ``None`` when it is not a featx store.

    Lenient: says only whether the folder claims to be a featx store (the format name);
    :func:`load_marker` and the reader check the rest.
    """
    meta = Path(path) / GROUP_FILE
    if meta.is_symlink() or not meta.is_file():
        return None
    try:
        with open(meta, "rb") as fh:
            attrs = json.loads(fh.read(1 << 20)).get("attributes", {})
    except (OSError, ValueError, AttributeError):
        return None
    found = attrs.get("featx") if isinstance(attrs, dict) else None
    if not isinstance(found, dict) or found.get("format") != FORMAT:
        return None
    return found


def load_marker(root_fd: int, path: Path) -> dict | None:
    """The marker of the store folder open as ``root_fd``; ``None`` when it has no group document."""
    where = path / GROUP_FILE
    try:
        data = read_file(GROUP_FILE, dir_fd=root_fd, limit=1 << 20)
    except ChunkFileError as exc:
        raise DataError(f"{where}: {exc}") from None
    if data is None:
        return None
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise DataError(f"{where}: is not a JSON document; expected the store's Zarr group "
                        "metadata with featx's marker") from None
    found = check_marker(document, where)
    if found is None:
        raise OutputError(f"{path}: holds Zarr data featx did not write (no featx marker in its "
                          "zarr.json); featx does not write into it: choose another output")
    return found


# ---------------------------------------------------------------------------
# The row table


def parse_rows(data: bytes, path: Path, *, settings: dict, version: int, kinds) -> list[dict]:
    """The committed records of a row table, checked; ``[]`` when its header is another store's.

    A header with other settings (or of another version) is a store replaced by
    ``overwrite=True`` whose writer stopped before its first file: it has no rows.
    What follows the last newline is a line a killed writer cut off: not committed.

    Raises
    ------
    DataError
        A line is not JSON, or a record lacks what featx writes or does not follow the
        one before it; the message names the line and what was expected.
    """
    where = path / ROWS_FILE
    lines = data.split(b"\n")[:-1]
    if not lines:
        return []
    try:
        header = json.loads(lines[0])
    except (ValueError, UnicodeDecodeError):
        header = None
    if not isinstance(header, dict) or header.get("store") != FORMAT or "featx_journal" not in header:
        raise DataError(f"{where}: line 1 is not featx's row-table header; expected a store's row "
                        "table written by featx")
    if {k: v for k, v in header.items() if k != "featx_journal"} != journal_header(settings, version):
        return []
    records = []
    n = 0
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            raise DataError(f"{where}: line {number} is not JSON; expected one record per "
                            "finished file") from None
        n = _check_record(record, n, f"{where}: line {number}", kinds=kinds, version=version)
        records.append(record)
    return records


def _int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_record(record, n: int, where: str, *, kinds, version: int) -> int:
    """Raise unless ``record`` is a file's record starting at row ``n``; return the next row."""
    if not isinstance(record, dict):
        raise DataError(f"{where}: holds a JSON {type(record).__name__}; expected a record object "
                        "with key, start and rows")
    key = record.get("key")
    if not isinstance(key, str):
        raise DataError(f"{where}: the record's key is {key!r}; expected the source file's id (a string)")
    if record.get("start") != n or not _int(record.get("start")):
        raise DataError(f"{where}: the record for {key!r} starts at row {record.get('start')!r}, "
                        f"expected {n}; the row table is damaged")
    rows = record.get("rows")
    if not isinstance(rows, list) or not rows:
        raise DataError(f"{where}: the record for {key!r} has rows {rows!r}; expected a non-empty "
                        "list of segment rows")
    for i, row in enumerate(rows):
        if not (isinstance(row, list) and len(row) == 5 and isinstance(row[0], str) and _int(row[1])
                and row[1] >= 0 and isinstance(row[2], str) and (row[3] is None or isinstance(row[3], str))
                and _int(row[4]) and row[4] > 0):
            raise DataError(f"{where}: row {i} of {key!r} is {row!r}; expected [track, segment, "
                            "filename, label or null, length in samples]")
    fingerprint = record.get("fingerprint")
    if fingerprint is not None and not (isinstance(fingerprint, list) and len(fingerprint) == 2
                                        and all(_int(v) for v in fingerprint)):
        raise DataError(f"{where}: the record for {key!r} has fingerprint {fingerprint!r}; expected "
                        "[size, mtime_ns]")
    if version >= 2:
        sums = record.get("crc32c")
        if not isinstance(sums, dict) or any(
                not isinstance(sums.get(k), list) or len(sums[k]) != len(rows)
                or not all(_int(v) and 0 <= v < 1 << 32 for v in sums[k]) for k in kinds):
            raise DataError(f"{where}: the record for {key!r} lacks the checksums of its images; "
                            f"expected crc32c with {len(rows)} per kind ({', '.join(kinds)})")
    return n + len(rows)


# ---------------------------------------------------------------------------
# Images ready to store


def checksum(image) -> int:
    """The CRC-32C of an image's bytes (a C-contiguous little-endian float32 array or its bytes)."""
    data = np.frombuffer(image, dtype=np.uint8)  # a view of its bytes, not a copy
    data.flags.writeable = False  # google_crc32c reads read-only buffers only
    return google_crc32c.value(data)


@dataclasses.dataclass(frozen=True)
class EncodedImages:
    """One file's images as chunks: what a worker process sends back to the writer.

    Attributes
    ----------
    n_segments : int
    shapes : dict
        ``kind -> (height, width)``.
    chunks : dict
        ``kind -> [bytes]``: each segment's chunk, as stored.
    crc32c : dict
        ``kind -> [int]``: each segment's :func:`checksum`.
    """

    n_segments: int
    shapes: dict
    chunks: dict
    crc32c: dict


def encode_images(images: dict, *, kinds, key: str = "images") -> EncodedImages:
    """Check one file's images and encode them as the store holds them.

    Parameters
    ----------
    images : dict
        ``kind -> np.ndarray [shape=(n_segments, height, width)]`` for every kind in
        ``kinds``, as :func:`featx.features.spectrograms.segment_spectrograms` returns.
    kinds : iterable of str
    key : str
        Named in errors.

    Raises
    ------
    DataError
        A kind is missing, the kinds differ in segments, or an image is not finite.
    """
    kinds = tuple(kinds)
    missing = [k for k in kinds if k not in images]
    if missing:
        raise DataError(f"images for {key!r} lack the kind(s) {', '.join(missing)} of this store")
    arrays = {k: np.asarray(images[k]) for k in kinds}
    counts = {a.shape[0] if a.ndim == 3 else -1 for a in arrays.values()}
    if len(counts) != 1 or counts & {0, -1}:
        raise DataError(f"images for {key!r} must give every kind the same, non-zero number of segments "
                        "of 2-D images (shape (n_segments, height, width))")
    (n,) = counts
    chunks, sums = {}, {}
    for kind, array in arrays.items():
        data = np.ascontiguousarray(array, dtype="<f4")
        finite = np.isfinite(data).all(axis=(1, 2))
        if not finite.all():
            raise DataError(f"images for {key!r}: segment {int(np.flatnonzero(~finite)[0])} of the {kind} "
                            "images holds NaN or infinity; a store holds finite values only")
        chunks[kind] = [encode_chunk(image) for image in data]
        sums[kind] = [checksum(image) for image in data]
    return EncodedImages(n, {k: tuple(a.shape[1:]) for k, a in arrays.items()}, chunks, sums)


# ---------------------------------------------------------------------------
# The writer
