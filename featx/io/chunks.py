"""Zarr v3 arrays written and read one chunk file at a time, never through a link.

featx's spectrogram store (:mod:`featx.extract.store_writer` writes it,
:mod:`featx.data.store` reads it) is a Zarr v3 group of float32 arrays chunked one
image per chunk, the chunks of :data:`SHARD_ROWS` consecutive images kept in one
file (a shard, Zarr's ``sharding_indexed`` codec). This module is the part that
knows the format's files:

* **metadata**: the array document (``zarr.json``) featx writes, and the checks of
  one it reads (data type, shape, chunk grid, chunk keys, codecs), each naming what
  it found and what was expected;
* **shards**: a shard file is its chunks, one after another, then an index of
  ``(offset, length)`` pairs (little-endian uint64; both ``2**64 - 1`` for a chunk not
  written); one image is read with two ``pread`` calls (the index, its chunk);
* **codecs**: featx writes ``bytes`` (little-endian) then ``blosc`` (lz4 level 5,
  byte shuffle) for each chunk, exactly the bytes zarr writes for that codec; it
  reads those, and unsharded ``zstd`` or ``gzip`` chunks (zarr's default codec, used by
  stores of featx 0.1.0). A chunk's header is checked before anything is allocated
  for it;
* **files**: every file and folder is opened relative to an open folder with
  ``O_NOFOLLOW``, so a symbolic link anywhere below a store's root is refused, never
  followed, whether writing or reading; a file is replaced atomically (written
  beside under a temporary name, then renamed), with the user's umask; a file read
  must be a regular file no larger than the format allows, so that a FIFO, a device
  or an oversized file is refused before it is read.

featx does not use the zarr package for this: importing it costs about 170 ms, a third
of the start-up budget of ``featx spectrograms``; each chunk goes through its asyncio
machinery; and its local store follows links. zarr and Dask read what featx writes
(the tests check it against zarr).

Why shards: creating a file costs far more than writing its bytes (about 0.25 ms on
the machine the benches ran on, over 1 ms under load), and a 30-s clip has 30 images
(ten 3-s segments, three kinds): one file per image made file creation the largest
cost of writing a store. With shards of 16 images a clip costs about five file
creations, and a GTZAN store is about 2,000 files instead of 30,000.
"""
from __future__ import annotations

import errno
import json
import os
import stat
import zlib
from dataclasses import dataclass

import numpy as np

__all__ = [
    "SHARD_ROWS",
    "ArrayLayout",
    "ChunkFileError",
    "array_metadata",
    "encode_chunk",
    "kind_of",
    "open_file",
    "open_folder",
    "parse_array_metadata",
    "read_file",
    "shard_bytes",
    "write_file",
]

#: Images per shard file (along the first axis). A shard holding the last rows is
#: rewritten with each file appended (its committed chunks unchanged, at the same
#: offsets): 16 keeps that rewriting below the size of the images added, on average.
SHARD_ROWS = 16
#: A chunk a shard does not hold: its index entry's offset and length.
_EMPTY = (1 << 64) - 1

#: The codecs featx writes: little-endian float32, then blosc with lz4 (level 5) over
#: byte-shuffled values. Lossless. Measured on the images of 44 GTZAN clips: 1.17x
#: smaller at 1.2 GB/s to encode and 2.4 GB/s to decode; zstd level 1 would make
#: them 1.21x smaller at a quarter of the speed either way, and without the shuffle
#: every codec stays below 1.12x (the values' low mantissa bytes are noise).
WRITE_CODECS = (
    {"name": "bytes", "configuration": {"endian": "little"}},
    {"name": "blosc", "configuration": {"typesize": 4, "cname": "lz4", "clevel": 5,
                                        "shuffle": "shuffle", "blocksize": 0}},
)
#: Chunk keys featx writes: ``c.<segment>.0.0``, one flat folder per array.
WRITE_SEPARATOR = "."
#: Largest metadata document read (a store's ``zarr.json`` files are a few KB).
MAX_METADATA_BYTES = 1 << 20

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_BLOSC_SHUFFLE = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}


class ChunkFileError(Exception):
    """A file or folder of an array is unusable; the message says why (callers add where)."""


# ---------------------------------------------------------------------------
# Files, opened relative to a folder without following links


def kind_of(mode: int) -> str:
    for test, name in ((stat.S_ISREG, "a file"), (stat.S_ISDIR, "a folder"), (stat.S_ISLNK, "a symbolic link"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def _what_is(name: str, dir_fd: int | None) -> str:
    try:
        return kind_of(os.lstat(name, dir_fd=dir_fd).st_mode)
    except OSError:
        return "not usable"


def open_folder(name, *, dir_fd: int | None = None, create: bool = False) -> int:
    """Open the folder ``name`` (inside ``dir_fd`` when given) without following a link.

    Returns a file descriptor for ``dir_fd=`` calls; close it with ``os.close``.

    Raises
    ------
    ChunkFileError
        ``name`` is a symbolic link, not a folder, absent (unless ``create``), or unusable.
    """
    if create:
        try:
            os.mkdir(name, dir_fd=dir_fd)
        except FileExistsError:
            pass
        except OSError as exc:
            raise ChunkFileError(f"cannot be created ({exc.strerror})") from None
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        raise ChunkFileError("is missing") from None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise ChunkFileError(f"is {_what_is(name, dir_fd)}, not a folder featx wrote") from None
        raise ChunkFileError(f"cannot be opened ({exc.strerror})") from None


def open_file(name: str, *, dir_fd: int, limit: int) -> tuple[int, int] | None:
    """Open the regular file ``name`` in ``dir_fd`` for reading: ``(fd, size)``, or ``None``
    when it is absent. The caller closes ``fd``.

    Raises
    ------
    ChunkFileError
        ``name`` is a link, a FIFO, a device, a folder, larger than ``limit`` bytes, or
        cannot be opened.
    """
    try:
        fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ChunkFileError("is a symbolic link; featx reads a store's files only where it "
                                 "wrote them") from None
        raise ChunkFileError(f"cannot be opened ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ChunkFileError(f"is {kind_of(info.st_mode)}, not a file featx wrote")
        if info.st_size > limit:
            raise ChunkFileError(f"holds {info.st_size:,} bytes; a file of this kind holds at "
                                 f"most {limit:,}")
    except BaseException:
        os.close(fd)
        raise
    return fd, info.st_size


def pread_exact(fd: int, size: int, offset: int) -> bytes:
    """``size`` bytes at ``offset``; a file that ends sooner is cut short."""
    try:
        data = os.pread(fd, size, offset)
    except OSError as exc:
        raise ChunkFileError(f"cannot be read ({exc.strerror})") from None
    if len(data) != size:
        raise ChunkFileError(f"is cut short ({offset + len(data):,} bytes where at least "
                             f"{offset + size:,} are needed)")
    return data


def read_file(name: str, *, dir_fd: int, limit: int) -> bytes | None:
    """The bytes of the regular file ``name`` in ``dir_fd``, or ``None`` when it is absent.

    Nothing is read from a link, a FIFO, a device or a file larger than ``limit`` bytes.
    """
    opened = open_file(name, dir_fd=dir_fd, limit=limit)
    if opened is None:
        return None
    fd, size = opened
    try:
        data = os.pread(fd, size + 1, 0)  # one byte more: a file that grew meanwhile is seen
    except OSError as exc:
        raise ChunkFileError(f"cannot be read ({exc.strerror})") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ChunkFileError(f"holds more than {limit:,} bytes")
    return data


def write_file(name: str, data: bytes, *, dir_fd: int) -> None:
    """Replace (or create) the file ``name`` in ``dir_fd`` atomically with ``data``.

    Written to a temporary file beside it (created exclusively, never through a link),
    then renamed over ``name``: a kill leaves the old file or the new one. Renaming
    replaces a link at ``name`` itself, never what it points to.

    Raises
    ------
    OSError
        The file system refused (full disk, permissions, a folder at ``name``).
    """
    tmp = f".{name}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, _WRITE_FLAGS, 0o666, dir_fd=dir_fd)
    except FileExistsError:  # left by a killed process that had this pid
        os.unlink(tmp, dir_fd=dir_fd)
        fd = os.open(tmp, _WRITE_FLAGS, 0o666, dir_fd=dir_fd)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise


# ---------------------------------------------------------------------------
# Array metadata


def array_metadata(shape, image_shape) -> dict:
    """The ``zarr.json`` document of a float32 array of images written by featx.

    Parameters
    ----------
    shape : tuple of int
        ``(n_images, height, width)``.
    image_shape : tuple of int
        ``(height, width)``: one image per chunk, :data:`SHARD_ROWS` chunks per shard.
    """
    inner = [1, *(int(n) for n in image_shape)]
    return {
        "shape": [int(n) for n in shape],
        "data_type": "float32",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [SHARD_ROWS, *inner[1:]]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": WRITE_SEPARATOR}},
        "fill_value": 0.0,
        "codecs": [{"name": "sharding_indexed", "configuration": {
            "chunk_shape": inner,
            "codecs": [dict(c) for c in WRITE_CODECS],
            "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
            "index_location": "end",
        }}],
        "attributes": {},
        "zarr_format": 3,
        "node_type": "array",
        "storage_transformers": [],
    }


def metadata_bytes(document: dict) -> bytes:
    return (json.dumps(document, indent=2) + "\n").encode()


def shard_bytes(chunks: list[bytes]) -> bytes:
    """A shard file holding ``chunks`` (the first images of the shard, in order), then its index."""
    index = np.full((SHARD_ROWS, 2), _EMPTY, dtype="<u8")
    offset = 0
    for j, chunk in enumerate(chunks):
        index[j] = (offset, len(chunk))
        offset += len(chunk)
    return b"".join(chunks) + index.tobytes()


@dataclass(frozen=True)
class ArrayLayout:
    """What an array's ``zarr.json`` says, once checked: its shape, files and codec.

    ``shard`` is the number of images per shard file, or ``None`` for one file per
    image (stores of featx 0.1.0).
    """

    shape: tuple[int, ...]
    image_shape: tuple[int, ...]
    separator: str
    compressor: dict | None  # the codec after "bytes", or None
    shard: int | None

    @property
    def chunk_nbytes(self) -> int:
        """Bytes of one decoded image (float32)."""
        return 4 * int(np.prod(self.image_shape))

    @property
    def chunk_limit(self) -> int:
        """Largest plausible encoded image: one that does not compress, plus headers."""
        return self.chunk_nbytes + self.chunk_nbytes // 8 + 4096

    @property
    def file_limit(self) -> int:
        """Largest plausible file of this array (a shard and its index, or one chunk)."""
        return self.chunk_limit * (self.shard or 1) + 16 * (self.shard or 0)

    def key(self, index: int) -> list[str]:
        """Path parts of the file holding image ``index``: ``["c.0.0.0"]`` (its shard) or
        ``["c", "7", "0", "0"]``."""
        number = int(index) // (self.shard or 1)
        parts = ["c", str(number)] + ["0"] * (len(self.shape) - 1)
        return [self.separator.join(parts)] if self.separator == "." else parts

    def chunk_of(self, fd: int, size: int, index: int) -> bytes | None:
        """The encoded chunk of image ``index`` from its open shard file (``None``: not written)."""
        if self.shard is None:
            return pread_exact(fd, size, 0)
        rows = self.shard
        if size < 16 * rows:
            raise ChunkFileError(f"is cut short ({size:,} bytes; a shard's index alone has {16 * rows:,})")
        j = int(index) % rows
        offset, length = np.frombuffer(pread_exact(fd, 16, size - 16 * (rows - j)), dtype="<u8").tolist()
        if offset == _EMPTY and length == _EMPTY:
            return None
        if length > self.chunk_limit or offset + length > size - 16 * rows:
            raise ChunkFileError(f"is damaged (its index places image {j} at bytes {offset:,}+{length:,} "
                                 f"of a {size - 16 * rows:,}-byte shard)")
        return pread_exact(fd, length, offset)

    def decode(self, data: bytes) -> bytes:
        """The decoded bytes of one chunk, exactly :attr:`chunk_nbytes` of them.

        Raises
        ------
        ChunkFileError
            The chunk is cut short, damaged, or decodes to another size.
        """
        expected = self.chunk_nbytes
        name = None if self.compressor is None else self.compressor["name"]
        try:
            if name is None:
                out = bytes(data)
            elif name == "blosc":
                out = _blosc_decode(data, expected)
            elif name == "zstd":
                import numcodecs.zstd  # deferred: only stores of featx 0.1.0 use it

                out = numcodecs.zstd.decompress(data, bytearray(expected))
            else:  # gzip
                inflate = zlib.decompressobj(wbits=31)
                out = inflate.decompress(data, expected + 1)
                if not inflate.eof:
                    raise ChunkFileError("is cut short or damaged (the gzip stream does not end)")
        except ChunkFileError:
            raise
        except Exception as exc:  # codecs raise RuntimeError, ValueError, zlib.error, ...
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ChunkFileError(f"is cut short or damaged ({name} cannot decode it: {reason})") from None
        if len(out) != expected:
            raise ChunkFileError(f"decodes to {len(out):,} bytes; an image of this array has {expected:,}")
        return bytes(out)


def _blosc_decode(data: bytes, expected: int) -> bytes:
    # the 16-byte header names the decoded and encoded sizes: checked before decoding,
    # so that a damaged header never makes the decoder allocate or read what it claims
    if len(data) < 16:
        raise ChunkFileError(f"is cut short ({len(data)} bytes; a blosc chunk has a 16-byte header)")
    nbytes = int.from_bytes(data[4:8], "little")
    cbytes = int.from_bytes(data[12:16], "little")
    if nbytes != expected:
        raise ChunkFileError(f"says it decodes to {nbytes:,} bytes; an image of this array has {expected:,}")
    if cbytes != len(data):
        raise ChunkFileError(f"is cut short or damaged ({len(data):,} bytes; its header says {cbytes:,})")
    import numcodecs.blosc  # deferred: read side only

    out = bytearray(expected)
    numcodecs.blosc.decompress(data, out)
    return bytes(out)


def encode_chunk(image: np.ndarray) -> bytes:
    """One image's chunk as featx writes it (:data:`WRITE_CODECS`)."""
    import numcodecs.blosc  # deferred: its import (about 50 ms) is paid only when writing

    config = WRITE_CODECS[1]["configuration"]
    data = np.ascontiguousarray(image, dtype="<f4")
    return numcodecs.blosc.compress(data, config["cname"].encode(), config["clevel"],
                                    _BLOSC_SHUFFLE[config["shuffle"]], config["blocksize"])


def parse_array_metadata(data: bytes, *, image_shape: tuple[int, ...]) -> ArrayLayout:
    """Check an array's ``zarr.json`` against what featx writes and reads.

    Parameters
    ----------
    data : bytes
        The document.
    image_shape : tuple of int
        ``(height, width)`` of the array's images (one per chunk).

    Raises
    ------
    ChunkFileError
        The document is not JSON, or names another data type, shape, chunk grid, chunk
        key encoding, fill value or an unsupported codec; the message says which.
    """
    try:
        meta = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ChunkFileError("is not a JSON document; expected Zarr v3 array metadata") from None
    if not isinstance(meta, dict) or meta.get("zarr_format") != 3 or meta.get("node_type") != "array":
        raise ChunkFileError("is not Zarr v3 array metadata (zarr_format 3, node_type 'array')")
    if meta.get("data_type") != "float32":
        raise ChunkFileError(f"says data_type {meta.get('data_type')!r}; expected 'float32'")
    image = [int(n) for n in image_shape]
    shape = meta.get("shape")
    if (not isinstance(shape, list) or len(shape) != 1 + len(image)
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
            or shape[1:] != image):
        raise ChunkFileError(f"says shape {shape!r}; expected [n, {', '.join(map(str, image))}]")
    keys = meta.get("chunk_key_encoding")
    separator = (keys.get("configuration") or {}).get("separator", "/") if isinstance(keys, dict) else None
    if not (isinstance(keys, dict) and keys.get("name") == "default" and separator in ("/", ".")):
        raise ChunkFileError(f"says chunk_key_encoding {keys!r}; expected the default encoding")
    if meta.get("fill_value") not in (0, 0.0) or isinstance(meta.get("fill_value"), bool):
        raise ChunkFileError(f"says fill_value {meta.get('fill_value')!r}; expected 0.0")
    if meta.get("storage_transformers", []) != []:
        raise ChunkFileError("names storage transformers; featx reads arrays without them")
    grid = meta.get("chunk_grid")
    grid_shape = (grid.get("configuration") or {}).get("chunk_shape") if isinstance(grid, dict) else None
    if not (isinstance(grid, dict) and grid.get("name") == "regular" and isinstance(grid_shape, list)):
        raise ChunkFileError(f"says chunk_grid {grid!r}; expected a regular chunk grid")
    codecs = meta.get("codecs")
    sharding = (codecs[0] if isinstance(codecs, list) and len(codecs) == 1 and isinstance(codecs[0], dict)
                and codecs[0].get("name") == "sharding_indexed" else None)
    if sharding is None:
        if grid_shape != [1, *image]:
            raise ChunkFileError(f"says chunk_shape {grid_shape!r}; expected one image per chunk, "
                                 f"{[1, *image]}")
        return ArrayLayout(tuple(shape), tuple(image), separator, _check_codecs(codecs), None)
    config = sharding.get("configuration")
    rows = grid_shape[0] if grid_shape and isinstance(grid_shape[0], int) else None
    if (not isinstance(config, dict) or config.get("chunk_shape") != [1, *image]
            or grid_shape != [rows, *image] or not rows or rows < 1 or rows > 1 << 16):
        raise ChunkFileError(f"says shards {grid_shape!r} of chunks {config.get('chunk_shape') if isinstance(config, dict) else None!r}; "
                             f"expected shards of [n, {', '.join(map(str, image))}] holding one image per chunk")
    index_codecs = config.get("index_codecs")
    if (config.get("index_location", "end") != "end" or not isinstance(index_codecs, list)
            or [c.get("name") if isinstance(c, dict) else None for c in index_codecs] != ["bytes"]
            or (index_codecs[0].get("configuration") or {}).get("endian", "little") != "little"):
        raise ChunkFileError("says a shard index other than featx's (little-endian, at the end, "
                             "without a checksum codec)")
    return ArrayLayout(tuple(shape), tuple(image), separator, _check_codecs(config.get("codecs")), rows)


def _check_codecs(codecs) -> dict | None:
    expected = "'bytes' (little-endian), then at most one of 'blosc', 'zstd', 'gzip'"
    if not isinstance(codecs, list) or not 1 <= len(codecs) <= 2 or not all(isinstance(c, dict) for c in codecs):
        raise ChunkFileError(f"says codecs {codecs!r}; expected {expected}")
    first = codecs[0]
    if first.get("name") != "bytes" or (first.get("configuration") or {}).get("endian", "little") != "little":
        raise ChunkFileError(f"says codecs {codecs!r}; expected {expected}")
    if len(codecs) == 1:
        return None
    codec = codecs[1]
    config = codec.get("configuration") or {}
    if not isinstance(config, dict) or codec.get("name") not in ("blosc", "zstd", "gzip"):
        raise ChunkFileError(f"says codecs {codecs!r}; expected {expected}")
    if codec["name"] == "blosc" and config.get("shuffle", "shuffle") not in _BLOSC_SHUFFLE:
        raise ChunkFileError(f"says blosc shuffle {config.get('shuffle')!r}; expected one of "
                             f"{', '.join(_BLOSC_SHUFFLE)}")
    return {"name": codec["name"], "configuration": config}
