"""Importing Keras without TensorFlow's start-up chatter, and the settings that make its fits fast.

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
import math
import os
import re
import subprocess
import sys

from ..errors import ConfigError

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
    "from featx.runtime.keras import filter_cpp_logs\n"
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
        [os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))]
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


#: The install command that brings what a Keras backend needs, where featx has an extra for it.
BACKEND_INSTALL = {"jax": "pip install 'featx[jax]'"}


def import_keras():
    """``import keras`` (and its backend), with the start-up log lines filtered out.

    Raises
    ------
    ConfigError
        ``KERAS_BACKEND`` names a backend whose package is not installed (jax: the
        message gives the install command of the ``featx[jax]`` extra).
    """
    if "keras" not in sys.modules:
        quiet_tensorflow()
        level = log_level()
        context = _filtered_fd2(level) if level > 0 else contextlib.nullcontext()
        with context:
            try:
                import keras  # Keras: only when a network is built, fitted or loaded
            except ModuleNotFoundError as exc:
                backend = os.environ.get("KERAS_BACKEND", "")
                if backend in BACKEND_INSTALL and (exc.name or "").split(".")[0] in (backend, backend + "lib"):
                    raise ConfigError(
                        f"KERAS_BACKEND={backend} needs the {backend} package, which cannot be imported here "
                        f"({exc}); install it with: {BACKEND_INSTALL[backend]}") from None
                raise

            # Under the jax and torch backends Keras still loads TensorFlow, when it is
            # installed, for its data pipelines at the first fit: load it here, filtered.
            # A TensorFlow that fails to load is Keras's business, not ours.
            if keras.backend.backend() != "tensorflow" and importlib.util.find_spec("tensorflow"):
                with contextlib.suppress(Exception):
                    import tensorflow  # noqa: F401
    import keras  # Keras: only when a network is built, fitted or loaded

    return keras


# ---------------------------------------------------------------------------
# Fast fits on small tables: per-step overhead, not arithmetic, is what costs

#: Most training steps one call of Keras's compiled train function runs (see
#: :func:`steps_per_execution`).
MAX_STEPS_PER_EXECUTION = 32


def steps_per_execution(steps_per_epoch: int, *, limit: int = MAX_STEPS_PER_EXECUTION) -> int:
    """Training steps per call of the compiled train function: a whole epoch, at most ``limit``.

    Pass it to ``model.compile(steps_per_execution=...)``. A table model's step
    takes well under a millisecond of arithmetic but several of Python and
    dispatch around it; running a whole epoch per call removes most of that and
    gives the very same weights (the steps, their order and their data do not
    change). Per-epoch callbacks (early stopping, learning-rate schedules, the
    epoch bar) are unaffected; per-batch hooks run once per call. The ``limit``
    keeps one call short where an epoch is long (image models): Python, and so
    Ctrl-C, gets control back between calls.

    Parameters
    ----------
    steps_per_epoch : int >= 0
        Batches per epoch (``ceil(rows / batch_size)``).
    limit : int >= 1

    Examples
    --------
    >>> steps_per_execution(25), steps_per_execution(300), steps_per_execution(0)
    (25, 32, 1)
    """
    return max(1, min(int(steps_per_epoch), int(limit)))


def nan_guard():
    """A Keras callback that stops training at the end of an epoch whose loss is not finite.

    Keras reports an epoch's ``loss`` as the running mean of its batch losses, so a
    single NaN or infinite batch loss makes it non-finite: checking it once per
    epoch catches what a per-batch check catches. A per-batch hook would make
    Keras wait for every step's result before starting the next one (no
    asynchronous dispatch) and cost a host round trip per batch.
    """
    keras = import_keras()

    class NanGuard(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                self.model.stop_training = True

    return NanGuard()


def set_tensorflow_threads(intra: int, inter: int) -> bool:
    """Size TensorFlow's thread pools: ``intra`` threads inside one op, ``inter`` ops at once.

    TensorFlow fixes them when its runtime starts (at the first op), so this must
    come before any tensor is made. Returns ``False`` (and changes nothing) where
    the backend is not TensorFlow or its runtime has already started.

    Parameters
    ----------
    intra, inter : int >= 1
    """
    keras = import_keras()
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(intra))
        tf.config.threading.set_inter_op_parallelism_threads(int(inter))
    except RuntimeError:  # the runtime has started: its pools stay as they are
        return False
    return True


#: Largest size of the JAX compilation cache in featx's cache folder (least recently used
#: entries go first).
COMPILE_CACHE_BYTES = 512 * 2**20


def enable_compile_cache(folder, *, max_bytes: int = COMPILE_CACHE_BYTES):
    """Keep what JAX compiles on disk, so that a later fit of the same network on the same
    shapes (the next fold, a sweep's next trial, the next run) skips XLA's compilation.

    Under the JAX backend only, and only where the ``filelock`` package is installed
    (``featx[jax]`` brings it): JAX needs it to bound the cache's size and to let
    several processes share the cache. Every compiled function is kept, however
    quick to compile: a new process then also skips compiling the weight
    initialisers and the small functions of its first fit. A cache folder the
    user chose (``JAX_COMPILATION_CACHE_DIR``) is kept. Call it before JAX
    compiles anything: JAX decides whether to use the cache at its first compile.
    ``JAX_ENABLE_COMPILATION_CACHE=false`` turns it off.

    Parameters
    ----------
    folder : path
        Where to keep it (featx passes ``xla/`` in its cache folder:
        :func:`featx.models.keras_fit.keras_backend`).
    max_bytes : int
        JAX removes the least recently used entries beyond this size.

    Returns
    -------
    str or None
        The cache folder in use; ``None`` where no cache is used.
    """
    keras = import_keras()
    if keras.backend.backend() != "jax" or importlib.util.find_spec("filelock") is None:
        return None
    import jax

    if not jax.config.values.get("jax_enable_compilation_cache", True):  # JAX_ENABLE_COMPILATION_CACHE=false
        return None
    current = jax.config.values.get("jax_compilation_cache_dir")
    if current:
        return current
    folder = os.path.abspath(os.fspath(folder))
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_compilation_cache_max_size", int(max_bytes))
    return folder
