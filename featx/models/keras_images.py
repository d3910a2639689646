"""Keras networks on the images of a spectrogram store (cnn2d, cnn2d-base, mfcc-cnn,
multihead, vgg16, musicnn).

An image model reads the images of one or more kinds of each segment. Its rows come
from a :class:`~featx.data.store_table.StoreTable`, and its images are read from disk
one batch at a time (:func:`store_batches`, a ``keras.utils.PyDataset``). Reading a
store chunk costs about a millisecond of Zarr's machinery whatever its size, so a fit
first reads its fold's rows once into memory where they fit (:func:`rows_in_memory`,
at most half the free memory and 2 GiB) and serves every batch from there; a store
larger than that is read per batch, so it still trains. Each kind is standardised by a mean and standard deviation
fitted on the training rows only (:class:`~featx.models.preprocessing.ImagePreprocessing`,
saved in the bundle). Audio given to a trained model is turned into images with the
store's recorded settings, a bounded block of segments at a time
(:meth:`KerasImages.predict_audio`), so an hour of audio needs no more memory than a
minute.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import numpy as np

from ..runtime.keras import import_keras
from ..data.store_table import StoreTable
from ..errors import BundleError, DataError, FeatxError
from ..extract.audio import load, segment
from ..extract.file import prepare_array
from ..features.spectrograms import SpectrogramSettings, segment_spectrograms
from .augment import Augmentation
from .base import (
    PREPROCESSING,
    AudioProbabilities,
    ModelFamily,
    check_finite_proba,
    rows_of,
    too_short,
)
from .fields import corrupt, first_line, read_json, tensor_shape
from .keras_fit import (
    KerasModel,
    fit_keras,
    load_keras,
    one_hot_targets,
    predict_batches,
    seed_everything,
)
from .preprocessing import ImagePreprocessing, read_image_preprocessing
from .pretrained import fine_tuning_optimizer

logger = logging.getLogger(__name__)

__all__ = ["KerasImages", "store_batches", "rows_in_memory", "RowCache", "memory_budget", "AUDIO_BLOCK"]

#: Rows read from a store at a time when predicting.
READ_ROWS = 256
#: Segments of new audio turned into images and classified at a time: bounds the memory
#: of a prediction on long audio (an hour of 3-s mel segments is 1,200 images).
AUDIO_BLOCK = 64


class KerasImages(KerasModel, ModelFamily):
    """A Keras network on spectrogram images (see :class:`~featx.models.base.ModelFamily`).

    Attributes
    ----------
    kinds : list of str
        The image kinds the network reads, in the order of its inputs.
    shapes : dict
        ``kind -> (height, width)`` of the training images.
    spectrogram_settings : SpectrogramSettings or None
        How the training store's images were made (audio is turned into images with them).
    """

    input = "images"
    augments_images = True

    def __init__(self, spec, params, labels, *, config=None, table=None):
        super().__init__(spec, params, labels, config=config, table=table)
        self.kinds = list(self.image_kinds(spec, params))
        self.shapes = None
        self.spectrogram_settings: SpectrogramSettings | None = None
        self.segmented = True
        if isinstance(table, StoreTable) and all(k in table.kinds for k in self.kinds):
            self.shapes = table.image_shapes(self.kinds)

    @classmethod
    def image_kinds(cls, spec, params: dict) -> tuple[str, ...]:
        kind = (params or {}).get("kind")
        return (str(kind),) if kind else tuple(spec.kinds)

    # -- before training ----------------------------------------------------------

    def check_input(self, table) -> None:
        kinds = ", ".join(self.kinds)
        if not isinstance(table, StoreTable):
            raise DataError(
                f"{table.name}: model {self.name!r} reads {kinds} images from a spectrogram store "
                "(featx spectrograms); this is a feature table. Give a STORE folder, or use a "
                "table model (featx models)")
        missing = [k for k in self.kinds if k not in table.kinds]
        if missing:
            raise DataError(
                f"{table.name}: model {self.name!r} needs {kinds} images; the store holds no "
                f"{', '.join(missing)} images (it holds {', '.join(table.kinds)}). "
                f"Make the store with kinds={','.join(self.kinds)}")

    def check_trainable(self, table) -> None:
        """Build the network once for the store's image shapes: a too-small image is refused
        (naming the minimum size) before anything is read or trained."""
        shapes = table.image_shapes(self.kinds)
        self.spec.build(self._network_shape(shapes), self.n_classes, **self.params)
        augmentation = Augmentation.from_config(self.config)
        for kind in self.kinds:  # masks that cannot fit the images are refused before training too
            augmentation.check_image(shapes[kind], kind)

    def _network_shape(self, shapes: dict):
        return shapes if len(self.kinds) > 1 else shapes[self.kinds[0]]

    # -- training and prediction --------------------------------------------------

    def fit(self, table, train, valid, *, seed, progress=None, desc="epochs", on_epoch=None):
        config = self.config
        store = table.store
        train, valid = rows_of(table, train), rows_of(table, valid)
        shapes = self.shapes or table.image_shapes(self.kinds)
        store = rows_in_memory(store, np.concatenate([train, valid]), self.kinds)
        prep = ImagePreprocessing(list(self.kinds), self.labels, shapes).fit(store, train)
        self.preprocessing, self.shapes = prep, shapes
        self.spectrogram_settings = table.spectrogram_settings
        self.segmented = bool(table.segmented)
        seed_everything(seed)
        model = self.spec.build(self._network_shape(shapes), self.n_classes, activation=self.labels.activation,
                                **self.params)
        augmentation = dataclasses.replace(Augmentation.from_config(config), seed=int(seed))
        for kind in self.kinds:
            augmentation.check_image(shapes[kind], kind)
        y = one_hot_targets(config, self.labels, self.labels.encode(table.labels), self.n_classes)
        data = store_batches(store, train, y[train], prep, batch_size=config.batch_size, shuffle=True,
                             seed=seed, augmentation=augmentation if augmentation.active else None)
        valid_data = (store_batches(store, valid, y[valid], prep, batch_size=config.batch_size)
                      if len(valid) else None)
        self.history = fit_keras(model, data, valid=valid_data, config=config, labels=self.labels,
                                 steps_per_epoch=len(data), progress=progress, desc=desc, on_epoch=on_epoch,
                                 optimizer_hook=lambda m, opt: fine_tuning_optimizer(m, opt, self.params))
        self.estimator = model
        return self

    def predict_proba(self, table, rows=None) -> np.ndarray:
        rows = rows_of(table, rows)
        if len(rows) == 0:
            return np.zeros((0, self.n_classes))
        batches = store_batches(table.store, rows, None, self.preprocessing, batch_size=READ_ROWS)
        proba = predict_batches(self.estimator, batches, num_classes=self.n_classes)
        return check_finite_proba(proba, self.name)

    # -- new data -----------------------------------------------------------------

    def check_table(self, table):
        self.check_input(table)
        mine, theirs = self.spectrogram_settings.to_dict(), table.spectrogram_settings.to_dict()
        differ = [f"{k}={theirs.get(k)!r} (model: {mine[k]!r})" for k in mine
                  if k != "kinds" and mine[k] != theirs.get(k)]
        if differ:
            raise DataError(
                f"{table.name}: the store's images were made with other settings than the model's "
                f"training images: {', '.join(differ)}; expected the same settings")
        return table

    def predict_audio(self, source, *, y=None, sr: int | None = None) -> AudioProbabilities:
        settings = dataclasses.replace(self.spectrogram_settings, kinds=tuple(self.kinds))
        name = str(source)
        if y is None:
            samples = load(source, sr=settings.sr)
        else:
            samples = prepare_array(y, sr=sr, target_sr=settings.sr, name=name)
        segments = segment(samples, hop=settings.segment_hop, length=settings.segment_samples)
        if len(segments) == 0 or segments.shape[-1] == 0:
            seconds = settings.segment_seconds
            needed = (settings.segment_hop or 0) + 1
            raise too_short(name, len(samples), settings.sr, needed,
                            f"one {seconds:g}-s segment" if seconds else "one sample")
        parts = []
        for start in range(0, len(segments), AUDIO_BLOCK):  # a bounded block of images at a time
            block = np.ascontiguousarray(segments[start:start + AUDIO_BLOCK])
            images = segment_spectrograms(block, settings=settings)
            x = self.preprocessing.model_input({k: images[k] for k in self.kinds})
            parts.append(predict_batches(self.estimator, [x], num_classes=self.n_classes))
        proba = check_finite_proba(np.concatenate(parts), self.name)
        hop = settings.segment_hop or len(samples)
        width = settings.segment_samples or len(samples)
        return AudioProbabilities(name, proba, np.arange(len(proba)) * hop / settings.sr, width / settings.sr,
                                  len(samples) / settings.sr)

    # -- persistence --------------------------------------------------------------

    def record(self) -> dict:
        return {"feature_columns": list(self.kinds), "settings": None, "settings_source": "store",
                "segmented": self.segmented, "spectrogram_settings": self.spectrogram_settings.to_dict()}

    @classmethod
    def load(cls, spec, directory, metadata, params):
        directory = Path(directory)
        prep_path = directory / PREPROCESSING
        prep = read_image_preprocessing(prep_path, read_json(prep_path))
        model = cls(spec, params, prep.labels)
        if list(model.kinds) != list(prep.kinds):
            raise corrupt(prep_path, "feature_columns", f"must be the kinds model {spec.name!r} reads "
                                                        f"({', '.join(model.kinds)})", list(prep.kinds))
        model.preprocessing, model.shapes = prep, dict(prep.shapes)
        model.spectrogram_settings = check_image_metadata(directory / "metadata.json", metadata, prep.kinds,
                                                          prep.shapes)
        model.segmented = bool(metadata.get("segmented", True))
        path = directory / cls.model_file
        model.estimator = load_keras(path)
        check_image_model(path, model.estimator, prep.kinds, prep.shapes, n_classes=len(prep.classes))
        return model


#: Most bytes of images held in memory by default, whatever memory is free.
MAX_CACHE_BYTES = 2 * 2**30


def memory_budget(*, limit: int = MAX_CACHE_BYTES) -> int:
    """Bytes an in-memory feed may take: half the memory free now, at most ``limit``.

    Where the free memory cannot be asked for (not Linux), ``limit`` alone.
    """
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return int(limit)
    return int(min(limit, free // 2))


class RowCache:
    """The images of ``rows`` of a store, read once and held in memory.

    ``read(indices, kinds)`` answers as :meth:`featx.data.store.SpectrogramStore.read`
    does (store row numbers, any order, repeats allowed), for rows it holds.

    Parameters
    ----------
    store : SpectrogramStore
    rows : np.ndarray [shape=(n,)]
        Store row numbers to hold.
    kinds : sequence of str
        Image kinds to hold.

    Attributes
    ----------
    nbytes : int
        Bytes of images held.
    """

    def __init__(self, store, rows, kinds):
        self.rows = np.unique(np.asarray(rows, dtype=np.int64).reshape(-1))
        self.kinds = tuple(kinds)
        shapes = {kind: tuple(store.image_shape(kind)) for kind in self.kinds}
        self._images = {kind: np.empty((len(self.rows), *shapes[kind]), dtype=np.float32) for kind in self.kinds}
        for start in range(0, len(self.rows), READ_ROWS):
            block = store.read(self.rows[start:start + READ_ROWS], self.kinds)
            for kind in self.kinds:
                self._images[kind][start:start + READ_ROWS] = block[kind]
        self.nbytes = sum(a.nbytes for a in self._images.values())

    def image_shape(self, kind: str) -> tuple[int, int]:
        return tuple(self._images[kind].shape[1:])

    def read(self, indices, kinds=None) -> dict[str, np.ndarray]:
        """``kind -> np.ndarray [shape=(n, height, width)]`` of the store rows ``indices``.

        Raises
        ------
        KeyError
            A kind or a row that is not held.
        """
        kinds = self.kinds if kinds is None else ((kinds,) if isinstance(kinds, str) else tuple(kinds))
        missing = [k for k in kinds if k not in self._images]
        if missing:
            raise KeyError(f"kind {missing[0]!r} is not held; held: {', '.join(self.kinds)}")
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        pos = np.minimum(np.searchsorted(self.rows, idx), max(len(self.rows) - 1, 0))
        if idx.size and (len(self.rows) == 0 or (self.rows[pos] != idx).any()):
            stray = idx[self.rows[pos] != idx] if len(self.rows) else idx
            raise KeyError(f"row {int(stray[0])} is not held")
        return {kind: self._images[kind][pos] for kind in kinds}


def rows_in_memory(store, rows, kinds, *, max_bytes: int | None = None):
    """A :class:`RowCache` of ``rows`` where their images fit ``max_bytes``, else ``store`` itself.

    Parameters
    ----------
    store : SpectrogramStore
    rows : np.ndarray [shape=(n,)]
        Every store row the fit will read (training and validation rows).
    kinds : sequence of str
    max_bytes : int, optional
        Default: :func:`memory_budget`.

    Examples
    --------
    >>> feed = rows_in_memory(store, np.concatenate([train, valid]), kinds)  # doctest: +SKIP
    >>> batches = store_batches(feed, train, y[train], prep, batch_size=32, shuffle=True)  # doctest: +SKIP
    """
    rows = np.unique(np.asarray(rows, dtype=np.int64).reshape(-1))
    per_row = sum(4 * int(np.prod(store.image_shape(kind))) for kind in kinds)
    need = per_row * len(rows)
    budget = memory_budget() if max_bytes is None else int(max_bytes)
    if need > budget:
        logger.info("images of %d rows take %.0f MiB, more than the %.0f MiB allowed: read from the store per batch",
                    len(rows), need / 2**20, budget / 2**20)
        return store
    return RowCache(store, rows, kinds)


def store_batches(store, rows, y, prep: ImagePreprocessing, *, batch_size: int, shuffle: bool = False,
                  seed: int = 0, augmentation=None):
    """A ``keras.utils.PyDataset`` of ``(inputs, targets)`` batches of ``rows`` of ``store``.

    ``store`` is a store or a :class:`RowCache` of it. Each batch's images are read
    when Keras asks for it; the dataset holds
    only row numbers and targets. With ``shuffle`` the order changes every epoch,
    drawn from ``seed`` and the epoch number. ``y=None`` gives input-only batches
    (for prediction, in row order). ``augmentation`` (an active
    :class:`~featx.models.augment.Augmentation`, training batches only) masks, shifts
    and mixes each batch after standardisation, drawn from its seed, the epoch and
    the batch number.
    """
    keras = import_keras()

    class StoreBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.rows = np.asarray(rows, dtype=np.int64)
            self.y = None if y is None else np.asarray(y)
            self.epoch = 0
            self.order = self._order()

        def _order(self):
            if not shuffle:
                return np.arange(len(self.rows))
            return np.random.default_rng([int(seed), self.epoch]).permutation(len(self.rows))

        def __len__(self):
            return -(-len(self.rows) // batch_size)

        def __getitem__(self, index):
            pick = self.order[index * batch_size:(index + 1) * batch_size]
            x = prep.model_input(store.read(self.rows[pick], prep.kinds))
            if self.y is None:
                return x
            if augmentation is None:
                return x, self.y[pick]
            return augmentation.apply(x, self.y[pick], epoch=self.epoch, batch=index)

        def on_epoch_end(self):
            self.epoch += 1
            self.order = self._order()

    return StoreBatches()


def check_image_metadata(path: Path, metadata: dict, kinds: list[str], shapes: dict) -> SpectrogramSettings:
    """``spectrogram_settings`` of an image bundle: valid settings that make the images the
    model was trained on (every kind of ``kinds`` at its shape in ``shapes``)."""
    record = metadata.get("spectrogram_settings")
    if not isinstance(record, dict):
        raise corrupt(path, "spectrogram_settings", "must be an object of spectrogram settings", record)
    try:
        settings = SpectrogramSettings.from_dict(record)
    except Exception as exc:  # any failure to rebuild them is corruption
        raise BundleError(f"corrupt bundle: {path}: spectrogram_settings: {first_line(exc)}") from None
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
    return settings


def check_image_model(path: Path, model, kinds: list[str], shapes: dict, *, n_classes: int) -> None:
    """The Keras network eats one image per kind of the bundle and emits one value per class."""
    inputs, outputs = list(model.inputs), list(model.outputs)
    if len(inputs) != len(kinds) or len(outputs) != 1:
        raise corrupt(path, "model", f"must have {len(kinds)} input(s) ({', '.join(kinds)}) and one output. "
                                     f"Received: {len(inputs)} input(s), {len(outputs)} output(s)",
                      received=False)
    expected = sorted((None, *shapes[k]) for k in kinds)
    got = sorted(tensor_shape(t) for t in inputs)
    if got != expected:
        raise corrupt(path, "input shape", f"must be {expected} (the images of preprocessing.json)", got)
    if tensor_shape(outputs[0]) != (None, n_classes):
        raise corrupt(path, "output shape", f"must be {(None, n_classes)} (one value per class)",
                      tensor_shape(outputs[0]))
