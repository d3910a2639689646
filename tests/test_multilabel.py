"""Multi-label metrics, thresholds, tuning and label parsing, on matrices worked out by hand."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from featx.errors import ConfigError, DataError
from featx.training import multilabel as ml

CLASSES = ["blues", "jazz", "rock"]
# four rows: {blues, rock}, {jazz}, {blues}, {rock}
Y = np.array([[1, 0, 1],
              [0, 1, 0],
              [1, 0, 0],
              [0, 0, 1]])
P = np.array([[0.9, 0.1, 0.15],
              [0.3, 0.8, 0.1],
              [0.6, 0.5, 0.2],
              [0.2, 0.3, 0.7]])


def test_threshold_metrics_by_hand_at_half():
    # predictions >= 0.5: {blues}, {jazz}, {blues, jazz}, {rock}
    # TP 4 (r0 blues, r1 jazz, r2 blues, r3 rock), FP 1 (r2 jazz), FN 1 (r0 rock)
    assert ml.f1_micro(Y, P) == pytest.approx(8 / 10)
    # blues P=R=1; jazz P=1/2 R=1 -> 2/3; rock P=1 R=1/2 -> 2/3
    assert ml.f1_macro(Y, P) == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    assert ml.subset_accuracy(Y, P) == pytest.approx(2 / 4)  # rows 1 and 3 exact
    assert ml.hamming_loss(Y, P) == pytest.approx(2 / 12)
    genres = ml.per_genre(Y, P, CLASSES)
    assert genres["jazz"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3),
                              "support": 1, "threshold": 0.5}
    assert genres["rock"]["recall"] == 0.5 and genres["rock"]["support"] == 2
    assert genres["blues"]["f1"] == 1.0


def test_threshold_metrics_by_hand_at_the_studys_0_2():
    # predictions >= 0.2: {blues}, {blues, jazz}, {blues, jazz, rock}, {blues, jazz, rock}
    # TP 4, FP 5 (r1 blues, r2 jazz+rock, r3 blues+jazz), FN 1 (r0 rock at 0.15)
    assert ml.f1_micro(Y, P, threshold=0.2) == pytest.approx(8 / 14)
    assert ml.subset_accuracy(Y, P, threshold=0.2) == 0.0
    assert ml.hamming_loss(Y, P, threshold=0.2) == pytest.approx(6 / 12)


def test_ranking_metrics_by_hand():
    # rock ranked: r3 .7 (+), r2 .2 (-), r0 .15 (+), r1 .1 (-): AP = (1/1 + 2/3) / 2
    # AUC: of the 4 (positive, negative) pairs only (.15, .2) is misordered: 3/4
    # blues and jazz rank every positive first: AP = AUC = 1
    assert ml.average_precision_macro(Y, P) == pytest.approx((1 + 1 + 5 / 6) / 3)
    assert ml.roc_auc_macro(Y, P) == pytest.approx((1 + 1 + 3 / 4) / 3)


def test_agrees_with_scikit_learn_on_a_random_matrix():
    from sklearn import metrics

    rng = np.random.default_rng(3)
    y = (rng.random((40, 5)) < 0.4).astype(int)
    p = np.clip(0.6 * y + 0.5 * rng.random((40, 5)), 0, 1)
    t = np.array([0.3, 0.4, 0.5, 0.6, 0.7])
    pred = (p >= t).astype(int)
    assert ml.f1_micro(y, p, threshold=t) == pytest.approx(metrics.f1_score(y, pred, average="micro"))
    assert ml.f1_macro(y, p, threshold=t) == pytest.approx(metrics.f1_score(y, pred, average="macro"))
    assert ml.hamming_loss(y, p, threshold=t) == pytest.approx(metrics.hamming_loss(y, pred))
    assert ml.roc_auc_macro(y, p) == pytest.approx(metrics.roc_auc_score(y, p, average="macro"))
    assert ml.average_precision_macro(y, p) == pytest.approx(
        metrics.average_precision_score(y, p, average="macro"))


def test_genres_with_one_kind_of_label_are_skipped_and_named():
    # add 'pop' (no true row) and 'soul' (every row true)
    y = np.column_stack([Y, np.zeros(4, int), np.ones(4, int)])
    p = np.column_stack([P, [0.1, 0.9, 0.2, 0.3], [0.4, 0.6, 0.5, 0.9]])
    auc, skipped = ml.roc_auc_macro(y, p, return_skipped=True)
    assert skipped == [3, 4] and auc == pytest.approx((1 + 1 + 3 / 4) / 3)
    ap, skipped = ml.average_precision_macro(y, p, return_skipped=True)
    assert skipped == [3] and ap == pytest.approx((1 + 1 + 5 / 6 + 1) / 4)
    report = ml.multilabel_metrics(y, p, CLASSES + ["pop", "soul"], threshold=0.5)
    assert report["roc_auc_skipped"] == ["pop", "soul"]
    assert report["average_precision_skipped"] == ["pop"]
    assert set(ml.MULTILABEL_METRICS) <= set(report)
    assert report["per_genre"]["pop"]["support"] == 0 and report["n"] == 4
    one_kind = ml.roc_auc_macro(np.ones((3, 2), int), np.full((3, 2), 0.5))
    assert np.isnan(one_kind)


def test_per_genre_thresholds():
    t = [0.5, 0.6, 0.1]  # rock at 0.1 catches r0's 0.15
    # predictions: {blues, rock}, {jazz, rock}, {blues, rock}, {rock}
    assert ml.predict_genres(P, t).tolist() == [[1, 0, 1], [0, 1, 1], [1, 0, 1], [0, 0, 1]]
    # TP 5, FP 2 (r1 rock, r2 rock), FN 0
    assert ml.f1_micro(Y, P, threshold=t) == pytest.approx(10 / 12)


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1, float("nan"), "0.2", True])
def test_thresholds_outside_the_open_unit_interval_are_refused(bad):
    with pytest.raises(ConfigError, match="threshold") as info:
        ml.f1_micro(Y, P, threshold=bad)
    assert "\n" not in str(info.value) and repr(bad) in str(info.value)


def test_per_genre_threshold_errors_name_the_value():
    with pytest.raises(ConfigError, match=r"genre 2 .*Received: threshold=1\.0"):
        ml.check_thresholds([0.2, 0.3, 1.0], 3)
    with pytest.raises(ConfigError, match="one threshold per genre"):
        ml.check_thresholds([0.2, 0.3], 3)
    with pytest.raises(ConfigError, match="grid"):
        ml.tune_thresholds(Y, P, grid=[0.2, 1.0])


def test_bad_matrices_refused():
    with pytest.raises(DataError, match="same shape"):
        ml.f1_micro(Y, P[:, :2])
    with pytest.raises(DataError, match="only 0 and 1"):
        ml.f1_micro(Y * 2, P)
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        ml.roc_auc_macro(Y, P + 1)


def test_tuning_uses_only_the_rows_given():
    # one genre; rows 0-3 are validation rows, rows 4-5 test rows
    y = np.array([[1], [1], [0], [0], [1], [0]])
    p = np.array([[0.35], [0.6], [0.3], [0.1], [0.45], [0.32]])
    grid = [0.2, 0.3, 0.4, 0.5]
    # validation rows: t=0.2 and 0.3 give TP 2 FP 1 (F1 0.8), 0.4 and 0.5 give TP 1 FN 1 (2/3);
    # of the tied two, 0.3 is closer to 0.5
    assert ml.tune_thresholds(y[:4], p[:4], grid=grid).tolist() == [0.3]
    # with the test rows as well, 0.4 would win (TP 2 FP 0 FN 1: F1 0.8 against 0.75)
    assert ml.tune_thresholds(y, p, grid=grid).tolist() == [0.4]
    # changing the test rows leaves the validation choice alone
    p2 = p.copy()
    p2[4:] = [[0.99], [0.01]]
    assert ml.tune_thresholds(y[:4], p2[:4], grid=grid).tolist() == [0.3]


def test_tuning_per_genre_and_default_grid():
    chosen = ml.tune_thresholds(Y, P)
    assert chosen.shape == (3,)
    assert all(0 < t < 1 for t in chosen)
    assert ml.f1_macro(Y, P, threshold=chosen) >= ml.f1_macro(Y, P, threshold=0.5)
    # a genre without a true row keeps the value closest to 0.5
    y = np.column_stack([Y, np.zeros(4, int)])
    p = np.column_stack([P, [0.1, 0.2, 0.3, 0.4]])
    assert ml.tune_thresholds(y, p)[3] == 0.5


def test_parse_multilabel():
    series = pd.Series(["rock;blues", "jazz", " rock ; jazz "], index=["a", "b", "c"])
    assert ml.parse_multilabel(series) == [{"rock", "blues"}, {"jazz"}, {"rock", "jazz"}]
    assert ml.parse_multilabel(["a|b"], sep="|") == [{"a", "b"}]
    with pytest.raises(DataError, match=r"'rock;;blues' \(row 'x'\)"):
        ml.parse_multilabel(pd.Series(["jazz", "rock;;blues"], index=["y", "x"]))
    with pytest.raises(DataError, match="row 1"):
        ml.parse_multilabel(["jazz", ""])
    sets = ml.parse_multilabel(["rock;blues", "jazz"])
    assert ml.multi_hot(sets, CLASSES).tolist() == [[1, 0, 1], [0, 1, 0]]


def test_format_genres_highest_first():
    assert ml.format_genres([0.3, 0.1, 0.9], CLASSES, 0.2) == "rock;blues"
    assert ml.format_genres([0.3, 0.1, 0.9], CLASSES, [0.5, 0.05, 0.5]) == "rock;jazz"
    assert ml.format_genres([0.1, 0.1, 0.1], CLASSES, 0.2) == ""
    assert ml.format_genres([0.4, 0.4, 0.1], CLASSES, 0.2) == "blues;jazz"  # ties: class order
    with pytest.raises(ConfigError, match="threshold"):
        ml.format_genres([0.3, 0.1, 0.9], CLASSES, 1.2)
    with pytest.raises(DataError, match="expected 3 probabilities"):
        ml.format_genres([0.3, 0.1], CLASSES, 0.2)


def test_stratification_key_does_not_depend_on_genre_order():
    from featx.data.labels import first_genres, stratification_key

    rng = np.random.default_rng(0)
    genres = ["blues", "jazz", "music", "rock", "zydeco"]
    sets = [sorted(rng.choice(genres, size=rng.integers(1, 4), replace=False)) for _ in range(200)]
    written = [";".join(s) for s in sets]
    keys = stratification_key(written)
    for _ in range(5):
        shuffled = [";".join(rng.permutation(s)) for s in sets]
        assert stratification_key(shuffled).tolist() == keys.tolist()
        assert all(k in s for k, s in zip(keys, sets))
    assert first_genres(["music;blues"]).tolist() != first_genres(["blues;music"]).tolist()  # why
    counts = {g: sum(g in s for s in sets) for g in genres}
    for key, s in zip(keys, sets):  # each row keyed on its rarest genre
        assert counts[key] == min(counts[g] for g in s)
