"""Importing Keras without TensorFlow's start-up chatter.

``TF_CPP_MIN_LOG_LEVEL`` quiets TensorFlow's C++ logging once it is set up, but
some releases print a few lines while loading, before the setting is read
("All log messages before absl::InitializeLog() ...", oneDNN and CUDA notes),
whatever its value. They are written straight to file descriptor 2, so
:func:`import_keras` sends that descriptor through a small filter process
during the import: it drops the log lines the level asks to hide and passes
everything else on at once. A separate process, so that a crash inside the
import (a fatal CPU or CUDA error) still shows its last words.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import subprocess
import sys

#: A C++ log line (``I0000 00:00:1795253668.223746    1171 port.cc:153] ...``): severity letter first.
_CPP_LOG = re.compile(r"^([IWEF])\d{4} \S+\s+\d+ \S+:\d+\] ")
#: absl's banner before its log lines.
_BANNER = "WARNING: All log messages before absl::InitializeLog()"
#: The lowest TF_CPP_MIN_LOG_LEVEL that hides each severity (fatal lines always pass).
_HIDDEN_FROM = {"I": 1, "W": 2, "E": 3}


def quiet_tensorflow() -> None:
    """Silence TensorFlow's C++ log lines before it is imported (the user's setting wins).

    Its failures still reach featx as Python exceptions; the log lines are only the
    start-up and graph chatter that would bury featx's own messages.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def log_level() -> int:
    """``TF_CPP_MIN_LOG_LEVEL`` as a number (0 when unset or not a number)."""
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def filter_cpp_logs(text: str, level: int = 3) -> str:
    """``text`` without the C++ log lines that ``level`` hides.

    A hidden line's indented continuation lines go with it.
    """
    kept, dropping = [], False
    for line in text.splitlines(keepends=True):
        match = _CPP_LOG.match(line)
        if match or line.startswith(_BANNER):
            severity = match.group(1) if match else "I"
            dropping = level >= _HIDDEN_FROM.get(severity, 99)
            if not dropping:
                kept.append(line)
            continue
        if dropping and line[:1] in (" ", "\t"):
            continue
        dropping = False
        kept.append(line)
    return "".join(kept)


# The filter process: reads lines on stdin, writes the kept ones to its stderr at once.
_FILTER_MAIN = (
    "import sys\n"
    "from featx._keras import filter_cpp_logs\n"
    "level = int(sys.argv[1])\n"
    "out = sys.stderr.buffer\n"
    "for raw in sys.stdin.buffer:\n"
    "    kept = filter_cpp_logs(raw.decode('utf-8', 'replace'), level)\n"
    "    if kept:\n"
    "        out.write(kept.encode('utf-8'))\n"
    "        out.flush()\n"
)


@contextlib.contextmanager
def _filtered_fd2(level: int):
    try:
        os.fstat(2)
    except OSError:  # no descriptor 2: nothing to filter
        yield
        return
    try:
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):
        pass
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
        + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    try:
        proc = subprocess.Popen([sys.executable, "-c", _FILTER_MAIN, str(level)],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
    except OSError:  # cannot start a process: leave stderr as it is
        yield
        return
    saved = os.dup(2)
    os.dup2(proc.stdin.fileno(), 2)
    try:
        yield
    finally:
        try:
            sys.stderr.flush()
        except (AttributeError, OSError, ValueError):
            pass
        os.dup2(saved, 2)
        os.close(saved)
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - the filter never blocks
            proc.kill()


def import_keras():
    """``import keras`` (and its backend), with the start-up log lines filtered out."""
    if "keras" not in sys.modules:
        quiet_tensorflow()
        level = log_level()
        context = _filtered_fd2(level) if level > 0 else contextlib.nullcontext()
        with context:
            import keras  # Keras: only when a network is built, fitted or loaded

            # Under the jax and torch backends Keras still loads TensorFlow, when it is
            # installed, for its data pipelines at the first fit: load it here, filtered.
            # A TensorFlow that fails to load is Keras's business, not ours.
            if keras.backend.backend() != "tensorflow" and importlib.util.find_spec("tensorflow"):
                with contextlib.suppress(Exception):
                    import tensorflow  # noqa: F401
    import keras  # Keras: only when a network is built, fitted or loaded

    return keras
