"""featx: music-genre classification from hand-crafted audio features.

The Python API, from an array of samples to a trained model::

    import featx

    rows = featx.extract_features("song.wav")             # one file -> feature rows
    featx.run_extraction(["audio/"], "features.csv",      # a corpus -> one CSV
                         settings=featx.FeatureSettings())
    model = featx.train("features.csv", "svm", output_dir="models/svm")   # featx train
    featx.load_bundle("models/svm").predict_audio(["song.wav"])
    clf = featx.GenreClassifier(model="svm", C=3).fit(X, y, groups=tracks)  # scikit-learn

Names are imported on first use: ``import featx`` loads no TensorFlow, Keras or
scikit-learn (nor librosa), and neither does extracting features.
"""
from __future__ import annotations

import importlib

from ._version import __version__

#: Public name -> the module that defines it (imported when the name is first used).
_EXPORTS = {
    "extract_features": "featx.api",
    "train": "featx.api",
    "load_bundle": "featx.api",
    "FeatureSettings": "featx.features.settings",
    "run_extraction": "featx.extract.runner",
    "run_spectrograms": "featx.extract.spectro_runner",
    "read_feature_csv": "featx.data.table",
    "FeatureTable": "featx.data.table",
    "TrainConfig": "featx.training.config",
    "Bundle": "featx.bundle",
    "GenreClassifier": "featx.estimator",
    "GroupedSplit": "featx.data.splits",
    "FeatxError": "featx.errors",
    "AudioError": "featx.errors",
    "BundleError": "featx.errors",
    "ConfigError": "featx.errors",
    "DataError": "featx.errors",
    "OutputError": "featx.errors",
    "TrainingError": "featx.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'featx' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
