"""Pretrained musicnn (MSD) embeddings + SVM against the Kaggle GTZAN features + SVM.

Both feature sets are extracted from the same audio, one row per 3-s segment
(``featx extract --preset musicnn-msd`` and ``--preset gtzan``), and each table gets
the same ``svm`` with the same track-grouped 5-fold cross-validation (a track's
segments never straddle training and test rows), repeated with several seeds. The
table gives segment- and track-level accuracy: the out-of-fold accuracy over all
rows (pooled), mean over seeds, with the range of the per-seed values, and the mean
and standard deviation over the folds (mean over seeds), with the number of rows
and tracks. A genre with fewer tracks than folds cannot be learnt by the folds that
test it: with ``--genres all`` on the shared clips, seven genres have one track each,
so at most 15 of the 22 tracks can be right.

Published anchor, for a user with the full collection: on the fault-filtered GTZAN
split, musicnn (MSD) embeddings + SVM reach 77.2% accuracy where MFCC + SVM reach
53.4% (Pons and Serra, musicnn, ISMIR 2019 LBD).

    python bench/musicnn_vs_gtzan.py                              # ../shared/data/gtzan/audio
    python bench/musicnn_vs_gtzan.py GTZAN/genres --genres all --seeds 3 --work /tmp/emb

AUDIO_DIR holds one folder per genre (``genre/track.wav``). Needs the musicnn
package for the network's weights: ``pip install --no-deps musicnn==0.1.0``.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DEFAULT_AUDIO = Path(os.environ.get("FEATX_SHARED_DATA", HERE.parent.parent / "shared" / "data")) / "gtzan" / "audio"
PRESETS = (("gtzan", "Kaggle GTZAN features (57)"), ("musicnn-msd", "musicnn MSD: 200 emb + 50 tags"))
ANCHOR = ("published (fault-filtered split, full GTZAN): musicnn (MSD) embeddings + SVM 77.2%, "
          "MFCC + SVM 53.4%")


def _genre_dirs(audio: Path, genres: str) -> list[Path]:
    dirs = sorted(p for p in audio.iterdir() if p.is_dir())
    if genres != "all":
        wanted = genres.split(",")
        missing = [g for g in wanted if not (audio / g).is_dir()]
        if missing:
            raise SystemExit(f"{audio}: no folder for genre(s) {', '.join(missing)}")
        dirs = [audio / g for g in wanted]
    return dirs


def _evaluate(table, seeds: int, folds: int) -> dict:
    from featx.training.config import TrainConfig
    from featx.training.cv import cross_validate

    runs = []
    for seed in range(seeds):
        config = TrainConfig(model="svm", split="track", folds=folds, seed=seed, refit=False)
        result = cross_validate(table, config, progress=False)
        runs.append({level: (result.metrics[level]["pooled"]["accuracy"], result.metrics[level]["accuracy"],
                             result.metrics[level]["std"]["accuracy"], result.metrics[level]["n"])
                     for level in ("segment", "track")})
    out = {}
    for level in ("segment", "track"):
        pooled = [r[level][0] for r in runs]
        out[level] = {"pooled": sum(pooled) / len(runs), "low": min(pooled), "high": max(pooled),
                      "fold_mean": sum(r[level][1] for r in runs) / len(runs),
                      "fold_sd": sum(r[level][2] for r in runs) / len(runs), "n": runs[0][level][3]}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("audio", nargs="?", type=Path, default=DEFAULT_AUDIO,
                        help="folder of genre folders (default: the shared GTZAN clips)")
    parser.add_argument("--genres", default="classical,jazz,rock",
                        help="comma-separated genre folders, or 'all' (default: the three genres "
                             "with five clips each in the shared data)")
    parser.add_argument("--seeds", type=int, default=5, help="repetitions of the 5-fold split")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("-j", "--jobs", type=int, default=1)
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for the two CSVs (kept; a rerun reuses them)")
    args = parser.parse_args(argv)

    from featx.data.table import read_feature_csv
    from featx.errors import FeatxError
    from featx.extract.runner import run_extraction
    from featx.features.settings import FeatureSettings

    inputs = _genre_dirs(args.audio, args.genres)
    work = args.work or Path(tempfile.mkdtemp(prefix="musicnn-vs-gtzan-"))
    rows = []
    try:
        for preset, description in PRESETS:
            csv = work / f"{preset}.csv"
            start = time.perf_counter()
            result = run_extraction(inputs, csv, settings=FeatureSettings(preset=preset), jobs=args.jobs,
                                    progress=False)
            seconds = time.perf_counter() - start
            if result.errors:
                print(f"{preset}: {len(result.errors)} file(s) skipped, see {result.errors_path}", file=sys.stderr)
            table = read_feature_csv(csv)
            metrics = _evaluate(table, args.seeds, args.folds)
            rows.append((description, metrics, seconds))
            print(f"{preset}: {table.n_rows} rows, extracted in {seconds:.0f} s", file=sys.stderr, flush=True)
    except FeatxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    n_tracks = rows[0][1]["track"]["n"]
    print(f"\n{n_tracks} tracks of {len(inputs)} genre(s) ({', '.join(p.name for p in inputs)}); svm, "
          f"track-grouped {args.folds}-fold CV, {args.seeds} seed(s)\n")
    print("| features | segment accuracy | track accuracy | rows / tracks |")
    print("|---|---|---|---|")
    for description, m, _ in rows:
        cells = [f"{m[lv]['pooled']:.3f} (seeds {m[lv]['low']:.3f}-{m[lv]['high']:.3f}; "
                 f"folds {m[lv]['fold_mean']:.3f} ± {m[lv]['fold_sd']:.3f})" for lv in ("segment", "track")]
        print(f"| {description} | {cells[0]} | {cells[1]} | {m['segment']['n']} / {m['track']['n']} |")
    print(f"\n{ANCHOR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
