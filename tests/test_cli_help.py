"""The commands' ``--help`` texts and choices."""
from __future__ import annotations


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
