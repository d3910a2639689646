"""Ctrl-C in ``featx train`` and ``featx sweep``: a real process gets a real SIGINT, exits 130
with one line and leaves no finished-looking output behind."""
from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FEATX = [sys.executable, "-m", "featx"]


def _wait_for_cpu(proc, seconds: float, limit: float = 120.0) -> None:
    """Wait until ``proc`` has used ``seconds`` of CPU time (imports done, fitting begun)."""
    tick = os.sysconf("SC_CLK_TCK")
    start = time.monotonic()
    while time.monotonic() - start < limit:
        assert proc.poll() is None, proc.communicate()
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        if (int(fields[11]) + int(fields[12])) / tick >= seconds:
            return
        time.sleep(0.2)
    raise AssertionError("the process never got going")


def _interrupted(args, cwd, default_sigint) -> str:
    """Run ``featx ARGS``, press Ctrl-C once it is busy training: it exits 130 without a
    traceback. Returns its stderr."""
    proc = subprocess.Popen(FEATX + args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)
    _wait_for_cpu(proc, 7.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err and "Training interrupted" not in err, err
    return err


@pytest.mark.slow
def test_ctrl_c_during_ensemble_train_exits_130_and_saves_nothing(tmp_path, default_sigint, gtzan_dir):
    err = _interrupted(["train", str(gtzan_dir / "features_30_sec.csv"), "-m", "ensemble", "-o", "out", "--folds", "2"],
                       tmp_path, default_sigint)
    assert "interrupted" in err
    assert not (tmp_path / "out" / "metadata.json").exists()


@pytest.mark.slow
def test_ctrl_c_during_ensemble_sweep_records_no_finished_trial(tmp_path, default_sigint, gtzan_dir):
    _interrupted(["sweep", str(gtzan_dir / "features_30_sec.csv"), "-m", "ensemble", "-o", "sw", "--folds", "5",
                  "-p", "nn_alpha=0.1,0.2"], tmp_path, default_sigint)
    journal = tmp_path / "sw" / "trials.jsonl"
    lines = journal.read_text().splitlines() if journal.exists() else []
    assert not [line for line in lines if '"status"' in line], lines
    assert not (tmp_path / "sw" / "best").exists()


PROGRESS_LINE = re.compile(r"^[\w .-]+: \d+(/\d+)? \w+, \d+\.\d s(, .*)?$")


@pytest.mark.slow
def test_ctrl_c_in_train_exits_130_with_one_line(tmp_path, synthetic_feature_csv, default_sigint):
    csv = synthetic_feature_csv(tmp_path / "t.csv", n_tracks=40, n_segments=1, classes=["a", "b", "c"],
                                seed=0, separation=1.0, track_spread=0.5, row_spread=0.1)
    env = {**os.environ, "FEATX_PROGRESS_INTERVAL": "0.2"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "featx", "train", str(csv), "-m", "mlp", "--units", "8",
         "--epochs", "100000", "--patience", "0", "--reduce-lr-patience", "0", "--folds", "2",
         "-o", str(tmp_path / "m")],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO, env=env,
        preexec_fn=default_sigint)
    lines = []
    try:
        selector = selectors.DefaultSelector()
        selector.register(proc.stderr, selectors.EVENT_READ)
        deadline = time.monotonic() + 180
        # wait until training reports its epochs: the run has really started
        while not any("epochs," in line for line in lines):
            assert time.monotonic() < deadline and proc.poll() is None, "".join(lines)
            if selector.select(timeout=1):
                lines.append(proc.stderr.readline())
        proc.send_signal(signal.SIGINT)
        out, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, "".join(lines) + rest
    messages = [line for line in rest.splitlines() if line and not PROGRESS_LINE.match(line)]
    assert messages == ["train: interrupted"], rest
    assert "Traceback" not in rest and "Aborted" not in rest
    assert not (tmp_path / "m").exists()
