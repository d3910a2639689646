"""Shared pieces of the commands: error handling, quiet output and progress switches."""
from __future__ import annotations

import errno
import functools
import re
import sys
import warnings

import click

from ..errors import FeatxError
from ..io.atomic import write_error
from ..models.augment import SHIFT_MODES
from ..training.config import LR_SCHEDULES, OPTION_HELP

#: Exit status of a command stopped by Ctrl-C (128 + SIGINT, as shells report it).
INTERRUPTED_STATUS = 130


def _quiet() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and (ctx.find_root().obj or {}).get("quiet"))


def handle_errors(func=None, *, interrupted: str = ""):
    """Turn FeatxError into a one-line error and Ctrl-C into one line and exit status 130.

    Every command is wrapped by this decorator. A Python warning is shown once per
    command (the first time its text comes up); with ``-q`` not at all, so only errors
    are printed.

    Parameters
    ----------
    interrupted : str
        What the user should know after Ctrl-C (e.g. how to resume); formatted with
        the command's parameters, as in ``"finished trials are kept in {output}"``.
    """
    if func is None:
        return functools.partial(handle_errors, interrupted=interrupted)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            with warnings.catch_warnings():
                if _quiet():
                    warnings.simplefilter("ignore")
                else:  # each warning once, however many folds, genres or files raise it
                    warnings.showwarning = _once(warnings.showwarning)
                return func(*args, **kwargs)
        except FeatxError as exc:
            raise click.ClickException(cli_message(exc)) from None
        except OSError as exc:
            if exc.errno not in USER_ERRNOS:
                raise
            # an error raised by a write on an open file carries no file name: name the output
            fallback = kwargs.get("output") or kwargs.get("output_dir")
            raise click.ClickException(os_error_message(exc, fallback=fallback)) from None
        except KeyboardInterrupt:
            ctx = click.get_current_context(silent=True)
            name = ctx.info_name if ctx is not None else "featx"
            hint = interrupted.format(**kwargs) if interrupted else ""
            # a terminal shows '^C' (and maybe a bar) on the current line: start a fresh one
            start = "\n" if _isatty(sys.stderr) else ""
            click.echo(f"{start}{name}: interrupted{'; ' + hint if hint else ''}", err=True)
            sys.exit(INTERRUPTED_STATUS)

    wrapper.handles_errors = True  # copied onto click's wrappers: lets tests check every command
    return wrapper


def _once(show):
    """``show`` (a ``warnings.showwarning``) that passes on each warning's text only the
    first time. The filters' own ``"once"`` cannot do it: its registry is cleared
    whenever code catches warnings, as a model fit that re-issues them does."""
    seen: set[tuple[type, str]] = set()

    def show_once(message, category, filename, lineno, file=None, line=None):
        key = (category, str(message))
        if key not in seen:
            seen.add(key)
            show(message, category, filename, lineno, file, line)

    return show_once


#: ``OSError`` numbers a user's machine or paths cause (full or read-only disk, missing or
#: forbidden paths): a command ends in one line for these; any other ``OSError`` is a bug.
USER_ERRNOS = frozenset(getattr(errno, name) for name in (
    "ENOSPC", "EDQUOT", "EROFS", "EFBIG", "EACCES", "EPERM", "ENOENT", "ENOTDIR", "EISDIR",
    "ENAMETOOLONG", "ELOOP", "EMFILE", "ENFILE", "EIO", "EXDEV") if hasattr(errno, name))


def os_error_message(exc: OSError, *, fallback=None) -> str:
    """One line for an ``OSError``: the file it names, what went wrong, what to do.

    ``fallback`` (the command's output, say) is named when the error names no file.
    """
    where = exc.filename if exc.filename is not None else (fallback or "featx")
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG):
        return str(write_error(where, exc))
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno == errno.EROFS:
        return f"{where}: cannot write: the file system is read-only ({reason}); choose another location"
    return f"{where}: {reason}"


#: Library parameters whose command-line option is not ``--`` + the name with dashes.
PARAM_FLAGS = {"model": "--model", "params": "--param", "n_iter": "--n-iter", "jobs": "--jobs",
               "grid_file": "--grid"}


def option_flags(ctx: click.Context | None = None) -> dict[str, str]:
    """``{library parameter: option}`` of the running command (``folds`` -> ``--folds``)."""
    ctx = ctx or click.get_current_context(silent=True)
    if ctx is None:
        return {}
    flags = {}
    for option in ctx.command.params:
        for opt in getattr(option, "opts", []):
            if opt.startswith("--"):
                flags[opt[2:].replace("-", "_")] = opt
    for param, flag in PARAM_FLAGS.items():
        if flag[2:].replace("-", "_") in flags:
            flags[param] = flag
    return flags


def cli_message(exc: FeatxError) -> str:
    """``exc``'s message with parameters written as the command's options.

    Library messages name parameters as in Python; here ``folds=0`` becomes
    ``--folds 0``, ``overwrite=True`` becomes ``--overwrite``, and the
    error's own ``param`` (``exc.param``) is written as its option wherever it
    stands alone. Names the command has no option for stay as they are.
    """
    text = str(exc)
    flags = option_flags()
    if not flags:
        return text
    names = "|".join(sorted((re.escape(n) for n in flags), key=len, reverse=True))

    def assignment(match):
        flag, value = flags[match.group(1)], match.group(3) if match.group(3) is not None else match.group(4)
        return flag if value == "True" else f"{flag} {value}"

    text = re.sub(rf"(?<![\w\-.'\"])({names})=('([^']*)'|([^\s,;)]+?))(?=[\s,;)]|\.(?:\s|$)|$)",
                  assignment, text)
    param = getattr(exc, "param", None)
    if param in flags:
        text = re.sub(rf"(?<![\w\-.'\"]){re.escape(param)}(?=[\s:,]|$)", flags[param], text)
    return text


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def info(message: str, *, err: bool = False) -> None:
    """Print a message that is not an error: nothing with ``-q``."""
    if not _quiet():
        click.echo(message, err=err)


def report_run(result, summary: str) -> None:
    """Print the outcome of a run over audio files; exit with status 1 if files were skipped.

    Parameters
    ----------
    result
        The run's result: its ``errors`` (``(file, reason)`` pairs) and ``errors_path``
        (the CSV that lists them) are read.
    summary : str
        What the run did (or that its output was up to date); not shown with ``-q``.

    Notes
    -----
    On stderr: one ``skipped FILE: REASON`` line per skipped file, the summary, then
    (if files were skipped) their count and where they are listed.
    """
    for file, reason in result.errors:
        click.echo(f"skipped {file}: {reason}", err=True)
    info(summary, err=True)
    if result.errors:
        click.echo(f"{len(result.errors)} file(s) skipped; see {result.errors_path}", err=True)
        sys.exit(1)


def progress_enabled(ctx: click.Context) -> bool | None:
    """False with -q; otherwise None, which lets tqdm show a bar only on a terminal."""
    return False if (ctx.obj or {}).get("quiet") else None


#: ``TrainConfig`` fields set by :func:`schedule_and_augment_options`.
SCHEDULE_AUGMENT_FIELDS = ("lr_schedule", "min_lr", "time_masks", "freq_masks", "mask_width", "time_shift",
                           "time_shift_mode", "mixup")


def schedule_and_augment_options(func):
    """Add the learning-rate schedule and image-augmentation options to a training command.

    The command receives them together as ``training_options``: a dict of the
    ``TrainConfig`` fields given on the command line (those left out keep the
    model's defaults).
    """
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        options = {name: kwargs.pop(name) for name in SCHEDULE_AUGMENT_FIELDS}
        kwargs["training_options"] = {k: v for k, v in options.items() if v is not None}
        return func(*args, **kwargs)

    kinds = {"lr_schedule": click.Choice(LR_SCHEDULES), "time_shift_mode": click.Choice(SHIFT_MODES),
             "min_lr": float, "time_shift": float, "mixup": float}
    for name in reversed(SCHEDULE_AUGMENT_FIELDS):
        wrapper = click.option("--" + name.replace("_", "-"), name, type=kinds.get(name, int), default=None,
                               help=OPTION_HELP[name])(wrapper)
    return wrapper
