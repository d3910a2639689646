"""Writing JSON documents featx makes (bundles, reports, records), atomically."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .atomic import atomic_write

__all__ = ["write_json", "to_json"]


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def to_json(data) -> str:
    """``data`` as indented JSON text (numpy values, arrays and paths as plain JSON), newline-ended."""
    return json.dumps(data, indent=2, default=_json_default) + "\n"


def write_json(path, data) -> Path:
    """Write ``data`` as indented JSON to ``path``, atomically (see :func:`to_json`)."""
    return atomic_write(path, to_json(data))
