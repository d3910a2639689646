"""A bundle's folder: its file names, and when featx may write into or replace it."""
from __future__ import annotations

from pathlib import Path

from ..errors import OutputError
from ..io.guard import Legacy, claim_folder, folder_state, json_says

FORMAT = "featx-bundle"
#: The newest bundle format this featx reads. 1: featx 0.1.0 (scikit-learn models as their
#: training rows, refitted at loading); 2: scikit-learn models saved with skops. A bundle
#: records the oldest format that holds its files (Keras bundles are still format 1).
FORMAT_VERSION = 2
METADATA = "metadata.json"
PREPROCESSING = "preprocessing.json"
KERAS_MODEL = "model.keras"
BASELINE = "baseline.npz"
#: The files a bundle's model consists of, each read by its family when the bundle loads: a
#: bundle that records their SHA-256 (``files.sha256`` of ``metadata.json``) must list every
#: one it holds.
MODEL_FILES = (KERAS_MODEL, "model.skops", "model_check.npz", "model_arrays.npz", "distance.npz", PREPROCESSING,
               BASELINE)


#: Every path a bundle can hold: a folder without a marker (written before featx left folder
#: markers, or whose marker was lost) is taken for a bundle only when it holds nothing else.
LEGACY_LAYOUT = (KERAS_MODEL, BASELINE, "model.skops", "model_check.npz", "model_arrays.npz", "distance.npz",
                 PREPROCESSING, METADATA, "metrics.json", "predictions.csv", "history.json", "report.md", "figures/*.png",
                 *(f"evaluation/*/{name}" for name in ("metrics.json", "predictions.csv", "history.json",
                                                       "report.md", "figures/*.png")))


def legacy_bundle():
    """How a bundle folder written before folder markers is recognised (see :mod:`featx.io.guard`).

    Only when every file in it is one the bundle format writes (:data:`LEGACY_LAYOUT`),
    nothing in it is a link, and ``metadata.json`` says ``"format": "featx-bundle"``.
    """
    return Legacy(FORMAT, LEGACY_LAYOUT, json_says(METADATA, "format", FORMAT))


def legacy_figures(directory: Path):
    """How the ``figures`` folder of a bundle written before folder markers is recognised:
    it holds only the figures a bundle has, and ``directory`` is such a bundle."""
    bundle = json_says(METADATA, "format", FORMAT)
    names = tuple(p.removeprefix("figures/") for p in LEGACY_LAYOUT if p.startswith("figures/"))
    return Legacy("featx-output", names, lambda folder: bundle(Path(directory)))


def check_output_dir(directory, *, overwrite: bool) -> Path:
    """Raise unless a bundle may be written to ``directory`` (nothing is changed).

    ``directory`` may be new or empty; a folder featx wrote a bundle into needs
    ``overwrite``; any other non-empty folder is refused, whatever it holds.

    Raises
    ------
    OutputError
        ``directory`` is a file or a symbolic link, was not written by featx, or holds
        a bundle and ``overwrite`` is false.
    """
    directory = Path(directory)
    state = folder_state(directory, FORMAT, legacy=legacy_bundle())
    if state in ("ours", "legacy") and not overwrite:
        raise OutputError(f"{directory}: folder is not empty; pass overwrite to replace the featx "
                          "model bundle in it", param="overwrite")
    return directory


def prepare_output_dir(directory, *, overwrite: bool) -> Path:
    """Create ``directory`` after :func:`check_output_dir`, deleting an old bundle's files.

    Only the files featx listed in the folder's marker are deleted; anything a user
    added to the folder stays.
    """
    directory = check_output_dir(directory, overwrite=overwrite)
    return claim_folder(directory, FORMAT, legacy=legacy_bundle(), clear=True)
