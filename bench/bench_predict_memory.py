"""Peak memory of `featx predict` on long audio, for every model family, against `featx spectrograms`.

A long file (default 100 minutes at 22050 Hz, under featx's 2^27-sample decoding cap) is
synthesised; tiny bundles of each family are trained on a few short synthetic clips; then
each `featx predict BUNDLE long.wav` runs in its own process and its peak resident memory
(VmHWM, read by the process itself at exit) is printed beside that of `featx spectrograms`
on the same file, the baseline of what decoding the file and making its images costs.
Prediction classifies the file a bounded block of segments at a time, so its peak should
not grow with the file's length beyond the decoded samples themselves.

    python bench/bench_predict_memory.py                 # 100 minutes
    python bench/bench_predict_memory.py --minutes 30 --repeats 1
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

SR = 22050

#: Runs featx's command line in this process, then prints the process's peak resident memory.
_RUN = (
    "import sys\n"
    "from featx.cli import main\n"
    "try:\n"
    "    main(sys.argv[1:], prog_name='featx')\n"
    "except SystemExit as exc:\n"
    "    code = exc.code\n"
    "else:\n"
    "    code = 0\n"
    "with open('/proc/self/status') as fh:\n"
    "    print('PEAK_KIB', next(int(l.split()[1]) for l in fh if l.startswith('VmHWM:')), file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def peak_mib(*args) -> float:
    """Peak resident memory (MiB) of ``featx ARGS`` run in a fresh process."""
    done = subprocess.run([sys.executable, "-c", _RUN, "-q", *map(str, args)], capture_output=True, text=True,
                          cwd=HERE.parent)
    lines = [line for line in done.stderr.splitlines() if line.startswith("PEAK_KIB")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"featx {' '.join(map(str, args))} failed:\n{done.stderr[-2000:]}")
    return int(lines[-1].split()[1]) / 1024


def synth(seconds: float, seed: int, kind: str) -> np.ndarray:
    """A few seconds of 'tones' (chords) or 'noise' (filtered bursts), float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    if kind == "tones":
        f = rng.choice([220.0, 330.0, 440.0, 550.0], size=3)
        y = sum(np.sin(2 * np.pi * fi * t) for fi in f) / 3
    else:
        y = rng.standard_normal(len(t)) * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t))
    return (0.3 * y).astype(np.float32)


def write_long(path: Path, minutes: float) -> None:
    """Write ``minutes`` of alternating tones and noise, a minute at a time (16-bit WAV)."""
    import soundfile as sf

    with sf.SoundFile(path, "w", samplerate=SR, channels=1, subtype="PCM_16") as out:
        for k in range(int(np.ceil(minutes))):
            seconds = min(60.0, minutes * 60 - k * 60)
            out.write(synth(seconds, k, "tones" if k % 2 else "noise"))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=100.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None, help="working folder [default: a temporary one]")
    args = parser.parse_args(argv)

    import soundfile as sf

    work = args.work or Path(tempfile.mkdtemp(prefix="featx-predict-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        audio = work / "audio"
        for genre in ("tones", "noise"):
            for k in range(4):
                (audio / genre).mkdir(parents=True, exist_ok=True)
                sf.write(audio / genre / f"{genre}.{k:05d}.wav", synth(9.5, 10 + k, genre), SR)
        long = work / "long.wav"
        write_long(long, args.minutes)
        print(f"long file: {args.minutes:g} min at {SR} Hz ({long.stat().st_size / 2**20:.0f} MiB as 16-bit WAV)")

        featx = [sys.executable, "-m", "featx", "-q"]
        subprocess.run([*featx, "extract", audio, "-o", work / "seg.csv", "-j", "1"], check=True)
        subprocess.run([*featx, "extract", audio, "-o", work / "whole.csv", "--whole-file", "-j", "1"],
                       check=True)
        subprocess.run([*featx, "spectrograms", audio, "-o", work / "store", "-j", "1"], check=True)
        tiny = ["--folds", "2", "--epochs", "1"]
        bundles = {
            "knn (3-s rows)": ["train", work / "seg.csv", "-m", "knn", "--folds", "2"],
            "svm (whole clips)": ["train", work / "whole.csv", "-m", "svm", "--folds", "2"],
            "mlp (3-s rows)": ["train", work / "seg.csv", "-m", "mlp", "--units", "16", *tiny],
            "segment-lstm": ["train", work / "seg.csv", "-m", "segment-lstm", "--units", "8", "-p", "dense=0",
                             *tiny],
            "cnn2d (mel images)": ["train", work / "store", "-m", "cnn2d", "-p", "filters=8,8", "-p", "dense=8",
                                   *tiny],
            "multihead (3 kinds)": ["train", work / "store", "-m", "multihead", "-p", "filters=4,4",
                                    "-p", "dense=8", *tiny],
        }
        folders = {}
        for k, (name, command) in enumerate(bundles.items()):
            folders[name] = work / f"bundle{k}"
            subprocess.run([*featx, *map(str, command), "-o", folders[name]], check=True,
                           stdout=subprocess.DEVNULL)

        print(f"peak resident memory of one process, MiB (median of {args.repeats}, range); "
              f"machine: {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}")
        rows = []
        for repeat in range(args.repeats):
            base = work / f"spectro{repeat}"
            rows.append(("baseline: featx spectrograms", peak_mib("spectrograms", long, "-o", base, "-j", "1")))
            shutil.rmtree(base, ignore_errors=True)
            for name, folder in folders.items():
                rows.append((f"featx predict, {name}", peak_mib("predict", folder, long)))
        decoded = args.minutes * 60 * SR * 4 / 2**20
        print(f"{'what':<40} {'peak MiB':>9}  range")
        for name in dict.fromkeys(n for n, _ in rows):
            values = [v for n, v in rows if n == name]
            print(f"{name:<40} {statistics.median(values):>9.0f}  {min(values):.0f}-{max(values):.0f}")
        print(f"(the decoded samples alone, float32: {decoded:.0f} MiB)")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
