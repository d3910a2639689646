"""The musicnn port: input representation, architecture, weight loading, and fidelity
to the original package's own code on real GTZAN clips."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from featx.errors import AudioError, ConfigError, FeatxError
from featx.features import musicnn_input as mi

pytestmark = pytest.mark.slow  # every test here trains, reads real data or runs real processes

REPO = Path(__file__).resolve().parents[1]
MODELS = ("MTT_musicnn", "MSD_musicnn", "MTT_vgg", "MSD_vgg")


def _run(code: str, *, env=None, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    full = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env or {}))
    return subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=full,
                          cwd=cwd or REPO, timeout=timeout)


# --- input representation -------------------------------------------------------------

def test_patch_geometry_of_the_original():
    import librosa

    assert librosa.time_to_frames(3, sr=mi.SR, n_fft=mi.N_FFT, hop_length=mi.HOP_LENGTH) + 1 == mi.N_FRAMES
    y = np.zeros(mi.SR * 10, dtype=np.float32)
    logmel = mi.musicnn_logmel(y, sr=mi.SR)
    assert logmel.shape == (1 + len(y) // mi.HOP_LENGTH, mi.N_MELS)
    assert np.all(logmel == 0)  # silence: log10(0 + 1)
    patches = mi.musicnn_patches(logmel)
    assert patches.shape == (logmel.shape[0] // mi.N_FRAMES, mi.N_FRAMES, mi.N_MELS)
    assert mi.musicnn_patches(logmel, hop=100).shape[0] == (logmel.shape[0] - mi.N_FRAMES) // 100 + 1


def test_loud_bins_overflow_float16_only_in_inf_mode():
    t = np.arange(mi.SR * 4) / mi.SR
    y = (0.9 * np.sin(2 * np.pi * 100 * t)).astype(np.float32)  # loud bass: mel power far above 6.55
    original = mi.musicnn_logmel(y, sr=mi.SR, overflow="inf")
    finite = mi.musicnn_logmel(y, sr=mi.SR)
    over = np.isinf(original)
    assert over.any()
    assert np.all(np.isfinite(finite))
    np.testing.assert_array_equal(finite[~over], original[~over])
    assert np.all(finite[over] > np.log10(65504.0))


def test_resampling_matches_a_16k_waveform():
    import librosa

    rng = np.random.default_rng(1)
    y = (0.1 * rng.standard_normal(22050 * 4)).astype(np.float32)
    y16 = librosa.resample(y, orig_sr=22050, target_sr=mi.SR, res_type="soxr_hq")
    np.testing.assert_array_equal(mi.musicnn_logmel(y, sr=22050), mi.musicnn_logmel(y16, sr=mi.SR))
    stereo = np.stack([y, y])
    np.testing.assert_array_equal(mi.musicnn_logmel(stereo, sr=22050), mi.musicnn_logmel(y, sr=22050))


@pytest.mark.parametrize("bad, kwargs, match", [
    (np.zeros(mi.SR * 2, dtype=np.float32), {}, r"too short for musicnn: 2\.000 s .* at least 2\.976 s"),
    (np.full(mi.SR * 4, np.nan, dtype=np.float32), {}, "NaN or infinity"),
    (np.zeros((2, 2, 10)), {}, r"shape=\(2, 2, 10\)"),
])
def test_bad_waveforms_give_one_line(bad, kwargs, match):
    with pytest.raises(AudioError, match=match) as info:
        mi.musicnn_logmel(bad, sr=mi.SR, **kwargs)
    assert "\n" not in str(info.value)


def test_bad_settings_give_one_line():
    with pytest.raises(ConfigError, match="overflow must be one of float32, inf. Received: overflow='clip'"):
        mi.musicnn_logmel(np.zeros(mi.SR * 4), sr=mi.SR, overflow="clip")
    with pytest.raises(ConfigError, match="sr=0"):
        mi.musicnn_logmel(np.zeros(mi.SR * 4), sr=0)
    with pytest.raises(ConfigError, match=r"shape=\(10, 40\)"):
        mi.musicnn_patches(np.zeros((10, 40)))
    with pytest.raises(ConfigError, match="hop=0"):
        mi.musicnn_patches(np.zeros((200, 96)), hop=0)


# --- finding the package ------------------------------------------------------------

def test_missing_package_is_one_line_with_the_install_command():
    # sys.modules[name] = None is Python's own way of making a package unimportable
    proc = _run("import sys; sys.modules['musicnn'] = None\n"
                "import numpy as np\n"
                "from featx.errors import FeatxError\n"
                "from featx.extract.musicnn import musicnn_embeddings, MusicnnUnavailableError\n"
                "try:\n"
                "    musicnn_embeddings(np.zeros(64000, dtype=np.float32), 16000)\n"
                "except MusicnnUnavailableError as exc:\n"
                "    assert isinstance(exc, FeatxError)\n"
                "    print(exc)\n"
                "print('tensorflow' in sys.modules)\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "the pretrained musicnn weights come from the musicnn package: pip install --no-deps musicnn==0.1.0",
        "False"]


def test_package_without_checkpoints_is_named(tmp_path):
    pkg = tmp_path / "musicnn"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "configuration.py").write_text("MTT_LABELS = ['a', 'b']\nMSD_LABELS = ['c']\n")
    proc = _run("from featx.extract import musicnn as m\n"
                "print(m.tag_names('MTT_musicnn'), m.tag_names('MSD_vgg'))\n"
                "try:\n"
                "    m.checkpoint_prefix('MSD_musicnn')\n"
                "except m.MusicnnUnavailableError as exc:\n"
                "    print(exc)\n",
                env={"PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "('a', 'b') ('c',)"
    assert lines[1] == (f"{pkg / 'MSD_musicnn'}: the musicnn package has no MSD_musicnn checkpoint "
                        "(.index missing); reinstall it: pip install --no-deps musicnn==0.1.0")


def test_importing_the_port_loads_no_tensorflow():
    proc = _run("import sys\nimport featx.extract.musicnn, featx.features.musicnn_input\n"
                "print(sorted(m for m in ('tensorflow', 'keras', 'musicnn') if m in sys.modules))")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_unknown_model_is_refused(mn):
    with pytest.raises(ConfigError, match="model must be one of MTT_musicnn, MSD_musicnn, MTT_vgg, MSD_vgg. "
                                          "Received: model='MTT'"):
        mn.musicnn_embeddings(np.zeros(64000, dtype=np.float32), 16000, model="MTT")
    with pytest.raises(ConfigError, match="sr is needed"):
        mn.musicnn_embeddings(np.zeros(64000, dtype=np.float32))


def test_tag_names_come_from_the_package(mn):
    mtt, msd = mn.tag_names("MTT_musicnn"), mn.tag_names("MSD_musicnn")
    assert len(mtt) == len(msd) == 50
    assert mtt[:3] == ("guitar", "classical", "slow") and "no vocals" in mtt
    assert msd[:3] == ("rock", "pop", "alternative") and "Hip-Hop" in msd
    assert mn.tag_names("MTT_vgg") == mtt


# --- weights --------------------------------------------------------------------------

@pytest.mark.parametrize("model", MODELS)
def test_every_checkpoint_variable_is_used_exactly_once(mn, model):
    everything = mn.read_checkpoint(model, optimizer_state=True)
    network = {k: v for k, v in everything.items() if not mn.OPTIMIZER_STATE.search(k)}
    skipped = set(everything) - set(network)
    # what is left out is the Adam optimizer's state: two moments per trained variable, two powers
    trained = [k for k in network if not k.endswith(("/moving_mean", "/moving_variance"))]
    assert skipped == {f"{k}/{m}" for k in trained for m in ("Adam", "Adam_1")} | {"beta1_power", "beta2_power"}
    net = mn.build_musicnn(model=model)
    uses = mn.assign_weights(net, network, model=model)
    assert set(uses) == set(network) and set(uses.values()) == {1}
    # every weight of the network came from the checkpoint: the sizes add up
    assert net.count_params() == sum(v.size for v in network.values())
    for layer, scope, kind in mn.layer_map(model):
        kernel = network.get(f"{scope}/kernel")
        if kernel is not None:
            got = net.get_layer(layer).get_weights()[0]
            np.testing.assert_array_equal(got, kernel[:, :, 0, :] if kind == "conv1d" else kernel)


def test_parameter_counts(mn):
    # front end 2 x (7*38 | 7*67 + 1) * 204 + 3 x (k + 1) * 51, mid end 3 convolutions,
    # back end 1506 -> 200 -> 50, batch norms 4 values per channel
    front = (7 * 38 + 1) * 204 + (7 * 67 + 1) * 204 + sum((k + 1) * 51 for k in (128, 64, 32))
    mid = (7 * 561 + 1) * 64 + 2 * (7 * 64 + 1) * 64
    back = 1506 * 200 + 200 + 200 * 50 + 50
    norms = 4 * (1 + 2 * 204 + 3 * 51 + 3 * 64 + 1506 + 200)
    assert mn.build_musicnn(model="MTT_musicnn").count_params() == front + mid + back + norms == 792079
    vgg = 9 * 128 + 128 + 4 * (9 * 128 * 128 + 128) + 256 * 50 + 50 + 4 * (1 + 5 * 128)
    assert mn.build_musicnn(model="MSD_vgg").count_params() == vgg


def test_a_wrong_checkpoint_is_refused(mn):
    variables = mn.checkpoint_variables("MTT_vgg")
    net = mn.build_musicnn(model="MTT_vgg")
    missing = {k: v for k, v in variables.items() if k != "3CNN/bias"}
    with pytest.raises(FeatxError, match="no variable '3CNN/bias' for layer 'conv3'"):
        mn.assign_weights(net, missing, model="MTT_vgg")
    extra = dict(variables, **{"dense_9/kernel": np.zeros((2, 2), np.float32)})
    with pytest.raises(FeatxError, match=r"not used exactly once \['dense_9/kernel'\]"):
        mn.assign_weights(net, extra, model="MTT_vgg")
    with pytest.raises(FeatxError, match="network 'MTT_musicnn' has no layer 'conv1'"):
        mn.assign_weights(mn.build_musicnn(model="MTT_musicnn"), variables, model="MTT_vgg")
    wrong_shape = dict(variables, **{"dense/bias": np.zeros(49, np.float32)})
    with pytest.raises(FeatxError, match=r"layer 'logits' of MTT_vgg expects weights of shapes .*\(50,\)"):
        mn.assign_weights(net, wrong_shape, model="MTT_vgg")


def test_weights_cache_round_trip_and_no_writing_through_links(mn, tmp_path, monkeypatch):
    monkeypatch.setenv("FEATX_CACHE_DIR", str(tmp_path / "cache"))
    fresh = mn.checkpoint_variables("MTT_vgg")
    files = list((tmp_path / "cache" / "musicnn").glob("MTT_vgg-*.npz"))
    assert len(files) == 1 and not list(files[0].parent.glob(".*.tmp*"))
    direct = mn.read_checkpoint("MTT_vgg")
    cached = mn.checkpoint_variables("MTT_vgg")
    assert set(fresh) == set(direct) == set(cached)
    for name in direct:
        np.testing.assert_array_equal(cached[name], direct[name])
    # a link where the cache goes is neither read nor written through
    victim = tmp_path / "victim.npz"
    victim.write_bytes(b"not mine")
    files[0].unlink()
    files[0].symlink_to(victim)
    with pytest.warns(UserWarning, match="could not cache the musicnn weights"):
        again = mn.checkpoint_variables("MTT_vgg")
    assert victim.read_bytes() == b"not mine" and files[0].is_symlink()
    np.testing.assert_array_equal(again["dense/kernel"], direct["dense/kernel"])


def _damage(path: Path, how: str) -> None:
    """Damage a weights cache file as a crash, a bad disk or a stray write would."""
    data = bytearray(path.read_bytes())
    if how == "truncated":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif how == "flipped bit":
        data[len(data) // 2] ^= 0x10  # inside a stored array
        path.write_bytes(bytes(data))
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "not a zip file":
        path.write_bytes(b"x" * 1000)
    elif how == "changed array, zip intact":  # a valid .npz whose numbers differ
        with np.load(path) as stored:
            arrays = {k: stored[k] for k in stored.files}
        arrays["dense/bias"] = arrays["dense/bias"] + 1
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)
    elif how == "no digest (an earlier featx's cache)":
        with np.load(path) as stored:
            arrays = {k: stored[k] for k in stored.files if not k.startswith("__")}
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)
    elif how == "huge":
        with open(path, "r+b") as fh:
            fh.truncate(1 << 30)  # 1 GiB, sparse: its size alone refuses it
    elif how == "zip bomb":  # a small file whose compressed member would inflate to 2 GiB
        import zipfile

        path.unlink()
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            with archive.open("dense/bias.npy", "w", force_zip64=True) as member:
                text = b"{'descr': '<f4', 'fortran_order': False, 'shape': (536870912,), }".ljust(117) + b"\n"
                header = b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text
                member.write(header)
                zeros = bytes(1 << 24)
                for _ in range(128):
                    member.write(zeros)
    else:
        raise AssertionError(how)


@pytest.mark.parametrize("how", ["truncated", "flipped bit", "empty", "not a zip file", "changed array, zip intact",
                                 "no digest (an earlier featx's cache)", "huge", "zip bomb"])
def test_damaged_weights_cache_is_said_and_made_again(mn, tmp_path, monkeypatch, caplog, how):
    monkeypatch.setenv("FEATX_CACHE_DIR", str(tmp_path / "cache"))
    direct = mn.read_checkpoint("MTT_vgg")
    mn.checkpoint_variables("MTT_vgg")
    path, = (tmp_path / "cache" / "musicnn").glob("MTT_vgg-*.npz")
    good = path.read_bytes()
    _damage(path, how)
    def peak_kb():  # this process's peak memory since the last reset (Linux)
        with open("/proc/self/status") as fh:
            return int(next(line for line in fh if line.startswith("VmHWM:")).split()[1])

    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # start the peak afresh: an earlier test's peak would hide this one's
    before = peak_kb()
    with caplog.at_level("WARNING", logger="featx"):
        again = mn.checkpoint_variables("MTT_vgg")
    assert peak_kb() - before < 512 * 1024  # kB: nothing inflated
    lines = [r.getMessage() for r in caplog.records if "musicnn weights cache" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith(f"{path}: damaged musicnn weights cache (")
    assert "\n" not in lines[0]
    assert set(again) == set(direct)
    for name in direct:
        np.testing.assert_array_equal(again[name], direct[name])
    assert path.read_bytes() == good  # made again, the same bytes
    caplog.clear()
    with caplog.at_level("WARNING", logger="featx"):
        mn.checkpoint_variables("MTT_vgg")
    assert not caplog.records  # and read quietly from then on


@pytest.mark.slow
def test_damaged_weights_cache_under_the_command_line(mn, corpus, tmp_path):
    """An empty cache file once ended `featx extract --preset musicnn-mtt` with only 'Aborted!'."""
    env = dict(os.environ, FEATX_CACHE_DIR=str(tmp_path / "cache"), TF_CPP_MIN_LOG_LEVEL="3")
    args = [sys.executable, "-m", "featx", "extract", str(corpus), "--preset", "musicnn-mtt", "-j", "1"]
    first = subprocess.run([*args, "-o", str(tmp_path / "a.csv")], capture_output=True, text=True, env=env,
                           cwd=tmp_path, timeout=600)
    assert first.returncode == 0, first.stderr
    path, = (tmp_path / "cache" / "musicnn").glob("MTT_musicnn-*.npz")
    path.write_bytes(b"")
    second = subprocess.run([*args, "-o", str(tmp_path / "b.csv")], capture_output=True, text=True, env=env,
                            cwd=tmp_path, timeout=600)
    assert second.returncode == 0, second.stderr
    assert "Traceback" not in second.stderr and "Aborted" not in second.stderr
    assert second.stderr.count("damaged musicnn weights cache") == 1, second.stderr
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_batches_equal_single_patches(mn):
    rng = np.random.default_rng(0)
    patches = rng.uniform(0, 3, size=(5, mi.N_FRAMES, mi.N_MELS)).astype(np.float32)
    whole = mn.run_patches(patches, model="MTT_musicnn", batch_size=5)
    single = mn.run_patches(patches, model="MTT_musicnn", batch_size=1)
    assert set(whole) == {"taggram", "penultimate", "mean_pool", "max_pool"}
    for name in whole:
        np.testing.assert_allclose(whole[name], single[name], rtol=1e-5, atol=1e-5)
    assert whole["taggram"].shape == (5, 50) and whole["penultimate"].shape == (5, 200)
    assert whole["max_pool"].shape == whole["mean_pool"].shape == (5, 753)
    assert np.all((whole["taggram"] > 0) & (whole["taggram"] < 1))


def test_other_patch_lengths(mn):
    rng = np.random.default_rng(2)
    long = rng.uniform(0, 3, size=(2, 250, mi.N_MELS)).astype(np.float32)
    out = mn.run_patches(long, model="MSD_musicnn")
    assert out["taggram"].shape == (2, 50) and np.all(np.isfinite(out["penultimate"]))
    # the length-free network computes the 187-frame network's numbers
    patches = long[:, :mi.N_FRAMES]
    free = mn.load_musicnn("MSD_musicnn", n_frames=None)(patches, training=False)
    free = {name: mn.import_keras().ops.convert_to_numpy(value) for name, value in free.items()}
    fixed = mn.run_patches(patches, model="MSD_musicnn")
    np.testing.assert_allclose(free["taggram"], fixed["taggram"], rtol=0, atol=1e-6)
    with pytest.raises(ConfigError, match="VGG networks take 187-frame patches only. Received: n_frames=250"):
        mn.run_patches(long, model="MSD_vgg")
    with pytest.raises(ConfigError, match=r"shape=\(250, 96\)"):
        mn.run_patches(long[0], model="MSD_musicnn")


# --- real music -------------------------------------------------------------------------

CLASSICAL_TAGS = {"classical", "strings", "violin", "piano"}
ROCK_TAGS = {"rock", "guitar"}


@pytest.mark.slow
@pytest.mark.parametrize("genre, expected", [("classical", CLASSICAL_TAGS), ("rock", ROCK_TAGS)])
def test_mtt_top_tags_make_sense_on_real_clips(mn, gtzan_dir, genre, expected):
    clips = sorted((gtzan_dir / "audio" / genre).glob(f"{genre}.*.wav"))
    assert len(clips) == 5
    for clip in clips:
        out = mn.musicnn_embeddings(clip)
        top3 = [tag for tag, _ in out.top_tags(3)]
        assert expected & set(top3), f"{clip.name}: top tags {top3}"
        assert out.taggram.shape == (10, 50) and out.embeddings.shape == (10, 200)
        assert np.all(np.isfinite(out.embeddings))
        np.testing.assert_allclose(out.starts, np.arange(10) * mi.N_FRAMES * mi.HOP_LENGTH / mi.SR)


@pytest.mark.slow
def test_msd_network_names_the_genres(mn, gtzan_dir):
    for genre in ("jazz", "rock", "metal"):
        out = mn.musicnn_embeddings(gtzan_dir / "audio" / genre / f"{genre}.00000.wav", model="MSD_musicnn")
        assert out.top_tags(1)[0][0] == genre, out.top_tags(5)


# The original package's own code, run under TensorFlow's compatibility layer (graph mode,
# tf.compat.v1.layers from tf_keras): its network on featx's patches, its spectrogram and
# batching (extractor.batch_data), and its whole extractor on real clips.
_ORIGINAL = r'''
import json, os, sys
import numpy as np
import tensorflow as tf
tf.compat.v1.disable_eager_execution()
from musicnn import extractor, models
req = json.loads(sys.argv[1])
patches = dict(np.load(req["patches"]))
out = {}
for model in req["models"]:
    tf.compat.v1.reset_default_graph()
    x = tf.compat.v1.placeholder(tf.float32, [None, 187, 96])
    training = tf.compat.v1.placeholder(tf.bool)
    with tf.name_scope("model"):
        outputs = models.define_model(x, training, model, 50)
    taggram = tf.nn.sigmoid(outputs[0])
    embedding = tf.compat.v1.layers.flatten(outputs[5]) if "vgg" in model else outputs[8]
    sess = tf.compat.v1.Session()
    tf.compat.v1.train.Saver().restore(sess, os.path.join(os.path.dirname(models.__file__), model) + os.sep)
    for key, batch in patches.items():
        t, e = sess.run([taggram, embedding], {x: batch, training: False})
        out[model + "|" + key + "|taggram"], out[model + "|" + key + "|embeddings"] = t, e
    sess.close()
for i, path in enumerate(req["files"]):
    out["batch_data|%d" % i] = extractor.batch_data(path, 187, 187)[0]
    out["extractor|%d" % i] = extractor.extractor(path, model="MTT_musicnn", extract_features=False)[0]
np.savez(req["output"], **out)
'''
FIDELITY_CLIPS = ("classical/classical.00000", "rock/rock.00000", "jazz/jazz.00003")


@pytest.fixture(scope="module")
def original(mn, gtzan_dir, tmp_path_factory):
    """What the musicnn package's own code computes on three real clips."""
    if importlib.util.find_spec("tf_keras") is None:
        pytest.skip("the original musicnn code needs tf.compat.v1.layers, which TensorFlow takes from "
                    "tf_keras: pip install tf-keras (the release matching TensorFlow's)")
    from featx.extract.audio import load

    folder = tmp_path_factory.mktemp("musicnn-original")
    files = [str(gtzan_dir / "audio" / f"{clip}.wav") for clip in FIDELITY_CLIPS]
    ours = {clip: mi.musicnn_patches(mi.musicnn_logmel(load(f, sr=mi.SR), sr=mi.SR))
            for clip, f in zip(FIDELITY_CLIPS, files)}
    np.savez(folder / "patches.npz", **ours)
    request = {"patches": str(folder / "patches.npz"), "models": list(MODELS), "files": files[:2],
               "output": str(folder / "original.npz")}
    proc = subprocess.run([sys.executable, "-c", _ORIGINAL, json.dumps(request)], check=False, capture_output=True,
                          text=True, timeout=900,
                          env=dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(folder / "original.npz") as data:
        return {"ours": ours, "files": files, **{k: data[k] for k in data.files}}


@pytest.mark.slow
def test_representation_is_the_originals_to_the_bit(original):
    from featx.extract.audio import load

    for i in range(2):
        y = load(original["files"][i], sr=mi.SR)
        theirs = original[f"batch_data|{i}"]
        as_original = mi.musicnn_patches(mi.musicnn_logmel(y, sr=mi.SR, overflow="inf"))
        np.testing.assert_array_equal(as_original, theirs)  # infinities included
        ours = original["ours"][FIDELITY_CLIPS[i]]
        finite = np.isfinite(theirs)
        np.testing.assert_array_equal(ours[finite], theirs[finite])
        assert np.all(np.isfinite(ours))


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_network_matches_the_original_graph(mn, original, model):
    for clip in FIDELITY_CLIPS:
        patches = original["ours"][clip]
        got = mn.run_patches(patches, model=model)
        want_tags = original[f"{model}|{clip}|taggram"]
        want_emb = original[f"{model}|{clip}|embeddings"]
        np.testing.assert_allclose(got["taggram"], want_tags, rtol=0, atol=1e-4)
        embedding = got[mn.EXPOSED_LAYERS[mn.architecture(model)][0]]
        scale = max(1.0, float(np.abs(want_emb).max()))
        np.testing.assert_allclose(embedding, want_emb, rtol=0, atol=1e-4 * scale)


@pytest.mark.slow
def test_whole_extractor_matches_where_its_input_is_finite(mn, original):
    for i in range(2):
        theirs = original[f"extractor|{i}"]
        finite = np.isfinite(original[f"batch_data|{i}"]).all(axis=(1, 2))
        ours = mn.musicnn_embeddings(original["files"][i]).taggram
        np.testing.assert_allclose(ours[finite], theirs[finite], rtol=0, atol=1e-4)
        if not finite.any():
            # every patch overflowed: the original answers NaN or one taggram whatever the music
            assert np.isnan(theirs).any() or np.ptp(theirs, axis=0).max() == 0
            assert np.ptp(ours, axis=0).max() > 0.05
    assert np.isfinite(original["batch_data|0"]).all(axis=(1, 2)).sum() >= 5  # classical: mostly finite
