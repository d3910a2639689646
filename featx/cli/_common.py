"""The ``featx`` command line: one click group, thin commands.

Commands parse options, call the library, and turn :class:`featx.errors.FeatxError`
into a one-line error with a non-zero exit status. Nothing here imports TensorFlow:
model commands import it only when they run.
"""
from __future__ import annotations

import functools

import click

from ..errors import FeatxError


def handle_errors(func):
    """Turn FeatxError (and Ctrl-C) into clean click errors, without a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except FeatxError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def progress_enabled(ctx: click.Context) -> bool | None:
    """False with -q; otherwise None, which lets tqdm show a bar only on a terminal."""
    return False if (ctx.obj or {}).get("quiet") else None
