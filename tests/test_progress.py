"""featx.runtime.progress: the lines written when stderr is not a terminal."""
from __future__ import annotations

import io
import re
import time

from featx.runtime.progress import LineProgress


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
