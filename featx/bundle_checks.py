"""Validation of everything a bundle folder holds, before any of it is used.

A bundle is read from disk, where anything can have changed it. Every value that
:func:`featx.bundle.load_bundle` reads is checked here: its type, its range and its
agreement with the other files, so a tampered or damaged bundle ends in one
:class:`~featx.errors.BundleError` that names the file and the field::

    corrupt bundle: models/svm/preprocessing.json: scaler.scale[3] must be a finite
    number > 0. Received: inf

instead of predictions that are silently wrong (a NaN scaler mean puts every row
in one genre), a hang (``params.C = 1e308`` makes the SVM solver run for ever)
or a traceback.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .errors import BundleError, FeatxError

#: Most classes, feature columns and tracks a bundle may list (far above any real corpus).
MAX_ITEMS = 1_000_000


def corrupt(path, field: str, expected: str, value=None, *, received: bool = True) -> BundleError:
    """The one-line error for ``field`` of the bundle file ``path``."""
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    tail = f". Received: {shown}" if received else ""
    return BundleError(f"corrupt bundle: {path}: {field} {expected}{tail}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int(path, field, value, *, low: int = 0, high: int = 2**53) -> int:
    if not _is_int(value) or not low <= value <= high:
        raise corrupt(path, field, f"must be an integer in [{low}, {high}]", value)
    return value


def _names(path, field, value, *, unique: bool = True, empty: bool = False) -> list[str]:
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


#: What a fitted scaler can hold: a scale of 1e-300 or a mean of 1e308 overflows float64
#: on the first row (no feature table featx reads needs anything near these bounds).
MAX_SCALE, MIN_SCALE, MAX_MEAN = 1e12, 1e-12, 1e12


def _numbers(path, field, value, n: int, *, positive: bool = False,
             bound: tuple[float, float] | None = None) -> np.ndarray:
    """A JSON list of ``n`` finite numbers (each > 0 with ``positive``; in ``bound`` when given)."""
    if not isinstance(value, list) or len(value) != n:
        got = len(value) if isinstance(value, list) else type(value).__name__
        raise corrupt(path, field, f"must be a list of {n} numbers, one per feature column. "
                                   f"Received: {got}", received=False)
    for i, item in enumerate(value):
        ok = _is_number(item) and math.isfinite(item) and (item > 0 if positive else True)
        if not ok:
            raise corrupt(path, f"{field}[{i}]", f"must be a finite number{' > 0' if positive else ''}",
                          item)
        if bound is not None and not bound[0] <= item <= bound[1]:
            raise corrupt(path, f"{field}[{i}]", f"must lie in [{bound[0]:g}, {bound[1]:g}]", item)
    return np.asarray(value, dtype=np.float64)


# ---------------------------------------------------------------------------
# preprocessing.json


def check_preprocessing(path: Path, data: dict) -> None:
    """Check the plain data of ``preprocessing.json`` (columns, classes, scaler).

    Raises
    ------
    BundleError
        Any field missing, of the wrong type or out of range.
    """
    columns = _names(path, "feature_columns", data.get("feature_columns"))
    _names(path, "classes", data.get("classes"))
    logs = _names(path, "log_columns", data.get("log_columns", []), empty=True)
    unknown = [c for c in logs if c not in columns]
    if unknown:
        raise corrupt(path, "log_columns", "must name feature columns; unknown column", unknown[0])
    epsilon = data.get("log_epsilon", 1e-12)
    if not _is_number(epsilon) or not 0 < epsilon < 1:
        raise corrupt(path, "log_epsilon", "must be a number in (0, 1)", epsilon)
    scaler = data.get("scaler")
    if not isinstance(scaler, dict):
        raise corrupt(path, "scaler", "must be an object with 'mean' and 'scale'", scaler)
    _numbers(path, "scaler.mean", scaler.get("mean"), len(columns), bound=(-MAX_MEAN, MAX_MEAN))
    _numbers(path, "scaler.scale", scaler.get("scale"), len(columns), positive=True,
             bound=(MIN_SCALE, MAX_SCALE))
    labels = data.get("labels")
    if labels is None:
        raise corrupt(path, "labels", "must be present (the label encoding)", None, received=False)
    if labels is not None:
        if not isinstance(labels, dict):
            raise corrupt(path, "labels", "must be an object", labels)
        _names(path, "labels.classes", labels.get("classes"))
        if not isinstance(labels.get("multi_label", False), bool):
            raise corrupt(path, "labels.multi_label", "must be true or false", labels.get("multi_label"))


# ---------------------------------------------------------------------------
# metadata.json

_OPTIONAL_TEXT = ("created", "settings_source", "split", "device", "kind", "input")
_OPTIONAL_FLAGS = ("segmented", "leaky_split", "multi_label")


def _param_type_ok(kind: str, value) -> bool:
    if kind == "float":
        return _is_number(value)
    if kind == "int":
        return _is_int(value)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "ints":
        return isinstance(value, list) and all(_is_int(v) for v in value)
    return isinstance(value, str)


def check_params(path: Path, spec, params) -> dict:
    """Hyperparameters of ``spec`` as saved: typed as the registry says and in its ranges.

    Returns the resolved parameters.
    """
    if not isinstance(params, dict):
        raise corrupt(path, "params", "must be an object of hyperparameters", params)
    for name, value in params.items():
        param = spec.params.get(name)
        if param is not None and not _param_type_ok(param.kind, value):
            kinds = {"float": "a number", "int": "an integer", "bool": "true or false",
                     "ints": "a list of integers", "str": "text"}
            raise corrupt(path, f"params.{name}", f"must be {kinds.get(param.kind, param.kind)}", value)
    try:
        return spec.resolve(params)
    except FeatxError as exc:
        raise BundleError(f"corrupt bundle: {path}: params: {exc}") from None


def check_metadata(path: Path, metadata: dict, spec, *, n_features: int, classes: list[str]) -> dict:
    """Check every field of ``metadata.json`` that featx reads, against ``preprocessing.json``.

    ``spec`` is the model the metadata names; ``n_features`` and ``classes`` come from
    the (already checked) ``preprocessing.json``. Returns the resolved hyperparameters.
    """
    from .features.settings import FeatureSettings

    columns = _names(path, "feature_columns", metadata.get("feature_columns"))
    if len(columns) != n_features:
        raise corrupt(path, "feature_columns", f"must list the {n_features} columns of preprocessing.json. "
                                               f"Received: {len(columns)}", received=False)
    meta_classes = _names(path, "classes", metadata.get("classes"))
    if meta_classes != classes:
        raise corrupt(path, "classes", "must equal the classes of preprocessing.json", meta_classes)
    for name in _OPTIONAL_TEXT:
        if metadata.get(name) is not None and not isinstance(metadata[name], str):
            raise corrupt(path, name, "must be text", metadata[name])
    for name in _OPTIONAL_FLAGS:
        if name in metadata and not isinstance(metadata[name], bool):
            raise corrupt(path, name, "must be true or false", metadata[name])
    if metadata.get("kind") not in (None, spec.kind):
        raise corrupt(path, "kind", f"must be {spec.kind!r} for model {spec.name!r}", metadata["kind"])
    if metadata.get("input") not in (None, spec.input):
        raise corrupt(path, "input", f"must be {spec.input!r} for model {spec.name!r}", metadata["input"])
    if "seed" in metadata:
        _int(path, "seed", metadata["seed"], high=2**32 - 1)
    if metadata.get("max_segments") is not None:
        _int(path, "max_segments", metadata["max_segments"], low=1, high=100_000)
    elif spec.input == "segments":
        raise corrupt(path, "max_segments", f"must be an integer >= 1 for model {spec.name!r}", None)
    if metadata.get("clip_samples") is not None:
        _int(path, "clip_samples", metadata["clip_samples"], low=1, high=2**40)
    if "train_seconds" in metadata and not (_is_number(metadata["train_seconds"])
                                            and math.isfinite(metadata["train_seconds"])):
        raise corrupt(path, "train_seconds", "must be a number", metadata["train_seconds"])
    for name in ("versions", "config", "files"):
        if name in metadata and not isinstance(metadata[name], dict):
            raise corrupt(path, name, "must be an object", metadata[name])
    if "config" not in metadata:
        raise corrupt(path, "config", "must be present (the training configuration)", None, received=False)
    _int(path, "config.folds", metadata["config"].get("folds"), low=1, high=100_000)
    for key, value in (metadata.get("versions") or {}).items():
        if not isinstance(value, str):
            raise corrupt(path, f"versions.{key}", "must be text", value)
    settings = metadata.get("settings")
    if settings is not None:
        if not isinstance(settings, dict):
            raise corrupt(path, "settings", "must be an object of extraction settings", settings)
        try:
            FeatureSettings.from_dict(settings)
        except Exception as exc:  # any failure to rebuild them is corruption
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BundleError(f"corrupt bundle: {path}: settings: {first[:200]}") from None
    final = metadata.get("final_fit")
    if final is not None:
        if not isinstance(final, dict):
            raise corrupt(path, "final_fit", "must be an object", final)
        for name in ("n_train", "n_valid"):
            if name in final:
                _int(path, f"final_fit.{name}", final[name])
        if "seed" in final:
            _int(path, "final_fit.seed", final["seed"], high=2**32 - 1)
        if "rows" in final and not isinstance(final["rows"], str):
            raise corrupt(path, "final_fit.rows", "must be text", final["rows"])
        if "tracks" in final:
            _names(path, "final_fit.tracks", final["tracks"], empty=True)
    data = metadata.get("training_data")
    if data is not None:
        if not isinstance(data, dict):
            raise corrupt(path, "training_data", "must be an object", data)
        for name in ("path", "sha256"):
            if data.get(name) is not None and not isinstance(data[name], str):
                raise corrupt(path, f"training_data.{name}", "must be text", data[name])
        for name in ("rows", "tracks"):
            if data.get(name) is not None:
                _int(path, f"training_data.{name}", data[name])
    return check_params(path, spec, metadata.get("params", {}))


# ---------------------------------------------------------------------------
# Models


def check_baseline_arrays(path: Path, arrays: dict, *, n_features: int, n_classes: int,
                          multi_label: bool = False, n_train: int | None = None) -> None:
    """The arrays of ``baseline.npz``: finite training rows of the right width (``n_train``
    of them, as metadata.json says, when given), valid labels (class codes, or for
    ``multi_label`` rows of 0 and 1, one column per class), at most as many check rows."""
    X, y = arrays["X"], arrays["y"]
    if X.ndim != 2 or X.shape[1] != n_features or X.shape[0] < 1 or X.dtype.kind != "f":
        raise corrupt(path, "X", f"must be a float matrix with {n_features} columns", X.shape)
    if n_train is not None and len(X) != n_train:
        raise corrupt(path, "X", f"must hold the {n_train} training rows metadata.json names "
                                 f"(final_fit.n_train). Received: {len(X)} rows", received=False)
    if not np.isfinite(X).all():
        raise corrupt(path, "X", "must hold finite numbers only; it holds NaN or infinity",
                      received=False)
    if multi_label:
        if (y.ndim != 2 or y.shape != (len(X), n_classes) or y.dtype.kind not in "iu"
                or not np.isin(y, (0, 1)).all()):
            raise corrupt(path, "y", f"must give a row of {n_classes} zeros and ones per row of X",
                          received=False)
    elif y.ndim != 1 or len(y) != len(X) or y.dtype.kind not in "iu" or (y < 0).any() or (y >= n_classes).any():
        raise corrupt(path, "y", f"must give one class index in [0, {n_classes}) per row of X",
                      received=False)
    check_X, check_proba = arrays["check_X"], arrays["check_proba"]
    if (check_X.ndim != 2 or check_X.shape[1] != n_features or len(check_X) > len(X)
            or not np.isfinite(check_X).all()):
        raise corrupt(path, "check_X", f"must be a finite matrix with {n_features} columns and at "
                                       "most as many rows as X",
                      check_X.shape)
    if check_proba.shape != (len(check_X), n_classes) or not np.isfinite(check_proba).all():
        raise corrupt(path, "check_proba", f"must be a finite matrix of shape ({len(check_X)}, {n_classes})",
                      check_proba.shape)


#: How far a refit with the same library versions may stray from the saved probabilities
#: (BLAS rounding on another CPU stays far below it; a changed hyperparameter does not).
REFIT_TOLERANCE = 1e-3


def check_refit(path: Path, proba: np.ndarray, saved: np.ndarray, *, same_versions: bool) -> float:
    """The largest gap between refitted and saved check probabilities.

    Raises
    ------
    BundleError
        The shapes differ, or the gap exceeds :data:`REFIT_TOLERANCE` although the
        library versions are those that saved the bundle: its params or arrays were changed.
    """
    if proba.shape != saved.shape:
        raise corrupt(path, "check_proba", f"must have shape {proba.shape}", saved.shape)
    gap = float(np.max(np.abs(proba - saved))) if proba.size else 0.0
    if same_versions and gap > REFIT_TOLERANCE:
        raise corrupt(path, "check_proba", "must be reproduced by the model refitted from the saved "
                      f"arrays with the params of metadata.json; they differ by up to {gap:.3g} "
                      "under the same library versions (params or arrays were changed)", received=False)
    return gap


def _shape(tensor) -> tuple:
    return tuple(None if d is None else int(d) for d in tensor.shape)


def check_keras_shapes(path: Path, model, spec, *, n_features: int, n_classes: int,
                       max_segments: int | None) -> None:
    """The Keras model eats the bundle's feature vectors and emits one value per class."""
    inputs, outputs = list(model.inputs), list(model.outputs)
    if len(inputs) != 1 or len(outputs) != 1:
        raise corrupt(path, "model", "must have one input and one output. "
                                     f"Received: {len(inputs)} input(s), {len(outputs)} output(s)",
                      received=False)
    shape_in, shape_out = _shape(inputs[0]), _shape(outputs[0])
    if spec.input == "segments":
        expected = (None, max_segments, n_features)
    else:
        expected = (None, n_features)
    if shape_in != expected:
        raise corrupt(path, "input shape", f"must be {expected} (the features of metadata.json)",
                      shape_in)
    if shape_out != (None, n_classes):
        raise corrupt(path, "output shape", f"must be {(None, n_classes)} (one value per class)",
                      shape_out)


# ---------------------------------------------------------------------------
# Image models (input 'images'): preprocessing.json, metadata.json and the network


def check_image_preprocessing(path: Path, data: dict) -> None:
    """The plain data of an image model's ``preprocessing.json``: kinds, classes, shapes, statistics."""
    from .features.spectrograms import KINDS

    kinds = _names(path, "feature_columns", data.get("feature_columns"))
    for kind in kinds:
        if kind not in KINDS:
            raise corrupt(path, "feature_columns", f"must list image kinds ({', '.join(KINDS)})", kind)
    _names(path, "classes", data.get("classes"))
    labels = data.get("labels")
    if not isinstance(labels, dict):
        raise corrupt(path, "labels", "must be an object", labels)
    _names(path, "labels.classes", labels.get("classes"))
    if not isinstance(labels.get("multi_label", False), bool):
        raise corrupt(path, "labels.multi_label", "must be true or false", labels.get("multi_label"))
    for name in ("shapes", "mean", "std"):
        if not isinstance(data.get(name), dict) or sorted(data[name]) != sorted(kinds):
            raise corrupt(path, name, f"must be an object with one entry per kind ({', '.join(kinds)})",
                          data.get(name))
    for kind in kinds:
        shape = data["shapes"][kind]
        if not isinstance(shape, list) or len(shape) != 2:
            raise corrupt(path, f"shapes.{kind}", "must be [height, width]", shape)
        for i, size in enumerate(shape):
            _int(path, f"shapes.{kind}[{i}]", size, low=1, high=1_000_000)
        mean, std = data["mean"][kind], data["std"][kind]
        if not (_is_number(mean) and math.isfinite(mean)):
            raise corrupt(path, f"mean.{kind}", "must be a finite number", mean)
        if not (_is_number(std) and math.isfinite(std) and std > 0):
            raise corrupt(path, f"std.{kind}", "must be a finite number > 0", std)


def check_image_metadata(path: Path, metadata: dict, kinds: list[str], shapes: dict) -> None:
    """``spectrogram_settings`` of an image bundle: valid settings that make the images the
    model was trained on (every kind of ``kinds`` at its shape in ``shapes``)."""
    from .features.spectrograms import SpectrogramSettings

    record = metadata.get("spectrogram_settings")
    if not isinstance(record, dict):
        raise corrupt(path, "spectrogram_settings", "must be an object of spectrogram settings", record)
    try:
        settings = SpectrogramSettings.from_dict(record)
    except Exception as exc:  # any failure to rebuild them is corruption
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BundleError(f"corrupt bundle: {path}: spectrogram_settings: {first[:200]}") from None
    for kind in kinds:
        if kind not in settings.kinds:
            raise corrupt(path, "spectrogram_settings.kinds", f"must include {kind!r}, a kind the model reads",
                          list(settings.kinds))
        try:
            made = tuple(settings.image_shape(kind))
        except FeatxError:
            made = None
        if made is not None and made != tuple(shapes[kind]):
            raise corrupt(path, "spectrogram_settings", f"make {kind} images of shape {made}, but the model "
                                                        f"was trained on {tuple(shapes[kind])}", received=False)


def check_image_model(path: Path, model, kinds: list[str], shapes: dict, *, n_classes: int) -> None:
    """The Keras network eats one image per kind of the bundle and emits one value per class."""
    inputs, outputs = list(model.inputs), list(model.outputs)
    if len(inputs) != len(kinds) or len(outputs) != 1:
        raise corrupt(path, "model", f"must have {len(kinds)} input(s) ({', '.join(kinds)}) and one output. "
                                     f"Received: {len(inputs)} input(s), {len(outputs)} output(s)",
                      received=False)
    expected = sorted((None, *shapes[k]) for k in kinds)
    got = sorted(_shape(t) for t in inputs)
    if got != expected:
        raise corrupt(path, "input shape", f"must be {expected} (the images of preprocessing.json)", got)
    if _shape(outputs[0]) != (None, n_classes):
        raise corrupt(path, "output shape", f"must be {(None, n_classes)} (one value per class)",
                      _shape(outputs[0]))
