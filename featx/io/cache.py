"""featx's cache folder: data featx can always make again, kept to save time.

``$FEATX_CACHE_DIR``, else ``$XDG_CACHE_HOME/featx``, else ``~/.cache/featx``.
It holds the compiled feature kernels (``kernels/``,
:mod:`featx.features.native`) and the musicnn weights as ``.npz``
(``musicnn/``, :mod:`featx.models.musicnn`). Deleting it loses nothing.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_root"]


def cache_root() -> Path:
    """featx's cache folder (see the module docstring); it may not exist yet."""
    root = os.environ.get("FEATX_CACHE_DIR")
    if not root:
        root = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
                            "featx")
    return Path(root)
