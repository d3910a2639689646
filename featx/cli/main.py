"""The ``featx`` command line: one click group, thin commands.

Commands parse options, call the library, and turn :class:`featx.errors.FeatxError`
into a one-line error with a non-zero exit status. Nothing here imports TensorFlow:
model commands import it only when they run.
"""
from __future__ import annotations

import logging
import sys

import click

from .. import __version__


def _configure_logging(verbosity: int) -> None:
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s", stream=sys.stderr)
    logging.getLogger("featx").setLevel(level)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="featx")
@click.option("-v", "--verbose", count=True, help="More log output (repeatable).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr: no progress, notes or warnings (results still go to stdout).")
@click.pass_context
def main(ctx, verbose, quiet):
    """featx: music-genre classification from audio features and spectrograms."""
    ctx.ensure_object(dict)
    ctx.obj["quiet"] = quiet
    _configure_logging(-1 if quiet else verbose)


def _register_commands() -> None:
    from .extract import demo, extract
    from .models import evaluate, models, predict, train
    from .plot import plot
    from .sweep import sweep
    from .blend import blend
    from .spectrograms import spectrograms

    for command in (extract, demo, spectrograms, train, evaluate, predict, plot, models, sweep, blend):
        main.add_command(command)


_register_commands()
