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
from .storage import STUDY_DB, close_storages, default_storage, masked
from .study import (
    CONFIG,
    ERROR,
    KEY,
    PARAMS,
    fail_running,
    fail_stale,
    fill_queue,
    make_sampler,
    open_study,
    run_study_trial,
    study_records,
    study_trials,
    tell,
    tpe_budget_left,
    tpe_distributions,
    trials_by_key,
)
from .trials import Trial, clear_running

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
    layout = (SETTINGS, JOURNAL, RESULTS, STUDY_DB, "report.md", "report.html", "figures/*.png", f"{RUNNING}/*",
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
        "model": plan.spec.name, "search": o.search, "n_iter": o.n_iter if o.search != "grid" else None,
        "prune": o.prune, "storage": masked(o.storage) if o.storage else STUDY_DB, "study": o.study_name,
        "metric": o.metric, "level": o.level, "split": o.split, "folds": o.folds,
        "test_fraction": o.test_fraction, "seed": o.seed, "jobs": o.jobs, "scheduler": o.scheduler,
        "artist_map": str(o.artist_map) if o.artist_map else None,
        "split_dir": str(o.split_dir) if o.split_dir else None,
        "selection": plan.design.description, "test_part": plan.design.test_description,
        "space": [{k: (str(v) if isinstance(v, Distribution) else [to_plain(display_value(x)) for x in v])
                   for k, v in g.items()} for g in plan.space.grids],
        "trials": len(plan.trials),
    }


def _task(plan: SweepPlan, url: str, threads: int | None, sampler=None) -> dict:
    """What a worker needs to take one trial of the study and run it (picklable)."""
    o = plan.options
    task = {"storage": url, "study": o.study_name, "search": o.search, "prune": o.prune, "seed": o.seed,
            "n_iter": o.n_iter, "model": plan.spec.name, "metric": o.metric, "level": o.level,
            "csv": str(o.csv), "sha": plan.data["sha256"], "data": plan.data, "base": o.base(),
            "design": plan.design, "threads": threads,
            "running": str(o.output / RUNNING) if threads else None, "sampler": sampler,
            "parent": os.getpid() if threads else None}  # local workers end with this process
    if o.search == "tpe":
        task.update(space=plan.space, distributions=tpe_distributions(plan.space))
    return task


def _left(state: dict) -> int:
    """How many trials are still to run: waiting in the queue, or TPE's budget."""
    import optuna  # Optuna is heavy: only when a sweep runs

    plan, study = state["plan"], state["study"]
    fail_stale(study)
    if plan.options.search == "tpe":
        return max(0, tpe_budget_left(study, plan.options.n_iter))
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)))


def run_sweep(plan: SweepPlan, *, progress=None, report: bool = True) -> SweepOutcome:
    """Run the missing trials of ``plan`` (in parallel), then retrain the best and write reports.

    The Optuna study (``DIR/study.db`` or ``options.storage``) says what is done; grid and
    random combinations are queued in it, TPE trials are asked for until ``n_iter`` have
    finished. Ctrl-C stops the sweep; finished trials are kept and ``KeyboardInterrupt``
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
    journaled = journal.open()
    note_written(out / JOURNAL)
    own_db = options.storage is None
    url = options.storage or default_storage(out)
    if own_db:
        if (out / STUDY_DB).is_symlink():  # SQLite would write through it
            journal.close()
            raise OutputError(f"{out / STUDY_DB} is a symbolic link; refusing to write the study through it")
        note_written(out / STUDY_DB)
    try:
        atomic_write(out / SETTINGS, json.dumps(_settings_record(plan), indent=2) + "\n")
        study = open_study(plan, url)
        fail_stale(study)  # trials of processes or machines that died, silent for GRACE_PERIOD: queued again
        if own_db:  # this process holds the folder: a trial shown running was left by a killed one
            fail_running(study, journaled, "the sweep process ended while this trial ran",
                         requeue=options.search != "tpe")
        if options.search == "tpe":
            reused = sum(1 for t in study.get_trials(deepcopy=False) if t.state.name in ("COMPLETE", "PRUNED"))
            total = options.n_iter
        else:
            reused, _ = fill_queue(study, plan, journaled, retry_failed=options.retry_failed)
            total = len({t.key for t in plan.trials})
        state = {"journal": journal, "plan": plan, "study": study, "finished": set(), "journaled": journaled,
                 "own_db": own_db}
        todo = _left(state)
        records = _refresh(state)
        jobs = options.jobs if options.jobs > 0 else (os.cpu_count() or 1)
        jobs = max(1, min(jobs, todo or 1))
        threads = 1 if jobs > 1 else None
        logger.info("%s search, study %r in %s: %d trial(s) finished earlier, %d to run on %d worker(s)",
                    options.search, options.study_name, masked(url), reused, todo, jobs)
        write_results(plan, records)
        bar = progress_bar(total=max(total, reused + todo), initial=reused, desc="trials", unit="trial",
                           progress=progress)
        state.update(records=records, bar=bar)
        _bar_postfix(bar, plan, records, best_trial(plan, records))
        ran = 0
        scratch_folder(out / RUNNING)  # markers a killed run left name nothing now
        if threads:
            state["running"] = out / RUNNING
        try:
            suspects: dict[str, int] = {}
            if options.scheduler and todo:
                ran += _run_on_cluster(state, todo, url)
                todo = 0
            if jobs == 1:
                task = _task(plan, url, None, sampler=make_sampler(options.search, options.seed))
                for _ in range(todo):
                    record = run_study_trial(task)
                    if record.get("none"):
                        break
                    _finish(state, record)
                    ran += 1
                todo = 0
            while todo > 0:
                task = _task(plan, url, threads)
                tasks = (delayed(run_study_trial)(task) for _ in range(todo))
                try:
                    with parallel_config(backend="loky", inner_max_num_threads=threads):
                        for record in Parallel(n_jobs=jobs, return_as="generator_unordered",
                                               batch_size=1)(tasks):
                            if not record.get("none"):
                                _finish(state, record)
                                ran += 1
                    break
                except Exception as exc:
                    if type(exc).__name__ != "TerminatedWorkerError":
                        raise
                    ran += _after_worker_death(state, suspects)
                    todo = _left(state)
            if own_db:  # every task came back: a trial still shown running lost its worker
                fail_running(study, journal_records(state), "its worker process died (killed "
                             "by the system; out of memory?)", requeue=False)
        finally:
            bar.close()
            records = _refresh(state)
            write_results(plan, records)
            _drop_empty(out / RUNNING)
    finally:
        journal.close()
        close_storages()  # the study's connections; a later sweep in this process opens its own

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
    relevant = [records.get(k) for k in dict.fromkeys(t.key for t in plan.trials)]
    outcome = SweepOutcome(
        plan, records, total=total, reused=reused, ran=ran,
        failed=sum(1 for r in relevant if r and r.get("status") == "failed"),
        pending=sum(1 for r in relevant if r is None or r.get("status") in ("pending", "running")),
        best=best, best_dir=best_dir, seconds=time.perf_counter() - start, results=results,
        retrain_seconds=retrain_seconds,
        pruned=sum(1 for r in relevant if r and r.get("status") == "pruned"),
        storage=masked(url), study=options.study_name)
    if report:
        write_report(outcome)
    return outcome


def journal_records(state: dict) -> dict:
    """The journal's records of this run and earlier ones, by key."""
    return {**state.get("journaled", {}), **{r["key"]: r for r in state.get("ran_records", [])}}


def _refresh(state: dict) -> dict:
    """Records of every trial from the study; for TPE, the plan's trials are the study's."""
    plan, study = state["plan"], state["study"]
    if plan.options.search == "tpe":
        plan.trials = study_trials(study, plan)
    return study_records(study, plan)


def _drop_empty(folder: Path) -> None:
    try:
        folder.rmdir()  # only when empty
    except OSError:
        pass


def _run_on_cluster(state: dict, todo: int, url: str) -> int:
    """Run ``todo`` trial tasks on the Dask cluster at the plan's scheduler, against the same
    study; this process journals each record as it comes back. Returns how many were recorded."""
    plan = state["plan"]
    o = plan.options
    csv = str(Path(o.csv).resolve())  # the workers' working folders differ
    task = dict(_task(plan, url, 1), running=None, parent=None, csv=csv)  # a cluster's workers outlive us
    count = 0
    for record in dask_map(run_study_trial, [dict(task, slot=i) for i in range(todo)],
                           scheduler=o.scheduler, wait_workers=o.wait_workers):
        if "status" not in record and not record.get("none"):  # the workers running it died
            logger.warning("a Dask task's workers died; its trial is failed at the end")
            continue
        if not record.get("none"):
            _finish(state, record)
            count += 1
    return count


def _finish(state: dict, record: dict) -> None:
    """Journal one finished trial, tell the study, refresh results.csv and the progress bar."""
    plan, study = state["plan"], state["study"]
    state["journal"].append(record)
    if state.get("running") is not None:  # journaled: a worker's death no longer concerns it
        clear_running(state["running"], record["key"])
    state.setdefault("ran_records", []).append(record)
    tell(study, record)
    state["finished"].add(record["key"])
    if record["status"] == "failed":
        logger.warning("trial %s failed: %s", record["params"], record.get("error"))
    records = state["records"] = _refresh(state)
    write_results(plan, records, throttle=True)  # every few seconds; run_sweep writes the last
    state["bar"].update(1)
    _bar_postfix(state["bar"], plan, records, best_trial(plan, records))


def _after_worker_death(state: dict, suspects: dict[str, int]) -> int:
    """A worker process was killed (by the system, e.g. out of memory) during some trials.

    The pool ends every worker when one dies, so each trial whose record had not come
    back is concerned: those named by marker files (a worker names its trial as soon as it
    takes it; the marker goes once the record is journaled), and, when this process holds
    its own study file, every trial the study still shows running (one a worker had taken
    but not yet named). A trial that was the only one concerned, or that was concerned in
    two such deaths, is recorded as failed; the others are queued again (TPE asks for new
    ones instead). Returns how many failures were recorded.
    """
    import optuna  # Optuna is heavy: only when a sweep runs

    plan, study = state["plan"], state["study"]
    running = plan.options.output / RUNNING
    in_flight = sorted(m.name for m in running.iterdir()) if running.is_dir() else []
    for m in running.glob("*"):
        m.unlink(missing_ok=True)
    by_key = trials_by_key(study)
    if state.get("own_db"):
        in_flight += sorted(key for key, trials in by_key.items() if key not in in_flight and any(
            t.state == optuna.trial.TrialState.RUNNING for t in trials))
    recorded = 0
    error = "worker process died while running this trial (killed by the system; out of memory?)"
    for key in in_flight:
        suspects[key] = suspects.get(key, 0) + 1
        for frozen in by_key.get(key, []):
            if frozen.state != optuna.trial.TrialState.RUNNING:
                continue
            final = len(in_flight) == 1 or suspects[key] >= 2 or plan.options.search == "tpe"
            record = {"key": key, "index": frozen.number, "trial_number": frozen.number,
                      "params": frozen.user_attrs.get(PARAMS, {}), "status": "failed", "seconds": 0.0,
                      "error": error,
                      "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
            study._storage.set_trial_user_attr(frozen._trial_id, ERROR, error)
            if final:
                _finish(state, record)
                recorded += 1
            else:
                tell(study, record)
                study.enqueue_trial({}, user_attrs={k: v for k, v in frozen.user_attrs.items()
                                                    if k in (KEY, PARAMS, CONFIG)})
    logger.warning("a worker process died while running %d trial(s); continuing", len(in_flight))
    return recorded


def _bar_postfix(bar, plan, records, best) -> None:
    if best is not None:
        score = score_of(records.get(best.key), plan.options.metric, plan.options.level)
        bar.set_postfix_str(f"best {plan.options.metric} {score:.4f}", refresh=False)
