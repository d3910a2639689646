"""Feeding an image model from memory when its rows fit: one read of the store per fit.

A spectrogram store keeps one chunk per segment and kind, and reading a chunk costs
about a millisecond of Zarr's machinery whatever its size, so a training epoch that
reads every batch from disk spends a tenth of its time or more reading on a small
CPU network (``bench/bench_keras_cpu.py images``). :func:`rows_in_memory` reads the
rows of a fold once and serves every later batch from memory, behind the store's own
``read``, so the batches, and the weights learnt from them, do not change. Where the
rows would take more memory than allowed, the store itself is returned and batches
are read from disk as before: a store larger than memory still trains.
"""
from __future__ import annotations

import logging
import os

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["RowCache", "rows_in_memory", "memory_budget"]

#: Rows read from the store at a time while filling the cache.
READ_ROWS = 256
#: Most bytes of images held in memory by default, whatever memory is free.
MAX_CACHE_BYTES = 2 * 2**30


def memory_budget(*, limit: int = MAX_CACHE_BYTES) -> int:
    """Bytes an in-memory feed may take: half the memory free now, at most ``limit``.

    Where the free memory cannot be asked for (not Linux), ``limit`` alone.
    """
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return int(limit)
    return int(min(limit, free // 2))


class RowCache:
    """The images of ``rows`` of a store, read once and held in memory.

    ``read(indices, kinds)`` answers as :meth:`featx.data.store.SpectrogramStore.read`
    does (store row numbers, any order, repeats allowed), for rows it holds.

    Parameters
    ----------
    store : SpectrogramStore
    rows : np.ndarray [shape=(n,)]
        Store row numbers to hold.
    kinds : sequence of str
        Image kinds to hold.

    Attributes
    ----------
    nbytes : int
        Bytes of images held.
    """

    def __init__(self, store, rows, kinds):
        self.rows = np.unique(np.asarray(rows, dtype=np.int64).reshape(-1))
        self.kinds = tuple(kinds)
        shapes = {kind: tuple(store.image_shape(kind)) for kind in self.kinds}
        self._images = {kind: np.empty((len(self.rows), *shapes[kind]), dtype=np.float32) for kind in self.kinds}
        for start in range(0, len(self.rows), READ_ROWS):
            block = store.read(self.rows[start:start + READ_ROWS], self.kinds)
            for kind in self.kinds:
                self._images[kind][start:start + READ_ROWS] = block[kind]
        self.nbytes = sum(a.nbytes for a in self._images.values())

    def image_shape(self, kind: str) -> tuple[int, int]:
        return tuple(self._images[kind].shape[1:])

    def read(self, indices, kinds=None) -> dict[str, np.ndarray]:
        """``kind -> np.ndarray [shape=(n, height, width)]`` of the store rows ``indices``.

        Raises
        ------
        KeyError
            A kind or a row that is not held.
        """
        kinds = self.kinds if kinds is None else ((kinds,) if isinstance(kinds, str) else tuple(kinds))
        missing = [k for k in kinds if k not in self._images]
        if missing:
            raise KeyError(f"kind {missing[0]!r} is not held; held: {', '.join(self.kinds)}")
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        pos = np.minimum(np.searchsorted(self.rows, idx), max(len(self.rows) - 1, 0))
        if idx.size and (len(self.rows) == 0 or (self.rows[pos] != idx).any()):
            stray = idx[self.rows[pos] != idx] if len(self.rows) else idx
            raise KeyError(f"row {int(stray[0])} is not held")
        return {kind: self._images[kind][pos] for kind in kinds}


def rows_in_memory(store, rows, kinds, *, max_bytes: int | None = None):
    """A :class:`RowCache` of ``rows`` where their images fit ``max_bytes``, else ``store`` itself.

    Parameters
    ----------
    store : SpectrogramStore
    rows : np.ndarray [shape=(n,)]
        Every store row the fit will read (training and validation rows).
    kinds : sequence of str
    max_bytes : int, optional
        Default: :func:`memory_budget`.

    Examples
    --------
    >>> feed = rows_in_memory(store, np.concatenate([train, valid]), prep.kinds)  # doctest: +SKIP
    >>> batches = store_batches(feed, train, y[train], prep, batch_size=32, shuffle=True)  # doctest: +SKIP
    """
    rows = np.unique(np.asarray(rows, dtype=np.int64).reshape(-1))
    per_row = sum(4 * int(np.prod(store.image_shape(kind))) for kind in kinds)
    need = per_row * len(rows)
    budget = memory_budget() if max_bytes is None else int(max_bytes)
    if need > budget:
        logger.info("images of %d rows take %.0f MiB, more than the %.0f MiB allowed: read from the store per batch",
                    len(rows), need / 2**20, budget / 2**20)
        return store
    return RowCache(store, rows, kinds)
