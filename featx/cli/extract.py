"""``featx extract`` and ``featx demo``."""
from __future__ import annotations

from pathlib import Path

import click

from ..extract.demo import run_demo
from ..extract.runner import run_extraction
from ..features.settings import PRESETS, FeatureSettings
from ..runtime.allocator import keep_work_arrays
from . import options
from ._common import handle_errors, progress_enabled, report_run


def _summary(result) -> str:
    """What an extraction did, in one line."""
    if result.up_to_date:
        return f"{result.output} is up to date ({result.n_rows} rows); nothing to do"
    done_before = result.n_files - result.n_extracted
    resumed = f", {done_before} from an earlier run" if done_before else ""
    return (f"wrote {result.n_rows} rows from {result.n_files - len(result.errors)} file(s) "
            f"to {result.output} in {result.seconds:.1f} s{resumed}")


@click.command()
@options.inputs_arg
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="CSV file to write (its folder is created if needed); a .parquet name "
                   "writes a Parquet table with the same columns and numbers.")
@click.option("--preset", type=click.Choice(PRESETS), default="default", show_default=True,
              help="Column set. 'gtzan' writes exactly the Kaggle "
                   "GTZAN columns; 'default' adds spectral contrast per band; 'musicnn-msd' "
                   "and 'musicnn-mtt' write a pretrained musicnn network's embedding "
                   "(emb_0..emb_199) and 50 tag probabilities (tag_*), averaged per segment "
                   "(needs: pip install --no-deps musicnn==0.1.0).")
@options.segment_seconds_opt
@click.option("--whole-file", is_flag=True,
              help="One row per whole file (features_30_sec.csv style) instead of segments.")
@options.sr_opt
@options.labels_opt
@options.jobs_opt
@click.option("--overwrite", is_flag=True,
              help="Replace an existing output or unfinished run made with other settings.")
@options.scheduler_opt
@options.wait_workers_opt
@options.verbosity
@click.pass_context
@handle_errors(interrupted="finished files are kept; run the same command again to continue")
def extract(ctx, inputs, output, preset, segment_seconds, whole_file, sr, labels, jobs, overwrite,
            scheduler, wait_workers):
    """Extract GTZAN-style features from audio files or folders into a CSV.

    Each INPUT is an audio file (.wav .au .flac .ogg .mp3 ...) or a folder searched
    recursively. Files that cannot be decoded or are shorter than one segment are
    skipped, listed on stderr and in OUTPUT's errors CSV; the exit status is then 1.
    An interrupted run continues where it stopped when re-run with the same command.

    \b
    Example:
      featx extract genres/ -o features_csv/features_3_sec.csv
      featx extract genres/ -o features_csv/features_30_sec.csv --preset gtzan --whole-file
    """
    keep_work_arrays()  # this process analyses files itself with -j 1 (featx's workers do it too)

    settings = FeatureSettings(preset=preset, sr=sr,
                               segment_seconds=options.segment_seconds(segment_seconds, whole_file))
    result = run_extraction(
        inputs, output, settings=settings, labels=labels, jobs=jobs,
        overwrite=overwrite, progress=progress_enabled(ctx), scheduler=scheduler,
        wait_workers=wait_workers,
    )
    report_run(result, _summary(result))


@click.command()
@click.option("-o", "--output-dir", default="featx-demo", show_default=True,
              type=click.Path(path_type=Path), help="Folder for the demo corpus and CSV.")
@click.option("-j", "--jobs", type=int, default=1, show_default=True,
              help="Worker processes (the corpus is small: one is enough).")
@options.verbosity
@click.pass_context
@handle_errors
def demo(ctx, output_dir, jobs):
    """Synthesise a small labelled audio corpus and extract its features end to end.

    Writes OUTPUT_DIR/audio/<genre>/*.wav (synthetic clips), then runs the same
    extraction as `featx extract OUTPUT_DIR/audio -o OUTPUT_DIR/features.csv`,
    and prints a summary of the table it wrote.
    """
    run_demo(output_dir, jobs=jobs, progress=progress_enabled(ctx), echo=click.echo)
