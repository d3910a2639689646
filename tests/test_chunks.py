"""featx.io.chunks: Zarr v3 arrays read and written file by file, never through a link."""
from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

from featx.io.chunks import (
    SHARD_ROWS,
    ChunkFileError,
    array_metadata,
    encode_chunk,
    metadata_bytes,
    open_file,
    open_folder,
    parse_array_metadata,
    read_file,
    shard_bytes,
    write_file,
)


@pytest.fixture
def folder(tmp_path):
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    yield tmp_path, fd
    os.close(fd)


def test_zarr_reads_what_featx_writes(tmp_path):
    import zarr

    images = np.random.default_rng(0).standard_normal((SHARD_ROWS + 5, 6, 7)).astype(np.float32)
    root = tmp_path / "group"
    (root / "mel").mkdir(parents=True)
    (root / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}}))
    fd = os.open(root / "mel", os.O_RDONLY | os.O_DIRECTORY)
    try:
        write_file("zarr.json", metadata_bytes(array_metadata(images.shape, (6, 7))), dir_fd=fd)
        chunks = [encode_chunk(image) for image in images]
        write_file("c.0.0.0", shard_bytes(chunks[:SHARD_ROWS]), dir_fd=fd)
        write_file("c.1.0.0", shard_bytes(chunks[SHARD_ROWS:]), dir_fd=fd)  # a shard not full
    finally:
        os.close(fd)
    array = zarr.open_group(str(root), mode="r")["mel"]
    np.testing.assert_array_equal(array[:], images)
    layout = parse_array_metadata((root / "mel" / "zarr.json").read_bytes(), image_shape=(6, 7))
    assert layout.shard == SHARD_ROWS and layout.key(SHARD_ROWS + 3) == ["c.1.0.0"]


def test_featx_reads_what_zarr_writes_with_its_default_codec(tmp_path):
    """Stores of featx 0.1.0 were written by zarr: one chunk per file, zstd."""
    import zarr

    images = np.random.default_rng(1).standard_normal((3, 4, 5)).astype(np.float32)
    array = zarr.open_group(str(tmp_path / "g"), mode="w", zarr_format=3).create_array(
        "mel", shape=images.shape, chunks=(1, 4, 5), dtype="float32", fill_value=0.0)
    array[:] = images
    layout = parse_array_metadata((tmp_path / "g" / "mel" / "zarr.json").read_bytes(), image_shape=(4, 5))
    assert layout.shard is None and layout.key(2) == ["c", "2", "0", "0"]
    data = (tmp_path / "g" / "mel" / "c" / "2" / "0" / "0").read_bytes()
    np.testing.assert_array_equal(np.frombuffer(layout.decode(data), "<f4").reshape(4, 5), images[2])


def test_write_file_replaces_atomically_with_the_umask_and_never_through_a_link(folder):
    path, fd = folder
    outside = path / "outside.txt"
    outside.write_text("keep")
    (path / "c.0.0.0").symlink_to(outside)
    old = os.umask(0o027)
    try:
        write_file("c.0.0.0", b"new", dir_fd=fd)
    finally:
        os.umask(old)
    assert outside.read_text() == "keep"  # the link itself was replaced
    assert not (path / "c.0.0.0").is_symlink() and (path / "c.0.0.0").read_bytes() == b"new"
    assert stat.S_IMODE((path / "c.0.0.0").stat().st_mode) == 0o640
    assert sorted(p.name for p in path.iterdir()) == ["c.0.0.0", "outside.txt"]  # no temporary file left
    (path / "c.1.0.0").mkdir()
    with pytest.raises(OSError):
        write_file("c.1.0.0", b"x", dir_fd=fd)
    assert sorted(p.name for p in path.iterdir()) == ["c.0.0.0", "c.1.0.0", "outside.txt"]


def test_reads_refuse_links_fifos_devices_folders_and_oversized_files(folder):
    path, fd = folder
    (path / "ok").write_bytes(b"12345")
    assert read_file("ok", dir_fd=fd, limit=5) == b"12345"
    assert read_file("absent", dir_fd=fd, limit=5) is None
    with pytest.raises(ChunkFileError, match="holds 5 bytes"):
        read_file("ok", dir_fd=fd, limit=4)
    (path / "link").symlink_to(path / "ok")
    with pytest.raises(ChunkFileError, match="symbolic link"):
        read_file("link", dir_fd=fd, limit=5)
    os.mkfifo(path / "fifo")  # reading it would block forever
    with pytest.raises(ChunkFileError, match="a FIFO"):
        read_file("fifo", dir_fd=fd, limit=5)
    (path / "zero").symlink_to("/dev/zero")
    with pytest.raises(ChunkFileError, match="symbolic link"):
        open_file("zero", dir_fd=fd, limit=5)
    (path / "sub").mkdir()
    with pytest.raises(ChunkFileError, match="a folder"):
        read_file("sub", dir_fd=fd, limit=5)
    (path / "dirlink").symlink_to(path / "sub")
    with pytest.raises(ChunkFileError, match="a symbolic link, not a folder"):
        open_folder("dirlink", dir_fd=fd)
    with pytest.raises(ChunkFileError, match="a file, not a folder"):
        open_folder("ok", dir_fd=fd)
    with pytest.raises(ChunkFileError, match="missing"):
        open_folder("absent", dir_fd=fd)


def test_damaged_chunks_and_shards_are_named_not_decoded(tmp_path):
    layout = parse_array_metadata(metadata_bytes(array_metadata((4, 8, 9), (8, 9))), image_shape=(8, 9))
    image = np.arange(72, dtype=np.float32).reshape(8, 9)
    chunk = encode_chunk(image)
    assert np.array_equal(np.frombuffer(layout.decode(chunk), "<f4").reshape(8, 9), image)
    with pytest.raises(ChunkFileError, match="cut short"):
        layout.decode(chunk[:10])
    with pytest.raises(ChunkFileError, match="header says"):
        layout.decode(chunk[:-3])
    huge = bytearray(chunk)
    huge[4:8] = (1 << 31).to_bytes(4, "little")  # a header claiming 2 GiB is refused, not allocated
    with pytest.raises(ChunkFileError, match="decodes to 2,147,483,648 bytes"):
        layout.decode(bytes(huge))
    shard = tmp_path / "c.0.0.0"
    shard.write_bytes(shard_bytes([chunk, chunk]))
    fd = os.open(shard, os.O_RDONLY)
    try:
        size = shard.stat().st_size
        assert layout.chunk_of(fd, size, 1) == chunk
        assert layout.chunk_of(fd, size, 2) is None  # not written
        with pytest.raises(ChunkFileError, match="cut short"):
            layout.chunk_of(fd, 40, 0)
    finally:
        os.close(fd)
    bad = bytearray(shard_bytes([chunk]))
    bad[len(chunk):len(chunk) + 8] = (10 ** 9).to_bytes(8, "little")  # an offset past the end
    shard.write_bytes(bytes(bad))
    fd = os.open(shard, os.O_RDONLY)
    try:
        with pytest.raises(ChunkFileError, match="index places image 0"):
            layout.chunk_of(fd, len(bad), 0)
    finally:
        os.close(fd)


@pytest.mark.parametrize("change, named", [
    (lambda m: m.update(data_type="float64"), "data_type 'float64'"),
    (lambda m: m.update(shape=[4, 8]), "shape"),
    (lambda m: m.update(shape=[4, 8, 10]), "shape"),
    (lambda m: m.update(fill_value="NaN"), "fill_value"),
    (lambda m: m["codecs"][0]["configuration"]["codecs"].append({"name": "transpose"}), "codecs"),
    (lambda m: m["codecs"][0]["configuration"].update(index_location="start"), "shard index"),
    (lambda m: m["chunk_grid"]["configuration"].update(chunk_shape=[16, 8, 10]), "shards"),
    (lambda m: m.update(chunk_key_encoding={"name": "v2"}), "chunk_key_encoding"),
    (lambda m: m.update(node_type="group"), "not Zarr v3 array metadata"),
])
def test_array_metadata_other_than_featx_s_is_named(change, named):
    meta = array_metadata((4, 8, 9), (8, 9))
    change(meta)
    with pytest.raises(ChunkFileError, match=named) as info:
        parse_array_metadata(json.dumps(meta).encode(), image_shape=(8, 9))
    assert "\n" not in str(info.value)
    with pytest.raises(ChunkFileError, match="not a JSON document"):
        parse_array_metadata(b"\x00garbage", image_shape=(8, 9))
