"""Training speed of featx's Keras models: seconds per epoch and samples per second.

Runs with whatever Keras backend is configured (``KERAS_BACKEND=jax`` etc.) and
on whatever device it sees; prints one Markdown table. The first model is the
baseline each row's ratio refers to. Table models (mlp, lstm, cnn) train on the
GTZAN 30-s table (random rows when it is absent); the spectrogram models (cnn2d,
cnn2d-base, mfcc-cnn, multihead) on synthetic images of the default store shapes
(mel 128x130, MFCC 20x130, chroma 12x130; ``--image-size`` to change), held in
memory, so neither audio nor TensorFlow is needed. Each fit runs
``steps_per_execution`` steps per call (``featx.runtime.keras.steps_per_execution``
unless ``--steps-per-execution`` is given).

With ``--compare-cpu N`` the same models are also timed, in one run, in a child
process that sees no accelerator and runs on N CPU cores (default 2), and a
second table gives the accelerator's speed-up per epoch side by side. On a
machine without an accelerator both sides run on the CPU and the table says so.

    python bench/bench_train.py                       # GTZAN 30-s table if present
    KERAS_BACKEND=jax python bench/bench_train.py --epochs 5 --batch-size 64
    KERAS_BACKEND=jax python bench/bench_train.py --compare-cpu 2 --accel-batch-size 256 \
        --models mlp,lstm,cnn2d,multihead
    KERAS_BACKEND=jax python bench/bench_train.py --models cnn2d,multihead --image-rows 64 \
        --image-size 64x64 --epochs 1 --compare-cpu 2          # a quick check on any machine
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


IMAGE_MODELS = ("cnn2d", "cnn2d-base", "mfcc-cnn", "multihead")


def load_data(path: Path | None, rows: int):
    if path is not None and path.exists():
        from featx.data.table import read_feature_csv
        from featx.models.preprocessing import Preprocessing

        table = read_feature_csv(path)
        prep = Preprocessing.for_labels(table.feature_columns, table.labels, log_variances=True)
        prep = prep.fit(table.X)
        return prep.transform(table.X), prep.encode(table.labels), len(prep.classes), str(path)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, 57)).astype("float32")
    return X, rng.integers(0, 10, rows), 10, f"random ({rows} x 57)"


def image_data(model: str, rows: int, size: str | None, num_classes: int = 10):
    """Synthetic standardised images of the kinds ``model`` reads, one array per kind.

    Shapes are the default store's (``SpectrogramSettings()``) or ``size`` (``HxW``) for
    every kind; each genre shifts its images' mean a little, so the loss falls.
    """
    from featx.features.spectrograms import SpectrogramSettings
    from featx.models.registry import get_model

    kinds = get_model(model).image_kinds()
    settings = SpectrogramSettings()
    fixed = tuple(int(v) for v in size.lower().split("x")) if size else None
    rng = np.random.default_rng(0)
    y = rng.integers(0, num_classes, rows)
    x = {kind: (rng.normal(size=(rows, *(fixed or settings.image_shape(kind)))) + 0.1 * y[:, None, None])
         .astype("float32") for kind in kinds}
    return x if len(kinds) > 1 else x[kinds[0]], y


def _rows(x) -> int:
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


def _shape(x):
    return {k: v.shape[1:] for k, v in x.items()} if isinstance(x, dict) else x.shape[1:]


def time_model(name: str, X, y, num_classes: int, *, epochs: int, batch_size: int, spe=None) -> dict:
    import keras

    from featx.runtime.keras import steps_per_execution
    from featx.models.registry import get_model
    from featx.models.keras_fit import seed_everything

    spec = get_model(name)
    if keras.backend.backend() == "jax":
        import jax

        if jax.default_backend() != "cpu":  # keep the whole data set on the device
            X, y = jax.device_put(X), jax.device_put(y)
    n = _rows(X)
    spe = int(spe) if spe else steps_per_execution(-(-n // batch_size))
    seed_everything(0)
    model = spec.build(_shape(X), num_classes, **spec.resolve({}))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  steps_per_execution=spe)
    model.fit(X, y, epochs=1, batch_size=batch_size, verbose=0)  # compile/trace once
    start = time.perf_counter()
    model.fit(X, y, epochs=epochs, batch_size=batch_size, verbose=0)
    seconds = (time.perf_counter() - start) / epochs
    model.predict(X, batch_size=256, verbose=0)  # trace the prediction function once
    start = time.perf_counter()
    model.predict(X, batch_size=256, verbose=0)
    infer = time.perf_counter() - start
    return {"model": name, "params": model.count_params(), "epoch_s": seconds,
            "train_samples_s": n / seconds, "predict_samples_s": n / infer,
            "backend": keras.backend.backend(), "batch_size": batch_size, "rows": n, "spe": spe}


def time_models(args, table) -> list[dict]:
    """Every model of ``--models``: table models on ``table``, image models on synthetic images."""
    X, y, k, _ = table
    results = []
    for name in (m.strip() for m in args.models.split(",")):
        if name in IMAGE_MODELS:
            x_img, y_img = image_data(name, args.image_rows, args.image_size)
            results.append(time_model(name, x_img, y_img, 10, epochs=args.epochs, batch_size=args.batch_size,
                                      spe=args.steps_per_execution))
        else:
            results.append(time_model(name, X, y, k, epochs=args.epochs, batch_size=args.batch_size,
                                      spe=args.steps_per_execution))
    return results


def cpu_child(args, cores: int) -> tuple[str, list[dict]]:
    """Time the models in a child process that sees no accelerator and ``cores`` CPU cores."""
    import json
    import subprocess

    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", JAX_PLATFORMS="cpu", HIP_VISIBLE_DEVICES="",
               OMP_NUM_THREADS=str(cores), TF_NUM_INTRAOP_THREADS=str(cores),
               TF_NUM_INTEROP_THREADS="1",
               XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=true").strip())
    cmd = [sys.executable, __file__, "--json", "--cores", str(cores), "--csv", str(args.csv),
           "--rows", str(args.rows), "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
           "--models", args.models, "--image-rows", str(args.image_rows)]
    cmd += ["--image-size", args.image_size] if args.image_size else []
    cmd += ["--steps-per-execution", str(args.steps_per_execution)] if args.steps_per_execution else []
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"the CPU run failed:\n{done.stderr[-2000:]}")
    record = json.loads(done.stdout.strip().splitlines()[-1])
    return record["device"], record["results"]


def pin_cores(cores: int) -> None:
    """Run this process (and the threads it starts) on the first ``cores`` CPUs it may use."""
    allowed = sorted(os.sched_getaffinity(0))
    if cores > len(allowed):
        sys.exit(f"--cores {cores}: this machine lets the process use only {len(allowed)} cores")
    os.sched_setaffinity(0, allowed[:cores])


def shared_data() -> Path:
    """``$FEATX_SHARED_DATA``, else ``shared/data`` beside the checkout (or beside its parent folder)."""
    if os.environ.get("FEATX_SHARED_DATA"):
        return Path(os.environ["FEATX_SHARED_DATA"])
    root = Path(__file__).resolve().parents[1]
    near = [folder / "shared" / "data" for folder in (root.parent, root.parent.parent)]
    return next((p for p in near if p.exists()), near[0])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=shared_data() / "gtzan" / "features_30_sec.csv")
    parser.add_argument("--rows", type=int, default=1000, help="rows of random data when no CSV")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--models", default="mlp,lstm,cnn2d,multihead",
                        help=f"table models and image models ({', '.join(IMAGE_MODELS)})")
    parser.add_argument("--image-rows", type=int, default=256, help="synthetic images per image model")
    parser.add_argument("--image-size", default=None, metavar="HxW",
                        help="one image size for every kind (default: the store's, mel 128x130 ...)")
    parser.add_argument("--steps-per-execution", type=int, default=None, metavar="N",
                        help="training steps per call (default: featx.runtime.keras.steps_per_execution)")
    parser.add_argument("--compare-cpu", type=int, nargs="?", const=2, default=None, metavar="N",
                        help="also time the models on N CPU cores with no accelerator (default 2) "
                             "and print the per-epoch speed-up")
    parser.add_argument("--accel-batch-size", type=int, default=None,
                        help="batch size of the main run when comparing (default: --batch-size)")
    parser.add_argument("--cores", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.compare_cpu is not None and args.compare_cpu < 1:
        parser.error(f"--compare-cpu expects a number of cores >= 1. Received: {args.compare_cpu}")
    if args.cores:
        pin_cores(args.cores)

    from featx.models.keras_fit import describe_device

    table = load_data(args.csv, args.rows)
    X, source = table[0], table[3]
    device = describe_device()
    if args.json:
        import json

        print(json.dumps({"device": device, "results": time_models(args, table)}))
        return
    cpu = cpu_child(args, args.compare_cpu) if args.compare_cpu else None
    if args.accel_batch_size and cpu is not None:
        args.batch_size = args.accel_batch_size
    images = args.image_size or "the store's default shapes"
    print(f"data: {source}, {len(X)} samples; image models: {args.image_rows} synthetic images ({images}); "
          f"batch {args.batch_size}; {args.epochs} timed epochs")
    print(f"device: {device}; machine: {platform.machine()}, {os.cpu_count()} CPU cores; "
          f"python {platform.python_version()}")
    results = time_models(args, table)
    base = results[0]
    print()
    print(f"| model | parameters | samples | steps per execution | s/epoch | train samples/s | predict samples/s "
          f"| epoch time vs {base['model']} |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['model']} | {r['params']:,} | {r['rows']} | {r['spe']} | {r['epoch_s']:.3f} | "
              f"{r['train_samples_s']:,.0f} | {r['predict_samples_s']:,.0f} | {r['epoch_s'] / base['epoch_s']:.1f}x |")
    if cpu is None:
        return
    cpu_device, cpu_results = cpu
    print()
    print(f"side by side: {device} (batch {args.batch_size}) vs {cpu_device} on {args.compare_cpu} "
          f"CPU cores (batch {cpu_results[0]['batch_size']}), no accelerator")
    if device.endswith("/cpu"):
        print("note: no accelerator was seen, so both columns ran on the CPU")
    print()
    print(f"| model | {args.compare_cpu}-core CPU s/epoch | {device} s/epoch | speed-up per epoch |")
    print("|---|---|---|---|")
    for r, c in zip(results, cpu_results):
        print(f"| {r['model']} | {c['epoch_s']:.3f} | {r['epoch_s']:.3f} | {c['epoch_s'] / r['epoch_s']:.1f}x |")


if __name__ == "__main__":
    main()
