"""featx's worker pool: its workers die with the process that started them (a real kill -9)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
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


@pytest.mark.slow
def test_quiet_parent_silences_warnings_in_pool_workers(tmp_path):
    (tmp_path / "noisy_task.py").write_text(textwrap.dedent("""
        import warnings
        def noisy(key):
            warnings.warn("noisy worker warning", RuntimeWarning)
            return {"key": key}
    """))
    script = textwrap.dedent("""
        import sys, warnings
        from featx.extract.pool import map_files
        from noisy_task import noisy
        if sys.argv[1] == "quiet":
            warnings.simplefilter("ignore")
        print(sorted(r["key"] for r in map_files(noisy, ["a", "b"], jobs=2)))
    """)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    runs = {mode: subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True,
                                 env=env, cwd=tmp_path, timeout=120) for mode in ("loud", "quiet")}
    for result in runs.values():
        assert result.returncode == 0 and "['a', 'b']" in result.stdout, result.stderr
    assert "noisy worker warning" in runs["loud"].stderr
    assert "noisy worker warning" not in runs["quiet"].stderr


def _dies_on_poison(key: str, marker: str) -> dict:
    """Task for the pool: killed outright (SIGKILL, like the out-of-memory killer) on 'poison'."""
    if os.path.basename(key).startswith("poison"):
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.05)
    return {"key": key, "value": marker + key, "pid": os.getpid()}


def test_a_file_that_kills_its_worker_is_recorded_and_the_others_finish():
    from featx.extract.pool import WORKER_DIED, map_files

    keys = [f"/corpus/good{i}.wav" for i in range(3)] + ["/corpus/poison.wav"]
    keys += [f"/corpus/good{i}.wav" for i in range(3, 7)]
    records = list(map_files(_dies_on_poison, keys, jobs=2, args=("ok:",)))
    by_key = {r["key"]: r for r in records}
    assert sorted(by_key) == sorted(keys) and len(records) == len(keys)
    assert by_key["/corpus/poison.wav"] == {"key": "/corpus/poison.wav", "error": WORKER_DIED}
    for key in keys:
        if key != "/corpus/poison.wav":
            assert by_key[key]["value"] == "ok:" + key
            assert by_key[key]["pid"] != os.getpid()  # computed in a worker process
    assert json.dumps(records)  # journal-ready records


def test_two_deadly_files_side_by_side_are_both_recorded():
    from featx.extract.pool import WORKER_DIED, map_files

    keys = ["/c/poison1.wav", "/c/poison2.wav", "/c/a.wav", "/c/b.wav"]
    records = {r["key"]: r for r in map_files(_dies_on_poison, keys, jobs=2, args=("",))}
    assert records["/c/poison1.wav"]["error"] == WORKER_DIED
    assert records["/c/poison2.wav"]["error"] == WORKER_DIED
    assert records["/c/a.wav"]["value"] == "/c/a.wav" and records["/c/b.wav"]["value"] == "/c/b.wav"


def _stamps_start(key: str, folder: str) -> dict:
    """Task for the pool: note when it started (a file per key), then work briefly."""
    with open(os.path.join(folder, os.path.basename(key)), "w") as f:
        f.write(repr(time.time()))
    time.sleep(0.05)
    return {"key": key}


def test_workers_start_their_next_file_while_the_parent_handles_a_result(tmp_path):
    """Each worker is handed its next file ahead: while the caller is busy with the first
    result, more files than workers have started; every file still comes back once."""
    from featx.extract.pool import map_files

    keys = [f"/c/f{i:02d}.wav" for i in range(12)]
    seen, first_done = [], None
    for record in map_files(_stamps_start, keys, jobs=2, args=(str(tmp_path),)):
        seen.append(record["key"])
        if first_done is None:
            time.sleep(0.5)  # the parent writing the first file's result
            first_done = time.time()
    assert sorted(seen) == keys  # each once
    started = [float(p.read_text()) for p in tmp_path.iterdir()]
    assert sum(t < first_done for t in started) > 2, sorted(started)
