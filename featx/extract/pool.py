"""Worker processes for extraction, where a file that kills its worker is a skipped file.

A decoder crash (segmentation fault) or the system's out-of-memory killer ends a
worker process without a Python exception. The pool then breaks and every file
it was analysing fails with it. :func:`map_files` keeps at most
:data:`IN_FLIGHT_PER_WORKER` x ``jobs`` files in flight (each worker's file and the
one waiting for it), so it knows which files may have been read when a worker died; it
reads each of them again alone, in a fresh one-worker pool, records the one that kills that
worker too as skipped, and carries on with the rest in a fresh pool.

The workers die with the process that started them. When that process ends
without shutting its pool down (``kill -9``, a crash), nothing else would end them:
each would wait for work, or sit blocked writing a result into a pipe nobody reads,
holding its memory. Each worker therefore watches its parent from a daemon thread
(:func:`_watch_parent`) and exits, within :data:`WATCH_SECONDS`, once it has another
parent. Not ``prctl(PR_SET_PDEATHSIG)``: Linux sends that signal when the *thread*
that started the worker ends, and a program may run featx from a thread that ends
while the pool it started is kept for the next run.
"""
from __future__ import annotations

import logging
import os
import threading
import time
import warnings

from ..runtime.allocator import WORKER_VAR
from ..runtime.threads import limited_threads

logger = logging.getLogger(__name__)

#: Reason recorded for a file whose worker process died while reading it, twice.
WORKER_DIED = ("worker process died while reading it (killed by the system, e.g. out of "
               "memory, or the decoder crashed)")

#: Environment variables that size the thread pools of numeric libraries: one
#: thread per worker, since the workers already use every core.
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


#: Worker processes started per core at most, whatever ``jobs`` asks for.
MAX_WORKERS_PER_CORE = 4
#: Files handed to the pool per worker at a time: one being analysed and one waiting, so a
#: worker starts its next file while the parent is still writing the last one's result.
IN_FLIGHT_PER_WORKER = 2

#: Set in a worker's environment when the parent process ignores every warning.
_QUIET_VAR = "FEATX_IGNORE_WARNINGS"

#: How often a worker checks that the process that started it is alive, in seconds.
WATCH_SECONDS = 0.25


def _warnings_ignored() -> bool:
    """Whether this process's warning filters ignore a plain warning (``simplefilter("ignore")``).

    The first filter that would apply to a ``RuntimeWarning`` from featx decides;
    narrower filters that libraries add for their own messages do not count.
    """
    for action, message, category, module, lineno in warnings.filters:
        if ((message is None or message.match("featx")) and issubclass(RuntimeWarning, category)
                and (module is None or module.match("featx")) and lineno == 0):
            return action == "ignore"
    return False


#: The pool kept between runs in one process: ``{"executor": ..., "workers": n}``.
_KEPT: dict = {}


def _executor(workers: int, *, fresh: bool = False):
    """A loky pool of ``workers`` processes with one numeric thread each.

    Unless ``fresh``, the pool is kept for the next run in this process (idle
    workers exit after 300 s and are started again when needed): its workers have
    librosa imported and the kernels compiled already. It is featx's own pool, not
    loky's global one, which joblib manages for its own use.
    """
    from joblib.externals.loky import ProcessPoolExecutor  # joblib: only with worker processes


    env = {v: "1" for v in _THREAD_VARS}
    env[WORKER_VAR] = "1"  # processes that only analyse files: see featx.runtime.allocator
    # warnings silenced here (``featx -q``) stay silent in the workers
    quiet = _warnings_ignored()
    env[_QUIET_VAR] = "1" if quiet else ""
    watch = {"initializer": _watch_parent, "initargs": (os.getpid(),)}
    if fresh:
        return ProcessPoolExecutor(max_workers=workers, env=env, **watch)
    if _KEPT.get("workers") != (workers, quiet):
        _discard()
        _KEPT.update(executor=ProcessPoolExecutor(max_workers=workers, timeout=300, env=env, **watch),
                     workers=(workers, quiet))
    return _KEPT["executor"]


def _watch_parent(parent: int) -> None:
    """Run in each new worker: end it once ``parent``, the process that started it, is gone.

    A daemon thread compares the worker's parent with ``parent`` every
    :data:`WATCH_SECONDS`; an orphaned worker has been given another parent (init, or
    the nearest subreaper) and exits at once, whatever its main thread is doing.
    """
    if os.getppid() != parent:  # the parent died while this worker was starting
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(WATCH_SECONDS)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="featx-watch-parent", daemon=True).start()


_WATCHED: dict = {}


def watch_parent(parent: int) -> None:
    """End this process once ``parent`` is gone, as featx's own pool workers do
    (:func:`_watch_parent`); for worker processes started by another pool (joblib's, in
    sweeps). Called on each task; the watch starts once per process."""
    if _WATCHED.get("parent") != parent:
        _WATCHED["parent"] = parent
        _watch_parent(parent)


def _discard() -> None:
    """End the kept pool's workers at once (after a death, an error or Ctrl-C)."""
    executor = _KEPT.pop("executor", None)
    _KEPT.pop("workers", None)
    if executor is not None:
        executor.shutdown(wait=False, kill_workers=True)


def _call(task, key, args):
    """Run in a worker: ``task(key, *args)`` with one BLAS/OpenMP thread."""

    _worker_logging(quiet=bool(os.environ.get(_QUIET_VAR)))
    with warnings.catch_warnings(), limited_threads():
        if os.environ.get(_QUIET_VAR):
            warnings.simplefilter("ignore")
        return task(key, *args)


def _worker_logging(*, quiet: bool) -> None:
    """featx's log lines from a worker as the command line prints its own (none with ``-q``)."""
    featx_logger = logging.getLogger("featx")
    if getattr(featx_logger, "_featx_worker", False):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    featx_logger.addHandler(handler)
    featx_logger.setLevel(logging.ERROR if quiet else logging.WARNING)
    featx_logger.propagate = False
    featx_logger._featx_worker = True


def _is_pool_death(exc: BaseException) -> bool:
    from concurrent.futures import BrokenExecutor  # only with worker threads

    return isinstance(exc, BrokenExecutor)


def _alone(task, key: str, args: tuple) -> dict:
    """Analyse ``key`` in a fresh one-worker pool; a dead worker gives an error record."""
    executor = _executor(1, fresh=True)
    died = False
    try:
        return executor.submit(_call, task, key, args).result()
    except Exception as exc:
        if not _is_pool_death(exc):
            raise
        died = True
        logger.warning("%s: the worker process died while reading it; skipped", key)
        return {"key": key, "error": WORKER_DIED}
    finally:
        executor.shutdown(wait=not died, kill_workers=died)


def map_files(task, keys, *, jobs: int, args: tuple = ()):
    """Yield ``task(key, *args)`` for every key, computed in ``jobs`` worker processes.

    Results come in completion order. ``task`` returns a record (a dict with
    ``"key"``); it must be importable by the workers (a module-level function).

    Parameters
    ----------
    task : callable
    keys : list of str
        Files to analyse.
    jobs : int >= 1
        Worker processes (at most :data:`IN_FLIGHT_PER_WORKER` files in flight per worker), at most
        :data:`MAX_WORKERS_PER_CORE` per core: more only wait for a core and hold
        memory (each about 150 MB).
    args : tuple
        Further arguments of ``task``.

    Yields
    ------
    record : dict
        ``task``'s record, or ``{"key": key, "error": WORKER_DIED}`` for a file
        whose worker process died both with other files in flight and alone.
    """
    from concurrent.futures import FIRST_COMPLETED, wait  # only with worker threads

    cap = MAX_WORKERS_PER_CORE * (os.cpu_count() or 1)
    if jobs > cap:
        logger.info("%d worker processes asked for; %d started (%d per core)", jobs, cap, MAX_WORKERS_PER_CORE)
        jobs = cap
    pending = list(reversed(keys))  # popped from the end: keys start in the given order
    while pending:
        executor = _executor(max(1, min(jobs, len(pending))))
        running: dict = {}
        broken = False
        try:  # a failure or Ctrl-C here ends the workers at once, mid-file
            while pending or running:
                while pending and len(running) < IN_FLIGHT_PER_WORKER * jobs:
                    key = pending.pop()
                    running[executor.submit(_call, task, key, args)] = key
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                results = []
                for future in finished:
                    if future.cancelled():
                        broken = True
                        continue
                    exc = future.exception()
                    if exc is not None:
                        if not _is_pool_death(exc):
                            yield from results  # what finished beside it is still good
                            raise exc
                        broken = True
                        continue
                    results.append(future.result())
                    del running[future]
                if not broken:  # the freed workers get their next files before the caller
                    while pending and len(running) < IN_FLIGHT_PER_WORKER * jobs:  # handles these
                        key = pending.pop()
                        running[executor.submit(_call, task, key, args)] = key
                yield from results
                if broken:
                    break
        except BaseException:
            _discard()
            raise
        if not broken:
            return  # the pool stays up for the next run
        _discard()
        suspects = []
        for future, key in running.items():
            if future.done() and not future.cancelled() and future.exception() is None:
                yield future.result()
            else:
                suspects.append(key)
        logger.warning("a worker process died while %d file(s) were in flight; reading them "
                       "again one at a time", len(suspects))
        for key in suspects:
            yield _alone(task, key, args)
