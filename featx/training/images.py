"""Training and prediction for image models: batches read from a spectrogram store.

An image model (registry input ``images``) reads the images of one or more kinds
of each segment. Its rows come from a :class:`~featx.data.store_table.StoreTable`,
and its images are read from disk one batch at a time (:func:`store_batches`, a
``keras.utils.PyDataset``), so a store larger than memory trains. Each kind is
standardised by a mean and standard deviation fitted on the training rows only
(:class:`ImagePreprocessing`, saved in the bundle).
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

import numpy as np

from ..data.labels import LabelEncoding
from ..errors import ConfigError, TrainingError

logger = logging.getLogger(__name__)

__all__ = ["ImagePreprocessing", "store_batches", "fit_and_predict_images", "predict_images",
           "audio_images"]

#: Rows read at a time while fitting the per-kind statistics or predicting.
READ_ROWS = 256


@dataclass
class ImagePreprocessing:
    """The label encoding and per-kind standardisation of an image model, as plain numbers.

    Attributes
    ----------
    kinds : list of str
        The image kinds the model reads, in the order of its inputs.
    labels : LabelEncoding
    shapes : dict
        ``kind -> [height, width]`` of the images the model was trained on.
    mean_, std_ : dict
        ``kind -> float``: mean and standard deviation of all pixels of that kind over
        the training rows (learned by :meth:`fit`).
    """

    kinds: list[str]
    labels: LabelEncoding
    shapes: dict = field(default_factory=dict)
    mean_: dict | None = None
    std_: dict | None = None

    @property
    def classes(self) -> list[str]:
        return list(self.labels.classes_)

    @property
    def feature_columns(self) -> list[str]:
        """The kinds (a bundle lists them where a table model lists its columns)."""
        return list(self.kinds)

    def encode(self, labels) -> np.ndarray:
        return self.labels.encode(labels)

    def fit(self, store, rows) -> "ImagePreprocessing":
        """Per-kind mean and standard deviation over the images of ``rows``, read in blocks.

        ``musicnn`` images keep mean 0 and deviation 1: they go to the pretrained network
        as computed, whose own input batch norm holds the statistics it was trained with.
        """
        rows = np.sort(np.asarray(rows, dtype=np.int64))
        total = {k: 0.0 for k in self.kinds}
        squares = {k: 0.0 for k in self.kinds}
        count = {k: 0 for k in self.kinds}
        for start in range(0, len(rows), READ_ROWS):
            block = store.read(rows[start:start + READ_ROWS], self.kinds)
            for kind, images in block.items():
                values = images.astype(np.float64)
                total[kind] += float(values.sum())
                squares[kind] += float(np.square(values).sum())
                count[kind] += values.size
        mean = {k: total[k] / max(count[k], 1) for k in self.kinds}
        std = {k: float(np.sqrt(max(squares[k] / max(count[k], 1) - mean[k] ** 2, 0.0))) for k in self.kinds}
        std = {k: v if v > 1e-8 else 1.0 for k, v in std.items()}
        if "musicnn" in self.kinds:  # the pretrained network's input batch norm standardises these
            mean["musicnn"], std["musicnn"] = 0.0, 1.0
        return dataclasses.replace(self, mean_=mean, std_=std)

    def transform(self, images: dict) -> dict:
        """``kind -> float32 images``, standardised."""
        if self.mean_ is None:
            raise ConfigError("the image statistics are not fitted; call fit() on training rows first")
        return {k: ((images[k] - self.mean_[k]) / self.std_[k]).astype(np.float32) for k in self.kinds}

    def model_input(self, images: dict):
        """What the Keras model is called with: one array, or a dict of arrays per kind."""
        images = self.transform(images)
        return images[self.kinds[0]] if len(self.kinds) == 1 else images

    def to_dict(self) -> dict:
        return {
            "input": "images",
            "feature_columns": list(self.kinds),
            "classes": list(self.classes),
            "labels": self.labels.to_dict(),
            "shapes": {k: [int(d) for d in self.shapes[k]] for k in self.kinds},
            "mean": {k: float(self.mean_[k]) for k in self.kinds},
            "std": {k: float(self.std_[k]) for k in self.kinds},
        }

    @classmethod
    def from_dict(cls, data: dict) -> "ImagePreprocessing":
        kinds = [str(k) for k in data["feature_columns"]]
        labels = LabelEncoding.from_dict(data["labels"])
        shapes = {k: tuple(int(d) for d in data["shapes"][k]) for k in kinds}
        mean = {k: float(data["mean"][k]) for k in kinds}
        std = {k: float(data["std"][k]) for k in kinds}
        return cls(kinds, labels, shapes, mean, std)


def image_setup(table, spec, config, *, multi_label: bool = False):
    """``(prep0, y, None)`` for an image model: label encoding and the unfitted preprocessing."""
    kinds = list(spec.image_kinds(config.params))
    encoding = LabelEncoding(multi_label=multi_label).fit(table.labels)
    prep0 = ImagePreprocessing(kinds, encoding, table.image_shapes(kinds))
    return prep0, encoding.encode(table.labels), None


def check_builds(table, spec, config, num_classes: int) -> None:
    """Build the network once for the store's image shapes: a too-small image is refused
    (naming the minimum size) before anything is read or trained."""
    kinds = spec.image_kinds(config.params)
    shapes = table.image_shapes(kinds)
    shape = shapes if len(kinds) > 1 else shapes[kinds[0]]
    spec.build(shape, num_classes, **config.params)
    from .augment import Augmentation

    augmentation = Augmentation.from_config(config)
    for kind in kinds:  # masks that cannot fit the images are refused before training too
        augmentation.check_image(shapes[kind], kind)


def store_batches(store, rows, y, prep: ImagePreprocessing, *, batch_size: int, shuffle: bool = False,
                  seed: int = 0, augmentation=None):
    """A ``keras.utils.PyDataset`` of ``(inputs, targets)`` batches of ``rows`` of ``store``.

    Each batch's images are read from disk when Keras asks for it; the dataset holds
    only row numbers and targets. With ``shuffle`` the order changes every epoch,
    drawn from ``seed`` and the epoch number. ``y=None`` gives input-only batches
    (for prediction, in row order). ``augmentation`` (an active
    :class:`~featx.training.augment.Augmentation`, training batches only) masks, shifts
    and mixes each batch after standardisation, drawn from its seed, the epoch and
    the batch number.
    """
    from .._keras import import_keras
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


def predict_images(model, store, rows, prep: ImagePreprocessing, *, num_classes: int,
                   batch_size: int = READ_ROWS) -> np.ndarray:
    """Class probabilities of ``rows`` of ``store``, shape ``(n, num_classes)``, read per batch."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        return np.zeros((0, num_classes))
    batches = store_batches(store, rows, None, prep, batch_size=batch_size)
    parts = [np.asarray(model(batches[i], training=False), dtype=np.float64) for i in range(len(batches))]
    return np.concatenate(parts)


def fit_and_predict_images(table, spec, config, prep0: ImagePreprocessing, y, train, valid, test, *,
                           seed: int, progress=None, desc: str = "epochs"):
    """One fold of an image model: statistics and weights fitted on ``train``, ``test`` predicted.

    Returns ``(model, prep, history, proba)`` as :func:`featx.training.cv.fit_and_predict`.
    """
    import math

    from .._keras import import_keras
    from .augment import Augmentation
    from .fit import _epoch_bar, _nan_guard, seed_everything
    from .schedules import compile_options, one_hot_targets
    keras = import_keras()

    store = table.store
    prep = prep0.fit(store, train)
    n_classes = len(prep0.classes)
    seed_everything(seed)
    shapes = prep.shapes if len(prep.kinds) > 1 else prep.shapes[prep.kinds[0]]
    model = spec.build(shapes, n_classes, activation=prep0.labels.activation, **config.params)
    augmentation = dataclasses.replace(Augmentation.from_config(config), seed=int(seed))
    for kind in prep.kinds:
        augmentation.check_image(prep.shapes[kind], kind)
    y = one_hot_targets(config, prep0.labels, y, n_classes)  # mixup blends one-hot targets
    data = store_batches(store, train, y[train], prep, batch_size=config.batch_size, shuffle=True, seed=seed,
                         augmentation=augmentation if augmentation.active else None)
    has_valid = len(valid) > 0
    valid_data = store_batches(store, valid, y[valid], prep, batch_size=config.batch_size) if has_valid else None
    monitor = "val_loss" if has_valid else "loss"
    compile_kwargs, schedule = compile_options(config, prep0.labels, len(data), monitor)
    from ..models.pretrained import fine_tuning_optimizer  # fine-tuned pretrained blocks learn slower

    compile_kwargs["optimizer"] = fine_tuning_optimizer(model, compile_kwargs["optimizer"], config.params)
    model.compile(**compile_kwargs)
    callbacks = [_nan_guard(), _epoch_bar(config.epochs, desc, progress)] + schedule
    if config.patience > 0:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=config.patience,
                                                       restore_best_weights=True))
    result = model.fit(data, validation_data=valid_data, epochs=config.epochs, verbose=0, callbacks=callbacks)
    history = {k: [float(v) for v in vals] for k, vals in result.history.items()}
    for epoch, loss in enumerate(history.get("loss", []), start=1):
        if not math.isfinite(loss):
            raise TrainingError(
                f"training loss became {loss} in epoch {epoch}: training diverged "
                f"(learning_rate={config.learning_rate:g}, optimizer={config.optimizer}); lower the learning rate"
            )
    if test is None:
        return model, prep, history, None
    proba = predict_images(model, store, test, prep, num_classes=n_classes)
    if not np.all(np.isfinite(proba)):
        raise TrainingError(f"{desc}: the model predicts non-finite probabilities; training diverged")
    return model, prep, history, proba


def audio_images(path, settings, *, y=None) -> dict:
    """The images of every segment of an audio file, made as a store made them.

    Parameters
    ----------
    path : path
        The file, or (with ``y``) the name its samples are reported under.
    settings : SpectrogramSettings
    y : np.ndarray [shape=(n,)], optional
        Mono samples at ``settings.sr`` to use instead of decoding ``path``.

    Returns
    -------
    dict
        ``kind -> np.ndarray [shape=(n_segments, height, width)]``.

    Raises
    ------
    AudioError
        The file cannot be decoded or is shorter than one segment.
    """
    from ..errors import AudioError
    from ..extract.audio import load, segment
    from ..features.spectrograms import segment_spectrograms

    y = load(path, sr=settings.sr) if y is None else y
    segments = segment(y, hop=settings.segment_hop, length=settings.segment_samples)
    if len(segments) == 0 or segments.shape[-1] == 0:
        seconds = settings.segment_seconds
        raise AudioError(f"{path}: shorter than one {seconds:g}-s segment" if seconds else f"{path}: empty audio")
    return segment_spectrograms(np.ascontiguousarray(segments), settings=settings)
