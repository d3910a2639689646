"""featx's cache folder: data featx can always make again, kept to save time.

``$FEATX_CACHE_DIR``, else ``$XDG_CACHE_HOME/featx``, else ``~/.cache/featx``
(see :func:`cache_root` for relative paths and a missing home folder).
It holds the compiled feature kernels (``kernels/``,
:mod:`featx.features.native`) and the musicnn weights as ``.npz``
(``musicnn/``, :mod:`featx.models.musicnn`). Every file carries a SHA-256 of its
content (and of what it was made from), checked before use; a damaged file is made
again. Deleting the folder loses nothing.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_root"]


def cache_root() -> Path:
    """featx's cache folder (see the module docstring), as an absolute path; it may not exist yet.

    A relative ``FEATX_CACHE_DIR`` is taken from the current folder; a relative
    ``XDG_CACHE_HOME`` is ignored, as the XDG specification says; without a home
    folder, a per-user folder in the system's temporary folder is used.
    """
    root = os.environ.get("FEATX_CACHE_DIR")
    if root:
        return Path(os.path.abspath(root))
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "featx"
    home = os.path.expanduser("~")
    if os.path.isabs(home):
        return Path(home) / ".cache" / "featx"
    import tempfile

    user = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"featx-cache-{user}"
