"""Where a sweep's Optuna study lives: storage URLs, their secrets, and the connection.

A sweep's record is an Optuna study in a relational database (Optuna's own schema, so
``optuna.load_study`` and ``optuna-dashboard URL`` read it). By default that is SQLite in
``DIR/study.db``; ``storage=URL`` takes any database URL Optuna accepts
(``postgresql://user:password@host/db``, ``mysql+pymysql://...``), which lets sweeps on
several machines share one study.

- **Secrets.** A password in a URL is never shown: every message, log line and report
  names the storage through :func:`masked` (``postgresql://user:***@host/db``), and a
  driver's error text has the password replaced too (:func:`hide_secret`).
- **No hang.** A database server that cannot be reached ends the sweep within
  :data:`CONNECT_TIMEOUT` seconds (plus the time to say so), with one line.
- **One taker per trial.** SQLite transactions begin with ``BEGIN IMMEDIATE``, so that
  taking a waiting trial (read it, mark it running) is one locked step for every process
  on the file, as ``SELECT ... FOR UPDATE`` makes it on PostgreSQL and MySQL.
- **Heartbeats.** A running trial records a heartbeat every :data:`HEARTBEAT_INTERVAL`
  seconds; one silent for :data:`GRACE_PERIOD` seconds belonged to a process that died
  (or a machine that was lost): it is marked failed and queued again, at most
  :data:`MAX_RETRY` times (Optuna's ``RetryHeartbeatStaleTrialCallback``).
"""
from __future__ import annotations

import logging
import re
import threading
import time
import warnings
from pathlib import Path

from ..errors import ConfigError, OutputError

logger = logging.getLogger(__name__)

#: The study's file in the sweep folder when no storage URL is given.
STUDY_DB = "study.db"
#: Seconds a database server may take to accept a connection before the sweep stops.
CONNECT_TIMEOUT = 5
#: Seconds a SQLite writer waits for another process's lock on the file.
SQLITE_BUSY_TIMEOUT = 120
#: Seconds between the heartbeats of a running trial.
HEARTBEAT_INTERVAL = 10
#: Seconds without a heartbeat after which a running trial is taken for dead.
GRACE_PERIOD = 60
#: How many times a trial whose process died is queued again before it stays failed.
MAX_RETRY = 2

#: Install command for each database whose driver is not a featx dependency.
_DRIVER_HINTS = {
    "postgresql": "pip install 'featx[postgres]' (the psycopg driver)",
    "mysql": "pip install pymysql (and use mysql+pymysql://...)",
}

_URL_SECRET = re.compile(r"(://[^:/@\s]*:)([^@\s]*)(@)")


def default_storage(output) -> str:
    """``sqlite:////abs/DIR/study.db``: an absolute path, so Dask workers find the same file."""
    return f"sqlite:///{Path(output).resolve() / STUDY_DB}"


def masked(url: str) -> str:
    """``url`` with its password (if any) shown as ``***``."""
    return _URL_SECRET.sub(r"\1***\3", str(url))


def _password(url: str) -> str | None:
    match = _URL_SECRET.search(str(url))
    return match.group(2) if match and match.group(2) else None


def hide_secret(text: str, url: str) -> str:
    """``text`` with the password of ``url`` (as written, or URL-decoded) replaced by ``***``."""
    from urllib.parse import unquote

    secret = _password(url)
    text = masked(str(text))
    if secret:
        for form in {secret, unquote(secret)}:
            if len(form) >= 1:
                text = text.replace(form, "***")
    return text


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL (``None`` for other databases or memory)."""
    if not str(url).startswith("sqlite:///"):
        return None
    path = str(url)[len("sqlite:///"):].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def check_storage_url(url: str) -> str:
    """Check that ``url`` is a database URL; returns it. One ConfigError line otherwise."""
    from sqlalchemy.engine import make_url  # SQLAlchemy (with Optuna) is heavy: only on this path
    from sqlalchemy.exc import ArgumentError  # SQLAlchemy: only on this path

    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"storage must be a database URL like sqlite:///sweeps/study.db or "
                          f"postgresql://user@host/db. Received: storage={url!r}", param="storage")
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ConfigError(f"storage must be a database URL like sqlite:///sweeps/study.db or "
                          f"postgresql://user@host/db. Received: storage={masked(url)!r}",
                          param="storage") from None
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if path is None:
            raise ConfigError(f"storage {masked(url)}: an in-memory database keeps nothing; expected a "
                              "file like sqlite:///sweeps/study.db", param="storage")
    return url


def _engine_kwargs(url: str) -> dict:
    backend = url.split(":", 1)[0].split("+", 1)[0].lower()
    if backend == "sqlite":
        # isolation_level None: the driver leaves transactions to us (BEGIN IMMEDIATE below)
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT, "isolation_level": None}}
    if backend in ("postgresql", "mysql", "mariadb"):
        return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT}, "pool_pre_ping": True}
    return {"pool_pre_ping": True}


def _begin_immediate(connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


#: Storages opened in this process, by URL (worker processes open each once).
_OPEN: dict[str, object] = {}
_LOCK = threading.Lock()


def open_storage(url: str):
    """The ``optuna.storages.RDBStorage`` at ``url``, with heartbeats (one per URL and process).

    Raises
    ------
    ConfigError
        The URL is malformed or needs a driver that is not installed (the message names
        the install command).
    OutputError
        The database cannot be reached or opened (within :data:`CONNECT_TIMEOUT` seconds
        for a server that does not answer); the message never shows the password.
    """
    with _LOCK:
        if url in _OPEN:
            return _OPEN[url]
        storage = _connect(check_storage_url(url))
        _OPEN[url] = storage
        return storage


def _connect(url: str):
    import optuna  # Optuna (with SQLAlchemy) is heavy: only when a sweep runs
    from sqlalchemy import event  # SQLAlchemy: only when a sweep runs

    backend = url.split(":", 1)[0].split("+", 1)[0].lower()
    path = sqlite_path(url)
    if path is not None and not path.parent.is_dir():
        raise OutputError(f"storage {masked(url)}: the folder {path.parent} does not exist; "
                          "expected the path of a database file in an existing folder")
    try:
        for attempt in range(3):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # heartbeats are marked experimental
                    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
                    storage = optuna.storages.RDBStorage(
                        url, engine_kwargs=_engine_kwargs(url), heartbeat_interval=HEARTBEAT_INTERVAL,
                        grace_period=GRACE_PERIOD, heartbeat_stale_trial_callback=retry)
                break
            except Exception as exc:
                # two processes creating Optuna's tables in an empty database at once: the
                # one that loses sees them exist; once they do, opening again succeeds
                if attempt == 2 or "already exists" not in str(exc):
                    raise
                time.sleep(1.0 + attempt)
    except ImportError:
        hint = _DRIVER_HINTS.get(backend, "install the database driver SQLAlchemy names for it")
        raise ConfigError(f"storage {masked(url)}: no driver for {backend} databases is installed; "
                          f"{hint}", param="storage") from None
    except Exception as exc:  # the driver's or SQLAlchemy's error: one line, no secret
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
        reason = re.sub(r"\(Background on this error at: [^)]*\)", "", reason).strip()
        raise OutputError(f"storage {masked(url)}: cannot open the study database "
                          f"({hide_secret(reason[:300], url)}); check the URL, that the server runs "
                          "and accepts this user") from None
    if backend == "sqlite":
        event.listen(storage.engine, "begin", _begin_immediate)
        storage.engine.dispose()  # connections made from now on take the listener
    return storage


def close_storages() -> None:
    """Close every storage this process opened (their connection pools)."""
    with _LOCK:
        for storage in _OPEN.values():
            try:
                storage.engine.dispose()
            except Exception:  # closing what may already be gone
                logger.debug("closing a storage failed", exc_info=True)
        _OPEN.clear()


def quiet_optuna() -> None:
    """Send Optuna's log records through featx's logging (shown with ``-v``), not its own handler."""
    import optuna  # Optuna is heavy: only when a sweep runs

    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    logging.getLogger("optuna").setLevel(logging.WARNING)
