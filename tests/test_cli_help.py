"""Every command's --help: examples to copy, and -q/-v after the command's name."""
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
