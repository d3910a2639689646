"""The ``featx`` command line: one click group, thin commands.

Commands parse options, call the library, and turn :class:`featx.errors.FeatxError`
into a one-line error with a non-zero exit status. Nothing here imports TensorFlow:
model commands import it only when they run.
"""
from __future__ import annotations

import functools
import logging
import sys

import click

from . import __version__
from .errors import FeatxError


def handle_errors(func):
    """Turn FeatxError (and Ctrl-C) into clean click errors, without a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except FeatxError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def _configure_logging(verbosity: int) -> None:
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s", stream=sys.stderr)
    logging.getLogger("featx").setLevel(level)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="featx")
@click.option("-v", "--verbose", count=True, help="More log output (repeatable).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors; no progress bars.")
@click.pass_context
def main(ctx, verbose, quiet):
    """featx: music-genre classification from hand-crafted audio features."""
    ctx.ensure_object(dict)
    ctx.obj["quiet"] = quiet
    _configure_logging(-1 if quiet else verbose)


def progress_enabled(ctx: click.Context) -> bool | None:
    """False with -q; otherwise None, which lets tqdm show a bar only on a terminal."""
    return False if (ctx.obj or {}).get("quiet") else None


def _register_commands():
    from . import cli_extract, cli_models, cli_sweep

    for module in (cli_extract, cli_models, cli_sweep):
        for command in module.COMMANDS:
            main.add_command(command)


_register_commands()
