"""`featx spectrograms` against the straightforward per-segment librosa loop, side by side.

The baseline is what a tutorial notebook does: ``librosa.load`` each clip, cut the
Kaggle 3-s segments, and for each segment call ``librosa.power_to_db(
librosa.feature.melspectrogram(..., fmax=8000))``, ``librosa.feature.mfcc(..., n_mfcc=20)``
and ``librosa.feature.chroma_stft(...)`` (three STFTs per segment), keeping the images
and saving them with ``numpy.save`` at the end. featx makes the same images (one STFT
per segment) into a store. Every comparison alternates the two sides and repeats, so
both see the same machine load, and prints the median ratio and its range:

1. in one process, one core: each clip's images (featx's whole per-file work: decode,
   images, encoding with checksums, writing into a store), clip by clip;
2. whole processes, start-up included: the baseline script over the corpus against
   ``featx spectrograms -j 1``; start-up: a one-clip run less one clip's in-process time;
3. ``-j 2`` against ``-j 1``: featx's per-file task in featx's own pool of 1 and of 2
   warm workers (steady state, as bench/bench_extract.py measures it), and whole runs;
4. the store: bytes on disk against the float32 images, the codec's ratio, and the
   ratios of the alternatives considered;
5. reading: random batches of 256 rows, every image checked against its checksum,
   against the same reads unchecked and against zarr reading the same arrays.

    python bench/bench_spectrograms.py                  # the clips in ../shared/data/gtzan/audio
                                                        # ($FEATX_SHARED_DATA/gtzan/audio), each twice
    python bench/bench_spectrograms.py --copies 1 --repeats 2
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from threadpoolctl import threadpool_limits  # noqa: E402

from featx.extract.audio import find_audio, load, segment  # noqa: E402
from featx.features.spectrograms import DEFAULT_KINDS, SpectrogramSettings, segment_spectrograms  # noqa: E402

DEFAULT_AUDIO = Path(os.environ.get("FEATX_SHARED_DATA", HERE.parent.parent / "shared" / "data")) / "gtzan" / "audio"
SETTINGS = SpectrogramSettings()

_BASELINE = """
import sys
import librosa
import numpy as np

out, paths = sys.argv[1], sys.argv[2:]
images = {"mel": [], "mfcc": [], "chroma": []}
for path in paths:
    y, sr = librosa.load(path, sr=22050)
    hop = 66150
    for i in range((len(y) - 1) // hop):  # the Kaggle 3-s segments: 66149 samples each
        seg = y[i * hop:i * hop + hop - 1]
        mel = librosa.feature.melspectrogram(y=seg, sr=sr, n_fft=2048, hop_length=512, n_mels=128, fmax=8000)
        images["mel"].append(librosa.power_to_db(mel))
        images["mfcc"].append(librosa.feature.mfcc(y=seg, sr=sr, n_mfcc=20, n_fft=2048, hop_length=512, n_mels=128))
        images["chroma"].append(librosa.feature.chroma_stft(y=seg, sr=sr, n_fft=2048, hop_length=512, n_chroma=12))
for kind, stack in images.items():
    np.save(f"{out}_{kind}.npy", np.stack(stack))
"""


def baseline_images(segments: np.ndarray, settings: SpectrogramSettings) -> dict[str, np.ndarray]:
    """The straightforward way, in this process: three librosa calls on each segment."""
    import librosa

    s = settings
    out = {kind: [] for kind in DEFAULT_KINDS}
    for y in segments:
        mel = librosa.feature.melspectrogram(y=y, sr=s.sr, n_fft=s.n_fft, hop_length=s.hop_length,
                                             n_mels=s.n_mels, fmax=s.fmax)
        out["mel"].append(librosa.power_to_db(mel))
        out["mfcc"].append(librosa.feature.mfcc(y=y, sr=s.sr, n_mfcc=s.n_mfcc, n_fft=s.n_fft,
                                                hop_length=s.hop_length, n_mels=s.n_mels))
        out["chroma"].append(librosa.feature.chroma_stft(y=y, sr=s.sr, n_fft=s.n_fft,
                                                         hop_length=s.hop_length, n_chroma=s.n_chroma))
    return {kind: np.stack(v) for kind, v in out.items()}


def _spread(values, unit="x") -> str:
    return (f"median {statistics.median(values):.2f}{unit}, range {min(values):.2f}-{max(values):.2f}{unit} "
            f"({len(values)} runs)")


def _child_env() -> dict:
    """One BLAS thread, and byte code cached (as after installation)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _timed(cmd) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=_child_env(), cwd=HERE.parent)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd[:6]))} ... failed:\n{done.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _corpus(files, folder: Path, copies: int) -> Path:
    """``copies`` copies of each clip (genre folders kept; copies, not links: featx reads a
    file reached twice once)."""
    for c in range(copies):
        for f in files:
            dest = folder / f"copy{c}" / f.parent.name / f.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, dest)
    return folder


def in_process(files, tmp: Path, repeats: int):
    """Seconds per clip of the baseline and of featx's whole per-file work, alternating."""
    import librosa

    from featx.runtime.allocator import keep_work_arrays
    from featx.data.store import StoreWriter
    from featx.extract.spectro_runner import _spectro_work

    keep_work_arrays()  # as featx spectrograms sets for itself
    clips = [np.ascontiguousarray(segment(load(f, sr=SETTINGS.sr), hop=SETTINGS.segment_hop)) for f in files]
    ratios, base_s, ours_s = [], [], []
    worst = dict.fromkeys(DEFAULT_KINDS, 0.0)
    with threadpool_limits(limits=1):
        baseline_images(clips[0][:1], SETTINGS)  # imports and caches, for both sides alike
        _spectro_work(str(files[0]), SETTINGS)
        for r in range(repeats):
            t_base = t_ours = 0.0
            with StoreWriter(tmp / f"inproc{r}", SETTINGS) as writer:
                for k, (f, segs) in enumerate(zip(files, clips)):
                    t0 = time.perf_counter()
                    y, _ = librosa.load(f, sr=SETTINGS.sr)
                    ref = baseline_images(np.ascontiguousarray(segment(y, hop=SETTINGS.segment_hop)), SETTINGS)
                    t1 = time.perf_counter()
                    rec = _spectro_work(str(f), SETTINGS)
                    writer.append(rec["images"], key=f"{k}", filename=f.name, label=f.parent.name,
                                  length=rec["length"])
                    t2 = time.perf_counter()
                    t_base += t1 - t0
                    t_ours += t2 - t1
                    if r == 0:
                        ours = segment_spectrograms(segs, settings=SETTINGS)
                        for kind in DEFAULT_KINDS:
                            diff = np.abs(ours[kind].astype(np.float64) - ref[kind])
                            peak = np.abs(ref[kind]).max(axis=(1, 2), keepdims=True)
                            worst[kind] = max(worst[kind], float((diff / np.maximum(peak, 1e-12)).max()))
            base_s.append(t_base / len(files))
            ours_s.append(t_ours / len(files))
            ratios.append(t_base / t_ours)
    return base_s, ours_s, ratios, worst


def whole_process(corpus: Path, one: Path, tmp: Path, repeats: int):
    """Whole processes, alternating: the baseline script and `featx spectrograms -j 1`."""
    paths = sorted(str(p) for p in corpus.rglob("*.wav"))
    featx = [sys.executable, "-m", "featx", "-q", "spectrograms"]
    _timed([sys.executable, "-c", _BASELINE, str(tmp / "warm"), paths[0]])  # librosa's compiled code cached
    _timed([*featx, str(one), "-o", str(tmp / "warm_store"), "-j", "1"])
    runs = []
    for r in range(repeats):
        base = _timed([sys.executable, "-c", _BASELINE, str(tmp / f"base{r}"), *paths])
        ours = _timed([*featx, str(corpus), "-o", str(tmp / f"whole{r}"), "-j", "1"])
        runs.append((base, ours))
        shutil.rmtree(tmp / f"whole{r}")
    ones, base_ones = [], []
    for r in range(5):
        ones.append(_timed([*featx, str(one), "-o", str(tmp / f"one{r}"), "-j", "1"]))
        base_ones.append(_timed([sys.executable, "-c", _BASELINE, str(tmp / f"bone{r}"), str(next(one.rglob("*.wav")))]))
    return runs, ones, base_ones


def _cpu_seconds(pids) -> float:
    """User + system CPU seconds used so far by the processes ``pids`` (Linux)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


_SPIN = """
import time
t0, c0 = time.perf_counter(), time.process_time()
x = 0
for i in range(20_000_000):
    x += i
print(time.process_time() - c0, time.perf_counter() - t0)
"""


def free_cores() -> float:
    """Cores two busy-looping processes get together right now: what -j 2 can hope for."""
    procs = [subprocess.Popen([sys.executable, "-c", _SPIN], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    return sum(float(cpu) / float(wall) for cpu, wall in (p.communicate()[0].split() for p in procs))


def scaling(corpus: Path, tmp: Path, repeats: int):
    """-j 1 and -j 2: the per-file task in featx's pool (steady state), and whole runs.

    Besides wall time, the workers' CPU seconds: the cores they got (CPU / wall) tell a
    machine busy with other work from a task that does not scale.
    """
    from concurrent.futures import wait

    from featx.extract import pool
    from featx.extract.spectro_runner import _spectro_work

    keys = sorted(str(p) for p in corpus.rglob("*.wav"))
    steady = {1: [], 2: []}
    cpu = {1: [], 2: []}
    cores = []
    executors = {w: pool._executor(w, fresh=True) for w in (1, 2)}
    try:
        for w, executor in executors.items():  # imports done, every worker warm
            wait([executor.submit(_spectro_work, k, SETTINGS) for k in keys[: 2 * w]])
        for _ in range(repeats):
            cores.append(free_cores())
            for w, executor in executors.items():
                pids = list(executor._processes)
                c0, t0 = _cpu_seconds(pids), time.perf_counter()
                for future in [executor.submit(_spectro_work, k, SETTINGS) for k in keys]:
                    future.result()
                steady[w].append(time.perf_counter() - t0)
                cpu[w].append(_cpu_seconds(pids) - c0)
    finally:
        for executor in executors.values():
            executor.shutdown()
    whole = {1: [], 2: []}
    for r in range(repeats):
        for jobs in (1, 2):
            out = tmp / f"scale{jobs}_{r}"
            whole[jobs].append(_timed([sys.executable, "-m", "featx", "-q", "spectrograms", str(corpus), "-o",
                                       str(out), "-j", str(jobs)])[0])
            shutil.rmtree(out)
    return steady, cpu, whole, cores


def store_size(corpus: Path, tmp: Path):
    """The store's bytes against its float32 images; the alternatives' ratios on the same images."""
    from numcodecs import Blosc, Zstd

    from featx.data.store import open_store
    from featx.extract.spectro_runner import run_spectrograms

    path = tmp / "sized"
    run_spectrograms([corpus], path, settings=SETTINGS, jobs=1, progress=False)
    store = open_store(path)
    images = store.read(slice(None))
    raw = sum(a.nbytes for a in images.values())
    files = [p for p in path.rglob("*") if p.is_file()]
    apparent = sum(p.stat().st_size for p in files)
    on_disk = sum(p.stat().st_blocks * 512 for p in files)
    chunks = sum(p.stat().st_size for p in files if p.name.startswith("c."))
    alternatives = {"zstd level 0, no shuffle (zarr's default; featx 0.1.0)": Zstd(level=0),
                    "blosc zstd level 1, byte shuffle": Blosc("zstd", 1, Blosc.SHUFFLE),
                    "blosc lz4 level 5, byte shuffle (featx now)": Blosc("lz4", 5, Blosc.SHUFFLE)}
    ratios = {}
    for name, codec in alternatives.items():
        t0 = time.perf_counter()
        encoded = [codec.encode(np.ascontiguousarray(x)) for a in images.values() for x in a]
        t1 = time.perf_counter()
        for e in encoded:
            codec.decode(e)
        t2 = time.perf_counter()
        ratios[name] = (raw / sum(len(e) for e in encoded), raw / (t1 - t0) / 1e6, raw / (t2 - t1) / 1e6)
    return {"rows": len(store), "raw": raw, "apparent": apparent, "on_disk": on_disk, "chunks": chunks,
            "files": len(files), "alternatives": ratios}, path


def reading(path: Path, repeats: int, batches: int = 20):
    """Images per second of random 256-row batches: checked, unchecked, and zarr's own read."""
    import zarr

    from featx.data.store import open_store

    store = open_store(path)
    group = zarr.open_group(str(path), mode="r")
    rng = np.random.default_rng(0)
    picks = [np.sort(rng.choice(len(store), size=min(256, len(store)), replace=False)) for _ in range(batches)]
    ways = {"featx, checked": lambda rows: store.read(rows),
            "featx, unchecked": lambda rows: store._read(rows, None, verify=False),
            "zarr": lambda rows: {k: group[k].oindex[rows] for k in store.kinds}}
    for way in ways.values():
        way(picks[0])
    rates = {name: [] for name in ways}
    for _ in range(repeats):
        for name, way in ways.items():
            t0 = time.perf_counter()
            for rows in picks:
                way(rows)
            rates[name].append(sum(len(p) for p in picks) / (time.perf_counter() - t0))
    return rates


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("audio", nargs="?", default=str(DEFAULT_AUDIO), help="folder of audio clips")
    parser.add_argument("--clips", type=int, default=None, help="use the first N clips (default: all)")
    parser.add_argument("--copies", type=int, default=2, help="copies of each clip in the whole-process corpus")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each comparison")
    parser.add_argument("--parts", default="1,2,3,4,5", help="which of the five comparisons to run (e.g. 3)")
    args = parser.parse_args(argv)
    parts = {int(p) for p in args.parts.split(",") if p.strip()}
    files = find_audio([args.audio])[: args.clips]
    print(f"{len(files)} clips, mel/MFCC/chroma of 3-s segments; {_cpu_name()}; "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = _corpus(files, tmp / "corpus", args.copies)
        one = _corpus(files[:1], tmp / "one", 1)
        n = len(files) * args.copies

        if parts & {1, 2}:
            base_s, ours_s, ratios, worst = in_process(files, tmp, args.repeats)
        if 1 in parts:
            _print_in_process(base_s, ours_s, ratios, worst)
        if 2 in parts:
            _print_whole(*whole_process(corpus, one, tmp, args.repeats), n=n,
                         files=files, copies=args.copies, ours_s=ours_s, base_s=base_s)
        if 3 in parts:
            _print_scaling(*scaling(corpus, tmp, args.repeats), n=n)
        if parts & {4, 5}:
            size, path = store_size(corpus, tmp)
            if 4 in parts:
                _print_size(size)
            if 5 in parts:
                _print_reading(reading(path, args.repeats))
    return 0


def _print_in_process(base_s, ours_s, ratios, worst):
    print("\n1. in one process, one core, per clip (decode + images; featx also encodes, checks and "
          "writes into a store)")
    print(f"   baseline {statistics.median(base_s) * 1000:.0f} ms, featx "
          f"{statistics.median(ours_s) * 1000:.1f} ms: {_spread(ratios)}")
    for kind in DEFAULT_KINDS:
        print(f"   {kind:>6}: largest difference {worst[kind]:.2g} of the image's peak")


def _print_whole(runs, ones, base_ones, *, n, files, copies, ours_s, base_s):
    print(f"\n2. whole processes, {n} clips ({len(files)} clips x {copies} copies), start-up included "
          f"(load average after: {os.getloadavg()[0]:.1f})")
    for r, ((bw, bc), (ow, oc)) in enumerate(runs, 1):
        print(f"   run {r}: baseline {bw:.2f} s wall ({bc:.2f} s CPU), featx spectrograms -j 1 {ow:.2f} s "
              f"wall ({oc:.2f} s CPU): {bw / ow:.2f}x wall, {bc / oc:.2f}x CPU")
    print(f"   wall: {_spread([b[0] / o[0] for b, o in runs])}; CPU: {_spread([b[1] / o[1] for b, o in runs])}")
    clip, base_clip = statistics.median(ours_s), statistics.median(base_s)
    print("   start-up (a one-clip run less one clip in-process):")
    print(f"     featx    wall {_spread([w - clip for w, _ in ones], ' s')}; CPU "
          f"{_spread([c - clip for _, c in ones], ' s')}")
    print(f"     baseline wall {_spread([w - base_clip for w, _ in base_ones], ' s')}; CPU "
          f"{_spread([c - base_clip for _, c in base_ones], ' s')}")


def _print_scaling(steady, cpu, whole, cores, *, n):
    print(f"\n3. -j 2 against -j 1, {n} clips (load average after: {os.getloadavg()[0]:.1f})")
    print(f"   two busy-looping processes got {_spread(cores, ' cores')} together (the most -j 2 can use)")
    print(f"   featx's pool, warm workers: -j 1 {statistics.median(steady[1]):.2f} s, -j 2 "
          f"{statistics.median(steady[2]):.2f} s: {_spread([a / b for a, b in zip(steady[1], steady[2])])}")
    for w in (1, 2):
        print(f"   -j {w}: workers' CPU {statistics.median(cpu[w]) / n * 1000:.1f} ms per clip, cores they got "
              f"{_spread([c / t for c, t in zip(cpu[w], steady[w])], '')}")
    print(f"   whole runs (worker start-up included): -j 1 {statistics.median(whole[1]):.2f} s, -j 2 "
          f"{statistics.median(whole[2]):.2f} s: {_spread([a / b for a, b in zip(whole[1], whole[2])])}")


def _print_size(size):
    print(f"\n4. the store of {size['rows']} segments: {size['files']} files, {size['apparent'] / 1e6:.1f} MB "
          f"({size['on_disk'] / 1e6:.1f} MB on disk) for {size['raw'] / 1e6:.1f} MB of float32 images; "
          f"chunks {size['raw'] / size['chunks']:.3f}x smaller than the images")
    for name, (ratio, enc, dec) in size["alternatives"].items():
        print(f"   {name:<55} {ratio:.3f}x, encode {enc:5.0f} MB/s, decode {dec:5.0f} MB/s")


def _print_reading(rates):
    print("\n5. reading random batches of 256 rows (mel + MFCC + chroma), images per second")
    for name, values in rates.items():
        print(f"   {name:<18} median {statistics.median(values):7.0f}, range {min(values):.0f}-{max(values):.0f}")
    cost = [u / c for c, u in zip(rates["featx, checked"], rates["featx, unchecked"])]
    print(f"   checking costs: time checked / unchecked {_spread(cost)}")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f", {os.cpu_count()} cores"
    except OSError:
        pass
    return f"{os.cpu_count()} cores"


if __name__ == "__main__":
    sys.exit(main())
