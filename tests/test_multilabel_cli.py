"""Multi-label training, prediction and evaluation end to end through the command line."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

GENRES = ("blues", "jazz", "rock")
#: The genre sets of the synthetic tracks, cycled: single genres and pairs.
SETS = (("blues",), ("jazz",), ("rock",), ("blues", "rock"), ("jazz", "rock"), ("blues", "jazz"))


def _multilabel_csv(path, *, n_tracks=36, n_segments=2, seed=0):
    """A feature table whose label cells hold one or two genres (``blues;rock``).

    Each genre has its own direction in a 6-feature space; a track's centre is the sum
    of its genres' directions (so a two-genre track lies between them), its rows scatter
    around it.
    """
    rng = np.random.default_rng(seed)
    directions = {g: np.eye(6)[2 * i] * 4 + np.eye(6)[2 * i + 1] * 3 for i, g in enumerate(GENRES)}
    rows = []
    for t in range(n_tracks):
        genres = SETS[t % len(SETS)]
        centre = sum(directions[g] for g in genres) + rng.normal(0, 0.4, 6)
        for s in range(n_segments):
            values = centre + rng.normal(0, 0.3, 6)
            rows.append([f"{genres[0]}.{t:05d}.{s}.wav", 66149, *values, ";".join(genres)])
    columns = ["filename", "length", *[f"f{i}_mean" for i in range(6)], "label"]
    pd.DataFrame(rows, columns=columns).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def ml_csv(tmp_path_factory):
    return _multilabel_csv(tmp_path_factory.mktemp("ml") / "multi.csv")


@pytest.fixture(scope="module")
def knn_bundle(tmp_path_factory, ml_csv, run_cli):
    out = tmp_path_factory.mktemp("knn") / "bundle"
    result = run_cli("train", ml_csv, "-m", "knn", "--multi-label", "--folds", "3", "-o", out)
    assert "F1 micro" in result.output
    return out


def test_knn_multilabel_train_writes_metrics_and_bundle(knn_bundle):
    metrics = json.loads((knn_bundle / "metrics.json").read_text())
    assert metrics["multi_label"] is True
    for level in ("segment", "track"):
        m = metrics[level]
        for name in ("f1_micro", "f1_macro", "subset_accuracy", "hamming_loss",
                     "average_precision_macro", "roc_auc_macro"):
            assert 0.0 <= m[name] <= 1.0, (level, name)
        assert set(m["per_class"]) == set(GENRES)
        assert all(v["support"] > 0 for v in m["per_class"].values())
    # well-separated synthetic genres: a working multi-label model ranks them well
    assert metrics["track"]["average_precision_macro"] > 0.9
    assert metrics["track"]["f1_micro"] > 0.8
    meta = json.loads((knn_bundle / "metadata.json").read_text())
    assert meta["multi_label"] is True and meta["config"]["multi_label"] is True
    assert meta["threshold"] == 0.2 and meta["thresholds"] == {g: 0.2 for g in GENRES}
    predictions = pd.read_csv(knn_bundle / "predictions.csv", keep_default_na=False)
    assert any(";" in p for p in predictions["predicted"])
    report = (knn_bundle / "report.md").read_text()
    assert "subset_accuracy" in report and "confusion" not in report.lower()
    assert (knn_bundle / "figures" / "per_genre.png").is_file()
    assert not (knn_bundle / "figures" / "confusion_counts.png").exists()


def test_predict_writes_genres_column_in_every_format(knn_bundle, ml_csv, tmp_path, run_cli):
    out_csv = tmp_path / "p.csv"
    run_cli("predict", knn_bundle, ml_csv, "-f", "csv", "-o", out_csv)
    frame = pd.read_csv(out_csv, keep_default_na=False)
    assert list(frame.columns[:3]) == ["file", "genre", "genres"]
    assert set(GENRES) <= set(frame.columns)
    for _, row in frame.iterrows():
        chosen = [g for g in row["genres"].split(";") if g]
        above = sorted((g for g in GENRES if row[g] >= 0.2), key=lambda g: -row[g])
        assert chosen == above
    assert any(len(g.split(";")) == 2 for g in frame["genres"])
    items = json.loads(run_cli("predict", knn_bundle, ml_csv, "-f", "json").output)
    assert all(isinstance(item["genres"], list) for item in items)
    assert items[0]["genres"] == [g for g in frame["genres"].iloc[0].split(";") if g]
    table = run_cli("predict", knn_bundle, ml_csv, "-k", "2").output
    assert table.splitlines()[0].split()[:2] == ["file", "genres"]
    run_cli("predict", knn_bundle, ml_csv, "-f", "csv", "-k", "2", "-o", tmp_path / "r.csv")
    ranked = pd.read_csv(tmp_path / "r.csv")
    assert {"genres", "top1", "top2"} <= set(ranked.columns)
    # a stricter threshold for every genre: never more genres per file
    strict = tmp_path / "strict.csv"
    run_cli("predict", knn_bundle, ml_csv, "-f", "csv", "--threshold", "0.9", "-o", strict)
    strict_frame = pd.read_csv(strict, keep_default_na=False)
    assert (strict_frame["genres"].str.count(";") <= frame["genres"].str.count(";")).all()


def test_evaluate_multilabel_bundle(knn_bundle, ml_csv, tmp_path, run_cli):
    other = _multilabel_csv(tmp_path / "other.csv", n_tracks=12, seed=5)
    result = run_cli("evaluate", knn_bundle, other, "-o", tmp_path / "ev")
    assert "F1 micro" in result.output
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["multi_label"] is True and metrics["track"]["n"] == 12
    assert metrics["track"]["f1_micro"] > 0.7


@pytest.mark.slow
def test_mlp_multilabel_two_epochs_tuned_thresholds(ml_csv, tmp_path, run_cli):
    out = tmp_path / "mlp"
    run_cli("train", ml_csv, "-m", "mlp", "--multi-label", "--threshold", "tuned", "--epochs", "2",
            "--folds", "3", "--units", "16", "-o", out)
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["threshold"] == "tuned" and set(meta["thresholds"]) == set(GENRES)
    assert all(0 < t < 1 for t in meta["thresholds"].values())
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["thresholds"]) == {"fold1", "fold2", "fold3", "final"}
    from featx.bundle import load_bundle

    bundle = load_bundle(out)
    assert bundle.model.estimator.layers[-1].activation.__name__ == "sigmoid"
    assert np.allclose(bundle.thresholds, [meta["thresholds"][g] for g in bundle.classes])
    frame = bundle.predict(str(ml_csv))
    assert "genres" in frame.columns


def test_tuned_thresholds_never_read_the_test_rows(ml_csv):
    """Relabelling the test tracks of fold 1 changes its scores but not its thresholds."""
    from featx.data.splits import make_splits
    from featx.data.table import read_feature_csv
    from featx.training.config import TrainConfig
    from featx.training.cv import cross_validate

    table = read_feature_csv(ml_csv)
    config = TrainConfig(model="knn", multi_label=True, threshold="tuned", folds=3)
    plan = make_splits(table, folds=3, seed=0, valid_fraction=0.0)
    first = cross_validate(table, config, plan=plan, progress=False)

    test_rows = plan.folds[0].test
    frame = table.frame.copy()
    # every test row of fold 1 gets another genre set: a tuning that read them would move
    frame.loc[test_rows, "label"] = [
        "blues;jazz;rock" if label != "blues;jazz;rock" else "blues" for label in frame.loc[test_rows, "label"]]
    changed = table.__class__(frame, table.path, table.feature_columns, table.settings, table.segmented,
                              table.settings_source)
    second = cross_validate(changed, config, plan=plan, progress=False)

    t1, t2 = first.metrics["thresholds"], second.metrics["thresholds"]
    assert t1["fold1"] == t2["fold1"]
    f1a = first.metrics["segment"]["per_fold"][0]["f1_micro"]
    f1b = second.metrics["segment"]["per_fold"][0]["f1_micro"]
    assert f1a != f1b  # the relabelled rows were scored: they are fold 1's test rows


def test_semicolon_labels_in_a_single_label_run_suggest_multi_label(ml_csv, tmp_path, run_cli):
    result = run_cli("train", ml_csv, "-m", "knn", "-o", tmp_path / "x", ok=False)
    assert "--multi-label" in result.output
    assert "blues;rock" in result.output or "jazz;rock" in result.output or ";" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("value", ["0", "1", "1.5", "-0.2", "nan", "often"])
def test_threshold_outside_unit_interval_is_one_line(ml_csv, tmp_path, run_cli, value):
    result = run_cli("train", ml_csv, "-m", "knn", "--multi-label", "--threshold", value,
                     "-o", tmp_path / "x", ok=False)
    assert "--threshold" in result.output and "between 0 and 1" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_single_label_bundle_asked_for_genres_is_explained(tmp_path, make_csv_single, run_cli):
    out = tmp_path / "single"
    run_cli("train", make_csv_single, "-m", "knn", "--folds", "2", "-o", out)
    result = run_cli("predict", out, make_csv_single, "--threshold", "0.3", ok=False)
    assert "--multi-label" in result.output and "one genre" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = run_cli("train", make_csv_single, "-m", "knn", "--threshold", "0.3", "-o", tmp_path / "y",
                     ok=False)
    assert "--multi-label" in result.output


@pytest.fixture
def make_csv_single(tmp_path, synthetic_feature_csv):
    return synthetic_feature_csv(tmp_path / "single.csv", n_tracks=6, n_segments=2, classes=("blues", "rock"),
                                 seed=0, separation=4.0, track_spread=0.3, row_spread=0.2)


def test_sweep_ranks_by_f1_micro(ml_csv, tmp_path, run_cli):
    out = tmp_path / "sweep"
    result = run_cli("sweep", ml_csv, "-m", "knn", "--multi-label", "--metric", "f1_micro", "--folds", "2",
                     "-p", "n_neighbors=1,3", "-o", out)
    assert "f1_micro" in result.output
    frame = pd.read_csv(out / "results.csv")
    assert {"f1_micro", "subset_accuracy", "hamming_loss"} <= set(frame.columns)
    assert frame["status"].eq("ok").all()
    best = json.loads((out / "best" / "metadata.json").read_text())
    assert best["multi_label"] is True
    # hamming loss: lower is better, so a sweep ranked by it picks the lowest
    run_cli("sweep", ml_csv, "-m", "knn", "--multi-label", "--metric", "hamming_loss", "--folds", "2",
            "-p", "n_neighbors=1,3", "-o", tmp_path / "sweep2", "--no-retrain-best")
    frame2 = pd.read_csv(tmp_path / "sweep2" / "results.csv")
    assert "hamming_loss" in frame2.columns


def test_single_label_sweep_refuses_multilabel_metric(ml_csv, tmp_path, run_cli):
    result = run_cli("sweep", ml_csv, "-m", "knn", "--metric", "f1_micro", "-o", tmp_path / "s", ok=False)
    assert "--multi-label" in result.output


@pytest.mark.slow
def test_real_blends_evaluated_by_a_model_trained_on_other_tracks(gtzan_dir, tmp_path, run_cli):
    """Real GTZAN clips blended in pairs, scored by a multi-label svm that never heard them."""
    clips = [gtzan_dir / "audio" / g / f"{g}.00000.wav" for g in ("classical", "metal", "jazz")]
    run_cli("blend", *clips, "-o", tmp_path / "blends", "--pairs", "3", "--kind", "mix")
    run_cli("extract", tmp_path / "blends", "-o", tmp_path / "blends.csv", "--preset", "gtzan",
            "--whole-file", "--labels", tmp_path / "blends" / "labels.csv", "-j", "1")
    kaggle = pd.read_csv(gtzan_dir / "features_30_sec.csv")
    heard = {c.name for c in clips}
    train = kaggle[kaggle["label"].isin(["classical", "metal", "jazz"]) & ~kaggle["filename"].isin(heard)]
    assert len(train) == 297
    train.to_csv(tmp_path / "train.csv", index=False)
    run_cli("train", tmp_path / "train.csv", "-m", "svm", "--multi-label", "--folds", "2", "-o", tmp_path / "m")
    run_cli("evaluate", tmp_path / "m", tmp_path / "blends.csv", "-o", tmp_path / "ev")
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert "training_overlap" not in metrics or metrics["training_overlap"]["tracks"] == 0
    track = metrics["track"]
    assert track["n"] == 3 and sum(v["support"] for v in track["per_class"].values()) == 6
    predictions = pd.read_csv(tmp_path / "ev" / "predictions.csv", keep_default_na=False)
    for label in predictions["label"]:  # two different genres of the three the model knows
        genres = label.split(";")
        assert len(set(genres)) == 2 and set(genres) <= {"classical", "metal", "jazz"}
    assert all(set(g.split(";")) <= {"classical", "metal", "jazz"} for g in predictions["predicted"] if g)
    assert 0.0 <= track["average_precision_macro"] <= 1.0


def _reordered(source, path, order):
    """``source`` with every label cell's genres written in ``order`` ('as is', 'reversed', 'sorted')."""
    frame = pd.read_csv(source)
    cells = frame["label"].str.split(";")
    frame["label"] = cells.map(lambda g: ";".join(g[::-1] if order == "reversed" else sorted(g)
                                                   if order == "sorted" else g))
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("lead", ["music", "zydeco"])  # a genre every row names, sorted first or last
def test_results_do_not_depend_on_the_order_genres_are_written(tmp_path, run_cli, lead):
    """'music;blues' was refused as "only one class ('music')" while 'blues;music' trained."""
    base = pd.read_csv(_multilabel_csv(tmp_path / "base.csv", n_tracks=18))
    base["label"] = lead + ";" + base["label"]
    base.to_csv(tmp_path / "lead.csv", index=False)
    outcomes = []
    for order in ("as is", "reversed", "sorted"):
        csv = _reordered(tmp_path / "lead.csv", tmp_path / f"{order}.csv", order)
        out = tmp_path / f"bundle-{order}"
        run_cli("train", csv, "-m", "knn", "--multi-label", "--folds", "3", "-o", out)
        metrics = json.loads((out / "metrics.json").read_text())
        metrics.pop("data", None)
        predictions = pd.read_csv(out / "predictions.csv", keep_default_na=False).drop(columns="label")
        outcomes.append((metrics, predictions))
    for metrics, predictions in outcomes[1:]:
        assert metrics == outcomes[0][0]
        pd.testing.assert_frame_equal(predictions, outcomes[0][1])
    assert set(outcomes[0][0]["classes"]) == {lead, *GENRES}


def test_one_genre_written_many_ways_is_still_one_class(tmp_path, run_cli):
    base = pd.read_csv(_multilabel_csv(tmp_path / "base.csv", n_tracks=6))
    base["label"] = np.where(np.arange(len(base)) // 2 % 2, "music", "music;music")  # per track
    base.to_csv(tmp_path / "one.csv", index=False)
    result = run_cli("train", tmp_path / "one.csv", "-m", "knn", "--multi-label", "--folds", "2",
                     "-o", tmp_path / "b", ok=False)
    assert "only one class ('music')" in result.output


def test_rows_of_one_track_may_list_its_genres_in_any_order(tmp_path, run_cli):
    base = pd.read_csv(_multilabel_csv(tmp_path / "base.csv", n_tracks=18))
    pairs = base["label"].str.contains(";")
    flip = pairs & (np.arange(len(base)) % 2 == 1)  # the second segment of each two-genre track
    base.loc[flip, "label"] = base.loc[flip, "label"].str.split(";").map(lambda g: ";".join(g[::-1]))
    base.to_csv(tmp_path / "mixed.csv", index=False)
    run_cli("train", tmp_path / "mixed.csv", "-m", "knn", "--multi-label", "--folds", "3", "-o", tmp_path / "b")
    other = base.copy()
    other.loc[flip, "label"] = "rock"  # a different genre set is still refused
    other.to_csv(tmp_path / "bad.csv", index=False)
    result = run_cli("train", tmp_path / "bad.csv", "-m", "knn", "--multi-label", "-o", tmp_path / "c", ok=False)
    assert "expected one label per track" in result.output
