"""Labels for a corpus: from folder names or a labels CSV."""
from __future__ import annotations

import logging
import os
from pathlib import Path


from ..errors import ConfigError, DataError
from ..features.settings import LABEL_COLUMN

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- labels


def read_label_map(path) -> dict[str, str]:
    """Read a CSV mapping audio files to labels.

    The file needs a ``label`` column and one naming the file: ``file``, ``filename``
    or ``path``. Entries may be ids (paths relative to the input folder), paths, or
    bare file names (with or without extension). A file named twice with the same
    label is fine; with two different labels it is refused.

    Raises
    ------
    ConfigError
        The file does not exist.
    DataError
        It is not a CSV, lacks the columns, has an empty label, or names a file
        twice with different labels.
    """
    import pandas as pd

    path = Path(path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise ConfigError(f"labels file not found: {str(path)!r}") from None
    except Exception as exc:
        raise DataError(f"{path}: cannot be read as CSV ({exc})") from None
    key = next((c for c in ("file", "filename", "path") if c in table.columns), None)
    if key is None or LABEL_COLUMN not in table.columns:
        raise DataError(
            f"{path}: expected columns 'file' (or 'filename'/'path') and 'label'. "
            f"Received: {', '.join(map(str, table.columns))}"
        )
    mapping: dict[str, str] = {}
    names: dict[str, str] = {}
    for row, (name, label) in enumerate(zip(table[key], table[LABEL_COLUMN]), start=2):
        if not label:
            raise DataError(f"{path}: empty label for {name!r} (row {row})")
        entry = str(Path(name))
        if entry in mapping and mapping[entry] != label:
            raise DataError(
                f"{path}: {name!r} (row {row}) is labelled {label!r}, but {names[entry]!r} above is "
                f"labelled {mapping[entry]!r}; expected one label per file"
            )
        mapping[entry] = label
        names.setdefault(entry, name)
    return mapping


def _lookup_label(mapping: dict[str, str], file) -> str | None:
    """The label of ``file`` (an AudioFile): by id, path as given, absolute path, name, stem."""
    path = Path(file.path)
    stem_id = file.id[: -len(path.suffix)] if path.suffix and file.id.endswith(path.suffix) else file.id
    for key in (file.id, stem_id, str(path), os.path.abspath(path), path.name, path.stem,
                str(path.resolve())):
        key = str(Path(key))
        if key in mapping:
            return mapping[key]
    return None


def labels_digest(labels: str) -> str | None:
    """SHA-256 of a labels CSV's bytes (``None`` for ``'folder'`` and ``'none'``)."""
    if labels in ("folder", "none"):
        return None
    import hashlib

    return hashlib.sha256(Path(labels).read_bytes()).hexdigest()


def resolve_labels(files, labels: str) -> list[str] | None:
    """One label per file, or ``None`` for ``labels='none'``.

    Parameters
    ----------
    files : list of AudioFile
    labels : str
        ``'folder'``: the name of the folder each file was found in (for a
        symbolic link, the link's folder, not its target's); ``'none'``; or the
        path of a labels CSV (see :func:`read_label_map`).
    """
    if labels == "none":
        return None
    if labels == "folder":
        return [f.folder for f in files]
    mapping = read_label_map(labels)
    out, missing = [], []
    for f in files:
        label = _lookup_label(mapping, f)
        (missing.append(str(f.path)) if label is None else out.append(label))
    if missing:
        raise DataError(
            f"{labels}: no label for {len(missing)} of {len(files)} audio file(s), "
            f"e.g. {missing[0]!r}; expected a row naming each file"
        )
    return out
