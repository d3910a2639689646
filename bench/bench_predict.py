"""The floor of a one-song ``featx predict``: where a whole process's time goes.

For a Keras bundle (under TensorFlow and under JAX) and a scikit-learn bundle, and
beside them a one-clip ``featx extract`` of the same clip:

* the whole process, as a user runs it (``featx predict BUNDLE one.wav``), wall
  time of a fresh process, and ``python -c pass`` for the interpreter alone;
* the same command run inside one instrumented process, split into featx's
  start-up (``import featx.cli``), the Keras import (``featx.runtime.keras.import_keras``:
  TensorFlow or JAX with it), loading the bundle (``featx.bundle.load_bundle``,
  less the Keras import inside it), decoding the audio
  (``featx.models.tables.load``), feature extraction
  (``featx.models.tables.samples_features``), the model (the family's
  ``predict_proba``: scaling and the forward pass) and the rest (the command's own
  imports, pandas, rendering). Each part is timed exclusively: a
  part called inside another is taken out of it.

Every configuration runs once per repeat, in a rotated order. Bundles are made
first, in a temporary folder, with ``featx train`` on the 30-s table (2 folds to
save time; the saved model is the default refit on every row), unless given.

    python bench/bench_predict.py                        # 5 repeats
    python bench/bench_predict.py --repeats 3 --clip ../shared/data/gtzan/audio/jazz/jazz.00000.wav
    python -X importtime -m featx predict BUNDLE one.wav 2> imports.txt   # the import tree
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Exclusively timed parts of the instrumented run, in report order.
PARTS = ("featx start-up", "Keras import", "bundle load", "audio decode", "feature extraction",
         "model (predict_proba)", "rest")

_SPLIT = r'''
import sys, time, json, io, contextlib
start = time.perf_counter()
T = {}
stack = []

def timed(owner, name, key):
    inner = getattr(owner, name)

    def wrapper(*args, **kwargs):
        stack.append(0.0)
        t = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            spent = time.perf_counter() - t
            nested = stack.pop()
            T[key] = T.get(key, 0.0) + spent - nested
            if stack:
                stack[-1] += spent
    setattr(owner, name, wrapper)

t = time.perf_counter()
import featx.runtime.keras
timed(featx.runtime.keras, "import_keras", "Keras import")
import featx.cli
from featx.cli.main import main
T["featx start-up"] = time.perf_counter() - t
import featx.bundle, featx.models.tables, featx.models.keras_rows, featx.models.sklearn_rows
timed(featx.bundle, "load_bundle", "bundle load")
timed(featx.models.tables, "load", "audio decode")
timed(featx.models.tables, "samples_features", "feature extraction")
timed(featx.models.keras_rows.KerasRows, "predict_proba", "model (predict_proba)")
timed(featx.models.sklearn_rows.SklearnRows, "predict_proba", "model (predict_proba)")
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        main(sys.argv[1:], prog_name="featx")
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
total = time.perf_counter() - start
T["rest"] = total - sum(T.values())
print("RESULT " + json.dumps({"parts": T, "in_process": total, "stdout": out.getvalue()[-300:]}), file=sys.__stdout__)
'''


def shared_data() -> Path:
    """``$FEATX_SHARED_DATA``, else ``shared/data`` beside the checkout (or beside its parent folder)."""
    if os.environ.get("FEATX_SHARED_DATA"):
        return Path(os.environ["FEATX_SHARED_DATA"])
    near = [folder / "shared" / "data" for folder in (ROOT.parent, ROOT.parent.parent)]
    return next((p for p in near if p.exists()), near[0])


def featx_command() -> list[str]:
    return [sys.executable, "-m", "featx"]


def wall(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds


def split(args: list[str], env: dict) -> dict:
    done = subprocess.run([sys.executable, "-c", _SPLIT, *args], capture_output=True, text=True, env=env, cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"instrumented {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return json.loads(lines[-1][len("RESULT "):])


#: Imports timed alone, each in a fresh process: (label, statement, KERAS_BACKEND).
IMPORTS = (
    ("numpy", "import numpy", None),
    ("pandas", "import pandas", None),
    ("featx.cli (the command line's own start)", "import featx.cli", None),
    ("sklearn.svm (a scikit-learn bundle's model)", "import sklearn.svm", None),
    ("tensorflow", "import tensorflow", None),
    ("keras, TensorFlow backend", "import keras", "tensorflow"),
    ("jax", "import jax", None),
    ("keras, JAX backend (TensorFlow not loaded)", "import keras", "jax"),
    ("featx.runtime.keras.import_keras(), JAX backend (loads TensorFlow too)",
     "from featx.runtime.keras import import_keras; import_keras()", "jax"),
)


def import_seconds(statement: str, env: dict) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print('RESULT', time.perf_counter() - t)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{statement} failed:\n{done.stderr[-2000:]}")
    return float(lines[-1].split()[1])


def spread(values) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def train_bundle(model: str, csv: Path, out: Path, env: dict) -> Path:
    cmd = featx_command() + ["-q", "train", str(csv), "--model", model, "-o", str(out), "--folds", "2"]
    subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=ROOT)
    return out


def main(argv=None) -> None:
    data = shared_data() / "gtzan"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=data / "audio" / "blues" / "blues.00000.wav")
    parser.add_argument("--csv", type=Path, default=data / "features_30_sec.csv")
    parser.add_argument("--keras-bundle", type=Path, default=None, help="default: train an mlp")
    parser.add_argument("--sklearn-bundle", type=Path, default=None, help="default: train an svm")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    base = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"))
    tf_env, jax_env = dict(base, KERAS_BACKEND="tensorflow"), dict(base, KERAS_BACKEND="jax")
    with tempfile.TemporaryDirectory(prefix="featx-bench-predict-") as tmp:
        tmp = Path(tmp)
        keras_bundle = args.keras_bundle or train_bundle("mlp", args.csv, tmp / "mlp", tf_env)
        sklearn_bundle = args.sklearn_bundle or train_bundle("svm", args.csv, tmp / "svm", tf_env)
        clip = str(args.clip)
        predict_keras = ["predict", str(keras_bundle), clip]
        predict_sklearn = ["predict", str(sklearn_bundle), clip]
        extract = ["extract", clip, "-o", str(tmp / "one.csv"), "--whole-file", "--overwrite", "-j", "1"]
        # the compiled feature kernels and JAX's compiled code are cached by a first run of each
        for env, cmd in ((tf_env, predict_keras), (jax_env, predict_keras), (tf_env, predict_sklearn),
                         (tf_env, extract)):
            wall(featx_command() + cmd, env)
        runs = {
            "python -c pass": ([sys.executable, "-c", "pass"], base),
            "featx --help": (featx_command() + ["--help"], base),
            "featx extract (one clip)": (featx_command() + extract, tf_env),
            "featx predict, mlp, tensorflow": (featx_command() + predict_keras, tf_env),
            "featx predict, mlp, jax": (featx_command() + predict_keras, jax_env),
            "featx predict, svm": (featx_command() + predict_sklearn, tf_env),
        }
        splits = {"mlp, tensorflow": (predict_keras, tf_env), "mlp, jax": (predict_keras, jax_env),
                  "svm": (predict_sklearn, tf_env)}
        walls = {name: [] for name in runs}
        parts = {name: [] for name in splits}
        imports = {label: [] for label, _, _ in IMPORTS}
        for r in range(args.repeats):
            order = list(IMPORTS)
            for label, statement, backend in order[r % len(order):] + order[:r % len(order)]:
                imports[label].append(import_seconds(statement, dict(base, KERAS_BACKEND=backend or "tensorflow")))
            names = list(runs)
            for name in names[r % len(names):] + names[:r % len(names)]:
                walls[name].append(wall(*runs[name]))
            names = list(splits)
            for name in names[r % len(names):] + names[:r % len(names)]:
                parts[name].append(split(*splits[name]))
            print(f"  repeat {r + 1} done", file=sys.stderr, flush=True)

    print(f"clip: {clip}; {os.cpu_count()} CPU cores; {args.repeats} repeats, alternating; fresh process each\n")
    print("| whole process | seconds, median (range) | vs one-clip extract, median (range) |")
    print("|---|---|---|")
    ext = walls["featx extract (one clip)"]
    for name, values in walls.items():
        ratios = [v / e for v, e in zip(values, ext)]
        print(f"| `{name}` | {spread(values)} | {spread(ratios)}x |")
    print("\n| import, alone in a fresh process | seconds, median (range) |")
    print("|---|---|")
    for label, values in imports.items():
        print(f"| `{label}` | {spread(values)} |")
    print("\n| part (exclusive seconds, median (range)) | " + " | ".join(splits) + " |")
    print("|---|" + "---|" * len(splits))
    for part in PARTS + ("in-process total",):
        cells = []
        for name in splits:
            values = [p["in_process"] if part == "in-process total" else p["parts"].get(part, 0.0)
                      for p in parts[name]]
            cells.append(spread(values))
        print(f"| {part} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
