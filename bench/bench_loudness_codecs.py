"""Predictions of held-out GTZAN clips made quieter, louder, or encoded lossily: how many change?

Models are trained on the Kaggle ``features_30_sec.csv`` rows of every track except the
shared audio clips (so every clip predicted here is held out), once with
``--loudness normalise`` and once with
``--loudness as-recorded`` (the level kept as a feature, as featx did before). Each
clip is then predicted as it is and as

* gain: -12 dB and +6 dB (samples scaled in float; +6 dB may exceed full scale, which a
  float array allows);
* codecs: MP3 at 128 and 320 kbit/s (ffmpeg, libmp3lame), Ogg Vorbis at quality 3 and 6
  (ffmpeg libvorbis; on these mono clips about 40 and 58 kbit/s at 22 050 Hz, 80 and 110
  kbit/s at 44 100 Hz), AAC in M4A at 128 and 256 kbit/s
  (ffmpeg's own AAC encoder), each decoded back by featx as a user's file would be;
  encoded at the clips' own 22 050 Hz and at 44 100 Hz (``--rates``), the rate of most
  music users hold (featx resamples it to 22 050 Hz as it does any file).

Printed per model and variant: the share of clips whose genre changed (with a 95%
bootstrap interval over clips), accuracy against the clips' GTZAN labels for the
original and the variant, and how many of the clips whose original prediction was not
marked ``uncertain`` changed genre (changed/sure). Predictions are deterministic; the spread is over clips.

    python bench/bench_loudness_codecs.py                      # svm and mlp, every variant
    python bench/bench_loudness_codecs.py --models svm --only gain
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
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import soundfile as sf  # noqa: E402

GAINS = {"-12 dB": -12.0, "+6 dB": 6.0}
CODECS = {
    "mp3 128k": ("mp3", ["-c:a", "libmp3lame", "-b:a", "128k"]),
    "mp3 320k": ("mp3", ["-c:a", "libmp3lame", "-b:a", "320k"]),
    "ogg q3": ("ogg", ["-c:a", "libvorbis", "-q:a", "3"]),
    "ogg q6": ("ogg", ["-c:a", "libvorbis", "-q:a", "6"]),
    "aac 128k": ("m4a", ["-c:a", "aac", "-b:a", "128k"]),
    "aac 256k": ("m4a", ["-c:a", "aac", "-b:a", "256k"]),
}

#: The clips' own sample rate. MP3 at 22 050 Hz is MPEG-2 Layer III: at most 160 kbit/s
#: (ffmpeg encodes "320k" at 160k) and a low-pass near 10 kHz, inside the band the features
#: describe; music as users hold it is mostly at 44 100 Hz, where the codecs' low-pass lies
#: above 16 kHz. ``--rates`` measures both.
NATIVE_RATE = 22050


def run(*cmd) -> None:
    done = subprocess.run(list(map(str, cmd)), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{done.stderr[-2000:]}")


def bootstrap(values: np.ndarray, *, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean of ``values`` (resampled clips)."""
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n, len(values)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def make_variants(clips: list[Path], work: Path, only: str | None,
                  rates: tuple[int, ...] = (NATIVE_RATE,)) -> dict[str, list[Path]]:
    """Every variant of every clip, written under ``work/<variant>/``; ``original`` first."""
    variants = {"original": clips}
    if only in (None, "gain"):
        for name, db in GAINS.items():
            folder = work / name.replace(" ", "")
            folder.mkdir()
            out = []
            for clip in clips:
                y, sr = sf.read(clip, dtype="float32")
                path = folder / clip.name
                sf.write(path, y * np.float32(10 ** (db / 20)), sr, subtype="FLOAT")
                out.append(path)
            variants[name] = out
    if only in (None, "codec"):
        for rate in rates:
            for codec, (ext, args) in CODECS.items():
                name = codec if rate == NATIVE_RATE else f"{codec} @{rate / 1000:g}k"
                folder = work / name.replace(" ", "_").replace("@", "")
                folder.mkdir()
                out = []
                for clip in clips:
                    path = folder / f"{clip.stem}.{ext}"
                    resample = [] if rate == NATIVE_RATE else ["-ar", str(rate)]
                    run("ffmpeg", "-v", "error", "-y", "-i", clip, *resample, *args, path)
                    out.append(path)
                variants[name] = out
    return variants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("FEATX_SHARED_DATA", "../shared/data")))
    parser.add_argument("--models", nargs="+", default=["svm", "mlp"])
    parser.add_argument("--only", choices=["gain", "codec"], default=None)
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--rates", default=f"{NATIVE_RATE},44100",
                        help="sample rates the codecs encode at, comma-separated (each clip is "
                             "resampled by ffmpeg first; featx decodes and resamples it back)")
    args = parser.parse_args()

    import featx

    gtzan = args.data / "gtzan"
    clips = sorted((gtzan / "audio").rglob("*.wav"))
    truth = np.array([c.name.split(".")[0] for c in clips])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        table = pd.read_csv(gtzan / "features_30_sec.csv")
        train = table[~table["filename"].isin({c.name for c in clips})]
        train.to_csv(work / "train.csv", index=False)
        variants = make_variants(clips, work, args.only, tuple(int(r) for r in args.rates.split(",")))
        print(f"{len(clips)} held-out clips; {len(train)} training rows; machine: {os.cpu_count()} CPUs, "
              f"load {os.getloadavg()[0]:.2f}")
        print(f"{'model':<6} {'loudness':<12} {'variant':<16} {'changed':>8} {'95% CI':>14} {'acc orig':>9} "
              f"{'acc var':>8} {'sure: changed':>14}")
        for model in args.models:
            for loudness in ("normalise", "as-recorded"):
                bundle_dir = work / f"{model}-{loudness}"
                start = time.perf_counter()
                run(sys.executable, "-m", "featx", "-q", "train", work / "train.csv", "-m", model,
                    "--folds", args.folds, "--loudness", loudness, "-o", bundle_dir)
                bundle = featx.load_bundle(bundle_dir)
                cv = json.loads((bundle_dir / "metrics.json").read_text())
                print(f"  ({model}, {loudness}: cross-validated track accuracy on the training rows "
                      f"{cv['track']['accuracy']:.4f} +- {cv['track']['std']['accuracy']:.4f} over folds)")
                genres = {}
                for name, paths in variants.items():
                    frame = bundle.predict_audio(paths)
                    genres[name] = frame["genre"].to_numpy()
                    if name == "original":
                        sure = ~frame["uncertain"].to_numpy(dtype=bool)
                base = genres["original"]
                for name in list(variants)[1:]:
                    changed = (genres[name] != base).astype(float)
                    low, high = bootstrap(changed)
                    # the same share among the clips whose original prediction was not marked uncertain
                    sure_changed = f"{int(changed[sure].sum())}/{int(sure.sum())}"
                    print(f"{model:<6} {loudness:<12} {name:<16} {changed.mean():>8.3f} "
                          f"{f'[{low:.3f}, {high:.3f}]':>14} {(base == truth).mean():>9.3f} "
                          f"{(genres[name] == truth).mean():>8.3f} {sure_changed:>14}", flush=True)
                print(f"  ({model}, {loudness}: trained and predicted in {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
