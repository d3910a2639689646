"""Extraction speed: featx against the straightforward per-segment baseline.

Runs, in one process and on one core (one BLAS/FFT thread), both implementations on
the same real GTZAN clips, checks that they give the same numbers, and prints
seconds, x-realtime and the ratio (median and range over ``--repeats`` runs). Then the
same comparison as whole processes (start-up included): the baseline over the clips
in one Python process against ``featx extract -j 1``, in wall and CPU seconds, with
featx's start-up (a one-clip run less one clip's in-process time). Then it times
`featx extract` with 1 and 2 worker processes, and the peak memory of a run over few
and over many files.

    python bench/bench_extract.py                 # clips in ../shared/data/gtzan/audio
    python bench/bench_extract.py --data DIR --clips 5 --repeats 3

The baseline is bench/baseline.py: every librosa feature function called on each
segment's waveform, each computing its own STFT, with scipy's N-D median filter.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
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
    """Wall seconds for the baseline and for featx on ``files``, the largest relative
    difference, and the ratio of their CPU (process) times, which other processes on a
    busy machine disturb less than wall time."""
    from featx.runtime.allocator import keep_work_arrays

    # the allocator settings `featx extract` uses (they do not change the baseline's
    # speed: 1.57 against 1.63 s per clip in an A/B run)
    keep_work_arrays()
    settings = FeatureSettings(preset="gtzan", segment_seconds=None if whole_file else 3.0)
    seg = None if whole_file else baseline.SEGMENT_SAMPLES
    audio_seconds = sum(len(load(f, sr=22050)) for f in files) / 22050
    extract_features(files[0], settings)  # warm caches and imports, for both sides alike
    baseline.baseline_file(files[0], segment_samples=seg)
    base, ours = [], []
    t_base = t_ours = c_base = c_ours = 0.0
    # clip by clip, alternating, so that both see the same machine load
    with threadpool_limits(limits=1):
        for f in files:
            t0, c0 = time.perf_counter(), time.process_time()
            base += baseline.baseline_file(f, segment_samples=seg)
            t1, c1 = time.perf_counter(), time.process_time()
            ours.append(extract_features(f, settings))
            t2, c2 = time.perf_counter(), time.process_time()
            t_base += t1 - t0
            t_ours += t2 - t1
            c_base += c1 - c0
            c_ours += c2 - c1
    ours_rows = [r for frame in ours for r in frame.to_dict("records")]
    assert [r["filename"] for r in base] == [r["filename"] for r in ours_rows]
    worst = 0.0
    for col in baseline.COLUMNS:
        a = np.array([r[col] for r in ours_rows])
        b = np.array([r[col] for r in base])
        scale = np.maximum(np.abs(b), 1e-3 if col in ("harmony_mean", "perceptr_mean") else 1e-12)
        worst = max(worst, float(np.max(np.abs(a - b) / scale)))
    return audio_seconds, t_base, t_ours, worst, c_base / c_ours


def _run_cli(args, *, env=None):
    return _timed([sys.executable, "-m", "featx", "-q", "extract", *map(str, args)], env=env or _child_env())[0]


#: One BLAS/OpenMP thread in a child process, as `featx extract` sets for itself.
_ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def _timed(cmd, *, env=None):
    """Wall and CPU (user + system) seconds of a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=HERE.parent)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        sys.exit(out.stderr)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


_BASELINE_RUN = """
import sys
sys.path.insert(0, sys.argv[1])
import baseline
for path in sys.argv[2:]:
    baseline.baseline_file(path, segment_samples=baseline.SEGMENT_SAMPLES)
"""


def whole_process(files, tmp: Path):
    """Wall and CPU seconds of whole processes over ``files`` (3-s rows), start-up included.

    The baseline runs over all clips in one Python process (its rows are not written);
    featx is `featx extract --preset gtzan -j 1`, writing its CSV. Also a one-clip
    `featx extract`, whose time less one clip's in-process time is featx's start-up.
    """
    env = _child_env()
    folder = tmp / "whole"
    for f in files:
        dest = folder / f.parent.name / f.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, dest)
    one = tmp / "one"
    one.mkdir()
    shutil.copyfile(files[0], one / files[0].name)
    one_clip = [sys.executable, "-m", "featx", "-q", "extract", str(one), "-o", str(tmp / "one.csv"),
                "--preset", "gtzan", "-j", "1", "--overwrite"]
    _timed(one_clip, env=env)  # as after installation: byte code and compiled kernels cached
    base = _timed([sys.executable, "-c", _BASELINE_RUN, str(HERE), *map(str, files)], env=env)
    ours = _timed([sys.executable, "-m", "featx", "-q", "extract", str(folder), "-o", str(tmp / "whole.csv"),
                   "--preset", "gtzan", "-j", "1", "--overwrite"], env=env)
    singles = [_timed(one_clip, env=env) for _ in range(5)]
    single = tuple(float(np.median([run[i] for run in singles])) for i in (0, 1))
    return {"baseline": base, "featx": ours, "featx_one_clip": single,
            "featx_one_clip_runs": singles}


def _child_env():
    """The environment of the timed processes: one BLAS thread, and byte code cached.

    An installed package has its byte code compiled (pip does it); a development
    environment that sets ``PYTHONDONTWRITEBYTECODE`` would recompile featx's
    sources in every process, which no installation does.
    """
    env = {**os.environ, **_ONE_THREAD}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def scaling(folder: Path, tmp: Path):
    """Wall seconds of `featx extract` on ``folder`` with 1 and 2 workers."""
    times = {}
    for jobs in (1, 2):
        out = tmp / f"scale{jobs}.csv"
        times[jobs] = _run_cli([folder, "-o", out, "-j", jobs, "--overwrite"])
    return times


def steady_state(paths):
    """Seconds for featx's per-file task over ``paths`` in a pool of 1 and of 2 warm workers.

    featx's own worker pool (:mod:`featx.extract.pool`, whose workers keep their work
    arrays as `featx extract`'s do), so that both sides run the same way; each worker first
    analyses a few files (imports, compiled kernels) so that only the steady state
    is timed.
    """
    from concurrent.futures import wait

    from featx.extract import pool
    from featx.extract.runner import _work

    settings = FeatureSettings()
    keys = [str(p) for p in paths]
    times = {}
    for workers in (1, 2):
        executor = pool._executor(workers, fresh=True)
        try:
            wait([executor.submit(_work, k, settings) for k in keys[: 2 * workers]])
            t0 = time.perf_counter()
            for future in [executor.submit(_work, k, settings) for k in keys]:
                future.result()
            times[workers] = time.perf_counter() - t0
        finally:
            executor.shutdown()
    return times


# Peak resident memory of this process in KiB. On Linux, VmHWM: ru_maxrss of a child
# started by a large process reports the parent's size, which it inherits across fork+exec.
_PEAK = """
import resource, sys
from featx.extract.runner import run_extraction
from featx.features.settings import FeatureSettings
run_extraction([sys.argv[1]], sys.argv[2], settings=FeatureSettings(), jobs=1, overwrite=True, progress=False)
try:
    with open("/proc/self/status") as fh:
        print(next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")))
except OSError:
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
    parser.add_argument("--repeats", type=int, default=1,
                        help="in-process comparisons to run (median and range are printed)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    files = _clips(args.data, args.clips)
    results = {"cpu": _cpu_name(), "clips": len(files), "repeats": args.repeats}
    print(f"{len(files)} real GTZAN clips; {results['cpu']}")
    print()
    print(f"{'one core, in-process':<22}{'baseline s':>12}{'featx s':>10}{'baseline xRT':>14}{'featx xRT':>11}"
          f"{'speed-up':>10}{'range':>14}{'CPU-time ratio':>16}{'max rel diff':>14}")
    per_clip = {}
    for label, whole in (("3-s segments", False), ("whole 30-s clips", True)):
        runs = [single_core(files, whole_file=whole) for _ in range(max(1, args.repeats))]
        audio_s, worst = runs[0][0], max(r[3] for r in runs)
        t_base = float(np.median([r[1] for r in runs]))
        t_ours = float(np.median([r[2] for r in runs]))
        ratios = [r[1] / r[2] for r in runs]
        spread = f"{min(ratios):.1f}-{max(ratios):.1f}x"
        cpu_ratios = [r[4] for r in runs]
        print(
            f"{label:<22}{t_base:>12.2f}{t_ours:>10.2f}{audio_s / t_base:>13.1f}x{audio_s / t_ours:>10.1f}x"
            f"{float(np.median(ratios)):>9.1f}x{spread:>14}{float(np.median(cpu_ratios)):>15.1f}x{worst:>14.1e}"
        )
        results[label] = dict(audio_s=audio_s, baseline_s=t_base, featx_s=t_ours, speedup=float(np.median(ratios)),
                              speedups=ratios, cpu_speedups=cpu_ratios, max_rel_diff=worst)
        per_clip[label] = (t_base / len(files), t_ours / len(files))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        proc = whole_process(files, tmp)
        (b_wall, b_cpu), (o_wall, o_cpu), (one_wall, one_cpu) = proc["baseline"], proc["featx"], proc["featx_one_clip"]
        base_clip, ours_clip = per_clip["3-s segments"]
        print()
        print(f"3-s rows of {len(files)} clips, side by side:   {'baseline':>10}{'featx':>9}{'speed-up':>10}")
        print(f"  in-process (one core), s per clip      {base_clip:>10.3f}{ours_clip:>9.3f}{base_clip / ours_clip:>9.1f}x")
        print(f"  whole process, wall s                  {b_wall:>10.2f}{o_wall:>9.2f}{b_wall / o_wall:>9.1f}x")
        print(f"  whole process, CPU s                   {b_cpu:>10.2f}{o_cpu:>9.2f}{b_cpu / o_cpu:>9.1f}x")
        runs = proc["featx_one_clip_runs"]
        print(f"  featx start-up (one-clip run less one clip in-process; median of {len(runs)} runs): "
              f"wall {one_wall - ours_clip:.2f} s, CPU {one_cpu - ours_clip:.2f} s "
              f"(CPU range {min(r[1] for r in runs) - ours_clip:.2f}-{max(r[1] for r in runs) - ours_clip:.2f} s)")
        results["whole_process"] = {**proc, "featx_startup_wall_s": one_wall - ours_clip,
                                    "featx_startup_cpu_s": one_cpu - ours_clip}
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
