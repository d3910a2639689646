"""Time-frequency images of audio segments: mel, MFCC and chroma from one shared STFT.

The numeric core of the spectrogram models; it does no file I/O. Each image is the
number librosa gives for that segment on its own (within float32 rounding):

* ``mel``: ``librosa.power_to_db(librosa.feature.melspectrogram(y=seg, sr=sr,
  n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, fmax=fmax))``, power in dB
  relative to 1.0, floored 80 dB below the segment's peak;
* ``mfcc``: ``librosa.feature.mfcc(y=seg, sr=sr, n_mfcc=n_mfcc, n_fft=n_fft,
  hop_length=hop_length, n_mels=n_mels)``, whose mel bands span the whole band up
  to ``sr / 2`` (librosa's default, and the MFCC studies');
* ``chroma``: ``librosa.feature.chroma_stft(y=seg, sr=sr, n_fft=n_fft,
  hop_length=hop_length, n_chroma=n_chroma)``, with its tuning estimated per segment;
* ``musicnn``: the input of the pretrained musicnn networks,
  :func:`featx.features.musicnn_input.musicnn_logmel` of the segment resampled to
  16 kHz (96 mel bands, n_fft 512, hop 256, ``log10(10000 S + 1)``), its first 187
  frames (3 s; a shorter segment is zero-padded first). Its own STFT, not the shared one.

Where a straightforward loop calls those three functions on each segment, and so
computes three STFTs per segment, here one STFT per segment serves every kind, each
segment's frames go through one ``rfft`` call, the mel, chroma and DCT matrices are
built once and cached, and the mel filter banks are applied in blocks of a few
neighbouring filters, each block only over the FFT bins its filters cover (a filter
spans a few bins: about a tenth of the dense product's work).

Neither librosa nor SciPy is imported (their imports cost over a second per process,
more than the images of a hundred clips): the window, the mel, chroma and DCT
matrices come from :mod:`featx.features.dsp`, the STFT from ``numpy.fft`` in double
precision as librosa computes it, and the tests check every kind against librosa.

Images have shape ``(n_bins, n_frames)``: row 0 is the lowest band (or C for chroma,
or the first coefficient), column 0 the first frame. They can be resized to a fixed
``(height, width)`` and scaled per image; see :class:`SpectrogramSettings`.
"""
from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from . import dsp
from .compute import _chroma, _power_to_db
from .musicnn_input import MIN_SAMPLES, N_FRAMES, SR, musicnn_logmel, to_musicnn_rate
from .settings import FeatureSettings

__all__ = [
    "DEFAULT_KINDS",
    "KINDS",
    "MUSICNN_SHAPE",
    "NORMALISATIONS",
    "SpectrogramSettings",
    "power_spectrogram",
    "resize_images",
    "segment_spectrograms",
]

#: The image kinds, in the order featx stores and lists them.
KINDS = ("mel", "mfcc", "chroma", "musicnn")
#: The kinds made when none are named: the three from the shared STFT.
DEFAULT_KINDS = ("mel", "mfcc", "chroma")
#: Height and width of every ``musicnn`` image: mel bands x frames of a 3-s patch.
MUSICNN_SHAPE = (96, 187)
#: Per-image scaling applied after any resize (see :class:`SpectrogramSettings`).
NORMALISATIONS = ("none", "per-image")
#: Decibel floor below each segment's peak, as ``librosa.power_to_db``'s default.
TOP_DB = 80.0


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ConfigError(f"spectrogram setting {name} must be a positive integer. Received: {name}={value!r}")
    return int(value)


def _parse_kinds(kinds) -> tuple[str, ...]:
    if isinstance(kinds, str):
        kinds = [k for k in re.split(r"[,\s]+", kinds) if k]
    try:
        given = [str(k).strip().lower() for k in kinds]
    except TypeError:
        given = None
    if not given:
        raise ConfigError(
            f"spectrogram setting kinds needs one or more of {', '.join(KINDS)}. Received: kinds={kinds!r}"
        )
    unknown = [k for k in given if k not in KINDS]
    if unknown:
        raise ConfigError(
            f"spectrogram setting kinds: unknown kind {unknown[0]!r}; expected any of "
            f"{', '.join(KINDS)}. Received: kinds={kinds!r}"
        )
    return tuple(k for k in KINDS if k in given)


def _parse_image_size(value) -> tuple[int, int] | None:
    if value is None:
        return None
    parts = value
    if isinstance(value, str):
        parts = re.split(r"\s*[xX,]\s*", value.strip())
    try:
        h, w = (int(p) for p in parts)
        ok = h > 0 and w > 0 and all(float(p) == int(p) for p in parts)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(
            "spectrogram setting image_size must be HEIGHTxWIDTH in positive pixels, e.g. 128x128. "
            f"Received: image_size={value!r}"
        )
    return h, w


@dataclass(frozen=True)
class SpectrogramSettings:
    """How spectrogram images are made.

    Parameters
    ----------
    kinds : tuple of {'mel', 'mfcc', 'chroma', 'musicnn'}
        Which images to make (any non-empty subset, :data:`DEFAULT_KINDS` by default;
        also accepted as ``"mel,mfcc"``).
        Kept in the canonical order of :data:`KINDS`. ``musicnn`` images are always
        :data:`MUSICNN_SHAPE` and follow their own analysis settings: ``n_fft``,
        ``hop_length``, ``n_mels``, ``fmax``, ``image_size`` and ``normalisation``
        do not apply to them.
    sr : int > 0
        Audio is resampled to this rate before analysis.
    segment_seconds : float > 0 or None
        Segment length, cut with the Kaggle 3-second table's rule (see
        :attr:`segment_samples`); ``None`` makes one image per whole file.
    n_fft, hop_length : int > 0
        STFT frame and hop, in samples (``hop_length <= n_fft``). Frames are centred,
        the signal zero-padded at both ends (librosa's default).
    n_mels : int > 0
        Mel bands of the ``mel`` image and of the mel spectrum the MFCCs are taken from.
    fmax : float > 0
        Highest frequency of the ``mel`` image's bands, in Hz (at most ``sr / 2``).
        The MFCCs' bands always reach ``sr / 2``, as ``librosa.feature.mfcc``'s do.
    n_mfcc : int in [1, n_mels]
        MFCCs per frame (20; the MFCC studies used 13, 18 and 26 as well).
    n_chroma : int > 0
        Chroma bins per octave.
    image_size : (height, width) or None
        Resize every image to this size (``"128x128"`` is accepted), with linear
        interpolation that averages over the source pixels when shrinking. ``None``
        keeps each kind's own size, ``(n_bins, n_frames)``.
    normalisation : {'none', 'per-image'}
        ``'none'`` keeps the values above (dB, MFCC units, chroma in [0, 1]).
        ``'per-image'`` scales each image to [0, 1] by its own minimum and maximum,
        as a grayscale picture (a constant image becomes all zeros). Standardising
        with statistics of a whole corpus is not a setting here: such statistics
        must be learnt from the training rows only, so the training step fits them.
    """

    kinds: tuple = DEFAULT_KINDS
    sr: int = 22050
    segment_seconds: float | None = 3.0
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    fmax: float = 8000.0
    n_mfcc: int = 20
    n_chroma: int = 12
    image_size: tuple | None = None
    normalisation: str = "none"

    def __post_init__(self):
        put = functools.partial(object.__setattr__, self)
        put("kinds", _parse_kinds(self.kinds))
        for name in ("sr", "n_fft", "hop_length", "n_mels", "n_mfcc", "n_chroma"):
            put(name, _positive_int(name, getattr(self, name)))
        if self.hop_length > self.n_fft:
            raise ConfigError(
                "spectrogram setting hop_length must not exceed n_fft. "
                f"Received: hop_length={self.hop_length}, n_fft={self.n_fft}"
            )
        if self.n_mfcc > self.n_mels:
            raise ConfigError(
                "spectrogram setting n_mfcc must not exceed n_mels. "
                f"Received: n_mfcc={self.n_mfcc}, n_mels={self.n_mels}"
            )
        try:
            fmax = float(self.fmax)
        except (TypeError, ValueError):
            fmax = float("nan")
        if not 0 < fmax <= self.sr / 2:
            raise ConfigError(
                f"spectrogram setting fmax must be in (0, sr/2 = {self.sr / 2:g}] Hz. Received: fmax={self.fmax!r}"
            )
        put("fmax", fmax)
        if self.segment_seconds is not None:
            try:
                seconds = float(self.segment_seconds)
            except (TypeError, ValueError):
                seconds = float("nan")
            if not 0 < seconds < float("inf"):
                raise ConfigError(
                    "spectrogram setting segment_seconds must be a positive number of seconds or None. "
                    f"Received: segment_seconds={self.segment_seconds!r}"
                )
            put("segment_seconds", seconds)
        _ = self.segment_hop  # the feature tables' rules for rates and segments apply here too
        put("image_size", _parse_image_size(self.image_size))
        if self.normalisation not in NORMALISATIONS:
            raise ConfigError(
                f"spectrogram setting normalisation must be one of {', '.join(NORMALISATIONS)}. "
                f"Received: normalisation={self.normalisation!r}"
            )

    def _segmenting(self) -> FeatureSettings:
        """The feature tables' settings for the same rate, segments and STFT: one segmenting rule."""
        # preset 'gtzan': the segmenting rule is the same, and no contrast bands to fit
        return FeatureSettings(preset="gtzan", sr=self.sr, segment_seconds=self.segment_seconds,
                               n_fft=self.n_fft, hop_length=self.hop_length)

    @property
    def segment_hop(self) -> int | None:
        """Samples from one segment's start to the next, or ``None`` for whole files."""
        return self._segmenting().segment_hop

    @property
    def segment_samples(self) -> int | None:
        """Samples per segment (one less than :attr:`segment_hop`, the Kaggle rule), or ``None``."""
        return self._segmenting().segment_samples

    def n_frames(self, n_samples: int) -> int:
        """STFT frames of a signal of ``n_samples`` samples (centred frames)."""
        return 1 + int(n_samples) // self.hop_length

    def n_bins(self, kind: str) -> int:
        """Rows of a ``kind`` image before any resize."""
        return {"mel": self.n_mels, "mfcc": self.n_mfcc, "chroma": self.n_chroma,
                "musicnn": MUSICNN_SHAPE[0]}[kind]

    def image_shape(self, kind: str, n_samples: int | None = None) -> tuple[int, int]:
        """``(height, width)`` of the ``kind`` images of a segment of ``n_samples`` samples.

        ``n_samples`` defaults to :attr:`segment_samples`; it is needed (and only then)
        for whole files without an ``image_size``.
        """
        if kind not in KINDS:
            raise ConfigError(f"unknown spectrogram kind {kind!r}; expected one of {', '.join(KINDS)}")
        if kind == "musicnn":
            return MUSICNN_SHAPE
        if self.image_size is not None:
            return self.image_size
        n = self.segment_samples if n_samples is None else n_samples
        if n is None:
            raise ConfigError("whole-file images have no fixed width; set image_size to fix one")
        return self.n_bins(kind), self.n_frames(n)

    def to_dict(self) -> dict:
        """Plain-data form (JSON-safe)."""
        data = dataclasses.asdict(self)
        data["kinds"] = list(self.kinds)
        data["image_size"] = None if self.image_size is None else list(self.image_size)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> SpectrogramSettings:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown spectrogram setting(s) {', '.join(unknown)}; expected some of {', '.join(sorted(known))}"
            )
        return cls(**data)


def power_spectrogram(y: np.ndarray, *, n_fft: int = 2048, hop_length: int = 512) -> np.ndarray:
    """Power spectrogram ``|STFT|**2`` of each segment.

    The same frames as ``librosa.stft(y, n_fft=n_fft, hop_length=hop_length)``: Hann
    window, centred, zero padding, each windowed frame transformed in double
    precision (as librosa does) and the power rounded to float32. Each segment's
    frames go through one ``rfft`` call, so that its double-precision frames stay in
    cache.

    Parameters
    ----------
    y : np.ndarray [shape=(n_segments, n)]
        Equal-length mono waveforms.

    Returns
    -------
    power : np.ndarray [shape=(n_segments, 1 + n_fft // 2, n_frames), dtype=float32]
    """
    y = np.ascontiguousarray(np.atleast_2d(y), dtype=np.float32)
    half = n_fft // 2
    padded = np.pad(y, ((0, 0), (half, half)))
    n_frames = 1 + (padded.shape[-1] - n_fft) // hop_length
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=-1)[:, ::hop_length][:, :n_frames]
    window = dsp.hann(n_fft)
    power = np.empty((y.shape[0], half + 1, n_frames), dtype=np.float32)
    # work buffers reused for every block of frames: no allocation per block
    chunk = max(1, min(n_frames, dsp.FRAME_CHUNK))
    windowed = np.empty((chunk, n_fft))
    spectrum = np.empty((chunk, half + 1), dtype=np.complex128)
    squares = np.empty((chunk, 2 * (half + 1)))
    for i in range(y.shape[0]):
        for t0 in range(0, n_frames, chunk):
            m = min(chunk, n_frames - t0)
            np.multiply(frames[i, t0:t0 + m], window, out=windowed[:m])
            np.fft.rfft(windowed[:m], axis=-1, out=spectrum[:m])
            np.square(spectrum[:m].view(np.float64), out=squares[:m])
            part = squares[:m, 0::2]
            part += squares[:m, 1::2]  # re**2 + im**2
            power[i, :, t0:t0 + m] = part.T
    return power


def segment_spectrograms(y: np.ndarray, *, settings: SpectrogramSettings) -> dict[str, np.ndarray]:
    """Every image kind of ``settings`` for a batch of segments.

    Parameters
    ----------
    y : np.ndarray [shape=(n_segments, n)]
        Mono waveforms at ``settings.sr``, all of the same length (a 1-D array is
        one segment).
    settings : SpectrogramSettings

    Returns
    -------
    images : dict
        ``kind -> np.ndarray [shape=(n_segments, height, width), dtype=float32]`` for
        each kind in ``settings.kinds``; finite everywhere, silence included.
    """
    s = settings
    y = np.atleast_2d(np.asarray(y))
    if y.ndim != 2 or y.shape[-1] == 0:
        raise ConfigError(f"segments must be a (n_segments, n_samples) array. Received: shape={y.shape}")
    out: dict[str, np.ndarray] = {}
    if "musicnn" in s.kinds:
        out["musicnn"] = np.stack([_musicnn_image(seg, s.sr) for seg in y])
    if set(s.kinds) == {"musicnn"}:
        return out
    power = power_spectrogram(y, n_fft=s.n_fft, hop_length=s.hop_length)
    if "mel" in s.kinds:
        mel = _mel_power(power, _mel_blocks(s.sr, s.n_fft, s.n_mels, s.fmax))
        out["mel"] = _power_to_db(mel, top_db=TOP_DB)
    if "mfcc" in s.kinds:
        mel_db = _power_to_db(_mel_power(power, _mel_blocks(s.sr, s.n_fft, s.n_mels, None)), top_db=TOP_DB)
        out["mfcc"] = np.matmul(_dct_matrix(s.n_mels, s.n_mfcc), mel_db)
    if "chroma" in s.kinds:
        out["chroma"] = _chroma(power, sr=s.sr, n_fft=s.n_fft, n_chroma=s.n_chroma)
    for kind, images in out.items():
        if kind == "musicnn":
            continue
        images = np.nan_to_num(images.astype(np.float32, copy=False), nan=0.0, posinf=0.0, neginf=0.0)
        if s.image_size is not None:
            images = resize_images(images, s.image_size)
        if s.normalisation == "per-image":
            images = _minmax(images)
        out[kind] = np.ascontiguousarray(images, dtype=np.float32)
    return out


def _musicnn_image(segment: np.ndarray, sr: int) -> np.ndarray:
    """The ``musicnn`` image of one segment: ``(96, 187)``, mel bands x frames."""
    y = to_musicnn_rate(segment, sr=sr)
    if len(y) < MIN_SAMPLES:
        y = np.pad(y, (0, MIN_SAMPLES - len(y)))
    logmel = musicnn_logmel(y, sr=SR)[:N_FRAMES]
    return np.ascontiguousarray(logmel.T, dtype=np.float32)


def resize_images(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a batch of images to ``size`` by separable linear interpolation.

    Pixel centres are aligned as in image libraries (half-pixel offsets); when an
    axis shrinks, the interpolation kernel widens with it, so each output pixel
    averages the input pixels it covers instead of skipping some.

    Parameters
    ----------
    images : np.ndarray [shape=(..., h, w)]
    size : (height, width)

    Returns
    -------
    resized : np.ndarray [shape=(..., height, width), dtype=float32]
    """
    height, width = size
    h, w = images.shape[-2:]
    out = np.asarray(images, dtype=np.float32)
    if (h, w) == (height, width):
        return out
    if h != height:
        out = np.matmul(_resize_matrix(h, height), out)
    if w != width:
        out = np.matmul(out, _resize_matrix(w, width).T)
    return out


@functools.lru_cache(maxsize=32)
def _resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` weights of a triangle kernel (bilinear with area averaging)."""
    scale = n_in / n_out
    support = max(scale, 1.0)
    centres = (np.arange(n_out) + 0.5) * scale - 0.5
    weights = np.maximum(0.0, 1.0 - np.abs(np.arange(n_in)[None, :] - centres[:, None]) / support)
    empty = weights.sum(axis=1) == 0  # cannot happen for support >= 1; kept for safety
    weights[empty, np.clip(np.round(centres[empty]).astype(int), 0, n_in - 1)] = 1.0
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


def _minmax(images: np.ndarray) -> np.ndarray:
    lo = images.min(axis=(-2, -1), keepdims=True)
    span = images.max(axis=(-2, -1), keepdims=True) - lo
    flat = span <= 0
    span[flat] = 1.0
    return (images - lo) / span


#: Neighbouring mel filters applied together (see :func:`_mel_blocks`).
MEL_BLOCK = 4


def _mel_power(power: np.ndarray, blocks) -> np.ndarray:
    """The mel filter bank ``blocks`` (from :func:`_mel_blocks`) applied to every segment.

    Each block of :data:`MEL_BLOCK` neighbouring filters multiplies only the FFT bins
    its filters cover: the product skips the zeros of the bank (about nine tenths of
    its weights), in float32 as the dense product.
    """
    n_mels = blocks[-1][1]
    out = np.empty((power.shape[0], n_mels, power.shape[-1]), dtype=np.float32)
    for first, stop, lo, hi, weights in blocks:
        np.matmul(weights, power[:, lo:hi, :], out=out[:, first:stop, :])
    return out


@functools.lru_cache(maxsize=16)
def _mel_blocks(sr: int, n_fft: int, n_mels: int, fmax: float | None) -> tuple:
    """librosa's mel filter bank (Slaney scale and area normalisation) in blocks of filters.

    Returns ``((first filter, stop, first bin, stop bin, weights), ...)``, each block's
    weights a contiguous ``(stop - first, stop bin - first bin)`` float32 array.
    """
    bank = dsp.mel_basis(sr, n_fft, n_mels, fmax)
    nonzero = bank != 0
    any_bin = nonzero.any(axis=1)
    lo = np.where(any_bin, nonzero.argmax(axis=1), 0)
    hi = np.where(any_bin, bank.shape[1] - nonzero[:, ::-1].argmax(axis=1), 1)
    blocks = []
    for first in range(0, n_mels, MEL_BLOCK):
        stop = min(first + MEL_BLOCK, n_mels)
        a, b = int(lo[first:stop].min()), int(hi[first:stop].max())
        blocks.append((first, stop, a, b, np.ascontiguousarray(bank[first:stop, a:b])))
    return tuple(blocks)


@functools.lru_cache(maxsize=16)
def _dct_matrix(n_mels: int, n_mfcc: int) -> np.ndarray:
    """The first ``n_mfcc`` rows of the orthonormal DCT-II over ``n_mels`` bands, float32."""
    return dsp.dct_matrix(n_mfcc, n_mels).astype(np.float32)
