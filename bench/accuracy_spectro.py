"""Accuracy of every spectrogram model beside the tabular models, on the same tracks and folds.

From one audio folder (GTZAN layout: <genre>/<track>.wav) this builds, with featx's
own library, a spectrogram store (mel, MFCC and chroma of 3-s segments) and the
``--preset gtzan`` feature table of the same segments, assigns every track to one
of K folds (stratified by genre), and cross-validates each model on exactly those
folds: cnn2d, cnn2d-base, mfcc-cnn and multihead on the store; svm and mlp on the
features. It prints a Markdown table of track-level and segment-level accuracy
(mean ± sd over folds) with the number of tracks.

    python bench/accuracy_spectro.py                                  # ../shared/data audio
    python bench/accuracy_spectro.py /data/gtzan/genres --genres all --epochs 50

The defaults suit the few clips in ../shared/data (classical, jazz and rock:
15 tracks, 5 folds, few epochs); with the full GTZAN audio use ``--genres all`` and
the models' own epochs (``--epochs 0``).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

IMAGE_MODELS = ["cnn2d", "cnn2d-base", "mfcc-cnn", "multihead"]
TABLE_MODELS = ["svm", "mlp"]


def track_folds(tracks_by_genre: dict[str, list[str]], folds: int, seed: int) -> dict[str, int]:
    """Track -> fold number: each genre's tracks dealt round-robin over the folds in a seeded order."""
    rng = np.random.default_rng(seed)
    out = {}
    for genre in sorted(tracks_by_genre):
        tracks = sorted(tracks_by_genre[genre])
        for i, k in enumerate(rng.permutation(len(tracks))):
            out[tracks[k]] = i % folds
    return out


def split_plan(table, assignment: dict[str, int], folds: int):
    """A featx SplitPlan whose folds hold out the tracks ``assignment`` gives them."""
    from featx.data.splits import Fold, SplitPlan

    base = np.array([Path(str(t)).name for t in table.tracks], dtype=object)
    fold_of = np.array([assignment[b] for b in base])
    plan = []
    for k in range(folds):
        test = np.flatnonzero(fold_of == k)
        train = np.flatnonzero(fold_of != k)
        plan.append(Fold(f"fold{k + 1}", train, train[:0], test))
    return SplitPlan("track", plan, base, f"{folds}-fold split by track (the same tracks for every model)")


def main(argv=None) -> None:
    shared = Path(os.environ.get("FEATX_SHARED_DATA",
                                 Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("audio", nargs="?", type=Path, default=shared / "gtzan" / "audio",
                        help="audio folder with one sub-folder per genre")
    parser.add_argument("--genres", default="classical,jazz,rock",
                        help="comma-separated genre folders, or 'all'")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=8,
                        help="epochs of every spectrogram model (0: each model's own default)")
    parser.add_argument("--models", default=",".join(IMAGE_MODELS + TABLE_MODELS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-j", "--jobs", type=int, default=1, help="processes for the store and features")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for the store and the feature CSV [default: a temporary folder]")
    args = parser.parse_args(argv)

    from featx.data.store_table import StoreTable
    from featx.data.table import read_feature_csv
    from featx.extract.runner import run_extraction
    from featx.extract.spectro_runner import run_spectrograms
    from featx.features.settings import FeatureSettings
    from featx.features.spectrograms import SpectrogramSettings
    from featx.training.config import TrainConfig
    from featx.training.cv import cross_validate

    genres = (sorted(p.name for p in args.audio.iterdir() if p.is_dir()) if args.genres == "all"
              else args.genres.split(","))
    inputs = [args.audio / g for g in genres]
    for folder in inputs:
        if not folder.is_dir():
            sys.exit(f"{folder}: no such genre folder; expected {args.audio}/<genre>/<track>.wav")

    with tempfile.TemporaryDirectory(prefix="featx-accuracy-") as tmp:
        work = args.work or Path(tmp)
        start = time.perf_counter()
        store_path, csv_path = work / "store", work / "features.csv"
        run_spectrograms(inputs, store_path, settings=SpectrogramSettings(), jobs=args.jobs, progress=False)
        run_extraction(inputs, csv_path, settings=FeatureSettings(preset="gtzan"), jobs=args.jobs,
                       progress=False)
        made = time.perf_counter() - start
        store, table = StoreTable(store_path), read_feature_csv(csv_path)
        by_genre: dict[str, set] = {}
        for track, label in zip(store.tracks, store.labels):
            by_genre.setdefault(label, set()).add(Path(str(track)).name)
        feature_tracks = {Path(str(t)).name for t in table.tracks}
        store_tracks = set().union(*by_genre.values())
        if feature_tracks != store_tracks:
            sys.exit(f"the store and the feature table hold different tracks: "
                     f"{sorted(feature_tracks ^ store_tracks)[:5]}")
        assignment = track_folds({g: list(t) for g, t in by_genre.items()}, args.folds, args.seed)
        n_tracks = len(assignment)
        print(f"{n_tracks} tracks ({', '.join(f'{g}: {len(t)}' for g, t in sorted(by_genre.items()))}), "
              f"{store.n_rows} segments of 3 s in the store, {table.n_rows} rows in the feature table; "
              f"made in {made:.0f} s")
        epochs = (f"{args.epochs} epochs for every spectrogram model" if args.epochs
                  else "each spectrogram model's own epochs")
        epochs += " (mlp: its own 60)"
        print(f"{args.folds}-fold cross-validation by track (each track tested once, the same folds "
              f"for every model), no validation part, no early stopping, {epochs}; seed {args.seed}\n")

        rows = []
        for model in args.models.split(","):
            data = store if model in IMAGE_MODELS else table
            options = dict(model=model, folds=args.folds, seed=args.seed, refit=False, valid_fraction=0.0,
                           patience=0)
            if args.epochs and model in IMAGE_MODELS:
                options["epochs"] = args.epochs
            config = TrainConfig(**options).validate()
            t0 = time.perf_counter()
            result = cross_validate(data, config, progress=False,
                                    plan=split_plan(data, assignment, args.folds))
            seconds = time.perf_counter() - t0
            track, segment = result.metrics["track"], result.metrics["segment"]
            from featx.models.registry import get_model

            kinds = get_model(model).image_kinds(config.params)
            rows.append((model, f"{'+'.join(kinds)} images" if kinds else "gtzan features (3-s rows)",
                         track["n"], track["accuracy"], track["std"]["accuracy"],
                         segment["accuracy"], segment["std"]["accuracy"], track["f1_macro"], seconds))
            print(f"  {model}: track accuracy {track['accuracy']:.3f} ({seconds:.0f} s)", file=sys.stderr)

    print("| model | input | n tracks | track accuracy | segment accuracy | track macro F1 | time |")
    print("|---|---|---|---|---|---|---|")
    for model, kind, n, acc, sd, seg, seg_sd, f1, seconds in rows:
        print(f"| {model} | {kind} | {n} | {acc:.3f} ± {sd:.3f} | {seg:.3f} ± {seg_sd:.3f} | {f1:.3f} | "
              f"{seconds:.0f} s |")
    low, high = n_tracks // args.folds, -(-n_tracks // args.folds)
    per_fold = f"{low}" if low == high else f"{low}-{high}"
    print(f"\nmean ± sd over {args.folds} folds of {per_fold} tracks each; one track is "
          f"{1 / max(low, 1):.0%} of a fold's track accuracy.")


if __name__ == "__main__":
    main()
