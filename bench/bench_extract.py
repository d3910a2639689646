"""Extraction speed: featx against the straightforward per-segment baseline.

Runs, in one process and on one core (one BLAS/FFT thread), both implementations on
the same real GTZAN clips, checks that they give the same numbers, and prints
seconds, x-realtime and the ratio. Then it times `featx extract` with 1 and 2 worker
processes, and the peak memory of a run over few and over many files.

    python bench/bench_extract.py                 # clips in ../shared/data/gtzan/audio
    python bench/bench_extract.py --data DIR --clips 5

The baseline is bench/baseline.py: every librosa feature function called on each
segment's waveform, each computing its own STFT, with scipy's N-D median filter.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import baseline  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from featx.extract.audio import load  # noqa: E402
from featx.extract.file import extract_features  # noqa: E402
from featx.features.settings import FeatureSettings  # noqa: E402


def _clips(data: Path, n: int | None) -> list[Path]:
    files = sorted((data / "gtzan" / "audio").rglob("*.wav"))
    if not files:
        sys.exit(f"no clips under {data / 'gtzan' / 'audio'}; pass --data")
    return files[:n] if n else files


def single_core(files, *, whole_file: bool):
    """Seconds for the baseline and for featx on ``files``; max relative difference."""
    settings = FeatureSettings(preset="gtzan", segment_seconds=None if whole_file else 3.0)
    seg = None if whole_file else baseline.SEGMENT_SAMPLES
    audio_seconds = sum(len(load(f, sr=22050)) for f in files) / 22050
    extract_features(files[0], settings)  # warm caches and imports, for both sides alike
    baseline.baseline_file(files[0], segment_samples=seg)
    base, ours = [], []
    t_base = t_ours = 0.0
    # clip by clip, alternating, so that both see the same machine load
    with threadpool_limits(limits=1):
        for f in files:
            t0 = time.perf_counter()
            base += baseline.baseline_file(f, segment_samples=seg)
            t1 = time.perf_counter()
            ours.append(extract_features(f, settings))
            t2 = time.perf_counter()
            t_base += t1 - t0
            t_ours += t2 - t1
    ours_rows = [r for frame in ours for r in frame.to_dict("records")]
    assert [r["filename"] for r in base] == [r["filename"] for r in ours_rows]
    worst = 0.0
    for col in baseline.COLUMNS:
        a = np.array([r[col] for r in ours_rows])
        b = np.array([r[col] for r in base])
        scale = np.maximum(np.abs(b), 1e-3 if col in ("harmony_mean", "perceptr_mean") else 1e-12)
        worst = max(worst, float(np.max(np.abs(a - b) / scale)))
    return audio_seconds, t_base, t_ours, worst


def _run_cli(args, *, env=None):
    cmd = [sys.executable, "-m", "featx", "-q", "extract", *map(str, args)]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=HERE.parent)
    if out.returncode != 0:
        sys.exit(out.stderr)
    return time.perf_counter() - t0


def scaling(folder: Path, tmp: Path):
    """Wall seconds of `featx extract` on ``folder`` with 1 and 2 workers."""
    times = {}
    for jobs in (1, 2):
        out = tmp / f"scale{jobs}.csv"
        times[jobs] = _run_cli([folder, "-o", out, "-j", jobs, "--overwrite"])
    return times


def steady_state(paths):
    """Seconds for featx's per-file task over ``paths`` with 1 and 2 warm workers.

    The same task and pool settings as `featx extract`; each worker first analyses one
    file (imports, compiled-kernel cache) so that only the steady state is timed.
    """
    from joblib import Parallel, delayed, parallel_config

    from featx.extract.runner import _work

    settings = FeatureSettings()
    keys = [str(p) for p in paths]
    times = {}
    with threadpool_limits(limits=1):
        _work(keys[0], settings)
        t0 = time.perf_counter()
        for key in keys:
            _work(key, settings)
        times[1] = time.perf_counter() - t0
    with parallel_config(backend="loky", inner_max_num_threads=1):
        pool = Parallel(n_jobs=2, return_as="generator_unordered")
        list(pool(delayed(_work)(k, settings) for k in keys[:4]))  # start and warm both workers
        t0 = time.perf_counter()
        list(pool(delayed(_work)(k, settings) for k in keys))
        times[2] = time.perf_counter() - t0
    return times


_PEAK = """
import resource, sys
from featx.extract.runner import run_extraction
from featx.features.settings import FeatureSettings
run_extraction([sys.argv[1]], sys.argv[2], settings=FeatureSettings(), jobs=1, overwrite=True, progress=False)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def copies_of(files, tmp: Path, copies: int) -> Path:
    """A folder holding ``copies`` copies of each of ``files`` (genre folders kept)."""
    folder = tmp / f"corpus{copies}x{len(files)}"
    for c in range(copies):
        for f in files:
            dest = folder / f.parent.name / f"{f.stem}.copy{c}{f.suffix}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, dest)
    return folder


def peak_memory(files, tmp: Path, copies: int):
    """Peak resident memory (MiB) of a one-worker run over ``files`` repeated ``copies`` times."""
    folder = copies_of(files, tmp, copies)
    out = subprocess.run(
        [sys.executable, "-c", _PEAK, str(folder), str(tmp / f"mem{copies}.csv")],
        capture_output=True, text=True, cwd=HERE.parent, check=True,
    )
    return int(out.stdout.strip().splitlines()[-1]) / 1024, len(files) * copies


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--clips", type=int, default=None, help="use only the first N clips")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    files = _clips(args.data, args.clips)
    results = {"cpu": _cpu_name(), "clips": len(files)}
    print(f"{len(files)} real GTZAN clips; {results['cpu']}")
    print()
    print(f"{'one core':<22}{'baseline s':>12}{'featx s':>10}{'baseline xRT':>14}{'featx xRT':>11}{'speed-up':>10}{'max rel diff':>14}")
    for label, whole in (("3-s segments", False), ("whole 30-s clips", True)):
        audio_s, t_base, t_ours, worst = single_core(files, whole_file=whole)
        print(
            f"{label:<22}{t_base:>12.2f}{t_ours:>10.2f}{audio_s / t_base:>13.1f}x{audio_s / t_ours:>10.1f}x"
            f"{t_base / t_ours:>9.1f}x{worst:>14.1e}"
        )
        results[label] = dict(audio_s=audio_s, baseline_s=t_base, featx_s=t_ours, speedup=t_base / t_ours, max_rel_diff=worst)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = copies_of(files, tmp, 4)
        wall = scaling(corpus, tmp)
        steady = steady_state(sorted(corpus.rglob("*.wav")))
        n = 4 * len(files)
        print()
        print(f"featx extract of {n} files, wall time incl. start-up: -j 1 {wall[1]:.2f} s, "
              f"-j 2 {wall[2]:.2f} s ({wall[1] / wall[2]:.2f}x)")
        print(f"once workers are started: -j 1 {steady[1]:.2f} s, -j 2 {steady[2]:.2f} s, "
              f"scaling {steady[1] / steady[2]:.2f}x on 2 workers")
        results["scaling"] = {"wall": wall, "steady": steady, "files": n}
        few = peak_memory(files[:4], tmp, 1)
        many = peak_memory(files[:4], tmp, 8)
        print(f"peak memory, one worker: {few[0]:.0f} MiB for {few[1]} files, {many[0]:.0f} MiB for {many[1]} files "
              f"(ratio {many[0] / few[0]:.2f})")
        results["memory_mib"] = {str(few[1]): few[0], str(many[1]): many[0]}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f", {os.cpu_count()} cores"
    except OSError:
        pass
    return f"{os.cpu_count()} cores"


if __name__ == "__main__":
    main()
