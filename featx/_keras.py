"""Importing Keras without TensorFlow's start-up chatter.

``TF_CPP_MIN_LOG_LEVEL`` quiets TensorFlow's C++ logging once it is set up, but
some releases print a few lines while loading, before the setting is read
("All log messages before absl::InitializeLog() ...", oneDNN and CUDA notes).
They are written straight to file descriptor 2, so :func:`import_keras` points
that descriptor at a temporary file during the import and passes on every line
that is not such a log line: Python warnings and errors still reach the user.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import sys
import tempfile

#: A C++ log line (``I0000 00:00:1795253668.223746    1171 port.cc:153] ...``) or absl's banner.
#: Whether the user chose TensorFlow's log level (read before featx sets its own default).
_USER_LEVEL = "TF_CPP_MIN_LOG_LEVEL" in os.environ

_CPP_LOG = re.compile(r"^([IWE]\d{4} \S+\s+\d+ \S+:\d+\] |WARNING: All log messages before absl::)")


def quiet_tensorflow() -> None:
    """Silence TensorFlow's C++ log lines before it is imported (the user's setting wins).

    Its failures still reach featx as Python exceptions; the log lines are only the
    start-up and graph chatter that would bury featx's own messages.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def filter_cpp_logs(text: str) -> str:
    """``text`` without C++ log lines (a log line's wrapped continuation goes with it)."""
    kept, dropping = [], False
    for line in text.splitlines(keepends=True):
        if _CPP_LOG.match(line):
            dropping = True
            continue
        if dropping and line[:1].isspace():
            continue
        dropping = False
        kept.append(line)
    return "".join(kept)


@contextlib.contextmanager
def _stderr_without_cpp_logs():
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real descriptor (e.g. captured): nothing to do
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), fd)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            sink.seek(0)
            rest = filter_cpp_logs(sink.read().decode("utf-8", errors="replace"))
            if rest:
                sys.stderr.write(rest)
                sys.stderr.flush()


def import_keras():
    """``import keras`` (and its backend), with the start-up log lines filtered out.

    When the user set ``TF_CPP_MIN_LOG_LEVEL`` themselves, nothing is filtered.
    """
    if "keras" not in sys.modules:
        quiet_tensorflow()
        context = contextlib.nullcontext() if _USER_LEVEL else _stderr_without_cpp_logs()
        with context:
            import keras

            # Under the jax and torch backends Keras still loads TensorFlow, when it is
            # installed, for its data pipelines at the first fit: load it here, filtered.
            if keras.backend.backend() != "tensorflow" and importlib.util.find_spec("tensorflow"):
                import tensorflow  # noqa: F401
    import keras

    return keras
