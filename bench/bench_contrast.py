"""Spectral contrast: featx's batch function against librosa called per segment.

Ten 3-second segments of a real GTZAN clip, one thread, median of several timings of
each way; also checks that both give the same values.

    python bench/bench_contrast.py
    python bench/bench_contrast.py --repeats 9 --clip rock/rock.00001.wav
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _median_ms(fn, repeats: int) -> float:
    import numpy as np

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def main(argv=None) -> None:
    shared = Path(os.environ.get("FEATX_SHARED_DATA",
                                 Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default="jazz/jazz.00000.wav",
                        help="clip under the GTZAN audio folder")
    parser.add_argument("--audio-dir", type=Path, default=shared / "gtzan" / "audio")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    import librosa
    import numpy as np
    import soundfile as sf
    from threadpoolctl import threadpool_limits

    from featx.features import dsp
    from featx.features.contrast import spectral_contrast

    sr, n_fft, hop = 22050, 2048, 512
    y, file_sr = sf.read(args.audio_dir / args.clip, dtype="float32")
    if file_sr != sr:
        sys.exit(f"expected a {sr} Hz clip; {args.clip} is {file_sr} Hz")
    length = 3 * sr
    segments = np.stack([y[i * length:(i + 1) * length - 1] for i in range(10)])
    S_frames = np.abs(dsp.stft_frames(segments, n_fft=n_fft, hop_length=hop))
    S = np.ascontiguousarray(np.swapaxes(S_frames, 1, 2))
    S_view = np.swapaxes(S_frames, 1, 2)

    def per_segment():
        return np.stack([librosa.feature.spectral_contrast(S=s, sr=sr, n_fft=n_fft) for s in S])

    ref = per_segment()
    with threadpool_limits(1):
        rows = [
            ("librosa, per segment", _median_ms(per_segment, args.repeats)),
            ("featx, (n, bins, frames) array", _median_ms(
                lambda: spectral_contrast(S, sr=sr, n_fft=n_fft), args.repeats)),
            ("featx, frame-major view", _median_ms(
                lambda: spectral_contrast(S_view, sr=sr, n_fft=n_fft), args.repeats)),
        ]
    worst = max(float(np.max(np.abs(spectral_contrast(x, sr=sr, n_fft=n_fft) - ref))) for x in (S, S_view))
    base = rows[0][1]
    print(f"10 segments of {args.clip}, {S.shape[2]} frames each, 1 thread, median of {args.repeats}")
    print("| way | ms | speed-up |\n|---|---:|---:|")
    for name, ms in rows:
        print(f"| {name} | {ms:.2f} | {base / ms:.2f}x |")
    print(f"largest absolute difference from librosa: {worst:.3g} dB")


if __name__ == "__main__":
    main()
