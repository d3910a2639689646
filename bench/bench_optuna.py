"""TPE against the full grid: the CPU time TPE needs to come within 0.01 of the grid's best
validation score, and the test-part score of each search's best configuration.

For each seed, side by side in one run (grid first, then TPE, alternating which goes first
from seed to seed), ``featx sweep`` runs:

(a) svm, C x gamma on an 8 x 8 log grid (``--search grid`` against ``--search tpe``);
(b) mlp, units x dropout x learning rate (4 x 3 x 3 = 36 combinations, ``--epochs``),
    against ``--search tpe --prune median``.

CPU time is the sum of the trials' ``train_seconds`` (one worker; every trial runs in the
sweep process), counted in trial order until a trial's validation score is within 0.01 of
the grid's best. Printed: per seed the figures, then the median and range of the ratios.

    python bench/bench_optuna.py --seeds 0,1,2                 # both parts
    python bench/bench_optuna.py --part svm --seeds 0,1,2 --n-iter 16
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
TABLE = REPO / "features_csv" / "features_30_sec.csv"

PARTS = {
    "svm": {"model": "svm", "params": ["C=" + ",".join(f"{10 ** (i / 7 * 5 - 2):.4g}" for i in range(8)),
                                      "gamma=" + ",".join(f"{10 ** (i / 7 * 4 - 4):.4g}" for i in range(8))],
            "prune": "none"},
    "mlp": {"model": "mlp", "params": ["units=32,64,128,256", "dropout=0.1,0.3,0.5",
                                       "learning_rate=0.0003,0.001,0.003"],
            "prune": "median"},
}


def sweep(part: str, search: str, seed: int, out: Path, args) -> dict:
    spec = PARTS[part]
    cmd = [sys.executable, "-m", "featx", "-q", "sweep", str(args.table), "-m", spec["model"], "-o", str(out),
           "--folds", str(args.folds), "--seed", str(seed), "--search", search]
    for p in spec["params"]:
        cmd += ["-p", p]
    if part == "mlp":
        cmd += ["-p", f"epochs={args.epochs}"]
    if search == "tpe":
        cmd += ["--n-iter", str(args.n_iter)]
        if spec["prune"] != "none":
            cmd += ["--prune", spec["prune"]]
    start = time.perf_counter()
    cpu0 = os.times()
    subprocess.run(cmd, check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                   stdout=subprocess.DEVNULL)
    cpu1 = os.times()
    import pandas as pd

    results = pd.read_csv(out / "results.csv")
    results["number"] = range(len(results))
    test = json.loads((out / "best" / "metrics.json").read_text())["track"]
    return {"results": results, "wall": time.perf_counter() - start,
            "cpu": (cpu1.children_user + cpu1.children_system) - (cpu0.children_user + cpu0.children_system),
            "test_f1": test["f1_macro"], "test_accuracy": test["accuracy"]}


def seconds_to_reach(results, target: float) -> float:
    """Trial seconds summed in trial order until a score reaches ``target`` (inf: never)."""
    total = 0.0
    for _, row in results.iterrows():
        total += float(row["train_seconds"]) if row["train_seconds"] == row["train_seconds"] else 0.0
        if row["f1_macro"] == row["f1_macro"] and row["f1_macro"] >= target:
            return total
    return float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=[*PARTS, "both"], default="both")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--n-iter", type=int, default=16, help="TPE trials")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--table", type=Path, default=TABLE)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    parts = list(PARTS) if args.part == "both" else [args.part]
    print(f"# TPE vs grid on {args.table.name}; {platform.node()}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.2f}; folds {args.folds}, TPE n_iter {args.n_iter}")
    for part in parts:
        print(f"\n## {part}\n\n| seed | grid best | grid trial s | TPE s to within 0.01 | ratio | "
              "grid test f1 | TPE test f1 | grid cpu s | TPE cpu s |\n|---|---|---|---|---|---|---|---|---|")
        ratios, deltas, cpu = [], [], []
        for k, seed in enumerate(seeds):
            with tempfile.TemporaryDirectory(prefix="featx-bench-optuna-") as tmp:
                order = ["grid", "tpe"] if k % 2 == 0 else ["tpe", "grid"]
                runs = {s: sweep(part, s, seed, Path(tmp) / s, args) for s in order}
            grid, tpe = runs["grid"], runs["tpe"]
            best = float(grid["results"]["f1_macro"].max())
            grid_s = float(grid["results"]["train_seconds"].sum())
            tpe_s = seconds_to_reach(tpe["results"], best - 0.01)
            ratios.append(tpe_s / grid_s)
            deltas.append(tpe["test_f1"] - grid["test_f1"])
            cpu.append(tpe["cpu"] / grid["cpu"])
            print(f"| {seed} | {best:.4f} | {grid_s:.1f} | {tpe_s:.1f} | {tpe_s / grid_s:.3f} | "
                  f"{grid['test_f1']:.4f} | {tpe['test_f1']:.4f} | {grid['cpu']:.1f} | {tpe['cpu']:.1f} |")
        finite = [r for r in ratios if r != float("inf")]
        print(f"\n{part}: TPE/grid trial seconds to within 0.01: median {statistics.median(ratios):.3f}, "
              f"range {min(ratios):.3f}..{max(ratios):.3f} over {len(seeds)} seeds "
              f"({len(finite)} reached it); process CPU TPE/grid (whole runs): "
              f"{', '.join(f'{c:.2f}' for c in cpu)}; test f1 TPE - grid: median {statistics.median(deltas):+.4f}, "
              f"range {min(deltas):+.4f}..{max(deltas):+.4f}")


if __name__ == "__main__":
    main()
