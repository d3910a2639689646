"""``featx sweep`` over a spectrogram store: the studies' filters x kernel x dropout x rate grid."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from featx.data.store import StoreWriter
from featx.features.spectrograms import SpectrogramSettings

pytestmark = pytest.mark.slow  # every test here trains, reads real data or runs real processes


def write_store(path, *, n_tracks=4, n_segments=3, genres=("rock", "jazz"), seed=0):
    """A store of random 16x24 mel images whose brightness depends on the genre."""
    settings = SpectrogramSettings(kinds="mel", image_size=(16, 24))
    rng = np.random.default_rng(seed)
    with StoreWriter(path, settings) as writer:
        for gi, genre in enumerate(genres):
            for k in range(n_tracks):
                images = rng.normal(gi, 1.0, size=(n_segments, 16, 24)).astype(np.float32)
                writer.append({"mel": images}, key=f"{genre}/{genre}.{k:05d}.wav",
                              filename=f"{genre}.{k:05d}.wav", label=genre, length=66149)
    return path


def test_sweep_a_tiny_cnn2d_grid_on_a_store_and_resume(tmp_path, run_cli):
    store = write_store(tmp_path / "store")
    out = tmp_path / "sweep"
    args = ("sweep", store, "-m", "cnn2d", "-o", out, "-p", "filters=4-4", "-p", "kernel_size=3,5",
            "-p", "dropout=0.25", "-p", "learning_rate=1e-3", "-p", "dense=8", "-p", "epochs=1",
            "-p", "batch_size=4", "--folds", "2")
    first = run_cli(*args)
    assert "2 combinations: 0 reused, 2 run, 0 failed" in first.output
    results = pd.read_csv(out / "results.csv")
    assert list(results["kernel_size"]) == [3, 5] and set(results["status"]) == {"ok"}
    assert results["f1_macro"].between(0, 1).all()
    # the same held-out design as for a feature table: a test part of whole tracks
    settings = json.loads((out / "sweep.json").read_text())
    assert settings["data"]["path"] == str(store) and len(settings["data"]["sha256"]) == 64
    best = json.loads((out / "best" / "metrics.json").read_text())
    assert best["model"] == "cnn2d" and best["track"]["n"] == 2  # 20% of 8 tracks, by genre
    assert (out / "best" / "model.keras").is_file() and (out / "report.md").is_file()
    # a second run reuses the journalled trials
    again = run_cli(*args)
    assert "2 combinations: 2 reused, 0 run, 0 failed" in again.output


def test_sweep_store_identity_follows_its_rows(tmp_path):
    from featx.sweep.plan import data_sha256

    a = data_sha256(write_store(tmp_path / "a"))
    assert a == data_sha256(write_store(tmp_path / "b"))           # same settings and rows
    assert a != data_sha256(write_store(tmp_path / "c", n_tracks=3))  # other rows


def test_sweep_refuses_a_csv_for_an_image_model_and_a_store_for_a_table_model(tmp_path, run_cli,
                                                                              synthetic_feature_csv):
    csv = synthetic_feature_csv(tmp_path / "f.csv", n_tracks=4, n_segments=1, classes=("a", "b"), seed=0,
                                separation=3.0, track_spread=0.3, row_spread=0.3)
    result = run_cli("sweep", csv, "-m", "cnn2d", "-o", tmp_path / "s1", "-p", "kernel_size=3,5", ok=False)
    assert "cnn2d" in result.output and "mel images" in result.output
    assert len(result.output.strip().splitlines()) == 1
    store = write_store(tmp_path / "store", n_tracks=2)
    result = run_cli("sweep", store, "-m", "mlp", "-o", tmp_path / "s2", "-p", "dropout=0.1,0.2", ok=False)
    assert "mlp" in result.output and "spectrogram store" in result.output
