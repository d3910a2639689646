"""``-q`` and ``-v``: quiet runs say nothing on stderr, and both work before or after the
command's name."""
from __future__ import annotations

import subprocess
import sys

import pytest

from featx.cli import main


#: Commands that do not take -q/-v after their name yet (featx/cli/models.py and sweep.py
#: apply featx.cli.options.verbosity when they do).
NOT_YET_VERBOSITY: set[str] = set()


@pytest.mark.slow
def test_quiet_runs_print_nothing_on_stderr(corpus, tmp_path, synthetic_feature_csv, invoke):
    out = tmp_path / "f.csv"
    table = synthetic_feature_csv(tmp_path / "t.csv", n_tracks=6, n_segments=1, classes=["a", "b"],
                                  seed=3, separation=3.0, track_spread=0.3, row_spread=0.1)
    runs = [
        ("extract", corpus, "-o", out, "-j", "1", "--segment-seconds", "2"),
        ("extract", corpus, "-o", out, "-j", "1", "--segment-seconds", "2"),  # up to date
        ("train", out, "-m", "svm", "--folds", "2", "-o", tmp_path / "b"),
        ("evaluate", tmp_path / "b", out, "-o", tmp_path / "e"),  # its tracks were trained on
        ("predict", tmp_path / "b", corpus, "-o", tmp_path / "p.csv", "-f", "csv"),
        ("plot", "bundle", tmp_path / "b", "-o", tmp_path / "fig"),
        ("sweep", table, "-m", "knn", "-p", "n_neighbors=1,3", "--folds", "2", "-o", tmp_path / "s"),
    ]
    for args in runs:
        result = invoke("-q", *args)
        assert result.exit_code == 0, (args, result.output)
        assert result.stderr == "", (args, result.stderr)
    # the same runs without -q do say things on stderr
    loud = invoke("evaluate", tmp_path / "b", out, "-o", tmp_path / "e2")
    assert loud.exit_code == 0 and "used to train this model" in loud.stderr


@pytest.mark.slow
def test_q_and_v_work_after_the_command_name(corpus, tmp_path, invoke):
    """``featx spectrograms -q`` was "No such option: -q"."""
    import click

    for name in sorted(main.list_commands(click.Context(main))):
        command = main.get_command(click.Context(main), name)
        leaves = command.commands.values() if isinstance(command, click.Group) else [command]
        for leaf in leaves:
            opts = {o for p in leaf.params for o in getattr(p, "opts", [])}
            if name not in NOT_YET_VERBOSITY:
                assert {"-q", "-v", "--quiet", "--verbose"} <= opts, (name, leaf.name)
    out = tmp_path / "f.csv"
    for args in (("extract", corpus, "-o", out, "-j", "1", "-q"),
                 ("spectrograms", corpus, "-o", tmp_path / "s", "--kinds", "mel", "-j", "1", "-q"),
                 ("blend", corpus, "-o", tmp_path / "b", "--pairs", "1", "-q"),
                 ("plot", "features", out, "-o", tmp_path / "p", "-q")):
        result = invoke(*args)
        assert result.exit_code == 0 and result.stderr == "", (args, result.output)
    (corpus / "tones" / "tones.00000.wav").touch()  # changed: analysed again
    featx = [sys.executable, "-m", "featx"]  # a fresh process: its own logging set-up
    again = subprocess.run([*featx, "extract", str(corpus), "-o", str(out), "-j", "1", "-v"],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "INFO: 3 of 4 file(s) unchanged since an earlier run" in again.stderr
    both = subprocess.run([*featx, "-v", "extract", str(corpus), "-o", str(out), "-j", "1", "-q"],
                          capture_output=True, text=True, timeout=300)  # -q wins wherever it stands
    assert both.returncode == 0 and both.stderr == ""
