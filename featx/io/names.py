"""File names derived from data (column names, track ids): safe and distinct."""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

# ---------------------------------------------------------------------------
# File names made from data


_UNSAFE = re.compile(r"[^A-Za-z0-9._+=-]+")


def safe_name(text: str, *, max_length: int = 120) -> str:
    """A file name made from ``text``: no separators, no leading dot, never empty.

    Examples
    --------
    >>> safe_name("../../x")
    'x'
    >>> safe_name("mfcc1 mean")
    'mfcc1_mean'
    """
    name = _UNSAFE.sub("_", str(text))
    name = re.sub(r"\.{2,}", ".", name)
    name = name.strip("._") or "unnamed"
    return name[:max_length]


#: Characters an escaped name keeps as they are (and ``.``, except as its first character).
_KEPT = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+=-")


def escaped_name(text: str, *, max_length: int = 120) -> str:
    """A file name that stands for ``text`` alone: safe characters kept, every other escaped.

    ASCII letters, digits and ``_ + = -`` are kept, and ``.`` except as the first
    character; every other character (``/``, ``\\``, ``%``, ``~``, spaces, letters
    outside ASCII...) becomes ``%XX`` for each byte of its UTF-8 form, as in a URL. The
    escape can be undone, so distinct texts give distinct names: ``.``, ``..`` and
    ``~`` become ``%2E``, ``%2E.`` and ``%7E``, ``a/b`` and ``a\\b`` become ``a%2Fb``
    and ``a%5Cb``, and the empty text ``%``. A name longer than ``max_length`` is cut
    and ends with ``~`` and 12 hex digits of the text's SHA-256 (a ``~`` appears in no
    other escaped name).

    Examples
    --------
    >>> escaped_name("hip hop")
    'hip%20hop'
    >>> escaped_name("..")
    '%2E.'
    >>> escaped_name("électro")
    '%C3%A9lectro'
    """
    text = str(text)
    parts = []
    for i, char in enumerate(text):
        if char in _KEPT or (char == "." and i > 0):
            parts.append(char)
        else:
            parts.append("".join(f"%{b:02X}" for b in char.encode("utf-8", "surrogatepass")))
    name = "".join(parts) or "%"
    if len(name) > max_length:
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
        cut = name[: max_length - 13]
        if "%" in cut[-2:]:  # never half an escape
            cut = cut[: cut.rindex("%")]
        name = cut + "~" + digest
    return name


def unique_names(names, *, suffix: str = "") -> list[str]:
    """Distinct file names for ``names`` (already safe): repeats get ``-2``, ``-3``, ...

    Case is ignored when telling names apart, for case-insensitive file systems.
    """
    seen: set[str] = set()
    out = []
    for name in names:
        candidate, k = name, 1
        while (candidate + suffix).lower() in seen:
            k += 1
            candidate = f"{name}-{k}"
        seen.add((candidate + suffix).lower())
        out.append(candidate + suffix)
    return out


def names_for_paths(paths, *, suffix: str = "") -> list[str]:
    """Distinct, safe file names for one output per input file.

    The file stems when they differ; when two inputs share a stem (``jazz/01.wav``,
    ``rock/01.wav``), each name is made from the path relative to the inputs' common
    folder (``jazz_01``, ``rock_01``).

    Examples
    --------
    >>> names_for_paths(["a/x.wav", "b/y.wav"], suffix=".png")
    ['x.png', 'y.png']
    >>> names_for_paths(["jazz/01.wav", "rock/01.wav"], suffix=".png")
    ['jazz_01.png', 'rock_01.png']
    """
    paths = [Path(p) for p in paths]
    stems = [p.stem for p in paths]
    if len({s.lower() for s in stems}) < len(stems):
        absolute = [Path(os.path.abspath(p)) for p in paths]
        root = Path(os.path.commonpath([str(p.parent) for p in absolute]))
        stems = [str(p.relative_to(root).with_suffix("")).replace(os.sep, "_") for p in absolute]
    return unique_names([safe_name(s) for s in stems], suffix=suffix)
