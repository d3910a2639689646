"""Checks of the values a saved model's files hold, before any of them is used.

A bundle is read from disk, where anything can have changed it. Every value a
model family or the bundle reads back is checked with these helpers: its type,
its range and its agreement with the other files, so a tampered or damaged
bundle ends in one :class:`~featx.errors.BundleError` that names the file and
the field::

    corrupt bundle: models/svm/preprocessing.json: scaler.scale[3] must be a finite
    number > 0. Received: inf

instead of predictions that are silently wrong (a NaN scaler mean puts every row
in one genre), a hang (``params.C = 1e308`` makes the SVM solver run for ever)
or a traceback.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..errors import BundleError
from ..io.archive import check_archive

__all__ = ["MAX_ITEMS", "corrupt", "first_line", "is_int", "is_number", "check_int", "check_names",
           "check_numbers", "tensor_shape", "read_json"]

#: Most classes, feature columns and tracks a bundle may list (far above any real corpus).
MAX_ITEMS = 1_000_000


def corrupt(path, field: str, expected: str, value=None, *, received: bool = True) -> BundleError:
    """The one-line error for ``field`` of the bundle file ``path``."""
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    tail = f". Received: {shown}" if received else ""
    return BundleError(f"corrupt bundle: {path}: {field} {expected}{tail}")


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]


def read_npz(path, what: str, keys=None) -> dict:
    """The arrays ``keys`` (default: all) of a bundle's ``.npz`` file, bounded before it is
    inflated (:func:`featx.io.archive.check_archive`); any failure to read them is one
    :class:`~featx.errors.BundleError` line naming ``path`` and ``what`` it holds."""
    check_archive(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in (data.files if keys is None else keys)}
    except Exception as exc:
        raise BundleError(f"{path}: cannot read {what} ({first_line(exc)})") from None


def is_int(value) -> bool:
    """An ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """An ``int`` or ``float`` that is not a ``bool``."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_int(path, field, value, *, low: int = 0, high: int = 2**53) -> int:
    """An integer in ``[low, high]``."""
    if not is_int(value) or not low <= value <= high:
        raise corrupt(path, field, f"must be an integer in [{low}, {high}]", value)
    return value


def check_names(path, field, value, *, unique: bool = True, empty: bool = False) -> list[str]:
    """A JSON list of non-empty strings (unique unless told)."""
    if not isinstance(value, list) or (not value and not empty) or len(value) > MAX_ITEMS:
        raise corrupt(path, field, f"must be a {'' if empty else 'non-empty '}list of names", value)
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise corrupt(path, f"{field}[{i}]", "must be a non-empty string", item)
    if unique and len(set(value)) != len(value):
        twice = next(v for v in value if value.count(v) > 1)
        raise corrupt(path, field, f"must not list a name twice; {twice!r} appears more than once",
                      received=False)
    return value


def check_numbers(path, field, value, n: int, *, positive: bool = False,
                  bound: tuple[float, float] | None = None) -> np.ndarray:
    """A JSON list of ``n`` finite numbers (each > 0 with ``positive``; in ``bound`` when given)."""
    if not isinstance(value, list) or len(value) != n:
        got = len(value) if isinstance(value, list) else type(value).__name__
        raise corrupt(path, field, f"must be a list of {n} numbers, one per feature column. "
                                   f"Received: {got}", received=False)
    for i, item in enumerate(value):
        ok = is_number(item) and math.isfinite(item) and (item > 0 if positive else True)
        if not ok:
            raise corrupt(path, f"{field}[{i}]", f"must be a finite number{' > 0' if positive else ''}",
                          item)
        if bound is not None and not bound[0] <= item <= bound[1]:
            raise corrupt(path, f"{field}[{i}]", f"must lie in [{bound[0]:g}, {bound[1]:g}]", item)
    return np.asarray(value, dtype=np.float64)


def tensor_shape(tensor) -> tuple:
    """A Keras tensor's shape as a tuple of ints (``None`` for the batch dimension)."""
    return tuple(None if d is None else int(d) for d in tensor.shape)


def read_json(path: Path) -> dict:
    """A bundle's JSON object (one BundleError line when missing or corrupt)."""
    if not path.is_file():
        raise BundleError(f"{path}: missing; expected a featx bundle folder (written by 'featx train')")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BundleError(f"{path}: corrupt JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise BundleError(f"{path}: corrupt; expected a JSON object")
    return data
