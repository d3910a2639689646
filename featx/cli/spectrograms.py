"""``featx spectrograms``: mel, MFCC and chroma images of every segment into a store."""
from __future__ import annotations

from pathlib import Path

import click

from ..errors import ConfigError
from ..features.spectrograms import SpectrogramSettings
from ..runtime.allocator import keep_work_arrays
from . import options
from ._common import handle_errors, progress_enabled, report_run


def _summary(result) -> str:
    """What a spectrogram run did, in one line."""
    if result.up_to_date:
        return f"{result.output} is up to date ({result.n_segments} segments); nothing to do"
    done_before = result.n_files - result.n_extracted
    resumed = f"; {done_before} file(s) were in it already" if done_before else ""
    return (f"added {result.n_added} segments from {result.n_extracted - len(result.errors)} file(s) "
            f"to {result.output} ({result.n_segments} in all) in {result.seconds:.1f} s{resumed}")


@click.command()
@options.inputs_arg
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Store folder to write or add to (created if needed).")
@click.option("--kinds", default="mel,mfcc,chroma", show_default=True, metavar="KIND[,KIND...]",
              help="Images to make: any of mel, mfcc, chroma, musicnn (the musicnn networks' 96 x 187 log-mel patch).")
@options.segment_seconds_opt
@click.option("--whole-file", is_flag=True,
              help="One image per whole file instead of segments (needs --image-size).")
@options.sr_opt
@options.labels_opt
@click.option("--n-fft", default=2048, show_default=True, type=int, help="STFT frame length (samples).")
@click.option("--hop-length", default=512, show_default=True, type=int, help="STFT hop (samples).")
@click.option("--n-mels", default=128, show_default=True, type=int,
              help="Mel bands (of the mel image and of the MFCCs' mel spectrum).")
@click.option("--fmax", default=8000.0, show_default=True, type=float,
              help="Highest frequency of the mel image, in Hz.")
@click.option("--n-mfcc", default=20, show_default=True, type=int,
              help="MFCCs per frame (13, 18, 20, 26 in the MFCC studies).")
@click.option("--n-chroma", default=12, show_default=True, type=int, help="Chroma bins per octave.")
@click.option("--image-size", default=None, metavar="HxW",
              help="Resize every image to HEIGHTxWIDTH pixels, e.g. 128x128 [default: keep].")
@click.option("--normalise", "normalisation", default="none", show_default=True,
              type=click.Choice(["none", "per-image"]),
              help="per-image: scale each image to [0, 1] by its own minimum and maximum.")
@options.jobs_opt
@click.option("--overwrite", is_flag=True,
              help="Rebuild a store featx made (other settings, or changed input files); "
                   "never a folder featx did not make.")
@options.scheduler_opt
@options.wait_workers_opt
@options.verbosity
@click.pass_context
@handle_errors(interrupted="finished files are kept in {output}; run the same command again to continue")
def spectrograms(ctx, inputs, output, kinds, segment_seconds, whole_file, sr, labels, n_fft,
                 hop_length, n_mels, fmax, n_mfcc, n_chroma, image_size, normalisation, jobs,
                 overwrite, scheduler, wait_workers):
    """Make mel, MFCC and chroma images of audio segments into a spectrogram store.

    Each INPUT is an audio file or a folder searched recursively. OUTPUT is a Zarr
    folder holding one array per kind (one image per segment), the row table (track,
    segment, filename, label, length) and the settings. Files are added as they
    finish: an interrupted run continues when the same command is run again. Files
    that cannot be decoded or are shorter than one segment are skipped, listed on
    stderr and in OUTPUT's errors CSV; the exit status is then 1. A file replaced
    (or relabelled) since it was added is refused, named; --overwrite rebuilds OUTPUT.

    \b
    Example:
      featx spectrograms genres/ -o spectro
      featx spectrograms genres/ -o mel128 --kinds mel --image-size 128x128 --normalise per-image
    """
    from ..extract.spectro_runner import run_spectrograms  # pulls in the store's checksums: only on this path

    keep_work_arrays()  # this process analyses files itself with -j 1 (featx's workers do it too)

    seconds = options.segment_seconds(segment_seconds, whole_file)
    if whole_file and image_size is None:
        raise ConfigError("--whole-file images differ in width from file to file; give --image-size "
                          "(e.g. 128x128) as well")
    settings = SpectrogramSettings(
        kinds=kinds, sr=sr, segment_seconds=seconds, n_fft=n_fft, hop_length=hop_length,
        n_mels=n_mels, fmax=fmax, n_mfcc=n_mfcc, n_chroma=n_chroma, image_size=image_size,
        normalisation=normalisation,
    )
    result = run_spectrograms(inputs, output, settings=settings, labels=labels, jobs=jobs,
                              overwrite=overwrite, progress=progress_enabled(ctx),
                              scheduler=scheduler, wait_workers=wait_workers)
    report_run(result, _summary(result))
