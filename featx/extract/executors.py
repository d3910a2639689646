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

A cluster without workers is waited for at most ``wait_workers`` seconds (at the start,
and whenever every worker has left), with a line every :data:`WAIT_NOTE_SECONDS`; then
the run ends with one line naming the scheduler. A scheduler that goes away mid-run, or
stops answering for :data:`CONNECT_TIMEOUT` seconds (stopped, frozen), ends it with one
line too: distributed's own log records (reconnection attempts and
their tracebacks) are held back while featx talks to the cluster, unless featx logs at
debug level (``-vv``).
"""
from __future__ import annotations

import contextlib
import logging
import math
import secrets
import threading
import time

from ..errors import ConfigError
from ..runtime.threads import limited_threads
from .pool import map_files as local_map

logger = logging.getLogger(__name__)

#: Reason recorded for a task that killed the Dask workers running it, again and again.
KILLED_WORKER = ("KilledWorker: every Dask worker that ran it died (killed by the system, "
                 "e.g. out of memory, or the decoder crashed)")

#: Seconds to wait for the scheduler to answer when connecting.
CONNECT_TIMEOUT = 30
#: How long one wait for a finished task's result lasts before the scheduler is asked to answer.
_RESULT_POLL_SECONDS = 5.0

#: Seconds a run waits for a worker (none yet, or every one has left) before it stops.
WAIT_WORKERS = 60.0

#: Seconds between the lines that say the run is still waiting for a worker.
WAIT_NOTE_SECONDS = 15.0

#: Seconds between two looks at the cluster's workers while tasks are pending.
_POLL_SECONDS = 1.0

#: Times a task that raised an unexpected exception is run again (on any worker).
RETRIES = 2

#: Loggers whose records are held back while featx talks to a cluster (see the module docstring).
_CLUSTER_LOGGERS = ("distributed", "tornado", "asyncio")


def map_files(task, keys, *, jobs: int = 1, args: tuple = (), scheduler: str | None = None,
              wait_workers: float | None = None):
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
    wait_workers : float >= 0, optional
        With ``scheduler``: seconds to wait while the cluster has no worker; default
        :data:`WAIT_WORKERS`.

    Yields
    ------
    record : dict
        ``task``'s record, or ``{"key": key, "error": reason}`` for a task whose worker
        died (locally: twice; on a cluster: more often than the scheduler allows).
    """
    if scheduler is None:
        yield from local_map(task, keys, jobs=jobs, args=args)
        return
    yield from dask_map(task, keys, scheduler=scheduler, args=args, wait_workers=wait_workers)


def check_address(scheduler) -> str:
    """``scheduler`` as a Dask address (stripped), or one ConfigError line saying what is wrong.

    The address is checked as ``distributed`` reads it (a known scheme, a host and a
    port from 1 to 65535) before anything connects, so a typo ends at once.
    """
    if not isinstance(scheduler, str):
        raise ConfigError(f"scheduler must be an address like tcp://host:8786. "
                          f"Received: scheduler={scheduler!r}", param="scheduler")
    address = scheduler.strip()
    if not address:
        raise ConfigError("scheduler must be an address like tcp://host:8786; it is empty",
                          param="scheduler")
    try:
        # dask.distributed: only with a scheduler
        from distributed.comm.addressing import parse_address, parse_host_port
        from distributed.comm.registry import backends  # dask.distributed: only with a scheduler
    except ImportError:
        raise ConfigError(f"scheduler={scheduler!r} needs Dask: pip install 'featx[dask]' "
                          "(dask[distributed])", param="scheduler") from None
    try:
        scheme, location = parse_address(address)
        if scheme not in backends:
            raise ValueError(f"unknown scheme {scheme + '://'!r}; expected one of "
                             f"{', '.join(s + '://' for s in sorted(backends))}")
        if scheme != "inproc":
            try:
                host, port = parse_host_port(location)
            except ValueError as exc:
                if "int()" not in str(exc):
                    raise
                raise ValueError(f"the port of {location!r} is not a number") from None
            if not host or any(c.isspace() for c in host):
                raise ValueError(f"no host name in {location!r}")
            if not 0 < port < 65536:
                raise ValueError(f"port {port} is not in 1-65535")
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"scheduler must be an address like tcp://host:8786 ({exc}). "
                          f"Received: scheduler={scheduler!r}", param="scheduler") from None
    return address


def connect(scheduler: str):
    """A ``distributed.Client`` connected to ``scheduler``; one-line errors otherwise.

    A client that fails to connect is closed at once: it neither keeps the process
    alive nor prints a traceback when it is collected.
    """
    address = check_address(scheduler)
    _check_answers(address)
    from distributed import Client  # dask.distributed: only with a scheduler

    client = Client.__new__(Client)
    try:
        client.__init__(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except Exception as exc:
        _abandon(client)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"cannot connect to the Dask scheduler at {address!r} ({reason}); expected a "
            "running 'dask scheduler' (docs/guide/extract.rst, 'Running on a Dask cluster')") from None
    except BaseException:  # Ctrl-C while connecting
        _abandon(client)
        raise
    return client


def _check_answers(address: str) -> None:
    """Ask ``address`` who it is, within :data:`CONNECT_TIMEOUT` seconds; one ConfigError line
    unless a Dask scheduler answers.

    ``distributed.Client`` waits for ever on a server that accepts the connection and
    then says nothing (another program on that port, a scheduler frozen before it
    answered). The question runs in a daemon thread with its own event loop, so it
    works under a running loop (a notebook) and Ctrl-C or an exit never waits for it.
    """
    import asyncio  # asyncio: only on this path

    async def identity():
        from distributed.core import rpc  # dask.distributed: only with a scheduler

        async with rpc(address, timeout=CONNECT_TIMEOUT) as server:
            return await asyncio.wait_for(server.identity(), CONNECT_TIMEOUT)

    outcome: dict = {}

    def ask():
        try:
            outcome["info"] = asyncio.run(identity())
        except BaseException as exc:  # handed to the caller below
            outcome["error"] = exc

    thread = threading.Thread(target=ask, name="featx-dask-probe", daemon=True)
    thread.start()
    thread.join(2 * CONNECT_TIMEOUT + 5)
    exc, info = outcome.get("error"), outcome.get("info")
    if "error" not in outcome and "info" not in outcome or isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        raise ConfigError(f"the server at {address!r} does not answer as a Dask scheduler (no reply in "
                          f"{CONNECT_TIMEOUT} s); expected a running 'dask scheduler' there") from None
    if isinstance(exc, OSError):  # refused, unreachable, unknown host, closed by the other side
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"cannot connect to the Dask scheduler at {address!r} ({reason}); expected a "
            "running 'dask scheduler' (docs/guide/extract.rst, 'Running on a Dask cluster')") from None
    if exc is not None:  # an answer that is not Dask's protocol (another kind of server)
        raise ConfigError(f"the server at {address!r} does not speak Dask's protocol "
                          f"({type(exc).__name__}); expected a running 'dask scheduler' there") from None
    kind = info.get("type") if isinstance(info, dict) else None
    if kind != "Scheduler":
        raise ConfigError(f"{address} is {'a Dask ' + str(kind) if kind else 'not a Dask scheduler'}, not "
                          "the scheduler; expected the address the scheduler listens on (its log says "
                          "'Scheduler at: tcp://...')")


def _abandon(client) -> None:
    """Mark a client whose connection failed as closed and stop its event loop.

    Otherwise ``Client.__del__`` (at collection or exit) tries to close a connection
    that never was, waiting twice the connect timeout and then printing a traceback.
    """
    with contextlib.suppress(Exception):
        if getattr(client, "status", "closed") != "closed":
            client.status = "closed"
        client._loop_runner.stop()


@contextlib.contextmanager
def _cluster_logs_held():
    """Hold back distributed's log records below CRITICAL (see the module docstring)."""
    if logging.getLogger("featx").getEffectiveLevel() <= logging.DEBUG:
        yield
        return
    names = [n for n in list(logging.root.manager.loggerDict)
             if any(n == root or n.startswith(root + ".") for root in _CLUSTER_LOGGERS)]
    loggers = [logging.getLogger(n) for n in {*names, *_CLUSTER_LOGGERS}]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def check_wait_workers(wait_workers) -> float:
    """``wait_workers`` as seconds (a number >= 0), or one ConfigError line."""
    try:
        value = float(wait_workers)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(wait_workers, bool) or not 0 <= value < math.inf:
        raise ConfigError(f"wait_workers must be a number of seconds >= 0. "
                          f"Received: wait_workers={wait_workers!r}", param="wait_workers")
    return value


class _WorkerWatch:
    """Looks at a cluster's workers while tasks are pending; ends a wait that lasts too long."""

    def __init__(self, client, address: str, wait_workers: float):
        self.client, self.address, self.wait = client, address, wait_workers
        self.since = None  # when the cluster was last seen without workers
        self.noted = 0.0
        self.last = -math.inf
        self.silent = False  # the scheduler stopped answering: nothing more is asked of it

    def lost(self) -> bool:
        return self.client.status not in ("running", "connecting")

    def check(self, *, force: bool = False) -> int:
        """Look at the workers (at most every :data:`_POLL_SECONDS`); raise after a long wait."""
        now = time.monotonic()
        if not force and now - self.last < _POLL_SECONDS:
            return -1
        self.last = now
        if self.client.status != "running":
            if self.lost():
                raise lost_connection(self.address)
            return -1  # reconnecting: the futures are cancelled if that fails
        try:
            n = _n_workers(self.client)
        except TimeoutError:
            if self.client.status != "running":
                raise lost_connection(self.address) from None
            self.silent = True
            raise ConfigError(
                f"the Dask scheduler at {self.address} stopped answering (no reply in {CONNECT_TIMEOUT} s; "
                "stopped, frozen or unreachable); finished work is kept: run the command again when it "
                "answers") from None
        except Exception:  # the scheduler went away during the question
            if self.client.status != "running":
                raise lost_connection(self.address) from None
            return -1
        if n:
            if self.since is not None:
                logger.warning("a Dask worker joined %s; continuing", self.address)
            self.since = None
            return n
        if self.since is None:
            self.since, self.noted = now, now
            logger.warning("no Dask workers on %s; waiting up to %g s for one (start one with: "
                           "dask worker %s)", self.address, self.wait, self.address)
        elif now - self.noted >= WAIT_NOTE_SECONDS:
            self.noted = now
            logger.warning("still no Dask workers on %s after %.0f s (waiting up to %g s)",
                           self.address, now - self.since, self.wait)
        if now - self.since >= self.wait:
            raise ConfigError(
                f"no workers on {self.address} for {now - self.since:.0f} s; start workers "
                f"(dask worker {self.address}) and run the command again, or wait longer "
                f"(wait_workers=SECONDS)", param="wait_workers")
        return 0


def _n_workers(client) -> int:
    """How many workers the client's scheduler has now; TimeoutError when it does not
    answer within :data:`CONNECT_TIMEOUT` seconds (a scheduler stopped or frozen while its
    connection stays open would otherwise keep the question waiting for ever)."""
    return len(client.sync(client.scheduler.ncores, callback_timeout=CONNECT_TIMEOUT))


def lost_connection(address: str) -> ConfigError:
    """The one-line error of a run whose scheduler went away."""
    return ConfigError(f"lost the connection to the Dask scheduler at {address} (it stopped or "
                       "the network failed); finished work is kept: run the command again to resume")


def _run(key, task, args):
    """Run on a Dask worker: ``task(key, *args)`` with one BLAS/OpenMP thread."""
    with limited_threads():
        return task(key, *args)


def dask_map(task, keys, *, scheduler: str, args: tuple = (), client=None,
             wait_workers: float | None = None):
    """:func:`map_files` on a Dask cluster: one future per key, records as they finish.

    ``client`` reuses a connected ``distributed.Client`` (kept open); by default one is
    connected to ``scheduler`` and closed at the end. Unfinished tasks are cancelled when
    the caller stops early (an error, Ctrl-C). While the cluster has no worker the run
    waits at most ``wait_workers`` seconds (default :data:`WAIT_WORKERS`), saying so,
    then raises ConfigError; a
    scheduler that goes away ends the run with one ConfigError line.
    """
    keys = list(keys)
    wait_workers = check_wait_workers(WAIT_WORKERS if wait_workers is None else wait_workers)
    if not keys:
        return
    own = client is None
    with _cluster_logs_held():
        client = connect(scheduler) if own else client
        address = scheduler if own else getattr(client, "scheduler_address", None) or scheduler
        futures = []
        watch = _WorkerWatch(client, address, wait_workers)
        try:
            from distributed import as_completed  # dask.distributed: only with a scheduler

            while watch.check(force=True) == 0:  # none yet: wait before handing tasks out
                time.sleep(_POLL_SECONDS)
            futures = client.map(_run, keys, task=task, args=args, pure=False, retries=RETRIES,
                                 key=[f"featx-{i}-{_token()}" for i in range(len(keys))])
            by_key = {f.key: k for f, k in zip(futures, keys)}
            for future in _completed(as_completed(futures, loop=client.loop), watch):
                key = by_key[future.key]
                if future.status == "error":
                    exc = future.exception()
                    if isinstance(exc, ImportError):  # e.g. featx not installed on a worker
                        raise ConfigError(
                            f"{key}: a Dask worker of {address} cannot run featx's task "
                            f"({type(exc).__name__}: {exc}); every worker needs featx installed, "
                            "the same version as here") from None
                    if type(exc).__name__ != "KilledWorker":
                        raise exc
                    logger.warning("%s: the Dask workers running it died; skipped", key)
                    yield {"key": key, "error": KILLED_WORKER}
                elif future.status == "cancelled":
                    if client.status != "running":
                        raise lost_connection(address)
                    raise ConfigError(f"{key}: its task was cancelled on the Dask cluster at "
                                      f"{address}; run the command again to resume")
                else:
                    yield _result(future, watch)
                future.release()
        finally:
            if futures and client.status == "running" and not watch.silent:
                with contextlib.suppress(Exception):  # the connection may be going
                    client.cancel([f for f in futures if not f.done()])
            if own:
                with contextlib.suppress(Exception):  # a silent scheduler is not waited for
                    client.close(timeout=1 if watch.silent else CONNECT_TIMEOUT)
                _abandon(client)


def _result(future, watch: _WorkerWatch):
    """A finished future's result. Fetching it asks the scheduler where the data is: a
    scheduler frozen just then would keep the fetch waiting for ever, so the wait is cut
    into short ones between which the scheduler is asked to answer (``watch``)."""
    while True:
        try:
            return future.result(timeout=_RESULT_POLL_SECONDS)
        except TimeoutError:
            watch.check(force=True)  # raises once the scheduler has not answered in CONNECT_TIMEOUT


def _completed(pending, watch: _WorkerWatch):
    """The futures of the ``as_completed`` iterator ``pending`` as they finish, looking at
    the workers (``watch``) while none is ready."""
    while pending.count():
        if pending.has_ready():
            yield next(pending)
            continue
        with pending.thread_condition:  # woken as soon as a future finishes
            pending.thread_condition.wait(timeout=0.1)
        if not pending.has_ready():
            watch.check()


def _token() -> str:
    return secrets.token_hex(6)
