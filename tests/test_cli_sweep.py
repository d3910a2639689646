"""``featx sweep`` refusals and plans through the command line (in-process): bad values, grids
over the limit, folders of other data or models, random searches larger than their grid."""
from __future__ import annotations

import time


def test_sweep_folder_of_other_data_or_model_is_refused_unless_overwrite(tmp_path, synthetic_feature_csv, stderr_error, invoke, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the relative paths below are the test's folder
    kw = dict(n_tracks=6, n_segments=1, classes=["a", "b", "c"], separation=5.0, track_spread=0.1,
              row_spread=0.1)
    one = synthetic_feature_csv(tmp_path / "one.csv", seed=0, **kw)
    two = synthetic_feature_csv(tmp_path / "two.csv", seed=1, **kw)
    base = ["sweep", "-o", "sw", "--folds", "3", "--no-retrain-best"]
    first = invoke(*base[:1], one, "-m", "knn", *base[1:], "-p", "n_neighbors=1,3")
    assert first.exit_code == 0, first.stderr
    results = (tmp_path / "sw" / "results.csv").read_text()
    other = invoke(*base[:1], two, "-m", "knn", *base[1:], "-p", "n_neighbors=1,3")
    stderr_error(other, "sha256", "two.csv", "--overwrite")
    model = invoke(*base[:1], one, "-m", "svm", *base[1:], "-p", "C=1")
    stderr_error(model, "model knn vs svm")
    assert (tmp_path / "sw" / "results.csv").read_text() == results
    (tmp_path / "sw" / "notes.txt").write_text("mine")
    again = invoke(*base[:1], two, "-m", "knn", *base[1:], "-p", "n_neighbors=1,3", "--overwrite")
    assert again.exit_code == 0, again.stderr
    assert "2 combinations: 0 reused, 2 run" in again.stdout
    assert (tmp_path / "sw" / "notes.txt").read_text() == "mine"


def test_random_search_larger_than_its_grid_is_the_grid(tmp_path, synthetic_feature_csv, invoke, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the relative paths below are the test's folder
    csv = synthetic_feature_csv(tmp_path / "t.csv", n_tracks=6, n_segments=1, classes=["a", "b", "c"],
                                seed=0, separation=5.0, track_spread=0.1, row_spread=0.1)
    result = invoke("sweep", csv, "-m", "knn", "-o", "sw", "--folds", "3", "--no-retrain-best",
                    "--search", "random", "--n-iter", "1000000000", "-p", "n_neighbors=3,5")
    assert result.exit_code == 0, result.stderr
    assert "2 combinations" in result.stdout and "1,000,000,000" not in result.stdout + result.stderr


def test_sweep_refuses_the_same_values(tmp_path, feature_csv, run_cli, single_line_error):
    for values, needle in (("1,1e309", "1e309"), ("nan", "nan"), ("0", "0")):
        result = run_cli("sweep", feature_csv, "-m", "svm", "-o", tmp_path / "s", "-p", f"C={values}",
                         ok=False)
        single_line_error(result, "bad value for C", needle)
    result = run_cli("sweep", feature_csv, "-m", "svm", "-o", tmp_path / "s", "-p",
                     "C=loguniform(1e-3, 1e300)", "--search", "random", ok=False)
    single_line_error(result, "reaches outside what C accepts")
    assert not (tmp_path / "s").exists()


def test_a_grid_over_the_limit_is_refused_quickly(tmp_path, feature_csv, run_cli, single_line_error):
    values = ",".join(str(v) for v in range(1, 101))
    started = time.perf_counter()
    result = run_cli("sweep", feature_csv, "-m", "random-forest", "-o", tmp_path / "s",
                     "-p", f"n_estimators={values}", "-p", f"max_depth={values}",
                     "-p", f"min_samples_leaf={values}", ok=False)
    assert time.perf_counter() - started < 10
    single_line_error(result, "1,000,000 combinations", "--max-trials 1000000", "--max-trials 10000")
    assert not (tmp_path / "s").exists()
