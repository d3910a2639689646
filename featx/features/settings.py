"""Extraction settings: presets, column names, and their plain-data form.

A :class:`FeatureSettings` fully describes how a feature table was made. It is
stored beside every CSV featx writes and inside every trained bundle, so that
prediction on new audio uses exactly the settings of the training data.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

from ..errors import ConfigError
from .musicnn_input import MIN_SAMPLES, tag_names
from .musicnn_input import SR as MUSICNN_SR

#: Summary statistics of the Kaggle GTZAN tables, in column order.
_KAGGLE_FRAME_FEATURES = (
    "chroma_stft",
    "rms",
    "spectral_centroid",
    "spectral_bandwidth",
    "rolloff",
    "zero_crossing_rate",
    "harmony",
    "perceptr",
)

PRESETS = ("default", "gtzan", "musicnn-msd", "musicnn-mtt")
#: Presets whose columns are a pretrained musicnn network's outputs, and that network.
MUSICNN_PRESETS = {"musicnn-msd": "MSD_musicnn", "musicnn-mtt": "MTT_musicnn"}
#: Width of the musicnn networks' penultimate layer (the ``emb_*`` columns).
MUSICNN_EMBEDDING_SIZE = 200

#: Accepted analysis sample rates, in Hz (inclusive). Below the lower bound the
#: mel, chroma and tempo analyses have no bands to work with; above the upper bound
#: resampling sizes grow past what any audio format in use delivers.
SR_RANGE = (1000, 384000)
#: Accepted ranges of the STFT and band settings (inclusive).
N_FFT_RANGE = (64, 65536)
N_MFCC_RANGE = (1, 128)  # at most the number of mel bands the MFCCs are taken from
N_BANDS_RANGE = (1, 12)
#: Longest segment, in seconds (an hour).
MAX_SEGMENT_SECONDS = 3600
#: Lowest edge of the first spectral-contrast band, in Hz (librosa's default).
CONTRAST_FMIN = 200.0

#: Columns that describe a row rather than measure the audio.
ID_COLUMNS = ("filename", "length")
LABEL_COLUMN = "label"


def kaggle_feature_columns(n_mfcc: int = 20) -> list[str]:
    """Feature columns of the Kaggle GTZAN tables (without filename/length/label)."""
    cols = []
    for name in _KAGGLE_FRAME_FEATURES:
        cols += [f"{name}_mean", f"{name}_var"]
    cols.append("tempo")
    for i in range(1, n_mfcc + 1):
        cols += [f"mfcc{i}_mean", f"mfcc{i}_var"]
    return cols


def contrast_columns(n_bands: int = 6) -> list[str]:
    """Spectral-contrast columns: ``n_bands + 1`` bands (the last is the top band)."""
    cols = []
    for i in range(1, n_bands + 2):
        cols += [f"spectral_contrast{i}_mean", f"spectral_contrast{i}_var"]
    return cols


def musicnn_columns(model: str) -> list[str]:
    """Columns of a musicnn preset: ``emb_0..emb_199``, then ``tag_<tag>`` per tag.

    The tag names are read from the installed musicnn package (spaces become
    underscores), so a missing package is a one-line
    :class:`~featx.extract.musicnn.MusicnnUnavailableError` with the install command.
    """
    return list(_musicnn_columns(model))


@functools.lru_cache(maxsize=None)
def _musicnn_columns(model: str) -> tuple[str, ...]:
    tags = [f"tag_{t.replace(' ', '_')}" for t in tag_names(model)]
    return tuple([f"emb_{i}" for i in range(MUSICNN_EMBEDDING_SIZE)] + tags)


@dataclass(frozen=True)
class FeatureSettings:
    """How features are computed.

    Parameters
    ----------
    preset : {'default', 'gtzan', 'musicnn-msd', 'musicnn-mtt'}
        ``'gtzan'`` writes exactly the Kaggle GTZAN columns; ``'default'`` adds
        spectral contrast per band after them. The Kaggle columns are computed the
        same way under both presets. ``'musicnn-msd'`` and ``'musicnn-mtt'`` write
        the outputs of the pretrained musicnn network trained on the Million Song
        Dataset or on MagnaTagATune instead: its penultimate layer (``emb_0`` ..
        ``emb_199``) and its 50 tag probabilities (``tag_<tag>``), each averaged over
        the 3-s patches of the row's segment (``n_fft``, ``hop_length``, ``n_mfcc``
        and ``n_bands`` are then unused; the network reads its own 16 kHz mel
        spectrogram).
    sr : int in [1000, 384000]
        Audio is resampled to this rate before analysis. Preset ``'default'`` also
        needs ``sr > 200 * 2**n_bands`` (the spectral-contrast bands must fit below
        the Nyquist frequency).
    segment_seconds : float in (0, 3600] or None
        Length of each analysed segment, at least ``n_fft`` samples; ``None`` means
        one row per whole file.
    n_fft : int in [64, 65536]
    hop_length : int in [1, n_fft]
        STFT frame and hop, in samples.
    n_mfcc : int in [1, 128]
        Number of MFCCs.
    n_bands : int in [1, 12]
        Number of spectral-contrast bands (``n_bands + 1`` columns pairs).

    Examples
    --------
    >>> settings = FeatureSettings(preset="gtzan", segment_seconds=None)
    >>> len(settings.feature_columns()), settings.feature_columns()[:2]
    (57, ['chroma_stft_mean', 'chroma_stft_var'])
    >>> FeatureSettings().segment_samples  # 3 s at 22050 Hz, less one sample, as in the Kaggle table
    66149
    """

    preset: str = "default"
    sr: int = 22050
    segment_seconds: float | None = 3.0
    n_fft: int = 2048
    hop_length: int = 512
    n_mfcc: int = 20
    n_bands: int = 6

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ConfigError(
                f"unknown preset {self.preset!r}; expected one of {', '.join(PRESETS)}"
            )
        for name in ("sr", "n_fft", "hop_length", "n_mfcc", "n_bands"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer. Received: {name}={value!r}")
        for name, (low, high) in (("sr", SR_RANGE), ("n_fft", N_FFT_RANGE),
                                  ("hop_length", (1, self.n_fft)), ("n_mfcc", N_MFCC_RANGE),
                                  ("n_bands", N_BANDS_RANGE)):
            value = getattr(self, name)
            if not low <= value <= high:
                raise ConfigError(
                    f"{name} must be between {low} and {high}. Received: {name}={value!r}"
                )
        if self.preset == "default" and CONTRAST_FMIN * 2 ** self.n_bands >= self.sr:
            top = CONTRAST_FMIN * 2 ** (self.n_bands - 1)
            raise ConfigError(
                f"preset 'default' measures spectral contrast in bands up to {top:g} Hz, which "
                f"needs a sample rate above {2 * top:g} Hz; use a higher sr or preset 'gtzan'. "
                f"Received: sr={self.sr}"
            )
        if self.preset in MUSICNN_PRESETS and self.segment_seconds is not None:
            try:
                short = float(self.segment_seconds) < MIN_SAMPLES / MUSICNN_SR
            except (TypeError, ValueError):
                short = False  # reported below
            if short:
                raise ConfigError(
                    f"preset {self.preset!r} averages the network's 3-s patches over each segment; "
                    f"expected segments of at least {MIN_SAMPLES / MUSICNN_SR:.3f} s (one patch). "
                    f"Received: segment_seconds={self.segment_seconds!r}"
                )
        if self.segment_seconds is not None:
            try:
                seconds = float(self.segment_seconds)
            except (TypeError, ValueError):
                seconds = float("nan")
            if not 0 < seconds <= MAX_SEGMENT_SECONDS:
                raise ConfigError(
                    f"segment length must be a positive number of seconds, at most {MAX_SEGMENT_SECONDS}. "
                    f"Received: segment_seconds={self.segment_seconds!r}"
                )
            object.__setattr__(self, "segment_seconds", seconds)
            if self.segment_samples < self.n_fft:
                raise ConfigError(
                    f"a {seconds:g} s segment is {self.segment_samples} sample(s) at {self.sr} Hz; "
                    f"expected at least one STFT frame (n_fft={self.n_fft} samples, "
                    f"{self.n_fft / self.sr:.3g} s). Received: segment_seconds={self.segment_seconds!r}"
                )

    @property
    def segment_hop(self) -> int | None:
        """Samples from one segment's start to the next (``segment_seconds * sr``)."""
        if self.segment_seconds is None:
            return None
        return max(2, int(round(self.segment_seconds * self.sr)))

    @property
    def segment_samples(self) -> int | None:
        """Samples per segment, or ``None`` for whole files.

        One less than :attr:`segment_hop`: the Kaggle 3-second table cut each clip
        into 3-s windows and kept 66149 of the 66150 samples of each (its ``length``
        column). featx applies the same rule to every segment length and rate.
        """
        hop = self.segment_hop
        return None if hop is None else hop - 1

    def feature_columns(self) -> list[str]:
        """Names of the numeric feature columns, in output order."""
        if self.preset in MUSICNN_PRESETS:
            return musicnn_columns(MUSICNN_PRESETS[self.preset])
        cols = kaggle_feature_columns(self.n_mfcc)
        if self.preset == "default":
            cols += contrast_columns(self.n_bands)
        return cols

    def columns(self, *, labelled: bool = True) -> list[str]:
        """All output columns: filename, length, features, and label if ``labelled``."""
        cols = list(ID_COLUMNS) + self.feature_columns()
        if labelled:
            cols.append(LABEL_COLUMN)
        return cols

    def to_dict(self) -> dict:
        """Plain-data form (JSON-safe)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FeatureSettings":
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown extraction setting(s) {', '.join(unknown)}; "
                f"expected some of {', '.join(sorted(known))}"
            )
        return cls(**data)
