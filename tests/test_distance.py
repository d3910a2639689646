"""featx.models.distance: k-NN distances to the training rows, as percentiles, saved in a bundle."""
from __future__ import annotations

import numpy as np
import pytest

from featx.errors import BundleError
from featx.models.distance import DISTANCE_FILE, TrainingDistance, reference_sample


def _rows(seed=0, n_tracks=40, per_track=3, d=6):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_tracks, d))
    rows = np.repeat(centres, per_track, axis=0) + 0.1 * rng.normal(size=(n_tracks * per_track, d))
    tracks = np.repeat([f"t{i}" for i in range(n_tracks)], per_track)
    return rows, tracks


def test_new_rows_of_the_same_kind_land_evenly_and_far_rows_at_100():
    rows, tracks = _rows()
    reference = TrainingDistance.fit(rows, tracks)
    assert reference.usable and len(reference.reference) == len(rows)
    fresh, _ = _rows(seed=1)
    pct = reference.percentile(reference.distances(fresh))
    assert 25 < np.median(pct) < 75  # new tracks from the same distribution: mid-range
    far = reference.percentile(reference.distances(rows[:5] + 8.0))
    assert (far == 100.0).all()


def test_own_track_is_left_out_of_the_reference():
    rows, tracks = _rows()
    with_own = TrainingDistance.fit(rows, np.arange(len(rows)).astype(str))  # every row its own track
    without = TrainingDistance.fit(rows, tracks)
    # segments of one track lie close together: leaving them out makes the reference distances larger
    assert np.median(without.reference) > 1.3 * np.median(with_own.reference)


def test_save_load_and_corrupt_file(tmp_path):
    rows, tracks = _rows()
    reference = TrainingDistance.fit(rows, tracks)
    assert reference.save(tmp_path) == DISTANCE_FILE
    back = TrainingDistance.load(tmp_path, rows.shape[1])
    assert np.array_equal(back.reference, reference.reference)
    assert TrainingDistance.load(tmp_path / "none", 6) is None
    with pytest.raises(BundleError, match="rows"):
        TrainingDistance.load(tmp_path, rows.shape[1] + 1)
    np.savez(tmp_path / DISTANCE_FILE, rows=rows, reference=reference.reference[::-1].copy())
    with pytest.raises(BundleError, match="reference"):
        TrainingDistance.load(tmp_path, rows.shape[1])
    (tmp_path / DISTANCE_FILE).write_bytes(b"not numpy")
    with pytest.raises(BundleError, match="cannot read"):
        TrainingDistance.load(tmp_path, rows.shape[1])


def test_reference_sample_is_bounded_and_seeded():
    assert reference_sample(10, seed=0).tolist() == list(range(10))
    a, b = reference_sample(1000, seed=3, limit=100), reference_sample(1000, seed=3, limit=100)
    assert len(a) == 100 and np.array_equal(a, b) and (np.diff(a) > 0).all()


def test_a_bundle_reads_only_the_reference_it_lists(tmp_path, synthetic_feature_csv, run_cli):
    import json

    from featx.bundle.files import load_bundle

    csv = synthetic_feature_csv(tmp_path / "rows.csv", n_tracks=6, n_segments=2, classes=["blues", "rock"],
                                seed=0, separation=4.0, track_spread=0.3, row_spread=0.3)
    run_cli("train", csv, "-m", "knn", "--folds", "2", "-o", tmp_path / "knn")
    bundle = tmp_path / "knn"
    assert load_bundle(bundle).model.distance.usable
    (bundle / DISTANCE_FILE).rename(tmp_path / "away.npz")
    with pytest.raises(BundleError, match="files.distance names distance.npz"):
        load_bundle(bundle)
    (tmp_path / "away.npz").rename(bundle / DISTANCE_FILE)
    meta = json.loads((bundle / "metadata.json").read_text())
    del meta["files"]["distance"]  # as an older bundle: the file is not its own and is not read
    (bundle / "metadata.json").write_text(json.dumps(meta))
    assert load_bundle(bundle).model.distance is None
