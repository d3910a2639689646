"""Does the output say "unsure" for music outside the training genres, and not for GTZAN?

Models are trained on the Kaggle ``features_30_sec.csv`` rows of every track except the
shared audio clips. Then three groups are predicted:

* ``gtzan``: the shared GTZAN clips (held out; the genres the model knows);
* ``synthetic``: sine tones, a chord, a sweep, white, pink and brown noise (30 s each);
* ``soundtrack``: the first 60 s of each track of Debian's ``wesnoth-1.16-music``
  (orchestral game soundtrack, GPL-2+; ``apt install wesnoth-1.16-music``), decoded and
  written to a temporary folder (nothing is kept).

Printed per model and group: n, the share flagged ``uncertain``, the share whose
``distance_pct`` reaches the bundle's ``outside_percentile``, the median ``distance_pct``
and ``confidence``, the most common genre; then how well ``distance_pct`` and
``1 - confidence`` separate gtzan from each other group (AUROC, with a 95% bootstrap
interval over files).

    python bench/bench_outside.py                  # svm and mlp
    python bench/bench_outside.py --models svm --music /usr/share/games/wesnoth/1.16/data/core/music
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import soundfile as sf  # noqa: E402

SR = 22050
MUSIC = Path("/usr/share/games/wesnoth/1.16/data/core/music")


def synthetic(folder: Path) -> None:
    """Tones and noises of 30 s, at about the level of a GTZAN clip."""
    rng = np.random.default_rng(0)
    t = np.arange(30 * SR) / SR
    signals = {
        "sine_220": np.sin(2 * np.pi * 220 * t),
        "sine_1000": np.sin(2 * np.pi * 1000 * t),
        "chord_c_major": sum(np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0)) / 3,
        "sweep_50_8000": np.sin(2 * np.pi * 50 * 30 / np.log(160) * (np.power(160, t / 30) - 1)),
        "white_noise": rng.standard_normal(len(t)),
    }
    spectrum = np.fft.rfft(rng.standard_normal(len(t)))
    f = np.fft.rfftfreq(len(t), 1 / SR)
    f[0] = f[1]
    signals["pink_noise"] = np.fft.irfft(spectrum / np.sqrt(f), len(t))
    signals["brown_noise"] = np.fft.irfft(spectrum / f, len(t))
    folder.mkdir()
    for name, y in signals.items():
        y = 0.1 * y / np.sqrt(np.mean(y ** 2))  # rms 0.1, about a GTZAN clip's
        sf.write(folder / f"{name}.wav", y.astype(np.float32), SR, subtype="FLOAT")


def excerpts(music: Path, folder: Path, seconds: int) -> None:
    folder.mkdir()
    for track in sorted(music.glob("*.ogg")):
        with sf.SoundFile(track) as fh:
            sr = fh.samplerate
            y = fh.read(seconds * sr, dtype="float32", always_2d=True).mean(axis=1)
        sf.write(folder / f"{track.stem}.wav", y, sr, subtype="FLOAT")


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """P(score of an outside file > score of an inside one), ties counted half."""
    diff = outside[:, None] - inside[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def auroc_interval(inside, outside, *, n=2000, seed=0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    values = [auroc(inside[rng.integers(0, len(inside), len(inside))],
                    outside[rng.integers(0, len(outside), len(outside))]) for _ in range(n)]
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("FEATX_SHARED_DATA", "../shared/data")))
    parser.add_argument("--models", nargs="+", default=["svm", "mlp"])
    parser.add_argument("--music", type=Path, default=MUSIC)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--folds", type=int, default=2)
    args = parser.parse_args()
    if not list(args.music.glob("*.ogg")):
        raise SystemExit(f"no .ogg files in {args.music}: apt install wesnoth-1.16-music, or give --music")

    import featx

    gtzan = args.data / "gtzan"
    clips = sorted((gtzan / "audio").rglob("*.wav"))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        table = pd.read_csv(gtzan / "features_30_sec.csv")
        table[~table["filename"].isin({c.name for c in clips})].to_csv(work / "train.csv", index=False)
        synthetic(work / "synthetic")
        excerpts(args.music, work / "soundtrack", args.seconds)
        groups = {"gtzan": clips, "synthetic": sorted((work / "synthetic").iterdir()),
                  "soundtrack": sorted((work / "soundtrack").iterdir())}
        print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
        for model in args.models:
            bundle_dir = work / model
            done = subprocess.run([sys.executable, "-m", "featx", "-q", "train", str(work / "train.csv"), "-m",
                                   model, "--folds", str(args.folds), "--loudness", "normalise", "-o", str(bundle_dir)],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(done.stderr)
            bundle = featx.load_bundle(bundle_dir)
            record = bundle.bundle_.confidence
            frames = {name: bundle.predict_audio(paths) for name, paths in groups.items()}
            outside = float(record["outside_percentile"])
            print(f"\n{model}: uncertain below confidence {record['threshold']:.3f} (temperature "
                  f"{record['temperature']:.3f}; precision {record['precision']} on {record['tracks']} held-out "
                  f"tracks) or at distance_pct >= {outside:g}")
            print(f"{'group':<11} {'n':>3} {'uncertain':>9} {'outside':>8} {'med dist':>9} {'med conf':>9}  "
                  "most common genre")
            for name, frame in frames.items():
                common = frame["genre"].value_counts()
                print(f"{name:<11} {len(frame):>3} {frame['uncertain'].mean():>9.3f} "
                      f"{(frame['distance_pct'] >= outside).mean():>8.3f} {frame['distance_pct'].median():>9.1f} "
                      f"{frame['confidence'].median():>9.3f}  {common.index[0]} ({common.iloc[0]})")
            for name in ("synthetic", "soundtrack"):
                for score, sign in (("distance_pct", 1), ("confidence", -1)):
                    inside = sign * frames["gtzan"][score].to_numpy(float)
                    other = sign * frames[name][score].to_numpy(float)
                    low, high = auroc_interval(inside, other)
                    label = score if sign > 0 else "1 - confidence"
                    print(f"  AUROC gtzan vs {name:<10} by {label:<15} {auroc(inside, other):.3f} "
                          f"[{low:.3f}, {high:.3f}]")


if __name__ == "__main__":
    main()
