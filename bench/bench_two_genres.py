"""Two-genre songs: are both genres found in medleys and mixes of held-out tracks?

The material is the classical, jazz and rock clips of the shared GTZAN audio (five per
genre) and the Kaggle 3-s rows of those genres (``features_3_sec.classical_jazz_rock.csv``).
The clips are split by number: ``--test`` clips per genre (``.00002``-``.00004`` by
default) are held out and blended (``featx blend``: every medley and every mix of two
test clips of different genres); the rest (``.00000``, ``.00001``) are training tracks
whose mixes may join the training data. Every model is trained on the 3-s table minus
the held-out tracks, so no blended track was seen in training.

Models (svm; ``--models`` adds others):

* ``single``: one genre per row, as trained by default; a file's segments are pooled
  with ``--aggregate vote`` (genres: each genre winning at least ``min_share`` of the
  segments) and ``max``;
* ``multi``: ``--multi-label`` on the same rows (every row one genre), pooled with ``mean``
  (the bundle's per-genre thresholds) and ``vote``: what multi-label training gives
  without blends;
* ``multi+mixes``: ``--multi-label``, trained on the same rows plus the 3-s rows featx
  extracts from mixes of the training clips (``featx blend --kind mix`` on the
  training side only, labelled ``A;B``); pooled with ``mean`` (the bundle's per-genre
  thresholds) and ``vote``.

For each, medleys and mixes separately: ``both found`` (A and B among the predicted
genres; others may be there too), ``subset acc`` (the predicted genres are exactly
{A, B}), with 95% bootstrap intervals over blends. Blends share source clips (nine
clips make every blend), so the effective sample is smaller than n.

    python bench/bench_two_genres.py
    python bench/bench_two_genres.py --models svm mlp --min-share 0.2
    python bench/bench_two_genres.py --trainings multi
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

GENRES = ("classical", "jazz", "rock")


def run_featx(*args) -> None:
    """Run the featx command line in a subprocess (as a user would)."""
    done = subprocess.run([sys.executable, "-m", "featx", "-q", *map(str, args)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"featx {' '.join(map(str, args))} failed:\n{done.stderr[-3000:]}")


def bootstrap(values: np.ndarray, *, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n, len(values)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def copy_clips(audio: Path, folder: Path, numbers: list[int]) -> list[str]:
    """Copy the clips ``<genre>.000NN.wav`` into ``folder/<genre>/``; their track names."""
    names = []
    for genre in GENRES:
        (folder / genre).mkdir(parents=True)
        for k in numbers:
            name = f"{genre}.{k:05d}.wav"
            shutil.copy(audio / genre / name, folder / genre / name)
            names.append(name)
    return names


def score(frame: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Per blend: kind, both found, exact set."""
    truth = labels.set_index("file")
    rows = []
    for _, row in frame.iterrows():
        name = Path(str(row["file"])).name
        pair = set(str(truth.loc[name, "label"]).split(";"))
        found = {g for g in str(row["genres"]).split(";") if g}
        rows.append({"kind": truth.loc[name, "kind"], "both": pair <= found, "exact": pair == found})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("FEATX_SHARED_DATA", "../shared/data")))
    parser.add_argument("--models", nargs="+", default=["svm"])
    parser.add_argument("--test", nargs="+", type=int, default=[2, 3, 4], help="clip numbers held out and blended")
    parser.add_argument("--train-clips", nargs="+", type=int, default=[0, 1], help="clip numbers mixed for training")
    parser.add_argument("--min-share", type=float, default=0.25)
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--trainings", nargs="+", default=["single", "multi", "multi+mixes"],
                        choices=["single", "multi", "multi+mixes"])
    args = parser.parse_args()

    import featx

    gtzan = args.data / "gtzan"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        held = copy_clips(gtzan / "audio", work / "test_clips", args.test)
        copy_clips(gtzan / "audio", work / "train_clips", args.train_clips)
        table = pd.read_csv(gtzan / "features_3_sec.classical_jazz_rock.csv")
        track = table["filename"].str.rsplit(".", n=2).str[0] + ".wav"
        train = table[~track.isin(held)]
        train.to_csv(work / "train.csv", index=False)
        n_test = len(args.test) ** 2 * len(GENRES) * (len(GENRES) - 1)
        run_featx("blend", work / "test_clips", "-o", work / "test_blends", "--pairs", n_test, "--kind", "both")
        n_train = len(args.train_clips) ** 2 * len(GENRES) * (len(GENRES) - 1)
        run_featx("blend", work / "train_clips", "-o", work / "train_blends", "--pairs", n_train, "--kind", "mix",
              "--seed", 1)
        run_featx("extract", work / "train_blends", "-o", work / "train_mixes.csv", "--preset", "gtzan",
              "--labels", work / "train_blends" / "labels.csv")
        mixes = pd.read_csv(work / "train_mixes.csv")
        pd.concat([train, mixes[train.columns]], ignore_index=True).to_csv(work / "train_multi.csv", index=False)
        labels = pd.read_csv(work / "test_blends" / "labels.csv")
        blends = sorted((work / "test_blends").glob("*.wav"))
        print(f"training rows: {len(train)} ({len(held)} held-out tracks removed); training mixes: "
              f"{mixes['filename'].str.rsplit('.', n=2).str[0].nunique()} ({len(mixes)} rows); test blends: "
              f"{(labels['kind'] == 'medley').sum()} medleys, {(labels['kind'] == 'mix').sum()} mixes; "
              f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
        print(f"{'model':<6} {'training':<12} {'pooling':<8} {'kind':<7} {'n':>3} {'both found':>11} "
              f"{'95% CI':>14} {'subset acc':>11} {'95% CI':>14}")
        for model in args.models:
            for training, csv, extra, poolings in (("single", "train.csv", [], ("vote", "max")),
                                                   ("multi", "train.csv", ["--multi-label"], ("mean", "vote")),
                                                   ("multi+mixes", "train_multi.csv", ["--multi-label"],
                                                    ("mean", "vote"))):
                if training not in args.trainings:
                    continue
                bundle_dir = work / f"{model}-{training}"
                run_featx("train", work / csv, "-m", model, "--folds", args.folds, "--loudness", "normalise", *extra,
                          "-o", bundle_dir)
                bundle = featx.load_bundle(bundle_dir)
                for pooling in poolings:
                    frame = bundle.predict_audio(blends, aggregate=pooling, min_share=args.min_share)
                    scored = score(frame, labels)
                    for kind in ("medley", "mix"):
                        part = scored[scored["kind"] == kind]
                        both, exact = part["both"].to_numpy(float), part["exact"].to_numpy(float)
                        b_lo, b_hi = bootstrap(both)
                        e_lo, e_hi = bootstrap(exact)
                        print(f"{model:<6} {training:<12} {pooling:<8} {kind:<7} {len(part):>3} {both.mean():>11.3f} "
                              f"{f'[{b_lo:.2f}, {b_hi:.2f}]':>14} {exact.mean():>11.3f} "
                              f"{f'[{e_lo:.2f}, {e_hi:.2f}]':>14}", flush=True)


if __name__ == "__main__":
    main()
