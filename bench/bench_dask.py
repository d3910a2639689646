"""Extraction on a Dask cluster: 1 against 2 workers, the scheduler's per-task overhead,
and a paper estimate for FMA-full (106,574 tracks, about 8,200 hours) on N workers.

A scheduler and its workers (one thread each, no nanny) are started here on localhost;
the same files (the real GTZAN clips in ``../shared/data``, or synthetic ones) are
extracted with ``--scheduler`` on 1 and then 2 workers, after each worker has analysed
one file (imports and compiled kernels are not counted). Tiny tasks measure what the
scheduler adds per task, beside featx's local process pool.

    python bench/bench_dask.py [--repeat 2] [--tiny 400]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FMA_TRACKS = 106_574
FMA_HOURS = 8_200


class Cluster:
    """A scheduler and ``n`` one-thread workers on localhost, ended on exit."""

    def __init__(self, n: int, folder: Path):
        self.n, self.folder, self.procs = n, folder, []

    def __enter__(self):
        from distributed import Client

        sched = self.folder / f"scheduler-{self.n}.json"
        sched.unlink(missing_ok=True)
        log = open(self.folder / f"cluster-{self.n}.log", "w")
        run = lambda *a: self.procs.append(subprocess.Popen(  # noqa: E731
            [sys.executable, "-m", *a], stdout=log, stderr=subprocess.STDOUT, cwd=self.folder))
        run("distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
            "--scheduler-file", str(sched))
        while not sched.exists():
            time.sleep(0.1)
        time.sleep(0.2)
        for _ in range(self.n):
            run("distributed.cli.dask_worker", "--scheduler-file", str(sched), "--nthreads", "1",
                "--no-nanny", "--no-dashboard", "--host", "127.0.0.1")
        self.address = json.loads(sched.read_text())["address"]
        self.client = Client(self.address, timeout=30, set_as_default=False)
        self.client.wait_for_workers(self.n, timeout=120)
        return self

    def __exit__(self, *exc):
        self.client.close()
        for proc in reversed(self.procs):
            proc.send_signal(signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def corpus(folder: Path) -> tuple[Path, float]:
    """The clips to extract and their total length in seconds."""
    import soundfile as sf

    real = REPO.parent / "shared" / "data" / "gtzan" / "audio"
    root = folder / "audio"
    if real.is_dir():
        shutil.copytree(real, root)
    else:  # a user's clone: 20 synthetic 30-second clips
        import numpy as np

        rng = np.random.default_rng(0)
        for i in range(20):
            (root / f"g{i % 2}").mkdir(parents=True, exist_ok=True)
            sf.write(root / f"g{i % 2}" / f"c{i:03d}.wav",
                     (0.1 * rng.standard_normal(30 * 22050)).astype("float32"), 22050)
    seconds = sum(sf.info(p).duration for p in root.rglob("*.wav"))
    return root, seconds


def timed_extract(root: Path, out: Path, address: str) -> float:
    from featx import FeatureSettings
    from featx.extract.runner import run_extraction

    start = time.perf_counter()
    run_extraction([root], out, settings=FeatureSettings(preset="gtzan"), progress=False,
                   overwrite=True, scheduler=address)
    return time.perf_counter() - start


def warm(cluster: Cluster, root: Path) -> None:
    """Every worker analyses one file first (imports and compiled kernels)."""
    from featx import FeatureSettings
    from featx.extract.runner import _work

    first = str(next(iter(sorted(root.rglob("*.wav")))))
    futures = [cluster.client.submit(_work, first, FeatureSettings(preset="gtzan"), pure=False,
                                     workers=[w]) for w in cluster.client.scheduler_info()["workers"]]
    cluster.client.gather(futures)


def tiny_overhead(address: str, n: int) -> tuple[float, float]:
    """Seconds per tiny task: on the cluster (``executors.map_files``), and in featx's
    local pool of one process."""
    from featx.extract.executors import map_files

    keys = [f"/x/{i}.wav" for i in range(n)]
    start = time.perf_counter()
    got = list(map_files(os.path.basename, keys, scheduler=address))
    cluster = (time.perf_counter() - start) / n
    assert len(got) == n
    list(map_files(os.path.basename, keys[:20], jobs=2))  # the local pool started
    start = time.perf_counter()
    got = list(map_files(os.path.basename, keys, jobs=2))
    local = (time.perf_counter() - start) / n
    return cluster, local


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2, help="timed runs per worker count (best kept)")
    parser.add_argument("--tiny", type=int, default=400, help="tiny tasks for the overhead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        root, audio_s = corpus(folder)
        n_files = len(list(root.rglob("*.wav")))
        times, overhead = {}, None
        for n in (1, 2):
            with Cluster(n, folder) as cluster:
                warm(cluster, root)
                times[n] = min(timed_extract(root, folder / f"out{n}.csv", cluster.address)
                               for _ in range(args.repeat))
                if n == 1:
                    overhead = tiny_overhead(cluster.address, args.tiny)
        same = (folder / "out1.csv").read_bytes() == (folder / "out2.csv").read_bytes()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{n_files} clips, {audio_s:.0f} s of audio; {cores} CPU cores on this machine\n")
    print(f"{'workers':>7} {'seconds':>8} {'s/file':>7} {'x realtime':>10} {'speed-up':>9}")
    for n, t in times.items():
        print(f"{n:>7} {t:>8.2f} {t / n_files:>7.3f} {audio_s / t:>10.0f} {times[1] / t:>9.2f}")
    print(f"outputs of 1 and 2 workers byte-identical: {same}")
    cluster_s, local_s = overhead
    print(f"\nper-task overhead (tiny tasks, {args.tiny}): Dask scheduler {cluster_s * 1e3:.2f} ms, "
          f"featx local pool {local_s * 1e3:.2f} ms; one GTZAN clip takes "
          f"{times[1] / n_files * 1e3:.0f} ms")
    rate = audio_s / times[1]  # seconds of audio per second on one worker (one core)
    efficiency = min(1.0, times[1] / times[2] / 2)
    core_hours = FMA_HOURS * 3600 / rate / 3600
    print(f"\nFMA-full on paper ({FMA_TRACKS:,} tracks, {FMA_HOURS:,} h): {core_hours:.0f} core-hours at "
          f"{rate:.0f}x realtime per worker; scaling efficiency {efficiency:.2f} as measured at 2 workers")
    print(f"{'workers':>7} {'hours':>7}")
    for n in (1, 16, 64, 256, 1024):
        hours = core_hours / n / (efficiency if n > 1 else 1.0) + FMA_TRACKS * cluster_s / 3600
        print(f"{n:>7} {hours:>7.2f}")


if __name__ == "__main__":
    main()
