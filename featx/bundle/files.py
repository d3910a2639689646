"""Writing and reading a bundle folder.

A bundle is a folder::

    model.keras          a Keras network (loaded with safe_mode=True), or
    model.skops          a scikit-learn estimator (skops: only trusted types are rebuilt),
    model_check.npz      with a few training rows and the probabilities it gave them
    model_arrays.npz     the same estimator as plain arrays, where featx.models.portable
                         covers it: predictions then need neither scikit-learn nor skops
    preprocessing.json   feature columns (or image kinds), classes, scaler or image statistics
    metadata.json        versions, model, hyperparameters, extraction settings,
                         resolved training config, seed, data fingerprint
    metrics.json, predictions.csv, history.json, report.md, figures/*.png

Nothing in a bundle is unpickled and no code from it runs. Every value read is
checked first (:mod:`featx.bundle.checks`, and the model's family for its own
files): a tampered or damaged bundle is one ``corrupt bundle: <file>: <field> ...``
error, never wrong predictions or a hang. Bundles written by featx 0.1.0 (format 1,
scikit-learn models stored as their training rows) still load.
"""
from __future__ import annotations

import datetime as _dt
import logging
import warnings
from pathlib import Path

import numpy as np

from ..errors import BundleError, FeatxError
from ..io.digest import file_sha256
from ..io.jsonfile import write_json
from ..models.fields import corrupt, read_json
from ..models.registry import get_model
from .checks import check_agreement, check_digests, check_metadata
from .folder import FORMAT, FORMAT_VERSION, METADATA
from .model import Bundle
from .multilabel import thresholds_metadata

logger = logging.getLogger(__name__)

__all__ = ["write_bundle", "save_bundle", "load_bundle", "file_sha256", "write_json", "read_json"]


# ---------------------------------------------------------------------------
# Writing


def write_bundle(directory, model, *, config, table, final_fit: dict, split: str, leaky: bool,
                 device: str, seconds: float, thresholds=None, confidence: dict | None = None,
                 extra: dict | None = None) -> Path:
    """Write a fitted model, its preprocessing and ``metadata.json`` into ``directory`` (which must exist).

    Parameters
    ----------
    directory : path
    model : ModelFamily
        The fitted model object.
    config : TrainConfig
        The resolved configuration it was trained with.
    table : FeatureTable or StoreTable
        The table it was trained on (its path, checksum and tracks are recorded).
    final_fit : dict
        ``rows`` (what it was fitted on, in words), ``train`` and ``valid`` (row indices), ``seed``.
    split : str
        How the run was evaluated, in words; ``leaky`` when segments of a track could
        fall on both sides.
    device : str
    seconds : float
        How long the training run took.
    thresholds : np.ndarray, optional
        A multi-label model's per-genre decision thresholds.
    confidence : dict, optional
        The calibration and ``uncertain`` threshold fitted on held-out predictions
        (:func:`featx.training.confidence.fit_confidence`); without it, predictions carry
        no ``confidence`` or ``uncertain`` column.
    extra : dict, optional
        More entries for ``metadata.json``.
    """
    directory = Path(directory)
    files = model.save(directory)
    distance = model.save_distance(directory)
    # Taken from the files as written: at loading, a file from another bundle (even of the same
    # model and columns) no longer matches.
    digests = {name: file_sha256(directory / name) for name in [*files, *([distance] if distance else [])]}
    rows = np.concatenate([np.asarray(final_fit["train"]), np.asarray(final_fit["valid"])]).astype(int)
    metadata = {
        "format": FORMAT,
        "format_version": model.format_version,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": model.installed_versions(),
        "model": model.name,
        "kind": model.library,
        "input": model.input,
        "params": config.to_dict()["params"],
        "classes": model.classes,
        "multi_label": model.multi_label,
        "settings": None, "settings_source": "unknown", "segmented": False, "max_segments": None,
        "clip_samples": None,
        **model.record(),
        "config": config.to_dict(),
        "seed": config.seed,
        "final_fit": {"rows": final_fit["rows"], "n_train": int(len(final_fit["train"])),
                      "n_valid": int(len(final_fit["valid"])), "seed": int(final_fit.get("seed", config.seed)),
                      # Tracks the saved model has seen: evaluate and predict warn when they come back.
                      "tracks": sorted({str(t) for t in table.tracks[rows]})},
        "training_data": {
            "path": str(table.path) if table.path else None,
            "sha256": file_sha256(table.path) if table.path and Path(table.path).is_file() else None,
            "rows": table.n_rows,
            "tracks": int(len(set(table.tracks))),
        },
        "split": split,
        "leaky_split": leaky,
        "device": device,
        "train_seconds": round(seconds, 2),
        "files": {"model": files[0], **({"distance": distance} if distance else {}), "sha256": digests},
        **({"confidence": confidence} if confidence else {}),
        **thresholds_metadata(model, config, thresholds),
        **(extra or {}),
    }
    write_json(directory / METADATA, metadata)
    return directory


def save_bundle(result, directory, *, table, extra: dict | None = None) -> Path:
    """Write the model of a training run (:class:`~featx.training.cv.TrainResult`) into ``directory``."""
    return write_bundle(directory, result.model, config=result.config, table=table, final_fit=result.final_fit,
                        split=result.plan.description, leaky=result.plan.leaky, device=result.device,
                        seconds=result.seconds, thresholds=result.thresholds,
                        confidence=getattr(result, "confidence", None), extra=extra)


# ---------------------------------------------------------------------------
# Loading


def _check_versions(metadata: dict, directory: Path, now: dict) -> None:
    saved = metadata.get("versions") or {}
    differ = [f"{k} {saved[k]} (now {now[k]})" for k in ("featx", "scikit-learn", "numpy", "keras",
                                                          "keras_backend")
              if k in saved and k in now and str(saved[k]) != str(now[k])]
    if differ:
        warnings.warn(
            f"{directory}: bundle was saved with different library versions: {', '.join(differ)}; "
            "results may differ slightly",
            UserWarning, stacklevel=3,
        )


def load_bundle(directory):
    """Load a bundle written by :func:`save_bundle` (or by featx 0.1.0).

    Returns
    -------
    Bundle

    Raises
    ------
    BundleError
        Missing folder or files, corrupt content, unknown model.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise BundleError(f"{directory}: no such bundle folder; expected the output_dir of a training run "
                          "(a folder holding metadata.json)")
    meta_path = directory / METADATA
    metadata = read_json(meta_path)
    if metadata.get("format") != FORMAT:
        raise BundleError(f"{meta_path}: not a featx bundle (format={metadata.get('format')!r})")
    version = metadata.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise corrupt(meta_path, "format_version", "must be an integer >= 0", version)
    if version > FORMAT_VERSION:
        raise BundleError(
            f"{directory}: bundle format {version} is newer than this featx "
            f"understands ({FORMAT_VERSION}); upgrade featx"
        )
    if not isinstance(metadata.get("model"), str):
        raise corrupt(meta_path, "model", "must be the name of a model", metadata.get("model"))
    try:
        spec = get_model(metadata["model"])
    except FeatxError as exc:
        raise BundleError(f"corrupt bundle: {meta_path}: model: {exc}") from None
    params = check_metadata(meta_path, metadata, spec)
    _check_versions(metadata, directory, spec.family.installed_versions())
    check_digests(meta_path, metadata)  # before any model file is parsed
    model = spec.family.load(spec, directory, metadata, params)
    check_agreement(meta_path, metadata, model)
    return Bundle(directory, model, metadata)
