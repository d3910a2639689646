"""Bounded sizes: crafted audio, absurd options and hyperparameters, huge grids, many
classes, and a worker process that dies while reading a file."""
from __future__ import annotations

import json
import os
import signal
import time
import wave

import numpy as np
import pandas as pd
import pytest

from featx.errors import AudioError, ConfigError


def _write_stdlib_wav(path, *, rate: int, frames: int):
    """A 16-bit mono WAV with any declared rate, written with the stdlib ``wave`` module."""
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = (np.sin(np.arange(frames) * 0.3) * 8000).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


def _one_line_error(result, *needles):
    """The CLI failed with exactly one line of text that holds every needle."""
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    for needle in needles:
        assert needle in lines[0], result.output
    return lines[0]


@pytest.fixture
def feature_csv(tmp_path, synthetic_feature_csv):
    return synthetic_feature_csv(tmp_path / "small.csv", n_tracks=6, n_segments=1,
                                 classes=("blues", "jazz", "rock"), seed=0, separation=1.5,
                                 track_spread=0.4, row_spread=0.4)


# ---------------------------------------------------------------------------
# Audio whose derived sizes would explode


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_wav_declaring_4_hz_is_skipped_by_name_and_the_rest_is_written(corpus, tmp_path, run_cli, jobs):
    bad = _write_stdlib_wav(corpus / "tones" / "tiny_rate.wav", rate=4, frames=40)
    out = tmp_path / "out" / "features.csv"
    started = time.perf_counter()
    result = run_cli("extract", corpus, "-o", out, "-j", jobs, ok=False)
    assert time.perf_counter() - started < 120
    assert result.exit_code == 1, result.output
    assert "tiny_rate.wav" in result.output and "sample rate 4 Hz" in result.output
    table = pd.read_csv(out)
    assert len(table) == 8  # the four good clips, two 3-s segments each
    assert not table["filename"].str.startswith("tiny_rate").any()
    errors = pd.read_csv(out.parent / "features.errors.csv")
    assert len(errors) == 1 and "tiny_rate.wav" in str(errors.iloc[0, 0])
    assert bad.exists()


def test_load_refuses_a_low_rate_before_decoding(tmp_path):
    from featx.extract.audio import load

    path = _write_stdlib_wav(tmp_path / "one_hz.wav", rate=1, frames=10)
    with pytest.raises(AudioError, match=r"one_hz\.wav: sample rate 1 Hz is below the 1000 Hz"):
        load(path, sr=22050)


def test_load_refuses_a_file_longer_than_the_sample_bound_after_resampling(tmp_path):
    from featx.extract.audio import MAX_SAMPLES, load

    # 6 minutes at 1000 Hz: small on disk, but more than MAX_SAMPLES at 384 kHz
    path = _write_stdlib_wav(tmp_path / "long.wav", rate=1000, frames=360_000)
    assert 360_000 * 384_000 // 1000 > MAX_SAMPLES
    started = time.perf_counter()
    with pytest.raises(AudioError, match=r"long\.wav: 6\.0 min long .* at most 134,217,728 samples"):
        load(path, sr=384_000)
    assert time.perf_counter() - started < 5  # refused from the header, nothing resampled
    assert load(path, sr=22050).shape == (7_938_000,)  # the same file at a sane rate is fine


@pytest.mark.parametrize("args, needles", [
    (["--sr", "100000000"], ["--sr 100000000", "between 1000 and 384000"]),
    (["--sr", "8"], ["--sr 8", "between 1000 and 384000"]),
    (["--sr", "8000"], ["--sr 8000", "preset 'gtzan'"]),
    (["--segment-seconds", "1e-9"], ["--segment-seconds 1e-09", "n_fft=2048"]),
    (["--segment-seconds", "0.05"], ["--segment-seconds 0.05", "1101 sample(s) at 22050 Hz"]),
])
def test_absurd_extraction_options_are_one_line_errors(corpus, tmp_path, run_cli, args, needles):
    out = tmp_path / "out.csv"
    started = time.perf_counter()
    result = run_cli("extract", corpus, "-o", out, "-j", "1", *args, ok=False)
    assert time.perf_counter() - started < 10
    _one_line_error(result, *needles)
    assert not out.exists()


def test_the_extraction_bounds_are_inclusive():
    from featx.features.settings import FeatureSettings

    assert FeatureSettings(preset="gtzan", sr=1000).sr == 1000
    assert FeatureSettings(sr=384000).sr == 384000
    assert FeatureSettings(sr=16000).sr == 16000  # the default preset's bands fit below 8 kHz
    assert FeatureSettings(segment_seconds=2049 / 22050).segment_samples == 2048
    for bad in ({"n_fft": 10**7}, {"hop_length": 4096}, {"n_mfcc": 500}, {"n_bands": 40}):
        with pytest.raises(ConfigError, match=f"{next(iter(bad))} must be between"):
            FeatureSettings(segment_seconds=None, **bad)


# ---------------------------------------------------------------------------
# Hyperparameters


@pytest.mark.parametrize("model, args, needle", [
    ("svm", ["-p", "C=1e309"], "C='1e309'"),
    ("svm", ["-p", "C=nan"], "C='nan'"),
    ("svm", ["-p", "C=-1"], "C='-1'"),
    ("svm", ["-p", "gamma=inf"], "gamma='inf'"),
    ("mlp", ["--depth", "100000"], "--depth 100000"),
    ("mlp", ["--units", "0,8"], "--units 0,8"),
    ("mlp", ["--dropout", "1.0"], "--dropout 1.0"),
    ("random-forest", ["-p", "n_estimators=1e12"], "n_estimators='1e12'"),
])
def test_train_refuses_non_finite_and_absurd_hyperparameters_in_one_line(
        tmp_path, feature_csv, run_cli, model, args, needle):
    out = tmp_path / "bundle"
    started = time.perf_counter()
    result = run_cli("train", feature_csv, "-m", model, "-o", out, *args, ok=False)
    assert time.perf_counter() - started < 20
    line = _one_line_error(result, needle, "expected")
    assert "bad value" in line
    assert not out.exists()


def test_sweep_refuses_the_same_values(tmp_path, feature_csv, run_cli):
    for values, needle in (("1,1e309", "1e309"), ("nan", "nan"), ("0", "0")):
        result = run_cli("sweep", feature_csv, "-m", "svm", "-o", tmp_path / "s", "-p", f"C={values}",
                         ok=False)
        _one_line_error(result, "bad value for C", needle)
    result = run_cli("sweep", feature_csv, "-m", "svm", "-o", tmp_path / "s", "-p",
                     "C=loguniform(1e-3, 1e300)", "--search", "random", ok=False)
    _one_line_error(result, "reaches outside what C accepts")
    assert not (tmp_path / "s").exists()


def test_loading_parameters_shares_the_bounds():
    """Bundles are loaded through ModelSpec.resolve, as train and sweep resolve theirs."""
    from featx.models.registry import get_model

    for params in ({"C": 1e308}, {"C": float("inf")}, {"C": float("nan")}, {"units": [64] * 100},
                   {"depth": 10**5}, {"n_neighbors": 0}):
        model = "mlp" if "units" in params or "depth" in params else ("knn" if "n_neighbors" in params else "svm")
        with pytest.raises(ConfigError, match="bad value for"):
            get_model(model).resolve(params)
    assert get_model("svm").resolve({"C": "1e6", "gamma": "0.01"}) == {"C": 1e6, "gamma": "0.01", "kernel": "rbf"}
    assert get_model("mlp").resolve({"depth": 4})["units"] == (512, 256, 128, 64)


# ---------------------------------------------------------------------------
# Grids


def test_a_grid_over_the_limit_is_refused_quickly(tmp_path, feature_csv, run_cli):
    values = ",".join(str(v) for v in range(1, 101))
    started = time.perf_counter()
    result = run_cli("sweep", feature_csv, "-m", "random-forest", "-o", tmp_path / "s",
                     "-p", f"n_estimators={values}", "-p", f"max_depth={values}",
                     "-p", f"min_samples_leaf={values}", ok=False)
    assert time.perf_counter() - started < 10
    _one_line_error(result, "1,000,000 combinations", "--max-trials 1000000", "--max-trials 10000")
    assert not (tmp_path / "s").exists()


def test_max_trials_lets_a_bigger_grid_be_planned(tmp_path, feature_csv):
    from featx.sweep.plan import SweepOptions, plan_sweep
    from featx.sweep.space import space_from_options
    from featx.models.registry import get_model

    space = space_from_options(get_model("knn"), ["n_neighbors=1,2,3", "weights=uniform,distance"])
    assert space.size("grid") == 6
    options = SweepOptions(csv=feature_csv, model="knn", output=tmp_path / "s", max_trials=5)
    with pytest.raises(ConfigError, match="6 combinations, more than the limit of 5"):
        plan_sweep(options, space)
    options.max_trials = 6
    assert len(plan_sweep(options, space).trials) == 6
    sampled = SweepOptions(csv=feature_csv, model="knn", output=tmp_path / "r", search="random",
                           n_iter=50, max_trials=5)
    # sampling a 6-point grid 50 times gives its 6 combinations once each
    with pytest.raises(ConfigError, match="random search has 6 combinations"):
        plan_sweep(sampled, space)
    sampled.max_trials = 6
    assert len(plan_sweep(sampled, space).trials) == 6


def test_results_csv_is_rewritten_every_few_seconds_not_after_every_trial(tmp_path, feature_csv):
    from featx.sweep.plan import RESULTS_INTERVAL, SweepOptions, plan_sweep, write_results
    from featx.sweep.space import RESULTS, space_from_options
    from featx.models.registry import get_model

    space = space_from_options(get_model("knn"), ["n_neighbors=1,2"])
    out = tmp_path / "s"
    out.mkdir()
    plan = plan_sweep(SweepOptions(csv=feature_csv, model="knn", output=out), space)
    assert write_results(plan, {}, throttle=True) is not None  # the first write happens
    (out / RESULTS).write_text("marker\n")
    assert write_results(plan, {}, throttle=True) is None  # too soon: skipped
    assert (out / RESULTS).read_text() == "marker\n"
    assert write_results(plan, {}) is not None  # an unthrottled (final) write always happens
    assert (out / RESULTS).read_text().startswith("n_neighbors,")
    last, took = plan.results_written
    plan.results_written = (last - RESULTS_INTERVAL - 10 * took - 1, took)
    assert write_results(plan, {}, throttle=True) is not None  # enough time has passed


# ---------------------------------------------------------------------------
# Figures


def test_a_300_class_confusion_figure_has_a_bounded_size(tmp_path):
    from PIL import Image

    from featx.reporting.figures import MAX_FIGURE_INCHES, write_evaluation_figures

    n = 300
    rng = np.random.default_rng(0)
    classes = [f"genre{i:03d}" for i in range(n)]
    matrix = rng.integers(0, 3, (n, n))
    matrix[np.arange(n), np.arange(n)] += 10
    metrics = {"classes": classes, "model": "knn",
               "track": {"confusion_matrix": matrix.tolist(), "n": int(matrix.sum()),
                         "per_class": {c: {"precision": 0.5, "recall": 0.6, "f1": 0.55} for c in classes}}}
    started = time.perf_counter()
    written = write_evaluation_figures(tmp_path, metrics)
    assert time.perf_counter() - started < 90
    bound = int(MAX_FIGURE_INCHES * 110) + 1
    for path in written:
        width, height = Image.open(path).size
        assert width <= bound and height <= bound, (path, width, height)
    assert Image.open(tmp_path / "confusion_counts.png").size[0] > 1000  # still a readable heat map


# ---------------------------------------------------------------------------
# A worker process that dies


def _dies_on_poison(key: str, marker: str) -> dict:
    """Task for the pool: killed outright (SIGKILL, like the out-of-memory killer) on 'poison'."""
    if os.path.basename(key).startswith("poison"):
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.05)
    return {"key": key, "value": marker + key, "pid": os.getpid()}


def test_a_file_that_kills_its_worker_is_recorded_and_the_others_finish():
    from featx.extract.pool import WORKER_DIED, map_files

    keys = [f"/corpus/good{i}.wav" for i in range(3)] + ["/corpus/poison.wav"]
    keys += [f"/corpus/good{i}.wav" for i in range(3, 7)]
    records = list(map_files(_dies_on_poison, keys, jobs=2, args=("ok:",)))
    by_key = {r["key"]: r for r in records}
    assert sorted(by_key) == sorted(keys) and len(records) == len(keys)
    assert by_key["/corpus/poison.wav"] == {"key": "/corpus/poison.wav", "error": WORKER_DIED}
    for key in keys:
        if key != "/corpus/poison.wav":
            assert by_key[key]["value"] == "ok:" + key
            assert by_key[key]["pid"] != os.getpid()  # computed in a worker process
    assert json.dumps(records)  # journal-ready records


def test_two_deadly_files_side_by_side_are_both_recorded():
    from featx.extract.pool import WORKER_DIED, map_files

    keys = ["/c/poison1.wav", "/c/poison2.wav", "/c/a.wav", "/c/b.wav"]
    records = {r["key"]: r for r in map_files(_dies_on_poison, keys, jobs=2, args=("",))}
    assert records["/c/poison1.wav"]["error"] == WORKER_DIED
    assert records["/c/poison2.wav"]["error"] == WORKER_DIED
    assert records["/c/a.wav"]["value"] == "/c/a.wav" and records["/c/b.wav"]["value"] == "/c/b.wav"


def test_plot_audio_refuses_an_absurd_rate_in_one_line(corpus, tmp_path, run_cli):
    result = run_cli("plot", "audio", corpus / "tones" / "tones.00000.wav", "--sr", "100000000",
                     "-o", tmp_path / "plots", ok=False)
    _one_line_error(result, "--sr 100000000", "between 1000 and 384000")
