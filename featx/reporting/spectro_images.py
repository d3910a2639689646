"""Pictures of a spectrogram store: example grids per genre, and one PNG per segment."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..io.atomic import atomic_write
from ..io.guard import make_folder, safe_name, unique_names
from ..io.names import escaped_name
from ..runtime.progress import progress_bar

__all__ = ["choose_examples", "export_segment_pngs", "grayscale", "write_example_grids"]

#: Row name of segments without a label.
UNLABELLED = "unlabelled"


def _labels(rows) -> list[str]:
    return [UNLABELLED if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
            for v in rows["label"]]


def choose_examples(rows, per_genre: int) -> dict[str, list[int]]:
    """Row numbers of up to ``per_genre`` examples of each label, from as many tracks as possible.

    Each track gives its middle segment first; tracks are taken in store order, and
    further segments of the same tracks only when a label has fewer tracks than
    ``per_genre``. Labels come in sorted order.

    Parameters
    ----------
    rows : pandas.DataFrame
        A store's row table (columns ``track``, ``segment``, ``label``).
    per_genre : int > 0

    Returns
    -------
    dict
        ``label -> [row number, ...]``.
    """
    if isinstance(per_genre, bool) or not isinstance(per_genre, (int, np.integer)) or per_genre < 1:
        raise ConfigError(f"per_genre must be a positive integer. Received: per_genre={per_genre!r}")
    labels = _labels(rows)
    by_label: dict[str, dict[str, list[int]]] = {}
    for i, (label, track) in enumerate(zip(labels, rows["track"])):
        by_label.setdefault(label, {}).setdefault(str(track), []).append(i)
    chosen = {}
    for label in sorted(by_label):
        queues = []
        for idx in by_label[label].values():
            mid = len(idx) // 2
            queues.append([idx[mid], *idx[mid + 1:], *idx[:mid][::-1]])
        picks: list[int] = []
        depth = 0
        while len(picks) < per_genre and any(depth < len(q) for q in queues):
            picks.extend(q[depth] for q in queues if depth < len(q))
            depth += 1
        chosen[label] = picks[:per_genre]
    return chosen


def write_example_grids(store, directory, *, per_genre: int = 4, kinds=None) -> list[Path]:
    """One PNG per kind: rows are genres, ``per_genre`` example segments each.

    Parameters
    ----------
    store : featx.data.store.SpectrogramStore
    directory : path
        Folder for ``spectrograms_<kind>.png`` (claimed by the caller).
    per_genre : int > 0
    kinds : iterable of str, optional
        Default: every kind of the store.

    Returns
    -------
    list of Path
    """
    from .figures import (  # pulls in pandas: only on this path
        new_figure,
        save_figure,
        spectrogram_grid,
    )

    if len(store) == 0:
        raise ConfigError(f"{store.path} holds no segments yet; nothing to draw")
    examples = choose_examples(store.rows, per_genre)
    labels = list(examples)
    n_cols = max(len(v) for v in examples.values())
    written = []
    for kind in store._kinds(kinds):
        height, width = store.image_shape(kind)
        images, titles = [], []
        for label in labels:
            idx = examples[label]
            block = store.read(idx, kinds=kind)[kind]
            images.append(list(block))
            titles.append([f"{store.rows['track'].iat[i]} #{store.rows['segment'].iat[i]}" for i in idx])
        cell_w = 2.4 if width >= height else 1.6
        fig, axes = new_figure(cell_w * n_cols + 1.2, 1.7 * len(labels) + 0.9,
                               ncols=n_cols, nrows=len(labels))
        axes = np.asarray(axes, dtype=object).reshape(len(labels), n_cols)
        spectrogram_grid(images, labels, titles, axes=axes, kind=kind)
        fig.suptitle(f"{Path(store.path).name}: {kind} ({height}x{width}), "
                     f"{n_cols} per genre", fontsize=11)
        written.append(save_figure(fig, Path(directory) / f"spectrograms_{kind}.png"))
    return written


def grayscale(image: np.ndarray) -> np.ndarray:
    """An image as 8-bit gray, scaled by its own minimum and maximum, lowest band at the bottom.

    Parameters
    ----------
    image : np.ndarray [shape=(height, width)]

    Returns
    -------
    np.ndarray [shape=(height, width), dtype=uint8]
        0 at the image's minimum, 255 at its maximum; a constant image is all 0.
        Row 0 of the result is the image's last row (top of the picture = highest band).
    """
    image = np.nan_to_num(np.asarray(image, dtype=np.float64))
    lo, hi = float(image.min()), float(image.max())
    scaled = np.zeros(image.shape) if hi <= lo else (image - lo) / (hi - lo)
    return np.flipud(np.round(scaled * 255.0).astype(np.uint8))


def export_segment_pngs(store, directory, *, kinds=None, progress: bool | None = None) -> list[Path]:
    """Write every segment's images as 8-bit grayscale PNGs.

    Files are ``DIRECTORY/<kind>/<label>/<track>.<segment>.png``, each ``height`` x
    ``width`` pixels, scaled by :func:`grayscale`. Each label's folder is its escaped
    name (:func:`featx.io.names.escaped_name`: ``hip hop`` is ``hip%20hop``, ``..`` is
    ``%2E.``), so distinct labels never share a folder (on a file system that ignores
    case, ``Rock`` and ``rock`` get ``Rock`` and ``rock-2``); file names are made safe
    and unique within their folder. The folders carry featx's marker; a folder featx
    did not write is refused.

    Returns
    -------
    list of Path
    """
    from PIL import Image  # Pillow: only when writing images


    kinds = store._kinds(kinds)
    rows = store.rows
    labels = _labels(rows)
    stems = [safe_name(f"{t}.{s}") for t, s in zip(rows["track"], rows["segment"])]
    distinct = sorted(set(labels))
    folders = dict(zip(distinct, unique_names([escaped_name(label) for label in distinct])))
    names = np.empty(len(rows), dtype=object)
    for label, folder in folders.items():  # unique within each label's folder
        idx = [i for i, lab in enumerate(labels) if lab == label]
        for i, name in zip(idx, unique_names([stems[i] for i in idx], suffix=".png")):
            names[i] = name
    written = []
    batch = 256
    with progress_bar(total=len(rows) * len(kinds), desc="png", unit="image", progress=progress) as bar:
        for kind in kinds:
            for folder in set(folders.values()):
                make_folder(Path(directory) / kind / folder)
            for start in range(0, len(rows), batch):
                block = store.read(slice(start, start + batch), kinds=kind)[kind]
                for offset, image in enumerate(block):
                    i = start + offset
                    path = Path(directory) / kind / folders[labels[i]] / names[i]
                    buffer = io.BytesIO()
                    Image.fromarray(grayscale(image)).save(buffer, format="PNG")
                    written.append(atomic_write(path, buffer.getvalue()))
                    bar.update()
    return written
