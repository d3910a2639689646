"""A file's genre probabilities over time: one row per window the model classified.

The windows are those :meth:`featx.bundle.Bundle.audio_windows` gives (the model's
segments, or the windows of a model trained on whole clips), so the timeline's
mean per file is the row ``featx predict`` prints for it. ``featx predict
--timeline`` writes these rows as CSV, ``featx plot timeline`` draws them and
``featx serve`` returns them as JSON.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from ..models.base import AudioProbabilities

__all__ = ["TIMELINE_COLUMNS", "timeline_frame", "timeline_classes", "read_timeline"]

#: The columns before the per-class probabilities, in order.
TIMELINE_COLUMNS = ("file", "window", "start", "end")


def timeline_frame(windows: AudioProbabilities, classes) -> pd.DataFrame:
    """One row per window of one file: ``file``, ``window``, ``start``, ``end``, then one
    probability column per class.

    Parameters
    ----------
    windows : AudioProbabilities
        What :meth:`featx.bundle.Bundle.audio_windows` returns for the file.
    classes : list of str
        The model's classes, in the order of ``windows.proba``'s columns.

    Returns
    -------
    timeline : pandas.DataFrame
        ``window`` counts from 0; ``start`` and ``end`` are in seconds (a window ends
        ``window_seconds`` after its start, or where the audio ends).
    """
    classes = [str(c) for c in classes]
    clash = sorted(set(classes) & set(TIMELINE_COLUMNS))
    if clash:
        raise DataError(f"the model's class {clash[0]!r} has the name of a timeline column; expected "
                        f"classes other than {', '.join(TIMELINE_COLUMNS)}")
    proba = np.asarray(windows.proba, dtype=np.float64)
    starts = np.asarray(windows.starts, dtype=np.float64)
    frame = pd.DataFrame({
        "file": [str(windows.name)] * len(proba),
        "window": np.arange(len(proba), dtype=np.int64),
        "start": starts,
        "end": np.minimum(starts + float(windows.window_seconds), float(windows.duration)),
    })
    return pd.concat([frame, pd.DataFrame(proba, columns=classes)], axis=1)


def timeline_classes(frame: pd.DataFrame) -> list[str]:
    """The class columns of a timeline frame: every column after :data:`TIMELINE_COLUMNS`."""
    return [str(c) for c in frame.columns[len(TIMELINE_COLUMNS):]]


def read_timeline(path) -> pd.DataFrame:
    """Read a timeline CSV (``featx predict --timeline``), every value checked.

    Raises
    ------
    DataError
        The file cannot be read, does not start with the columns ``file, window, start,
        end``, has no class column, or holds a value that is not what those columns hold
        (one line naming the file, the column and the row).
    """
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype={"file": str}, keep_default_na=False, na_values=[""])
    except FileNotFoundError:
        raise DataError(f"{path}: no such file; expected a timeline CSV (one row per window)") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot be read as a timeline CSV ({str(exc).splitlines()[0]})") from None
    head = tuple(str(c) for c in frame.columns[:len(TIMELINE_COLUMNS)])
    if head != TIMELINE_COLUMNS:
        raise DataError(f"{path}: columns start with {', '.join(head) or '(none)'}; expected "
                        f"{', '.join(TIMELINE_COLUMNS)}, then one probability column per genre "
                        "(a timeline CSV)")
    classes = timeline_classes(frame)
    if not classes:
        raise DataError(f"{path}: no probability columns after {', '.join(TIMELINE_COLUMNS)}; expected one per genre")
    if frame.empty:
        raise DataError(f"{path}: no rows; expected one row per window")
    if frame["file"].isna().any():
        raise DataError(f"{path}: column 'file' is empty in row {_first_row(frame['file'].isna())}; "
                        "expected a file name")
    for column, low, high in (("window", 0, None), ("start", 0, None), ("end", 0, None),
                              *((c, 0, 1) for c in classes)):
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = ~np.isfinite(values.to_numpy(dtype=np.float64, na_value=np.nan)) | (values < low)
        if high is not None:
            bad |= values > high
        if column == "window":
            bad |= values != values.round()
        if bad.any():
            row = _first_row(bad)
            expected = ("a probability in [0, 1]" if high is not None else
                        "a whole number >= 0" if column == "window" else "a number of seconds >= 0")
            raise DataError(f"{path}: column {column!r}, row {row}: {_shown(frame[column].iloc[row - 2])}; "
                            f"expected {expected}")
        frame[column] = values.astype(np.int64 if column == "window" else np.float64)
    early = frame["end"] < frame["start"]
    if early.any():
        raise DataError(f"{path}: row {_first_row(early)}: end {_shown(frame['end'][early].iloc[0])} is before "
                        f"start {_shown(frame['start'][early].iloc[0])}; expected end >= start")
    return frame


def _shown(value) -> str:
    """A value read from the CSV as it reads there (a number as a number, text quoted)."""
    return repr(value) if isinstance(value, str) else str(value.item() if hasattr(value, "item") else value)


def _first_row(mask) -> int:
    """The CSV line (header = line 1) of the first true entry of ``mask``."""
    return int(np.flatnonzero(np.asarray(mask))[0]) + 2
