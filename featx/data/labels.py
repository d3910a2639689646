"""Label encodings: one genre per row (integer codes) or several (multi-hot rows).

A :class:`LabelEncoding` is the only place in featx that knows how many
labels a row carries. Training asks it for the targets (:meth:`~LabelEncoding.encode`),
the output activation and the loss; predictions are turned back into labels
with :meth:`~LabelEncoding.decode_proba`; bundles store it with
:meth:`~LabelEncoding.to_dict`.

In a feature table, a row with several genres writes them in its ``label``
cell joined by ``;`` (``rock;blues``).
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..errors import DataError

#: Joins the genres of one row in a ``label`` cell (``rock;blues``).
SEPARATOR = ";"

#: Output activation for each kind of encoding (single label: softmax; several: sigmoid).
ACTIVATIONS = ("softmax", "sigmoid")


def first_genres(labels) -> np.ndarray:
    """The first genre of every label cell (``rock;blues`` -> ``rock``).

    It depends on the order a cell lists its genres in; splits stratify on
    :func:`stratification_key` instead.
    """
    return np.array([str(label).split(SEPARATOR)[0].strip() for label in labels], dtype=object)


def genres_of(labels) -> list[str]:
    """Every genre named in ``labels`` (cells of one genre, or several joined by ``;``), sorted."""
    return sorted({g.strip() for label in labels for g in str(label).split(SEPARATOR) if g.strip()})


def stratification_key(labels) -> np.ndarray:
    """The genre each row is stratified on: the row's rarest genre in ``labels``.

    A single-genre cell is its genre. A cell of several genres (``rock;blues``) is
    keyed on the one of them that the fewest rows name (ties: the first by name), so
    the key does not depend on the order the cell lists them in (``blues;rock`` gets
    the same key), and a rare genre is spread over the folds. Every label combination
    as its own stratum would leave most strata with a single track.

    Examples
    --------
    >>> stratification_key(["music;blues", "music;jazz", "jazz;music", "blues"]).tolist()
    ['blues', 'jazz', 'jazz', 'blues']
    """
    cells = [[g.strip() for g in str(label).split(SEPARATOR) if g.strip()] or [str(label)] for label in labels]
    counts: dict[str, int] = {}
    for cell in cells:
        for genre in set(cell):
            counts[genre] = counts.get(genre, 0) + 1
    return np.array([min(cell, key=lambda g: (counts[g], g)) for cell in cells], dtype=object)


class LabelEncoding:
    """Map label strings to model targets and model outputs back to labels.

    Parameters
    ----------
    multi_label : bool
        ``False`` (default): every row has one genre; targets are integer codes
        and the model ends in a softmax. ``True``: a row may have several genres
        (``rock;blues``); targets are multi-hot rows and the model ends in one
        sigmoid per genre.

    Attributes
    ----------
    classes_ : list of str
        The sorted genre names, learned by :meth:`~featx.data.labels.LabelEncoding.fit`.

    Examples
    --------
    >>> enc = LabelEncoding().fit(["rock", "jazz", "rock"])
    >>> enc.classes_, enc.encode(["jazz", "rock"]).tolist()
    (['jazz', 'rock'], [0, 1])
    >>> multi = LabelEncoding(multi_label=True).fit(["rock;blues", "jazz"])
    >>> multi.encode(["blues;rock"]).tolist()
    [[1.0, 0.0, 1.0]]
    >>> multi.decode(multi.encode(["rock;blues"])).tolist()
    ['blues;rock']
    """

    def __init__(self, multi_label: bool = False):
        self.multi_label = bool(multi_label)
        self.classes_: list[str] | None = None

    # -- learning ---------------------------------------------------------

    def split(self, label) -> list[str]:
        """The genres of one label cell (a one-item list in single-label mode).

        Raises
        ------
        DataError
            An empty label, or an empty genre between separators (``rock;;blues``).
        """
        text = str(label)
        if not self.multi_label:
            if not text:
                raise DataError("empty label; expected a genre name. Received: label=''")
            return [text]
        parts = [p.strip() for p in text.split(SEPARATOR)]
        if not parts or any(not p for p in parts):
            raise DataError(
                f"label {text!r} has an empty genre; expected genre names joined by "
                f"'{SEPARATOR}' like 'rock{SEPARATOR}blues'. Received: label={text!r}"
            )
        return parts

    def fit(self, labels: Iterable) -> "LabelEncoding":
        """Learn the sorted genre names from ``labels`` (strings, one per row); returns ``self``."""
        names = set()
        for label in np.asarray(list(labels), dtype=str):
            names.update(self.split(label))
        self.classes_ = sorted(names)
        return self

    def _check_fitted(self) -> list[str]:
        if self.classes_ is None:
            raise DataError("the label encoding is not fitted; call fit() with the training labels first")
        return self.classes_

    # -- what a model needs -------------------------------------------------

    @property
    def n_classes(self) -> int:
        """Number of genres (width of the model's output)."""
        return len(self._check_fitted())

    @property
    def activation(self) -> str:
        """The output layer's activation: ``'softmax'`` (one genre) or ``'sigmoid'`` (several)."""
        return "sigmoid" if self.multi_label else "softmax"

    @property
    def loss(self) -> str:
        """The Keras loss that matches :meth:`encode`'s targets."""
        return "binary_crossentropy" if self.multi_label else "sparse_categorical_crossentropy"

    # -- converting ---------------------------------------------------------

    def encode(self, labels: Iterable) -> np.ndarray:
        """Targets for ``labels``.

        Returns
        -------
        y : np.ndarray
            Single-label: ``int64`` codes, shape ``(n,)``. Multi-label: a
            ``float32`` multi-hot matrix, shape ``(n, n_classes)``.

        Raises
        ------
        DataError
            A genre that is not one of :attr:`classes_`.
        """
        classes = self._check_fitted()
        lookup = {c: i for i, c in enumerate(classes)}
        labels = np.asarray(list(labels), dtype=str)
        rows = [self.split(label) for label in labels]
        unknown = sorted({g for row in rows for g in row} - set(lookup))
        if unknown:
            raise DataError(f"label {unknown[0]!r} is not one of the model's classes ({', '.join(classes)})")
        if not self.multi_label:
            return np.array([lookup[row[0]] for row in rows], dtype=np.int64)
        y = np.zeros((len(rows), len(classes)), dtype=np.float32)
        for i, row in enumerate(rows):
            y[i, [lookup[g] for g in row]] = 1.0
        return y

    def decode(self, y) -> np.ndarray:
        """Label strings for targets made by :meth:`encode` (several genres joined by ``;``)."""
        classes = np.asarray(self._check_fitted(), dtype=object)
        y = np.asarray(y)
        if not self.multi_label:
            return classes[y.astype(np.int64)] if y.size else np.array([], dtype=object)
        if y.ndim != 2 or y.shape[1] != len(classes):
            raise DataError(f"expected a multi-hot matrix with {len(classes)} columns. Received: shape={y.shape}")
        return np.array([SEPARATOR.join(classes[row > 0.5]) for row in y], dtype=object)

    def decode_proba(self, proba, *, threshold: float = 0.5) -> np.ndarray:
        """The predicted labels for model outputs, shape ``(n, n_classes)``.

        Single-label: the most probable genre of each row. Multi-label: every
        genre whose probability reaches ``threshold`` (the most probable one
        when none does).
        """
        classes = np.asarray(self._check_fitted(), dtype=object)
        proba = np.asarray(proba, dtype=np.float64).reshape(-1, len(classes))
        if len(proba) == 0:
            return np.array([], dtype=object)
        if not self.multi_label:
            return classes[proba.argmax(axis=1)]
        chosen = proba >= threshold
        chosen[np.arange(len(proba)), proba.argmax(axis=1)] = True
        return np.array([SEPARATOR.join(classes[row]) for row in chosen], dtype=object)

    # -- persistence ----------------------------------------------------------

    def to_dict(self) -> dict:
        """Plain data for a bundle's JSON (see :meth:`from_dict`)."""
        return {"classes": list(self._check_fitted()), "multi_label": self.multi_label,
                "separator": SEPARATOR}

    @classmethod
    def from_dict(cls, data: dict) -> "LabelEncoding":
        """The encoding :meth:`to_dict` wrote.

        Raises
        ------
        DataError
            No class list, duplicate classes, or another separator.
        """
        classes = data.get("classes") if isinstance(data, dict) else None
        if not isinstance(classes, list) or not classes:
            raise DataError(f"label encoding without classes; expected a list of genre names. Received: {data!r}")
        classes = [str(c) for c in classes]
        if len(set(classes)) != len(classes):
            raise DataError(f"label encoding lists a genre twice. Received: classes={classes!r}")
        if data.get("separator", SEPARATOR) != SEPARATOR:
            raise DataError(f"label encoding uses separator {data['separator']!r}; expected {SEPARATOR!r}")
        encoding = cls(multi_label=bool(data.get("multi_label", False)))
        encoding.classes_ = classes
        return encoding

    def __eq__(self, other) -> bool:
        return (isinstance(other, LabelEncoding) and self.multi_label == other.multi_label
                and self.classes_ == other.classes_)

    def __repr__(self) -> str:
        return f"LabelEncoding(multi_label={self.multi_label}, classes_={self.classes_!r})"
