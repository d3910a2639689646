"""The files of a corpus and their identities: one unique id per file found.

A file's id is its path relative to the input folder it was found under, written
with ``/`` (``AlbumA/01.mp3``); with several inputs, each folder's own name leads
(``jazz/track05.flac``), and a file named directly is its file name. Two files
never share an id, so ``AlbumA/01.mp3`` and ``AlbumB/01.mp3`` stay two tracks.

Symbolic links are taken as found, never resolved: a file reached through a link
belongs to the folder holding the link, and one file linked into two folders is
two files of the corpus.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from .audio import AUDIO_EXTENSIONS


@dataclass(frozen=True)
class AudioFile:
    """One file of a corpus.

    Attributes
    ----------
    path : Path
        The file as found (a symbolic link stays the link).
    id : str
        Unique within the corpus: the path relative to its input, ``/``-separated.
    """

    path: Path
    id: str

    @property
    def folder(self) -> str:
        """Name of the folder the file was found in (the link's folder for a link)."""
        return Path(os.path.abspath(self.path)).parent.name

    def fingerprint(self) -> list[int]:
        """``[size, mtime_ns]`` of the file's content (a link's target): changes when it is replaced."""
        info = os.stat(self.path)
        return [int(info.st_size), int(info.st_mtime_ns)]


def _walk(folder: Path):
    """``(root, names)`` of every folder under ``folder`` as :func:`find_corpus` searches
    it: linked folders entered, each real folder once (a link back up the tree does not
    loop), sub-folders in sorted order."""
    visited: set[tuple[int, int]] = set()
    for root, dirs, names in os.walk(folder, followlinks=True):
        info = os.stat(root)
        if (info.st_dev, info.st_ino) in visited:
            dirs[:] = []
            continue
        visited.add((info.st_dev, info.st_ino))
        dirs.sort()
        yield root, names


def _audio_under(folder: Path) -> list[Path]:
    """Files with an audio extension under ``folder`` (see :func:`_walk`).

    Entries that are not regular files (a FIFO, a device, a socket, a link to nothing)
    are kept: reading them says what they are, and the run lists them as skipped.
    """
    return [Path(root) / name for root, names in _walk(folder) for name in names
            if Path(name).suffix.lower() in AUDIO_EXTENSIONS]


def searched_folders(inputs) -> list[Path]:
    """Every folder :func:`find_corpus` searches for ``inputs``: the input folders and all
    folders under them, linked ones included (as found, not resolved).

    An output written into any of them would be part of the corpus next time.
    """
    return [Path(root) for item in inputs if Path(item).is_dir() for root, _ in _walk(Path(item))]


def find_corpus(inputs) -> list[AudioFile]:
    """The audio files named by ``inputs``, each with its unique id.

    Parameters
    ----------
    inputs : iterable of path
        Audio files (taken whatever their extension) and folders (searched
        recursively for :data:`~featx.extract.audio.AUDIO_EXTENSIONS`, in sorted
        order; linked files and folders are taken as found, each folder once;
        a name with such an extension that is not a regular file is taken too, and
        reading it says what it is).

    Returns
    -------
    list of AudioFile
        In input order; a path named twice is taken once.

    Raises
    ------
    ConfigError
        An input does not exist, no audio file is found, or two files would
        get the same id (files of the same name named directly or from two
        folders of the same name).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for album in ("AlbumA", "AlbumB"):
    ...     (root / album).mkdir()
    ...     _ = (root / album / "01.wav").write_bytes(b"")
    >>> [f.id for f in find_corpus([root])]
    ['AlbumA/01.wav', 'AlbumB/01.wav']
    """
    inputs = [Path(item) for item in inputs]
    prefixed = len(inputs) > 1
    files: list[AudioFile] = []
    seen: set[str] = set()
    by_id: dict[str, Path] = {}
    for path in inputs:
        if path.is_dir():
            lead = Path(os.path.abspath(path)).name if prefixed else ""
            found = sorted(_audio_under(path))
            pairs = [(p, "/".join(filter(None, (lead, p.relative_to(path).as_posix())))) for p in found]
        elif path.exists():
            pairs = [(path, path.name)]
        else:
            raise ConfigError(f"input not found: {str(path)!r}; expected an audio file or a folder")
        for p, ident in pairs:
            where = os.path.abspath(p)
            if where in seen:
                continue
            seen.add(where)
            if ident in by_id:
                raise ConfigError(
                    f"{by_id[ident]} and {p} would both be track {ident!r}; give their common "
                    "parent folder as the input, or rename one"
                )
            by_id[ident] = p
            files.append(AudioFile(p, ident))
    if not files:
        names = ", ".join(repr(str(i)) for i in inputs) or "(none)"
        raise ConfigError(
            f"no audio files found in {names}; expected files with one of the extensions "
            + " ".join(AUDIO_EXTENSIONS)
        )
    return files


def row_names(file_id: str, n_segments: int, *, whole_file: bool, bare: bool = False) -> list[str]:
    """The ``filename`` of each row of a file: its id, with the segment index before the extension.

    ``AlbumA/01.mp3`` -> ``AlbumA/01.0.mp3``, ``AlbumA/01.1.mp3``, ...; with
    ``bare=True`` (Kaggle's form, ``--preset gtzan``) only the file name is used:
    ``rock.00001.0.wav``.
    """
    name = file_id.rsplit("/", 1)[-1] if bare else file_id
    if whole_file:
        return [name]
    head, dot, tail = name.rpartition("/")
    stem, ext = Path(tail).stem, Path(tail).suffix  # as featx.extract.file.row_names splits it
    return [f"{head}{dot}{stem}.{i}{ext}" for i in range(n_segments)]
