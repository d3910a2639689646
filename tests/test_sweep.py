"""``featx sweep``, run for real: grids through the CLI, resume after kill -9, widening, failures."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from featx.errors import ConfigError
from featx.models.registry import get_model
from featx.sweep.space import Distribution, build_space, parse_param_option, space_from_options

pytestmark = pytest.mark.slow  # every test here trains, reads real data or runs real processes

REPO = Path(__file__).resolve().parents[1]
METRICS = ["accuracy", "precision_macro", "recall_macro", "f1_macro"]


@pytest.fixture(scope="module")
def make_csv(synthetic_feature_csv):
    """Return ``make(path, ...)``: a small separable feature table (segment rows when ``n_segments > 1``)."""
    def make(path, *, n_tracks=8, n_segments=1, classes=("blues", "jazz", "rock"), seed=0):
        return synthetic_feature_csv(path, n_tracks=n_tracks, n_segments=n_segments, classes=classes,
                                     seed=seed, separation=1.5, track_spread=0.4, row_spread=0.4)
    return make


@pytest.fixture(scope="module")
def run(run_cli):
    return run_cli


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return None


def _children(pid: int) -> set[int]:
    """The processes whose parent is ``pid``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rpartition(")")[2].split()[1]) == pid:
                    found.add(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return found


def journal_lines(directory):
    """The trial records of a sweep's journal (its first line is the journal's header)."""
    lines = (Path(directory) / "trials.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if "featx_journal" not in r]


@pytest.fixture(scope="module")
def csv(tmp_path_factory, make_csv):
    return make_csv(tmp_path_factory.mktemp("data") / "small.csv")


# ---------------------------------------------------------------------------
# A real 2 x 2 grid of a tiny Keras model through the CLI


@pytest.fixture(scope="module")
def mlp_sweep(tmp_path_factory, make_csv, run):
    root = tmp_path_factory.mktemp("mlp")
    data = make_csv(root / "segments.csv", n_tracks=6, n_segments=2)
    out = root / "sweep"
    args = ["sweep", data, "-m", "mlp", "-o", out, "-p", "epochs=1,2", "-p", "learning_rate=1e-3,1e-2",
            "-p", "units=8", "-p", "batch_size=16", "--folds", "2", "--seed", "3"]
    result = run(*args)
    return out, args, result


def test_grid_sweep_writes_results_reports_and_best_bundle(mlp_sweep):
    out, _, result = mlp_sweep
    assert "4 combinations: 0 reused, 4 run, 0 failed" in result.output
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 4
    assert list(results.columns[:4]) == ["epochs", "learning_rate", "units", "batch_size"]
    for name in METRICS:
        assert results.columns.get_loc(f"{name}_std") == results.columns.get_loc(name) + 1
        assert results[name].between(0, 1).all()
    assert {"train_seconds", "status"} <= set(results.columns)
    assert (results["status"] == "ok").all()
    assert sorted(zip(results["epochs"], results["learning_rate"])) == [
        (1, 0.001), (1, 0.01), (2, 0.001), (2, 0.01)]
    assert len(journal_lines(out)) == 4

    report = (out / "report.md").read_text()
    ranks = [line for line in report.splitlines() if line.startswith("| 1 |") or line.startswith("| 4 |")]
    assert len(ranks) == 2
    table = [line for line in report.splitlines() if line.startswith("| ") and " ± " in line
             and line.split("|")[1].strip().isdigit()]
    f1 = [float(line.split("|")[-4].split("±")[0]) for line in table]
    assert f1 == sorted(f1, reverse=True)  # sorted by the selection metric
    assert "## Best configuration" in report and "test, track" in report
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3 and "<img" in html and 'src="figures' not in html
    assert (out / "figures" / "metric_by_hyperparameter.png").exists()
    assert (out / "figures" / "pair_heatmaps.png").exists()

    from featx.bundle import load_bundle

    bundle = load_bundle(out / "best")
    sweep_meta = bundle.metadata["sweep"]
    best = results.sort_values(["f1_macro", "f1_macro_std"], ascending=[False, True]).iloc[0]
    assert sweep_meta["trial"] == best["trial"]
    assert bundle.metadata["config"]["epochs"] == best["epochs"]
    test = json.loads((out / "best" / "metrics.json").read_text())
    assert test["track"]["n"] == sweep_meta["n_test_rows"] // 2  # 2 segments per track
    assert (out / "best" / "report.md").exists()


def test_rerunning_reuses_every_trial(mlp_sweep, run):
    out, args, _ = mlp_sweep
    stamp = (out / "best" / "metadata.json").stat().st_mtime_ns
    result = run(*args)
    assert "4 combinations: 4 reused, 0 run" in result.output
    assert len(journal_lines(out)) == 4
    assert (out / "best" / "metadata.json").stat().st_mtime_ns == stamp  # best not retrained


def test_failing_trials_are_recorded_and_the_sweep_goes_on(tmp_path, csv, run):
    out = tmp_path / "fail"
    # plain SGD at rate 0.5 with an L2 penalty of 100 multiplies the weights by -99 per
    # step: the loss overflows to inf within a few epochs (without the penalty it trains)
    result = run("sweep", csv, "-m", "mlp", "-o", out, "-p", "l2=0,100", "-p", "optimizer=sgd",
                 "-p", "learning_rate=0.5", "-p", "batch_norm=false", "-p", "units=8",
                 "-p", "epochs=30", "--folds", "2", "--no-retrain-best")
    assert "1 failed" in result.output
    results = pd.read_csv(out / "results.csv").set_index("l2")
    assert results.loc[0.0, "status"] == "ok"
    assert "training loss became" in results.loc[100.0, "error"]
    assert np.isnan(results.loc[100.0, "f1_macro"])
    report = (out / "report.md").read_text()
    assert "## Failed trials (1)" in report and "training loss became" in report


# ---------------------------------------------------------------------------
# Resume after kill -9, widening a grid, parallel workers


def test_resume_after_kill_loses_and_duplicates_nothing(tmp_path, csv, run):
    out = tmp_path / "killed"
    args = ["sweep", str(csv), "-m", "random-forest", "-o", str(out), "-p", "n_estimators=" +
            ",".join(str(n) for n in range(150, 158)), "--folds", "2", "--no-retrain-best"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "featx", "-q", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = out / "trials.jsonl"
    deadline = time.time() + 90
    while time.time() < deadline and proc.poll() is None:
        if journal.exists() and journal.read_bytes().count(b"\n") >= 2:  # header + a record
            break
        time.sleep(0.02)
    workers = _children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # its worker processes end within their parent-death watch; the rerun starts after them
    deadline = time.time() + 30
    while time.time() < deadline and any(Path(f"/proc/{pid}").exists() and _state(pid) != "Z" for pid in workers):
        time.sleep(0.05)
    done = len(journal_lines(out))
    assert 1 <= done < 8
    with open(journal, "ab") as fh:  # a record cut off by the kill
        fh.write(b'{"key": "half-writ')
    result = run(*args)
    assert f"8 combinations: {done} reused, {8 - done} run, 0 failed" in result.output
    records = journal_lines(out)
    assert len(records) == 8 and len({r["key"] for r in records}) == 8
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 8 and (results["status"] == "ok").all()


def test_widening_a_grid_runs_only_new_combinations_in_parallel(tmp_path, csv, run):
    out = tmp_path / "wide"
    base = ["sweep", csv, "-m", "knn", "-o", out, "--folds", "3"]
    first = run(*base, "-p", "n_neighbors=1,3", "-j", "2")
    assert "2 combinations: 0 reused, 2 run" in first.output
    before = pd.read_csv(out / "results.csv")
    second = run(*base, "-p", "n_neighbors=1,3,5", "-p", "weights=uniform")
    assert "3 combinations: 2 reused, 1 run" in second.output  # weights=uniform is the default
    after = pd.read_csv(out / "results.csv")
    assert list(after["n_neighbors"]) == [1, 3, 5] and len(journal_lines(out)) == 3
    # trials run in worker processes match those run in-process
    fresh = tmp_path / "fresh"
    run("sweep", csv, "-m", "knn", "-o", fresh, "--folds", "3", "-p", "n_neighbors=1,3")
    assert np.allclose(pd.read_csv(fresh / "results.csv")["f1_macro"], before["f1_macro"])


# ---------------------------------------------------------------------------
# Bad input: clear one-line errors naming the entry, before any training


@pytest.mark.parametrize("model, options, message", [
    ("knn", ["-p", "units=8"], "no hyperparameter 'units'"),
    ("knn", ["-p", "epochs=3"], "epochs is a Keras training option"),
    ("knn", ["-p", "n_neighbors="], "--param n_neighbors: empty value"),
    ("knn", ["-p", "n_neighbors=1,,3"], "--param n_neighbors: empty value"),
    ("knn", ["-p", "n_neighbors=3,abc"], "--param n_neighbors: bad value for n_neighbors; expected an integer"),
    ("knn", ["-p", "weights=uniform,closest"], "expected one of uniform, distance. Received: 'closest'"),
    ("mlp", ["-p", "units=8-x"], "--param units: bad value for units; expected positive integers joined by '-'"),
    ("mlp", ["-p", "units=16-8,8--4"], "bad value for units; expected positive integers joined by '-'"),
    ("mlp", ["-p", "units=-5"], "bad value for units; expected positive integers joined by '-'"),
    ("mlp", ["-p", "epochs=0,2"], "--param epochs: bad value for epochs; expected an integer in [1, 100000]. Received: '0'"),
    ("mlp", ["-p", "l2=0,1e38"], "--param l2: bad value for l2; expected a finite number in [0, 100]. Received: '1e38'"),
    ("mlp", ["-p", "dropout=0.1,1.5"], "--param dropout: bad value for dropout; expected a finite number in [0, 1)"),
    ("mlp", ["-p", "learning_rate=loguniform(1e-4,1e-1)"], "--search grid needs a list of values"),
    ("mlp", ["-p", "optimizer=adam,lbfgs"], "--param optimizer: bad value for optimizer"),
    ("knn", [], "nothing to sweep"),
    ("knn", ["-p", "n_neighbors"], "--param expects NAME=V1,V2"),
    ("knn", ["-p", "n_neighbors=1", "-p", "n-neighbors=3"], "--param n_neighbors: given twice"),
    ("nope", ["-p", "x=1"], "unknown model 'nope'"),
])
def test_bad_parameters_fail_before_training(tmp_path, csv, model, options, message, run):
    out = tmp_path / "bad"
    result = run("sweep", csv, "-m", model, "-o", out, *options, ok=False)
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (out / "trials.jsonl").exists()


@pytest.mark.parametrize("text, message", [
    ("n_neighbors: [1, 3\n", "grid file does not parse at line"),
    ("n_neighbors: []\n", "n_neighbors: empty value list"),
    ("- n_neighbors: [1]\n- leaf_size: [10]\n", "(sub-grid 2): leaf_size: model 'knn' has no hyperparameter"),
    ("- 1\n- 2\n", "expected a mapping of hyperparameter names"),
    ("n_neighbors: [1, two]\n", "n_neighbors: bad value for n_neighbors; expected an integer in [1, 100000]. Received: 'two'"),
    # what a grid never holds is refused at its line, before any deep or costly parsing
    ("n_neighbors: " + "[" * 5000 + "1" + "]" * 5000 + "\n",
     "grid file does not parse at line 1 (lists or mappings nested more than 16 deep)"),
    ('{"n_neighbors": ' + "[" * 5000 + "1" + "]" * 5000 + "}\n",
     "grid file does not parse at line 1 (lists or mappings nested more than 16 deep)"),
    ("leaf_size: [10]\nn_neighbors:\n  - " + "9" * 5001 + "\n",
     "grid file does not parse at line 3 (an integer of 5001 digits; expected at most 30)"),
    ("n_neighbors: [1, 3]\nleaf_size: [10]\nn_neighbors: [5]\n",
     "grid file does not parse at line 3 (key 'n_neighbors' given twice (first at line 1)"),
    ('{"n_neighbors": [1, 3],\n "leaf_size": [10],\n "n_neighbors": [5]}\n',
     "grid file does not parse at line 3 (key 'n_neighbors' given twice (first at line 1)"),
    ("{n_neighbors: [1], n_neighbors: [3]}\n", "at line 1 (key 'n_neighbors' given twice"),
    ("- n_neighbors: [1]\n- leaf_size: [10]\n  leaf_size: [20]\n",
     "at line 3 (key 'leaf_size' given twice (first at line 2)"),
    ("n-neighbors: [1]\nn_neighbors: [3]\n", "n_neighbors: given twice (as 'n-neighbors' and 'n_neighbors')"),
])
def test_bad_grid_files_fail_before_training(tmp_path, csv, text, message, run):
    grid = tmp_path / "grid.yaml"
    grid.write_text(text)
    out = tmp_path / "bad"
    result = run("sweep", csv, "-m", "knn", "-o", out, "--grid", grid, ok=False)
    assert message in result.output and str(grid) in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (out / "trials.jsonl").exists()


def test_a_grid_that_aliases_blow_up_is_refused_at_once(tmp_path, csv, run):
    """288 bytes of YAML anchors make a value of 10**8 numbers: its error took over a minute
    and printed it all."""
    items = ["&a [8,8,8,8,8,8,8,8,8,8]"] + [f"&{n} [" + ",".join([f"*{p}"] * 10) + "]"
                                              for p, n in zip("abcdefg", "bcdefgh")]
    grid = tmp_path / "grid.yaml"
    grid.write_text("units: [[" + ", ".join(items) + "]]\n")
    result = run("sweep", csv, "-m", "mlp", "-o", tmp_path / "bad", "--grid", grid, ok=False)
    assert "units: bad value for units; expected positive integers" in result.output
    assert len(result.output.strip().splitlines()) == 1 and len(result.output) < 600


def test_oversized_grid_file_is_refused_unread(tmp_path, csv, run):
    grid = tmp_path / "grid.yaml"
    with open(grid, "wb") as fh:
        fh.truncate(1 << 30)  # 1 GiB, sparse
    result = run("sweep", csv, "-m", "knn", "-o", tmp_path / "bad", "--grid", grid, ok=False)
    assert f"{grid}: a grid file of 1,073,741,824 bytes; expected a search space of at most" in result.output


# ---------------------------------------------------------------------------
# The search space (no training)


def test_param_values_are_typed_like_the_model_expects():
    spec = get_model("mlp")
    space = space_from_options(spec, ["units=256-128-64,128-64", "dropout=0.2,0.4",
                                      "batch_norm=true,false", "optimizer=adam,sgd"])
    points = space.points("grid")
    assert len(points) == 16
    assert {p["units"] for p in points} == {(256, 128, 64), (128, 64)}
    assert {type(p["batch_norm"]) for p in points} == {bool}
    assert space.names == ["units", "dropout", "batch_norm", "optimizer"]


def test_grid_files_with_sub_grids_and_random_search(tmp_path):
    spec = get_model("cnn")
    grid = tmp_path / "space.yaml"
    grid.write_text("- filters: [[16, 32], '32-64']\n  kernel_size: [3, 5]\n"
                    "- filters: [[8]]\n  dropout: [0.1, 0.3, 0.5]\n")
    space = space_from_options(spec, ["epochs=2"], grid)
    points = space.points("grid")
    assert len(points) == 4 + 3 and all(p["epochs"] == 2 for p in points)
    assert {p["filters"] for p in points} == {(16, 32), (32, 64), (8,)}

    json_grid = tmp_path / "space.json"
    json_grid.write_text(json.dumps({"learning_rate": "loguniform(1e-4, 1e-1)",
                                     "batch_size": {"dist": "randint", "low": 16, "high": 64},
                                     "kernel_size": [3, 5, 7]}))
    space = space_from_options(spec, [], json_grid)
    first = space.points("random", n_iter=12, seed=1)
    assert len(first) == 12 and first == space.points("random", n_iter=12, seed=1)
    assert all(1e-4 <= p["learning_rate"] <= 1e-1 and 16 <= p["batch_size"] <= 64 for p in first)
    assert len({p["learning_rate"] for p in first}) == 12


def test_distribution_parsing():
    name, dist = parse_param_option("learning-rate=loguniform(1e-4, 1e-2)")
    assert name == "learning_rate" and dist == Distribution("loguniform", 1e-4, 1e-2)
    with pytest.raises(ConfigError, match="expected low > 0"):
        parse_param_option("learning_rate=loguniform(0,1)")
    with pytest.raises(ConfigError, match="needs a numeric hyperparameter"):
        build_space(get_model("mlp"), [("--param", {"units": Distribution("uniform", 1, 5)})])
    # gamma is "scale", "auto" or a number > 0: a distribution of numbers is one of its values
    space = build_space(get_model("svm"), [("--param", {"gamma": Distribution("loguniform", 1e-4, 1.0)})])
    assert space.names == ["gamma"]
    with pytest.raises(ConfigError, match="reaches outside what gamma accepts"):
        build_space(get_model("svm"), [("--param", {"gamma": Distribution("uniform", 0.0, 1.0)})])
    with pytest.raises(ConfigError, match="needs a numeric hyperparameter; kernel expects"):
        build_space(get_model("svm"), [("--param", {"kernel": Distribution("uniform", 1, 5)})])
    with pytest.raises(ConfigError, match="expected a distribution like uniform"):
        parse_param_option("dropout=uniform(0.1)")


def test_sweep_help_does_not_import_tensorflow():
    code = ("import sys; from click.testing import CliRunner; from featx.cli import main; "
            "r = CliRunner().invoke(main, ['sweep', '--help']); assert r.exit_code == 0, r.output; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})


# ---------------------------------------------------------------------------
# Real data


def test_sweep_on_the_real_gtzan_table(tmp_path, gtzan_dir, run):
    out = tmp_path / "gtzan"
    result = run("sweep", gtzan_dir / "features_30_sec.csv", "-m", "knn", "-o", out,
                 "-p", "n_neighbors=1,5,9", "--folds", "3", "--metric", "accuracy")
    results = pd.read_csv(out / "results.csv")
    assert (results["status"] == "ok").all() and results["accuracy"].between(0.45, 0.95).all()
    test = json.loads((out / "best" / "metrics.json").read_text())
    assert test["track"]["n"] == 200  # 20% of the 1000 tracks, never used for selection
    assert 0.4 < test["track"]["accuracy"] < 0.95
    assert "test part (200 tracks)" in result.output


def test_a_killed_worker_is_recorded_and_the_sweep_goes_on(tmp_path, csv):
    out = tmp_path / "oom"
    args = ["sweep", str(csv), "-m", "random-forest", "-o", str(out), "-p", "n_estimators=" +
            ",".join(str(n) for n in range(150, 156)), "--folds", "2", "-j", "2", "--no-retrain-best"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "featx", "-q", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    running = out / ".running"
    deadline, killed = time.time() + 90, None
    while time.time() < deadline and proc.poll() is None and killed is None:
        for marker in running.glob("*") if running.is_dir() else []:
            try:
                pid = int(marker.read_text())
            except (OSError, ValueError):
                continue
            os.kill(pid, signal.SIGKILL)  # what the kernel's out-of-memory killer does
            killed = marker.name
            break
        time.sleep(0.02)
    stdout, stderr = proc.communicate(timeout=180)
    assert killed is not None and proc.returncode == 0, stderr
    records = journal_lines(out)
    assert len({r["key"] for r in records}) == len(records) == 6
    results = pd.read_csv(out / "results.csv").set_index("trial")
    died = results[results["status"] == "failed"]
    assert set(died.index) <= {killed}
    assert all("worker process died" in e for e in died["error"])
    assert (results.drop(index=list(died.index))["status"] == "ok").all()
