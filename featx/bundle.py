"""Save and load trained models with their preprocessing and metadata.

A bundle is a folder::

    model.keras          Keras model (loaded with safe_mode=True), or
    baseline.npz         scikit-learn baseline: its training matrix as plain arrays
    preprocessing.json   feature columns, classes, scaler mean/scale
    metadata.json        versions, model, hyperparameters, extraction settings,
                         resolved training config, seed, data fingerprint
    metrics.json, predictions.csv, history.json, report.md, figures/*.png

Nothing in a bundle is unpickled. Keras models load in safe mode (no code from
the file runs). A scikit-learn baseline is stored as the standardised rows it
was fitted on plus its hyperparameters and seed, and refitted on load (these
estimators are deterministic for a fixed seed); the refit is checked against
probabilities saved at training time. Every value read is checked first
(:mod:`featx.bundle_checks`): a tampered or damaged bundle is one
``corrupt bundle: <file>: <field> ...`` error, never wrong predictions or a hang.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import platform
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from .bundle_api import BundleAPI
from .bundle_folder import (  # noqa: F401  (re-exported: featx.bundle is where callers look)
    BASELINE, FORMAT, FORMAT_VERSION, KERAS_MODEL, LEGACY_LAYOUT, METADATA, PREPROCESSING,
    check_output_dir, legacy_bundle, legacy_figures, prepare_output_dir)
from .data.table import FeatureTable, check_columns, track_name
from .io.atomic import atomic_open, atomic_save, atomic_write
from .errors import AudioError, BundleError, DataError, FeatxError
from .models.registry import ModelSpec, get_model
from .features.settings import FeatureSettings
from .training.preprocessing import Preprocessing
from .training.cv import TrainResult
from .training.fit import build_estimator, fit_estimator, predict_rows, sklearn_proba

logger = logging.getLogger(__name__)



def library_versions(*, keras_too: bool = True) -> dict:
    """Versions that matter for reproducing a bundle."""
    import sklearn

    versions = {"featx": __version__, "python": platform.python_version(),
                "numpy": np.__version__, "pandas": pd.__version__, "scikit-learn": sklearn.__version__}
    if keras_too:
        from ._keras import import_keras
        keras = import_keras()

        versions["keras"] = keras.__version__
        versions["keras_backend"] = keras.backend.backend()
        backend = versions["keras_backend"]
        try:
            module = __import__({"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend])
            versions[backend] = module.__version__
        except (KeyError, ImportError):  # pragma: no cover
            pass
    return versions


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (Path, tuple)):
        return str(value) if isinstance(value, Path) else list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_json(path, data) -> None:
    atomic_write(path, json.dumps(data, indent=2, default=_json_default) + "\n")


@dataclass
class Bundle(BundleAPI):
    """A loaded model with everything needed to use it on new data."""

    path: Path | None
    spec: ModelSpec
    model: object
    preprocessing: Preprocessing
    metadata: dict

    @property
    def classes(self) -> list[str]:
        return list(self.preprocessing.classes)

    @property
    def feature_columns(self) -> list[str]:
        return list(self.preprocessing.feature_columns)

    @property
    def settings(self) -> FeatureSettings | None:
        data = self.metadata.get("settings")
        return FeatureSettings.from_dict(data) if data else None

    @property
    def max_segments(self) -> int | None:
        return self.metadata.get("max_segments")

    @property
    def clip_samples(self) -> int | None:
        """Length of the whole clips a whole-file model was trained on, in samples.

        ``None`` for segment rows, and for bundles that do not record it.
        """
        value = self.metadata.get("clip_samples")
        if value is None:
            return None
        sr = self.settings.sr if self.settings is not None else 0
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= sr * 24 * 3600:
            raise BundleError(
                f"{self.name}: corrupt bundle: clip_samples must be a whole number of samples "
                f"between 1 and 24 h at {sr} Hz. Received: clip_samples={value!r}"
            )
        return value

    @property
    def clip_seconds(self) -> float | None:
        """:attr:`clip_samples` in seconds."""
        samples = self.clip_samples
        return samples / self.settings.sr if samples is not None else None

    @property
    def name(self) -> str:
        return str(self.path) if self.path is not None else "bundle"

    def check_table(self, table: FeatureTable) -> FeatureTable:
        """Check ``table`` has the model's feature columns and extraction settings."""
        check_columns(table, self.feature_columns, source=f"the model in {self.name}")
        mine, theirs = self.settings, table.settings
        if mine is not None and theirs is not None and mine != theirs:
            a, b = mine.to_dict(), theirs.to_dict()
            diff = [f"{k}={b[k]!r} (model: {a[k]!r})" for k in a if a[k] != b.get(k)]
            raise DataError(
                f"{table.name}: features were extracted with different settings than the model's "
                f"training data: {', '.join(diff)}; expected the same settings"
            )
        if self.spec.input == "segments" and not table.segmented:
            raise DataError(
                f"{table.name}: model {self.spec.name!r} needs segment rows; this table has one row per file"
            )
        return table

    def predict_table(self, table: FeatureTable) -> np.ndarray:
        """Row-level class probabilities for a feature table (or, for an image model, a
        spectrogram store's :class:`~featx.data.store_table.StoreTable`), shape ``(n_rows, n_classes)``."""
        from .data.store_table import check_input

        check_input(self.spec, table, self.metadata.get("params"))
        if self.spec.input == "images":
            from .bundle_images import predict_store

            return predict_store(self, table)
        self.check_table(table)
        X = self.preprocessing.transform(table.X[:, [table.feature_columns.index(c)
                                                      for c in self.feature_columns]])
        beyond = ~np.isfinite(X)
        if beyond.any():  # finite in the table, but too far from the training data for float32
            row, col = (int(i[0]) for i in np.nonzero(beyond))
            raise DataError(
                f"{table.name}: value {float(table.frame[self.feature_columns[col]].iloc[row])!r} in column "
                f"'{self.feature_columns[col]}' (row {row + 2}, filename {table.filenames[row]}) is too far "
                "outside the model's training data to be standardised; expected a value of the kind "
                "the model was trained on"
            )
        return predict_rows(self.model, self.spec, X, table.tracks, table.segment_indices,
                            num_classes=len(self.classes), max_segments=self.max_segments)

    def evaluate(self, table: FeatureTable) -> tuple[dict, pd.DataFrame]:
        """Metrics and row predictions of the model on a labelled table."""
        from .training.metrics import compute_metrics, prediction_frame

        encoding = self.preprocessing.labels
        try:
            encoding.encode(table.labels)
        except DataError as exc:
            raise DataError(f"{table.name}: {exc}") from None
        proba = self.predict_table(table)
        thresholds = self.thresholds
        predictions = prediction_frame(table, np.arange(table.n_rows), proba, encoding, "evaluate",
                                       thresholds=thresholds)
        metrics = compute_metrics(predictions, encoding, thresholds=thresholds)
        metrics.update(split="none (external evaluation data)", leaky=False, folds=1, model=self.spec.name,
                       data=str(Path(table.path).resolve()) if table.path is not None else None)
        seen = self.training_overlap(table)
        if seen is not None:
            metrics["training_overlap"] = seen
        return metrics, predictions

    def training_overlap(self, table: FeatureTable) -> dict | None:
        """How many of ``table``'s tracks the saved model was fitted on.

        ``{"tracks": n, "of": total, "example": name, "source": csv, "at_most": bool}``,
        or ``None`` when it cannot be told (a bundle without its track list, and a
        different file). ``at_most``: an older bundle whose final fit used only part
        of its training file, which is recognised by checksum: ``n`` is an upper bound.
        """
        final = self.metadata.get("final_fit") or {}
        tracks = sorted({str(t) for t in table.tracks})
        at_most = False
        if "tracks" in final:
            seen = sorted(set(tracks) & {str(t) for t in final["tracks"]})
        else:
            data = self.metadata.get("training_data") or {}
            trained = data.get("sha256")
            same = bool(trained and table.path and Path(table.path).is_file()
                        and file_sha256(table.path) == trained)
            if not same:
                return None
            seen = tracks
            used = int(final.get("n_train", 0)) + int(final.get("n_valid", 0))
            at_most = used < int(data.get("rows") or 0)
        return {"tracks": len(seen), "of": len(tracks), "example": seen[0] if seen else None,
                "source": Path(table.name).name, "at_most": at_most}

    def seen_tracks(self, paths) -> list[str]:
        """The audio files among ``paths`` whose track the saved model was fitted on.

        A file matches a training track id when the id is the file's path without
        extension, or a trailing part of it (``rock.00001`` or ``rock/rock.00001``
        for ``/data/rock/rock.00001.wav``). Empty for a bundle without its track list.
        """
        trained = {str(t) for t in (self.metadata.get("final_fit") or {}).get("tracks", [])}
        seen = []
        for path in paths if trained else []:
            parts = Path(path).with_suffix("").as_posix().split("/")
            if any("/".join(parts[i:]) in trained for i in range(len(parts))):
                seen.append(str(path))
        return seen

    def classify_table(self, table: FeatureTable) -> pd.DataFrame:
        """One row per track: ``file``, ``genre``, then one probability column per class."""
        proba = self.predict_table(table)
        frame = pd.DataFrame(proba, columns=self.classes)
        frame.insert(0, "file", [track_name(f, segmented=table.segmented) for f in table.filenames])
        return _per_file(frame, self.preprocessing.labels, self.thresholds)

    def classify_audio(self, paths, *, progress=None) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
        """Extract features from audio files with the model's settings and classify each file.

        Returns the per-file predictions and ``(file, reason)`` for every file that could
        not be analysed (undecodable, shorter than one segment); those are skipped.

        A model trained on whole clips (one row per file) is served audio in windows of
        its training clips' length (:attr:`clip_samples`): each window is classified and
        the probabilities are averaged per file, as segment models average their
        segments; the column ``windows`` then gives the number of windows per file.
        """
        if self.spec.input == "images":  # the bundle's own images, made with its recorded settings
            from .bundle_images import classify_audio_images

            return classify_audio_images(self, paths, progress=progress)
        from ._progress import progress_bar
        from .extract.file import extract_features

        settings = self.settings
        if settings is None:
            raise BundleError(
                f"{self.name}: the model's training features have no known extraction settings, "
                "so audio cannot be featurised to match; classify a feature CSV instead"
            )
        whole_file = settings.segment_seconds is None
        window = self.clip_samples if whole_file else None
        frames, skipped = [], []
        for path in progress_bar(list(paths), desc="predict", unit="file", progress=progress):
            try:
                rows = extract_features(path, settings, window=window)
            except AudioError as exc:
                skipped.append((str(path), str(exc).removeprefix(f"{path}: ")))
                continue
            table = FeatureTable(rows.reset_index(drop=True), Path(path), self.feature_columns,
                                 settings, settings.segment_seconds is not None, "extracted")
            part = pd.DataFrame(self.predict_table(table), columns=self.classes)
            part.insert(0, "file", str(path))
            frames.append(part)
        extra = ["windows"] if whole_file else []
        if not frames:
            return pd.DataFrame(columns=["file", "genre", *extra, *self.classes]), skipped
        rows = pd.concat(frames, ignore_index=True)
        out = _per_file(rows, self.preprocessing.labels, self.thresholds)
        if whole_file:
            out.insert(2, "windows", rows.groupby("file", sort=False).size().to_numpy())
        return out, skipped



def _clip_samples(table: FeatureTable) -> int | None:
    """The training clips' typical length in samples (median of ``length``), whole-file rows only."""
    if table.segmented or table.settings is None or "length" not in table.frame.columns:
        return None
    lengths = pd.to_numeric(table.frame["length"], errors="coerce").to_numpy(dtype=np.float64)
    lengths = lengths[np.isfinite(lengths) & (lengths > 0)]
    return int(np.median(lengths)) if len(lengths) else None


def _per_file(frame: pd.DataFrame, labels, thresholds=None) -> pd.DataFrame:
    """Mean probabilities per file and the labels ``labels`` (a LabelEncoding) reads from them
    (multi-label: :func:`featx.bundle_multilabel.add_genres`, with ``thresholds``)."""
    classes = list(labels.classes_)
    out = frame.groupby("file", sort=False)[classes].mean().reset_index()
    if labels.multi_label:
        from .bundle_multilabel import add_genres

        return add_genres(out, classes, thresholds)
    out.insert(1, "genre", labels.decode_proba(out[classes].to_numpy()))
    return out


def audio_files(inputs) -> list[Path]:
    """Audio files named in ``inputs`` (files, or folders searched recursively); none: ``[]``."""
    from .extract.audio import find_audio

    inputs = list(inputs)
    return find_audio(inputs) if inputs else []


# ---------------------------------------------------------------------------
# Saving


def save_bundle(result: TrainResult, directory, *, table: FeatureTable, extra: dict | None = None) -> Path:
    """Write the model, its preprocessing and metadata into ``directory`` (which must exist).

    ``metadata.json`` records the resolved training configuration (optimizer
    included), the label encoding's kind (with a multi-label model's thresholds)
    and ``extra``'s entries.
    """
    from .bundle_multilabel import thresholds_metadata

    directory = Path(directory)
    spec = result.spec
    files = {}
    if spec.kind == "keras":
        atomic_save(directory / KERAS_MODEL, lambda tmp: result.model.save(tmp))
        files["model"] = KERAS_MODEL
    else:
        X = np.asarray(result.final_fit["X"])
        y = np.asarray(result.final_fit["y"], dtype=np.int64)  # codes, or multi-hot rows
        check = X[: min(len(X), 64)]
        proba = sklearn_proba(result.model, check)
        with atomic_open(directory / BASELINE) as fh:
            np.savez_compressed(fh, X=X, y=y, check_X=check, check_proba=proba,
                                classes_=np.asarray(result.model.classes_, dtype=np.int64))
        files["model"] = BASELINE
    write_json(directory / PREPROCESSING, result.preprocessing.to_dict())
    final = result.final_fit
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": library_versions(keras_too=spec.kind == "keras"),
        "model": spec.name,
        "kind": spec.kind,
        "input": spec.input,
        "params": result.config.to_dict()["params"],
        "feature_columns": result.preprocessing.feature_columns,
        "classes": result.preprocessing.classes,
        "multi_label": result.preprocessing.labels.multi_label,
        "settings": table.settings.to_dict() if table.settings else None,
        "settings_source": table.settings_source,
        "segmented": table.segmented,
        "max_segments": result.max_segments,
        "clip_samples": _clip_samples(table),
        "config": result.config.to_dict(),
        "seed": result.config.seed,
        "final_fit": {"rows": final["rows"], "n_train": int(len(final["train"])),
                      "n_valid": int(len(final["valid"])), "seed": int(final.get("seed", result.config.seed)),
                      # Tracks the saved model has seen: evaluate warns when they come back.
                      "tracks": sorted({str(t) for t in table.tracks[np.concatenate(
                          [final["train"], final["valid"]]).astype(int)]})},
        "training_data": {
            "path": str(table.path) if table.path else None,
            "sha256": file_sha256(table.path) if table.path and Path(table.path).is_file() else None,
            "rows": table.n_rows,
            "tracks": int(len(set(table.tracks))),
        },
        "split": result.plan.description,
        "leaky_split": result.plan.leaky,
        "device": result.device,
        "train_seconds": round(result.seconds, 2),
        "files": files,
        **thresholds_metadata(result),
        **({"spectrogram_settings": table.spectrogram_settings.to_dict()} if spec.input == "images" else {}),
        **(extra or {}),
    }
    write_json(directory / METADATA, metadata)
    return directory


# ---------------------------------------------------------------------------
# Loading


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise BundleError(f"{path}: missing; expected a featx bundle folder (written by 'featx train')")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BundleError(f"{path}: corrupt JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise BundleError(f"{path}: corrupt; expected a JSON object")
    return data


def _check_versions(metadata: dict, directory: Path, keras_too: bool) -> None:
    saved = metadata.get("versions") or {}
    now = library_versions(keras_too=keras_too)
    differ = [f"{k} {saved[k]} (now {now[k]})" for k in ("featx", "scikit-learn", "numpy", "keras",
                                                          "keras_backend")
              if k in saved and k in now and str(saved[k]) != str(now[k])]
    if differ:
        warnings.warn(
            f"{directory}: bundle was saved with different library versions: {', '.join(differ)}; "
            "results may differ slightly",
            UserWarning, stacklevel=3,
        )


def load_bundle(directory) -> Bundle:
    """Load a bundle written by :func:`save_bundle`.

    Raises
    ------
    BundleError
        Missing folder or files, corrupt content, unknown model.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise BundleError(f"{directory}: no such bundle folder; expected the output_dir of a training run "
                          "(a folder holding metadata.json)")
    from .bundle_checks import check_keras_shapes, check_metadata, check_preprocessing, corrupt

    meta_path, prep_path = directory / METADATA, directory / PREPROCESSING
    metadata = _read_json(meta_path)
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
    prep_data = _read_json(prep_path)
    if spec.input == "images":
        from .bundle_images import load_image_preprocessing

        preprocessing = load_image_preprocessing(prep_path, prep_data)
    else:
        check_preprocessing(prep_path, prep_data)
        try:
            preprocessing = Preprocessing.from_dict(prep_data)
        except Exception as exc:  # checked above; anything left is corruption too
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BundleError(f"corrupt bundle: {prep_path}: {first[:200]}") from None
    params = check_metadata(meta_path, metadata, spec, n_features=len(preprocessing.feature_columns),
                            classes=preprocessing.classes)
    if metadata.get("multi_label", preprocessing.labels.multi_label) != preprocessing.labels.multi_label:
        raise corrupt(meta_path, "multi_label", "must agree with the label encoding of preprocessing.json",
                      metadata["multi_label"])
    _check_versions(metadata, directory, spec.kind == "keras")
    if spec.kind == "keras":
        model = _load_keras(directory / KERAS_MODEL)
        if spec.input == "images":
            from .bundle_images import check_image_bundle

            check_image_bundle(directory, metadata, preprocessing, model)
            return Bundle(directory, spec, model, preprocessing, metadata)
        check_keras_shapes(directory / KERAS_MODEL, model, spec, n_features=len(preprocessing.feature_columns),
                           n_classes=len(preprocessing.classes), max_segments=metadata.get("max_segments"))
    else:
        model = _load_baseline(directory / BASELINE, spec, metadata, params=params,
                               n_features=len(preprocessing.feature_columns),
                               n_classes=len(preprocessing.classes))
    return Bundle(directory, spec, model, preprocessing, metadata)


def _load_keras(path: Path):
    if not path.is_file():
        raise BundleError(f"{path}: missing; expected the saved Keras model")
    from ._keras import import_keras
    keras = import_keras()

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BundleError(f"{path}: cannot load the Keras model ({first[:200]})") from None


def _load_baseline(path: Path, spec: ModelSpec, metadata: dict, *, params: dict, n_features: int,
                   n_classes: int):
    from .bundle_checks import check_baseline_arrays, check_refit

    if not path.is_file():
        raise BundleError(f"{path}: missing; expected the saved baseline arrays")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in ("X", "y", "check_X", "check_proba")}
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BundleError(f"{path}: cannot read the baseline arrays ({first[:200]})") from None
    multi_label = metadata.get("multi_label") is True
    n_train = (metadata.get("final_fit") or {}).get("n_train")
    check_baseline_arrays(path, arrays, n_features=n_features, n_classes=n_classes, multi_label=multi_label,
                          n_train=n_train)
    seed = int((metadata.get("final_fit") or {}).get("seed", metadata.get("seed", 0)))
    estimator = build_estimator(spec, params, seed=seed, multi_label=multi_label)
    try:
        fit_estimator(estimator, arrays["X"], arrays["y"])
        proba = sklearn_proba(estimator, arrays["check_X"])
    except Exception as exc:
        raise BundleError(f"{path}: corrupt baseline data ({type(exc).__name__}: {exc})") from None
    saved, now = metadata.get("versions") or {}, library_versions(keras_too=False)
    same = all(str(saved.get(k)) == str(now.get(k)) for k in ("scikit-learn", "numpy"))
    if check_refit(path, proba, arrays["check_proba"], same_versions=same) > 1e-6:
        warnings.warn(
            f"{path}: the refitted {spec.name} does not reproduce the saved probabilities exactly "
            "(another scikit-learn version, or a CPU whose BLAS rounds differently); "
            "predictions may differ slightly",
            UserWarning, stacklevel=3,
        )
    return estimator
