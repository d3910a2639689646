"""Peak memory of reading and preparing a large feature table: Parquet against CSV.

A synthetic table (default 1,000,000 rows of 57 float64 features, segment rows of 10
genres) is written once as CSV and once as Parquet. Each is then read in a fresh
Python process by ``featx.read_feature_csv`` and its feature matrix taken
(``table.X``, what training uses); the process reports its peak resident memory
(``ru_maxrss``) and its time. The baseline is the same process's resident memory
after its imports (Linux: ``/proc/self/status``).

    python bench/bench_parquet.py [--rows 1000000] [--features 57] [--dir /tmp/featx-bench]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_CHILD = r"""
import json, resource, sys, time
import numpy, pandas, pyarrow, pyarrow.parquet
import featx.data.table as t
def rss_kib():
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
base = rss_kib()  # resident after the imports (ru_maxrss below is the run's high-water mark)
start = time.perf_counter()
table = t.read_feature_csv(sys.argv[1])
X = table.X
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"base_kib": base, "peak_kib": peak, "seconds": seconds,
                  "x_bytes": X.nbytes, "rows": table.n_rows}))
"""


def write_tables(folder: Path, rows: int, features: int, chunk: int = 100_000) -> tuple[Path, Path]:
    """Write the same synthetic table as ``table.csv`` and ``table.parquet`` (in chunks)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    genres = [f"g{i}" for i in range(10)]
    columns = ["filename", "length", *[f"f{j}_mean" for j in range(features)], "label"]
    csv_path, pq_path = folder / "table.csv", folder / "table.parquet"
    rng = np.random.default_rng(0)
    writer = None
    with open(csv_path, "w", newline="") as fh:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            idx = np.arange(start, start + n)
            track, seg = idx // 10, idx % 10
            label = [genres[t % 10] for t in track]
            names = [f"{g}.{t:07d}.{s}.wav" for g, t, s in zip(label, track, seg)]
            values = rng.standard_normal((n, features)) * 100.0
            frame = pd.DataFrame(values, columns=columns[2:-1])
            frame.insert(0, "length", 66149)
            frame.insert(0, "filename", names)
            frame["label"] = label
            frame.to_csv(fh, index=False, header=start == 0, float_format=None)
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(pq_path, table.schema)
            writer.write_table(table)
    writer.close()
    return csv_path, pq_path


def measure(path: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=57)
    parser.add_argument("--dir", type=Path, default=None, help="where the tables are written")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        t0 = time.perf_counter()
        csv_path, pq_path = write_tables(Path(tmp), args.rows, args.features)
        print(f"wrote {args.rows:,} rows x {args.features} features in {time.perf_counter() - t0:.1f} s: "
              f"CSV {csv_path.stat().st_size / 2**20:.0f} MiB, "
              f"Parquet {pq_path.stat().st_size / 2**20:.0f} MiB")
        results = {"CSV": measure(csv_path), "Parquet": measure(pq_path)}
    one = results["Parquet"]["x_bytes"] / 2**20
    print(f"\none copy of the feature matrix: {one:.0f} MiB (float64)\n")
    print(f"{'format':<8} {'read+X s':>9} {'peak RSS MiB':>13} {'over imports MiB':>17} {'copies':>7}")
    for name, r in results.items():
        over = (r["peak_kib"] - r["base_kib"]) / 1024
        print(f"{name:<8} {r['seconds']:>9.1f} {r['peak_kib'] / 1024:>13.0f} {over:>17.0f} {over / one:>7.2f}")
    c, p = results["CSV"], results["Parquet"]
    ratio = (c["peak_kib"] - c["base_kib"]) / max(1, p["peak_kib"] - p["base_kib"])
    print(f"\nCSV / Parquet, memory over imports: {ratio:.2f}x; time: {c['seconds'] / p['seconds']:.2f}x")


if __name__ == "__main__":
    main()
