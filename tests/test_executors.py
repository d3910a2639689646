"""The Dask executor when the cluster misbehaves: no workers, workers and schedulers killed
mid-run, malformed and unreachable addresses. Each test starts its own scheduler and
worker processes on localhost (ended by a finalizer), runs ``featx extract`` as a real
process, and kills with real signals."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("distributed", reason="Dask is the featx[dask] extra")

pytestmark = pytest.mark.slow


class Cluster:
    """A scheduler and worker processes started here; every process is ended on :meth:`stop`."""

    def __init__(self, root):
        self.root = root
        self.log = open(root / "cluster.log", "a")
        self.procs: list[subprocess.Popen] = []
        self.scheduler = None
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.address = f"tcp://127.0.0.1:{self.port}"

    def _start(self, *args):
        proc = subprocess.Popen([sys.executable, "-m", *args], stdout=self.log, stderr=subprocess.STDOUT,
                                cwd=self.root, env=dict(os.environ, OMP_NUM_THREADS="1"))
        self.procs.append(proc)
        return proc

    def start_scheduler(self):
        self.scheduler = self._start("distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port",
                                     str(self.port), "--no-dashboard")
        deadline = time.monotonic() + 60
        while True:  # listening?
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                assert self.scheduler.poll() is None and time.monotonic() < deadline, self.text()
                time.sleep(0.2)

    def start_worker(self):
        """One one-thread worker without a nanny (a killed worker stays dead)."""
        return self._start("distributed.cli.dask_worker", self.address, "--nthreads", "1", "--no-nanny",
                           "--no-dashboard", "--host", "127.0.0.1")

    def text(self) -> str:
        self.log.flush()
        return (self.root / "cluster.log").read_text()

    def stop(self):
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.log.close()


@pytest.fixture
def new_cluster(tmp_path, request):
    """Return ``new_cluster()``: a :class:`Cluster` with its scheduler running, no workers yet."""

    def make():
        root = tmp_path / f"cluster-{time.monotonic_ns()}"
        root.mkdir()
        cluster = Cluster(root)
        request.addfinalizer(cluster.stop)
        return cluster.start_scheduler()

    return make


@pytest.fixture
def long_corpus(tmp_path, write_wav, tone):
    """Sixty 30-s files (one clip and links to it, each a file of the corpus): a run on one
    worker lasts a few seconds."""
    root = tmp_path / "audio" / "tones"
    clip = write_wav(tmp_path / "clip.wav", tone(440, 30.0))
    root.mkdir(parents=True)
    for i in range(60):
        (root / f"tones.{i:05d}.wav").symlink_to(clip)
    return root.parent


def _featx(*args, cwd):
    """``featx ARGS`` as a real process (stderr piped)."""
    return subprocess.Popen([sys.executable, "-m", "featx", *[str(a) for a in args]], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _journal_lines(path) -> int:
    try:
        return len(path.read_text().splitlines())
    except FileNotFoundError:
        return 0


def _check_one_line(stderr: str, *expected: str):
    """The run ended in one ``Error:`` line holding ``expected``: no traceback, no distributed log."""
    assert "Traceback" not in stderr and "distributed." not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and stderr.rstrip().endswith(errors[0].rstrip()), stderr
    for text in expected:
        assert text in errors[0], stderr


def test_no_workers_is_said_then_one_line_after_the_wait(new_cluster, long_corpus, tmp_path):
    cluster = new_cluster()
    out = tmp_path / "f.csv"
    start = time.monotonic()
    proc = _featx("extract", long_corpus, "-o", out, "--scheduler", cluster.address, "--wait-workers", "3",
                  cwd=tmp_path)
    _, stderr = proc.communicate(timeout=120)
    took = time.monotonic() - start
    assert proc.returncode == 1
    assert f"no Dask workers on {cluster.address}; waiting up to 3 s" in stderr
    _check_one_line(stderr, f"no workers on {cluster.address}", "--wait-workers")
    assert took < 30, took  # the wait, a connection and featx's start-up: no lingering
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("f.")) == []  # no journal left


def test_a_worker_that_joins_during_the_wait_does_the_run(new_cluster, long_corpus, tmp_path):
    cluster = new_cluster()
    proc = _featx("-q", "extract", long_corpus, "-o", tmp_path / "dask.csv", "--scheduler", cluster.address,
                  cwd=tmp_path)
    time.sleep(2)  # the command is waiting for a worker
    cluster.start_worker()
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr + cluster.text()
    local = _featx("-q", "extract", long_corpus, "-o", tmp_path / "local.csv", "-j", "1", cwd=tmp_path)
    assert local.wait(timeout=300) == 0
    assert (tmp_path / "dask.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()


def test_last_worker_killed_mid_run_keeps_finished_files_and_resumes(new_cluster, long_corpus, tmp_path):
    cluster = new_cluster()
    worker = cluster.start_worker()
    out = tmp_path / "f.csv"
    journal = tmp_path / "f.csv.partial"
    proc = _featx("extract", long_corpus, "-o", out, "--scheduler", cluster.address, "--wait-workers", "2",
                  cwd=tmp_path)
    deadline = time.monotonic() + 120
    while _journal_lines(journal) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.send_signal(signal.SIGKILL)  # the only worker, mid-run
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr
    _check_one_line(stderr, f"no workers on {cluster.address}")
    kept = _journal_lines(journal) - 1
    assert 2 <= kept < 60 and not out.exists()

    cluster.start_worker()
    again = _featx("extract", long_corpus, "-o", out, "--scheduler", cluster.address, cwd=tmp_path)
    _, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr
    assert f"{60 - kept} from an earlier run" not in stderr and f"{kept} from an earlier run" in stderr
    local = _featx("-q", "extract", long_corpus, "-o", tmp_path / "local.csv", "-j", "1", cwd=tmp_path)
    assert local.wait(timeout=300) == 0
    assert out.read_bytes() == (tmp_path / "local.csv").read_bytes()


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_scheduler_gone_mid_run_is_one_line(new_cluster, long_corpus, tmp_path, how):
    cluster = new_cluster()
    cluster.start_worker()
    journal = tmp_path / "f.csv.partial"
    proc = _featx("extract", long_corpus, "-o", tmp_path / "f.csv", "--scheduler", cluster.address,
                  cwd=tmp_path)
    deadline = time.monotonic() + 120
    while _journal_lines(journal) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    cluster.scheduler.send_signal(how)
    killed = time.monotonic()
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr
    _check_one_line(stderr, f"lost the connection to the Dask scheduler at {cluster.address}", "resume")
    assert time.monotonic() - killed < 40  # no minute-long close of a dead connection
    assert _journal_lines(journal) >= 3  # finished files are kept for the next run


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:notaport", "foo://bar:8786", "tcp://[::1",
                                     "127.0.0.1:99999", "tcp://:8786", "tcp://127.0.0.1:0", " "])
def test_malformed_address_is_one_line_at_once(address, corpus, tmp_path):
    start = time.monotonic()
    proc = _featx("extract", corpus, "-o", tmp_path / "f.csv", "--scheduler", address, cwd=tmp_path)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1
    _check_one_line(stderr, "--scheduler must be an address like tcp://host:8786")
    assert "Client.__del__" not in stderr
    assert time.monotonic() - start < 20  # no connection tried, nothing left running
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audio"]


def test_unreachable_scheduler_leaves_no_journal(corpus, tmp_path, monkeypatch):
    from featx import FeatureSettings
    from featx.errors import ConfigError
    from featx.extract import executors
    from featx.extract.runner import run_extraction

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setattr(executors, "CONNECT_TIMEOUT", 2)
    with pytest.raises(ConfigError, match=f"cannot connect to the Dask scheduler at 'tcp://127.0.0.1:{port}'"):
        run_extraction([corpus], tmp_path / "f.csv", settings=FeatureSettings(), progress=False,
                       scheduler=f"tcp://127.0.0.1:{port}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audio"]


def test_an_earlier_journal_is_kept_when_the_connection_fails(corpus, tmp_path, monkeypatch):
    from featx import FeatureSettings
    from featx.errors import ConfigError
    from featx.extract import executors
    from featx.extract.runner import run_extraction

    from featx.io.journal import Journal

    settings = FeatureSettings()
    journal = tmp_path / "f.csv.partial"
    with Journal(journal, {"kind": "extract", "settings": settings.to_dict()}):  # an earlier run's
        pass
    before = journal.read_bytes()
    monkeypatch.setattr(executors, "CONNECT_TIMEOUT", 1)
    # refused at once, or (on a loaded machine) no answer within the second: one line either way
    with pytest.raises(ConfigError, match="cannot connect to the Dask scheduler|does not answer as a Dask"):
        run_extraction([corpus], tmp_path / "f.csv", settings=settings, progress=False,
                       scheduler="tcp://127.0.0.1:1")
    assert journal.read_bytes() == before


def test_sweep_without_workers_stops_after_the_wait(new_cluster, tmp_path, synthetic_feature_csv, monkeypatch):
    from featx.errors import ConfigError
    from featx.extract import executors
    from featx.models.registry import get_model
    from featx.sweep.plan import SweepOptions, plan_sweep
    from featx.sweep.runner import run_sweep
    from featx.sweep.space import space_from_options

    cluster = new_cluster()
    monkeypatch.setattr(executors, "WAIT_WORKERS", 2.0)
    csv = synthetic_feature_csv(tmp_path / "t.csv", n_tracks=4, n_segments=2, classes=["a", "b"], seed=0,
                                separation=2.0, track_spread=0.5, row_spread=0.5)
    options = SweepOptions(csv=csv, model="knn", output=tmp_path / "sweep", folds=2, retrain_best=False,
                           scheduler=cluster.address).validate()
    start = time.monotonic()
    with pytest.raises(ConfigError, match=f"no workers on {cluster.address} for 2 s"):
        run_sweep(plan_sweep(options, space_from_options(get_model("knn"), ["n_neighbors=1,3"])),
                  progress=False, report=False)
    assert time.monotonic() - start < 30


@pytest.mark.parametrize("value", [-1, float("nan"), float("inf"), "soon", True])
def test_wait_workers_must_be_seconds(value):
    from featx.errors import ConfigError
    from featx.extract.executors import check_wait_workers

    with pytest.raises(ConfigError, match="wait_workers must be a number of seconds >= 0"):
        check_wait_workers(value)


class _Server:
    """A TCP server on localhost that is not a Dask scheduler: it accepts connections and
    then says nothing (``silent``) or answers with an HTTP error (``http``)."""

    def __init__(self, kind):
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.address = f"tcp://127.0.0.1:{self.sock.getsockname()[1]}"
        self.kind, self.conns = kind, []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            if self.kind == "http":
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" * 4)

    def close(self):
        for conn in self.conns:
            conn.close()
        self.sock.close()


@pytest.mark.parametrize("kind, expected", [
    ("silent", "does not answer as a Dask scheduler (no reply in 2 s)"),
    ("http", "does not speak Dask's protocol"),
])
def test_a_server_that_is_no_scheduler_is_one_line_in_bounded_time(corpus, tmp_path, monkeypatch, kind, expected):
    """A server that accepted the connection and said nothing kept featx waiting for ever."""
    from featx import FeatureSettings
    from featx.errors import ConfigError
    from featx.extract import executors
    from featx.extract.runner import run_extraction

    server = _Server(kind)
    monkeypatch.setattr(executors, "CONNECT_TIMEOUT", 2)
    start = time.monotonic()
    try:
        with pytest.raises(ConfigError, match=re.escape(expected)):
            run_extraction([corpus], tmp_path / "f.csv", settings=FeatureSettings(), progress=False,
                           scheduler=server.address)
    finally:
        server.close()
    assert time.monotonic() - start < 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audio"]


def test_a_worker_address_is_not_the_scheduler(new_cluster, corpus, tmp_path):
    from distributed import Client

    from featx import FeatureSettings
    from featx.errors import ConfigError
    from featx.extract.runner import run_extraction

    cluster = new_cluster()
    cluster.start_worker()
    with Client(cluster.address, timeout=30, set_as_default=False) as client:
        client.wait_for_workers(1, timeout=60)
        worker = next(iter(client.scheduler_info()["workers"]))
    with pytest.raises(ConfigError, match=f"{worker} is a Dask Worker, not the scheduler"):
        run_extraction([corpus], tmp_path / "f.csv", settings=FeatureSettings(), progress=False, scheduler=worker)


def test_a_frozen_scheduler_is_said_in_bounded_time(new_cluster, long_corpus, tmp_path, monkeypatch):
    """A scheduler stopped with SIGSTOP mid-run (its connection open) kept the run silent for 100 s."""
    import threading

    from featx import FeatureSettings
    from featx.errors import ConfigError
    from featx.extract import executors
    from featx.extract.runner import run_extraction

    cluster = new_cluster()
    cluster.start_worker()
    monkeypatch.setattr(executors, "CONNECT_TIMEOUT", 5)
    journal = tmp_path / "f.csv.partial"

    def freeze():
        deadline = time.monotonic() + 120
        while _journal_lines(journal) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        cluster.scheduler.send_signal(signal.SIGSTOP)
        frozen.append(time.monotonic())

    frozen: list = []
    threading.Thread(target=freeze, daemon=True).start()
    try:
        with pytest.raises(ConfigError, match=f"the Dask scheduler at {cluster.address} stopped answering"):
            run_extraction([long_corpus], tmp_path / "f.csv", settings=FeatureSettings(preset="gtzan"),
                           progress=False, scheduler=cluster.address)
        assert frozen and time.monotonic() - frozen[0] < 30
        assert _journal_lines(journal) >= 3  # finished files kept
    finally:
        cluster.scheduler.send_signal(signal.SIGCONT)


def test_sweep_with_a_malformed_address_writes_nothing(tmp_path, synthetic_feature_csv, run_cli):
    csv = synthetic_feature_csv(tmp_path / "t.csv", n_tracks=4, n_segments=2, classes=["a", "b"], seed=0,
                                separation=2.0, track_spread=0.5, row_spread=0.5)
    result = run_cli("sweep", csv, "-m", "knn", "-p", "n_neighbors=1,3", "--folds", "2", "-o", tmp_path / "s",
                     "--scheduler", "tcp://127.0.0.1:notaport", ok=False)
    assert "--scheduler must be an address like tcp://host:8786" in result.output
    assert not (tmp_path / "s").exists()
