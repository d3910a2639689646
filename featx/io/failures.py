"""The one-line error for a file featx could not write (a full disk named as such)."""
from __future__ import annotations

import errno

from ..errors import OutputError

__all__ = ["write_error"]


def write_error(path, exc: OSError) -> OutputError:
    """The one-line :class:`OutputError` for an ``OSError`` raised while writing ``path``."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return OutputError(f"{path}: cannot write: no space left on the device ({reason}); "
                           "free some space or choose another output location")
    if exc.errno == errno.EFBIG:
        return OutputError(f"{path}: cannot write: file too large for this file system or "
                           f"file-size limit ({reason})")
    return OutputError(f"{path}: cannot write ({reason})")
