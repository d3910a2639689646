"""featx.features.gain: the gain law of the Kaggle columns, checked against real extractions,
and the loudness normalisation of table models built on it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from featx.errors import ConfigError
from featx.extract.audio import load
from featx.extract.file import samples_features
from featx.features.gain import apply_gain, follows_gain_law, gain_law, level_db, normalise_level
from featx.features.settings import FeatureSettings
from featx.models.preprocessing import Preprocessing

CLIPS = ("jazz/jazz.00001.wav", "metal/metal.00000.wav", "classical/classical.00002.wav")


@pytest.fixture(scope="module", params=["gtzan", "default"])
def extractions(gtzan_dir, request):
    """Rows of 10 s of three real clips, extracted at -12, 0 and +6 dB (the gtzan preset, and the
    default preset with its spectral contrast columns)."""
    settings = FeatureSettings(preset=request.param, segment_seconds=None)
    columns = settings.feature_columns()
    out = {}
    for clip in CLIPS:
        y = load(gtzan_dir / "audio" / clip, sr=settings.sr)[: 10 * settings.sr]
        for db in (-12.0, 0.0, 6.0):
            scaled = (y * 10 ** (db / 20)).astype(np.float32)
            out[clip, db] = samples_features(scaled, settings)[columns].to_numpy(np.float64)
    return columns, out


@pytest.mark.parametrize("db", [-12.0, 6.0])
def test_law_matches_real_extractions(extractions, db):
    columns, rows = extractions
    powers, offsets = gain_law(columns)
    assert powers.sum() == 9 and np.count_nonzero(offsets) == 1  # rms, harmony, perceptr; mfcc1
    for clip in CLIPS:
        predicted = apply_gain(rows[clip, 0.0], columns, db)
        measured = rows[clip, db]
        relative = np.abs(predicted - measured) / np.maximum(np.abs(measured), 1e-9)
        assert relative.max() < 1e-3, (clip, columns[int(relative.argmax()) % len(columns)])
        # the law is not trivially true: the level columns did move
        moved = np.abs(measured - rows[clip, 0.0]) / np.maximum(np.abs(measured), 1e-9)
        assert moved[0, columns.index("rms_var")] > 0.5


def test_normalise_level_removes_the_gain(extractions):
    columns, rows = extractions
    for clip in CLIPS:
        levels = [normalise_level(rows[clip, db], columns) for db in (-12.0, 0.0, 6.0)]
        for other in levels[1:]:
            assert np.allclose(other, levels[0], rtol=1e-3, atol=1e-6)
        assert level_db(levels[0], columns)[0] == pytest.approx(-20.0)


def test_silence_and_missing_level_column():
    columns = ["rms_mean", "rms_var", "tempo"]
    silent = np.array([[0.0, 0.0, 0.0]])
    assert normalise_level(silent, columns).tolist() == silent.tolist()
    assert follows_gain_law(columns) and not follows_gain_law(["emb_0", "tag_rock"])
    with pytest.raises(ConfigError, match="rms_mean"):
        Preprocessing(["emb_0", "emb_1"], None, level="normalised")
    with pytest.raises(ConfigError, match="level must be one of"):
        Preprocessing(columns, None, level="loud")


def test_normalised_preprocessing_round_trip(extractions):
    from featx.data.labels import LabelEncoding

    columns, rows = extractions
    labels = LabelEncoding().fit(["jazz", "metal", "classical"])
    X = np.vstack([rows[c, 0.0] for c in CLIPS])
    prep = Preprocessing(columns, labels, [c for c in columns if c.endswith("_var")], level="normalised").fit(X)
    back = Preprocessing.from_dict(prep.to_dict())
    assert back.level == "normalised"
    quiet = np.vstack([rows[c, -12.0] for c in CLIPS])
    assert np.allclose(back.transform(quiet), prep.transform(X), atol=1e-3)
    # a record written before the level existed keeps the level as a feature
    old = prep.to_dict()
    del old["level"]
    assert Preprocessing.from_dict(old).level == "as-recorded"


def test_a_model_trained_to_normalise_gives_the_same_genre_at_any_level(tmp_path):
    """The shipped Kaggle 30-s table: an svm trained with loudness='normalise' predicts rows
    12 dB quieter and 6 dB louder exactly as the originals; the default keeps the level."""
    import pandas as pd

    import featx

    frame = pd.read_csv(Path(__file__).resolve().parents[1] / "features_csv" / "features_30_sec.csv")
    labels = frame.pop("label").to_numpy()
    columns = [c for c in frame.columns if c not in ("filename", "length")]
    level = featx.GenreClassifier(model="svm", loudness="normalise").fit(frame, labels)
    kept = featx.GenreClassifier(model="svm").fit(frame, labels)
    assert level.bundle_.model.preprocessing.level == "normalised"
    assert kept.bundle_.model.preprocessing.level == "as-recorded"
    original = level.predict(frame)
    changed = {}
    for db in (-12.0, 6.0):
        moved = frame.copy()
        moved[columns] = apply_gain(frame[columns].to_numpy(), columns, db)
        assert (level.predict(moved) == original).all()
        changed[db] = float((kept.predict(moved) != kept.predict(frame)).mean())
    assert changed[6.0] > 0.05  # the level the default keeps does move predictions
