"""What the server computes for one uploaded file, and what it says about its model.

:class:`Analyser` decodes an upload once, at the model's rate, and gives the samples
to :meth:`featx.bundle.Bundle.audio_windows`; the per-file row is
:meth:`featx.bundle.Bundle.file_frame` of those windows, the row ``featx predict``
prints for the same file (it computes it through the same two methods), and the
windows are the rows ``featx predict --timeline`` writes. Nothing here knows HTTP:
problems are raised as :class:`AnalysisError` with the status the server answers with.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._version import __version__
from ..bundle import Bundle
from ..bundle.timeline import timeline_frame
from ..errors import AudioError, AudioTooLongError
from ..extract.audio import MAX_SAMPLES, load
from .spectrogram import encode_overview, mel_overview, overview_settings

__all__ = ["Analyser", "AnalysisError", "client_name"]

#: Longest file name reported back (longer names are cut, keeping the extension).
MAX_NAME = 200


class AnalysisError(Exception):
    """A request the server refuses: ``status`` (an HTTP status code) and a one-line message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = int(status)


def client_name(filename: str | None) -> str:
    """The name an upload is reported under: the last part of the client's file name,
    without control characters, at most :data:`MAX_NAME` characters (``upload`` if empty)."""
    name = re.split(r"[\\/]", str(filename or ""))[-1]
    name = "".join(c for c in name if c.isprintable()).strip()
    if len(name) > MAX_NAME:
        suffix = Path(name).suffix[:16]
        name = name[:MAX_NAME - len(suffix)] + suffix
    return name or "upload"


def _json_value(value):
    """A value of the per-file frame as JSON: numbers as numbers, missing as null."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if value is None or (not isinstance(value, str) and value != value):  # NaN, NA
        return None
    return str(value)


@dataclass
class Analyser:
    """A loaded bundle and the limits of the server that serves it.

    Parameters
    ----------
    bundle : Bundle
        A model that classifies audio (:attr:`Bundle.sample_rate` known).
    max_seconds : float, optional
        Longest audio analysed; the decoder's own cap (:data:`MAX_SAMPLES` samples at
        the model's rate) applies in any case.
    """

    bundle: Bundle
    max_seconds: float | None = None

    def __post_init__(self):
        if self.bundle.sample_rate is None:
            raise ValueError("the bundle's model has no known sample rate: it cannot classify audio")
        self.mel_settings = overview_settings(self.bundle.spectrogram_settings, self.sample_rate)

    @property
    def sample_rate(self) -> int:
        """The rate uploads are decoded at (the model's), in Hz."""
        return int(self.bundle.sample_rate)

    @property
    def seconds_limit(self) -> float:
        """The longest audio analysed, in seconds: ``max_seconds`` or the decoder's cap."""
        cap = MAX_SAMPLES / self.sample_rate
        return cap if self.max_seconds is None else min(cap, float(self.max_seconds))

    @property
    def window_seconds(self) -> float | None:
        """How long each window of the timeline is (``None``: one window per file)."""
        bundle = self.bundle
        if bundle.whole_clips:
            return bundle.clip_seconds
        settings = bundle.settings or bundle.spectrogram_settings
        return settings.segment_seconds

    # -- one file -----------------------------------------------------------------------

    def analyse(self, path, name: str, *, spectrogram: bool = False) -> dict:
        """Classify the audio file ``path`` (reported as ``name``); the JSON of ``POST /predict``.

        Returns
        -------
        dict
            ``file``, ``duration`` (s), ``sample_rate``, ``genre``, [``genres``],
            ``probabilities`` (every genre), ``top`` (every genre, most probable first),
            every other column of the per-file frame as it is, ``window_seconds``,
            ``n_windows`` (the per-file frame's ``windows`` count), ``windows`` (``window``,
            ``start``, ``end``, ``probabilities`` of each), [``warnings``],
            and with ``spectrogram`` the mel image (:func:`~featx.serve.spectrogram.encode_overview`).

        Raises
        ------
        AnalysisError
            422: longer than :attr:`seconds_limit`, or too short for the model;
            415: the bytes cannot be decoded as audio.
        """
        path = Path(path)
        try:
            y = load(path, sr=self.sample_rate, max_seconds=self.max_seconds)
        except AudioTooLongError as exc:
            raise AnalysisError(422, _named(exc, path, name)) from None
        except AudioError as exc:
            raise AnalysisError(415, _named(exc, path, name)) from None
        try:
            windows = self.bundle.audio_windows(y, sr=self.sample_rate, name=name)
        except AudioError as exc:  # decoded, but not something the model can analyse
            raise AnalysisError(422, _named(exc, path, name)) from None
        result = self._result(windows)
        if spectrogram:
            mel_db, per_column = mel_overview(y, settings=self.mel_settings)
            result["spectrogram"] = encode_overview(mel_db, settings=self.mel_settings,
                                                    frames_per_column=per_column)
        seen = self.bundle.seen_tracks([name])
        if seen:
            result["warnings"] = [f"{name} has the name of a track this model was trained on: its prediction "
                                  "does not show how the model does on new music"]
        return result

    def _result(self, windows) -> dict:
        classes = self.bundle.classes
        row = self.bundle.file_frame(windows).iloc[0]
        proba = {c: float(row[c]) for c in classes}
        result = {"file": windows.name, "duration": float(windows.duration), "sample_rate": self.sample_rate,
                  "genre": _json_value(row["genre"])}
        if "genres" in row.index:
            result["genres"] = [g for g in str(row["genres"]).split(";") if g]
        result["probabilities"] = proba
        result["top"] = [{"genre": c, "probability": proba[c]}
                         for c in sorted(classes, key=lambda c: -proba[c])]
        known = {"file", "genre", "genres", "windows", *classes}
        for column in row.index:  # what else the per-file frame says about the file, as it says it
            if column not in known and column not in result:
                result[str(column)] = _json_value(row[column])
        timeline = timeline_frame(windows, classes)
        matrix = timeline[classes].to_numpy(dtype=np.float64)
        result["window_seconds"] = float(windows.window_seconds)
        result["n_windows"] = int(len(matrix))  # the per-file frame's ``windows`` count
        result["windows"] = [
            {"window": int(i), "start": float(start), "end": float(end),
             "probabilities": dict(zip(classes, map(float, matrix[i])))}
            for i, (start, end) in enumerate(zip(timeline["start"], timeline["end"]))]
        return result

    # -- the model ----------------------------------------------------------------------

    def model_info(self) -> dict:
        """What ``GET /model`` says: the model, its genres, its training data and its metrics."""
        bundle, meta = self.bundle, self.bundle.metadata
        data = meta.get("training_data") or {}
        info = {
            "model": bundle.spec.name,
            "description": bundle.spec.description,
            "kind": meta.get("kind"),
            "input": meta.get("input"),
            "genres": list(bundle.classes),
            "multi_label": bool(bundle.multi_label),
            "params": meta.get("params") or {},
            "created": meta.get("created"),
            "featx": {"trained_with": (meta.get("versions") or {}).get("featx"), "serving": __version__},
            "training_data": {"file": Path(str(data["path"])).name if data.get("path") else None,
                              "rows": data.get("rows"), "tracks": data.get("tracks"),
                              "sha256": data.get("sha256")},
            "split": meta.get("split"),
            "sample_rate": self.sample_rate,
            "window_seconds": self.window_seconds,
            "whole_clips": bool(bundle.whole_clips),
            "max_seconds": self.seconds_limit,
            "metrics": metrics_summary(bundle.metrics),
        }
        if bundle.multi_label:
            info["thresholds"] = dict(zip(bundle.classes, map(float, bundle.thresholds)))
        return info


def metrics_summary(metrics: dict | None) -> dict | None:
    """The headline figures of a bundle's cross-validated ``metrics.json`` (``None`` without one)."""
    if not metrics:
        return None
    summary = {"split": metrics.get("split_description") or metrics.get("split"),
               "folds": metrics.get("folds"), "leaky": metrics.get("leaky")}
    names = (("f1_micro", "f1_macro", "subset_accuracy", "average_precision_macro") if metrics.get("multi_label")
             else ("accuracy", "f1_macro", "precision_macro", "recall_macro"))
    for level in ("track", "segment"):
        part = metrics.get(level) or {}
        summary[level] = {name: part[name] for name in (*names, "n") if name in part}
    return summary


def _named(exc: Exception, path: Path, name: str) -> str:
    """``exc``'s message with the server's temporary path replaced by the client's file name."""
    return str(exc).replace(str(path), name)
