"""Sweep throughput: per-trial overhead, parallel speed-up, and report time for 1000 trials.

Three measurements, printed as Markdown tables:

1. A grid of small mlp trials run by ``featx sweep`` (one worker) against the
   baseline of calling :func:`featx.training.cross_validate` for each
   configuration in a loop on the same rows; overhead = wall time per trial
   minus the time spent inside ``model.fit``.
2. The same grid with ``--jobs 2`` (fresh folder), and the 600-trial time it implies.
3. ``results.csv`` + ``report.md`` + ``report.html`` for a 1000-trial sweep
   (trial results synthesised; the plots, tables and best-model section are real).

    python bench/bench_sweep.py                  # GTZAN 30-s table if present
    python bench/bench_sweep.py --epochs 3,6 --jobs 2
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def synthetic_csv(path: Path, rows: int = 1000) -> Path:
    import pandas as pd

    rng = np.random.default_rng(0)
    labels = np.repeat([f"g{i}" for i in range(10)], rows // 10)
    X = rng.normal(size=(len(labels), 57)) + np.repeat(np.arange(10), rows // 10)[:, None] * 0.3
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(57)])
    frame.insert(0, "length", 661794)
    frame.insert(0, "filename", [f"{g}.{i:05d}.wav" for i, g in enumerate(labels)])
    frame["label"] = labels
    frame.to_csv(path, index=False)
    return path


def make_plan(csv: Path, out: Path, params: list[str], *, folds: int, jobs: int, model: str = "mlp"):
    from featx.models.registry import get_model
    from featx.sweep.plan import SweepOptions, plan_sweep
    from featx.sweep.space import space_from_options

    options = SweepOptions(csv=csv, model=model, output=out, folds=folds, jobs=jobs).validate()
    return plan_sweep(options, space_from_options(get_model(model), params))


def timed_sweep(csv, out, params, *, folds, jobs):
    from featx.sweep.runner import run_sweep

    plan = make_plan(csv, out, params, folds=folds, jobs=jobs)
    start = time.perf_counter()
    outcome = run_sweep(plan, progress=False, report=False)
    wall = time.perf_counter() - start - outcome.retrain_seconds  # the trials only
    records = [outcome.records[t.key] for t in plan.trials]
    return plan, outcome, wall, records


def baseline(plan, folds: int) -> tuple[float, float]:
    """cross_validate (what 'featx train --no-refit' runs) for every configuration, same rows."""
    from featx.training.cv import cross_validate

    table = plan.table.subset(np.isin(np.arange(plan.table.n_rows), plan.design.dev))
    start = time.perf_counter()
    for trial in plan.trials:
        config = dataclasses.replace(trial.config, refit=False)  # TrainConfig is frozen
        cross_validate(table, config, progress=False)
    return time.perf_counter() - start, len(plan.trials)


def report_time(csv: Path, out: Path, best_from: Path, n: int = 1000) -> tuple[float, float, int]:
    """Write results.csv and the reports for ``n`` synthesised trial results."""
    from featx.io.atomic import atomic_write
    from featx.sweep.space import BEST
    from featx.sweep.plan import SweepOutcome, best_trial, results_frame
    from featx.sweep.report import write_report

    params = ["epochs=20,40,60,80,100", "batch_size=16,32,64,128", "learning_rate=1e-4,3e-4,1e-3,3e-3,1e-2",
              "dropout=" + ",".join(f"{d:.1f}" for d in np.linspace(0.0, 0.9, 10))]
    plan = make_plan(csv, out, params, folds=5, jobs=1)
    assert len(plan.trials) == n, len(plan.trials)
    rng = np.random.default_rng(0)
    records = {}
    for t in plan.trials:
        base = 0.7 - 0.3 * abs(np.log10(t.point["learning_rate"]) + 3) / 2 - 0.2 * t.point["dropout"] ** 2
        level = {m: float(np.clip(base + rng.normal(0, 0.02), 0, 1)) for m in
                 ("accuracy", "precision_macro", "recall_macro", "f1_macro")}
        level["std"] = {m: float(abs(rng.normal(0.02, 0.01))) for m in level}
        level["n"] = 800
        ok = rng.random() > 0.02
        records[t.key] = {"key": t.key, "status": "ok" if ok else "failed", "seconds": float(rng.uniform(2, 9)),
                          "metrics": {"track": level, "segment": level, "epochs_run": 30.0},
                          **({} if ok else {"error": "TrainingError: training loss became nan in epoch 3"})}
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(best_from, out / BEST)
    start = time.perf_counter()
    frame = results_frame(plan, records)
    atomic_write(out / "results.csv", frame.to_csv(index=False, float_format="%.6g"))
    results_s = time.perf_counter() - start
    outcome = SweepOutcome(plan, records, total=n, reused=n, ran=0,
                           failed=int((frame["status"] == "failed").sum()), pending=0,
                           best=best_trial(plan, records), best_dir=out / BEST, seconds=0.0, results=frame)
    start = time.perf_counter()
    write_report(outcome)
    return results_s, time.perf_counter() - start, (out / "report.html").stat().st_size


def main(argv=None) -> None:
    default = Path(os.environ.get("FEATX_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=default / "gtzan" / "features_30_sec.csv")
    parser.add_argument("--epochs", default="3,6")
    parser.add_argument("--batch-size", default="32,64")
    parser.add_argument("--learning-rate", default="1e-3,1e-2")
    parser.add_argument("--units", default="32")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args(argv)

    from featx.models.keras_fit import describe_device

    root = Path(tempfile.mkdtemp(prefix="featx-bench-sweep-"))
    csv = args.csv if args.csv.exists() else synthetic_csv(root / "synthetic.csv")
    params = [f"epochs={args.epochs}", f"batch_size={args.batch_size}", f"learning_rate={args.learning_rate}",
              f"units={args.units}", "patience=0", "reduce_lr_patience=0"]
    print(f"data: {csv}; grid: {' '.join(params)}; {args.folds} folds")
    print(f"device: {describe_device()}; machine: {platform.machine()}, {os.cpu_count()} CPU cores, "
          f"load average {os.getloadavg()[0]:.1f}; python {platform.python_version()}")

    try:
        plan, outcome, wall1, records = timed_sweep(csv, root / "j1", params, folds=args.folds, jobs=1)
        n = len(records)
        fit = sum(r["metrics"]["fit_seconds"] for r in records)
        inside = sum(r["seconds"] for r in records)
        print()
        print("| run | trials | wall s | s/trial | model.fit s/trial | overhead s/trial | vs baseline |")
        print("|---|---|---|---|---|---|---|")
        base_per = None
        if not args.skip_baseline:
            base_wall, base_n = baseline(plan, args.folds)
            base_per = base_wall / base_n
            print(f"| cross_validate loop (baseline) | {base_n} | {base_wall:.1f} | {base_per:.2f} | | | 1.00x |")
        ratio = f"{wall1 / n / base_per:.2f}x" if base_per else ""
        print(f"| featx sweep --jobs 1 | {n} | {wall1:.1f} | {wall1 / n:.2f} | {fit / n:.2f} | "
              f"{(wall1 - fit) / n:.2f} | {ratio} |")
        _, _, wall2, _ = timed_sweep(csv, root / "j2", params, folds=args.folds, jobs=args.jobs)
        ratio = f"{wall2 / n / base_per:.2f}x" if base_per else ""
        print(f"| featx sweep --jobs {args.jobs} | {n} | {wall2:.1f} | {wall2 / n:.2f} | | | {ratio} |")
        print()
        print(f"per trial, outside model.fit: {(inside - fit) / n:.3f} s inside the trial (scaling, "
              f"prediction, metrics), {(wall1 - inside) / n:.3f} s in the parent (scheduling, journal, "
              f"results.csv); first trial includes importing TensorFlow")
        steady = sorted(r["seconds"] - r["metrics"]["fit_seconds"] for r in records)[: max(1, n - 1)]
        print(f"steady-state in-trial overhead (all but the slowest trial): {np.mean(steady):.3f} s")
        print(f"retraining the best configuration and testing it once: {outcome.retrain_seconds:.1f} s "
              "(not in the wall times above)")
        print(f"600 trials of this grid at --jobs {args.jobs}: about {600 * wall2 / n / 60:.0f} min "
              f"({60 * n / wall2:.1f} trials/min)")

        results_s, report_s, size = report_time(csv, root / "r1000", outcome.best_dir or root / "j1" / "best")
        print()
        print("| 1000-trial sweep | seconds |")
        print("|---|---|")
        print(f"| results.csv | {results_s:.2f} |")
        print(f"| report.md + report.html with figures ({size / 1e6:.1f} MB) | {report_s:.2f} |")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
