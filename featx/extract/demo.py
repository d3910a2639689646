"""A synthetic labelled corpus, so that featx can be tried with nothing downloaded.

Three "genres" whose differences the features should show:

* ``drone``: sustained chords of harmonic tones (low centroid, strong chroma peaks,
  almost no percussive energy);
* ``beats``: noise-burst drum hits on a steady grid at a known tempo (strong onsets,
  high zero-crossing rate, percussive energy);
* ``arpeggio``: plucked notes of a scale with decaying envelopes (between the two).
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..features.settings import FeatureSettings
from ..io.atomic import atomic_write
from ..io.guard import claim_folder, make_folder
from .runner import run_extraction

GENRES = ("drone", "beats", "arpeggio")
SR = 22050


def drone(rng, seconds: float, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    root = rng.choice([110.0, 130.81, 146.83, 164.81])
    y = np.zeros_like(t)
    for ratio in (1.0, 1.25, 1.5):
        for k in range(1, 6):
            y += np.sin(2 * np.pi * root * ratio * k * t + rng.uniform(0, 2 * np.pi)) / k
    return 0.15 * y * (0.8 + 0.2 * np.sin(2 * np.pi * 0.25 * t))


def beats(rng, seconds: float, sr: int = SR, bpm: float | None = None) -> np.ndarray:
    bpm = bpm or rng.choice([90.0, 120.0, 140.0])
    n = int(seconds * sr)
    y = np.zeros(n)
    hit = int(0.08 * sr)
    env = np.exp(-np.arange(hit) / (0.015 * sr))
    for onset in np.arange(0, seconds, 60.0 / bpm):
        i = int(onset * sr)
        m = min(hit, n - i)
        y[i : i + m] += rng.standard_normal(m) * env[:m]
    return 0.4 * y


def arpeggio(rng, seconds: float, sr: int = SR) -> np.ndarray:
    n = int(seconds * sr)
    y = np.zeros(n)
    note = int(0.25 * sr)
    scale = 220.0 * 2 ** (np.array([0, 2, 4, 5, 7, 9, 11, 12]) / 12)
    t = np.arange(note) / sr
    env = np.exp(-t / 0.12)
    for start in range(0, n, note):
        f = rng.choice(scale)
        m = min(note, n - start)
        tone = np.sin(2 * np.pi * f * t) + 0.3 * np.sin(4 * np.pi * f * t)
        y[start : start + m] += (tone * env)[:m]
    return 0.3 * y


_MAKERS = {"drone": drone, "beats": beats, "arpeggio": arpeggio}


def write_corpus(folder, *, clips_per_genre: int = 4, seconds: float = 6.5, seed: int = 0) -> list[Path]:
    """Write ``folder/<genre>/<genre>.0000k.wav`` clips (16-bit, 22050 Hz, mono).

    Folders are created with featx's marker and files written atomically
    (:mod:`featx.io.guard`, :mod:`featx.io.atomic`).
    """
    import soundfile as sf  # libsndfile: only when audio is read or written


    rng = np.random.default_rng(seed)
    paths = []
    for genre in GENRES:
        make_folder(Path(folder) / genre)
        for k in range(clips_per_genre):
            y = _MAKERS[genre](rng, seconds)
            y = y + 0.002 * rng.standard_normal(len(y))
            path = Path(folder) / genre / f"{genre}.{k:05d}.wav"
            buffer = io.BytesIO()
            sf.write(buffer, np.clip(y, -1, 1), SR, subtype="PCM_16", format="WAV")
            atomic_write(path, buffer.getvalue())
            paths.append(path)
    return paths


def run_demo(output_dir, *, jobs=None, progress=None, echo=print) -> Path:
    """Synthesise the corpus in ``output_dir/audio`` and extract it to ``features.csv``.

    ``output_dir`` must be new, empty, or a demo folder featx wrote (its files are
    then replaced); any other folder is refused with :class:`~featx.errors.OutputError`.
    """
    import pandas as pd  # pandas: kept off featx extract's path


    output_dir = claim_folder(output_dir, "featx-demo")
    audio = output_dir / "audio"
    paths = write_corpus(audio)
    echo(f"synthesised {len(paths)} clips of {len(GENRES)} genres in {audio}")
    result = run_extraction(
        [audio], output_dir / "features.csv", settings=FeatureSettings(),
        jobs=jobs, overwrite=True, progress=progress,
    )
    table = pd.read_csv(result.output)
    echo(
        f"wrote {len(table)} rows x {table.shape[1]} columns to {result.output} "
        f"in {result.seconds:.1f} s"
    )
    cols = ["spectral_centroid_mean", "zero_crossing_rate_mean", "perceptr_var", "tempo"]
    summary = table.groupby("label")[cols].mean()
    echo("mean of a few features per genre:")
    echo(summary.to_string(float_format=lambda v: f"{v:.4g}"))
    echo("next: featx extract YOUR_AUDIO_FOLDER -o features.csv   (see featx extract --help)")
    return result.output
