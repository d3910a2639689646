"""Start-up of the ``featx`` command line: a command imports only what it needs.

Each check runs a fresh Python process, since an earlier test may have imported anything.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: Packages that neither ``featx --help`` nor ``featx extract --help`` may import.
HEAVY = ("pandas", "scipy", "sklearn", "numba", "tensorflow", "keras")

#: Runs the command line in-process on ``sys.argv[1:]``, then prints the imported modules.
_WRAPPER = (
    "import json, sys\n"
    "from featx.cli import main\n"
    "main(sys.argv[1:], prog_name='featx', standalone_mode=False)\n"
    "print('MODULES ' + json.dumps(sorted(sys.modules)))\n"
)


def _modules_after(*args: str) -> tuple[str, set[str]]:
    """The text ``featx ARGS`` printed and the modules it had imported, in a fresh process."""
    done = subprocess.run([sys.executable, "-c", _WRAPPER, *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    text, _, modules = done.stdout.rpartition("MODULES ")
    return text, set(json.loads(modules))


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


def test_help_lists_every_command_without_heavy_imports():
    from featx.cli.main import COMMANDS

    text, modules = _modules_after("--help")
    listed = re.findall(r"^  (\w+)  ", text.split("Commands:")[1], flags=re.M)
    assert listed == sorted(COMMANDS)
    assert _heavy(modules) == []


def test_extract_help_imports_only_the_extract_command():
    text, modules = _modules_after("extract", "--help")
    assert "Usage: featx extract [OPTIONS] INPUTS..." in text
    assert _heavy(modules) == []
    commands = sorted(m for m in modules if m.startswith("featx.cli.") and m != "featx.cli.main")
    assert commands == ["featx.cli._common", "featx.cli.extract", "featx.cli.options"]


def test_listing_the_commands_imports_no_command_module():
    code = ("import sys, click\n"
            "from featx.cli import main\n"
            "print(main.list_commands(click.Context(main)))\n"
            "print(sorted(m for m in sys.modules if m.startswith('featx.cli.')))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    names, loaded = done.stdout.splitlines()
    assert names == str(["blend", "demo", "evaluate", "extract", "models", "plot", "predict",
                         "serve", "spectrograms", "sweep", "train"])
    assert loaded == str(["featx.cli.main", "featx.cli.options"])  # the shared options, no command


def test_each_command_is_loaded_from_its_table_entry():
    import click

    from featx.cli.main import COMMANDS, main

    ctx = click.Context(main)
    for name in COMMANDS:
        command = main.get_command(ctx, name)
        assert isinstance(command, click.Command) and command.name == name, name
    assert main.get_command(ctx, "no-such-command") is None


def test_help_shows_each_command_s_own_one_line_help():
    import click
    from click.testing import CliRunner

    from featx.cli import main

    text = CliRunner().invoke(main, ["--help"], terminal_width=80).output
    rows = dict(re.findall(r"^  (\w+) +(.+)$", text.split("Commands:")[1], flags=re.M))
    ctx = click.Context(main)
    for name in main.list_commands(ctx):
        shown = rows[name].removesuffix("...")
        assert len(shown) > 20 and " ".join(main.get_command(ctx, name).help.split()).startswith(shown), name


@pytest.mark.parametrize(("typed", "suggested"), [("evalute", "evaluate"), ("extrct", "extract")])
def test_a_mistyped_command_is_a_usage_error_with_a_suggestion(typed, suggested):
    import click

    done = subprocess.run([sys.executable, "-m", "featx", typed], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    if hasattr(click.exceptions, "NoSuchCommand"):  # click >= 8.4 suggests close names
        assert last == f"Error: No such command '{typed}'. Did you mean '{suggested}'?"
    else:
        assert last == f"Error: No such command '{typed}'."


# ---------------------------------------------------------------------------
# the outcome lines of extract and spectrograms


def _broken_clip(corpus: Path) -> Path:
    bad = corpus / "tones" / "tones.00002.wav"
    bad.write_text("not audio")
    return bad


def test_extract_reports_skipped_files_then_its_summary(corpus, tmp_path):
    from click.testing import CliRunner

    from featx.cli import main

    bad = _broken_clip(corpus)
    out = tmp_path / "f.csv"
    args = ["extract", str(corpus), "-o", str(out), "-j", "1", "--segment-seconds", "2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 3, result.stderr
    assert lines[0].startswith(f"skipped {bad}: ")
    assert re.fullmatch(rf"wrote 12 rows from 4 file\(s\) to {re.escape(str(out))} in \d+\.\d s", lines[1])
    assert re.fullmatch(r"1 file\(s\) skipped; see .+\.csv", lines[2])

    quiet = CliRunner().invoke(main, ["-q", *args])
    assert quiet.exit_code == 1
    assert [line for line in quiet.stderr.splitlines() if "wrote" in line or "up to date" in line] == []
    assert quiet.stderr.splitlines()[-1] == lines[2]


def test_spectrograms_reports_skipped_files_then_its_summary(corpus, tmp_path):
    from click.testing import CliRunner

    from featx.cli import main

    bad = _broken_clip(corpus)
    out = tmp_path / "store"
    result = CliRunner().invoke(main, ["spectrograms", str(corpus), "-o", str(out), "-j", "1",
                                       "--segment-seconds", "2", "--kinds", "mel"])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 3, result.stderr
    assert lines[0].startswith(f"skipped {bad}: ")
    assert re.fullmatch(rf"added 12 segments from 4 file\(s\) to {re.escape(str(out))} \(12 in all\) "
                        rf"in \d+\.\d s", lines[1])
    assert re.fullmatch(r"1 file\(s\) skipped; see .+\.csv", lines[2])


def test_an_extraction_imports_no_librosa_scipy_pandas_or_numba(tmp_path, write_wav, genre_clip):
    """With the kernels cached, a whole `featx extract` run (default preset, WAV input)
    loads none of the libraries whose start-up dominated a short run."""
    write_wav(tmp_path / "in" / "a.wav", genre_clip("tones", 1, seconds=4.0))
    write_wav(tmp_path / "in" / "b.wav", genre_clip("noise", 2, seconds=4.0))
    args = ("-q", "extract", str(tmp_path / "in"), "-o", str(tmp_path / "f.csv"), "-j", "1")
    _modules_after(*args)  # builds the kernels if this machine has none cached yet
    _, modules = _modules_after(*args, "--overwrite")
    assert (tmp_path / "f.csv").read_text().count("\n") == 3  # header and one 3-s row each
    loaded = sorted({m.split(".")[0] for m in modules} & {"librosa", "scipy", "pandas", "numba", "sklearn",
                                                          "joblib", "tensorflow", "keras"})
    assert loaded == []
