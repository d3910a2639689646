"""Running a sweep: parallel trials, journal, worker deaths, retraining the best configuration."""
from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import time
from pathlib import Path

from ..io.atomic import atomic_write
from ..io.guard import note_written, remove_folder, rename_folder, scratch_folder

logger = logging.getLogger(__name__)
BEST_TMP = ".best.tmp"
from ..bundle import LEGACY_LAYOUT as BUNDLE_LAYOUT
from ..data.labels import stratification_key
from ..data.splits import Fold, SplitPlan, inner_split
from ..errors import OutputError
from ..extract.executors import dask_map
from ..io.guard import Legacy, check_removable, claim_folder, clear_folder, json_says
from ..io.journal import Journal
from ..pipeline.train import train_bundle
from ..runtime.progress import progress_bar
from ..training.cv import label_encoding
from .plan import SweepOutcome, SweepPlan, best_trial, score_of, write_results
from .report import write_report
from .space import (
    _TABLES,
    BEST,
    JOURNAL,
    RESULTS,
    RUNNING,
    SETTINGS,
    Distribution,
    display_value,
    to_plain,
)
from .trials import Trial, run_trial, trial_identity

# ---------------------------------------------------------------------------
# The best configuration: retrain on all non-test rows, test once, save a bundle


def retrain_best(plan: SweepPlan, trial: Trial) -> Path:
    """Fit ``trial``'s configuration on the non-test rows, score the test part, save ``DIR/best``."""
    table, design, spec = plan.table, plan.design, plan.spec
    config = trial.config
    spec.family.prepare_process(None)
    labels = label_encoding(table, config)
    # a multi-label row is stratified on its rarest genre
    y = stratification_key(table.labels) if config.multi_label else labels.encode(table.labels)
    seed_offset = len(design.folds)
    train, valid = inner_split(design.dev, y, design.groups, config.valid_fraction,
                                config.seed + seed_offset, design.grouped)
    test = design.test
    split_plan = SplitPlan(plan.options.split, [Fold("test", train, valid, test)], design.groups,
                           f"trained on the non-test rows, tested once on {design.test_description}",
                           leaky=design.leaky)
    record_meta = {"trial": trial.key, "hyperparameters": to_plain(trial.point), "optimizer": config.optimizer,
                   "selected_by": f"{plan.options.level}-level {plan.options.metric} on validation folds",
                   "test_part": design.test_description, "n_test_rows": int(len(test))}
    device = spec.family.device()
    facts = [("model", f"{spec.name} ({spec.description})"),
             ("hyperparameters", ", ".join(f"{k}={v}" for k, v in trial.shown.items())),
             ("selected by", record_meta["selected_by"] + " (" + design.description + ")"),
             ("test part", f"{design.test_description}: {len(test)} rows, used once"),
             ("device", device), ("seed", str(config.seed))]

    out = plan.options.output
    tmp = out / BEST_TMP
    remove_folder(tmp)
    # the same pipeline as featx train, on one fold: the non-test rows, tested once
    train_bundle(table, config, output_dir=tmp, overwrite=True, progress=False, plan=split_plan,
                 seed_offset=seed_offset,
                 kept_rows="all non-test rows" + (" (a validation part for early stopping)" if len(valid) else ""),
                 title=f"featx sweep: best {spec.name} configuration on the test part", facts=facts,
                 extra_metadata={"sweep": record_meta})
    best = out / BEST
    remove_folder(best)
    rename_folder(tmp, best)
    spec.family.release()
    return best


def _legacy_sweep():
    """How a sweep folder written before folder markers is recognised: every path in it is
    one a sweep writes, ``sweep.json`` is a sweep record and ``best`` a featx bundle."""
    layout = (SETTINGS, JOURNAL, RESULTS, "report.md", "report.html", "figures/*.png", f"{RUNNING}/*",
              *(f"{sub}/{p}" for sub in (BEST, BEST_TMP) for p in BUNDLE_LAYOUT))

    sweep_record = json_says(SETTINGS, "featx_sweep", None)
    bundle_record = json_says("metadata.json", "format", "featx-bundle")

    def check(folder: Path) -> bool:
        return sweep_record(folder) and all(bundle_record(folder / sub) for sub in (BEST, BEST_TMP)
                                            if (folder / sub).exists())

    return Legacy("featx-sweep", layout, check)


def prepare_sweep_dir(directory: Path) -> Path:
    """Create the sweep folder, or check that featx wrote the one that is there (to resume it).

    A folder written before featx left markers is recognised by its content only (see
    :mod:`featx.io.guard`); any other non-empty folder is refused before anything is
    changed, as is a ``best`` folder in it that featx did not write.
    """
    directory = claim_folder(directory, "featx-sweep", legacy=_legacy_sweep())
    check_removable(directory / BEST)
    check_removable(directory / BEST_TMP)
    return directory


def _check_same_sweep(plan: SweepPlan, out: Path) -> None:
    """Refuse to mix a sweep on other data or another model into ``out``; with
    ``overwrite``, delete what the earlier sweep wrote there instead."""
    try:
        earlier = json.loads((out / SETTINGS).read_text())
    except (OSError, ValueError):
        return
    if not isinstance(earlier, dict):
        return
    data = earlier.get("data") if isinstance(earlier.get("data"), dict) else {}
    differs = []
    if data.get("sha256") not in (None, plan.data["sha256"]):
        differs.append(f"data {data.get('path')} (sha256 {str(data.get('sha256'))[:12]}...) vs "
                       f"{plan.options.csv} (sha256 {plan.data['sha256'][:12]}...)")
    if earlier.get("model") not in (None, plan.spec.name):
        differs.append(f"model {earlier.get('model')} vs {plan.spec.name}")
    if not differs:
        return
    if not plan.options.overwrite:
        raise OutputError(f"{out} holds a sweep of other data or another model ({'; '.join(differs)}); "
                          "choose another output folder or add overwrite=True to replace it")
    logger.info("replacing the earlier sweep in %s (%s)", out, "; ".join(differs))
    clear_folder(out)


def _settings_record(plan: SweepPlan) -> dict:
    o = plan.options
    return {
        "featx_sweep": 1,
        "written": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "data": {"path": str(o.csv), **plan.data, "rows": plan.table.n_rows,
                 "tracks": int(len(set(plan.table.tracks)))},
        "model": plan.spec.name, "search": o.search, "n_iter": o.n_iter if o.search == "random" else None,
        "metric": o.metric, "level": o.level, "split": o.split, "folds": o.folds,
        "test_fraction": o.test_fraction, "seed": o.seed, "jobs": o.jobs, "scheduler": o.scheduler,
        "artist_map": str(o.artist_map) if o.artist_map else None,
        "split_dir": str(o.split_dir) if o.split_dir else None,
        "selection": plan.design.description, "test_part": plan.design.test_description,
        "space": [{k: (str(v) if isinstance(v, Distribution) else [to_plain(display_value(x)) for x in v])
                   for k, v in g.items()} for g in plan.space.grids],
        "trials": len(plan.trials),
    }


def _task(plan: SweepPlan, trial: Trial, threads: int | None) -> dict:
    return {"key": trial.key, "index": trial.index, "csv": str(plan.options.csv), "sha": plan.data["sha256"],
            "params": {k: to_plain(v) for k, v in trial.point.items()},
            "identity": trial_identity(trial.config, trial.optimizer, plan.data),
            "train_config": trial.config.to_dict(), "optimizer": trial.optimizer,
            "design": plan.design, "threads": threads,
            "running": str(plan.options.output / RUNNING) if threads else None}


def run_sweep(plan: SweepPlan, *, progress=None, report: bool = True) -> SweepOutcome:
    """Run the missing trials of ``plan`` (in parallel), then retrain the best and write reports.

    Ctrl-C stops the sweep; finished trials are kept and ``KeyboardInterrupt``
    propagates after ``results.csv`` is brought up to date.
    """
    from joblib import (  # joblib: only with worker processes
        Parallel,
        delayed,
        parallel_config,
    )


    start = time.perf_counter()
    options = plan.options
    # trials run in this process (-j 1) use the table already read, not a second copy
    _TABLES.clear()
    _TABLES[(str(options.csv), plan.data["sha256"])] = plan.table
    out = prepare_sweep_dir(options.output)
    _check_same_sweep(plan, out)
    # locked until closed: a second sweep on this folder is refused with one line
    journal = Journal(out / JOURNAL, {"kind": "sweep"}, allow_nan=True, headerless=True)
    records = journal.open()
    note_written(out / JOURNAL)
    try:
        atomic_write(out / SETTINGS, json.dumps(_settings_record(plan), indent=2) + "\n")
        unique: dict[str, Trial] = {}
        for trial in plan.trials:
            unique.setdefault(trial.key, trial)
        done = {k for k, r in records.items()
                if k in unique and (r.get("status") == "ok" or not options.retry_failed)}
        todo = [t for k, t in unique.items() if k not in done]
        reused = len(done)
        jobs = options.jobs if options.jobs > 0 else (os.cpu_count() or 1)
        jobs = max(1, min(jobs, len(todo) or 1))
        threads = 1 if jobs > 1 else None
        logger.info("%d combinations (%d distinct): %d from earlier runs, %d to run on %d worker(s)",
                    len(plan.trials), len(unique), reused, len(todo), jobs)
        write_results(plan, records)

        best = best_trial(plan, records)
        bar = progress_bar(total=len(unique), initial=reused, desc="trials", unit="trial",
                           progress=progress)
        _bar_postfix(bar, plan, records, best)
        ran = 0
        state = {"journal": journal, "records": records, "bar": bar, "plan": plan, "finished": set()}
        if threads:
            scratch_folder(out / RUNNING)
        try:
            suspects: dict[str, int] = {}
            if options.scheduler and todo:
                ran += _run_on_cluster(state, todo, options.scheduler)
                todo = []
            while todo:
                tasks = (delayed(run_trial)(_task(plan, t, threads)) for t in todo)
                try:
                    with parallel_config(backend="loky", inner_max_num_threads=threads):
                        for record in Parallel(n_jobs=jobs, return_as="generator_unordered",
                                               batch_size=1)(tasks):
                            _finish(state, record)
                            ran += 1
                    break
                except Exception as exc:
                    if type(exc).__name__ != "TerminatedWorkerError":
                        raise
                    todo, recorded = _after_worker_death(state, todo, suspects)
                    ran += recorded
        finally:
            bar.close()
            write_results(plan, records)
    finally:
        journal.close()

    best = best_trial(plan, records)
    best_dir = None
    retrain_start = time.perf_counter()
    if best is not None and options.retrain_best:
        best_dir = out / BEST
        current = None
        try:
            current = json.loads((best_dir / "metadata.json").read_text()).get("sweep", {}).get("trial")
        except (OSError, ValueError):
            pass
        if current != best.key or not (best_dir / "metrics.json").exists():
            logger.info("retraining the best configuration on the non-test rows")
            best_dir = retrain_best(plan, best)
    retrain_seconds = time.perf_counter() - retrain_start
    results = write_results(plan, records)
    relevant = [records.get(t.key) for t in plan.trials]
    outcome = SweepOutcome(
        plan, records, total=len(plan.trials), reused=reused, ran=ran,
        failed=sum(1 for r in relevant if r and r.get("status") != "ok"),
        pending=sum(1 for r in relevant if r is None), best=best, best_dir=best_dir,
        seconds=time.perf_counter() - start, results=results, retrain_seconds=retrain_seconds)
    if report:
        write_report(outcome)
    return outcome


def _run_on_cluster(state: dict, todo: list[Trial], scheduler: str) -> int:
    """Run the trials ``todo`` as tasks on the Dask cluster at ``scheduler``; this process
    journals each record as it comes back. Returns how many were recorded."""
    plan = state["plan"]
    csv = str(Path(plan.options.csv).resolve())  # the workers' working folders differ
    tasks = [dict(_task(plan, t, 1), running=None, csv=csv) for t in todo]
    count = 0
    for record in dask_map(run_trial, tasks, scheduler=scheduler):
        if "status" not in record:  # the workers running it died: KilledWorker
            task = record["key"]
            record = {"key": task["key"], "index": task["index"], "params": task["params"],
                      "config": task["identity"]["config"], "status": "failed", "seconds": 0.0,
                      "error": record["error"],
                      "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        _finish(state, record)
        count += 1
    return count


def _finish(state: dict, record: dict) -> None:
    """Journal one finished trial, refresh results.csv and the progress bar."""
    plan, records = state["plan"], state["records"]
    state["journal"].append(record)
    records[record["key"]] = record
    state["finished"].add(record["key"])
    if record["status"] != "ok":
        logger.warning("trial %s failed: %s", record["params"], record.get("error"))
    write_results(plan, records, throttle=True)  # every few seconds; run_sweep writes the last
    state["bar"].update(1)
    _bar_postfix(state["bar"], plan, records, best_trial(plan, records))


def _after_worker_death(state: dict, todo: list[Trial], suspects: dict[str, int]):
    """A worker process was killed (by the system, e.g. out of memory) during some trials.

    The trials it may have been running are named by their marker files. A trial
    that was the only one running, or that was running during two such deaths, is
    recorded as failed; the others are run again (the suspects spread apart).
    Returns the remaining trials and how many failures were recorded.
    """
    plan = state["plan"]
    running = plan.options.output / RUNNING
    in_flight = [m.name for m in running.iterdir()] if running.is_dir() else []
    for m in running.glob("*"):
        m.unlink(missing_ok=True)
    recorded = 0
    for key in in_flight:
        suspects[key] = suspects.get(key, 0) + 1
        if len(in_flight) == 1 or suspects[key] >= 2:
            trial = next((t for t in todo if t.key == key), None)
            if trial is None or key in state["finished"]:
                continue
            _finish(state, {"key": key, "index": trial.index, "params": to_plain(trial.point),
                            "config": trial_identity(trial.config, trial.optimizer, plan.data)["config"],
                            "status": "failed", "seconds": 0.0,
                            "error": "worker process died while running this trial (killed by the "
                                     "system; out of memory?)",
                            "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
            recorded += 1
    logger.warning("a worker process died while running %d trial(s); continuing", len(in_flight))
    left = [t for t in todo if t.key not in state["finished"]]
    first = [t for t in left if t.key in in_flight][:1]
    rest = [t for t in left if t.key not in in_flight]
    return first + rest + [t for t in left if t.key in in_flight][1:], recorded


def _bar_postfix(bar, plan, records, best) -> None:
    if best is not None:
        score = score_of(records.get(best.key), plan.options.metric, plan.options.level)
        bar.set_postfix_str(f"best {plan.options.metric} {score:.4f}", refresh=False)
