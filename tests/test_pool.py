"""featx's worker pool: its workers die with the process that started them (a real kill -9)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")

REPO = Path(__file__).resolve().parents[1]


def _children(pid: int) -> set[int]:
    """Live processes whose parent is ``pid``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            state = _state(int(entry.name))
            if state is not None and state[1] == pid and state[0] != "Z":
                found.add(int(entry.name))
    return found


def _state(pid: int):
    """``(state letter, parent pid)`` of a process, or ``None`` once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    return fields[0], int(fields[1])


def _alive(pid: int) -> bool:
    state = _state(pid)
    return state is not None and state[0] != "Z"


@pytest.fixture(scope="module")
def long_corpus(tmp_path_factory, write_wav):
    """Eight 4-minute clips of noise: each keeps a worker busy for a while."""
    root = tmp_path_factory.mktemp("long") / "audio"
    rng = np.random.default_rng(0)
    for k in range(8):
        write_wav(root / "noise" / f"noise.{k:05d}.wav", (0.1 * rng.standard_normal(240 * 22050)).astype(np.float32))
    return root


@pytest.mark.slow
@pytest.mark.parametrize("command", ["spectrograms", "extract"])
def test_workers_die_with_a_parent_killed_mid_run(long_corpus, tmp_path, command):
    out = tmp_path / ("store" if command == "spectrograms" else "features.csv")
    env = {**os.environ}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    proc = subprocess.Popen([sys.executable, "-m", "featx", "-q", command, str(long_corpus), "-o", str(out),
                             "-j", "2"], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        busy_since = None
        while time.monotonic() < deadline and proc.poll() is None:
            workers |= _children(proc.pid)
            if len(_children(proc.pid)) >= 2:
                busy_since = busy_since or time.monotonic()
                if time.monotonic() - busy_since > 0.5:  # started, and busy with the files
                    break
            time.sleep(0.02)
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()!r}"
        assert len(workers) >= 2, workers
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
            time.sleep(0.05)
        survivors = [pid for pid in workers if _alive(pid)]
        assert survivors == [], f"processes of the killed run still alive: {survivors}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        proc.stderr.close()


def test_a_worker_of_a_live_parent_keeps_working():
    """The watch does not end workers of a parent that is alive, however long it waits."""
    from featx.extract import pool

    executor = pool._executor(1, fresh=True)
    try:
        first = executor.submit(os.getpid).result(timeout=60)
        time.sleep(4 * pool.WATCH_SECONDS)
        assert executor.submit(os.getpid).result(timeout=60) == first
        assert executor.submit(os.getppid).result(timeout=60) == os.getpid()
    finally:
        executor.shutdown()
