"""Extraction and sweeps on a real Dask cluster: a scheduler and two worker processes on
localhost over TCP, started here as subprocesses and always ended by a finalizer."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # every test here trains, reads real data or runs real processes

distributed = pytest.importorskip("distributed", reason="Dask is the featx[dask] extra")

#: A task module the workers import (a real function, pickled by reference).
_TASKS = '''
import os, signal

def die_on_bad(key):
    """Kill this worker process (SIGKILL) for a key containing 'bad'."""
    if "bad" in key:
        os.kill(os.getpid(), signal.SIGKILL)
    return {"key": key, "length": len(key)}
'''


def _start(args, *, cwd, env, log):
    return subprocess.Popen([sys.executable, "-m", *args], cwd=cwd, env=env,
                            stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, request):
    """``(address, client)`` of a scheduler and two one-thread worker processes (with
    nannies, which restart a killed worker); the scheduler declares a task lost after it
    killed two workers (``allowed-failures=1``)."""
    from distributed import Client

    root = tmp_path_factory.mktemp("cluster")
    (root / "featx_test_tasks.py").write_text(_TASKS)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
               DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="1", OMP_NUM_THREADS="1")
    log = open(root / "cluster.log", "w")
    procs = []

    def stop():
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(procs):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()

    request.addfinalizer(stop)
    sched_file = root / "scheduler.json"
    procs.append(_start(["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                         "--no-dashboard", "--scheduler-file", str(sched_file)],
                        cwd=root, env=env, log=log))
    deadline = time.monotonic() + 30
    while not sched_file.exists():
        assert time.monotonic() < deadline, (root / "cluster.log").read_text()
        time.sleep(0.1)
    time.sleep(0.2)
    for _ in range(2):
        procs.append(_start(["distributed.cli.dask_worker", "--scheduler-file", str(sched_file),
                             "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"],
                            cwd=root, env=env, log=log))
    address = json.loads(sched_file.read_text())["address"]
    assert address.startswith("tcp://127.0.0.1:")
    client = Client(address, timeout=30, set_as_default=False)
    request.addfinalizer(client.close)
    client.wait_for_workers(2, timeout=60)
    sys.path.insert(0, str(root))
    request.addfinalizer(lambda: sys.path.remove(str(root)))
    return address, client


@pytest.fixture(scope="module")
def big_corpus(tmp_path_factory, write_wav, tone, clicks):
    """Four 9-second clips in two genres, and one corrupt .wav that no worker can decode."""
    root = tmp_path_factory.mktemp("corpus") / "audio"
    for i, freq in enumerate((330, 550)):
        write_wav(root / "tones" / f"tones.{i:05d}.wav", tone(freq, 9.0))
        write_wav(root / "clicks" / f"clicks.{i:05d}.wav", clicks(90 + 20 * i, 9.0))
    (root / "clicks" / "clicks.broken.wav").write_bytes(b"RIFF\x00\x01\x02not audio at all" * 20)
    return root


def _extract(corpus, out, **kwargs):
    from featx import FeatureSettings
    from featx.extract.runner import run_extraction

    return run_extraction([corpus], out, settings=FeatureSettings(preset="gtzan"), progress=False, **kwargs)


@pytest.fixture(scope="module")
def local_run(big_corpus, tmp_path_factory):
    """The same corpus extracted by local processes: CSV and Parquet, with their errors CSV."""
    out = tmp_path_factory.mktemp("local")
    _extract(big_corpus, out / "f.csv", jobs=1)
    _extract(big_corpus, out / "f.parquet", jobs=1)
    return out


def test_extract_on_cluster_is_byte_identical_and_names_unreadable_file(cluster, big_corpus, local_run,
                                                                        tmp_path, run_cli):
    address, _ = cluster
    result = run_cli("extract", big_corpus, "-o", tmp_path / "f.csv", "--preset", "gtzan",
                     "--scheduler", address, ok=False)
    assert result.exit_code == 1  # one file skipped, named on stderr
    assert "clicks.broken.wav" in result.output and "Traceback" not in result.output
    assert (tmp_path / "f.csv").read_bytes() == (local_run / "f.csv").read_bytes()
    assert (tmp_path / "f.errors.csv").read_bytes() == (local_run / "f.errors.csv").read_bytes()
    assert "clicks.broken.wav" in (tmp_path / "f.errors.csv").read_text()

    _extract(big_corpus, tmp_path / "f.parquet", scheduler=address)
    assert (tmp_path / "f.parquet").read_bytes() == (local_run / "f.parquet").read_bytes()


def test_rerun_on_cluster_reads_only_changed_files(cluster, big_corpus, tmp_path, write_wav, tone):
    import shutil

    address, _ = cluster
    corpus = tmp_path / "audio"
    shutil.copytree(big_corpus, corpus)
    first = _extract(corpus, tmp_path / "f.csv", scheduler=address)
    assert first.n_extracted == 5
    write_wav(corpus / "tones" / "tones.00001.wav", tone(880, 9.0))  # new content
    again = _extract(corpus, tmp_path / "f.csv", scheduler=address)
    assert again.n_extracted == 1
    local = _extract(corpus, tmp_path / "local.csv", jobs=1)
    assert (tmp_path / "f.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()
    assert local.n_rows == again.n_rows


def test_worker_killed_mid_run_output_still_identical(cluster, tmp_path, write_wav, tone):
    address, client = cluster
    corpus = tmp_path / "audio"
    for i in range(12):  # a run long enough to catch a worker mid-file
        write_wav(corpus / "tones" / f"tones.{i:05d}.wav", tone(200 + 50 * i, 9.0))
    local = _extract(corpus, tmp_path / "local.csv", jobs=1)
    pids = client.run(os.getpid)  # {worker address: its process id}
    done: dict = {}

    def run():
        try:
            done["result"] = _extract(corpus, tmp_path / "f.csv", scheduler=address)
        except BaseException as exc:  # reported by the assertion below
            done["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    killed = None
    deadline = time.monotonic() + 60
    while killed is None and thread.is_alive() and time.monotonic() < deadline:
        busy = [w for w, tasks in client.processing().items() if tasks]
        if busy:
            pid = pids[busy[0]]
            os.kill(pid, signal.SIGKILL)  # inside the file's analysis
            killed = pid
        time.sleep(0.02)
    thread.join(timeout=120)
    assert killed is not None, "no worker was ever busy"
    assert "error" not in done, done.get("error")
    assert (tmp_path / "f.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()
    assert done["result"].n_rows == local.n_rows > 12 and not done["result"].errors
    client.wait_for_workers(2, timeout=60)  # the nanny started a new worker


def test_task_that_keeps_killing_workers_is_a_named_skip(cluster):
    from featx.extract.executors import KILLED_WORKER, map_files
    from featx_test_tasks import die_on_bad

    address, client = cluster
    records = list(map_files(die_on_bad, ["a.wav", "bad.wav", "b.wav"], scheduler=address))
    by_key = {r["key"]: r for r in records}
    assert sorted(by_key) == ["a.wav", "b.wav", "bad.wav"]
    assert by_key["bad.wav"] == {"key": "bad.wav", "error": KILLED_WORKER}
    assert "KilledWorker" in KILLED_WORKER
    assert by_key["a.wav"] == {"key": "a.wav", "length": 5}
    client.wait_for_workers(2, timeout=60)


def test_unreachable_scheduler_is_one_line(tmp_path, big_corpus, run_cli):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    from featx.extract import executors

    old, executors.CONNECT_TIMEOUT = executors.CONNECT_TIMEOUT, 2
    try:
        result = run_cli("extract", big_corpus, "-o", tmp_path / "f.csv",
                         "--scheduler", f"tcp://127.0.0.1:{port}", ok=False)
    finally:
        executors.CONNECT_TIMEOUT = old
    assert "cannot connect to the Dask scheduler" in result.output
    assert f"tcp://127.0.0.1:{port}" in result.output
    assert not (tmp_path / "f.csv").exists()


def test_sweep_on_cluster_gives_the_local_results(cluster, tmp_path, synthetic_feature_csv):
    import pandas as pd

    from featx.models.registry import get_model
    from featx.sweep.plan import SweepOptions, plan_sweep
    from featx.sweep.runner import run_sweep
    from featx.sweep.space import space_from_options

    address, _ = cluster
    csv = synthetic_feature_csv(tmp_path / "t.csv", n_tracks=8, n_segments=3, classes=["a", "b", "c"],
                                seed=0, separation=2.0, track_spread=0.5, row_spread=0.5)
    space = space_from_options(get_model("knn"), ["n_neighbors=1,5"])
    for name, scheduler in (("local", None), ("dask", address)):
        options = SweepOptions(csv=csv, model="knn", output=tmp_path / name, folds=2,
                               retrain_best=False, scheduler=scheduler).validate()
        outcome = run_sweep(plan_sweep(options, space), progress=False, report=False)
        assert outcome.ran == 2 and outcome.failed == 0
    local = pd.read_csv(tmp_path / "local" / "results.csv").drop(columns="train_seconds")
    remote = pd.read_csv(tmp_path / "dask" / "results.csv").drop(columns="train_seconds")
    pd.testing.assert_frame_equal(local, remote)
    assert len(remote) == 2 and (remote["status"] == "ok").all()
    lines = (tmp_path / "dask" / "trials.jsonl").read_text().splitlines()
    pids = {json.loads(line).get("pid") for line in lines if line.strip()}
    assert os.getpid() not in pids  # the trials ran on the workers, not here
    assert np.isfinite(remote["f1_macro"]).all()


def _sorted_store(path):
    """A store's row table and mel images in (track, segment) order: comparable across runs."""
    from featx.data.store import open_store

    store = open_store(path)
    rows = store.rows.reset_index(drop=True)
    order = np.lexsort((rows["segment"].to_numpy(), rows["track"].to_numpy()))
    return rows.iloc[order].reset_index(drop=True), store.read(order)["mel"]


def test_spectrograms_on_cluster_match_a_local_run(cluster, big_corpus, tmp_path, run_cli):
    address, client = cluster

    def transitions():  # task state changes on the workers so far
        return sum(client.run(lambda dask_worker: dask_worker.state.transition_counter).values())

    args = ("spectrograms", big_corpus, "--kinds", "mel", "--n-mels", "64")
    run_cli(*args, "-o", tmp_path / "local", "-j", "1", ok=False)
    before = transitions()
    result = run_cli(*args, "-o", tmp_path / "dask", "--scheduler", address, ok=False)
    assert transitions() >= before + 5  # the five files were analysed on the workers
    assert result.exit_code == 1  # the unreadable file, skipped and named
    assert "clicks.broken.wav" in result.output and "Traceback" not in result.output
    rows_local, mel_local = _sorted_store(tmp_path / "local")
    rows_dask, mel_dask = _sorted_store(tmp_path / "dask")
    assert len(rows_dask) == 4 * 2  # four 9-s clips, two full 3-s segments each
    assert rows_dask.equals(rows_local)
    np.testing.assert_array_equal(mel_dask, mel_local)
    assert (tmp_path / "dask.errors.csv").read_bytes() == (tmp_path / "local.errors.csv").read_bytes()
