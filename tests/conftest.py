"""Shared fixtures: synthetic audio with known properties, a CLI runner, a feature-table
builder, the real GTZAN data, Keras, and the musicnn port (skipped where the musicnn
package is not installed).

Tests receive all of these as fixtures (helpers come as fixtures that return a function);
nothing here is imported by a test module.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import numpy as np
import pytest

SR = 22050
REPO = Path(__file__).resolve().parents[1]


def _shared_data_dir() -> Path:
    """``../shared/data`` beside the repository, or $FEATX_SHARED_DATA."""
    env = os.environ.get("FEATX_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def gtzan_dir() -> Path:
    """The real GTZAN material (``../shared/data/gtzan``).

    The one gate for real data: a test that asks for this fixture is skipped, with the
    path it looked at as the reason, where the data is absent (a user's clone).
    """
    path = _shared_data_dir() / "gtzan"
    if not (path / "features_30_sec.csv").exists():
        pytest.skip(f"real GTZAN data not found at {path} (set FEATX_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def bundles_0_1_0() -> Path:
    """Bundles written by featx 0.1.0, with what it predicted (``tests/data/bundles_0.1.0``)."""
    return REPO / "tests" / "data" / "bundles_0.1.0"


def _tone(freq: float, seconds: float, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _clicks(bpm: float, seconds: float, sr: int = SR) -> np.ndarray:
    """Short decaying noise bursts every 60/bpm seconds."""
    rng = np.random.default_rng(0)
    y = np.zeros(int(round(seconds * sr)), dtype=np.float32)
    burst = (rng.standard_normal(400) * np.exp(-np.arange(400) / 60)).astype(np.float32)
    for onset in np.arange(0, seconds, 60.0 / bpm):
        i = int(onset * sr)
        m = min(len(burst), len(y) - i)
        y[i : i + m] += burst[:m]
    return y


def _write_wav(path: Path, y: np.ndarray, sr: int = SR, subtype: str = "PCM_16") -> Path:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y, sr, subtype=subtype)
    return path


@pytest.fixture
def corpus(tmp_path) -> Path:
    """A tiny labelled corpus in the GTZAN layout: 2 genres x 2 clips of 6.5 s."""
    root = tmp_path / "audio"
    _write_wav(root / "tones" / "tones.00000.wav", _tone(440, 6.5))
    _write_wav(root / "tones" / "tones.00001.wav", _tone(660, 6.5))
    _write_wav(root / "clicks" / "clicks.00000.wav", _clicks(120, 6.5))
    _write_wav(root / "clicks" / "clicks.00001.wav", _clicks(100, 6.5))
    return root


def _synthetic_feature_csv(path: Path, *, n_tracks: int, n_segments: int, classes, seed: int,
                          separation: float, track_spread: float, row_spread: float) -> Path:
    """A small feature table whose classes are separable: four features per row.

    Each track gets a centre near ``class index * separation``; its rows scatter around
    it. Segment rows are named ``<class>.<track>.<segment>.wav`` when ``n_segments > 1``.
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = []
    for ci, cls in enumerate(classes):
        for t in range(n_tracks):
            centre = rng.normal(ci * separation, track_spread, size=4)
            for s in range(n_segments):
                name = f"{cls}.{t:05d}.{s}.wav" if n_segments > 1 else f"{cls}.{t:05d}.wav"
                rows.append([name, 66149, *(centre + rng.normal(0, row_spread, 4)), cls])
    frame = pd.DataFrame(rows, columns=["filename", "length", "f_a_mean", "f_a_var", "tempo", "f_b", "label"])
    frame["f_a_var"] = frame["f_a_var"].abs() + 0.1
    frame.to_csv(path, index=False)
    return path


def _run_cli(*args, ok: bool = True):
    """Run ``featx -q ARGS`` in-process; check success, or a clean error without traceback
    (exit 1: featx's one-line error; 2: click's usage error)."""
    from click.testing import CliRunner

    from featx.cli import main

    result = CliRunner().invoke(main, ["-q", *[str(a) for a in args]])
    if ok:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code in (1, 2), result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        assert "Traceback" not in result.output
    return result


@pytest.fixture(scope="session")
def tone():
    """Return ``tone(freq, seconds, sr=22050, amp=0.5)``: a float32 sine."""
    return _tone


@pytest.fixture(scope="session")
def clicks():
    """Return ``clicks(bpm, seconds, sr=22050)``: decaying noise bursts at a known tempo."""
    return _clicks


@pytest.fixture(scope="session")
def write_wav():
    """Return ``write_wav(path, y, sr=22050, subtype="PCM_16")``: write audio, make parents."""
    return _write_wav


@pytest.fixture(scope="session")
def synthetic_feature_csv():
    """Return the builder of small separable feature tables (see ``_synthetic_feature_csv``)."""
    return _synthetic_feature_csv


@pytest.fixture(scope="session")
def run_cli():
    """Return ``run_cli(*args, ok=True)``: ``featx -q ARGS`` through click's CliRunner."""
    return _run_cli


def _genre_clip(genre: str, k: int, seconds: float = 6.5) -> np.ndarray:
    """Clip ``k`` of a two-genre corpus: ``"tones"`` is a sine of 330 + 110 k Hz, any other
    genre white noise seeded with ``k``; float32 at 22050 Hz."""
    t = np.arange(int(seconds * SR)) / SR
    if genre == "tones":
        return (0.5 * np.sin(2 * np.pi * (330 + 110 * k) * t)).astype(np.float32)
    rng = np.random.default_rng(k)
    return (rng.standard_normal(len(t)) * 0.3).astype(np.float32)


@pytest.fixture(scope="session")
def genre_clip():
    """Return ``genre_clip(genre, k, seconds=6.5)``: tones (a pitch per clip) or noise."""
    return _genre_clip


@pytest.fixture(scope="session")
def keras():
    """The keras module, imported through featx (TensorFlow's log level set first)."""
    from featx.runtime.keras import import_keras

    return import_keras()


MUSICNN_MISSING = "the musicnn package is not installed (pip install --no-deps musicnn==0.1.0)"


@pytest.fixture(scope="session")
def needs_musicnn():
    """Skip, naming the install command, where the musicnn package (the pretrained
    weights) is not installed."""
    import importlib.util

    if importlib.util.find_spec("musicnn") is None:
        pytest.skip(MUSICNN_MISSING)


@pytest.fixture(scope="module")
def mn(needs_musicnn, tmp_path_factory):
    """:mod:`featx.extract.musicnn`, with the weights cache in a temporary folder for the
    test module (``FEATX_CACHE_DIR``, restored afterwards)."""
    from featx.extract import musicnn

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FEATX_CACHE_DIR", str(tmp_path_factory.mktemp("featx-cache")))
        yield musicnn


# ---------------------------------------------------------------------------
# The command line in-process, and the one-line errors it must give


class _StderrOfTheMoment(logging.StreamHandler):
    """A log handler that writes to whatever ``sys.stderr`` is when a record comes."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def _invoke(*args):
    """``featx ARGS`` through click's CliRunner; it may fail, but never with an exception
    other than click's exit.

    featx's log lines reach ``result.stderr`` as they reach a real process's stderr: under
    pytest the root logger already holds pytest's handlers, so the command's
    ``logging.basicConfig`` adds none; a handler on featx's logger stands in for it.
    """
    from click.testing import CliRunner

    from featx.cli import main

    handler = _StderrOfTheMoment()
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    featx_logger = logging.getLogger("featx")
    featx_logger.addHandler(handler)
    try:
        result = CliRunner().invoke(main, [str(a) for a in args])
    finally:
        featx_logger.removeHandler(handler)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def _one_line_error(result, *needles):
    """A featx error: exit 1, one line starting 'Error:', no traceback, naming ``needles``."""
    output = result.output
    assert result.exit_code == 1, output
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, output
    for needle in needles:
        assert str(needle) in errors[0], output
    return errors[0]


def _single_line_error(result, *needles):
    """The CLI failed with exactly one line of text that holds every needle."""
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    for needle in needles:
        assert needle in lines[0], result.output
    return lines[0]


def _stderr_error(result, *needles):
    """The CLI failed, with no traceback, and its stderr names every needle."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr
    return result.stderr


@pytest.fixture(scope="session")
def invoke():
    """Return ``invoke(*args)``: ``featx ARGS`` (no ``-q`` added) through click's CliRunner."""
    return _invoke


@pytest.fixture(scope="session")
def quiet_code_output():
    """Return ``quiet_code_output(*args)``: (exit code, stdout and stderr) of ``featx -q ARGS``
    run through click's CliRunner."""
    def run(*args):
        result = _invoke("-q", *args)
        return result.exit_code, result.output
    return run


@pytest.fixture(scope="session")
def one_line_error():
    """Return ``one_line_error(result, *needles)``: exit 1 and one 'Error:' line naming them."""
    return _one_line_error


@pytest.fixture(scope="session")
def single_line_error():
    """Return ``single_line_error(result, *needles)``: the whole output is one line naming them."""
    return _single_line_error


@pytest.fixture(scope="session")
def stderr_error():
    """Return ``stderr_error(result, *needles)``: a failure whose stderr names them, no traceback."""
    return _stderr_error


# ---------------------------------------------------------------------------
# Real processes


def _default_sigint():
    """Run in the child before exec: Ctrl-C acts as on a terminal even when this test run
    was started with SIGINT ignored (a background job of a non-interactive shell)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="session")
def default_sigint():
    """Return the ``preexec_fn`` that gives a child process the default Ctrl-C handler."""
    return _default_sigint


def _write_stdlib_wav(path, *, rate: int, frames: int):
    """A 16-bit mono WAV with any declared rate, written with the stdlib ``wave`` module."""
    import wave

    path.parent.mkdir(parents=True, exist_ok=True)
    samples = (np.sin(np.arange(frames) * 0.3) * 8000).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


@pytest.fixture(scope="session")
def write_stdlib_wav():
    """Return ``write_stdlib_wav(path, rate=, frames=)``: a WAV declaring any sample rate
    (soundfile refuses the absurd ones)."""
    return _write_stdlib_wav


# ---------------------------------------------------------------------------
# Feature tables and bundles trained on them (tests that share one only read it, or copy it)


@pytest.fixture
def feature_csv(tmp_path):
    """A small three-genre feature table (six tracks per genre) in the test's folder."""
    return _synthetic_feature_csv(tmp_path / "small.csv", n_tracks=6, n_segments=1,
                                  classes=("blues", "jazz", "rock"), seed=0, separation=1.5,
                                  track_spread=0.4, row_spread=0.4)


@pytest.fixture(scope="session")
def trained_knn(tmp_path_factory):
    """A two-genre feature CSV (8 tracks each) and a knn bundle trained on it by the CLI."""
    root = tmp_path_factory.mktemp("trained")
    csv = _synthetic_feature_csv(root / "few.csv", n_tracks=8, n_segments=1, classes=["a", "b"],
                                 seed=1, separation=5.0, track_spread=0.3, row_spread=0.1)
    _run_cli("train", csv, "-m", "knn", "-o", root / "bundle", "--folds", "2")
    return csv, root / "bundle"


@pytest.fixture(scope="session")
def small_table(tmp_path_factory):
    """A blues/rock feature CSV of 8 tracks per genre that overlap a little."""
    root = tmp_path_factory.mktemp("data")
    return _synthetic_feature_csv(root / "train.csv", n_tracks=8, n_segments=1, classes=("blues", "rock"),
                                  seed=0, separation=2.0, track_spread=0.5, row_spread=0.3)


@pytest.fixture(scope="session")
def small_bundles(tmp_path_factory, small_table):
    """Real knn, svm and (tiny) mlp bundles trained by the CLI on ``small_table``."""
    root = tmp_path_factory.mktemp("bundles")
    tiny_mlp = ["--units", "8", "--epochs", "3", "--batch-size", "16", "--patience", "2"]
    out = {}
    for name, extra in (("knn", ["-p", "n_neighbors=3"]), ("svm", []), ("mlp", tiny_mlp)):
        out[name] = root / name
        _run_cli("train", small_table, "--model", name, "--folds", "2", "-o", out[name], *extra)
    return out


@pytest.fixture(scope="module")
def five_genres(tmp_path_factory):
    """A knn bundle over five genres, its training CSV, and a frame of new tracks (one
    per module: ``featx evaluate`` writes into the bundle)."""
    import pandas as pd

    root = tmp_path_factory.mktemp("five")
    genres = ("blues", "jazz", "metal", "pop", "rock")
    csv = _synthetic_feature_csv(root / "train.csv", n_tracks=6, n_segments=1, classes=genres, seed=0,
                                 separation=1.0, track_spread=0.6, row_spread=0.2)
    bundle = root / "knn"
    _run_cli("train", csv, "--model", "knn", "--folds", "2", "-o", bundle)
    fresh = _synthetic_feature_csv(root / "fresh.csv", n_tracks=6, n_segments=1, classes=genres, seed=9,
                                   separation=1.0, track_spread=0.6, row_spread=0.2)
    frame = pd.read_csv(fresh)
    frame["filename"] = "new-" + frame["filename"]
    frame.to_csv(fresh, index=False)
    return bundle, csv, frame


def _reseal(bundle) -> None:
    """Record a bundle's model files' present SHA-256 in its ``metadata.json`` (the files it
    lists that are still there), as a crafted bundle would: its other checks then apply."""
    from featx.io.digest import file_sha256

    path = Path(bundle) / "metadata.json"
    meta = json.loads(path.read_text())
    digests = (meta.get("files") or {}).get("sha256")
    if isinstance(digests, dict):
        meta["files"]["sha256"] = {name: file_sha256(Path(bundle) / name) for name in digests
                                   if (Path(bundle) / name).is_file()}
        path.write_text(json.dumps(meta, indent=2))


@pytest.fixture(scope="session")
def reseal():
    """Return ``reseal(bundle)``: record the model files' present digests in ``metadata.json``,
    so that a test of a tampered file reaches the check it is about."""
    return _reseal
