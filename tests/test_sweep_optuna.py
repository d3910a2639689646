"""``featx sweep`` on Optuna, run for real: TPE, pruning, the study database (SQLite, and a real
PostgreSQL server shared by two concurrent sweep processes), the study figures, bad input."""
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
TABLE = REPO / "features_csv" / "features_30_sec.csv"


def _journal(directory):
    lines = (Path(directory) / "trials.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if "featx_journal" not in r]


def _study(directory, name=None):
    import optuna

    directory = Path(directory)
    return optuna.load_study(study_name=name or directory.name, storage=f"sqlite:///{directory / 'study.db'}")


@pytest.fixture(scope="module")
def tpe_sweep(tmp_path_factory, run_cli):
    out = tmp_path_factory.mktemp("tpe") / "svm"
    args = ["sweep", TABLE, "-m", "svm", "-o", out, "--search", "tpe", "--n-iter", "6", "--seed", "1",
            "-p", "C=loguniform(1e-1,1e2)", "-p", "gamma=0.001,0.01,0.1", "--folds", "2", "--no-retrain-best"]
    return out, args, run_cli(*args)


def test_tpe_sweep_is_an_optuna_study_with_states_and_study_figures(tpe_sweep):
    out, _, result = tpe_sweep
    assert "6 trials: 0 reused, 6 run, 0 failed" in result.output
    study = _study(out)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 6
    assert study.direction.name == "MAXIMIZE"
    assert {"C", "gamma"} <= set(study.trials[0].params)  # what TPE sampled
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 6 and (results["state"] == "COMPLETE").all() and (results["status"] == "ok").all()
    best = max(study.trials, key=lambda t: t.value)
    assert results["f1_macro"].max() == pytest.approx(best.value, abs=1e-6)
    assert 0.1 <= results["C"].min() and results["C"].max() <= 100
    for name in ("optimisation_history", "parallel_coordinates", "importance", "trial_states"):
        assert (out / "figures" / f"{name}.png").exists(), name
        assert f"figures/{name}.png" in (out / "report.md").read_text()
    assert "study" in (out / "report.md").read_text()


@pytest.mark.slow
def test_tpe_trials_in_two_workers_each_draw_their_own_configuration(tmp_path, run_cli):
    """Each worker process keeps its sampler from trial to trial: no configuration is drawn
    twice (a sampler made afresh per trial with the worker's seed drew one point per worker)."""
    out = tmp_path / "tpe-j2"
    result = run_cli("sweep", TABLE, "-m", "svm", "-o", out, "--search", "tpe", "--n-iter", "6", "-j", "2",
                     "-p", "C=loguniform(1e-1,1e2)", "-p", "gamma=loguniform(1e-4,1)", "--folds", "2",
                     "--no-retrain-best")
    assert "6 trials: 0 reused, 6 run, 0 failed" in result.output
    results = pd.read_csv(out / "results.csv")
    assert results["C"].nunique() == 6 and results["gamma"].nunique() == 6
    assert (results["gamma"] > 0).all() and (results["status"] == "ok").all()


def test_rerunning_a_tpe_sweep_asks_the_study_and_runs_nothing(tpe_sweep, run_cli):
    out, args, _ = tpe_sweep
    result = run_cli(*args)
    assert "6 trials: 6 reused, 0 run" in result.output
    assert len(_study(out).trials) == 6 and len(_journal(out)) == 6


def test_a_study_of_another_space_or_model_is_refused_by_name(tpe_sweep, tmp_path, run_cli):
    out, _, _ = tpe_sweep
    storage = f"sqlite:///{out / 'study.db'}"
    other = run_cli("sweep", TABLE, "-m", "svm", "-o", tmp_path / "other", "--search", "tpe", "--n-iter", "2",
                    "--seed", "1", "-p", "C=1,10", "-p", "gamma=0.001,0.01,0.1", "--folds", "2",
                    "--storage", storage, "--study", out.name, "--no-retrain-best", ok=False)
    assert other.exit_code == 1 and "was made with another space" in other.output
    assert "choose another study name" in other.output and len(other.output.strip().splitlines()) == 1
    model = run_cli("sweep", TABLE, "-m", "knn", "-o", tmp_path / "knn", "--search", "tpe", "--n-iter", "2",
                    "-p", "n_neighbors=1,3", "--storage", storage, "--study", out.name, ok=False)
    assert "model 'svm' vs 'knn'" in model.output
    assert len(_study(out).trials) == 6  # nothing was added to the study


def test_median_pruning_stops_scikit_learn_trials_after_a_fold(tmp_path, run_cli):
    out = tmp_path / "pruned"
    result = run_cli("sweep", TABLE, "-m", "knn", "-o", out, "--search", "random", "--n-iter", "12",
                     "--prune", "median", "-p", "n_neighbors=1,2,3,150,200,250,300,350,400",
                     "-p", "weights=uniform,distance", "--folds", "3", "--no-retrain-best", "--seed", "0")
    results = pd.read_csv(out / "results.csv")
    pruned = results[results["state"] == "PRUNED"]
    assert len(pruned) >= 1, results[["n_neighbors", "f1_macro", "state"]]
    assert f"{len(pruned)} pruned" in result.output
    assert (pruned["status"] == "pruned").all() and pruned["f1_macro"].isna().all()
    assert (pruned["folds_run"] < 3).all() and (results.loc[results["state"] == "COMPLETE", "folds_run"] == 3).all()
    states = {t.state.name for t in _study(out).trials}
    assert states <= {"COMPLETE", "PRUNED"}
    report = (out / "report.md").read_text()
    assert f"## Pruned trials ({len(pruned)})" in report


@pytest.mark.parametrize("options, message", [
    (["--search", "annealing"], "search must be one of grid, random, tpe (the sampler). Received: --search annealing"),
    (["--prune", "asha"], "prune must be one of none, median, hyperband (the pruner). Received: --prune asha"),
    (["--prune", "median"], "a grid search runs every combination to its end"),
    (["--storage", "not a url"], "storage must be a database URL"),
    (["--wait-workers", "-1"], "--wait-workers"),
])
def test_bad_search_options_are_one_line(tmp_path, run_cli, options, message):
    out = tmp_path / "bad"
    result = run_cli("sweep", TABLE, "-m", "knn", "-o", out, "-p", "n_neighbors=1,3", *options, ok=False)
    assert result.exit_code != 0 and message in result.output
    assert "Traceback" not in result.output and not (out / "study.db").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_storage_fails_within_ten_seconds_without_the_password(tmp_path):
    port = _free_port()  # nothing listens there
    out = tmp_path / "nowhere"
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "featx", "sweep", str(TABLE), "-m", "knn", "-o", str(out),
                           "-p", "n_neighbors=1,3", "--storage",
                           f"postgresql://featx:s3cr3t-pw@127.0.0.1:{port}/sweeps"],
                          capture_output=True, text=True, cwd=REPO, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    seconds = time.monotonic() - start
    assert proc.returncode != 0 and seconds < 10 + 15  # the connection's 10 s and the start-up
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot open the study database" in lines[0], proc.stderr
    assert "featx:***@127.0.0.1" in lines[0]
    assert "s3cr3t" not in proc.stderr + proc.stdout
    assert "s3cr3t" not in "".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------
# A real PostgreSQL server on localhost, shared by two sweep processes


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


@pytest.fixture(scope="module")
def postgres_url():
    """A PostgreSQL server started for these tests (Debian's postgresql package), its URL."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (apt-get install -y postgresql)")
    pytest.importorskip("psycopg", reason="the PostgreSQL driver is in featx[postgres]")
    as_user = []
    if os.geteuid() == 0:  # the server refuses to run as root
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
        as_user = ["runuser", "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="featx-pg-"))
    os.chmod(root, 0o777)
    data, pwfile, port = root / "data", root / "pw", _free_port()
    pwfile.write_text("pg-secret-42\n")
    os.chmod(pwfile, 0o644)
    try:
        subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "featx", "-A", "md5",
                        f"--pwfile={pwfile}"], check=True, capture_output=True, timeout=120)
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l", str(root / "log"),
                        "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"],
                       check=True, capture_output=True, timeout=120)
    except (subprocess.SubprocessError, OSError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"cannot start a PostgreSQL server: {exc}")
    subprocess.run([*as_user, str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "featx",
                    "sweeps"], check=True, capture_output=True, env={**os.environ, "PGPASSWORD": "pg-secret-42"})
    yield f"postgresql://featx:pg-secret-42@127.0.0.1:{port}/sweeps"
    subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
                   capture_output=True, timeout=120)
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_two_sweep_processes_share_one_postgresql_study(tmp_path, postgres_url):
    import optuna

    values = ",".join(str(k) for k in (1, 2, 3, 4, 5, 7, 9, 11, 13, 15))
    procs, outs = [], []
    for name in ("machine-a", "machine-b"):
        out = tmp_path / name
        outs.append(out)
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "featx", "-v", "sweep", str(TABLE), "-m", "knn", "-o", str(out),
             "-p", f"n_neighbors={values}", "-p", "weights=uniform,distance", "--folds", "2",
             "--storage", postgres_url, "--study", "shared", "--no-retrain-best"],
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=600) for p in procs]
    for proc, (stdout, stderr) in zip(procs, outputs):
        assert proc.returncode == 0, stderr
        assert "pg-secret-42" not in stdout + stderr
        assert "featx:***@127.0.0.1" in stdout
    study = optuna.load_study(study_name="shared", storage=postgres_url)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    keys = [t.user_attrs["featx_key"] for t in complete]
    assert len(keys) == 20 and len(set(keys)) == 20  # no combination lost, none run twice
    for t in study.trials:  # a combination both sweeps queued is run once, its copy not at all
        assert t.state.name == "COMPLETE" or "queued twice" in t.user_attrs.get("featx_error", ""), t
    ran = [{r["key"] for r in _journal(out)} for out in outs]
    assert not ran[0] & ran[1] and len(ran[0] | ran[1]) == 20
    assert ran[0] and ran[1]  # both processes took trials
    complete = []
    for out in outs:  # each folder's results show the whole study as it ended
        results = pd.read_csv(out / "results.csv")
        assert len(results) == 20 and set(results["state"]) <= {"COMPLETE", "RUNNING"}
        complete.append((results["state"] == "COMPLETE").all())  # the sweep that ended last
    assert any(complete)
    for out in outs:
        for path in out.rglob("*"):
            if path.is_file() and path.suffix in (".md", ".html", ".json", ".csv", ".jsonl"):
                assert "pg-secret-42" not in path.read_text(errors="replace"), path
