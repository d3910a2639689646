"""Progress lines (featx/runtime/progress.py) where stderr is not a terminal: their interval,
their format, and a bad interval."""
from __future__ import annotations

import io
import re
import time

from featx.runtime.progress import LineProgress


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


def test_a_loop_that_showed_progress_ends_with_its_final_count():
    stream = io.StringIO()
    bar = LineProgress(total=60, desc="fold1", unit="epoch", interval=0.5, stream=stream)
    for epoch in range(60):
        if epoch == 30:
            time.sleep(0.6)  # one line falls due mid-way, as in a long fold
        bar.update()
    bar.close()
    lines = stream.getvalue().splitlines()
    assert re.fullmatch(r"fold1: 31/60 epochs, \d+\.\d s", lines[0]), lines
    assert re.fullmatch(r"fold1: 60/60 epochs, \d+\.\d s", lines[-1]), lines
    bar.close()  # closing twice says nothing more
    assert stream.getvalue().splitlines() == lines


def test_an_early_stop_ends_with_the_epochs_that_ran():
    stream = io.StringIO()
    with LineProgress(total=60, desc="fold2", unit="epoch", interval=0.5, stream=stream) as bar:
        bar.update()
        time.sleep(0.6)
        for _ in range(11):
            bar.update()
    assert [line.split(",")[0] for line in stream.getvalue().splitlines()] == [
        "fold2: 2/60 epochs", "fold2: 12/60 epochs"]


def test_a_short_loop_says_nothing_and_a_shown_final_line_is_not_repeated():
    quiet = io.StringIO()
    with LineProgress(total=3, desc="extract", unit="file", interval=3600, stream=quiet) as bar:
        for _ in range(3):
            bar.update()
    assert quiet.getvalue() == ""
    every = io.StringIO()
    with LineProgress(total=3, desc="extract", unit="file", interval=0, stream=every) as bar:
        for _ in range(3):
            bar.update()
    assert [line.split(",")[0] for line in every.getvalue().splitlines()] == [
        "extract: 1/3 files", "extract: 2/3 files", "extract: 3/3 files"]


def test_a_wrapped_loop_ends_with_its_final_count():
    stream = io.StringIO()
    seen = []
    bar = LineProgress(range(5), desc="predict", unit="file", interval=0.5, stream=stream)
    for i in bar:
        seen.append(i)
        if i == 1:
            time.sleep(0.6)
    assert seen == [0, 1, 2, 3, 4]
    assert [line.split(",")[0] for line in stream.getvalue().splitlines()] == [
        "predict: 2/5 files", "predict: 5/5 files"]
