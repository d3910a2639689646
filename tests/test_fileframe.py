"""featx.bundle.fileframe: a file's windows pooled into one row (mean, vote, max) with its
confidence, ``uncertain`` and distance percentile; through a real trained bundle and
``featx predict``."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from featx.bundle.fileframe import per_file
from featx.data.labels import LabelEncoding
from featx.errors import ConfigError


def _medley():
    """Ten windows of one file: six say classical, four say rock (a two-part medley)."""
    p = np.array([[0.8, 0.1, 0.1]] * 6 + [[0.15, 0.05, 0.8]] * 4)
    frame = pd.DataFrame(p, columns=["classical", "jazz", "rock"])
    frame.insert(0, "file", "medley.wav")
    return frame


def test_vote_and_max_find_both_halves_of_a_medley():
    labels = LabelEncoding().fit(["classical", "jazz", "rock"])
    mean = per_file(_medley(), labels)
    assert mean["genre"].tolist() == ["classical"] and "genres" not in mean.columns
    vote = per_file(_medley(), labels, aggregate="vote")
    assert vote["genres"].tolist() == ["classical;rock"]
    assert vote[["classical", "jazz", "rock"]].to_numpy().tolist() == [[0.6, 0.0, 0.4]]
    assert per_file(_medley(), labels, aggregate="vote", min_share=0.5)["genres"].tolist() == ["classical"]
    assert per_file(_medley(), labels, aggregate="max")["genres"].tolist() == ["classical;rock"]


def test_confidence_and_distance_columns():
    labels = LabelEncoding().fit(["classical", "jazz", "rock"])
    frame = _medley()
    frame["distance"] = 1.0
    record = {"temperature": 1.0, "threshold": 0.7, "outside_percentile": 99.0}
    out = per_file(frame, labels, confidence=record, percentile=lambda d: np.full(len(d), 50.0))
    assert out.columns[:5].tolist() == ["file", "genre", "confidence", "uncertain", "distance_pct"]
    assert out["confidence"].iloc[0] == pytest.approx(0.54) and bool(out["uncertain"].iloc[0])
    far = per_file(frame, labels, confidence={**record, "threshold": 0.1}, percentile=lambda d: np.full(len(d), 99.5))
    assert bool(far["uncertain"].iloc[0])  # confident, but outside the training data


def test_bad_aggregate_is_refused():
    labels = LabelEncoding().fit(["classical", "jazz", "rock"])
    with pytest.raises(ConfigError, match="aggregate must be one of"):
        per_file(_medley(), labels, aggregate="median")
    with pytest.raises(ConfigError, match="min_share"):
        per_file(_medley(), labels, aggregate="vote", min_share=0)


@pytest.fixture(scope="module")
def svm_bundle(gtzan_dir, tmp_path_factory):
    """An svm trained (2 folds) on the 30-s Kaggle rows of every track but the shared clips."""
    shared = {p.name for p in (gtzan_dir / "audio").rglob("*.wav")}
    table = pd.read_csv(gtzan_dir / "features_30_sec.csv")
    folder = tmp_path_factory.mktemp("fileframe")
    table[~table["filename"].isin(shared)].to_csv(folder / "train.csv", index=False)
    return folder


@pytest.mark.slow
def test_a_trained_bundle_says_when_it_is_unsure(svm_bundle, gtzan_dir, run_cli, write_wav, tone):
    import featx

    run_cli("train", svm_bundle / "train.csv", "-m", "svm", "--folds", "2", "--loudness", "normalise",
            "-o", svm_bundle / "svm")
    meta = json.loads((svm_bundle / "svm" / "metadata.json").read_text())
    assert meta["confidence"]["precision"] >= 0.9 and meta["files"]["distance"] == "distance.npz"
    write_wav(svm_bundle / "odd" / "tone.wav", tone(440, 30.0))
    noise = np.random.default_rng(0).normal(0, 0.1, 22050 * 30).astype(np.float32)
    write_wav(svm_bundle / "odd" / "noise.wav", noise)
    out = run_cli("predict", svm_bundle / "svm", gtzan_dir / "audio" / "jazz", svm_bundle / "odd",
                  "--format", "json")
    items = {item["file"].rsplit("/", 1)[-1]: item for item in json.loads(out.stdout)}
    for name in ("tone.wav", "noise.wav"):
        assert items[name]["uncertain"] and items[name]["distance_pct"] >= 99.0
    jazz = [v for k, v in items.items() if k.startswith("jazz")]
    assert np.median([v["distance_pct"] for v in jazz]) < 99.0
    # the Python API gives the same frame; 12 dB quieter audio gets the same genre (level normalised)
    import soundfile as sf

    assert json.loads((svm_bundle / "svm" / "preprocessing.json").read_text())["level"] == "normalised"
    bundle = featx.load_bundle(svm_bundle / "svm")
    y, sr = sf.read(gtzan_dir / "audio" / "jazz" / "jazz.00002.wav", dtype="float32")
    loud = bundle.predict_audio(y, sr=sr)
    quiet = bundle.predict_audio(y * 10 ** (-12 / 20), sr=sr)
    assert {"confidence", "uncertain", "distance_pct"} <= set(loud.columns)
    assert quiet["genre"].tolist() == loud["genre"].tolist()
    assert np.allclose(quiet[list(bundle.classes_)].to_numpy(), loud[list(bundle.classes_)].to_numpy(), atol=1e-3)


def test_predict_vote_through_the_command_line(tmp_path, synthetic_feature_csv, run_cli):
    csv = synthetic_feature_csv(tmp_path / "rows.csv", n_tracks=8, n_segments=4, classes=["blues", "rock"],
                                seed=0, separation=4.0, track_spread=0.3, row_spread=0.3)
    run_cli("train", csv, "-m", "svm", "--folds", "2", "-o", tmp_path / "svm")
    # a medley: two segments of a blues track, two of a rock track, under one name
    rows = pd.read_csv(csv).drop(columns="label")
    medley = pd.concat([rows[rows["filename"].str.startswith("blues.00000")].iloc[:2],
                        rows[rows["filename"].str.startswith("rock.00000")].iloc[:2]])
    medley["filename"] = [f"medley.00000.{k}.wav" for k in range(4)]
    medley.to_csv(tmp_path / "medley.csv", index=False)
    items = json.loads(run_cli("predict", tmp_path / "svm", tmp_path / "medley.csv", "--aggregate", "vote",
                               "--format", "json").stdout)
    assert len(items) == 1 and sorted(items[0]["genres"]) == ["blues", "rock"]
    assert items[0]["shares"] == {"blues": 0.5, "rock": 0.5}
    assert {"confidence", "uncertain", "distance_pct"} <= set(items[0])
    text = run_cli("predict", tmp_path / "svm", tmp_path / "medley.csv", "--aggregate", "vote").stdout
    assert "shares of segments" in text.splitlines()[0]
    bad = run_cli("predict", tmp_path / "svm", tmp_path / "medley.csv", "--aggregate", "vote", "--min-share", "2",
                  ok=False)
    assert "--min-share must be a number in (0, 1]" in bad.output
