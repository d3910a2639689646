"""A sweep's Optuna study: its identity, the trial queue, samplers, pruners and one trial's run.

The study is the sweep's record for every search kind:

- ``grid`` and ``random``: the combinations featx lists (the same points and seeds as
  before) are put in the study's queue (``enqueue_trial``), each with its featx key, and
  every sweep process takes waiting trials from it, one locked step per trial, so several
  processes (on several machines, through a shared database) never run one twice.
- ``tpe``: each trial asks Optuna's multivariate TPE sampler for its configuration.

A trial's numeric hyperparameters are Optuna parameters; its full featx configuration,
validation metrics, the epochs or folds a pruned trial used and the error of a failed one
are user attributes (``featx_*``), so ``optuna.load_study`` sees everything a report shows.
The process that runs a sweep tells the study a trial's result after writing it to the
journal (``trials.jsonl``); a trial left running by a process that was killed is failed and
queued again (see :mod:`featx.sweep.storage`).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import logging
import math
import os
import threading
import time
import warnings

from ..errors import ConfigError, OutputError
from ..extract.pool import watch_parent
from ..models.registry import get_model
from ..training.config import LOWER_IS_BETTER, TrainConfig
from .space import Distribution, display_value, to_plain
from .storage import HEARTBEAT_INTERVAL, masked, open_storage, quiet_optuna
from .trials import (_error_text, _load_table, evaluate_config, mark_running, trial_config, trial_identity,
                     trial_key)

logger = logging.getLogger(__name__)

#: User attributes of a study trial.
KEY, PARAMS, CONFIG, METRICS, ERROR, SECONDS, USED, PID = (
    "featx_key", "featx_params", "featx_config", "featx_metrics", "featx_error", "featx_seconds",
    "featx_used", "featx_pid")
#: The study's user attribute holding what the sweep was made with.
IDENTITY = "featx_sweep"
#: Which trial state wins when one combination has several trials (a retry, a duplicate).
_STATE_RANK = {"COMPLETE": 0, "PRUNED": 1, "RUNNING": 2, "WAITING": 3, "FAIL": 4}
#: featx's status names (results.csv's ``status``) for Optuna's trial states.
STATUS = {"COMPLETE": "ok", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running",
          "WAITING": "pending"}


def direction(metric: str) -> str:
    return "minimize" if metric in LOWER_IS_BETTER else "maximize"


def make_sampler(search: str, seed: int):
    """Optuna's sampler for ``search`` (queued grid and random trials never consult it)."""
    import optuna  # Optuna is heavy: only when a sweep runs

    if search == "tpe":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # multivariate and constant_liar are marked experimental
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
    return optuna.samplers.RandomSampler(seed=seed)


#: One sampler per worker process and thread, kept across the trials it runs.
_WORKER_SAMPLERS: dict = {}


def _worker_sampler(search: str, seed: int):
    """The sampler of this worker process (and thread), made on its first trial and kept, so
    that each later trial draws on where the last one left off, as a sweep in one process
    does. A sampler made afresh for every trial with the same seed would draw the same
    point each time: every random start-up trial of TPE in one worker the same configuration.
    Its seed mixes ``seed`` with the process and thread, so that workers draw apart."""
    key = (search, seed, os.getpid(), threading.get_ident())
    if key not in _WORKER_SAMPLERS:
        mixed = hashlib.sha256(repr(key).encode()).digest()
        _WORKER_SAMPLERS[key] = make_sampler(search, int.from_bytes(mixed[:4], "little"))
    return _WORKER_SAMPLERS[key]


def make_pruner(prune: str):
    """``none``, ``median`` (after 4 finished trials, past each fold's first epoch) or ``hyperband``."""
    import optuna  # Optuna is heavy: only when a sweep runs

    if prune == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1)
    if prune == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1)
    return optuna.pruners.NopPruner()


def tpe_distributions(space) -> dict:
    """The Optuna distribution of each hyperparameter of a one-grid space (lists: categorical)."""
    import optuna  # Optuna is heavy: only when a sweep runs

    if len(space.grids) != 1:
        raise ConfigError(f"search='tpe' samples one space; the grid file lists {len(space.grids)} "
                          "sub-grids (use search='grid' or 'random' for those)", param="search")
    out = {}
    for name, values in space.grids[0].items():
        if isinstance(values, Distribution):
            if values.kind == "randint":
                out[name] = optuna.distributions.IntDistribution(int(values.low), int(values.high))
            else:
                out[name] = optuna.distributions.FloatDistribution(
                    values.low, values.high, log=values.kind == "loguniform")
        else:
            out[name] = optuna.distributions.CategoricalDistribution([display_value(v) for v in values])
    return out


def _suggest(trial, name: str, dist):
    """``trial``'s value of ``name`` from the Optuna distribution ``dist``."""
    import optuna  # Optuna is heavy: only when a sweep runs

    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, optuna.distributions.IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, log=dist.log)
    return trial.suggest_float(name, dist.low, dist.high, log=dist.log)


def _from_display(space, name: str, shown):
    """The typed value of ``name`` whose display form is ``shown``."""
    values = space.grids[0][name]
    if isinstance(values, Distribution):
        return shown
    return next(v for v in values if display_value(v) == shown)


# ---------------------------------------------------------------------------
# Opening a study


def study_identity(plan) -> dict:
    """What a sweep's study was made with; another sweep may share it only when these agree."""
    o = plan.options
    identity = {"model": plan.spec.name, "data": plan.data["sha256"], "metric": o.metric, "level": o.level,
                "split": o.split, "folds": o.folds, "test_fraction": float(o.test_fraction), "seed": o.seed,
                "multi_label": bool(o.multi_label), "search": o.search}
    if o.search == "tpe":  # what TPE learns from is tied to its space
        identity["space"] = {k: str(v) if isinstance(v, Distribution) else [display_value(x) for x in v]
                             for k, v in plan.space.grids[0].items()}
    return identity


def open_study(plan, url: str):
    """Create the study of ``plan`` in ``url``, or load the one of that name and check it matches.

    Raises
    ------
    OutputError
        A study of that name was made with another model, data, design or space (each
        difference named); with ``overwrite`` it is deleted and made anew instead.
    """
    import optuna  # Optuna is heavy: only when a sweep runs

    quiet_optuna()
    o = plan.options
    storage = open_storage(url)
    identity = to_plain(study_identity(plan))
    name = o.study_name
    kwargs = dict(study_name=name, storage=storage, sampler=make_sampler(o.search, o.seed),
                  pruner=make_pruner(o.prune))
    for attempt in range(2):
        try:
            study = optuna.create_study(direction=direction(o.metric), **kwargs)
            study.set_user_attr(IDENTITY, identity)
            return study
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(**kwargs)
        earlier = _wait_for_identity(study)
        differs = [f"{k} {earlier.get(k)!r} vs {v!r}" for k, v in identity.items() if earlier.get(k) != v]
        if not differs:
            return study
        made = ("was not made by featx sweep" if not earlier
                else f"was made with another {'; '.join(differs)}")
        if not o.overwrite or attempt:
            raise OutputError(f"the study {name!r} in {masked(url)} {made}; choose another study name "
                              "or output folder, or add overwrite=True to replace it")
        logger.info("replacing the study %r in %s (%s)", name, masked(url), "; ".join(differs))
        optuna.delete_study(study_name=name, storage=storage)
    raise AssertionError("unreachable")


def _wait_for_identity(study, seconds: float = 10.0) -> dict:
    """The study's identity (a process that has just created it sets it a moment later)."""
    deadline = time.monotonic() + seconds
    while True:
        earlier = study.user_attrs.get(IDENTITY)
        if isinstance(earlier, dict) or time.monotonic() > deadline:
            return earlier if isinstance(earlier, dict) else {}
        time.sleep(0.2)


# ---------------------------------------------------------------------------
# The queue of grid and random trials


def trials_by_key(study) -> dict[str, list]:
    out: dict[str, list] = {}
    for t in study.get_trials(deepcopy=False):
        key = t.user_attrs.get(KEY)
        if key:
            out.setdefault(key, []).append(t)
    return out


def _trial_attrs(trial) -> dict:
    return {KEY: trial.key, PARAMS: to_plain(trial.point), CONFIG: to_plain(trial.config.to_dict())}


def fill_queue(study, plan, journal: dict, *, retry_failed: bool) -> tuple[int, int]:
    """Queue every combination of ``plan`` that the study has not run or queued.

    A combination finished in the journal of a sweep folder written before it had a study
    is added to the study as finished, not run again. Returns ``(finished, queued)``: how
    many combinations the study already had finished, and how many now wait.
    """
    import optuna  # Optuna is heavy: only when a sweep runs

    have = trials_by_key(study)
    finished = queued = 0
    seen = set()
    for trial in plan.trials:
        if trial.key in seen:
            continue
        seen.add(trial.key)
        states = {t.state.name for t in have.get(trial.key, [])}
        if states & {"COMPLETE", "PRUNED"} or (states == {"FAIL"} and not retry_failed):
            finished += 1
            continue
        if states & {"RUNNING", "WAITING"}:
            queued += 1
            continue
        record = journal.get(trial.key)
        if record is not None and not states and (record.get("status") == "ok" or not retry_failed):
            study.add_trial(_journal_trial(optuna, plan, trial, record))
            finished += 1
            continue
        study.enqueue_trial({}, user_attrs=_trial_attrs(trial))
        queued += 1
    return finished, queued


def _journal_trial(optuna, plan, trial, record: dict):
    """A finished study trial made from a journal record (a sweep folder from before studies)."""
    o = plan.options
    ok = record.get("status") == "ok"
    attrs = {**_trial_attrs(trial), SECONDS: record.get("seconds")}
    if ok:
        attrs[METRICS] = record["metrics"]
    else:
        attrs[ERROR] = record.get("error", "")
    value = float(record["metrics"][o.level][o.metric]) if ok else None
    state = optuna.trial.TrialState.COMPLETE if ok and math.isfinite(value) else optuna.trial.TrialState.FAIL
    return optuna.trial.create_trial(state=state, value=value if state.name == "COMPLETE" else None,
                                     user_attrs=attrs)


def take_waiting(study, running=None):
    """A waiting trial of ``study``, marked running by this process; ``None`` when none waits.

    With ``running`` (a folder), the trial taken is named there at once
    (:func:`featx.sweep.trials.mark_running`)."""
    import optuna  # Optuna is heavy: only when a sweep runs

    storage = study._storage
    study_id = storage.get_study_id_from_name(study.study_name)
    for frozen in storage.get_all_trials(study_id, deepcopy=False,
                                         states=(optuna.trial.TrialState.WAITING,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, frozen.number)
        try:  # one locked step: False (or an error) when another process took it first
            if not storage.set_trial_state_values(trial_id, state=optuna.trial.TrialState.RUNNING):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        twin = _twin(study, frozen)
        if twin is None:
            storage.record_heartbeat(trial_id)  # from now on, a silence of GRACE_PERIOD means its process died
            key = frozen.user_attrs.get(KEY)
            if key:  # the twin's marker, if another worker runs it, has the same name: written only now
                mark_running({"running": running}, key)
            return optuna.Trial(study, trial_id)
        # sweeps that started together may both have queued this combination
        storage.set_trial_user_attr(trial_id, ERROR, f"the same combination as trial {twin}, queued twice "
                                                     "by sweeps that started together; not run")
        study.tell(frozen.number, state=optuna.trial.TrialState.FAIL)
    return None


def _twin(study, frozen) -> int | None:
    """The number of another trial of the same combination that decides it: finished, or
    running or waiting with a lower number (so of two copies exactly one runs)."""
    key = frozen.user_attrs.get(KEY)
    for t in study.get_trials(deepcopy=False):
        if t.number == frozen.number or t.user_attrs.get(KEY) != key:
            continue
        if t.state.name in ("COMPLETE", "PRUNED") or (
                t.state.name in ("RUNNING", "WAITING") and t.number < frozen.number):
            return t.number
    return None


def fail_stale(study) -> None:
    """Fail the trials whose heartbeat stopped more than ``GRACE_PERIOD`` seconds ago (their
    process or machine died), each queued again at most ``MAX_RETRY`` times (the storage's
    callback, :func:`featx.sweep.storage.open_storage`)."""
    import optuna  # Optuna is heavy: only when a sweep runs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # marked experimental
        optuna.storages.fail_stale_trials(study)


def fail_running(study, journal: dict, reason: str, *, requeue: bool) -> int:
    """Settle the trials the study shows running when none can be (this process holds the
    sweep folder and its own study file): those whose result the journal holds are told it;
    the others are failed with ``reason`` and, with ``requeue``, queued again.
    Returns how many were failed."""
    import optuna  # Optuna is heavy: only when a sweep runs

    failed = 0
    for frozen in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        key = frozen.user_attrs.get(KEY)
        record = journal.get(key) if key else None
        if record is not None and record.get("trial_number") == frozen.number:
            tell(study, record)
            continue
        study._storage.set_trial_user_attr(frozen._trial_id, ERROR, reason)
        study.tell(frozen.number, state=optuna.trial.TrialState.FAIL)
        failed += 1
        if requeue and key:
            study.enqueue_trial({}, user_attrs={k: v for k, v in frozen.user_attrs.items()
                                                if k in (KEY, PARAMS, CONFIG)})
    return failed


def tell(study, record: dict) -> None:
    """Tell ``study`` the result of the trial a worker ran (after it is in the journal)."""
    import optuna  # Optuna is heavy: only when a sweep runs

    state = {"ok": optuna.trial.TrialState.COMPLETE, "pruned": optuna.trial.TrialState.PRUNED}.get(
        record["status"], optuna.trial.TrialState.FAIL)
    value = record.get("value")
    if state.name == "COMPLETE" and (value is None or not math.isfinite(value)):
        state = optuna.trial.TrialState.FAIL
    try:
        study.tell(record["trial_number"], value if state.name == "COMPLETE" else None, state=state,
                   skip_if_finished=True)
    except ValueError as exc:  # the trial was failed meanwhile as stale (its heartbeat stopped)
        logger.warning("trial %s: %s", record["trial_number"], exc)


def study_records(study, plan) -> dict[str, dict]:
    """One record per featx key from the study's trials (the best state wins), as the journal's."""
    out: dict[str, dict] = {}
    for key, trials in trials_by_key(study).items():
        t = min(trials, key=lambda t: (_STATE_RANK.get(t.state.name, 9), -t.number))
        a = t.user_attrs
        record = {"key": key, "index": t.number, "trial_number": t.number, "params": a.get(PARAMS, {}),
                  "status": STATUS.get(t.state.name, t.state.name.lower()), "state": t.state.name,
                  "seconds": a.get(SECONDS), "used": a.get(USED), "pid": a.get(PID),
                  "config": a.get(CONFIG), "value": t.value}
        if t.state.name == "COMPLETE" and METRICS in a:
            record["metrics"] = a[METRICS]
        elif t.state.name == "COMPLETE":
            record["status"] = "failed"
        if a.get(ERROR):
            record["error"] = a[ERROR]
        out[key] = record
    return out


def study_trials(study, plan) -> list:
    """The :class:`~featx.sweep.trials.Trial` of every TPE trial the study holds, by number."""
    from .trials import Trial

    spec = plan.spec
    trials = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        key, params = t.user_attrs.get(KEY), t.user_attrs.get(PARAMS)
        if not key or params is None:
            continue
        point = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
        config, optimizer = trial_config(spec, point, base=plan.options.base())
        trials.append(Trial(t.number, point, config, optimizer, key))
    return trials


def tpe_budget_left(study, n_iter: int) -> int:
    """How many more TPE trials the sweep asks for: ``n_iter`` less those finished, running or queued."""
    counted = ("COMPLETE", "PRUNED", "RUNNING", "WAITING")
    return n_iter - sum(1 for t in study.get_trials(deepcopy=False) if t.state.name in counted)


# ---------------------------------------------------------------------------
# One trial, in a worker


@contextlib.contextmanager
def _heartbeat(storage, trial_id: int):
    """Record the trial's heartbeat every few seconds while it runs."""
    stop = threading.Event()

    def beat():
        while not stop.is_set():
            try:
                storage.record_heartbeat(trial_id)
            except Exception:  # a database hiccup: the next beat tries again
                logger.debug("heartbeat failed", exc_info=True)
            stop.wait(HEARTBEAT_INTERVAL)

    thread = threading.Thread(target=beat, name="featx-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class _Pruning:
    """The hooks that report a trial's progress to Optuna and stop it when the pruner says so.

    Keras trials report every epoch of every fold (step ``fold * epochs + epoch``) the
    validation accuracy (validation loss when the metric ranks lowest first), or the training
    figure when a fold has no validation part; scikit-learn trials report the mean accuracy
    of the folds so far after each fold (step ``fold``).
    """

    def __init__(self, trial, epochs: int | None, lower: bool):
        self.trial, self.keras, self.lower = trial, epochs is not None, lower
        self.epochs = epochs or 1
        self.used = {"epochs": 0, "folds": 0}
        self.accuracies: list[float] = []

    def _check(self, value: float, step: int) -> None:
        import optuna  # Optuna is heavy: only when a sweep runs

        if not math.isfinite(value):
            return
        self.trial.report(value, step)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {step}")

    def on_epoch(self, fold: int, epoch: int, logs: dict) -> None:
        self.used["epochs"] += 1
        self.used["folds"] = max(self.used["folds"], fold + 1)  # folds started
        logs = logs or {}
        names = ("val_loss", "loss") if self.lower else ("val_accuracy", "accuracy")
        value = next((float(logs[n]) for n in names if n in logs), math.nan)
        self._check(value, fold * self.epochs + epoch)

    def on_fold(self, fold: int, frame) -> None:
        self.used["folds"] = fold + 1
        if self.keras:  # a Keras trial reports its epochs instead
            return
        self.accuracies.append(float((frame["label"] == frame["predicted"]).mean()))
        self._check(sum(self.accuracies) / len(self.accuracies), fold)


def run_study_trial(task: dict) -> dict:
    """Take (grid, random) or ask for (tpe) one trial of the study and evaluate it (in a worker).

    Returns the trial's journal record (``{"none": True}`` when no trial was left); the
    calling process journals it and tells the study. Never raises for a failing trial.
    """
    import optuna  # Optuna is heavy: only when a sweep runs

    if task.get("parent"):  # a local worker: it ends when the sweep process is killed
        watch_parent(task["parent"])
    quiet_optuna()
    storage = open_storage(task["storage"])
    spec = get_model(task["model"])
    sampler = task.get("sampler") or _worker_sampler(task["search"], task["seed"])
    study = optuna.load_study(study_name=task["study"], storage=storage, sampler=sampler,
                              pruner=make_pruner(task["prune"]))
    if task["search"] == "tpe":
        if tpe_budget_left(study, task["n_iter"]) <= 0:
            return {"none": True}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ask() outside optimize() with heartbeats: we beat
            trial = study.ask()
        study._storage.record_heartbeat(trial._trial_id)
        space = task["space"]
        shown = {name: _suggest(trial, name, dist) for name, dist in task["distributions"].items()}
        point = {name: _from_display(space, name, v) for name, v in shown.items()}
        try:
            config, optimizer = trial_config(spec, point, base=task["base"])
        except ConfigError as exc:
            trial.set_user_attr(ERROR, str(exc))
            return {"key": f"invalid-{trial.number}", "index": trial.number, "trial_number": trial.number,
                    "params": to_plain(point), "status": "failed", "error": str(exc), "seconds": 0.0}
        prefix = trial_key(trial_identity(config, optimizer, task["data"]))
        key = f"{prefix}-{trial.number}"
        mark_running(task, key)
        for name, value in {KEY: key, PARAMS: to_plain(point), CONFIG: to_plain(config.to_dict())}.items():
            trial.set_user_attr(name, value)
        earlier = _finished_twin(study, prefix)
        if earlier is not None:  # TPE chose a configuration that has run: its result, not a rerun
            metrics = earlier.user_attrs[METRICS]
            trial.set_user_attr(METRICS, metrics)
            trial.set_user_attr(SECONDS, 0.0)
            return {"key": key, "index": trial.number, "trial_number": trial.number,
                    "params": to_plain(point), "config": to_plain(config.to_dict()), "status": "ok",
                    "metrics": metrics, "value": float(metrics[task["level"]][task["metric"]]),
                    "seconds": 0.0, "same_as": earlier.number,
                    "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    else:
        trial = take_waiting(study, task.get("running"))
        if trial is None:
            return {"none": True}
        key = trial.user_attrs[KEY]
        point = trial.user_attrs[PARAMS]
        config = TrainConfig.from_dict(trial.user_attrs[CONFIG])
        for name, value in point.items():  # numeric values are the study's parameters
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            with contextlib.suppress(ValueError):  # a name once categorical in this study
                (trial.suggest_int if isinstance(value, int) else trial.suggest_float)(name, value, value)
    return _evaluate(task, spec, study, trial, key, point, config)


def _finished_twin(study, prefix: str):
    """A finished trial of ``study`` with the same configuration (its key's first part)."""
    for t in study.get_trials(deepcopy=False, states=None):
        if t.state.name == "COMPLETE" and METRICS in t.user_attrs and \
                str(t.user_attrs.get(KEY, "")).split("-")[0] == prefix:
            return t
    return None


def _evaluate(task, spec, study, trial, key, point, config) -> dict:
    import optuna  # Optuna is heavy: only when a sweep runs

    start = time.perf_counter()
    record = {"key": key, "index": trial.number, "trial_number": trial.number, "params": to_plain(point),
              "config": to_plain(config.to_dict()), "pid": os.getpid()}
    lower = task["metric"] in LOWER_IS_BETTER
    hooks = _Pruning(trial, config.epochs if spec.family.keras_training else None, lower)
    try:
        with _heartbeat(study._storage, trial._trial_id):
            spec.family.prepare_process(task.get("threads"))
            table = _load_table(task["csv"], task["sha"])
            pruning = task["prune"] != "none"
            metrics = evaluate_config(table, config.validate(), task["design"],
                                      on_epoch=hooks.on_epoch if pruning else None,
                                      on_fold=hooks.on_fold if pruning else None)
        record.update(status="ok", metrics=metrics, value=float(metrics[task["level"]][task["metric"]]))
        trial.set_user_attr(METRICS, metrics)
    except optuna.TrialPruned as exc:
        used = {k: v for k, v in hooks.used.items() if v}
        record.update(status="pruned", used=used, error=str(exc))
        trial.set_user_attr(USED, used)
    except Exception as exc:  # a failing trial is a result, not a crash
        record.update(status="failed", error=_error_text(exc))
        trial.set_user_attr(ERROR, record["error"])
        logger.debug("trial %s failed", key, exc_info=True)
    finally:  # the trial's marker stays: the calling process removes it once the record is journaled
        spec.family.release()
    record["seconds"] = round(time.perf_counter() - start, 4)
    record["finished"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    trial.set_user_attr(SECONDS, record["seconds"])
    trial.set_user_attr(PID, os.getpid())
    return record
