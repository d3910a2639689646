"""Spectrogram speed: featx's mel + MFCC + chroma images against a straightforward loop.

Both sides get the same 3-s segments (the Kaggle rule) of the same clips, already
decoded, and run in this one process on one core (one BLAS/FFT thread), clip by clip
and alternating, so that they see the same machine load:

* baseline: for each segment, ``librosa.power_to_db(librosa.feature.melspectrogram(...,
  fmax=8000))``, ``librosa.feature.mfcc(..., n_mfcc=20)`` and
  ``librosa.feature.chroma_stft(...)``, each computing its own STFT;
* featx: :func:`featx.features.spectrograms.segment_spectrograms` on all segments of
  the clip at once (one STFT per segment shared by the three kinds).

It prints seconds, segments per second, x-realtime and the ratio for each repeat, and
the largest absolute and relative differences per kind (relative to each image's peak
magnitude).

    python bench/bench_spectrograms.py                       # ../shared/data/gtzan/audio
    python bench/bench_spectrograms.py AUDIO_DIR --clips 5 --repeats 3
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from threadpoolctl import threadpool_limits

from featx.extract.audio import find_audio, load, segment
from featx.features.spectrograms import KINDS, SpectrogramSettings, segment_spectrograms

DEFAULT_AUDIO = HERE.parent.parent / "shared" / "data" / "gtzan" / "audio"


def baseline_images(segments: np.ndarray, settings: SpectrogramSettings) -> dict[str, np.ndarray]:
    """The straightforward way: three librosa calls on each segment, three STFTs."""
    import librosa

    s = settings
    out = {kind: [] for kind in KINDS}
    for y in segments:
        mel = librosa.feature.melspectrogram(y=y, sr=s.sr, n_fft=s.n_fft, hop_length=s.hop_length,
                                             n_mels=s.n_mels, fmax=s.fmax)
        out["mel"].append(librosa.power_to_db(mel))
        out["mfcc"].append(librosa.feature.mfcc(y=y, sr=s.sr, n_mfcc=s.n_mfcc, n_fft=s.n_fft,
                                                hop_length=s.hop_length, n_mels=s.n_mels))
        out["chroma"].append(librosa.feature.chroma_stft(y=y, sr=s.sr, n_fft=s.n_fft,
                                                         hop_length=s.hop_length, n_chroma=s.n_chroma))
    return {kind: np.stack(v) for kind, v in out.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("audio", nargs="?", default=str(DEFAULT_AUDIO), help="folder of audio clips")
    parser.add_argument("--clips", type=int, default=None, help="use the first N clips (default: all)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes over the clips")
    args = parser.parse_args(argv)

    settings = SpectrogramSettings()
    files = find_audio([args.audio])[: args.clips]
    clips = []
    for f in files:
        segs = np.ascontiguousarray(segment(load(f, sr=settings.sr), hop=settings.segment_hop))
        if len(segs):
            clips.append(segs)
    n_segments = sum(len(c) for c in clips)
    audio_s = n_segments * settings.segment_samples / settings.sr
    print(f"{len(clips)} clips, {n_segments} segments of {settings.segment_samples} samples "
          f"({audio_s:.0f} s of audio); kinds {', '.join(settings.kinds)}; one core")

    with threadpool_limits(limits=1):
        baseline_images(clips[0][:1], settings)  # imports and caches, for both sides alike
        segment_spectrograms(clips[0], settings=settings)
        worst_abs = dict.fromkeys(KINDS, 0.0)
        worst_rel = dict.fromkeys(KINDS, 0.0)
        ratios = []
        print(f"{'repeat':>6} {'baseline s':>11} {'featx s':>8} {'baseline seg/s':>15} "
              f"{'featx seg/s':>12} {'featx x-realtime':>17} {'ratio':>6}")
        for r in range(1, args.repeats + 1):
            t_base = t_ours = 0.0
            for segs in clips:
                t0 = time.perf_counter()
                ref = baseline_images(segs, settings)
                t1 = time.perf_counter()
                ours = segment_spectrograms(segs, settings=settings)
                t2 = time.perf_counter()
                t_base += t1 - t0
                t_ours += t2 - t1
                if r == 1:
                    for kind in KINDS:
                        diff = np.abs(ours[kind].astype(np.float64) - ref[kind])
                        peak = np.abs(ref[kind]).max(axis=(1, 2), keepdims=True)
                        worst_abs[kind] = max(worst_abs[kind], float(diff.max()))
                        worst_rel[kind] = max(worst_rel[kind], float((diff / np.maximum(peak, 1e-12)).max()))
            ratios.append(t_base / t_ours)
            print(f"{r:>6} {t_base:>11.2f} {t_ours:>8.2f} {n_segments / t_base:>15.1f} "
                  f"{n_segments / t_ours:>12.1f} {audio_s / t_ours:>17.0f} {ratios[-1]:>5.1f}x")
    print(f"ratio: median {statistics.median(ratios):.1f}x, min {min(ratios):.1f}x, max {max(ratios):.1f}x")
    for kind in KINDS:
        print(f"{kind:>6}: max |difference| {worst_abs[kind]:.3g}, "
              f"max relative to the image's peak {worst_rel[kind]:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
