"""Training speed and peak memory of the spectrogram models: a store, and one 8 times larger.

Builds a store (mel, MFCC and chroma of 3-s segments) from an audio folder with
featx's library, then a second store holding the same images written 8 times
under other track ids. Each measurement runs in a fresh Python process that
trains one model for ``--epochs`` epochs on every row of one store, reading
batches from disk (featx's ``PyDataset`` over store rows), and reports

* training samples/s of the last epoch (the first one also traces the graph), and
* the process's peak resident memory (``resource.getrusage(...).ru_maxrss``).

Side by side, the same training on the 8x store with all its images first read
into memory (what training from NumPy arrays would need) is the baseline whose
memory grows with the data. Ratios 8x/1x are printed.

    python bench/bench_train_spectro.py                       # ../shared/data audio
    python bench/bench_train_spectro.py --models cnn2d --epochs 3
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = ["cnn2d", "cnn2d-base", "mfcc-cnn", "multihead"]


def _worker(store_path: str, model: str, epochs: int, batch_size: int, in_memory: bool) -> dict:
    """Train ``model`` on every row of the store; samples/s of the last epoch and peak RSS."""
    import resource

    import numpy as np

    from featx.runtime.keras import import_keras
    from featx.data.store_table import StoreTable
    from featx.models.registry import get_model
    from featx.training.config import TrainConfig
    from featx.training.images import image_setup, store_batches
    from featx.training.schedules import compile_options

    keras = import_keras()
    table = StoreTable(store_path)
    spec = get_model(model)
    config = TrainConfig(model=model, epochs=epochs, batch_size=batch_size, folds=1, patience=0,
                         valid_fraction=0.0).validate()
    prep0, y, _ = image_setup(table, spec, config)
    rows = np.arange(table.n_rows)
    prep = prep0.fit(table.store, rows)
    keras.utils.set_random_seed(0)
    shapes = prep.shapes if len(prep.kinds) > 1 else prep.shapes[prep.kinds[0]]
    net = spec.build(shapes, len(prep.classes), activation=prep.labels.activation, **config.params)
    if in_memory:  # the baseline: every image in memory, then fit on arrays
        x = prep.model_input(table.store.read(rows, prep.kinds))
        data, steps = {"x": x, "y": y, "batch_size": batch_size, "shuffle": True}, -(-len(rows) // batch_size)
    else:
        batches = store_batches(table.store, rows, y, prep, batch_size=batch_size, shuffle=True, seed=0)
        data, steps = {"x": batches}, len(batches)
    kwargs, callbacks = compile_options(config, prep.labels, steps, "loss")
    net.compile(**kwargs)
    times = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    net.fit(**data, epochs=epochs, verbose=0, callbacks=[*callbacks, Clock()])
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"rows": int(len(rows)), "samples_per_s": len(rows) / times[-1], "epoch_seconds": times,
            "peak_mib": peak_kib / 1024, "params": int(net.count_params())}


def measure(store: Path, model: str, epochs: int, batch_size: int, in_memory: bool = False) -> dict:
    """Run :func:`_worker` in a fresh interpreter (so that ru_maxrss is this run's alone)."""
    code = ("import json, sys; sys.path.insert(0, %r); from bench.bench_train_spectro import _worker; "
            "print('RESULT ' + json.dumps(_worker(%r, %r, %d, %d, %r)))"
            % (str(ROOT), str(store), model, epochs, batch_size, in_memory))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{model} on {store} failed:\n{proc.stderr[-2000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def replicate(source: Path, target: Path, times: int) -> None:
    """Write every segment of ``source`` ``times`` times into a new store, under other track ids."""
    from featx.data.store import StoreWriter, open_store

    src = open_store(source)
    rows = src.rows
    with StoreWriter(target, src.settings) as writer:
        for copy in range(times):
            for key in dict.fromkeys(rows["track"]):
                idx = rows.index[rows["track"] == key].to_numpy()
                first = rows.iloc[idx[0]]
                track = f"{key}-copy{copy}"
                writer.append(src.read(idx), key=f"{track}.wav", filename=f"{Path(track).name}.wav",
                              label=first["label"], length=int(first["length"]), track=track)


def main(argv=None) -> None:
    shared = Path(os.environ.get("FEATX_SHARED_DATA", ROOT.parent / "shared" / "data"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("audio", nargs="?", type=Path, default=shared / "gtzan" / "audio")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--epochs", type=int, default=2, help="epochs per run (the last one is timed)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--scale", type=int, default=8, help="how many copies the larger store holds")
    parser.add_argument("--memory-model", default="cnn2d", help="model of the memory comparison")
    parser.add_argument("--memory-epochs", type=int, default=1, help="epochs of each memory run")
    args = parser.parse_args(argv)

    from featx.extract.spectro_runner import run_spectrograms
    from featx.features.spectrograms import SpectrogramSettings

    with tempfile.TemporaryDirectory(prefix="featx-bench-") as tmp:
        small, large = Path(tmp) / "store", Path(tmp) / f"store-x{args.scale}"
        run_spectrograms([args.audio], small, settings=SpectrogramSettings(), progress=False)
        replicate(small, large, args.scale)
        size = {p: sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) / 2**20 for p in (small, large)}
        print(f"stores: {small.name} {size[small]:.1f} MiB on disk, {large.name} {size[large]:.1f} MiB; "
              f"{os.cpu_count()} CPU cores visible; batch {args.batch_size}; fresh process per run\n")

        print("| model | parameters | rows | training samples/s (CPU) |")
        print("|---|---|---|---|")
        for model in args.models.split(","):
            r = measure(small, model, args.epochs, args.batch_size)
            print(f"| {model} | {r['params']:,} | {r['rows']} | {r['samples_per_s']:.1f} |", flush=True)

        m, e = args.memory_model, args.memory_epochs
        one = measure(small, m, e, args.batch_size)
        eight = measure(large, m, e, args.batch_size)
        one_mem = measure(small, m, e, args.batch_size, in_memory=True)
        eight_mem = measure(large, m, e, args.batch_size, in_memory=True)
        print(f"\npeak memory of training {m} ({e} epoch(s)), ru_maxrss of a fresh process:\n")
        print(f"| training from | store ({one['rows']} rows) | {args.scale}x store ({eight['rows']} rows) | "
              f"ratio {args.scale}x / 1x |")
        print("|---|---|---|---|")
        print(f"| featx: batches read from the store | {one['peak_mib']:.0f} MiB | {eight['peak_mib']:.0f} MiB | "
              f"{eight['peak_mib'] / one['peak_mib']:.2f} |")
        print(f"| baseline: all images in memory | {one_mem['peak_mib']:.0f} MiB | "
              f"{eight_mem['peak_mib']:.0f} MiB | {eight_mem['peak_mib'] / one_mem['peak_mib']:.2f} |")


if __name__ == "__main__":
    main()
