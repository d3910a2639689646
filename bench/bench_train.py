"""Training speed of the lstm and mlp models: seconds per epoch and samples per second.

Runs with whatever Keras backend is configured (``KERAS_BACKEND=jax`` etc.) and
on whatever device it sees; prints one Markdown table. The mlp is the baseline
each row's ratio refers to.

    python bench/bench_train.py                       # GTZAN 30-s table if present
    KERAS_BACKEND=jax python bench/bench_train.py --epochs 5 --batch-size 64
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def load_data(path: Path | None, rows: int):
    if path is not None and path.exists():
        from featx.dataset import read_feature_csv
        from featx.training import Preprocessing

        table = read_feature_csv(path)
        prep = Preprocessing.for_labels(table.feature_columns, table.labels, log_variances=True)
        prep = prep.fit(table.X)
        return prep.transform(table.X), prep.encode(table.labels), len(prep.classes), str(path)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, 57)).astype("float32")
    return X, rng.integers(0, 10, rows), 10, f"random ({rows} x 57)"


def time_model(name: str, X, y, num_classes: int, *, epochs: int, batch_size: int) -> dict:
    import keras

    from featx.registry import get_model
    from featx.training import seed_everything

    spec = get_model(name)
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
            "backend": keras.backend.backend()}


def main(argv=None) -> None:
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "gtzan" / "features_30_sec.csv"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=Path(os.environ.get("FEATX_SHARED_DATA", default.parents[1]))
                        / "gtzan" / "features_30_sec.csv")
    parser.add_argument("--rows", type=int, default=1000, help="rows of random data when no CSV")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--models", default="mlp,lstm")
    args = parser.parse_args(argv)

    from featx.training import describe_device

    X, y, k, source = load_data(args.csv, args.rows)
    device = describe_device()
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


if __name__ == "__main__":
    main()
