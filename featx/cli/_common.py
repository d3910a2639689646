"""Shared pieces of the commands: error handling and progress switches."""
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
