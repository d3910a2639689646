"""Keras training speed on the CPU: featx's fit path, faster variants of it and plain Keras, side by side.

Three parts, each printing Markdown tables:

``speed``
    For each table model (mlp, cnn, lstm on the 30-s GTZAN table; segment-lstm on
    the 3-s table), one fit on the training rows of fold 1 of featx's 5-fold track
    split, ``--epochs`` epochs (early stopping off, so every variant runs them all),
    by (a) featx's fit path as it was before steps per execution and the
    epoch-level NaN guard (``baseline``: featx's model object and
    ``featx.models.keras_fit.fit_keras``, patched in this process to one step per
    call and a loss check after every batch), (b) featx's fit path as it is
    (``featx``) and with further candidates (TensorFlow thread pools, larger
    batches, XLA, the JAX backend and its compilation cache) and (c) a plain Keras
    script (same network and arrays, ``compile`` + ``fit``, no callbacks). Every variant
    runs in every repeat, in a rotated order; variants that need another backend or
    other thread pools run in child processes, one per set-up and repeat. Printed:
    seconds per fit (median and range), the first epoch (tracing and compiling)
    and the later ones apart, the speed-up over (a) as the median and range of the
    per-repeat ratios, and whether the trained weights are bit-identical to (a)'s.
``accuracy``
    featx's 5-fold track-grouped cross-validation (seed 0, the model's default
    epochs and early stopping) per variant: out-of-fold track accuracy, its spread
    over folds, the folds one by one, and the wall time of the cross-validation.
``images``
    The image models on a tiny spectrogram store made from the shared clips (in a
    temporary folder): training samples/s through featx's fit path (before: batches
    read from the store per step; now: the rows read once into memory,
    ``featx.models.keras_images.rows_in_memory``) against a plain Keras fit on the
    same images held in memory as arrays, alternating, and the feed's cost.

    python bench/bench_keras_cpu.py                                # every part
    python bench/bench_keras_cpu.py speed --models mlp,cnn --repeats 5
    python bench/bench_keras_cpu.py accuracy --models mlp --cv-variants baseline,featx,jax --cv-repeats 3
    python bench/bench_keras_cpu.py images --image-models cnn2d,multihead --image-epochs 3

The machine's load moves every figure: read the ratios (each from one repeat, where
both sides ran minutes apart at most) before the seconds.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

TABLE_MODELS = ["mlp", "cnn", "lstm", "segment-lstm"]
IMAGE_MODELS = ["cnn2d", "cnn2d-base", "mfcc-cnn", "multihead"]
#: Timed epochs per fit (mlp: its default; the lstm's epochs take seconds each).
EPOCHS = {"mlp": 60, "cnn": 30, "lstm": 6, "segment-lstm": 30}


@dataclasses.dataclass(frozen=True)
class Variant:
    """One way of fitting: featx's path with candidates, or plain Keras."""

    backend: str = "tensorflow"
    path: str = "featx"  # or "plain"
    spe: bool = False  # steps_per_execution (featx.runtime.keras.steps_per_execution)
    guard: bool = False  # epoch-level NaN guard (featx.runtime.keras.nan_guard) for the per-batch one
    batch: int | None = None  # batch size (default: the configuration's, 32)
    threads: tuple | None = None  # TensorFlow (intra, inter) op threads
    cache: str | None = None  # JAX compilation cache: "cold" (empty) or "warm" (after a cold fit)
    determinism: bool = True  # TensorFlow's op determinism (featx turns it on when it seeds)
    jit: bool = False  # TensorFlow: jit_compile=True (XLA), which op determinism refuses

    @property
    def setup(self) -> tuple:
        """What needs its own process: the backend, the thread pools, a compilation cache (set
        before JAX compiles anything), TensorFlow's op determinism (once on, on for good)."""
        return (self.backend, self.threads, bool(self.cache), self.determinism or self.backend != "tensorflow")


VARIANTS = {
    "baseline": Variant(),  # featx's fit before: one step per call, the per-batch NaN guard
    "spe": Variant(spe=True),
    "guard": Variant(guard=True),
    "featx": Variant(spe=True, guard=True),  # featx's fit now
    "featx b64": Variant(spe=True, guard=True, batch=64),
    "featx b128": Variant(spe=True, guard=True, batch=128),
    "featx threads 1/1": Variant(spe=True, guard=True, threads=(1, 1)),
    "featx threads 2/1": Variant(spe=True, guard=True, threads=(2, 1)),
    "featx no-determinism": Variant(spe=True, guard=True, determinism=False),
    "featx no-determinism jit": Variant(spe=True, guard=True, determinism=False, jit=True),
    "plain": Variant(path="plain", determinism=False),
    "plain spe": Variant(path="plain", spe=True, determinism=False),
    "jax baseline": Variant(backend="jax"),
    "jax featx": Variant(backend="jax", spe=True, guard=True),
    "jax featx b64": Variant(backend="jax", spe=True, guard=True, batch=64),
    "jax featx b128": Variant(backend="jax", spe=True, guard=True, batch=128),
    "jax featx cache cold": Variant(backend="jax", spe=True, guard=True, cache="cold"),
    "jax featx cache warm": Variant(backend="jax", spe=True, guard=True, cache="warm"),
    "jax plain": Variant(backend="jax", path="plain", determinism=False),
}
#: Cross-validation variants (a "cold" cache starts empty at fold 1; a "warm" one holds an earlier run's).
CV_VARIANTS = {
    "baseline": Variant(),
    "featx": Variant(spe=True, guard=True),
    "featx b64": Variant(spe=True, guard=True, batch=64),
    "featx b128": Variant(spe=True, guard=True, batch=128),
    "jax": Variant(backend="jax", spe=True, guard=True, cache="cold"),
    "jax b64": Variant(backend="jax", spe=True, guard=True, cache="cold", batch=64),
    "jax warm-cache": Variant(backend="jax", spe=True, guard=True, cache="warm"),
}


def shared_data() -> Path:
    """``$FEATX_SHARED_DATA``, else ``shared/data`` beside the checkout (or beside its parent folder)."""
    if os.environ.get("FEATX_SHARED_DATA"):
        return Path(os.environ["FEATX_SHARED_DATA"])
    near = [folder / "shared" / "data" for folder in (ROOT.parent, ROOT.parent.parent)]
    return next((p for p in near if p.exists()), near[0])


def table_path(model: str) -> Path:
    gtzan = shared_data() / "gtzan"
    return gtzan / ("features_3_sec.classical_jazz_rock.csv" if model == "segment-lstm" else "features_30_sec.csv")


# ---------------------------------------------------------------------------
# Inside a child process: the backend and thread pools are set before Keras loads


def _start(variant: Variant):
    """Import Keras for ``variant``'s set-up (its environment was set by :func:`run_child`)."""
    from featx.models.keras_fit import keras_backend
    from featx.runtime.keras import set_tensorflow_threads

    keras = keras_backend()  # under JAX, the compilation cache as featx sets it (if the child's env allows)
    assert keras.backend.backend() == variant.backend, (keras.backend.backend(), variant.backend)
    if variant.threads and not set_tensorflow_threads(*variant.threads):
        raise SystemExit("TensorFlow's thread pools could not be set")
    if variant.backend == "tensorflow" and variant.determinism:  # on from the start, as after featx's first fit
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    return keras


def batch_guard():
    """The NaN guard featx used before (a check after every batch), for the baseline."""
    import math

    from featx.runtime.keras import import_keras

    keras = import_keras()

    class NanGuard(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                self.model.stop_training = True

    return NanGuard()


@contextlib.contextmanager
def applied(variant: Variant):
    """featx's fit path (featx.models.keras_fit.fit_keras) as ``variant`` says (this process only).

    Without ``spe`` the train function runs one step per call, and without ``guard`` the
    loss is checked after every batch: featx's fit before this change (the baseline).
    """
    from featx.models import keras_fit
    from featx.runtime import keras as _keras

    saved = (keras_fit.compile_options, keras_fit.nan_guard, keras_fit.steps_per_execution, keras_fit.seed_everything)
    original = keras_fit.compile_options

    def compile_options(config, labels, steps_per_epoch, monitor):
        kwargs, callbacks = original(config, labels, steps_per_epoch, monitor)
        if variant.jit:
            kwargs["jit_compile"] = True
        return kwargs, callbacks

    def seed_only(seed):  # seeded as featx seeds, without TensorFlow's op determinism
        _keras.import_keras().utils.set_random_seed(int(seed))

    keras_fit.compile_options = compile_options
    if not variant.spe:
        keras_fit.steps_per_execution = lambda steps: 1
    if not variant.guard:
        keras_fit.nan_guard = batch_guard
    if not variant.determinism:
        keras_fit.seed_everything = seed_only
    try:
        yield
    finally:
        (keras_fit.compile_options, keras_fit.nan_guard, keras_fit.steps_per_execution,
         keras_fit.seed_everything) = saved


def fold_data(model: str):
    """Fold 1 of featx's 5-fold track split of the model's table, and featx's model object for it."""
    from featx.data.labels import LabelEncoding
    from featx.data.splits import make_splits
    from featx.data.table import read_feature_csv
    from featx.training.config import TrainConfig

    table = read_feature_csv(table_path(model))
    config = TrainConfig(model=model).validate()
    labels = LabelEncoding().fit(table.labels)
    fold = make_splits(table, split=config.split, folds=config.folds, seed=config.seed,
                       valid_fraction=config.valid_fraction).folds[0]
    return table, config, labels, fold


def _digest(model) -> str:
    return hashlib.sha256(b"".join(np.asarray(w).tobytes() for w in model.get_weights())).hexdigest()[:16]


def one_fit(keras, name: str, variant: Variant, table, config, labels, fold, epochs: int) -> dict:
    """Fit once as ``variant`` says; seconds of the whole fit (scaling, build, compile, fit) and per epoch."""
    from featx.models.registry import create
    from featx.runtime.keras import steps_per_execution

    config = dataclasses.replace(config, epochs=epochs, patience=0,
                                 batch_size=variant.batch or config.batch_size)
    stamps = []
    if variant.path == "featx":  # featx's model object, as featx train fits each fold
        with applied(variant):
            model = create(config, labels, table=table)
            start, cpu = time.perf_counter(), time.process_time()
            stamps.append(start)
            model.fit(table, fold.train, fold.valid, seed=config.seed, progress=False,
                      on_epoch=lambda epoch, logs: stamps.append(time.perf_counter()))
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        net, history = model.estimator, model.history
    else:  # a plain Keras script: the same network and arrays, compile and fit
        class Clock(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                stamps.append(time.perf_counter())

        model = create(config, labels, table=table)
        y = labels.encode(table.labels)
        start, cpu = time.perf_counter(), time.process_time()
        stamps.append(start)
        model._fit_preprocessing(table, fold.train)
        X_tr, y_tr = model._examples(table, fold.train, y)
        X_va, y_va = model._examples(table, fold.valid, y)
        keras.utils.set_random_seed(config.seed)
        net = model.spec.build(tuple(X_tr.shape[1:]), model.n_classes, activation=labels.activation, **model.params)
        steps = -(-len(X_tr) // config.batch_size)
        net.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                    loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                    steps_per_execution=steps_per_execution(steps) if variant.spe else 1)
        result = net.fit(X_tr, y_tr, validation_data=(X_va, y_va) if len(X_va) else None, epochs=epochs,
                         batch_size=config.batch_size, shuffle=True, verbose=0, callbacks=[Clock()])
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        history = result.history
    epochs_s = np.diff(stamps)
    return {"variant": name, "seconds": seconds, "cpu_seconds": cpu, "epochs": len(history["loss"]),
            "first_epoch": float(epochs_s[0]), "later_epoch": float(np.median(epochs_s[1:])) if len(epochs_s) > 1
            else float("nan"), "loss": float(history["loss"][-1]), "weights": _digest(net)}


def warm_up(keras) -> None:
    """One small fit of another network, so that no timed fit pays the backend's start."""
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, activation="softmax")])
    net.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
    net.fit(x, np.arange(64) % 4, batch_size=16, epochs=2, verbose=0)


def fits_child(model: str, names: list[str], epochs: int, rotate: int) -> list[dict]:
    """Every variant of ``names`` (one set-up), in an order rotated by ``rotate``.

    A cache set-up runs its ``cold`` variant (an empty cache) before its ``warm`` one.
    """
    keras = _start(VARIANTS[names[0]])
    warm_up(keras)
    table, config, labels, fold = fold_data(model)
    k = rotate % len(names)
    order = sorted(names, key=lambda n: n.endswith("warm")) if VARIANTS[names[0]].cache else names[k:] + names[:k]
    return [one_fit(keras, name, VARIANTS[name], table, config, labels, fold, epochs) for name in order]


def cv_child(model: str, name: str) -> dict:
    """featx's 5-fold track-grouped cross-validation with ``name``'s candidates."""
    from featx.data.table import read_feature_csv
    from featx.training.config import TrainConfig
    from featx.training.cv import cross_validate

    variant = CV_VARIANTS[name]
    _start(variant)
    table = read_feature_csv(table_path(model))
    config = TrainConfig(model=model, seed=0, folds=5, split="track", refit=False,
                         **({"batch_size": variant.batch} if variant.batch else {})).validate()
    with applied(variant):
        start = time.perf_counter()
        result = cross_validate(table, config, progress=False)
        seconds = time.perf_counter() - start
    m = result.metrics["track"]
    return {"variant": name, "accuracy": m["accuracy"], "std": m["std"]["accuracy"], "f1_macro": m["f1_macro"],
            "per_fold": [f["accuracy"] for f in m["per_fold"]], "seconds": seconds,
            "epochs": [len(h.get("loss", [])) for h in result.histories]}


#: Image feeds, in the order of the table.
IMAGE_FEEDS = ("store, one step per call, batch guard", "store, spe+guard", "featx: rows in memory, spe+guard",
               "memory (plain Keras)")


def images_child(store: str, model: str, epochs: int, repeats: int) -> list[dict]:
    """An image model trained through featx's fit path and as a plain Keras fit, alternating.

    ``store, one step per call, batch guard``: featx's fit before this change (batches
    read from the store, a per-batch NaN guard, one step per call); ``store,
    spe+guard``: the same feed with steps per execution and the epoch-level guard;
    ``featx``: what :meth:`featx.models.keras_images.KerasImages.fit` does now (the
    rows read once into memory, :func:`~featx.models.keras_images.rows_in_memory`);
    ``memory``: a plain Keras fit on the same standardised images as arrays.
    """
    from featx.data.labels import LabelEncoding
    from featx.data.store_table import StoreTable
    from featx.models.keras_fit import fit_keras, seed_everything
    from featx.models.keras_images import KerasImages, rows_in_memory, store_batches
    from featx.models.preprocessing import ImagePreprocessing
    from featx.models.registry import get_model
    from featx.training.config import TrainConfig

    keras = _start(Variant())
    table = StoreTable(store)
    spec = get_model(model)
    config = TrainConfig(model=model, epochs=epochs, folds=1, patience=0, valid_fraction=0.0).validate()
    labels = LabelEncoding().fit(table.labels)
    y = labels.encode(table.labels)
    kinds = KerasImages.image_kinds(spec, config.params)
    shapes = table.image_shapes(kinds)
    rows = np.arange(table.n_rows)
    prep = ImagePreprocessing(list(kinds), labels, shapes).fit(table.store, rows)
    arrays = prep.model_input(table.store.read(rows, prep.kinds))
    net_shape = shapes if len(kinds) > 1 else shapes[kinds[0]]
    out = []
    for r in range(repeats):
        for feed in IMAGE_FEEDS[r % len(IMAGE_FEEDS):] + IMAGE_FEEDS[:r % len(IMAGE_FEEDS)]:
            stamps, cpu = [], []

            def stamp(*_):
                stamps.append(time.perf_counter())
                cpu.append(time.process_time())

            class Clock(keras.callbacks.Callback):
                def on_epoch_end(self, epoch, logs=None):
                    stamp()

            seed_everything(0)
            net = spec.build(net_shape, len(labels.classes_), activation=labels.activation, **config.params)
            stamp()
            if feed.startswith("memory"):
                net.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                            loss="sparse_categorical_crossentropy", metrics=["accuracy"])
                net.fit(arrays, y, batch_size=config.batch_size, epochs=epochs, shuffle=True, verbose=0,
                        callbacks=[Clock()])
            else:
                source = rows_in_memory(table.store, rows, kinds) if feed.startswith("featx") else table.store
                data = store_batches(source, rows, y, prep, batch_size=config.batch_size, shuffle=True, seed=0)
                variant = Variant() if feed.startswith("store, one") else Variant(spe=True, guard=True)
                with applied(variant):
                    fit_keras(net, data, config=config, labels=labels, steps_per_epoch=len(data), progress=False,
                              on_epoch=stamp)
            later = np.diff(stamps)[1:]
            out.append({"feed": feed, "repeat": r, "samples_per_s": len(rows) / float(np.median(later)),
                        "epoch_s": float(np.median(later)), "first_epoch": stamps[1] - stamps[0],
                        "cpu_epoch_s": float(np.median(np.diff(cpu)[1:])),
                        "rows": int(len(rows)), "kinds": list(kinds), "params": int(net.count_params())})
        # the feed alone: every batch of an epoch read and standardised as Keras asks for them
        for feed, source in (("read only", table.store), ("read only, rows in memory",
                                                         rows_in_memory(table.store, rows, kinds))):
            data = store_batches(source, rows, y, prep, batch_size=config.batch_size, shuffle=True, seed=r)
            start, start_cpu = time.perf_counter(), time.process_time()
            for i in range(len(data)):
                data[i]
            data.on_epoch_end()
            out.append({"feed": feed, "repeat": r, "epoch_s": time.perf_counter() - start,
                        "cpu_epoch_s": time.process_time() - start_cpu})
    return out


# ---------------------------------------------------------------------------
# The parent: children per set-up, alternating, and the tables


def run_child(args: list[str], variant: Variant, kept_cache: str | None = None) -> object:
    """Run this script's ``args`` in a child set up for ``variant``; its RESULT line, decoded.

    Under JAX, featx keeps compiled code in its cache folder: a ``cache`` variant gets an
    empty one of its own (so its first fit compiles everything), or ``kept_cache`` (what
    earlier runs left there), any other runs without.
    """
    env = dict(os.environ, KERAS_BACKEND=variant.backend)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    with tempfile.TemporaryDirectory(prefix="featx-bench-cache-") as cache:
        if variant.cache:
            env.update(FEATX_CACHE_DIR=kept_cache or cache, JAX_ENABLE_COMPILATION_CACHE="true")
        else:
            env["JAX_ENABLE_COMPILATION_CACHE"] = "false"
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args], capture_output=True,
                              text=True, env=env, cwd=ROOT)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"child {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def spread(values) -> str:
    values = [v for v in values if v == v]
    if not values:
        return "-"
    return f"{statistics.median(values):.3g} ({min(values):.3g}-{max(values):.3g})"


def speed(models: list[str], names: list[str], repeats: int, epochs: dict) -> None:
    setups = {}
    for name in names:
        setups.setdefault(VARIANTS[name].setup, []).append(name)
    groups = list(setups.values())
    for model in models:
        runs = {name: [] for name in names}
        for r in range(repeats):
            for g in groups[r % len(groups):] + groups[:r % len(groups)]:
                out = run_child(["_fits", model, ",".join(g), str(epochs[model]), str(r)], VARIANTS[g[0]])
                for item in out:
                    runs[item["variant"]].append(item)
                print(f"  {model} repeat {r + 1}: " + ", ".join(f"{i['variant']} {i['seconds']:.1f}s" for i in out),
                      file=sys.stderr, flush=True)
        base = runs.get("baseline") or runs[names[0]]
        print(f"\n### {model}: one fit of {epochs[model]} epochs on fold 1's training rows "
              f"({table_path(model).name}), {repeats} repeats\n")
        print("| variant | s/fit median (range) | first epoch s | later epochs s/epoch | speed-up vs baseline "
              "median (range) | CPU s/fit | CPU speed-up vs baseline | final loss | weights as the baseline's |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name in names:
            items = runs[name]
            ratios = [b["seconds"] / i["seconds"] for b, i in zip(base, items)]
            cpu_ratios = [b["cpu_seconds"] / i["cpu_seconds"] for b, i in zip(base, items)]
            ref = runs.get("jax baseline") if VARIANTS[name].backend == "jax" and "jax baseline" in runs else base
            same = "yes" if items[0]["weights"] == ref[0]["weights"] else "no"
            if ref is not base:
                same += " (jax baseline's)"
            print(f"| {name} | {spread([i['seconds'] for i in items])} | {spread([i['first_epoch'] for i in items])} | "
                  f"{spread([i['later_epoch'] for i in items])} | {spread(ratios)}x | "
                  f"{spread([i['cpu_seconds'] for i in items])} | {spread(cpu_ratios)}x | {items[0]['loss']:.4f} | "
                  f"{same} |", flush=True)


def accuracy(models: list[str], names: list[str], repeats: int) -> None:
    """Each variant's cross-validation ``repeats`` times, variants alternating.

    A ``warm`` cache variant first runs once untimed, into a cache folder its timed runs
    then share: a second ``featx train`` of the same model on the same table.
    """
    for model in models:
        runs = {name: [] for name in names}
        with tempfile.TemporaryDirectory(prefix="featx-bench-kept-") as kept:
            for name in names:
                if CV_VARIANTS[name].cache == "warm":
                    run_child(["_cv", model, name], CV_VARIANTS[name], kept)
            for r in range(repeats):
                for name in names[r % len(names):] + names[:r % len(names)]:
                    runs[name].append(run_child(["_cv", model, name], CV_VARIANTS[name], kept))
                    print(f"  {model} CV repeat {r + 1}: {name} {runs[name][-1]['seconds']:.0f} s",
                          file=sys.stderr, flush=True)
        base = runs[names[0]]
        print(f"\n### {model}: featx 5-fold track-grouped CV, seed 0, default epochs and early stopping "
              f"({table_path(model).name}; no refit), {repeats} run(s) per variant, alternating\n")
        print(f"| variant | track accuracy ± sd over folds | folds | macro F1 | same in every run | CV seconds "
              f"median (range) | speed-up vs {names[0]} median (range) | epochs per fold |")
        print("|---|---|---|---|---|---|---|---|")
        for name in names:
            r, items = runs[name][0], runs[name]
            same = all(i["per_fold"] == r["per_fold"] for i in items)
            ratios = [b["seconds"] / i["seconds"] for b, i in zip(base, items)]
            print(f"| {name} | {r['accuracy']:.3f} ± {r['std']:.3f} | {' '.join(f'{a:.3f}' for a in r['per_fold'])} | "
                  f"{r['f1_macro']:.3f} | {'yes' if same else 'no'} | {spread([i['seconds'] for i in items])} | "
                  f"{spread(ratios)}x | {' '.join(map(str, r['epochs']))} |", flush=True)


def images(models: list[str], repeats: int, epochs: int, backends: list[str]) -> None:
    """A tiny store from the shared clips, then each image model in a child per backend."""
    from featx.extract.spectro_runner import run_spectrograms
    from featx.features.spectrograms import SpectrogramSettings

    audio = shared_data() / "gtzan" / "audio"
    with tempfile.TemporaryDirectory(prefix="featx-bench-") as tmp:
        store = Path(tmp) / "store"
        run_spectrograms([audio], store, settings=SpectrogramSettings(), progress=False)
        for backend in backends:
            print(f"\n### image models ({backend}): training samples/s, store feed against in-memory arrays "
                  f"({audio} made into a store of mel, MFCC and chroma images; batch 32; {epochs} epochs per fit, "
                  f"the first left out; {repeats} repeats, feeds alternating)\n")
            base, featx, mem_feed = IMAGE_FEEDS[0], IMAGE_FEEDS[2], IMAGE_FEEDS[3]
            print("| model | rows | parameters | " + " | ".join(IMAGE_FEEDS) + " | featx's feed cost vs memory, "
                  "median (range) | before (store per batch, one step per call) vs memory | reading an epoch's "
                  "batches alone from the store, s (share of a featx epoch) | the same from rows in memory |")
            print("|---|---|---|" + "---|" * len(IMAGE_FEEDS) + "---|---|---|---|")
            cpu_rows = []
            for model in models:
                out = run_child(["_images", str(store), model, str(epochs), str(repeats)], Variant(backend=backend))
                sps = {f: [o["samples_per_s"] for o in out if o["feed"] == f] for f in IMAGE_FEEDS}
                cost = [100 * (1 - a / b) for a, b in zip(sps[featx], sps[mem_feed])]
                before = [100 * (1 - a / b) for a, b in zip(sps[base], sps[mem_feed])]
                epoch_of = [o["epoch_s"] for o in out if o["feed"] == featx]
                reads = [o["epoch_s"] for o in out if o["feed"] == "read only"]
                mem = [o["epoch_s"] for o in out if o["feed"] == "read only, rows in memory"]
                share = [100 * a / e for a, e in zip(reads, epoch_of)]
                mem_share = [100 * a / e for a, e in zip(mem, epoch_of)]
                cpu_rows.append((model, {f: [o["cpu_epoch_s"] for o in out if o["feed"] == f]
                                         for f in (*IMAGE_FEEDS, "read only", "read only, rows in memory")}))
                print(f"| {model} ({', '.join(out[0]['kinds'])}) | {out[0]['rows']} | {out[0]['params']:,} | "
                      + " | ".join(spread(sps[f]) for f in IMAGE_FEEDS)
                      + f" | {spread(cost)} % | {spread(before)} % | {spread(reads)} ({spread(share)} %) | "
                      f"{spread(mem)} ({spread(mem_share)} %) |", flush=True)
            print(f"\nThe same fits in CPU seconds of the process per epoch (all its threads; less moved by other "
                  f"processes than wall time), {backend}:\n")
            print("| model | " + " | ".join(IMAGE_FEEDS) + " | featx's extra CPU vs memory | reading an epoch alone: "
                  "store | rows in memory |")
            print("|---|" + "---|" * len(IMAGE_FEEDS) + "---|---|---|")
            for model, c in cpu_rows:
                extra = [100 * (a / b - 1) for a, b in zip(c[featx], c[mem_feed])]
                print(f"| {model} | " + " | ".join(spread(c[f]) for f in IMAGE_FEEDS)
                      + f" | {spread(extra)} % | {spread(c['read only'])} | {spread(c['read only, rows in memory'])} |",
                      flush=True)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_fits"]:
        model, names, epochs, rotate = argv[1], argv[2].split(","), int(argv[3]), int(argv[4])
        print("RESULT " + json.dumps(fits_child(model, names, epochs, rotate)))
        return
    if argv[:1] == ["_images"]:
        store, model, epochs, repeats = argv[1], argv[2], int(argv[3]), int(argv[4])
        print("RESULT " + json.dumps(images_child(store, model, epochs, repeats)))
        return
    if argv[:1] == ["_cv"]:
        print("RESULT " + json.dumps(cv_child(argv[1], argv[2])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", default=["speed", "accuracy", "images"],
                        help="speed, accuracy, images (default: all)")
    parser.add_argument("--models", default=",".join(TABLE_MODELS))
    parser.add_argument("--variants", default=",".join(VARIANTS), help="speed variants")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", default=None,
                        help="timed epochs per model, e.g. mlp=60,lstm=4 (default: %s)" %
                        ",".join(f"{k}={v}" for k, v in EPOCHS.items()))
    parser.add_argument("--cv-variants", default="baseline,featx,jax,jax warm-cache",
                        help="comma-separated; the first is the baseline of the speed-ups")
    parser.add_argument("--cv-repeats", type=int, default=1)
    parser.add_argument("--image-models", default="cnn2d,multihead")
    parser.add_argument("--image-epochs", type=int, default=3)
    parser.add_argument("--image-backends", default="tensorflow", help="e.g. tensorflow,jax")
    args = parser.parse_args(argv)
    unknown = [p for p in args.parts if p not in ("speed", "accuracy", "images")]
    if unknown:
        parser.error(f"unknown part {unknown[0]!r}; expected speed, accuracy or images")
    models = args.models.split(",")
    epochs = dict(EPOCHS)
    for item in filter(None, (args.epochs or "").split(",")):
        key, _, value = item.partition("=")
        epochs[key] = int(value)
    print(f"machine: {os.cpu_count()} CPU cores; load average {os.getloadavg()[0]:.1f} at the start; "
          f"python {sys.version.split()[0]}")
    if "speed" in args.parts:
        speed(models, args.variants.split(","), args.repeats, epochs)
    if "accuracy" in args.parts:
        accuracy(models, args.cv_variants.split(","), args.cv_repeats)
    if "images" in args.parts:
        images(args.image_models.split(","), args.repeats, args.image_epochs, args.image_backends.split(","))
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end ({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
