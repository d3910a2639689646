"""Labels for a corpus: from folder names or a labels CSV."""
from __future__ import annotations

import hashlib
import logging
import os
import warnings
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
    path = Path(path)
    return {entry: label for entry, (_, _, label) in _read_rows(path, *_table(path)).items()}


def _table(path):
    """The labels CSV at ``path`` as text, and the name of its column naming files."""
    import pandas as pd  # pandas: kept off featx extract's path

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
    return table, key


def _read_rows(path: Path, table, key: str) -> dict[str, tuple[int, str, str]]:
    """``{entry: (row, name as written, label)}``; one entry named twice must agree."""
    rows: dict[str, tuple[int, str, str]] = {}
    for row, (name, label) in enumerate(zip(table[key], table[LABEL_COLUMN]), start=2):
        if not label:
            raise DataError(f"{path}: empty label for {name!r} (row {row})")
        entry = str(Path(name))
        if entry in rows and rows[entry][2] != label:
            first_row, first_name, first_label = rows[entry]
            raise DataError(
                f"{path}: {name!r} (row {row}) is labelled {label!r}, but {first_name!r} (row "
                f"{first_row}) is labelled {first_label!r}; expected one label per file"
            )
        rows.setdefault(entry, (row, name, label))
    return rows


def _keys(file) -> set[str]:
    """Every way a labels CSV may name ``file`` (an AudioFile): id, path, name, stem."""
    path = Path(file.path)
    stem_id = file.id[: -len(path.suffix)] if path.suffix and file.id.endswith(path.suffix) else file.id
    return {str(Path(k)) for k in (file.id, stem_id, str(path), os.path.abspath(path), path.name,
                                   path.stem, str(path.resolve()))}


def labels_digest(labels: str) -> str | None:
    """SHA-256 of a labels CSV's bytes (``None`` for ``'folder'`` and ``'none'``)."""
    if labels in ("folder", "none"):
        return None

    return hashlib.sha256(Path(labels).read_bytes()).hexdigest()


#: Folder names that hold audio but name no genre.
_CONTAINERS = frozenset({
    "audio", "music", "songs", "song", "tracks", "track", "files", "file", "wav", "wavs", "mp3", "mp3s",
    "flac", "ogg", "data", "dataset", "datasets", "corpus", "samples", "sample", "clips", "clip", "input",
    "inputs", "downloads", "download", "desktop", "documents", "home", "tmp", "temp", "test", "tests",
    "train", "valid", "validation", "recordings", "media", "genres", "new folder", "untitled", "unsorted",
    "misc", "various", "various artists", "unknown", "unknown album", "unknown artist"})


def looks_like_genre(name: str) -> bool:
    """Whether a folder name reads like a genre (``rock``, ``Hip-Hop``, ``easy listening``)
    rather than an album, an artist, a disc or a generic folder.

    Not a genre: empty, over 32 characters or 3 words, holding a digit (years, discs,
    track numbers), brackets or `` - `` (``Artist - Album``), or one of the common
    container names (``audio``, ``music``, ``Downloads``...).

    Examples
    --------
    >>> [looks_like_genre(n) for n in ("rock", "Hip-Hop", "Abbey Road (1969)", "CD1", "Downloads")]
    [True, True, False, False, False]
    """
    text = str(name).strip()
    if not text or len(text) > 32 or len(text.split()) > 3:
        return False
    if any(ch.isdigit() or ch in "()[]{}" for ch in text) or " - " in text:
        return False
    return text.lower() not in _CONTAINERS


def _note_folder_labels(names: list[str], *, unlabelled_ok: bool) -> None:
    """Say once when folder names used as labels do not look like genres."""
    odd = sorted({n for n in names if not looks_like_genre(n)})
    if not odd:
        return
    instead = ("pass --labels none (labels='none') for a table without labels, or --labels FILE.csv"
               if unlabelled_ok else "pass --labels FILE.csv (a CSV with columns file,label)")
    logger.warning("labels are each file's folder name, and %d of %d folder name(s) do not look like a "
                   "genre (e.g. %r); %s", len(odd), len(set(names)), odd[0], instead)


def resolve_labels(files, labels: str, *, unlabelled_ok: bool = True) -> list[str] | None:
    """One label per file, or ``None`` for ``labels='none'``.

    Parameters
    ----------
    files : list of AudioFile
    labels : str
        ``'folder'``: the name of the folder each file was found in (for a
        symbolic link, the link's folder, not its target's); ``'none'``; or the
        path of a labels CSV (see :func:`read_label_map`). A row may name a file by
        its id, path, name or stem; every row naming a file must give the same label,
        and a row matching several files (``01.wav`` in two albums) is refused. Rows
        naming no file are ignored with a warning.
    unlabelled_ok : bool
        Whether the caller can do without labels: with ``'folder'``, folder names
        that do not look like genres (:func:`looks_like_genre`) are said once on
        the log, suggesting ``labels='none'`` (or, when labels are needed, a labels CSV).

    Raises
    ------
    DataError
        Two rows give one file different labels, a row matches several files, or a
        file has no row.
    """
    if labels == "none":
        return None
    if labels == "folder":
        names = [f.folder for f in files]
        _note_folder_labels(names, unlabelled_ok=unlabelled_ok)
        return names
    rows = _read_rows(Path(labels), *_table(labels))
    keys = [_keys(f) for f in files]
    matched: dict[str, list[int]] = {}
    for i, file_keys in enumerate(keys):
        for k in file_keys:
            if k in rows:
                matched.setdefault(k, []).append(i)
    for entry, found in matched.items():
        if len(found) > 1:
            row, name, _ = rows[entry]
            raise DataError(
                f"{labels}: {name!r} (row {row}) matches more than one audio file "
                f"({files[found[0]].path} and {files[found[1]].path}); expected an entry that names "
                "one file (its path relative to the input folder)"
            )
    out, missing = [], []
    for f, file_keys in zip(files, keys):
        hits = sorted(rows[k] for k in file_keys if k in rows)
        labels_found = {label for _, _, label in hits}
        if len(labels_found) > 1:
            (r1, n1, l1), (r2, n2, l2) = hits[0], next(h for h in hits if h[2] != hits[0][2])
            raise DataError(
                f"{labels}: {f.path} is labelled {l1!r} by {n1!r} (row {r1}) and {l2!r} by "
                f"{n2!r} (row {r2}); expected one label per file"
            )
        (out.append(hits[0][2]) if hits else missing.append(str(f.path)))
    unused = sorted((row, name) for entry, (row, name, _) in rows.items() if entry not in matched)
    if unused:
        shown = ", ".join(repr(name) for _, name in unused[:3])
        warnings.warn(f"{labels}: {len(unused)} row(s) name no audio file in the inputs "
                      f"(e.g. {shown}); they are ignored", UserWarning, stacklevel=2)
    if missing:
        raise DataError(
            f"{labels}: no label for {len(missing)} of {len(files)} audio file(s), "
            f"e.g. {missing[0]!r}; expected a row naming each file"
        )
    return out
