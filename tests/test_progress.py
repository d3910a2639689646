"""Progress lines (featx/runtime/progress.py) where stderr is not a terminal: their interval,
their format, and a bad interval."""
from __future__ import annotations

import io
import re
import time


def test_extract_without_a_terminal_prints_progress_lines(tmp_path, tone, write_wav, monkeypatch, invoke):
    root = tmp_path / "audio"
    for i in range(6):
        write_wav(root / "g" / f"g.{i:05d}.wav", tone(220 + 40 * i, 3.5))
    monkeypatch.setenv("FEATX_PROGRESS_INTERVAL", "0")
    done = invoke("extract", root, "-o", tmp_path / "a.csv", "-j", "1")  # stderr is not a terminal
    assert done.exit_code == 0, done.stderr
    counts = [int(m.group(1)) for m in re.finditer(r"^extract: (\d+)/6 files, \d+\.\d s$",
                                                     done.stderr, re.M)]
    assert counts == [1, 2, 3, 4, 5, 6], done.stderr
    assert "\r" not in done.stderr and "it/s" not in done.stderr  # lines, not a tqdm bar
    # a long interval says nothing during a short run; -q never says anything
    monkeypatch.setenv("FEATX_PROGRESS_INTERVAL", "3600")
    slow = invoke("extract", root, "-o", tmp_path / "b.csv", "-j", "1")
    assert slow.exit_code == 0 and "extract:" not in slow.stderr and "wrote 6 rows" in slow.stderr
    monkeypatch.setenv("FEATX_PROGRESS_INTERVAL", "0")
    quiet = invoke("-q", "extract", root, "-o", tmp_path / "c.csv", "-j", "1")
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_progress_lines_follow_the_interval():
    from featx.runtime.progress import LineProgress

    stream = io.StringIO()
    bar = LineProgress(total=4, desc="trials", unit="trial", interval=0.2, stream=stream)
    bar.update()
    assert stream.getvalue() == ""
    time.sleep(0.25)
    bar.set_postfix_str("best f1_macro 0.5000")
    bar.update()
    bar.update()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and re.fullmatch(r"trials: 2/4 trials, 0\.\d s, best f1_macro 0\.5000", lines[0])


def test_a_bad_progress_interval_is_one_line(corpus, tmp_path, invoke, monkeypatch):
    monkeypatch.setenv("FEATX_PROGRESS_INTERVAL", "soon")
    done = invoke("extract", corpus, "-o", tmp_path / "a.csv")
    assert done.exit_code == 1
    assert done.stderr.strip().splitlines() == [
        "Error: FEATX_PROGRESS_INTERVAL must be a number of seconds >= 0. "
        "Received: FEATX_PROGRESS_INTERVAL='soon'"]
