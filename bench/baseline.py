"""Straightforward per-segment reference extractor for the Kaggle GTZAN feature tables.

This is the *baseline* that faster extractors are benchmarked against: for every
segment it calls the librosa feature functions one after another on the raw
waveform, and every call computes its own STFT, exactly the way a typical
tutorial notebook does it.  It is deliberately simple, not fast.

The settings below reproduce the Kaggle tables ``features_30_sec.csv`` and
``features_3_sec.csv`` (computed circa 2020 with librosa 0.7/0.8) with today's
librosa (>= 0.10).  The old defaults that differ from today's and therefore have
to be requested explicitly are:

* every STFT-based feature (chroma_stft, spectral centroid/bandwidth/rolloff,
  MFCC, HPSS, onset strength) pads the signal with ``pad_mode="reflect"``
  (today's default is ``"constant"``, i.e. zeros);
* ``rms`` also pads its frames with ``pad_mode="reflect"``;
* the harmonic/percussive waveforms are inverted *without* ``length=``: the
  inverse STFT ends at the last full hop and the tail is zero-filled up to the
  input length (old ``librosa.effects.hpss``);
* ``tempo`` is the tempo estimate of ``librosa.beat.beat_track``: onset
  strength aggregated over mel bands with the **median** (not the mean used by
  ``librosa.feature.tempo(y=...)``), then the static tempogram estimate with an
  8-s autocorrelation window and a log-normal prior around 120 BPM;
* every "_var" column is the population variance (``np.var``, ddof=0).

The 3-second table cuts each clip into 3-s windows (66150 samples at 22050 Hz)
starting at ``k * 66150`` and keeps only the first 66149 samples of each window
(hence the table's ``length`` of 66149).  A window is used only while its end
lies strictly inside the clip, so a clip of at most 661500 samples (30.0 s) has
9 segments instead of 10.

Run ``python bench/baseline.py`` to compare this baseline with the Kaggle tables
on the GTZAN clips in ``../shared/data/gtzan`` (or ``--data DIR``).
"""

from __future__ import annotations

import os

import librosa
import numpy as np

# --- Settings ---------------------------------------------------------------

#: Sample rate every clip is loaded at (GTZAN is natively 22050 Hz, so no
#: resampling happens for it).
SAMPLE_RATE = 22050
#: Audio is loaded as mono float32, scaled to [-1, 1) like ``librosa.load``.
AUDIO_DTYPE = np.float32

#: STFT size, hop and window shared by all spectral features.
N_FFT = 2048
HOP_LENGTH = 512
#: Padding of centred frames; "reflect" was librosa's default before 0.10.
PAD_MODE = "reflect"

#: Number of MFCCs (mfcc1 .. mfcc20).
N_MFCC = 20

#: Tempo: onset envelope aggregated across mel bands with the median, as in
#: ``librosa.beat.beat_track``; static tempo with these estimator settings.
TEMPO_ONSET_AGGREGATE = np.median
TEMPO_START_BPM = 120.0
TEMPO_STD_BPM = 1.0
TEMPO_AC_SIZE = 8.0  # seconds -> autocorrelation window of 344 frames
TEMPO_MAX_BPM = 320.0

#: 3-second table: windows start every SEGMENT_HOP samples and each segment
#: keeps SEGMENT_SAMPLES of them (the last sample of each window is dropped).
SEGMENT_HOP = 3 * SAMPLE_RATE  # 66150
SEGMENT_SAMPLES = SEGMENT_HOP - 1  # 66149, the "length" column of the 3-s table

#: Feature columns in Kaggle order (without filename, length and label).
_SPECTRAL = ["spectral_centroid", "spectral_bandwidth", "rolloff"]
COLUMNS = (
    ["chroma_stft_mean", "chroma_stft_var", "rms_mean", "rms_var"]
    + [f"{name}_{stat}" for name in _SPECTRAL for stat in ("mean", "var")]
    + ["zero_crossing_rate_mean", "zero_crossing_rate_var"]
    + ["harmony_mean", "harmony_var", "perceptr_mean", "perceptr_var", "tempo"]
    + [f"mfcc{i}_{stat}" for i in range(1, N_MFCC + 1) for stat in ("mean", "var")]
)

# Keyword arguments shared by every STFT-based librosa call.
_STFT_KW = dict(n_fft=N_FFT, hop_length=HOP_LENGTH, center=True, pad_mode=PAD_MODE)


# --- Feature helpers --------------------------------------------------------


def _mean_var(values: np.ndarray) -> tuple[float, float]:
    """Mean and population variance (ddof=0) over all entries."""
    return float(np.mean(values)), float(np.var(values))


def _harmonic_percussive(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Harmonic and percussive waveforms as the old ``librosa.effects.hpss``.

    The inverse STFT is taken without ``length=``, so it stops at the last
    full hop; the remaining tail is zero-filled back to ``len(y)``.
    """
    spec = librosa.stft(y, **_STFT_KW)
    harm_spec, perc_spec = librosa.decompose.hpss(spec)
    inverse = dict(hop_length=HOP_LENGTH, center=True, dtype=y.dtype)
    harm = librosa.util.fix_length(librosa.istft(harm_spec, **inverse), size=len(y))
    perc = librosa.util.fix_length(librosa.istft(perc_spec, **inverse), size=len(y))
    return harm, perc


def _tempo(y: np.ndarray, sr: int) -> float:
    """Static tempo (BPM) as estimated by the old ``librosa.beat.beat_track``."""
    # The mel spectrogram behind the onset envelope is also reflect-padded.
    onset_env = librosa.onset.onset_strength(
        y=y,
        sr=sr,
        n_fft=N_FFT,
        hop_length=HOP_LENGTH,
        aggregate=TEMPO_ONSET_AGGREGATE,
        pad_mode=PAD_MODE,
    )
    if not onset_env.any():  # silence: beat_track reports a tempo of 0
        return 0.0
    bpm = librosa.feature.tempo(
        onset_envelope=onset_env,
        sr=sr,
        hop_length=HOP_LENGTH,
        start_bpm=TEMPO_START_BPM,
        std_bpm=TEMPO_STD_BPM,
        ac_size=TEMPO_AC_SIZE,
        max_tempo=TEMPO_MAX_BPM,
        aggregate=np.mean,
    )
    return float(bpm[0])


# --- Public API -------------------------------------------------------------


def baseline_features(y: np.ndarray, sr: int = SAMPLE_RATE) -> dict[str, float]:
    """The Kaggle feature columns for one segment (or one whole clip).

    ``y`` is a mono float32 waveform at ``sr`` Hz.  Returns a dict keyed by the
    names in ``COLUMNS`` (no filename, length or label).
    """
    out: dict[str, float] = {}

    chroma = librosa.feature.chroma_stft(y=y, sr=sr, **_STFT_KW)
    out["chroma_stft_mean"], out["chroma_stft_var"] = _mean_var(chroma)

    rms = librosa.feature.rms(
        y=y, frame_length=N_FFT, hop_length=HOP_LENGTH, center=True, pad_mode=PAD_MODE
    )
    out["rms_mean"], out["rms_var"] = _mean_var(rms)

    centroid = librosa.feature.spectral_centroid(y=y, sr=sr, **_STFT_KW)
    out["spectral_centroid_mean"], out["spectral_centroid_var"] = _mean_var(centroid)

    bandwidth = librosa.feature.spectral_bandwidth(y=y, sr=sr, **_STFT_KW)
    out["spectral_bandwidth_mean"], out["spectral_bandwidth_var"] = _mean_var(bandwidth)

    rolloff = librosa.feature.spectral_rolloff(y=y, sr=sr, **_STFT_KW)
    out["rolloff_mean"], out["rolloff_var"] = _mean_var(rolloff)

    # Centred ZCR frames are edge-padded; that default never changed.
    zcr = librosa.feature.zero_crossing_rate(
        y, frame_length=N_FFT, hop_length=HOP_LENGTH, center=True
    )
    out["zero_crossing_rate_mean"], out["zero_crossing_rate_var"] = _mean_var(zcr)

    harm, perc = _harmonic_percussive(y)
    out["harmony_mean"], out["harmony_var"] = _mean_var(harm)
    out["perceptr_mean"], out["perceptr_var"] = _mean_var(perc)

    out["tempo"] = _tempo(y, sr)

    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=N_MFCC, **_STFT_KW)
    for i, coeff in enumerate(mfcc, start=1):
        out[f"mfcc{i}_mean"], out[f"mfcc{i}_var"] = _mean_var(coeff)

    return {name: out[name] for name in COLUMNS}


def segment_bounds(
    n_samples: int, segment_samples: int = SEGMENT_SAMPLES, hop_samples: int = SEGMENT_HOP
) -> list[tuple[int, int]]:
    """``(start, stop)`` sample ranges of the segments of an ``n_samples`` clip.

    Segment ``k`` starts at ``k * hop_samples`` and is kept only while the end of
    its window, ``(k + 1) * hop_samples``, lies strictly before the end of the
    clip (the Kaggle 3-s rule; it yields 9 segments for clips <= 661500 samples).
    """
    bounds = []
    k = 0
    while (k + 1) * hop_samples < n_samples and k * hop_samples + segment_samples <= n_samples:
        start = k * hop_samples
        bounds.append((start, start + segment_samples))
        k += 1
    return bounds


def baseline_file(
    path: str | os.PathLike,
    segment_samples: int | None = None,
    hop_samples: int = SEGMENT_HOP,
) -> list[dict]:
    """Features of one audio file: one row per segment, or one for the whole file.

    ``segment_samples=None`` gives the 30-s table (the whole clip);
    ``segment_samples=SEGMENT_SAMPLES`` (66149) with the default ``hop_samples``
    (66150) gives the 3-s table.  Each row holds ``filename`` (Kaggle style,
    e.g. ``rock.00001.7.wav`` for segment 7), ``length`` (samples analysed) and
    the ``COLUMNS`` features.
    """
    y, sr = librosa.load(path, sr=SAMPLE_RATE, mono=True, dtype=AUDIO_DTYPE)
    name = os.path.basename(os.fspath(path))
    if segment_samples is None:
        return [{"filename": name, "length": len(y), **baseline_features(y, sr)}]

    stem, ext = os.path.splitext(name)
    rows = []
    for k, (start, stop) in enumerate(segment_bounds(len(y), segment_samples, hop_samples)):
        segment = y[start:stop]
        rows.append(
            {"filename": f"{stem}.{k}{ext}", "length": len(segment), **baseline_features(segment, sr)}
        )
    return rows


# --- Comparison with the Kaggle tables -------------------------------------


def _compare(rows: list[dict], table) -> dict[str, float]:
    """Per-column median error of ``rows`` against the matching table rows.

    Relative error for most columns; absolute error for the near-zero
    harmony_mean/perceptr_mean; for tempo, the share of rows within 0.5 BPM.
    """
    ours = {row["filename"]: row for row in rows if row["filename"] in table.index}
    names = sorted(ours)
    summary = {"rows": float(len(names))}
    for col in COLUMNS:
        got = np.array([ours[n][col] for n in names], dtype=float)
        ref = table.loc[names, col].to_numpy(dtype=float)
        if col == "tempo":
            summary[col] = float(np.mean(np.abs(got - ref) <= 0.5))
        elif col in ("harmony_mean", "perceptr_mean"):
            summary[col] = float(np.median(np.abs(got - ref)))
        else:
            summary[col] = float(np.median(np.abs(got - ref) / np.abs(ref)))
    return summary


if __name__ == "__main__":
    import argparse
    import glob

    import pandas as pd

    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        default=os.path.join(here, "..", "..", "shared", "data", "gtzan"),
        help="folder with features_30_sec.csv, features_3_sec*.csv and audio/",
    )
    args = parser.parse_args()

    t30 = pd.read_csv(os.path.join(args.data, "features_30_sec.csv")).set_index("filename")
    t3_path = sorted(glob.glob(os.path.join(args.data, "features_3_sec*.csv")))[0]
    t3 = pd.read_csv(t3_path).set_index("filename")

    rows30, rows3 = [], []
    for wav in sorted(glob.glob(os.path.join(args.data, "audio", "*", "*.wav"))):
        rows30 += baseline_file(wav)
        stem = os.path.splitext(os.path.basename(wav))[0]
        if f"{stem}.0.wav" in t3.index:
            segs = baseline_file(wav, segment_samples=SEGMENT_SAMPLES)
            expected = t3.index.str.startswith(stem + ".").sum()
            if len(segs) != expected:
                print(f"{stem}: {len(segs)} segments, table has {expected}")
            rows3 += segs

    s30, s3 = _compare(rows30, t30), _compare(rows3, t3)
    print(f"{'column':26s} {'30-s table':>11s} {'3-s table':>11s}")
    print(f"{'rows compared':26s} {int(s30['rows']):11d} {int(s3['rows']):11d}")
    for col in COLUMNS:
        if col == "tempo":
            note = "share within 0.5 BPM"
        elif col in ("harmony_mean", "perceptr_mean"):
            note = "median abs. error"
        else:
            note = "median rel. error"
        print(f"{col:26s} {s30[col]:11.2e} {s3[col]:11.2e}  {note}")
