"""The guard for output folders: featx replaces or deletes only what it can prove it wrote.

Every folder featx creates carries a marker file, ``.featx.json``::

    {"format": "featx-bundle", "featx": "0.1.0", "marker_version": 1,
     "files": ["metadata.json", ...], "folders": ["figures"], "scratch": []}

naming what the folder is and every file and sub-folder featx wrote into it
(:mod:`featx.io.atomic` adds each file it writes). The rules:

* a command that writes an output folder (a bundle, a sweep, plots, the demo) takes
  a new folder, an empty one, or one whose marker has the expected format; any other
  non-empty folder is refused with one line ("... was not written by featx; refusing
  to replace it"), whatever files it holds;
* replacing clears only the files and sub-folders the marker lists (files a user
  added stay); deleting a whole folder needs every entry in it to be listed;
* symbolic links are never followed: a link as the output folder is refused, and a
  link inside a folder is neither deleted nor traversed;
* a folder written before markers existed is recognised only by its content: a
  ``legacy`` layout lists every path the format can contain, and the folder must hold
  nothing else (nor any link) and pass the layout's own check (for a bundle:
  ``metadata.json`` says ``"format": "featx-bundle"``).
"""
from __future__ import annotations

import fnmatch
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .._version import __version__
from ..errors import OutputError
from .failures import write_error
from .names import names_for_paths, safe_name, unique_names  # noqa: E402,F401  (re-exported)

MARKER = ".featx.json"
MARKER_VERSION = 1
_LISTS = ("files", "folders", "scratch")

#: What each format is called in messages.
NOUNS = {"featx-bundle": "model bundle", "featx-sweep": "sweep", "featx-plots": "figure folder",
         "featx-demo": "demo corpus", "featx-output": "output folder",
         "featx-store": "spectrogram store"}


def _noun(fmt: str) -> str:
    return NOUNS.get(fmt, fmt)


# ---------------------------------------------------------------------------
# The marker


def read_marker(folder) -> dict | None:
    """The marker of ``folder``, or ``None`` when it has none (or an unreadable one).

    A marker that is a symbolic link, or not a featx marker, counts as none.

    Raises
    ------
    OutputError
        The marker lists a name that is not a plain name inside the folder (a path,
        ``..``, an absolute path, an empty name): featx never deletes through it.
    """
    path = Path(folder) / MARKER
    if path.is_symlink() or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict) or not str(data.get("format", "")).startswith("featx-"):
        return None
    for key in _LISTS:
        value = data.setdefault(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return None
        for name in value:
            problem = _bad_entry(name)
            if problem:
                raise OutputError(f"corrupt marker {path}: {key} entry {name!r} {problem}; "
                                  "featx deletes nothing through it")
    return data


def _bad_entry(name: str) -> str | None:
    """Why the marker entry ``name`` cannot be a plain name directly inside its folder."""
    if name in ("", ".", "..") or name == MARKER:
        return "is not a file name"
    if "/" in name or (os.altsep and os.altsep in name) or os.sep in name or "\\" in name:
        return "is not a plain name inside the folder (a path)"
    if os.path.isabs(name) or os.path.splitdrive(name)[0] or "\0" in name:
        return "is not a plain name inside the folder"
    return None


def _new_marker(fmt: str) -> dict:
    return {"format": fmt, "featx": __version__, "marker_version": MARKER_VERSION,
            "files": [], "folders": [], "scratch": []}


def _write_marker(folder: Path, marker: dict) -> None:

    data = dict(marker)
    for key in _LISTS:
        data[key] = sorted(set(data.get(key, [])))
    path = folder / MARKER
    if path.is_symlink():
        raise OutputError(f"{path}: is a symbolic link; featx does not write its marker through links")
    tmp = folder / f".{MARKER}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o666)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(data, indent=2) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_error(path, exc) from None


def _update(folder: Path, key: str, *, add: str | None = None, remove: str | None = None) -> None:
    marker = read_marker(folder)
    if marker is None:
        return
    entries = set(marker[key])
    before = set(entries)
    if add is not None:
        entries.add(add)
    if remove is not None:
        entries.discard(remove)
    if entries != before:
        marker[key] = sorted(entries)
        _write_marker(folder, marker)


def note_written(path) -> None:
    """Add the file ``path`` to its folder's marker (nothing happens in an unmarked folder)."""
    path = Path(path)
    if path.name != MARKER:
        _update(path.parent, "files", add=path.name)


def check_replaceable(path) -> None:
    """Raise unless featx may create or replace the file ``path``.

    Inside a folder with a marker, an existing file is replaced only when the marker
    lists it. Elsewhere the caller decides (e.g. ``featx extract --overwrite``).
    """
    path = Path(path)
    if path.name == MARKER:
        raise OutputError(f"{path}: is the name of featx's folder marker; choose another name")
    if not os.path.lexists(path):
        return
    marker = read_marker(path.parent)
    if marker is not None and path.name not in marker["files"]:
        raise OutputError(f"{path}: exists and was not written by featx; refusing to replace it")


def check_output_file(path, inputs=(), *, featx_folders: bool = True) -> None:
    """Raise unless ``path``, a file a user named for output, may be written.

    Refused: ``path`` is one of ``inputs`` (same file, or the same resolved path), or lies
    inside a folder featx wrote for something else (a model bundle, a sweep, a spectrogram
    store, a figure folder...), whose own files it could replace (checked when
    ``featx_folders``).
    """
    path = Path(path)
    target = os.path.realpath(path)
    exists = path.exists()
    for item in inputs:
        item = Path(item)
        same = os.path.realpath(item) == target
        if not same and exists and item.exists():
            try:
                same = os.path.samefile(path, item)
            except OSError:
                same = False
        if same:
            raise OutputError(f"{path}: is one of the inputs ({item}); refusing to write over it; "
                              "choose another output file")
    for folder in Path(target).parents if featx_folders else ():
        marker = read_marker(folder) if (folder / MARKER).exists() else None
        fmt = marker["format"] if marker is not None else None
        if fmt is None and _is_store(folder):
            fmt = "featx-store"
        if fmt is not None and fmt != "featx-output":
            raise OutputError(f"{path}: lies inside the featx {_noun(fmt)} {folder}; refusing to "
                              "write into it; choose a file outside it")


def _chain(path) -> list[tuple[tuple[int, int], Path]]:
    """``((device, inode), folder)`` of ``path`` resolved and of each of its existing parents."""
    resolved = Path(os.path.realpath(path))
    chain = []
    for item in (resolved, *resolved.parents):
        try:
            info = os.stat(item)
        except OSError:
            continue
        chain.append(((info.st_dev, info.st_ino), item))
    return chain


def check_output_apart(folder, inputs, *, searched=()) -> None:
    """Raise unless the output folder ``folder`` and every input lie apart.

    Refused, however the paths are written or reached (``..``, symbolic links, a
    second mount of one folder: folders are compared by device and inode): ``folder``
    is an input folder or lies inside one, or an input (file or folder) lies inside
    ``folder``, where writing the output could replace it. ``searched`` are further
    folders a later run reads from (the linked folders under an input), which the
    output may not lie inside either.

    Raises
    ------
    OutputError
        Naming the output folder and the input.
    """
    folder = Path(folder)
    out_ids = {ident for ident, _ in _chain(folder)}
    try:
        out_self = os.stat(folder)
    except OSError:
        out_self = None
    inputs = [Path(item) for item in inputs]
    for item in [*inputs, *(Path(s) for s in searched)]:
        try:
            info = os.stat(item)
        except OSError:
            continue
        if item.is_dir() and (info.st_dev, info.st_ino) in out_ids:
            where = "is" if out_self is not None and os.path.samestat(out_self, info) else "lies inside"
            what = "the input folder" if item in inputs else "a folder searched for the inputs,"
            raise OutputError(f"{folder}: {where} {what} {item}; a later run would read what featx "
                              "writes there; choose an output folder outside the inputs")
        if out_self is not None and item in inputs and any(
                ident == (out_self.st_dev, out_self.st_ino) for ident, _ in _chain(item)[1:]):
            raise OutputError(f"{folder}: holds the input {item}, which writing there could replace; "
                              "choose an output folder apart from the inputs")


def _is_store(folder: Path) -> bool:
    meta = folder / "zarr.json"
    if not meta.is_file():
        return False
    try:
        attrs = json.loads(meta.read_text(encoding="utf-8")).get("attributes", {})
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return False
    return isinstance(attrs, dict) and isinstance(attrs.get("featx"), dict)


# ---------------------------------------------------------------------------
# Folders written before markers existed


@dataclass(frozen=True)
class Legacy:
    """How to recognise a folder of format ``fmt`` written before featx left markers.

    ``patterns`` are the relative paths (``fnmatch`` patterns matched one path part at a
    time) the format can contain; ``check`` returns True when the folder's own records
    say it is such a folder.
    """

    fmt: str
    patterns: tuple[str, ...]
    check: Callable[[Path], bool]

    def matches(self, folder: Path) -> bool:
        """True when ``folder`` holds only paths of the layout, no links, and passes ``check``."""
        for path in _walk(folder):
            if path.is_symlink():
                return False
            if path.is_dir():
                continue
            rel = path.relative_to(folder).parts
            if not any(_match(rel, p) for p in self.patterns):
                return False
        return self.check(folder)


def _match(parts: tuple[str, ...], pattern: str) -> bool:
    want = pattern.split("/")
    return len(want) == len(parts) and all(fnmatch.fnmatchcase(a, b) for a, b in zip(parts, want))


def _walk(folder: Path):
    """Every entry under ``folder``, depth first; links are yielded, never entered."""
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        path = Path(entry.path)
        yield path
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(path)


def json_says(name: str, key: str, value) -> Callable[[Path], bool]:
    """A :class:`Legacy` check: ``folder/name`` is a JSON object whose ``key`` is ``value``
    (``value=None``: the key is present)."""

    def check(folder: Path) -> bool:
        path = folder / name
        if path.is_symlink() or not path.is_file():
            return False
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return False
        return isinstance(data, dict) and key in data and (value is None or data[key] == value)

    return check


def _adopt(folder: Path, fmt: str) -> None:
    """Write markers into a recognised legacy folder listing everything in it."""
    marker = _new_marker(fmt)
    with os.scandir(folder) as it:
        for entry in it:
            if entry.name == MARKER:
                continue
            if entry.is_dir(follow_symlinks=False):
                marker["folders"].append(entry.name)
                _adopt(Path(entry.path), "featx-output")
            elif entry.is_file(follow_symlinks=False):
                marker["files"].append(entry.name)
    _write_marker(folder, marker)


# ---------------------------------------------------------------------------
# Output folders


def folder_state(folder, fmt: str, *, legacy: Legacy | None = None,
                 accept: tuple[str, ...] = ()) -> str:
    """What ``folder`` is, for writing a ``fmt`` output into it; nothing is changed.

    Returns
    -------
    str
        ``"absent"``, ``"empty"``, ``"ours"`` (its marker has format ``fmt`` or one of
        ``accept``) or ``"legacy"`` (recognised by ``legacy``).

    Raises
    ------
    OutputError
        ``folder`` is a symbolic link or a file, holds another kind of featx output,
        or is a non-empty folder featx did not write.
    """
    folder = Path(folder)
    if folder.is_symlink():
        raise OutputError(
            f"{folder}: is a symbolic link; featx writes its {_noun(fmt)} only into a real folder; "
            "give the folder it points to, or a new one"
        )
    if not folder.exists():
        return "absent"
    if not folder.is_dir():
        raise OutputError(f"{folder}: exists and is not a folder; expected a folder for the {_noun(fmt)}")
    marker = read_marker(folder)
    if marker is not None:
        if marker["format"] == fmt or marker["format"] in accept:
            return "ours"
        raise OutputError(
            f"{folder}: holds a featx {_noun(marker['format'])}, not a {_noun(fmt)}; "
            "refusing to replace it; choose another folder"
        )
    with os.scandir(folder) as it:
        if next(it, None) is None:
            return "empty"
    if legacy is not None and legacy.matches(folder):
        return "legacy"
    raise OutputError(
        f"{folder}: folder is not empty and was not written by featx; refusing to replace it; "
        "choose a new or empty folder"
    )


def claim_folder(folder, fmt: str, *, legacy: Legacy | None = None, accept: tuple[str, ...] = (),
                 clear: bool = False) -> Path:
    """Make ``folder`` ready for a ``fmt`` output: created, or checked by :func:`folder_state`.

    A new or empty folder gets a marker; a legacy folder gets markers listing what it
    holds. With ``clear``, the files and folders featx wrote there before are deleted
    (:func:`clear_folder`); files a user added stay.
    """
    folder = Path(folder)
    state = folder_state(folder, fmt, legacy=legacy, accept=accept)
    if state == "absent":
        make_folder(folder, fmt)
    elif state == "empty":
        _write_marker(folder, _new_marker(fmt))
        _update(folder.parent, "folders", add=folder.name)
    elif state == "legacy":
        _adopt(folder, fmt)
    if clear and state in ("ours", "legacy"):
        clear_folder(folder)
    return folder


def make_folder(folder, fmt: str = "featx-output") -> Path:
    """Create ``folder`` and any missing parents, each with a marker (``fmt`` for ``folder``).

    A new folder is added to its parent's marker. An existing folder is left as it is
    (a symbolic link there is refused).
    """
    folder = Path(folder)
    missing = []
    probe = folder
    while not os.path.lexists(probe) and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    if folder.is_symlink() and not missing:
        raise OutputError(f"{folder}: is a symbolic link; featx creates its folders only as real folders")
    for path in reversed(missing):
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise OutputError(f"{path}: cannot create the folder ({exc.strerror or exc})") from None
        _write_marker(path, _new_marker(fmt if path == folder else "featx-output"))
        _update(path.parent, "folders", add=path.name)
    if not folder.is_dir():
        raise OutputError(f"{folder}: exists and is not a folder; expected a folder")
    return folder


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise OutputError(f"{path}: cannot delete ({exc.strerror or exc})") from None


def clear_folder(folder) -> list[Path]:
    """Delete what ``folder``'s marker lists; keep the folder, its marker and anything unlisted.

    Listed sub-folders are cleared the same way and removed when nothing is left in
    them. Links are never followed: a listed name that is now a link is left alone.
    Returns the paths left in place because featx did not write them.
    """
    folder = Path(folder)
    marker = read_marker(folder)
    if marker is None:
        return []
    _check_nested(folder, marker)
    kept: list[Path] = []
    for name in marker["files"]:
        path = folder / name
        if path.is_symlink() or (path.exists() and not path.is_file()):
            kept.append(path)
        else:
            _unlink(path)
    for name in marker["folders"] + marker["scratch"]:
        path = folder / name
        if not os.path.lexists(path):
            continue
        if path.is_symlink() or not path.is_dir():
            kept.append(path)
            continue
        if name in marker["scratch"]:
            kept += _clear_scratch(path)
        else:
            kept += clear_folder(path)
            if read_marker(path) is not None and not any(
                    e.name != MARKER for e in os.scandir(path)):
                _unlink(path / MARKER)
        _rmdir_if_empty(path)
    # what is left of the listed sub-folders holds a user's files: keep them listed, so that
    # featx's own files written there later are found; a listed file still here is not ours
    marker["files"] = []
    marker["folders"] = [n for n in marker["folders"] if (folder / n).is_dir()
                         and not (folder / n).is_symlink() and read_marker(folder / n) is not None]
    marker["scratch"] = [n for n in marker["scratch"] if (folder / n).is_dir()
                         and not (folder / n).is_symlink()]
    _write_marker(folder, marker)
    return kept


def _check_nested(folder: Path, marker: dict) -> None:
    """Read every marker below ``folder`` first, so that a corrupt one stops before any deletion."""
    for name in marker["folders"]:
        path = folder / name
        if path.is_dir() and not path.is_symlink():
            sub = read_marker(path)
            if sub is not None:
                _check_nested(path, sub)


def _clear_scratch(folder: Path) -> list[Path]:
    kept = []
    for entry in os.scandir(folder):
        path = Path(entry.path)
        if entry.is_file(follow_symlinks=False):
            _unlink(path)
        else:
            kept.append(path)
    return kept


def _rmdir_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def scratch_folder(folder) -> Path:
    """Create, or empty, a folder for featx's temporary files inside a featx folder.

    Everything directly in a scratch folder is featx's (its regular files are deleted
    here); the parent's marker lists it under ``scratch``. An existing folder of that
    name that the parent's marker does not list is refused.
    """
    folder = Path(folder)
    parent = read_marker(folder.parent)
    if parent is None:
        raise OutputError(f"{folder.parent}: was not written by featx; refusing to keep temporary files in it")
    if os.path.lexists(folder):
        if (folder.name not in parent["scratch"] + parent["folders"] or folder.is_symlink()
                or not folder.is_dir()):
            raise OutputError(f"{folder}: was not written by featx; refusing to use it for temporary files")
        _clear_scratch(folder)
    else:
        folder.mkdir()
    _update(folder.parent, "folders", remove=folder.name)
    _update(folder.parent, "scratch", add=folder.name)
    return folder


def check_removable(folder, *, what: str | None = None) -> None:
    """Raise the error :func:`remove_folder` would raise for ``folder``; delete nothing."""
    folder = Path(folder)
    if not os.path.lexists(folder):
        return
    stray = _unlisted(folder)
    if stray == folder:
        raise OutputError(f"{folder}: was not written by featx; refusing to delete or replace it")
    if stray is not None:
        raise OutputError(f"{stray}: was not written by featx; refusing to delete or replace "
                          f"{what or folder}")


def remove_folder(folder, *, what: str | None = None) -> None:
    """Delete ``folder``, which featx made, with everything in it.

    Refused (nothing is deleted) when ``folder`` is a link, has no featx marker, or
    holds anything its markers do not list.
    """
    folder = Path(folder)
    if not os.path.lexists(folder):
        return
    check_removable(folder, what=what)
    clear_folder(folder)
    _unlink(folder / MARKER)
    try:
        folder.rmdir()
    except OSError as exc:
        raise OutputError(f"{folder}: cannot delete ({exc.strerror or exc})") from None
    for key in ("folders", "scratch"):
        _update(folder.parent, key, remove=folder.name)


def _unlisted(folder: Path) -> Path | None:
    """The first thing in ``folder`` that its marker does not vouch for (or the folder itself)."""
    if folder.is_symlink() or not folder.is_dir():
        return folder
    marker = read_marker(folder)
    if marker is None:
        return folder
    for entry in os.scandir(folder):
        path = Path(entry.path)
        if entry.name == MARKER:
            continue
        if entry.is_symlink():
            return path
        if entry.name in marker["scratch"] and entry.is_dir():
            if any(not e.is_file(follow_symlinks=False) for e in os.scandir(path)):
                return path
            continue
        if entry.name in marker["folders"] and entry.is_dir():
            stray = _unlisted(path)
            if stray is not None:
                return stray
            continue
        if entry.name in marker["files"] and entry.is_file(follow_symlinks=False):
            continue
        return path
    return None


def rename_folder(source, target) -> Path:
    """Move the featx folder ``source`` to the new name ``target`` in the same parent."""
    source, target = Path(source), Path(target)
    if os.path.lexists(target):
        raise OutputError(f"{target}: exists; refusing to replace it")
    try:
        os.replace(source, target)
    except OSError as exc:
        raise OutputError(f"{source}: cannot rename to {target.name} ({exc.strerror or exc})") from None
    _update(source.parent, "folders", remove=source.name)
    _update(target.parent, "folders", add=target.name)
    return target
