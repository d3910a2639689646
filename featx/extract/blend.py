"""Two-genre test clips made from single-genre ones: medleys and mixes.

Nobody labels songs with two genres at hand; :func:`blend_corpus` makes them from
a labelled corpus of single-genre clips, for testing multi-genre output:

* a **medley** plays the first half of a clip of genre A, then the second half of a
  clip of genre B, joined by a short equal-power crossfade (:func:`medley`);
* a **mix** plays A and B at once, each scaled to the same loudness (RMS) (:func:`mix`).

Each blend is labelled ``A;B`` (the genre heard first, or of the first clip, first)
and only clips of different genres are paired. The blends are written as 16-bit
WAV files with a ``labels.csv`` (``file,label,kind,first,second``) that
``featx extract DIR --labels DIR/labels.csv`` reads.

Lengths
-------
Both clips of a pair are first cut to the shorter one's length ``n`` (their
beginnings are kept), so every blend is ``n`` samples long. A medley takes
samples ``[0, n//2)`` from A and ``[n//2, n)`` from B, the crossfade centred on
``n//2``. Clips are resampled to one rate: ``sr``, or the first clip's own rate.

Levels
------
The equal-power crossfade keeps the loudness steady, but the sum of two
correlated signals can exceed full scale; any blend whose peak would pass
:data:`PEAK` is scaled down as a whole (the balance of its parts is kept), so a
16-bit file never clips.
"""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import AudioError, ConfigError, DataError
from ..io.atomic import atomic_open, atomic_write
from ..io.guard import check_output_apart, claim_folder, safe_name
from ..runtime.progress import progress_bar
from .audio import decode_failure, file_kind, load
from .corpus import find_corpus, searched_folders
from .labels import resolve_labels

__all__ = ["BLEND_KINDS", "Blend", "BlendResult", "blend_corpus", "equal_power_fade", "medley", "mix",
           "plan_pairs"]

logger = logging.getLogger(__name__)

#: What :func:`blend_corpus` can make.
BLEND_KINDS = ("medley", "mix")
#: The largest absolute sample value written (a little under 16-bit full scale).
PEAK = 0.99
#: The folder format of a blend output (see :mod:`featx.io.guard`).
FORMAT = "featx-blend"
#: Name of the labels file in the output folder.
LABELS_FILE = "labels.csv"
#: Separator of the genres in a label (as :data:`featx.data.labels.SEPARATOR`).
SEPARATOR = ";"


# --------------------------------------------------------------------------- arrays


def _rms(y: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) if y.size else 0.0


def _limit(y: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    return y * (PEAK / peak) if peak > PEAK else y


def equal_power_fade(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gains of an equal-power crossfade over ``n`` samples: ``(fade_out, fade_in)``.

    ``fade_out = cos(pi/2 * t)`` and ``fade_in = sin(pi/2 * t)`` with ``t`` going from 0
    to 1 across the fade (sample centres), so ``fade_out**2 + fade_in**2 == 1``: two
    uncorrelated signals keep their combined power through the fade.
    """
    t = (np.arange(int(n)) + 0.5) / max(int(n), 1)
    return np.cos(0.5 * np.pi * t), np.sin(0.5 * np.pi * t)


def medley(a, b, *, sr: int, crossfade: float = 0.5) -> np.ndarray:
    """The first half of ``a``, then the second half of ``b``, joined by a crossfade.

    Parameters
    ----------
    a, b : np.ndarray [shape=(n,)]
        Mono waveforms at the same rate.
    sr : int > 0
        Their sample rate.
    crossfade : float >= 0
        Seconds of the equal-power crossfade, centred on the middle (0: a hard cut).

    Returns
    -------
    y : np.ndarray [shape=(min(len(a), len(b)),), dtype=float32]
        Up to the fade exactly ``a``, after it exactly ``b``, scaled down as a whole only
        if its peak would pass :data:`PEAK`.

    Raises
    ------
    ConfigError
        A negative or non-finite ``crossfade``.
    AudioError
        The shorter clip is shorter than the crossfade.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    fade = _fade_samples(crossfade, sr)
    n = min(len(a), len(b))
    if n < max(fade, 2):
        raise AudioError(f"a clip of {n} samples is too short for a medley with a {fade}-sample "
                         f"crossfade. Received: crossfade={crossfade}")
    start = n // 2 - fade // 2
    gain_a = np.zeros(n)
    gain_a[:start] = 1.0
    gain_b = 1.0 - gain_a
    if fade:
        out_gain, in_gain = equal_power_fade(fade)
        gain_a[start:start + fade] = out_gain
        gain_b[start:start + fade] = in_gain
        gain_b[start + fade:] = 1.0
    return _limit(gain_a * a[:n] + gain_b * b[:n]).astype(np.float32)


def mix(a, b) -> np.ndarray:
    """``a`` and ``b`` summed at equal loudness.

    Each clip (cut to the shorter one's length) is scaled to the mean of the two RMS
    levels, so both parts have the same RMS; the sum is scaled down as a whole if its
    peak would pass :data:`PEAK`.

    Returns
    -------
    y : np.ndarray [shape=(min(len(a), len(b)),), dtype=float32]

    Raises
    ------
    AudioError
        A clip is silent (no loudness to match).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    ra, rb = _rms(a), _rms(b)
    if ra == 0.0 or rb == 0.0:
        raise AudioError("a silent clip cannot be mixed at equal loudness; expected audible clips")
    target = 0.5 * (ra + rb)
    return _limit(a * (target / ra) + b * (target / rb)).astype(np.float32)


def _fade_samples(crossfade, sr) -> int:
    try:
        seconds = float(crossfade)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not np.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"crossfade must be a number of seconds >= 0. Received: crossfade={crossfade!r}",
                          param="crossfade")
    return round(seconds * int(sr))


# --------------------------------------------------------------------------- pairs


@dataclass(frozen=True)
class Blend:
    """One planned blend: ``kind`` of clip ``first`` (genre A) and clip ``second`` (genre B)."""

    kind: str
    first: int
    second: int


def plan_pairs(genres, n_pairs: int, *, kinds=BLEND_KINDS, seed: int = 0) -> list[Blend]:
    """Choose ``n_pairs`` pairs of clips of different genres for each kind.

    Ordered genre pairs take turns (shuffled once per round), so every combination of
    genres is used about equally often; within one genre pair the clip pairs are drawn
    without repeats. Fewer blends come back when the corpus has fewer distinct pairs.

    Parameters
    ----------
    genres : sequence of str
        The genre of each clip.
    n_pairs : int > 0
        Blends of each kind.
    kinds : sequence of {'medley', 'mix'}
    seed : int >= 0

    Returns
    -------
    list of Blend
        Indices into ``genres``.
    """
    genres = [str(g) for g in genres]
    names = sorted(set(genres))
    by_genre = {g: [i for i, x in enumerate(genres) if x == g] for g in names}
    rng = np.random.default_rng(_check_seed(seed))
    plan: list[Blend] = []
    for kind in kinds:
        combos = [(g, h) for g in names for h in names if g != h]
        draws = {c: iter(rng.permutation(len(by_genre[c[0]]) * len(by_genre[c[1]])).tolist())
                 for c in combos}
        made = 0
        while made < n_pairs and combos:
            for c in [combos[i] for i in rng.permutation(len(combos))]:
                if made == n_pairs:
                    break
                k = next(draws[c], None)
                if k is None:
                    combos.remove(c)
                    continue
                first, second = by_genre[c[0]], by_genre[c[1]]
                plan.append(Blend(kind, first[k // len(second)], second[k % len(second)]))
                made += 1
        if made < n_pairs:
            logger.warning("only %d distinct %s pairs of different genres exist; made %d of %d",
                           made, kind, made, n_pairs)
    return plan


# --------------------------------------------------------------------------- corpus


@dataclass(frozen=True)
class BlendResult:
    """What :func:`blend_corpus` wrote."""

    output_dir: Path
    labels: Path
    n_blends: int
    sr: int
    genres: tuple[str, ...]


def _check_seed(seed) -> int:
    """``seed`` if it is an integer >= 0 (what NumPy's generators accept); else one ConfigError line."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0. Received: seed={seed!r}", param="seed")
    return int(seed)


def _check_kinds(kinds) -> tuple[str, ...]:
    if isinstance(kinds, str):
        kinds = BLEND_KINDS if kinds == "both" else (kinds,)
    kinds = tuple(kinds)
    if not kinds or any(k not in BLEND_KINDS for k in kinds):
        raise ConfigError(f"kind must be one of {', '.join(BLEND_KINDS)} or both. Received: kind={kinds!r}",
                          param="kind")
    return kinds


def _native_rate(path: Path) -> int:
    import soundfile as sf  # libsndfile: only when audio is read or written


    kind = file_kind(path)  # before opening it: a FIFO would block
    if kind is not None:
        raise AudioError(f"{path}: is {kind}, not a regular file; expected an audio file")
    try:
        return int(sf.info(str(path)).samplerate)
    except Exception:  # formats soundfile cannot read: ask librosa's decoders
        import librosa  # librosa is heavy: only on this path

        try:
            return int(librosa.get_samplerate(str(path)))
        except Exception as exc:
            raise AudioError(f"{path}: {decode_failure(path, exc)}") from None


def _wav_bytes(y: np.ndarray, sr: int) -> bytes:
    import soundfile as sf  # libsndfile: only when audio is read or written

    buffer = io.BytesIO()
    sf.write(buffer, y, sr, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


def blend_corpus(inputs, output_dir, *, kind="both", n_pairs: int = 50, crossfade: float = 0.5,
                 seed: int = 0, sr: int | None = None, labels: str = "folder",
                 progress=None) -> BlendResult:
    """Write medleys and/or mixes of clips of different genres, with a labels CSV.

    Parameters
    ----------
    inputs : iterable of path
        Audio files and folders (see :func:`featx.extract.corpus.find_corpus`).
    output_dir : path
        A new or empty folder, or one an earlier blend run wrote (its blends are then
        replaced). It may not be, lie inside or hold an input, however it is reached.
    kind : {'medley', 'mix', 'both'}
    n_pairs : int > 0
        Blends of each kind.
    crossfade : float >= 0
        Seconds of a medley's crossfade.
    seed : int >= 0
        Chooses the pairs.
    sr : int, optional
        Rate of the blends; default: the first clip's own rate.
    labels : str
        ``'folder'`` (each file's folder name is its genre) or a labels CSV path, as
        for ``featx extract --labels``.
    progress : bool or None
        As for :func:`featx.runtime.progress.progress_bar`.

    Returns
    -------
    BlendResult

    Raises
    ------
    ConfigError
        Bad settings.
    DataError
        Fewer than two genres, or a label that already names several genres.
    AudioError
        A clip cannot be decoded, is silent (for a mix) or is too short.
    OutputError
        The output folder is not one featx may write (see :mod:`featx.io.guard`), or it
        is, lies inside or holds an input (:func:`featx.io.guard.check_output_apart`).
    """
    import pandas as pd  # pandas: kept off featx extract's path


    kinds = _check_kinds(kind)
    if isinstance(n_pairs, bool) or not isinstance(n_pairs, int) or n_pairs <= 0:
        raise ConfigError(f"pairs must be a positive integer. Received: pairs={n_pairs!r}", param="pairs")
    if labels == "none":
        raise ConfigError("blending needs each clip's genre; expected labels='folder' or a labels CSV. "
                          "Received: labels='none'", param="labels")
    seed = _check_seed(seed)
    inputs = [Path(p) for p in inputs]
    output_dir = Path(output_dir)
    # not the input folders, nor inside or around them, however reached: a later run would
    # blend the blends, and clearing an earlier output could remove inputs
    named = [*inputs, *([Path(labels)] if labels != "folder" else [])]
    check_output_apart(output_dir, named, searched=searched_folders(inputs))
    files = find_corpus(inputs)
    genres = resolve_labels(files, labels, unlabelled_ok=False)
    for f, genre in zip(files, genres):
        if SEPARATOR in genre:
            raise DataError(f"{f.path}: labelled {genre!r}, several genres; expected single-genre clips "
                            "to blend")
    names = sorted(set(genres))
    if len(names) < 2:
        raise DataError(f"all {len(files)} clip(s) are of genre {names[0]!r}; blending needs clips of at "
                        "least two genres")
    if sr is None:
        sr = _native_rate(files[0].path)
    fade = _fade_samples(crossfade, sr)  # checked before anything is written
    plan = plan_pairs(genres, n_pairs, kinds=kinds, seed=seed)

    output_dir = claim_folder(output_dir, FORMAT, clear=True)
    cache: dict[int, np.ndarray] = {}

    def clip(i: int) -> np.ndarray:
        if i not in cache:
            cache[i] = load(files[i].path, sr=sr)
        return cache[i]

    stems = [safe_name(Path(f.id).with_suffix("").as_posix().replace("/", "_"), max_length=60)
             for f in files]
    rows = []
    for k, item in enumerate(progress_bar(plan, desc="blend", unit="blend", progress=progress)):
        a, b = clip(item.first), clip(item.second)
        try:
            y = medley(a, b, sr=sr, crossfade=crossfade) if item.kind == "medley" else mix(a, b)
        except AudioError as exc:
            raise AudioError(f"{files[item.first].path} + {files[item.second].path}: {exc}") from None
        name = f"{item.kind}-{k:04d}-{stems[item.first]}+{stems[item.second]}.wav"
        atomic_write(output_dir / name, _wav_bytes(y, sr))
        rows.append({"file": name, "label": f"{genres[item.first]}{SEPARATOR}{genres[item.second]}",
                     "kind": item.kind, "first": files[item.first].id, "second": files[item.second].id})
    labels_path = output_dir / LABELS_FILE
    with atomic_open(labels_path, "w", newline="") as fh:
        pd.DataFrame(rows, columns=["file", "label", "kind", "first", "second"]).to_csv(fh, index=False)
    logger.info("wrote %d blends (%d-sample crossfades) at %d Hz to %s", len(rows), fade, sr, output_dir)
    return BlendResult(output_dir, labels_path, len(rows), int(sr), tuple(names))
