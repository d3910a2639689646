"""Training speed of the lstm and mlp models: seconds per epoch and samples per second.

Runs with whatever Keras backend is configured (``KERAS_BACKEND=jax`` etc.) and
on whatever device it sees; prints one Markdown table. The mlp is the baseline
each row's ratio refers to.

With ``--compare-cpu N`` the same models are also timed, in one run, in a child
process that sees no accelerator and runs on N CPU cores (default 2), and a
second table gives the accelerator's speed-up per epoch side by side. On a
machine without an accelerator both sides run on the CPU and the table says so.

    python bench/bench_train.py                       # GTZAN 30-s table if present
    KERAS_BACKEND=jax python bench/bench_train.py --epochs 5 --batch-size 64
    KERAS_BACKEND=jax python bench/bench_train.py --compare-cpu 2 --accel-batch-size 256
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


def load_data(path: Path | None, rows: int):
    if path is not None and path.exists():
        from featx.data.table import read_feature_csv
        from featx.training.preprocessing import Preprocessing

        table = read_feature_csv(path)
        prep = Preprocessing.for_labels(table.feature_columns, table.labels, log_variances=True)
        prep = prep.fit(table.X)
        return prep.transform(table.X), prep.encode(table.labels), len(prep.classes), str(path)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, 57)).astype("float32")
    return X, rng.integers(0, 10, rows), 10, f"random ({rows} x 57)"


def time_model(name: str, X, y, num_classes: int, *, epochs: int, batch_size: int) -> dict:
    import keras

    from featx.models.registry import get_model
    from featx.training.fit import seed_everything

    spec = get_model(name)
    if keras.backend.backend() == "jax":
        import jax

        if jax.default_backend() != "cpu":  # keep the whole table on the device
            X, y = jax.device_put(X), jax.device_put(y)
    seed_everything(0)
    model = spec.builder(X.shape[1:], num_classes, **spec.resolve({}))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(X, y, epochs=1, batch_size=batch_size, verbose=0)  # compile/trace once
    start = time.perf_counter()
    model.fit(X, y, epochs=epochs, batch_size=batch_size, verbose=0)
    seconds = (time.perf_counter() - start) / epochs
    start = time.perf_counter()
    model.predict(X, batch_size=256, verbose=0)
    infer = time.perf_counter() - start
    return {"model": name, "params": model.count_params(), "epoch_s": seconds,
            "train_samples_s": len(X) / seconds, "predict_samples_s": len(X) / infer,
            "backend": keras.backend.backend(), "batch_size": batch_size}


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
           "--models", args.models]
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


def main(argv=None) -> None:
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "gtzan" / "features_30_sec.csv"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=Path(os.environ.get("FEATX_SHARED_DATA", default.parents[1]))
                        / "gtzan" / "features_30_sec.csv")
    parser.add_argument("--rows", type=int, default=1000, help="rows of random data when no CSV")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--models", default="mlp,lstm")
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

    from featx.training.fit import describe_device

    X, y, k, source = load_data(args.csv, args.rows)
    device = describe_device()
    if args.json:
        import json

        results = [time_model(m.strip(), X, y, k, epochs=args.epochs, batch_size=args.batch_size)
                   for m in args.models.split(",")]
        print(json.dumps({"device": device, "results": results}))
        return
    cpu = cpu_child(args, args.compare_cpu) if args.compare_cpu else None
    if args.accel_batch_size and cpu is not None:
        args.batch_size = args.accel_batch_size
    print(f"data: {source}; {len(X)} samples; batch {args.batch_size}; {args.epochs} timed epochs")
    print(f"device: {device}; machine: {platform.machine()}, {os.cpu_count()} CPU cores; "
          f"python {platform.python_version()}")
    results = [time_model(m.strip(), X, y, k, epochs=args.epochs, batch_size=args.batch_size)
               for m in args.models.split(",")]
    base = next((r for r in results if r["model"] == "mlp"), results[0])
    print()
    print("| model | parameters | s/epoch | train samples/s | predict samples/s | epoch time vs mlp |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['model']} | {r['params']:,} | {r['epoch_s']:.3f} | {r['train_samples_s']:,.0f} | "
              f"{r['predict_samples_s']:,.0f} | {r['epoch_s'] / base['epoch_s']:.1f}x |")
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
