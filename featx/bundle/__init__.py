"""A trained model's folder: its format, folder rules, checks, loading and prediction.

* :mod:`featx.bundle.folder`: file names, the format version, when a folder may be
  written or replaced;
* :mod:`featx.bundle.checks`: the checks of ``metadata.json``;
* :mod:`featx.bundle.files`: writing and loading a bundle (the model's own files are
  written and read by its family, :mod:`featx.models`);
* :mod:`featx.bundle.model`: :class:`Bundle`, a loaded model with predictions on
  tables, audio files and arrays;
* :mod:`featx.bundle.multilabel`: a multi-label model's thresholds and ``genres`` column.
"""
from __future__ import annotations

from .files import file_sha256, load_bundle, read_json, save_bundle, write_bundle, write_json
from .folder import (BASELINE, FORMAT, FORMAT_VERSION, KERAS_MODEL, LEGACY_LAYOUT, METADATA, PREPROCESSING,
                     check_output_dir, legacy_bundle, legacy_figures, prepare_output_dir)
from .model import Bundle, audio_files, per_file

__all__ = ["Bundle", "load_bundle", "read_json", "save_bundle", "write_bundle", "write_json", "file_sha256", "audio_files",
           "per_file", "check_output_dir", "prepare_output_dir", "legacy_bundle", "legacy_figures", "FORMAT",
           "FORMAT_VERSION", "METADATA", "PREPROCESSING", "KERAS_MODEL", "BASELINE", "LEGACY_LAYOUT"]
