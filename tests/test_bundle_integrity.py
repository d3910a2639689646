"""A bundle's model files: bounded inflation (featx.io.archive) and SHA-256 digests
recorded at saving and checked before anything is parsed (featx.bundle.checks.check_digests).

Every bundle here is trained for real by the command line; every bomb is a real deflate
stream of a real size.
"""
from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
import sys
import warnings
import zipfile
import zlib

import numpy as np
import pytest

from featx.bundle import load_bundle
from featx.errors import BundleError
from featx.io.archive import MAX_MEMBER_RATIO, SMALL_MEMBER, check_archive
from featx.io.digest import file_sha256

BOMB_BYTES = 512 * 2**20


def _npy_header(n_bytes: int) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (n_bytes // 8,)})
    return buffer.getvalue()


@pytest.fixture(scope="module")
def bomb():
    """A raw deflate stream of a ``.npy`` of 512 MiB of zeros: (compressed, crc, size)."""
    head = _npy_header(BOMB_BYTES)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    zeros = bytes(2**20)
    parts, crc = [deflate.compress(head)], zlib.crc32(head)
    for _ in range(BOMB_BYTES // len(zeros)):
        parts.append(deflate.compress(zeros))
        crc = zlib.crc32(zeros, crc)
    parts.append(deflate.flush())
    return b"".join(parts), crc, len(head) + BOMB_BYTES


def _deflated(data: bytes) -> tuple[bytes, int, int]:
    deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return deflate.compress(data) + deflate.flush(), zlib.crc32(data), len(data)


def _write_zip(path, members) -> None:
    """A zip of deflated ``members`` (name, compressed, crc, declared size), written byte by
    byte so that a header may declare anything."""
    body, central = bytearray(), bytearray()
    for name, raw, crc, size in members:
        encoded = name.encode()
        offset = len(body)
        body += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(raw), size, len(encoded), 0)
        body += encoded + raw
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, len(raw), size,
                               len(encoded), 0, 0, 0, 0, 0, offset) + encoded
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), len(central), len(body), 0)
    path.write_bytes(bytes(body + central + end))


def _replace_member(path, member: str, stream) -> None:
    """Rewrite the zip ``path`` with ``member``'s data replaced by ``stream``."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        assert member in names, names
        members = [(n, *(stream if n == member else _deflated(archive.read(n)))) for n in names]
    _write_zip(path, members)


def _copy(source, target):
    shutil.copytree(source, target)
    return target


def _largest_array(path) -> str:
    with zipfile.ZipFile(path) as archive:
        return max((m for m in archive.infolist() if m.filename.endswith(".npy")), key=lambda m: m.file_size).filename


# ---------------------------------------------------------------------------
# Decompression bombs


def test_every_model_file_of_real_bundles_passes(small_bundles):
    checked = []
    for bundle in small_bundles.values():
        for path in sorted(bundle.iterdir()):
            if zipfile.is_zipfile(path):
                check_archive(path)
                checked.append(path.name)
    assert {"model.skops", "model_arrays.npz", "model_check.npz", "distance.npz", "model.keras"} <= set(checked)


@pytest.mark.parametrize("model, name, member", [
    ("svm", "model_arrays.npz", None), ("svm", "model_check.npz", "check_X.npy"),
    ("svm", "distance.npz", "rows.npy"), ("svm", "model.skops", None), ("mlp", "model.keras", "model.weights.h5"),
])
def test_a_deflate_bomb_in_each_model_file_is_refused_in_one_line(small_bundles, bomb, tmp_path, reseal, model,
                                                                  name, member):
    bundle = _copy(small_bundles[model], tmp_path / model)
    member = member or _largest_array(bundle / name)
    _replace_member(bundle / name, member, bomb)
    if name == "model.skops":  # read at loading where no model_arrays.npz stands for it
        (bundle / "model_arrays.npz").unlink()
    reseal(bundle)  # the digests are no defence against a crafted bundle: the bound is
    assert (bundle / name).stat().st_size < 2**20
    with pytest.raises(BundleError) as caught:
        load_bundle(bundle)
    message = str(caught.value)
    assert "\n" not in message
    assert str(bundle / name) in message and repr(member) in message
    assert f"may inflate at most {MAX_MEMBER_RATIO} times" in message and "512.0 MiB" in message


# the peak resident memory of this process's own image (VmHWM; ru_maxrss would carry the
# forking parent's peak across exec)
_PEAK = """
import re, sys, time
from featx.bundle import load_bundle
from featx.errors import BundleError
start = time.perf_counter()
try:
    load_bundle(sys.argv[1])
    print("loaded", end=" ")
except BundleError as exc:
    print("refused", end=" ")
status = open("/proc/self/status").read()
print(re.search(r"VmHWM:\\s*(\\d+) kB", status).group(1), time.perf_counter() - start)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak memory from /proc")
def test_a_bomb_is_refused_without_the_memory_it_declares(small_bundles, bomb, tmp_path, reseal):
    intact = _copy(small_bundles["svm"], tmp_path / "intact")
    bombed = _copy(small_bundles["svm"], tmp_path / "bombed")
    _replace_member(bombed / "model_arrays.npz", _largest_array(bombed / "model_arrays.npz"), bomb)
    reseal(bombed)
    runs = {}
    for bundle in (intact, bombed):
        out = subprocess.run([sys.executable, "-c", _PEAK, str(bundle)], capture_output=True, text=True,
                             check=True).stdout.split()
        runs[bundle.name] = (out[0], int(out[1]) * 1024, float(out[2]))
    assert runs["intact"][0] == "loaded" and runs["bombed"][0] == "refused"
    # the intact bundle is read whole; the bomb's 512 MiB are never held
    assert runs["bombed"][1] < runs["intact"][1] + 64 * 2**20, runs


def test_a_header_that_under_declares_is_refused(small_bundles, tmp_path, reseal):
    bundle = _copy(small_bundles["svm"], tmp_path / "svm")
    path = bundle / "model_check.npz"
    with zipfile.ZipFile(path) as archive:
        real = archive.read("check_X.npy")
    raw, _, _ = _deflated(real + bytes(8 * 2**20))  # inflates to 8 MiB more than it declares
    _replace_member(path, "check_X.npy", (raw, zlib.crc32(real), len(real)))
    with zipfile.ZipFile(path) as archive:  # Python's zipfile alone reads the declared bytes, unaware
        assert archive.read("check_X.npy") == real
    reseal(bundle)
    with pytest.raises(BundleError, match=r"model_check\.npz: member 'check_X\.npy' inflates to more than the "
                                          rf"{len(real)} bytes its header declares"):
        load_bundle(bundle)


def test_a_header_that_over_declares_is_refused(tmp_path):
    raw, crc, size = _deflated(b"x" * 1000)
    _write_zip(tmp_path / "a.npz", [("a.npy", raw, crc, size + 10)])
    with pytest.raises(BundleError, match=r"member 'a\.npy' inflates to fewer than the 1010 bytes"):
        check_archive(tmp_path / "a.npz")


def test_many_small_members_are_bounded_as_a_whole(tmp_path):
    raw, crc, size = _deflated(bytes(SMALL_MEMBER))  # each member under the per-member bound
    _write_zip(tmp_path / "many.npz", [(f"m{i}.npy", raw, crc, size) for i in range(64)])
    with pytest.raises(BundleError, match=r"its 64 members declare 64\.0 MiB from .*; at most 1\.0 MiB plus "
                                          r"32 times the compressed bytes"):
        check_archive(tmp_path / "many.npz")


def test_a_large_honest_array_file_passes(tmp_path):
    rows = np.random.default_rng(0).standard_normal((2**20 // 8 * 24 // 64, 64))  # 24 MiB of floats
    with open(tmp_path / "big.npz", "wb") as fh:
        np.savez_compressed(fh, rows=rows)
    check_archive(tmp_path / "big.npz")
    with zipfile.ZipFile(tmp_path / "big.npz") as archive:
        assert archive.getinfo("rows.npy").file_size > 24 * 2**20 - 1


def test_not_a_zip_is_one_line(tmp_path):
    (tmp_path / "model.skops").write_bytes(b"not a zip")
    with pytest.raises(BundleError, match=r"model\.skops: cannot read it as a zip archive"):
        check_archive(tmp_path / "model.skops")


@pytest.mark.slow
def test_a_large_random_forest_of_real_data_loads(gtzan_dir, run_cli, tmp_path):
    bundle = tmp_path / "rf"
    run_cli("train", gtzan_dir / "features_30_sec.csv", "-m", "random-forest", "--folds", "1", "-o", bundle)
    with zipfile.ZipFile(bundle / "model.skops") as archive:
        largest = max(m.file_size for m in archive.infolist())
    assert largest > SMALL_MEMBER  # its schema and node arrays are members over the small-member bound
    loaded = load_bundle(bundle)
    assert loaded.spec.name == "random-forest"


# ---------------------------------------------------------------------------
# Digests: the model files belong to their metadata.json


@pytest.fixture(scope="module")
def like_bundles(tmp_path_factory, synthetic_feature_csv, run_cli):
    """svm and tiny mlp bundles trained on two tables of the same columns and genres."""
    root = tmp_path_factory.mktemp("like")
    tiny_mlp = ["--units", "8", "--epochs", "2", "--batch-size", "16", "--patience", "2"]
    out = {}
    for seed in (0, 1):
        csv = synthetic_feature_csv(root / f"t{seed}.csv", n_tracks=8, n_segments=1, classes=("blues", "rock"),
                                    seed=seed, separation=2.0, track_spread=0.5, row_spread=0.3)
        for name, extra in (("svm", []), ("mlp", tiny_mlp)):
            out[name, seed] = root / f"{name}{seed}"
            run_cli("train", csv, "--model", name, "--folds", "2", "-o", out[name, seed], *extra)
    out["csv"] = root / "t0.csv"
    return out


def test_saving_records_the_digest_of_every_model_file(like_bundles):
    for model, names in (("svm", {"model.skops", "model_check.npz", "model_arrays.npz", "distance.npz",
                                  "preprocessing.json"}),
                         ("mlp", {"model.keras", "distance.npz", "preprocessing.json"})):
        bundle = like_bundles[model, 0]
        digests = json.loads((bundle / "metadata.json").read_text())["files"]["sha256"]
        assert set(digests) == names
        assert all(digests[n] == file_sha256(bundle / n) for n in names)


@pytest.mark.parametrize("model, name", [
    ("svm", "model.skops"), ("svm", "model_arrays.npz"), ("svm", "model_check.npz"), ("svm", "distance.npz"),
    ("svm", "preprocessing.json"), ("mlp", "model.keras"), ("mlp", "preprocessing.json"),
])
def test_a_file_from_a_like_bundle_is_refused_naming_it(like_bundles, tmp_path, model, name):
    bundle = _copy(like_bundles[model, 0], tmp_path / model)
    assert file_sha256(like_bundles[model, 1] / name) != file_sha256(bundle / name)
    shutil.copyfile(like_bundles[model, 1] / name, bundle / name)
    with pytest.raises(BundleError) as caught:
        load_bundle(bundle)
    message = str(caught.value)
    assert "\n" not in message and str(bundle / name) in message
    assert "the bundle's files do not belong together" in message


def test_a_model_file_the_bundle_was_not_saved_with_is_refused(like_bundles, tmp_path):
    bundle = _copy(like_bundles["mlp", 0], tmp_path / "mlp")
    shutil.copyfile(like_bundles["svm", 0] / "model_arrays.npz", bundle / "model_arrays.npz")
    with pytest.raises(BundleError, match=r"mlp/model_arrays\.npz: not one of the files this bundle was saved "
                                          r"with .* do not belong together"):
        load_bundle(bundle)


def test_a_missing_or_malformed_digest_list_is_one_line(like_bundles, tmp_path):
    bundle = _copy(like_bundles["svm", 0], tmp_path / "svm")
    meta = json.loads((bundle / "metadata.json").read_text())
    for digests, expected in (("x", "files.sha256 must be an object"),
                              ({**meta["files"]["sha256"], "../x": "0" * 64}, "must name model files only"),
                              ({**meta["files"]["sha256"], "model.skops": "ABC"}, "must be a SHA-256 digest")):
        (bundle / "metadata.json").write_text(json.dumps({**meta, "files": {**meta["files"], "sha256": digests}}))
        with pytest.raises(BundleError, match=expected):
            load_bundle(bundle)
    (bundle / "metadata.json").write_text(json.dumps(meta))
    (bundle / "model_check.npz").unlink()
    with pytest.raises(BundleError, match=r"model_check\.npz: missing; expected the rows"):
        load_bundle(bundle)


def test_a_bundle_without_digests_loads_as_before(like_bundles, bundles_0_1_0, tmp_path):
    for model in ("svm", "mlp"):
        bundle = _copy(like_bundles[model, 0], tmp_path / model)
        meta = json.loads((bundle / "metadata.json").read_text())
        del meta["files"]["sha256"]
        (bundle / "metadata.json").write_text(json.dumps(meta))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the training tracks: said in a warning
            before = load_bundle(like_bundles[model, 0]).predict(like_bundles["csv"])
            after = load_bundle(bundle).predict(like_bundles["csv"])
        assert after.equals(before) and len(after) == 16
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # saved by featx 0.1.0: said in a warning
        for folder, model in (("knn-multi", "knn"), ("mlp", "mlp"), ("seglstm", "segment-lstm")):
            assert load_bundle(bundles_0_1_0 / folder).spec.name == model


def test_featx_predict_and_evaluate_on_a_tampered_bundle_exit_1_in_one_line(like_bundles, tmp_path, write_wav,
                                                                             tone):
    bundle = _copy(like_bundles["svm", 0], tmp_path / "svm")
    shutil.copyfile(like_bundles["svm", 1] / "model.skops", bundle / "model.skops")
    song = write_wav(tmp_path / "song.wav", tone(440, 2.0))
    for args in (["predict", str(bundle), str(song)], ["evaluate", str(bundle), str(like_bundles["csv"])]):
        done = subprocess.run([sys.executable, "-m", "featx", "-q", *args], capture_output=True, text=True)
        assert done.returncode == 1, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
        assert str(bundle / "model.skops") in lines[0] and "do not belong together" in lines[0]


def test_the_estimator_and_serve_go_through_the_same_check(like_bundles, tmp_path):
    from featx.estimator import GenreClassifier

    bundle = _copy(like_bundles["svm", 0], tmp_path / "svm")
    shutil.copyfile(like_bundles["svm", 1] / "preprocessing.json", bundle / "preprocessing.json")
    with pytest.raises(BundleError, match="preprocessing.json: its SHA-256"):
        GenreClassifier.from_bundle(load_bundle(bundle))
    done = subprocess.run([sys.executable, "-m", "featx", "-q", "serve", str(bundle), "--port", "0"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "preprocessing.json: its SHA-256" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
