"""The ``featx`` command line: one click group, thin commands.

Commands parse options, call the library, and turn :class:`featx.errors.FeatxError`
into a one-line error with a non-zero exit status. Nothing here imports TensorFlow:
model commands import it only when they run.
"""
from __future__ import annotations

import importlib

import click

from .._version import __version__
from .options import configure_logging


#: Every command: its name -> ``"module:attribute"`` in this package. A command's module is
#: imported only when that command runs (or when ``featx --help`` lists them all), so
#: ``featx extract`` never pays for the imports of the model and sweep commands.
COMMANDS = {
    "extract": "extract:extract",
    "demo": "extract:demo",
    "spectrograms": "spectrograms:spectrograms",
    "train": "models:train",
    "evaluate": "models:evaluate",
    "predict": "models:predict",
    "plot": "plot:plot",
    "models": "models:models",
    "sweep": "sweep:sweep",
    "blend": "blend:blend",
    "serve": "serve:serve",
}


class LazyGroup(click.Group):
    """A click group that imports a command's module only when the command is needed.

    Commands named in :data:`COMMANDS` are loaded by :meth:`get_command`; commands
    added with :meth:`add_command` work as in any click group.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command name, sorted, without importing any command module."""
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command ``cmd_name``, importing its module on first use; None if unknown."""
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, attribute = COMMANDS[cmd_name].split(":")
            command = getattr(importlib.import_module(f"{__package__}.{module}"), attribute)
            self.add_command(command, cmd_name)
        return self.commands.get(cmd_name)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        """As click's, with every command name (not only those loaded) offered as a
        "Did you mean" suggestion for an unknown one."""
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            name = getattr(exc, "command_name", None)
            if name is None or getattr(exc, "possibilities", None):
                raise
            raise type(exc)(name, possibilities=self.list_commands(ctx), ctx=ctx) from None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="featx")
@click.option("-v", "--verbose", count=True, help="More log output (repeatable).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr: no progress, notes or warnings (results still go to stdout).")
@click.pass_context
def main(ctx, verbose, quiet):
    """featx: music-genre classification from audio features and spectrograms.

    -v and -q may also follow the command's name.
    """
    ctx.ensure_object(dict)
    ctx.obj["quiet"] = quiet
    ctx.obj["verbose"] = verbose
    configure_logging(-1 if quiet else verbose)
