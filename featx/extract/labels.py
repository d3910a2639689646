"""Labels for a corpus: from folder names or a labels CSV."""
from __future__ import annotations

import logging
from pathlib import Path


from ..errors import ConfigError, DataError
from ..features.settings import LABEL_COLUMN

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- labels


def read_label_map(path) -> dict[str, str]:
    """Read a CSV mapping audio files to labels.

    The file needs a ``label`` column and one naming the file: ``file``, ``filename``
    or ``path``. Entries may be paths or bare file names (with or without extension).
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
    for name, label in zip(table[key], table[LABEL_COLUMN]):
        if not label:
            raise DataError(f"{path}: empty label for {name!r}")
        mapping[str(Path(name))] = label
    return mapping


def _lookup_label(mapping: dict[str, str], file: Path) -> str | None:
    for key in (str(file), str(file.resolve()), file.name, file.stem):
        if key in mapping:
            return mapping[key]
    return None


def resolve_labels(files: list[Path], labels: str) -> list[str] | None:
    """One label per file: ``'folder'`` (parent folder name), ``'none'``, or a CSV path."""
    if labels == "none":
        return None
    if labels == "folder":
        return [f.resolve().parent.name for f in files]
    mapping = read_label_map(labels)
    out, missing = [], []
    for f in files:
        label = _lookup_label(mapping, f)
        (missing.append(str(f)) if label is None else out.append(label))
    if missing:
        raise DataError(
            f"{labels}: no label for {len(missing)} of {len(files)} audio file(s), "
            f"e.g. {missing[0]!r}; expected a row naming each file"
        )
    return out
