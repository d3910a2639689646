"""Every command's --help: its texts and choices, examples to copy, and -q/-v after the command's name."""
from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from featx.cli import main
from featx.cli.main import COMMANDS


@pytest.mark.parametrize("name", ["extract", "spectrograms", "train", "evaluate", "predict", "sweep", "blend"])
def test_help_shows_examples_of_the_command(name):
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0, result.output
    examples = re.search(r"^  Examples?:\n((?:    +featx .*\n)+)", result.output, re.M)
    assert examples, result.output
    assert examples.group(1).split()[1] == name  # the first example runs this very command


@pytest.mark.parametrize("name", sorted(set(COMMANDS) - {"plot"}) + ["plot bundle", "plot audio"])
def test_quiet_and_verbose_follow_the_command_name(name):
    for flag in ("-q", "-v"):
        result = CliRunner().invoke(main, [*name.split(), flag, "--help"])
        assert result.exit_code == 0 and "No such option" not in result.output, (name, flag, result.output)


def test_help_texts_and_choices(invoke):
    from click.testing import CliRunner

    from featx.cli import main

    runner = CliRunner()
    extract_help = runner.invoke(main, ["extract", "--help"]).output
    assert "[default|gtzan|musicnn-msd|musicnn-mtt]" in extract_help
    assert "INPUTS" in runner.invoke(main, ["blend", "--help"]).output.split("Options:")[0].split("Pairs")[1]
    predict_help = runner.invoke(main, ["predict", "--help"]).output
    assert "readable table" in predict_help
    assert "one boxplot PNG per feature" in runner.invoke(main, ["plot", "features", "--help"]).output
    assert "one PNG per file" in runner.invoke(main, ["plot", "audio", "--help"]).output
    for command in (["extract"], ["spectrograms"], ["sweep"]):
        assert "integer >= 1" in runner.invoke(main, [*command, "--help"]).output.replace("\n", " ")
    bad = runner.invoke(main, ["extract", ".", "-o", "x.csv", "--preset", "kaggle"])
    assert bad.exit_code == 2 and "'kaggle' is not one of" in bad.output
