"""featx.runtime.keras and featx.models.keras_fit: the settings that make Keras fits fast, checked
on real (tiny) fits.

Steps per execution must not change what a fit learns; the epoch-level NaN guard
must stop a diverging fit and leave a sound one alone, without a per-batch hook;
the JAX compilation cache must be written by one process and read by the next.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from featx.runtime.keras import MAX_STEPS_PER_EXECUTION, steps_per_execution

REPO = Path(__file__).resolve().parents[1]


def _data(n=96, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    X = (rng.normal(size=(n, d)) + y[:, None]).astype("float32")
    return X, y


def _mlp(keras, d=6, k=3):
    return keras.Sequential([keras.Input((d,)), keras.layers.Dense(16, activation="relu"),
                             keras.layers.Dropout(0.2), keras.layers.BatchNormalization(),
                             keras.layers.Dense(k, activation="softmax")])


def _weights(model) -> str:
    return hashlib.sha256(b"".join(np.asarray(w).tobytes() for w in model.get_weights())).hexdigest()


def test_steps_per_execution_is_a_whole_epoch_up_to_the_limit():
    assert steps_per_execution(25) == 25
    assert steps_per_execution(1) == 1
    assert steps_per_execution(0) == 1
    assert steps_per_execution(10_000) == MAX_STEPS_PER_EXECUTION
    assert steps_per_execution(10, limit=4) == 4


def test_steps_per_execution_learns_the_same_weights(keras):
    from featx.models.keras_fit import seed_everything

    X, y = _data()
    X_valid, y_valid = _data(40, seed=1)
    digests, losses = [], []
    for spe in (1, steps_per_execution(-(-len(X) // 16))):
        seed_everything(3)
        model = _mlp(keras)
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"], steps_per_execution=spe)
        history = model.fit(X, y, validation_data=(X_valid, y_valid), batch_size=16, epochs=3, shuffle=True,
                            verbose=0, callbacks=[keras.callbacks.ReduceLROnPlateau(monitor="val_loss", patience=1)])
        digests.append(_weights(model))
        losses.append(history.history["val_loss"])
    assert spe == 6
    assert digests[0] == digests[1]
    assert losses[0] == losses[1]


def test_steps_per_execution_learns_the_same_weights_from_a_batch_dataset(keras):
    """Image models read batches from a ``keras.utils.PyDataset`` that reshuffles every epoch."""
    from featx.models.keras_fit import seed_everything

    X, y = _data(70)

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.epoch = 0

        def __len__(self):
            return -(-len(X) // 16)

        def __getitem__(self, index):
            order = np.random.default_rng([0, self.epoch]).permutation(len(X))
            pick = order[index * 16:(index + 1) * 16]
            return X[pick], y[pick]

        def on_epoch_end(self):
            self.epoch += 1

    digests = []
    for spe in (1, steps_per_execution(len(Batches()))):
        seed_everything(5)
        model = _mlp(keras)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", steps_per_execution=spe)
        model.fit(Batches(), epochs=3, verbose=0)
        digests.append(_weights(model))
    assert spe == 5
    assert digests[0] == digests[1]


def _fit_path(keras, monkeypatch=None):
    """featx's fit_keras on a small table; the model, its history and its weights' digest."""
    from featx.data.labels import LabelEncoding
    from featx.models.keras_fit import fit_keras, seed_everything
    from featx.training.config import TrainConfig

    X, y = _data(100)
    X_valid, y_valid = _data(30, seed=1)
    labels = LabelEncoding().fit(np.array(["a", "b", "c"])[y])
    config = TrainConfig(model="mlp", epochs=4, batch_size=16, patience=2, reduce_lr_patience=1).validate()
    seed_everything(2)
    model = _mlp(keras)
    history = fit_keras(model, X, targets=y, valid=X_valid, valid_targets=y_valid, config=config, labels=labels,
                        steps_per_epoch=-(-len(X) // 16), progress=False)
    return model, history, _weights(model)


def test_featx_fit_runs_an_epoch_per_call_and_learns_what_one_step_per_call_learns(keras, monkeypatch):
    from featx.models import keras_fit

    model, history, fast = _fit_path(keras)
    assert int(model.steps_per_execution) == 7  # ceil(100 / 16) steps, one call per epoch
    monkeypatch.setattr(keras_fit, "steps_per_execution", lambda steps: 1)
    slow_model, slow_history, slow = _fit_path(keras)
    assert int(slow_model.steps_per_execution) == 1
    assert fast == slow
    assert history == slow_history


def test_featx_fit_stops_a_diverging_fit_with_one_line(keras):
    from featx.data.labels import LabelEncoding
    from featx.errors import TrainingError
    from featx.models.keras_fit import fit_keras, seed_everything
    from featx.training.config import TrainConfig

    X, y = _data(64)
    X = X * 1e18
    labels = LabelEncoding().fit(np.array(["a", "b", "c"])[y])
    config = TrainConfig(model="mlp", epochs=30, batch_size=16, patience=0, learning_rate=5.0,
                         optimizer="sgd").validate()
    seed_everything(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, activation="softmax")])
    with pytest.raises(TrainingError, match="training loss became .* in epoch 1: training diverged"):
        fit_keras(model, X, targets=y, config=config, labels=labels, steps_per_epoch=4, progress=False)


def test_nan_guard_stops_a_diverging_fit_at_the_end_of_its_epoch(keras):
    from featx.runtime.keras import nan_guard

    X, y = _data()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(1e12), loss="mse")
    history = model.fit(X, y.astype("float32") * 1e6, batch_size=8, epochs=20, verbose=0,
                        callbacks=[nan_guard()])
    losses = history.history["loss"]
    assert len(losses) < 20
    assert not np.isfinite(losses[-1])
    assert all(np.isfinite(loss) for loss in losses[:-1])


def test_nan_guard_lets_a_sound_fit_run_and_has_no_batch_hook(keras):
    from featx.runtime.keras import nan_guard

    X, y = _data()
    keras.utils.set_random_seed(0)
    model = _mlp(keras)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    guard = nan_guard()
    history = model.fit(X, y, batch_size=16, epochs=4, verbose=0, callbacks=[guard])
    assert len(history.history["loss"]) == 4
    # no per-batch hook: Keras need not wait for each step's loss before the next step
    base = keras.callbacks.Callback
    for hook in ("on_train_batch_end", "on_batch_end", "on_train_batch_begin"):
        assert getattr(type(guard), hook) is getattr(base, hook)


def _run(code: str, env: dict) -> subprocess.CompletedProcess:
    full = dict(os.environ, **env)
    full.pop("JAX_COMPILATION_CACHE_DIR", None)  # the user's own cache folder would win over featx's
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, cwd=REPO,
                          timeout=300)


def test_tensorflow_threads_are_set_before_the_runtime_starts_and_not_after():
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("TensorFlow is not installed")
    code = (
        "import json\n"
        "from featx.runtime.keras import import_keras, set_tensorflow_threads\n"
        "import_keras()\n"
        "import tensorflow as tf\n"
        "before = set_tensorflow_threads(1, 1)\n"
        "pools = [tf.config.threading.get_intra_op_parallelism_threads(),"
        " tf.config.threading.get_inter_op_parallelism_threads()]\n"
        "tf.constant(1.0) + 1.0\n"
        "after = set_tensorflow_threads(2, 2)\n"
        "print(json.dumps([before, pools, after, tf.config.threading.get_intra_op_parallelism_threads()]))\n"
    )
    done = _run(code, {"KERAS_BACKEND": "tensorflow"})
    assert done.returncode == 0, done.stderr[-2000:]
    before, pools, after, intra = json.loads(done.stdout.strip().splitlines()[-1])
    assert before is True and pools == [1, 1]
    assert after is False and intra == 1


_CACHE_FIT = (
    "import json\n"
    "import numpy as np\n"
    "import jax\n"
    "hits = []\n"
    "jax.monitoring.register_event_listener("
    "lambda event, **kw: hits.append(event) if event.endswith('cache_hits') else None)\n"
    "from featx.models.keras_fit import keras_backend\n"
    "keras = keras_backend()\n"
    "keras.utils.set_random_seed(0)\n"
    "model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation='relu'),"
    " keras.layers.Dense(3, activation='softmax')])\n"
    "model.compile(optimizer='adam', loss='sparse_categorical_crossentropy')\n"
    "x = np.random.default_rng(0).normal(size=(32, 6)).astype('float32')\n"
    "model.fit(x, np.arange(32) % 3, batch_size=8, epochs=1, verbose=0)\n"
    "print(json.dumps([jax.config.values['jax_compilation_cache_dir'], len(hits)]))\n"
)


def _needs_jax_cache():
    missing = [name for name in ("jax", "filelock") if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (the featx[jax] extra brings them)")


def test_jax_compiled_code_is_kept_in_featx_cache_folder_for_the_next_process(tmp_path):
    _needs_jax_cache()
    env = {"KERAS_BACKEND": "jax", "FEATX_CACHE_DIR": str(tmp_path / "cache"), "JAX_PLATFORMS": "cpu"}
    first = _run(_CACHE_FIT, env)
    assert first.returncode == 0, first.stderr[-2000:]
    folder, first_hits = json.loads(first.stdout.strip().splitlines()[-1])
    assert Path(folder) == tmp_path / "cache" / "xla"
    entries = sorted(p.name for p in Path(folder).glob("*-cache"))
    assert any(name.startswith("jit_train_step") for name in entries), entries
    second = _run(_CACHE_FIT, env)
    assert second.returncode == 0, second.stderr[-2000:]
    _, second_hits = json.loads(second.stdout.strip().splitlines()[-1])
    assert second_hits > first_hits
    assert sorted(p.name for p in Path(folder).glob("*-cache")) == entries  # nothing compiled anew


def test_jax_cache_stays_off_when_jax_is_told_so(tmp_path):
    _needs_jax_cache()
    env = {"KERAS_BACKEND": "jax", "FEATX_CACHE_DIR": str(tmp_path / "cache"), "JAX_PLATFORMS": "cpu",
           "JAX_ENABLE_COMPILATION_CACHE": "false"}
    done = _run(_CACHE_FIT, env)
    assert done.returncode == 0, done.stderr[-2000:]
    folder, _ = json.loads(done.stdout.strip().splitlines()[-1])
    assert folder is None
    assert not (tmp_path / "cache").exists()


def test_no_jax_cache_under_tensorflow(keras, tmp_path):
    from featx.runtime.keras import enable_compile_cache

    if keras.backend.backend() != "tensorflow":
        pytest.skip(f"the test session runs Keras on {keras.backend.backend()}")
    assert enable_compile_cache(tmp_path / "xla") is None
    assert not (tmp_path / "xla").exists()


# ---------------------------------------------------------------------------
# An image model's rows held in memory (featx.models.keras_images.rows_in_memory)


@pytest.fixture(scope="module")
def image_store(tmp_path_factory):
    """A store of random mel and MFCC images of 6 tracks x 3 segments (no audio)."""
    from featx.data.store import open_store
    from featx.extract.store_writer import StoreWriter
    from featx.features.spectrograms import SpectrogramSettings

    settings = SpectrogramSettings(kinds="mel,mfcc", image_size=(16, 20))
    path = tmp_path_factory.mktemp("rows") / "store"
    rng = np.random.default_rng(0)
    with StoreWriter(path, settings) as writer:
        for k in range(6):
            genre = ("rock", "jazz")[k % 2]
            images = {kind: rng.normal(k % 2, 1.0, size=(3, 16, 20)).astype(np.float32) for kind in ("mel", "mfcc")}
            writer.append(images, key=f"{genre}/{genre}.{k:05d}.wav", filename=f"{genre}.{k:05d}.wav", label=genre,
                          length=66149)
    return open_store(path)


def test_rows_in_memory_read_as_the_store_reads(image_store):
    from featx.models.keras_images import RowCache, rows_in_memory

    rows = np.array([0, 2, 3, 5, 7, 11, 12, 17])
    cache = rows_in_memory(image_store, rows[::-1], ("mel", "mfcc"))
    assert isinstance(cache, RowCache)
    assert cache.nbytes == len(rows) * 2 * 16 * 20 * 4
    asked = np.array([17, 0, 5, 5, 12, 2])  # any order, repeats
    for kinds in (("mel", "mfcc"), ("mfcc",), "mel"):
        got, want = cache.read(asked, kinds), image_store.read(asked, kinds)
        assert list(got) == list(want)
        for kind in want:
            assert got[kind].dtype == np.float32
            np.testing.assert_array_equal(got[kind], want[kind])
    assert cache.image_shape("mel") == image_store.image_shape("mel")
    with pytest.raises(KeyError, match="row 1 is not held"):
        cache.read([0, 1])
    with pytest.raises(KeyError, match="kind 'chroma' is not held"):
        cache.read([0], ("chroma",))


def test_rows_beyond_the_memory_allowed_are_read_from_the_store(image_store):
    from featx.models.keras_images import memory_budget, rows_in_memory

    assert rows_in_memory(image_store, np.arange(18), ("mel",), max_bytes=18 * 16 * 20 * 4 - 1) is image_store
    assert rows_in_memory(image_store, np.arange(18), ("mel",), max_bytes=18 * 16 * 20 * 4) is not image_store
    assert 0 < memory_budget(limit=2**20) <= 2**20


def test_an_image_model_learns_the_same_weights_from_rows_in_memory(image_store, keras):
    from featx.data.labels import LabelEncoding
    from featx.models.keras_images import rows_in_memory
    from featx.models.registry import get_model
    from featx.models.keras_fit import seed_everything
    from featx.models.keras_images import store_batches
    from featx.models.preprocessing import ImagePreprocessing

    labels = LabelEncoding().fit(image_store.rows["label"])
    y = labels.encode(image_store.rows["label"])
    train = np.array([0, 1, 2, 3, 4, 5, 9, 10, 11, 12, 13, 14])
    prep = ImagePreprocessing(["mel"], labels, {"mel": (16, 20)}).fit(image_store, train)
    spec = get_model("cnn2d-base")
    digests = []
    for source in (image_store, rows_in_memory(image_store, train, ("mel",))):
        seed_everything(1)
        model = spec.build((16, 20), 2, filters=(4,), dense=8)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(store_batches(source, train, y[train], prep, batch_size=4, shuffle=True, seed=1), epochs=2,
                  verbose=0)
        digests.append(_weights(model))
    assert digests[0] == digests[1]


def test_jax_backend_without_jax_is_one_line_with_the_install_command(synthetic_feature_csv, tmp_path):
    """KERAS_BACKEND=jax where JAX cannot be imported: featx train says the extra to install."""
    code = (
        "import sys\n"
        "sys.modules['jax'] = None  # JAX cannot be imported, as where it is not installed\n"
        "from featx.cli.main import main\n"
        "main(sys.argv[1:], prog_name='featx')\n"
    )
    env = dict(os.environ, KERAS_BACKEND="jax")
    csv = synthetic_feature_csv(tmp_path / "f.csv", n_tracks=6, n_segments=1, classes=("a", "b"), seed=0,
                                separation=3.0, track_spread=0.3, row_spread=0.3)
    done = subprocess.run([sys.executable, "-c", code, "train", str(csv), "--model", "mlp",
                           "--folds", "2", "--epochs", "1", "-o", str(tmp_path / "run")],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr
    assert any("KERAS_BACKEND=jax needs the jax package" in line and "pip install 'featx[jax]'" in line
               for line in lines), done.stderr[-2000:]
    assert not (tmp_path / "run" / "model.keras").exists()
