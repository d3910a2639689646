"""What every family that reads a feature table shares: columns, scaler, settings, audio.

:class:`TableFamily` is the base of the scikit-learn and Keras families on the rows
of a feature table (one row per segment or per clip) and of the segment-sequence
family. It fits the scaler on training rows (:class:`~featx.models.preprocessing.Preprocessing`),
records which columns and extraction settings the model was trained on, checks a
table given to it later against them, and turns new audio into rows exactly as the
training table was made, window by window (:meth:`TableFamily.predict_audio`).

Two things make its predictions hold up on music unlike GTZAN: every row can be
brought to one loudness before scaling (``loudness`` of the training configuration,
recorded as the preprocessing's ``level``), and the standardised training rows are
kept as a reference (:class:`~featx.models.distance.TrainingDistance`) to say how far
new rows lie from them.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..data.store_table import StoreTable
from ..data.table import FeatureTable, check_columns, clip_bounds, clip_length
from ..errors import BundleError, DataError
from ..extract.audio import load
from ..extract.file import prepare_array, samples_features
from ..features.gain import LEVEL_COLUMN, follows_gain_law
from ..features.settings import FeatureSettings
from .base import PREPROCESSING, AudioProbabilities, ModelFamily, rows_of, too_short
from .distance import DISTANCE_FILE, TrainingDistance, reference_sample
from .fields import check_int, check_names, corrupt, first_line, read_json
from .preprocessing import Preprocessing, read_preprocessing

logger = logging.getLogger(__name__)

__all__ = ["TableFamily"]

class TableFamily(ModelFamily):
    """A model on the feature columns of a table (see :class:`~featx.models.base.ModelFamily`).

    Attributes
    ----------
    feature_columns : list of str
        The columns the model reads, in order.
    settings : FeatureSettings or None
        The extraction settings of the training table, when known (audio given to the
        model is featurised with them).
    segmented : bool
        Whether the training rows were segments of longer files.
    clip_samples : int or None
        Whole-clip tables only: the training clips' length in samples; longer audio is
        served to the model in windows of this length.
    """

    def __init__(self, spec, params, labels, *, config=None, table=None):
        super().__init__(spec, params, labels, config=config, table=table)
        self.feature_columns: list[str] | None = None
        self.settings: FeatureSettings | None = None
        self.settings_source = "unknown"
        self.segmented = False
        self.clip_samples: int | None = None
        self.distance: TrainingDistance | None = None
        self._reference: tuple[np.ndarray, np.ndarray] | None = None

    # -- before training ----------------------------------------------------------

    def check_input(self, table) -> None:
        if isinstance(table, StoreTable):
            raise DataError(
                f"{table.name}: model {self.name!r} reads {self.input} of a feature table (a CSV from "
                "featx extract); this is a spectrogram store. Give a feature CSV, or use an image "
                "model (cnn2d, cnn2d-base, mfcc-cnn, multihead)")

    def check_trainable(self, table) -> None:
        loudness = "as-recorded" if self.config is None else self.config.loudness
        if loudness == "normalise" and not follows_gain_law(table.feature_columns):
            raise DataError(
                f"{table.name}: loudness 'normalise' needs the column '{LEVEL_COLUMN}' (each row's level); "
                "the table has none (a musicnn preset, or other columns). Expected a table of the gtzan "
                "or default preset, or loudness='as-recorded'", param="loudness")

    # -- the scaler and the training table ----------------------------------------

    def _level(self, columns) -> str:
        """What the preprocessing does with the level: ``normalised`` or ``as-recorded``."""
        loudness = "as-recorded" if self.config is None else self.config.loudness
        if loudness == "as-recorded" or not follows_gain_law(columns):
            return "as-recorded"
        return "normalised"

    def _fit_preprocessing(self, table, train) -> Preprocessing:
        """Learn the scaler from rows ``train`` and remember what the table was.

        The standardised training rows are kept (a sample of at most
        :data:`~featx.models.distance.MAX_ROWS`) for the distance reference the bundle saves.
        """
        log_variances = True if self.config is None else bool(self.config.log_variances)
        columns = list(table.feature_columns)
        logs = [c for c in columns if c.endswith("_var")] if log_variances else []
        train = rows_of(table, train)
        self.preprocessing = Preprocessing(columns, self.labels, logs, level=self._level(columns)).fit(
            table.X[train])
        self.feature_columns = columns
        self.settings = table.settings
        self.settings_source = getattr(table, "settings_source", "unknown")
        self.segmented = bool(table.segmented)
        self.clip_samples = clip_length(table)
        seed = 0 if self.config is None else int(self.config.seed)
        kept = train[reference_sample(len(train), seed=seed)]
        self._reference = (self._transform(table, kept), np.asarray(table.tracks)[kept].astype(str))
        self.distance = None
        return self.preprocessing

    def training_distance(self) -> TrainingDistance | None:
        """The distance reference of the fitted model (fitted on first use), or ``None``
        for a loaded bundle that has none."""
        if self.distance is None and self._reference is not None:
            self.distance = TrainingDistance.fit(*self._reference)
            self._reference = None
        return self.distance if self.distance is not None and self.distance.usable else None

    def distances(self, table, rows=None) -> np.ndarray | None:
        reference = self.training_distance()
        if reference is None:
            return None
        return reference.distances(self._transform(table, rows))

    def distance_percentile(self, distances) -> np.ndarray | None:
        reference = self.training_distance()
        return None if reference is None else reference.percentile(distances)

    def _transform(self, table, rows) -> np.ndarray:
        """Standardised features of ``rows`` of ``table`` (columns taken by name, in the model's order).

        Raises
        ------
        DataError
            A value so far outside the training data that it cannot be standardised.
        """
        prep = self.preprocessing
        rows = rows_of(table, rows)
        if list(table.feature_columns) == prep.feature_columns:
            raw = table.X[rows]
        else:
            raw = table.X[rows][:, [table.feature_columns.index(c) for c in prep.feature_columns]]
        X = prep.transform(raw)
        beyond = ~np.isfinite(X)
        if beyond.any():  # finite in the table, but too far from the training data for float32
            row, col = (int(i[0]) for i in np.nonzero(beyond))
            raise DataError(
                f"{table.name}: value {float(raw[row, col])!r} in column '{prep.feature_columns[col]}' "
                f"(row {int(rows[row]) + 2}, filename {table.filenames[rows[row]]}) is too far outside the "
                "model's training data to be standardised; expected a value of the kind the model was "
                "trained on")
        return X

    # -- new data -----------------------------------------------------------------

    def check_table(self, table):
        self.check_input(table)
        check_columns(table, self.feature_columns, source=f"the {self.name} model")
        mine, theirs = self.settings, table.settings
        if mine is not None and theirs is not None and mine != theirs:
            a, b = mine.to_dict(), theirs.to_dict()
            diff = [f"{k}={b[k]!r} (model: {a[k]!r})" for k in a if a[k] != b.get(k)]
            raise DataError(
                f"{table.name}: features were extracted with different settings than the model's "
                f"training data: {', '.join(diff)}; expected the same settings")
        return table

    def predict_audio(self, source, *, y=None, sr: int | None = None) -> AudioProbabilities:
        settings = self.settings
        if settings is None:
            raise BundleError(
                f"the {self.name} model's training features have no known extraction settings, so "
                "audio cannot be featurised to match; classify a feature table instead")
        name = str(source)
        if y is None:
            samples = load(source, sr=settings.sr)
        else:
            samples = prepare_array(y, sr=sr, target_sr=settings.sr, name=name)
        segmented = settings.segment_seconds is not None
        needed = settings.segment_samples + 1 if segmented else settings.n_fft
        if len(samples) < needed:
            what = (f"one {settings.segment_seconds:g}-s segment" if segmented
                    else f"one analysis frame (n_fft={settings.n_fft})")
            raise too_short(name, len(samples), settings.sr, needed, what)
        window = None if segmented else self.clip_samples
        rows = samples_features(samples, settings, name=Path(name).name or "audio.wav", window=window)
        table = FeatureTable(rows.reset_index(drop=True), None, list(self.feature_columns), settings,
                             segmented, "extracted")
        proba = self.predict_proba(table)
        distances = self.distances(table)
        n = len(proba)
        if segmented:
            step, width = settings.segment_hop, settings.segment_samples
        elif n > 1:
            step = width = int(window)
        else:
            step = width = len(samples)
        return AudioProbabilities(name, proba, np.arange(n) * step / settings.sr, width / settings.sr,
                                  len(samples) / settings.sr, distances)

    # -- persistence --------------------------------------------------------------

    def save_distance(self, directory) -> str | None:
        reference = self.training_distance()
        return None if reference is None else reference.save(directory)

    def record(self) -> dict:
        return {"feature_columns": list(self.feature_columns),
                "settings": self.settings.to_dict() if self.settings is not None else None,
                "settings_source": self.settings_source,
                "segmented": self.segmented,
                "clip_samples": self.clip_samples}

    @classmethod
    def _read_table_record(cls, spec, directory: Path, metadata: dict, params: dict):
        """A new object with the preprocessing and the training table's record of a bundle."""
        prep_path = Path(directory) / PREPROCESSING
        prep = read_preprocessing(prep_path, read_json(prep_path))
        meta_path = Path(directory) / "metadata.json"
        columns = check_names(meta_path, "feature_columns", metadata.get("feature_columns"))
        if columns != prep.feature_columns:
            raise corrupt(meta_path, "feature_columns", f"must list the {len(prep.feature_columns)} columns "
                                                        "of preprocessing.json", columns if len(columns) < 5
                          else len(columns))
        model = cls(spec, params, prep.labels)
        model.preprocessing = prep
        model.feature_columns = list(prep.feature_columns)
        settings = metadata.get("settings")
        if settings is not None:
            if not isinstance(settings, dict):
                raise corrupt(meta_path, "settings", "must be an object of extraction settings", settings)
            try:
                model.settings = FeatureSettings.from_dict(settings)
            except Exception as exc:  # any failure to rebuild them is corruption
                raise BundleError(f"corrupt bundle: {meta_path}: settings: {first_line(exc)}") from None
        model.settings_source = str(metadata.get("settings_source") or "unknown")
        model.segmented = bool(metadata.get("segmented", False))
        clip = metadata.get("clip_samples")
        if clip is not None:
            if model.settings is None:
                raise corrupt(meta_path, "clip_samples", "must come with the extraction settings it is "
                                                         "counted in", clip)
            low, high = clip_bounds(model.settings)
            check_int(meta_path, "clip_samples", clip, low=low, high=high)
        model.clip_samples = clip
        files = metadata.get("files")
        listed = isinstance(files, dict) and files.get("distance") == DISTANCE_FILE
        # only a reference the bundle lists is read: a file of that name in an older bundle is not its own
        model.distance = TrainingDistance.load(directory, len(model.feature_columns)) if listed else None
        if listed and model.distance is None:
            raise corrupt(meta_path, "files.distance", f"names {DISTANCE_FILE}, which the bundle does not hold",
                          DISTANCE_FILE)
        return model

