"""The Python API: plain functions on arrays, files, tables and bundles.

Everything here is exported from :mod:`featx` (``featx.extract_features``,
``featx.train``, ``featx.load_bundle``); the corpus-level pieces
(:func:`featx.run_extraction`, :func:`featx.read_feature_csv`,
:class:`featx.FeatureSettings`) come from their own modules. The layers are those
of the command line: array -> file -> corpus -> trained bundle, and each command
is one of these calls.

TensorFlow, Keras and scikit-learn are imported only when a model is trained or
loaded.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from .errors import ConfigError
from .extract.file import extract_array_features
from .extract.file import extract_features as file_features
from .features.settings import FeatureSettings
from .models.registry import get_model
from .training.config import TrainConfig

__all__ = ["extract_features", "train", "load_bundle"]


def extract_features(path_or_array, sr=None, *, settings=None, name=None):
    """Feature rows of one audio file or one waveform, as ``featx extract`` computes them.

    The analysis always runs at ``settings.sr`` (22050 Hz by default): a file or an
    array at another rate is resampled to it first, channels are averaged, and the
    signal is cut into segments as ``settings`` say. A file gives the very numbers
    that ``featx extract`` writes for it (rows named after the file, without its
    folder); an array gives the rows of a float file holding the same samples.

    Parameters
    ----------
    path_or_array : str, os.PathLike or np.ndarray [shape=(n,) or (channels, n)]
        An audio file (any format featx decodes), or samples in memory.
    sr : int >= 1000, optional
        The sample rate of the array, in Hz; required for an array. Not accepted
        with a path: a file's header gives its rate (to analyse at another rate,
        pass ``settings=FeatureSettings(sr=...)``).
    settings : FeatureSettings, optional
        How features are computed; default ``FeatureSettings()`` (3-s segments,
        Kaggle GTZAN columns then spectral contrast).
    name : str, optional
        For an array: the file name its rows are named after (default
        ``'array.wav'``: rows ``array.0.wav``, ``array.1.wav``, ...). Not accepted
        with a path.

    Returns
    -------
    rows : pandas.DataFrame
        Columns ``filename``, ``length`` (samples per segment at ``settings.sr``),
        then ``settings.feature_columns()``; one row per full segment, or one row for
        the whole signal when ``settings.segment_seconds`` is ``None``. The settings
        are recorded in ``rows.attrs["featx_settings"]``, so that a bundle can check
        them (:meth:`featx.bundle.Bundle.predict`).

    Raises
    ------
    AudioError
        The file cannot be decoded, or the signal is empty, not finite, or shorter
        than one segment.
    ConfigError
        An array without ``sr``, or ``sr``/``name`` with a path.

    See Also
    --------
    run_extraction : a whole corpus of files into one CSV, in parallel, resumable.

    Examples
    --------
    >>> import numpy as np
    >>> import featx
    >>> sr = 22050
    >>> y = 0.5 * np.sin(2 * np.pi * 440 * np.arange(int(6.5 * sr)) / sr)
    >>> rows = featx.extract_features(y, sr=sr)
    >>> rows["filename"].tolist()
    ['array.0.wav', 'array.1.wav']
    >>> bool(abs(rows["spectral_centroid_mean"].iloc[0] - 440) < 22050 / 2048)  # within one FFT bin
    True
    >>> whole = featx.extract_features(y, sr=sr, settings=featx.FeatureSettings(segment_seconds=None))
    >>> len(whole), int(whole["length"].iloc[0])
    (1, 143325)
    """
    settings = FeatureSettings() if settings is None else settings
    if not isinstance(settings, FeatureSettings):
        raise ConfigError(f"settings must be a FeatureSettings. Received: settings={settings!r}",
                          param="settings")
    if isinstance(path_or_array, (str, os.PathLike)):
        for key, value in (("sr", sr), ("name", name)):
            if value is not None:
                raise ConfigError(
                    f"{key} is for an array; a file's header gives its sample rate and its name "
                    f"names its rows (to analyse at another rate pass settings=FeatureSettings(sr=...)). "
                    f"Received: {key}={value!r} with the path {str(path_or_array)!r}", param=key)
        rows = file_features(path_or_array, settings)
    else:
        kind = getattr(getattr(path_or_array, "dtype", None), "kind", "")  # an array of text or objects
        items = list(path_or_array) if isinstance(path_or_array, (list, tuple)) else (
            path_or_array.ravel().tolist() if kind in ("O", "U", "S") and kind else [])
        n_paths = sum(isinstance(item, (str, os.PathLike)) for item in items)
        if n_paths:
            raise ConfigError(
                "extract_features takes one file or one array of samples; for several files call "
                "it once per file, or use run_extraction (a corpus into one CSV). Received: "
                f"{'an' if type(path_or_array).__name__[0] in 'aeiou' else 'a'} {type(path_or_array).__name__} holding {n_paths} path{'s' if n_paths > 1 else ''}",
                param="path_or_array")
        if sr is None:
            raise ConfigError(
                "sr is required with an array: the sample rate of its samples, in Hz "
                "(e.g. extract_features(y, sr=22050)). Received: sr=None", param="sr")
        rows = extract_array_features(path_or_array, sr=sr, settings=settings, name=name or "array.wav")
    rows.attrs["featx_settings"] = settings.to_dict()
    return rows


def train(data, model: str = "mlp", *, output_dir, overwrite: bool = False, progress=None, **options):
    """Cross-validate a model on a labelled feature table, fit it, and save it as a bundle.

    This is ``featx train``: folds grouped by track, the scaler fitted on training
    rows only, out-of-fold metrics, the model to keep fitted on all rows; the bundle
    folder receives the model, its preprocessing and metadata, ``metrics.json``,
    ``predictions.csv``, ``report.md`` and ``figures/``.

    Parameters
    ----------
    data : str, os.PathLike, pandas.DataFrame or FeatureTable
        The labelled rows: the path of a feature CSV (as ``featx extract`` writes),
        a DataFrame with ``filename``, feature columns and ``label``, or a table from
        :func:`read_feature_csv`.
    model : str
        A model name (``featx models`` lists them): ``'mlp'``, ``'svm'``, ``'knn'``, ...
    output_dir : str or os.PathLike
        The bundle folder: new or empty, or (with ``overwrite``) holding a bundle.
        It is checked before anything is read or trained.
    overwrite : bool
        Replace a bundle already in ``output_dir``; a folder featx did not write is
        never replaced.
    progress : bool or None
        Progress bars; ``None``: only on a terminal.
    **options
        Training options (the fields of :class:`featx.training.config.TrainConfig`:
        ``epochs``, ``batch_size``, ``learning_rate``, ``optimizer``, ``seed``,
        ``patience``, ``split``, ``folds``, ``valid_fraction``, ``refit``, ...) and the
        model's hyperparameters (``units=(64, 32)``, ``dropout=0.2``, ``C=3``,
        ``n_neighbors=7``, ...; ``featx models`` lists them). A ``params`` dict is
        merged with the hyperparameters given by name.

    Returns
    -------
    model : GenreClassifier
        The saved model as a fitted scikit-learn estimator, ready to predict
        (``model.predict(X)``, ``model.predict_audio(paths)``); ``model.bundle_.metrics``
        holds the cross-validated evaluation and ``model.bundle_.path`` the folder.

    Raises
    ------
    ConfigError
        An unknown option or model, or a bad value (the message names it:
        ``folds=0``).
    DataError
        A malformed or unlabelled table.
    OutputError
        ``output_dir`` holds something other than a bundle, or a bundle without
        ``overwrite``.
    TrainingError
        The fit diverged.

    Examples
    --------
    >>> import featx
    >>> model = featx.train("features.csv", "svm", output_dir="models/svm",
    ...                     folds=3, C=3)  # doctest: +SKIP
    >>> model.bundle_.metrics["track"]["accuracy"]  # doctest: +SKIP
    0.91
    """
    from .data.frames import as_table  # pulls in pandas: only on this path
    from .pipeline.train import train_bundle  # pulls in pandas: only on this path

    spec = get_model(model)
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"model", "params"}
    hyper = set(spec.params) | ({"depth"} if "units" in spec.params else set())
    params = dict(options.pop("params", None) or {})
    config_values = {}
    for key, value in options.items():
        if key in fields:
            config_values[key] = value
        elif key in hyper:
            params[key] = value
        else:
            raise ConfigError(
                f"train() has no option {key!r}: expected a training option ({', '.join(sorted(fields))}) "
                f"or a hyperparameter of model {spec.name!r} ({', '.join(sorted(hyper))})", param=key)
    for key in ("artist_map", "split_dir"):
        if config_values.get(key) is not None:
            config_values[key] = str(config_values[key])
    config = TrainConfig(model=spec.name, params=params, **config_values).validate()
    from .bundle import check_output_dir  # pulls in pandas: only on this path

    check_output_dir(output_dir, overwrite=overwrite)  # before reading a table
    table = as_table(data, require_label=True)
    run = train_bundle(table, config, output_dir=output_dir, overwrite=overwrite, progress=progress)
    return _estimator_of(run)


def _estimator_of(run):
    """The estimator for the bundle a training run wrote, with its model as fitted (not reloaded)."""
    from .bundle import METADATA, Bundle  # pulls in pandas: only on this path
    from .estimator import GenreClassifier  # pulls in pandas, scikit-learn: only on this path

    directory = Path(run.directory)
    metadata = json.loads((directory / METADATA).read_text())
    return GenreClassifier.from_bundle(Bundle(directory, run.result.model, metadata))


def load_bundle(directory):
    """Load a trained model saved by :func:`train` or ``featx train``.

    Nothing is unpickled and no code from the bundle runs: a Keras model loads in
    safe mode, a scikit-learn model from its skops file, rebuilding only the types
    featx trusts (a bundle of featx 0.1.0 is refitted from the rows it stored).

    Parameters
    ----------
    directory : str or os.PathLike
        The bundle folder.

    Returns
    -------
    model : GenreClassifier
        A fitted scikit-learn estimator: ``model.predict(X)`` and
        ``model.predict_proba(X)`` take feature rows (a DataFrame or a matrix);
        ``model.predict_audio(paths)`` and ``model.predict_audio(y, sr=...)`` classify
        audio, featurised with the settings of the model's training data, one row per
        file; ``model.classes_`` names the classes and ``model.bundle_`` (a
        :class:`~featx.bundle.Bundle`) holds the metrics and metadata.

    Raises
    ------
    BundleError
        A missing folder or file, corrupt content, or an unknown model.

    Warns
    -----
    UserWarning
        The bundle was saved with other library versions.

    Examples
    --------
    >>> import featx
    >>> model = featx.load_bundle("models/svm")  # doctest: +SKIP
    >>> model.predict_audio(["song.wav"])[["file", "genre"]]  # doctest: +SKIP
           file  genre
    0  song.wav   jazz
    """
    from .bundle import load_bundle as _load  # pulls in pandas: only on this path
    from .estimator import GenreClassifier  # pulls in pandas, scikit-learn: only on this path

    return GenreClassifier.from_bundle(_load(directory))

