"""scikit-learn estimators on the rows of a feature table (svm, ensemble, knn, random-forest).

The fitted estimator is saved with skops (``model.skops``): skops writes the
estimator's state as plain data and, on loading, rebuilds only the types it is
told to trust. featx trusts scikit-learn's own types and exactly the few others
its estimators hold (:data:`TRUSTED_TYPES`); a file that names any other type is
refused before anything in it is built. Unlike a pickle, no code from the file
can run, and unlike refitting from the training rows, loading costs no fit.

Beside it, the estimators :mod:`featx.models.portable` covers (svm, knn, random
forest, the ensemble) are also written as plain arrays (``model_arrays.npz``), checked at
saving to give scikit-learn's probabilities to 1e-9. Prediction from a bundle then uses
those arrays with NumPy alone: neither scikit-learn nor skops is imported, which takes
more than a second, several times the cost of classifying one clip. The skops file is
read only when the estimator itself is asked for (:attr:`SklearnRows.estimator`).

Bundles written by featx 0.1.0 stored the training rows instead (``baseline.npz``)
and are still loaded: the estimator is refitted from those rows and checked
against probabilities saved at training time (:meth:`SklearnRows.load`).
"""
from __future__ import annotations

import json
import logging
import stat
import warnings
import zipfile
from pathlib import Path

import numpy as np

from ..runtime.threads import limited_threads
from ..errors import BundleError, ConfigError
from ..io.archive import check_archive
from ..io.atomic import atomic_open, atomic_save
from ..io.chunks import kind_of
from ..io.digest import file_sha256
from .base import check_finite_proba, library_versions, rows_of
from . import portable
from .fields import corrupt, first_line, read_npz
from .tables import TableFamily

logger = logging.getLogger(__name__)

__all__ = ["SklearnRows", "TRUSTED_TYPES", "fit_estimator", "build_estimator", "sklearn_proba"]

#: The file of a skops-saved estimator, and of the rows it is checked against at loading.
SKOPS_MODEL = "model.skops"
CHECK_ARRAYS = "model_check.npz"
#: The estimator's fitted state as plain arrays, for prediction without scikit-learn.
PORTABLE_ARRAYS = "model_arrays.npz"
#: How far the arrays' probabilities may stray from scikit-learn's on the check rows at saving.
PORTABLE_TOLERANCE = 1e-9
#: The file of a scikit-learn model in bundles of featx 0.1.0 (its training rows).
LEGACY_BASELINE = "baseline.npz"
#: Training rows kept to check a loaded estimator against the probabilities it gave when saved.
CHECK_ROWS = 64

#: Types beyond skops's defaults that featx's estimators hold, and only these, are
#: rebuilt from a ``model.skops`` file: the svm's calibration (scikit-learn's private
#: calibrator classes and featx's fold rule), the ensemble network's optimizer state,
#: the forest's trees and the neighbour search structures of knn (its Euclidean metric).
TRUSTED_TYPES = frozenset({
    "featx.models.sklearn.CalibrationFolds",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._TemperatureScaling",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.tree._tree.Tree",
    "sklearn.utils._bunch.Bunch",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.metrics._dist_metrics.EuclideanDistance32",
})

#: How far a check with the same library versions may stray from the saved probabilities
#: (BLAS rounding on another CPU stays far below it; a changed model or array does not).
CHECK_TOLERANCE = 1e-3


def fit_estimator(estimator, X, y):
    """Fit a scikit-learn estimator with BLAS/OpenMP on one thread.

    One thread, so that a fit on a busy machine does not oversubscribe its cores.

    Raises
    ------
    KeyboardInterrupt
        Ctrl-C came during the fit, even where the estimator itself caught it and
        stopped early (scikit-learn's ``MLPClassifier``).
    """
    # scikit-learn's MLP catches Ctrl-C inside ``fit``, warns and returns a half-trained
    # model: the interrupt is raised again here, so nothing cut short is saved or recorded
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with limited_threads():
            fitted = estimator.fit(X, y)
    interrupted = False
    for item in caught:
        if "Training interrupted by user" in str(item.message):
            interrupted = True
            continue
        warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
    if interrupted:
        raise KeyboardInterrupt
    return fitted


def build_estimator(spec, params: dict, *, seed: int, multi_label: bool = False):
    """A scikit-learn model from its registry entry; ``multi_label``: one-vs-rest.

    A multi-label model is :class:`~sklearn.multiclass.OneVsRestClassifier` around the
    model: one binary classifier per genre on multi-hot targets, whose probabilities of
    the positive class are the genre probabilities (they need not sum to 1).
    """
    estimator = spec.builder(seed=seed, **params)
    if multi_label:
        from sklearn.multiclass import OneVsRestClassifier  # scikit-learn is heavy: only when fitting

        estimator = OneVsRestClassifier(estimator)
    return estimator


def sklearn_proba(estimator, X) -> np.ndarray:
    """``estimator.predict_proba(X)`` with BLAS/OpenMP limited like :func:`fit_estimator`."""
    with limited_threads():
        return estimator.predict_proba(X)


def _check_neighbours(params: dict, n_rows: int, desc: str) -> None:
    """Refuse ``n_neighbors`` above the number of training rows, before fitting."""
    k = params.get("n_neighbors")
    if k is not None and k > n_rows:
        where = f" ({desc})" if desc and desc != "epochs" else ""
        raise ConfigError(
            f"n_neighbors={k} exceeds the {n_rows} training rows{where}; expected n_neighbors <= {n_rows}. "
            f"Received: n_neighbors={k}")


class SklearnRows(TableFamily):
    """A scikit-learn estimator on feature rows (see :class:`~featx.models.base.ModelFamily`).

    A fit uses all of its training and validation rows (no early stopping), so
    cross-validation splits off no validation part for it.
    """

    input = "rows"
    library = "sklearn"
    model_file = SKOPS_MODEL
    format_version = 2
    uses_validation = False
    keras_training = False

    _estimator = None
    _portable_path = None
    _portable = None  # (tree, classes) of model_arrays.npz, when prediction needs no scikit-learn
    _skops_pending = None  # (folder, metadata) of a skops file not read yet

    @property
    def estimator(self):
        """The fitted scikit-learn estimator (read from ``model.skops`` on first use)."""
        if self._estimator is None and self._skops_pending is not None:
            directory, metadata = self._skops_pending
            self._estimator = _load_skops(directory / SKOPS_MODEL)
            self._skops_pending = None
            self._check_params(directory / SKOPS_MODEL, metadata)
            self._check_loaded(directory, metadata)
        return self._estimator

    @estimator.setter
    def estimator(self, value):
        self._estimator, self._portable, self._skops_pending = value, None, None

    def __repr__(self) -> str:
        fitted = self._estimator is not None or self._portable is not None or self._skops_pending is not None
        return f"{type(self).__name__}({self.name!r}, {self.n_classes} classes, {'fitted' if fitted else 'unfitted'})"

    def fit(self, table, train, valid, *, seed, progress=None, desc="epochs", on_epoch=None):
        # the scaler is fitted on the training rows, the estimator on the training and
        # validation rows (a fixed split's valid list: featx 0.1.0's rule, kept so that
        # every figure it reported is reproduced)
        self._fit_preprocessing(table, train)
        rows = np.concatenate([rows_of(table, train), rows_of(table, valid)])
        y = self.labels.encode(table.labels)
        X = self._transform(table, rows)
        _check_neighbours(self.params, len(X), desc)
        estimator = build_estimator(self.spec, self.params, seed=seed, multi_label=self.multi_label)
        self.estimator = fit_estimator(estimator, X, y[rows])
        self._check_rows = X[:CHECK_ROWS]
        self.history = {}
        return self

    def predict_proba(self, table, rows=None) -> np.ndarray:
        X = self._transform(table, rows)
        full = np.zeros((len(X), self.n_classes))
        if len(X):
            if self._portable is not None:
                tree, classes = self._portable
                proba = _portable_proba(self._portable_path, tree, X)
            else:
                proba, classes = sklearn_proba(self.estimator, X), self.estimator.classes_
            if self.multi_label:
                full[:] = proba
            else:  # a class absent from the training rows gets probability 0
                full[:, np.asarray(classes, dtype=int)] = proba
        return check_finite_proba(full, self.name)

    @classmethod
    def device(cls) -> str:
        return "cpu (scikit-learn)"

    # -- persistence --------------------------------------------------------------

    def save(self, directory) -> list[str]:
        import skops.io as sio  # skops (and scikit-learn under it) only when saving a model

        directory = Path(directory)
        atomic_save(directory / SKOPS_MODEL,
                    lambda tmp: sio.dump(self.estimator, tmp, compression=zipfile.ZIP_DEFLATED))
        check = np.asarray(getattr(self, "_check_rows", np.zeros((0, len(self.feature_columns)))))
        check_proba = sklearn_proba(self.estimator, check) if len(check) else np.zeros((0, self.n_classes))
        with atomic_open(directory / CHECK_ARRAYS) as fh:
            np.savez_compressed(fh, check_X=check, check_proba=check_proba)
        written = [SKOPS_MODEL, CHECK_ARRAYS]
        arrays = self._portable_arrays(check, check_proba)
        if arrays is not None:
            # the arrays stand for this skops file only: a replaced file is refused at loading
            arrays["skops_sha256"] = np.frombuffer(file_sha256(directory / SKOPS_MODEL).encode(), dtype=np.uint8)
            arrays["params_json"] = np.frombuffer(json.dumps(self.params, sort_keys=True).encode(), dtype=np.uint8)
            with atomic_open(directory / PORTABLE_ARRAYS) as fh:
                np.savez_compressed(fh, **arrays)
            written.append(PORTABLE_ARRAYS)
        return [*written, self.save_preprocessing(directory)]

    def _portable_arrays(self, check, check_proba) -> dict | None:
        """The estimator as arrays, where :mod:`~featx.models.portable` covers it and
        reproduces scikit-learn's probabilities on the check rows; else ``None``."""
        if not len(check):
            return None
        try:
            tree = portable.export(self.estimator)
            with limited_threads():  # one BLAS thread, like every scikit-learn prediction
                gap = float(np.max(np.abs(portable.predict_proba(tree, check) - check_proba)))
        except portable.Unsupported as exc:
            logger.debug("%s: predicted with scikit-learn (%s)", self.name, exc)
            return None
        if not gap <= PORTABLE_TOLERANCE:
            logger.debug("%s: arrays differ from scikit-learn by %.3g; predicted with scikit-learn", self.name, gap)
            return None
        classes = np.asarray(getattr(self.estimator, "classes_", np.arange(self.n_classes)))
        return {**portable.to_arrays(tree), "classes": classes}

    @classmethod
    def load(cls, spec, directory, metadata, params):
        directory = Path(directory)
        model = cls._read_table_record(spec, directory, metadata, params)
        if not (directory / SKOPS_MODEL).exists() and (directory / LEGACY_BASELINE).is_file():
            model.estimator = _refit_legacy(model, spec, directory, metadata, params)
            return model
        if _present(directory / PORTABLE_ARRAYS):
            model._load_portable(directory, metadata)
            return model
        model.estimator = _load_skops(directory / SKOPS_MODEL)
        model._check_params(directory / SKOPS_MODEL, metadata)
        model._check_loaded(directory, metadata)
        return model

    def _load_portable(self, directory: Path, metadata: dict) -> None:
        """Predict from ``model_arrays.npz``, checked against the saved check rows; the
        skops file is read only if the estimator itself is asked for."""
        path = directory / PORTABLE_ARRAYS
        if not (directory / SKOPS_MODEL).is_file():
            raise BundleError(f"{directory / SKOPS_MODEL}: missing; expected the saved estimator "
                              f"({PORTABLE_ARRAYS} is a copy of it for fast prediction)")
        arrays = read_npz(path, "the model's arrays")
        try:
            tree = portable.from_arrays(arrays)
            missing = sorted({"classes", "skops_sha256", "params_json"} - set(arrays))
            if missing:
                raise KeyError(f"no array {missing[0]!r}")
            saved_params = json.loads(bytes(arrays["params_json"]).decode())
            if not isinstance(saved_params, dict):
                raise ValueError("params_json is not a JSON object")
            portable.check_tree(tree, len(self.feature_columns))
        except Exception as exc:  # any damage: a wrong archive, JSON, key, shape or index
            raise BundleError(f"corrupt bundle: {path}: cannot read the model's arrays ({first_line(exc)})") from None
        saved_digest = bytes(arrays["skops_sha256"]).decode("ascii", "replace")
        if file_sha256(directory / SKOPS_MODEL) != saved_digest:
            raise corrupt(directory / SKOPS_MODEL, "sha256", f"must be the digest {PORTABLE_ARRAYS} records "
                          "(the model file was replaced or changed after saving)", received=False)
        expected = json.loads(json.dumps(self.params))
        for name, value in expected.items():  # metadata.json must describe the model predicted with
            if name in saved_params and saved_params[name] != value:
                raise corrupt(path, f"model parameter {name}", f"must be {value!r}, as the params of "
                              "metadata.json say", saved_params[name])
        classes = arrays["classes"]
        n_out = self.n_classes
        if (classes.ndim != 1 or not np.issubdtype(classes.dtype, np.integer) or len(classes) > n_out
                or (len(classes) and not (0 <= classes.min() and classes.max() < n_out))):
            raise corrupt(path, "classes", f"must be class numbers below {n_out}", classes.tolist())
        self._portable_path = path
        self._skops_pending = (directory, metadata)
        self._portable = (tree, classes)
        check_X, saved = _read_check(directory / CHECK_ARRAYS, len(self.feature_columns))
        proba = _portable_proba(path, tree, check_X) if len(check_X) else np.zeros((0, saved.shape[-1]))
        if proba.shape != saved.shape:
            raise corrupt(directory / CHECK_ARRAYS, "check_proba", f"must have shape {proba.shape}", saved.shape)
        gap = float(np.max(np.abs(proba - saved))) if proba.size else 0.0
        if not gap <= CHECK_TOLERANCE:
            raise corrupt(directory / CHECK_ARRAYS, "check_proba", f"must be what {PORTABLE_ARRAYS} predicts for "
                          f"the check rows; they differ by up to {gap:.3g} (the model's arrays or the check rows "
                          "were changed)", received=False)

    def _check_params(self, path: Path, metadata: dict) -> None:
        """The saved estimator is the one ``metadata.json``'s hyperparameters and seed build."""
        seed = int((metadata.get("final_fit") or {}).get("seed", metadata.get("seed", 0)))
        expected = build_estimator(self.spec, self.params, seed=seed, multi_label=self.multi_label)
        if type(expected) is not type(self.estimator):
            raise corrupt(path, "model", f"must be a {type(expected).__name__} (model {self.name!r})",
                          type(self.estimator).__name__)
        saved = self.estimator.get_params(deep=True)
        for name, value in expected.get_params(deep=True).items():
            plain = value is None or isinstance(value, (bool, int, float, str, tuple))
            if plain and name in saved and saved[name] != value:
                raise corrupt(path, f"model parameter {name}", f"must be {value!r}, as the params and seed of "
                                                              "metadata.json say", saved[name])

    def _check_loaded(self, directory: Path, metadata: dict) -> None:
        """The loaded estimator reads the bundle's columns, emits its classes, and gives the
        probabilities it gave when saved (exactly, under the same library versions)."""
        path = directory / SKOPS_MODEL
        n_features = len(self.feature_columns)
        if int(getattr(self.estimator, "n_features_in_", n_features)) != n_features:
            raise corrupt(path, "n_features_in_", f"must be {n_features} (the columns of preprocessing.json)",
                          getattr(self.estimator, "n_features_in_", None))
        if not hasattr(self.estimator, "predict_proba"):
            raise corrupt(path, "model", "must be a classifier with predict_proba",
                          type(self.estimator).__name__)
        check_path = directory / CHECK_ARRAYS
        check_X, saved = _read_check(check_path, n_features)
        try:
            proba = sklearn_proba(self.estimator, check_X) if len(check_X) else np.zeros((0, self.n_classes))
        except Exception as exc:
            raise BundleError(f"corrupt bundle: {path}: the model cannot predict ({first_line(exc)})") from None
        if proba.shape != saved.shape:
            raise corrupt(check_path, "check_proba", f"must have shape {proba.shape}", saved.shape)
        gap = float(np.max(np.abs(proba - saved))) if proba.size else 0.0
        if gap > CHECK_TOLERANCE:
            if _same_versions(metadata):
                raise corrupt(check_path, "check_proba", "must be what the saved model predicts for the check "
                              f"rows; they differ by up to {gap:.3g} under the library versions that saved it "
                              "(the model or the check rows were changed)", received=False)
            warnings.warn(f"{path}: the model does not reproduce its saved probabilities exactly under "
                          "these library versions; predictions may differ slightly", UserWarning, stacklevel=4)


def _present(path: Path) -> bool:
    """Whether ``path`` is there; one line when it is there but not a file (a FIFO would block
    reading it, a device never end), instead of a hang.

    Raises
    ------
    BundleError
        ``path`` is a folder, a FIFO, a socket or a device (after following a link).
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise BundleError(f"corrupt bundle: {path}: cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(mode):
        raise BundleError(f"corrupt bundle: {path}: is {kind_of(mode)}; expected a file featx wrote")
    return True


def _read_check(check_path: Path, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """The check rows and the probabilities saved for them, from ``model_check.npz``."""
    if not check_path.is_file():
        raise BundleError(f"{check_path}: missing; expected the rows the saved model is checked with")
    arrays = read_npz(check_path, "the check rows", ("check_X", "check_proba"))
    check_X, saved = arrays["check_X"], arrays["check_proba"]
    if check_X.ndim != 2 or check_X.shape[1] != n_features or not np.isfinite(check_X).all():
        raise corrupt(check_path, "check_X", f"must be a finite matrix with {n_features} columns",
                      check_X.shape)
    return check_X, saved


def _portable_proba(path: Path, tree: dict, X: np.ndarray) -> np.ndarray:
    """:func:`portable.predict_proba`, with damage the load-time check missed said in one line."""
    try:
        with limited_threads():
            return portable.predict_proba(tree, X)
    except Exception as exc:  # an index or shape a crafted file put out of range
        raise BundleError(f"corrupt bundle: {path}: the model's arrays cannot predict ({first_line(exc)})") from None


def _same_versions(metadata: dict) -> bool:
    saved, now = metadata.get("versions") or {}, library_versions(keras_too=False)
    return all(str(saved.get(k)) == str(now.get(k)) for k in ("scikit-learn", "numpy"))


def _load_skops(path: Path):
    """An estimator from a skops file, refusing any type featx does not trust.

    Raises
    ------
    BundleError
        The file is missing, damaged, or names a type outside :data:`TRUSTED_TYPES`
        and skops's defaults.
    """
    if not path.is_file():
        raise BundleError(f"{path}: missing; expected the saved scikit-learn model")
    check_archive(path)
    import skops.io as sio  # skops (and scikit-learn under it) only when loading a model

    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:
        raise BundleError(f"{path}: cannot read the saved model ({first_line(exc)})") from None
    refused = sorted(set(untrusted) - TRUSTED_TYPES)
    if refused:
        raise BundleError(f"corrupt bundle: {path}: holds types featx does not load "
                          f"({', '.join(refused[:3])}{', ...' if len(refused) > 3 else ''}); expected "
                          "only the scikit-learn estimators featx saves")
    try:
        return sio.load(path, trusted=sorted(untrusted))
    except Exception as exc:
        raise BundleError(f"{path}: cannot load the saved model ({first_line(exc)})") from None


# ---------------------------------------------------------------------------
# Bundles of featx 0.1.0: the training rows, refitted at loading


def _refit_legacy(model: SklearnRows, spec, directory: Path, metadata: dict, params: dict):
    """The estimator of a 0.1.0 bundle, refitted from its saved training rows and checked."""
    path = directory / LEGACY_BASELINE
    arrays = read_npz(path, "the baseline arrays", ("X", "y", "check_X", "check_proba"))
    n_train = (metadata.get("final_fit") or {}).get("n_train")
    _check_baseline_arrays(path, arrays, n_features=len(model.feature_columns), n_classes=model.n_classes,
                           multi_label=model.multi_label, n_train=n_train)
    seed = int((metadata.get("final_fit") or {}).get("seed", metadata.get("seed", 0)))
    estimator = build_estimator(spec, params, seed=seed, multi_label=model.multi_label)
    try:
        fit_estimator(estimator, arrays["X"], arrays["y"])
        proba = sklearn_proba(estimator, arrays["check_X"])
    except Exception as exc:
        raise BundleError(f"{path}: corrupt baseline data ({type(exc).__name__}: {exc})") from None
    saved = arrays["check_proba"]
    if proba.shape != saved.shape:
        raise corrupt(path, "check_proba", f"must have shape {proba.shape}", saved.shape)
    gap = float(np.max(np.abs(proba - saved))) if proba.size else 0.0
    if _same_versions(metadata) and gap > CHECK_TOLERANCE:
        raise corrupt(path, "check_proba", "must be reproduced by the model refitted from the saved "
                      f"arrays with the params of metadata.json; they differ by up to {gap:.3g} "
                      "under the same library versions (params or arrays were changed)", received=False)
    if gap > 1e-6:
        warnings.warn(
            f"{path}: the refitted {spec.name} does not reproduce the saved probabilities exactly "
            "(another scikit-learn version, or a CPU whose BLAS rounds differently); "
            "predictions may differ slightly", UserWarning, stacklevel=4)
    logger.info("%s: a featx 0.1.0 bundle, refitted from its training rows; retrain it to load "
                "without a fit", directory)
    return estimator


def _check_baseline_arrays(path: Path, arrays: dict, *, n_features: int, n_classes: int,
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
                                       "most as many rows as X", check_X.shape)
    if check_proba.shape != (len(check_X), n_classes) or not np.isfinite(check_proba).all():
        raise corrupt(path, "check_proba", f"must be a finite matrix of shape ({len(check_X)}, {n_classes})",
                      check_proba.shape)
