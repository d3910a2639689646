"""The command line's one error handler (featx/cli/_common.py): every command goes through it,
a full disk is one line naming the file, and errors that are bugs stay visible."""
from __future__ import annotations

import errno
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from featx.cli import main


def test_a_full_disk_is_one_line_naming_the_file(invoke, one_line_error):
    """A real ENOSPC (writing to /dev/full) in a command ends in one line."""
    import click

    from featx.cli._common import handle_errors

    @click.command()
    @click.option("-o", "--output")
    @handle_errors
    def write(output):
        with open(output, "w") as fh:  # a write on an open file: the error names no file
            fh.write("x" * 100_000)
            fh.flush()

    if not Path("/dev/full").exists():
        pytest.skip("/dev/full is not available on this system")
    result = CliRunner().invoke(write, ["-o", "/dev/full"])
    line = one_line_error(result, "/dev/full", "no space left")
    assert "Errno" not in line


def test_an_unexpected_os_error_is_not_hidden(invoke):
    """Only errors a user's disk or paths cause become one line; others stay visible as bugs."""
    import click

    from featx.cli._common import handle_errors

    @click.command()
    @handle_errors
    def broken():
        raise OSError(errno.EBADF, "Bad file descriptor")

    result = CliRunner().invoke(broken, [])
    assert isinstance(result.exception, OSError)


def test_train_onto_a_full_file_system_is_one_line(small_table, tmp_path, invoke, one_line_error):
    """``featx train`` into a real 16 KiB file system: the disk fills while the bundle is written."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip() or done.returncode})")
    try:
        result = invoke("-q", "train", small_table, "-m", "knn", "--folds", "2", "-o", mount / "bundle")
        one_line_error(result, str(mount), "no space left")
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_every_command_goes_through_the_one_error_handler():
    import click

    def leaves(command):
        if isinstance(command, click.Group):
            ctx = click.Context(command)
            for name in command.list_commands(ctx):
                yield from leaves(command.get_command(ctx, name))
        else:
            yield command

    commands = list(leaves(main))
    assert len(commands) >= 9
    unhandled = [c.name for c in commands if not getattr(c.callback, "handles_errors", False)]
    assert unhandled == []
