"""Bundles of image models: loading their parts, predicting on stores and on audio.

An image bundle holds the same files as any Keras bundle; its
``preprocessing.json`` has the image kinds, their shapes and per-kind
statistics (:class:`~featx.training.images.ImagePreprocessing`), and its
``metadata.json`` the :class:`~featx.features.spectrograms.SpectrogramSettings`
of the store it was trained on (``spectrogram_settings``). Audio given to it is
turned into images with exactly those settings and the same segmenting.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .errors import AudioError, BundleError, DataError

__all__ = ["load_image_preprocessing", "check_image_bundle", "predict_store", "classify_audio_images",
           "classify_array_images"]


def load_image_preprocessing(path: Path, data: dict):
    """Check and read an image model's ``preprocessing.json``."""
    from .bundle_checks import check_image_preprocessing
    from .training.images import ImagePreprocessing

    check_image_preprocessing(path, data)
    try:
        prep = ImagePreprocessing.from_dict(data)
    except Exception as exc:  # checked above; anything left is corruption too
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BundleError(f"corrupt bundle: {path}: {first[:200]}") from None
    if prep.classes != [str(c) for c in data["classes"]]:
        raise BundleError(f"corrupt bundle: {path}: labels and classes list different genres")
    return prep


def check_image_bundle(directory: Path, metadata: dict, prep, model) -> None:
    """``metadata.json``'s spectrogram settings and the network's shapes agree with ``prep``."""
    from .bundle_checks import check_image_metadata, check_image_model

    check_image_metadata(directory / "metadata.json", metadata, prep.kinds, prep.shapes)
    check_image_model(directory / "model.keras", model, prep.kinds, prep.shapes, n_classes=len(prep.classes))


def spectrogram_settings(bundle):
    """The :class:`SpectrogramSettings` the bundle's training images were made with."""
    from .features.spectrograms import SpectrogramSettings

    return SpectrogramSettings.from_dict(bundle.metadata["spectrogram_settings"])


def predict_store(bundle, table) -> np.ndarray:
    """Row-level probabilities of an image bundle for every row of a store table.

    Raises
    ------
    DataError
        The store was made with other settings, or lacks a kind the model reads.
    """
    from .data.store_table import check_input
    from .training.images import predict_images

    check_input(bundle.spec, table, bundle.metadata.get("params"))
    mine, theirs = spectrogram_settings(bundle).to_dict(), table.spectrogram_settings.to_dict()
    differ = [f"{k}={theirs.get(k)!r} (model: {mine[k]!r})" for k in mine
              if k != "kinds" and mine[k] != theirs.get(k)]
    if differ:
        raise DataError(
            f"{table.name}: the store's images were made with other settings than the model's "
            f"training images: {', '.join(differ)}; expected the same settings"
        )
    return predict_images(bundle.model, table.store, np.arange(table.n_rows), bundle.preprocessing,
                          num_classes=len(bundle.classes))


def classify_array_images(bundle, y, *, sr: int, name: str) -> pd.DataFrame:
    """An array of samples classified as :func:`classify_audio_images` classifies a file."""
    from .extract.file import _prepare_array
    from .training.images import audio_images

    settings = spectrogram_settings(bundle)
    images = audio_images(name, settings, y=_prepare_array(y, sr=sr, target_sr=settings.sr, name=name))
    return _per_file([_segment_probabilities(name, images, bundle)], bundle)


def _segment_probabilities(name, images: dict, bundle) -> pd.DataFrame:
    """``file`` and one probability column per class for each segment's images."""
    prep = bundle.preprocessing
    x = prep.model_input({k: images[k] for k in prep.kinds})
    part = pd.DataFrame(np.asarray(bundle.model(x, training=False), dtype=np.float64), columns=bundle.classes)
    part.insert(0, "file", str(name))
    return part


def _per_file(frames, bundle) -> pd.DataFrame:
    """One row per file: the mean probabilities of its segments and the genre."""
    if not frames:
        return pd.DataFrame(columns=["file", "genre", *bundle.classes])
    rows = pd.concat(frames, ignore_index=True)
    out = rows.groupby("file", sort=False)[bundle.classes].mean().reset_index()
    out.insert(1, "genre", bundle.preprocessing.labels.decode_proba(out[bundle.classes].to_numpy()))
    return out


def classify_audio_images(bundle, paths, *, progress=None) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Images of each audio file made with the bundle's settings, classified, averaged per file.

    Returns the per-file predictions and ``(file, reason)`` for files that could not
    be analysed (undecodable, shorter than one segment).
    """
    from ._progress import progress_bar
    from .training.images import audio_images

    settings = spectrogram_settings(bundle)
    frames, skipped = [], []
    for path in progress_bar(list(paths), desc="predict", unit="file", progress=progress):
        try:
            images = audio_images(path, settings)
        except AudioError as exc:
            skipped.append((str(path), str(exc).removeprefix(f"{path}: ")))
            continue
        frames.append(_segment_probabilities(path, images, bundle))  # one file's images at a time
    return _per_file(frames, bundle), skipped
