"""Training-time augmentation of spectrogram images: masking, time shift and mixup.

SpecAugment-style masking zeroes a few bands of frequency rows and of time
frames; the random time shift rolls (or shifts with zero fill) each image along
its time axis; mixup blends each image with another one of the same batch and
blends their targets in the same proportion. All of it is applied to training
batches only (never to validation, evaluation or prediction), vectorised over a
batch with NumPy, and drawn from a generator seeded by ``(seed, epoch, batch)``,
so that one seed gives the same batches whatever order they are asked for in.

Images are ``(n, height, width)`` or ``(n, height, width, channels)``: frequency
rows on axis 1, time frames on axis 2, as a spectrogram store holds them. A
multi-input model's batch is a dict ``kind -> images``; each kind is masked
independently, every kind of one segment is shifted by the same fraction of its
width, and mixup pairs and weights the segments once for all kinds.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

__all__ = ["Augmentation", "AUGMENT_OPTIONS", "SHIFT_MODES", "mask_spans", "apply_masks",
           "shift_time", "mixup"]

#: How the time shift fills the frames it uncovers: wrap around, or zeros.
SHIFT_MODES = ("circular", "zero")

#: The augmentation options of :class:`~featx.training.config.TrainConfig`, with
#: the values that leave a batch untouched.
AUGMENT_OPTIONS = {"time_masks": 0, "freq_masks": 0, "mask_width": 8, "time_shift": 0.0,
                   "time_shift_mode": "circular", "mixup": 0.0}

#: Most masks of each axis.
MAX_MASKS = 64


def mask_spans(rng: np.random.Generator, n: int, length: int, count: int, max_width: int):
    """Non-overlapping spans to mask on one axis of ``n`` images.

    Parameters
    ----------
    rng : numpy.random.Generator
    n : int
        Images in the batch.
    length : int
        Size of the masked axis (rows or frames).
    count : int
        Masks per image.
    max_width : int
        Each mask's width is drawn uniformly from ``1 .. max_width``.

    Returns
    -------
    starts, widths : np.ndarray [shape=(n, count)]
        Spans ``[start, start + width)``, disjoint within an image, so that an image
        loses exactly ``widths.sum(axis=1)`` rows or frames.

    Raises
    ------
    ConfigError
        ``count * max_width`` exceeds ``length``: the masks could not be disjoint.
    """
    if count * max_width > length:
        raise ConfigError(
            f"{count} mask(s) of up to {max_width} cover more than the image's {length} rows or frames; "
            f"lower the number of masks or mask_width. Received: masks={count}, mask_width={max_width}",
            param="mask_width")
    widths = rng.integers(1, max_width + 1, size=(n, count))
    free = length - widths.sum(axis=1, keepdims=True)
    # sorted offsets into the unmasked length, each span placed after the previous ones
    offsets = np.sort(rng.integers(0, free + 1, size=(n, count)), axis=1)
    starts = offsets + np.cumsum(widths, axis=1) - widths
    return starts, widths


def _span_mask(starts: np.ndarray, widths: np.ndarray, length: int) -> np.ndarray:
    """Boolean ``(n, length)``: True inside any of an image's spans."""
    pos = np.arange(length)[None, None, :]
    inside = (pos >= starts[:, :, None]) & (pos < (starts + widths)[:, :, None])
    return inside.any(axis=1)


def apply_masks(images: np.ndarray, rng: np.random.Generator, *, time_masks: int = 0,
                freq_masks: int = 0, mask_width: int = 8) -> np.ndarray:
    """Zero ``freq_masks`` bands of rows and ``time_masks`` bands of frames of every image.

    Parameters
    ----------
    images : np.ndarray [shape=(n, height, width) or (n, height, width, channels)]
    rng : numpy.random.Generator
    time_masks, freq_masks : int
        Masks per image on the time axis (2) and on the frequency axis (1).
    mask_width : int
        Largest width of one mask.

    Returns
    -------
    np.ndarray
        A masked copy (``images`` is left as it is).
    """
    out = np.array(images, dtype=np.float32, copy=True)
    n, height, width = out.shape[:3]
    keep = np.ones((n, height, width), dtype=bool)
    if freq_masks:
        starts, widths = mask_spans(rng, n, height, freq_masks, mask_width)
        keep &= ~_span_mask(starts, widths, height)[:, :, None]
    if time_masks:
        starts, widths = mask_spans(rng, n, width, time_masks, mask_width)
        keep &= ~_span_mask(starts, widths, width)[:, None, :]
    out *= keep.reshape(keep.shape + (1,) * (out.ndim - 3))
    return out


def shift_time(images: np.ndarray, shifts: np.ndarray, *, mode: str = "circular") -> np.ndarray:
    """Shift each image along its time axis by ``shifts[i]`` frames (positive: later).

    ``mode='circular'`` rolls the frames round (``np.roll`` of each image);
    ``'zero'`` fills the uncovered frames with zeros.
    """
    if mode not in SHIFT_MODES:
        raise ConfigError(f"time_shift_mode must be one of {', '.join(SHIFT_MODES)}. "
                          f"Received: time_shift_mode={mode!r}", param="time_shift_mode")
    images = np.asarray(images, dtype=np.float32)
    n, width = images.shape[0], images.shape[2]
    source = np.arange(width)[None, :] - np.asarray(shifts, dtype=np.int64).reshape(n, 1)  # (n, width)
    shape = (n, 1, width) + (1,) * (images.ndim - 3)
    index = np.broadcast_to((source % width).reshape(shape), images.shape)
    out = np.take_along_axis(images, index, axis=2)
    if mode == "zero":
        out = out * ((source >= 0) & (source < width)).reshape(shape)
    return out


def mixup(images, targets: np.ndarray, rng: np.random.Generator, *, alpha: float,
          num_classes: int | None = None):
    """Blend each example with another of the batch: ``lam * a + (1 - lam) * b``.

    Parameters
    ----------
    images : np.ndarray [shape=(n, ...)] or dict of them
    targets : np.ndarray [shape=(n,) class indices, or (n, num_classes) one-/multi-hot]
        Class indices are turned into one-hot vectors first (``num_classes`` needed).
    alpha : float
        ``lam`` is drawn from ``Beta(alpha, alpha)`` for every example.

    Returns
    -------
    images, targets
        The blends; targets are ``float32 (n, num_classes)``, convex combinations of
        two examples' targets (each sums to 1 for one genre per example).
    """
    targets = np.asarray(targets)
    if targets.ndim == 1:
        if num_classes is None:
            raise ConfigError("mixup of class-index targets needs num_classes. Received: num_classes=None")
        targets = np.eye(int(num_classes), dtype=np.float32)[targets.astype(np.int64)]
    targets = targets.astype(np.float32)
    n = len(targets)
    lam = rng.beta(alpha, alpha, size=n).astype(np.float32)
    partner = rng.permutation(n)

    def blend(a):
        a = np.asarray(a, dtype=np.float32)
        w = lam.reshape((n,) + (1,) * (a.ndim - 1))
        return w * a + (1.0 - w) * a[partner]

    mixed = {k: blend(v) for k, v in images.items()} if isinstance(images, dict) else blend(images)
    return mixed, blend(targets)


@dataclass(frozen=True)
class Augmentation:
    """The augmentation of training batches chosen by a :class:`TrainConfig`.

    Parameters
    ----------
    time_masks, freq_masks : int
        SpecAugment masks per image on the time and on the frequency axis.
    mask_width : int
        Largest width (frames or rows) of one mask; each is drawn from ``1 .. mask_width``.
    time_shift : float
        Largest random shift along time, as a fraction of the image's width in [0, 1).
    time_shift_mode : {'circular', 'zero'}
    mixup : float
        Beta(alpha, alpha) parameter of mixup; 0: off.
    seed : int

    Examples
    --------
    >>> aug = Augmentation(time_masks=2, mask_width=3, seed=0)
    >>> x, y = aug.apply(np.ones((4, 8, 20)), np.array([0, 1, 0, 1]), epoch=0, batch=0)
    >>> int((x[0] == 0).all(axis=0).sum()) <= 6
    True
    """

    time_masks: int = 0
    freq_masks: int = 0
    mask_width: int = 8
    time_shift: float = 0.0
    time_shift_mode: str = "circular"
    mixup: float = 0.0
    seed: int = 0

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Check every value; a bad one is a :class:`ConfigError` naming it."""
        def is_int(v):
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        def number(v, low, high, closed_high=False):
            try:
                v = float(v)
            except (TypeError, ValueError):
                return False
            return np.isfinite(v) and low <= v and (v <= high if closed_high else v < high)

        checks = (
            ("time_masks", is_int(self.time_masks) and 0 <= self.time_masks <= MAX_MASKS,
             f"an integer in [0, {MAX_MASKS}]"),
            ("freq_masks", is_int(self.freq_masks) and 0 <= self.freq_masks <= MAX_MASKS,
             f"an integer in [0, {MAX_MASKS}]"),
            ("mask_width", is_int(self.mask_width) and self.mask_width >= 1, "an integer >= 1"),
            ("time_shift", number(self.time_shift, 0, 1), "a fraction in [0, 1)"),
            ("time_shift_mode", self.time_shift_mode in SHIFT_MODES, "one of " + ", ".join(SHIFT_MODES)),
            ("mixup", number(self.mixup, 0, 100, closed_high=True), "a number in [0, 100] (0: off)"),
        )
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(f"{name} must be {expected}. Received: {name}={getattr(self, name)!r}",
                                  param=name)

    @classmethod
    def from_config(cls, config) -> "Augmentation":
        """The augmentation a :class:`~featx.training.config.TrainConfig` asks for."""
        return cls(**{name: getattr(config, name) for name in AUGMENT_OPTIONS}, seed=int(config.seed))

    @property
    def active(self) -> bool:
        """Whether any augmentation is switched on."""
        return bool(self.time_masks or self.freq_masks or self.time_shift > 0 or self.mixup > 0)

    def settings(self) -> dict:
        """The options as plain data (for bundles and reports)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "seed"}

    def check_image(self, shape, kind: str = "image") -> None:
        """Refuse masks that cannot fit an image of ``shape`` ``(height, width, ...)``."""
        height, width = int(shape[0]), int(shape[1])
        for name, count, length, axis in (("freq_masks", self.freq_masks, height, "rows"),
                                          ("time_masks", self.time_masks, width, "frames")):
            if count * self.mask_width > length:
                raise ConfigError(
                    f"{name}={count} masks of up to mask_width={self.mask_width} do not fit the {kind} "
                    f"images' {length} {axis}; lower {name} or mask_width. Received: {name}={count}",
                    param=name)

    def _one(self, images: np.ndarray, rng: np.random.Generator, fractions) -> np.ndarray:
        out = apply_masks(images, rng, time_masks=self.time_masks, freq_masks=self.freq_masks,
                          mask_width=self.mask_width)
        if fractions is not None:
            shifts = np.rint(fractions * out.shape[2]).astype(np.int64)
            out = shift_time(out, shifts, mode=self.time_shift_mode)
        return out

    def apply(self, images, targets, *, epoch: int, batch: int, num_classes: int | None = None):
        """Augment one training batch.

        Parameters
        ----------
        images : np.ndarray [shape=(n, height, width[, channels])] or dict ``kind -> images``
        targets : np.ndarray
            Class indices ``(n,)`` or one-/multi-hot ``(n, num_classes)``.
        epoch, batch : int
            Which batch this is; with :attr:`seed` they fix every random draw.
        num_classes : int, optional
            Needed by mixup for class-index targets.

        Returns
        -------
        images, targets
            Augmented copies. With mixup, targets are float vectors ``(n, num_classes)``;
            without it they are returned unchanged.
        """
        if not self.active:
            return images, targets
        rng = np.random.default_rng([int(self.seed), int(epoch), int(batch)])
        n = len(targets)
        fractions = (rng.uniform(-self.time_shift, self.time_shift, size=n)
                     if self.time_shift > 0 else None)
        if isinstance(images, dict):
            out = {kind: self._one(images[kind], rng, fractions) for kind in sorted(images)}
            out = {kind: out[kind] for kind in images}
        else:
            out = self._one(images, rng, fractions)
        if self.mixup > 0:
            out, targets = mixup(out, targets, rng, alpha=float(self.mixup), num_classes=num_classes)
        return out, targets
