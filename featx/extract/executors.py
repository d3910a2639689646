"""Executors: where per-file (or per-trial) tasks run — local processes or a Dask cluster.

Both executors have one interface, :func:`map_files`: hand it a module-level
``task(key, *args)`` returning a record (a dict with ``"key"``) and the keys; it yields
the records as the tasks finish. The caller keeps the journal and writes the output,
so resuming, ordering and the output's bytes do not depend on where tasks ran.

Without a scheduler address the tasks run in local worker processes
(:func:`featx.extract.pool.map_files`). With one (``tcp://host:8786``) they run on an
existing ``dask.distributed`` cluster: every worker must have featx installed and be
able to read the inputs (a shared file system). A worker that dies mid-task has its
task run again on another worker (the scheduler's ``allowed-failures``); a task that
kills workers again and again ends as a record ``{"key": key, "error": ...}`` naming
``KilledWorker``, like a file that kills a local worker twice.
"""
from __future__ import annotations

import logging

from ..errors import ConfigError

logger = logging.getLogger(__name__)

#: Reason recorded for a task that killed the Dask workers running it, again and again.
KILLED_WORKER = ("KilledWorker: every Dask worker that ran it died (killed by the system, "
                 "e.g. out of memory, or the decoder crashed)")

#: Seconds to wait for the scheduler to answer when connecting.
CONNECT_TIMEOUT = 30

#: Times a task that raised an unexpected exception is run again (on any worker).
RETRIES = 2


def map_files(task, keys, *, jobs: int = 1, args: tuple = (), scheduler: str | None = None):
    """Yield ``task(key, *args)`` for every key, in completion order.

    Parameters
    ----------
    task : callable
        A module-level function (importable by the workers) returning a dict with ``"key"``.
    keys : list of str
        One task per key (a file path, a trial key).
    jobs : int >= 1
        Local worker processes (ignored with ``scheduler``: the cluster's workers decide).
    args : tuple
        Further arguments of ``task``, sent to the workers once per task.
    scheduler : str, optional
        Address of a running ``dask.distributed`` scheduler; ``None``: local processes.

    Yields
    ------
    record : dict
        ``task``'s record, or ``{"key": key, "error": reason}`` for a task whose worker
        died (locally: twice; on a cluster: more often than the scheduler allows).
    """
    if scheduler is None:
        from .pool import map_files as local_map

        yield from local_map(task, keys, jobs=jobs, args=args)
        return
    yield from dask_map(task, keys, scheduler=scheduler, args=args)


def connect(scheduler: str):
    """A ``distributed.Client`` connected to ``scheduler``; one-line errors otherwise."""
    try:
        from distributed import Client
    except ImportError:
        raise ConfigError(f"scheduler={scheduler!r} needs Dask: pip install 'featx[dask]' "
                          "(dask[distributed])", param="scheduler") from None
    if not isinstance(scheduler, str) or not scheduler.strip():
        raise ConfigError(f"scheduler must be an address like tcp://host:8786. "
                          f"Received: scheduler={scheduler!r}", param="scheduler")
    try:
        return Client(scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"cannot connect to the Dask scheduler at {scheduler!r} ({reason}); expected a "
            "running 'dask scheduler' (see the README, 'Running on a Dask cluster')") from None


def _run(key, task, args):
    """Run on a Dask worker: ``task(key, *args)`` with one BLAS/OpenMP thread."""
    from .._threads import limited_threads

    with limited_threads():
        return task(key, *args)


def dask_map(task, keys, *, scheduler: str, args: tuple = (), client=None):
    """:func:`map_files` on a Dask cluster: one future per key, records as they finish.

    ``client`` reuses a connected ``distributed.Client`` (kept open); by default one is
    connected to ``scheduler`` and closed at the end. Unfinished tasks are cancelled when
    the caller stops early (an error, Ctrl-C).
    """
    keys = list(keys)
    if not keys:
        return
    own = client is None
    client = connect(scheduler) if own else client
    futures = []
    try:
        from distributed import as_completed

        futures = client.map(_run, keys, task=task, args=args, pure=False, retries=RETRIES,
                             key=[f"featx-{i}-{_token()}" for i in range(len(keys))])
        by_key = {f.key: k for f, k in zip(futures, keys)}
        for future in as_completed(futures, loop=client.loop):
            key = by_key[future.key]
            if future.status == "error":
                exc = future.exception()
                if isinstance(exc, ImportError):  # e.g. featx not installed on a worker
                    raise ConfigError(
                        f"{key}: a Dask worker of {scheduler} cannot run featx's task "
                        f"({type(exc).__name__}: {exc}); every worker needs featx installed, "
                        "the same version as here") from None
                if type(exc).__name__ != "KilledWorker":
                    raise exc
                logger.warning("%s: the Dask workers running it died; skipped", key)
                yield {"key": key, "error": KILLED_WORKER}
            elif future.status == "cancelled":
                raise ConfigError(f"{key}: its task was cancelled on the Dask cluster at "
                                  f"{scheduler}; run the command again to resume")
            else:
                yield future.result()
            future.release()
    finally:
        if futures:
            try:
                client.cancel([f for f in futures if not f.done()])
            except Exception:  # pragma: no cover - the connection is already gone
                pass
        if own:
            client.close()


def _token() -> str:
    import secrets

    return secrets.token_hex(6)
