"""``featx blend``: two-genre test clips (medleys and mixes) from a labelled corpus."""
from __future__ import annotations

from pathlib import Path

import click

from ..extract.blend import blend_corpus
from . import options
from ._common import handle_errors, info, progress_enabled


@click.command()
@options.inputs_arg
@click.option("-o", "--output-dir", required=True, type=click.Path(path_type=Path),
              help="Folder for the blends and labels.csv (new, empty, or an earlier blend output).")
@click.option("--kind", type=click.Choice(["medley", "mix", "both"]), default="both", show_default=True,
              help="medley: first half of A, then second half of B; mix: A and B at equal loudness.")
@click.option("--pairs", default=50, show_default=True, type=click.IntRange(min=1),
              help="Blends of each kind.")
@click.option("--crossfade", default=0.5, show_default=True, type=float, metavar="SECONDS",
              help="Length of a medley's equal-power crossfade (0: a hard cut).")
@click.option("--seed", default=0, show_default=True, type=int, help="Chooses the pairs (an integer >= 0).")
@click.option("--sr", default=None, type=int,
              help="Sample rate of the blends [default: the first clip's own rate].")
@click.option("--labels", default="folder", show_default=True, metavar="folder|FILE.csv",
              help="Genre of each clip: its parent folder, or a CSV with columns file,label.")
@options.verbosity
@click.pass_context
@handle_errors
def blend(ctx, inputs, output_dir, kind, pairs, crossfade, seed, sr, labels):
    """Make two-genre clips from single-genre ones, labelled 'A;B', for testing multi-genre models.

    Pairs clips of different genres from INPUTS (audio files or folders, labelled as
    for `featx extract`). Every blend is as long as the shorter clip of its pair and is
    written as a 16-bit WAV; OUTPUT_DIR/labels.csv names each blend's label and
    sources. Clips are resampled to one rate.

    \b
    Example:
      featx blend genres/ -o blends/ --pairs 25
      featx extract blends/ -o blends.csv --labels blends/labels.csv
    """
    result = blend_corpus(inputs, output_dir, kind=kind, n_pairs=pairs, crossfade=crossfade, seed=seed,
                          sr=sr, labels=labels, progress=progress_enabled(ctx))
    info(f"wrote {result.n_blends} blends of {len(result.genres)} genres at {result.sr} Hz to "
         f"{result.output_dir}; labels in {result.labels}", err=True)
