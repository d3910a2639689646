"""Audio input: finding, decoding, resampling, downmixing and segmenting.

Everything that can go wrong with an audio file is raised here as
:class:`featx.errors.AudioError`, with a message that says what is wrong with it.
"""
from __future__ import annotations

import codecs
import math
import numbers
import os
import stat
import warnings
from pathlib import Path

import numpy as np

from ..errors import AudioError, AudioTooLongError, ConfigError
from ..features.dsp import resample
from ..features.settings import SR_RANGE

#: File extensions treated as audio when searching folders (lower case).
AUDIO_EXTENSIONS = (".wav", ".au", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".m4a", ".opus")

#: Lowest native sample rate accepted, in Hz. A file declaring less (a crafted or
#: damaged header) would be resampled by a factor of thousands.
MIN_NATIVE_SR = 1000
#: Highest native sample rate accepted, in Hz (well above 768 kHz, the highest PCM
#: rate in use): a file declaring more has a damaged header.
MAX_NATIVE_SR = 1_536_000
#: Largest absolute sample value accepted after decoding. Decoded integer audio lies
#: in [-1, 1]; float files may exceed full scale, but not by orders of magnitude:
#: beyond this the spectra overflow and every feature would come out as 0.
MAX_AMPLITUDE = 1e6
#: Most samples a file may hold, per channel, as decoded and after resampling
#: (2**27: about 101 minutes at 22050 Hz, 512 MiB as float32).
MAX_SAMPLES = 2**27


def find_audio(inputs) -> list[Path]:
    """Audio files named by ``inputs``: files as given, folders searched recursively.

    Folder contents are sorted so that the order, and so the output, is reproducible.
    A file named explicitly is taken whatever its extension.

    Raises
    ------
    ConfigError
        If an input does not exist, or no audio file is found at all.
    """
    files: list[Path] = []
    seen: set[Path] = set()
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*")
                if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()
            )
        elif path.exists():
            found = [path]
        else:
            raise ConfigError(f"input not found: {str(path)!r}; expected an audio file or a folder")
        for p in found:
            key = p.resolve()
            if key not in seen:
                seen.add(key)
                files.append(p)
    if not files:
        names = ", ".join(repr(str(i)) for i in inputs) or "(none)"
        raise ConfigError(
            f"no audio files found in {names}; expected files with one of the extensions "
            + " ".join(AUDIO_EXTENSIONS)
        )
    return files


#: What each kind of file that is not a regular one is called in messages.
_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"))


def file_kind(path) -> str | None:
    """What ``path`` is when it is not a regular file, in words; ``None`` for a regular
    file (through any symbolic links) or a missing path.

    Examples
    --------
    >>> file_kind("/dev/zero")
    'a character device'
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.islink(path):
            return f"a symbolic link to a missing file ({os.readlink(path)})"
        return None
    except OSError:  # unreadable: the caller says so
        return None
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def load(path, *, sr: int, max_seconds: float | None = None) -> np.ndarray:
    """Decode ``path`` to a mono float32 waveform at ``sr`` Hz.

    Multi-channel audio is downmixed by averaging the channels; other rates are
    resampled (librosa's default high-quality resampler, soxr's HQ, called as
    ``librosa.load`` calls it: :func:`featx.features.dsp.resample`).
    Sizes are checked before they are allocated: the header's rate and length
    where the decoder reports them, before decoding, and again after decoding.

    Parameters
    ----------
    path : str or os.PathLike
    sr : int
        The rate to resample to, in Hz.
    max_seconds : float > 0, optional
        Refuse audio longer than this (checked as the sample cap is: from the header,
        before decoding, where the format gives its length; else after decoding).

    Returns
    -------
    y : np.ndarray [shape=(n,), dtype=float32]

    Raises
    ------
    ConfigError
        ``sr`` is outside :data:`featx.features.settings.SR_RANGE`.
    AudioTooLongError
        More than :data:`MAX_SAMPLES` samples as decoded or after resampling, or
        longer than ``max_seconds``.
    AudioError
        The path is not a regular file (a FIFO, a device, a socket, a folder, a
        link to nothing: named as such), or the file is unreadable, not audio, corrupt, empty,
        declares a sample rate below :data:`MIN_NATIVE_SR` or above :data:`MAX_NATIVE_SR`,
        holds samples that are not finite or beyond :data:`MAX_AMPLITUDE`, or more than
        :data:`MAX_SAMPLES` samples as decoded or after resampling to ``sr``.
    """
    if isinstance(sr, bool) or not isinstance(sr, numbers.Integral) or not SR_RANGE[0] <= sr <= SR_RANGE[1]:
        raise ConfigError(f"sr must be between {SR_RANGE[0]} and {SR_RANGE[1]} Hz. Received: sr={sr!r}")
    path = Path(path)
    kind = file_kind(path)  # before opening it: a FIFO would block, /dev/zero never end
    if kind is not None:
        raise AudioError(f"{path}: is {kind}, not a regular file; expected an audio file")
    if not os.access(path, os.R_OK):
        raise AudioError(f"{path}: cannot be read (missing or no read permission)")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    header = _header(path)
    if header is not None:
        _check_size(path, *header, sr=sr, max_seconds=max_seconds)
    try:
        decoded = _decode_soundfile(path) if header is not None else None
        if decoded is None:
            import librosa  # librosa is heavy: only on this path

            with warnings.catch_warnings():
                # librosa warns before falling back to audioread; the outcome is what counts
                warnings.simplefilter("ignore")
                decoded = librosa.load(path, sr=None, mono=True, dtype=np.float32)
        y, native = decoded
    except Exception as exc:  # decoders raise many unrelated types
        raise AudioError(f"{path}: cannot be decoded as audio: {decode_failure(path, exc)}") from None
    if (int(native) < MIN_NATIVE_SR or y.shape[-1] == 0) and _signature(path) is None:
        # ffmpeg "decodes" some bytes of no known format to 0 channels at 0 Hz: say what the file is
        raise AudioError(f"{path}: cannot be decoded as audio: {decode_failure(path, None)}")
    _check_size(path, int(native), y.shape[-1], sr=sr, max_seconds=max_seconds)
    _check_samples(path, y)
    if native != sr:
        y = resample(y, orig_sr=native, target_sr=sr)  # librosa's soxr_hq resampling, without librosa
        if not np.all(np.isfinite(y)):
            raise AudioError(f"{path}: decoded samples contain NaN or infinity")
    if y.size == 0:
        raise AudioError(f"{path}: decodes to no samples")
    return y


#: Container signatures: (format name, extensions, test on the first 12 bytes).
_SIGNATURES = (
    ("WAV", (".wav",), lambda b: b[:4] in (b"RIFF", b"RIFX", b"RF64") and b[8:12] == b"WAVE"),
    ("FLAC", (".flac",), lambda b: b[:4] == b"fLaC"),
    ("Ogg", (".ogg", ".opus"), lambda b: b[:4] == b"OggS"),
    ("MP3", (".mp3",), lambda b: b[:3] == b"ID3" or (len(b) > 1 and b[0] == 0xFF and b[1] & 0xE0 == 0xE0)),
    ("AIFF", (".aiff", ".aif"), lambda b: b[:4] == b"FORM" and b[8:12] in (b"AIFF", b"AIFC")),
    ("AU", (".au",), lambda b: b[:4] == b".snd"),
    ("M4A", (".m4a",), lambda b: b[4:8] == b"ftyp"),
)
#: What each format's header starts with, for messages.
_EXPECTED_HEADER = {"WAV": "RIFF/WAVE", "FLAC": "fLaC", "Ogg": "OggS", "MP3": "ID3 or an MPEG frame",
                    "AIFF": "FORM/AIFF", "AU": ".snd", "M4A": "an MP4 'ftyp' box"}


def _signature(path: Path) -> str | None:
    """The container format whose signature the file's first bytes carry, or ``None``."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError:
        return None
    return next((name for name, _, test in _SIGNATURES if test(head)), None)


def decode_failure(path, exc: BaseException | None) -> str:
    """Say what is wrong with a file the decoders refused, from its first bytes.

    Decoders report a header they do not recognise with errors such as
    ``NoBackendError`` that name no cause; the file's own signature tells more:
    "not a WAV file: no RIFF header (starts with text)", "corrupt FLAC file: ..."
    or "unknown format (...)".
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError as err:
        return f"cannot be read ({err.strerror or type(err).__name__})"
    detail = str(exc).strip().splitlines()[0] if exc is not None and str(exc).strip() else ""
    found = next((name for name, _, test in _SIGNATURES if test(head[:12])), None)
    if found is not None:
        return f"corrupt {found} file: its header is readable but decoding failed" + (
            f" ({detail[:200]})" if detail else "")
    try:
        # an incremental decoder tolerates a character cut off at the end of the bytes read
        decoded = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        decoded = None
    if decoded is not None and all(c.isprintable() or c in "\t\r\n" for c in decoded):
        starts = "starts with text"
    else:
        starts = f"starts with bytes {head[:4].hex(' ')}"
    claimed = next((name for name, exts, _ in _SIGNATURES if path.suffix.lower() in exts), None)
    if claimed is not None:
        what = "RIFF" if claimed == "WAV" else _EXPECTED_HEADER[claimed]
        return f"not a {claimed} file: no {what} header ({starts})"
    return (f"unknown format ({starts}); expected WAV, FLAC, Ogg, MP3, AIFF, "
            "AU or M4A audio")


def _decode_soundfile(path: Path) -> tuple[np.ndarray, int] | None:
    """``librosa.load(path, sr=None, mono=True, dtype=float32)`` for files soundfile reads.

    The same decoder librosa tries first and the same downmix (the mean of the
    channels), without importing librosa, whose import costs more than a second per
    process. ``None`` where soundfile cannot open the file (librosa then decodes it).
    """
    import soundfile  # libsndfile: only when audio is read or written

    try:
        sound = soundfile.SoundFile(str(path))
    except Exception:  # not a soundfile format
        return None
    with sound:
        native = sound.samplerate
        y = sound.read(frames=-1, dtype="float32", always_2d=False).T
    if y.ndim > 1:
        y = np.mean(y, axis=tuple(range(y.ndim - 1)))
    return y, native


def _header(path: Path) -> tuple[int, int] | None:
    """``(sample rate, frames)`` from the header, or ``None`` where soundfile cannot tell."""
    import soundfile  # libsndfile: only when audio is read or written

    try:
        info = soundfile.info(str(path))
    except Exception:  # not a soundfile format: the decoder's own error comes later
        return None
    if info.frames <= 0:  # unknown length (some streams)
        return None
    return int(info.samplerate), int(info.frames)


def _check_size(path: Path, native: int, frames: int, *, sr: int, max_seconds: float | None = None) -> None:
    """Refuse a file whose rate is absurd, whose samples exceed :data:`MAX_SAMPLES`, or that
    lasts longer than ``max_seconds``."""
    if native < MIN_NATIVE_SR:
        raise AudioError(
            f"{path}: sample rate {native} Hz is below the {MIN_NATIVE_SR} Hz featx accepts "
            f"(resampling it to {sr} Hz would multiply its length by {sr / max(native, 1):,.0f}); "
            "the header is damaged or the file is not audio"
        )
    if native > MAX_NATIVE_SR:
        raise AudioError(
            f"{path}: sample rate {native:,} Hz is above the {MAX_NATIVE_SR:,} Hz featx accepts; "
            "the header is damaged or the file is not audio"
        )
    resampled = math.ceil(frames * sr / native)
    if max(frames, resampled) > MAX_SAMPLES:
        raise AudioTooLongError(
            f"{path}: {frames / native / 60:,.1f} min long ({frames:,} samples at {native} Hz, "
            f"{resampled:,} at {sr} Hz); featx analyses at most {MAX_SAMPLES:,} samples per file "
            f"({MAX_SAMPLES / sr / 60:,.0f} min at {sr} Hz): cut it into shorter files"
        )
    if max_seconds is not None and frames / native > max_seconds:
        raise AudioTooLongError(
            f"{path}: {frames / native:,.1f} s long; at most {max_seconds:g} s may be analysed here: "
            "cut it into shorter files"
        )


def _check_samples(path: Path, y: np.ndarray) -> None:
    """Refuse decoded samples that are not finite or beyond :data:`MAX_AMPLITUDE`."""
    peak = float(np.max(np.abs(y))) if y.size else 0.0  # NaN if any sample is NaN
    if not math.isfinite(peak):
        raise AudioError(f"{path}: decoded samples contain NaN or infinity")
    if peak > MAX_AMPLITUDE:
        raise AudioError(
            f"{path}: peak sample amplitude {peak:.3g}; expected at most {MAX_AMPLITUDE:g} "
            "(full scale is 1): the samples are damaged or not audio"
        )


def segment(y: np.ndarray, *, hop: int | None, length: int | None = None) -> np.ndarray:
    """Cut ``y`` into segments starting every ``hop`` samples, ``length`` samples each.

    ``length`` defaults to ``hop - 1``, the rule of the Kaggle GTZAN 3-second table:
    each 3-s window keeps all but its last sample, and a window counts only while its
    end lies strictly inside the signal (so a trailing partial window is dropped,
    and a clip of exactly ten windows yields nine segments).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
    hop : int > 1 or None
        ``None`` gives the whole signal as a single segment.

    Returns
    -------
    segments : np.ndarray [shape=(n_segments, length)]
        A strided view into ``y``; ``n_segments`` may be 0.
    """
    if hop is None:
        return y[np.newaxis, :]
    length = hop - 1 if length is None else length
    n_segments = max(0, (len(y) - 1) // hop)
    if n_segments == 0:
        return np.empty((0, length), dtype=y.dtype)
    return np.lib.stride_tricks.as_strided(
        y, shape=(n_segments, length), strides=(hop * y.strides[0], y.strides[0]), writeable=False
    )
