"""Progress display for every long loop (files, folds, epochs, trials).

On a terminal this is a tqdm bar. When standard error is not a terminal (a log
file, a batch job, a pipe) a bar would be noise, so a single line such as
``extract: 120/1000 files, 12.3 s`` is written every :func:`line_interval`
seconds instead. ``progress=False`` (the command line's ``-q``) shows nothing.
"""
from __future__ import annotations

import os
import sys
import time

from ..errors import ConfigError

#: Environment variable: seconds between progress lines when stderr is not a terminal.
INTERVAL_ENV = "FEATX_PROGRESS_INTERVAL"
#: Seconds between progress lines when :data:`INTERVAL_ENV` is not set.
DEFAULT_INTERVAL = 10.0


def line_interval() -> float:
    """Seconds between progress lines (``$FEATX_PROGRESS_INTERVAL``, default 10).

    Raises
    ------
    ConfigError
        The variable is set to something other than a non-negative number.
    """
    raw = os.environ.get(INTERVAL_ENV, "").strip()
    if not raw:
        return DEFAULT_INTERVAL
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value >= 0 or value == float("inf"):
        raise ConfigError(
            f"{INTERVAL_ENV} must be a number of seconds >= 0. Received: {INTERVAL_ENV}={raw!r}"
        )
    return value


def _stderr_is_terminal() -> bool:
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):
        return False


class LineProgress:
    """A progress counter that writes one line to stderr every ``interval`` seconds.

    It offers the part of tqdm's interface featx uses: iteration, ``update``,
    ``set_postfix``, ``set_postfix_str``, ``close`` and use as a context manager.
    """

    def __init__(self, iterable=None, *, total=None, desc: str = "", unit: str = "it",
                 initial: int = 0, interval: float | None = None, stream=None):
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total = total
        self.desc = desc
        self.unit = unit
        self.n = int(initial)
        self.postfix = ""
        self.interval = line_interval() if interval is None else float(interval)
        self.stream = stream
        self.start = self.last = time.perf_counter()
        self.closed = False
        self.shown = None  # the step count of the last line written, if any

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()  # as tqdm does: a loop run to its end says its final count

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def line(self) -> str:
        """The progress line as it would be written now."""
        of = f"/{self.total}" if self.total is not None else ""
        unit = self.unit if self.unit.endswith("s") else self.unit + "s"
        text = f"{self.desc}: {self.n}{of} {unit}, {time.perf_counter() - self.start:.1f} s"
        return f"{text}, {self.postfix}" if self.postfix else text

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if not self.closed and now - self.last >= self.interval:
            self.last = now
            self._write()

    def _write(self) -> None:
        stream = self.stream or sys.stderr
        stream.write(self.line() + "\n")
        stream.flush()
        self.shown = self.n

    def set_postfix(self, ordered_dict=None, refresh: bool = True, **kwargs) -> None:
        items = dict(ordered_dict or {}, **kwargs)
        self.postfix = ", ".join(f"{k} {v}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = str(s)

    def close(self) -> None:
        """Stop; once any line was written, the last one written states the final count.

        Without it, ``fold1: 31/60 epochs`` would be the last word on a fold that ran all
        60 epochs, and read as an early stop.
        """
        if not self.closed and self.shown is not None and self.shown != self.n:
            self._write()
        self.closed = True


def progress_bar(iterable=None, *, total=None, desc: str = "", unit: str = "it", progress=None,
                 initial: int = 0, leave: bool = True):
    """A progress display for a loop.

    Parameters
    ----------
    iterable : iterable, optional
        Wrapped and iterated over, as with tqdm.
    total : int, optional
    desc, unit : str
        Shown as ``desc: n/total units``.
    progress : bool or None
        ``False``: nothing is shown. ``True``: a bar. ``None``: a bar on a terminal,
        otherwise a line every :func:`line_interval` seconds.
    initial : int
        Steps already done (a resumed run).
    leave : bool
        Whether a terminal bar stays on screen when closed.
    """
    if progress is False:  # a counter that never writes (tqdm's import is not free)
        return LineProgress(iterable, total=total, desc=desc, unit=unit, initial=initial,
                            interval=float("inf"))
    if progress is None and not _stderr_is_terminal():
        return LineProgress(iterable, total=total, desc=desc, unit=unit, initial=initial)
    from tqdm.auto import tqdm  # tqdm: only for a terminal's progress bar

    return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, leave=leave,
                dynamic_ncols=True)
