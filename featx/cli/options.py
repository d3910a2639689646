"""Shared click options: each option more than one command takes is defined once, here.

A command applies the decorators it needs (``@options.sr_opt``); the help text, the
default and the parsing are then the same everywhere. :func:`verbosity` is on every
command: ``-v``/``-q`` work after the command's name as before it
(``featx extract -q ...`` is ``featx -q extract ...``).
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from ..errors import ConfigError
from ..extract.executors import WAIT_WORKERS


def configure_logging(verbosity: int) -> None:
    """Log level for a verbosity: -1 (``-q``) errors only, 0 warnings, 1 (``-v``) info, 2+ debug."""
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s", stream=sys.stderr)
    logging.getLogger().setLevel(level)  # basicConfig sets it only once per process
    logging.getLogger("featx").setLevel(level)


def _root_obj(ctx: click.Context) -> dict:
    root = ctx.find_root()
    root.ensure_object(dict)
    return root.obj


def _set_quiet(ctx, param, value):
    if value:
        obj = _root_obj(ctx)
        obj["quiet"] = True
        configure_logging(-1)


def _add_verbose(ctx, param, value):
    if value:
        obj = _root_obj(ctx)
        obj["verbose"] = obj.get("verbose", 0) + value
        if not obj.get("quiet"):
            configure_logging(obj["verbose"])


#: ``-v/--verbose``: more log output (repeatable), before or after the command's name.
verbose_opt = click.option("-v", "--verbose", count=True, expose_value=False, is_eager=True,
                           callback=_add_verbose, help="More log output (repeatable).")
#: ``-q/--quiet``: only errors on stderr, before or after the command's name.
quiet_opt = click.option("-q", "--quiet", is_flag=True, expose_value=False, is_eager=True, callback=_set_quiet,
                         help="Only errors on stderr: no progress, notes or warnings (results still go to stdout).")


def verbosity(func):
    """``-v`` and ``-q`` on a command (see :data:`verbose_opt`, :data:`quiet_opt`)."""
    return verbose_opt(quiet_opt(func))


#: Audio files or folders to analyse.
inputs_arg = click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))

segment_seconds_opt = click.option(
    "--segment-seconds", default="3", show_default=True, metavar="SECONDS",
    help="Length of each analysed segment; one row per full segment (the Kaggle rule).")

sr_opt = click.option("--sr", default=22050, show_default=True, type=int,
                      help="Sample rate the audio is resampled to (after downmixing to mono).")

labels_opt = click.option(
    "--labels", default="folder", show_default=True, metavar="folder|none|FILE.csv",
    help="Label source: each file's parent folder, none (no label column), or a CSV with columns file,label.")

jobs_opt = click.option("-j", "--jobs", type=int, default=None,
                        help="Worker processes, an integer >= 1 (default: all cores).")

scheduler_opt = click.option(
    "--scheduler", default=None, metavar="ADDRESS",
    help="Analyse the files on a running Dask cluster (e.g. tcp://10.0.0.5:8786) instead of local "
         "processes; its workers must read the inputs (needs featx[dask]).")

wait_workers_opt = click.option(
    "--wait-workers", type=click.FloatRange(min=0), default=WAIT_WORKERS, show_default=True, metavar="SECONDS",
    help="With --scheduler: how long to wait while the cluster has no worker (at the start, or when "
         "every worker has left) before stopping.")


def segment_seconds(value: str, whole_file: bool) -> float | None:
    """``--segment-seconds`` as a number (None with ``--whole-file``), or one ConfigError line."""
    if whole_file:
        return None
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"--segment-seconds must be a positive number. Received: {value!r}") from None
