"""Rows of the musicnn presets: a pretrained network's outputs per segment.

Under ``--preset musicnn-msd`` or ``musicnn-mtt`` a row holds, for its segment (or
its whole file), the mean over the network's 3-s patches of the penultimate layer
(200 values) and of the 50 tag probabilities. A segment is taken to 16 kHz, turned
into the network's log-mel spectrogram and cut into non-overlapping 187-frame
patches exactly as :func:`featx.extract.musicnn.musicnn_embeddings` does for a
recording, so a row equals ``musicnn_embeddings(segment, sr).embeddings.mean(0)``
(and ``.taggram.mean(0)``). A 3-s segment holds exactly one patch.

The network is built once per process (the extraction workers keep theirs) and its
weights come from the ``.npz`` cache after the first use; Keras is imported only
here, when a musicnn preset is asked for.
"""
from __future__ import annotations

import numpy as np

from ..features.musicnn_input import musicnn_logmel, musicnn_patches
from ..features.settings import MUSICNN_PRESETS, FeatureSettings
from .musicnn import EXPOSED_LAYERS, run_patches

#: Patches per forward pass.
BATCH_SIZE = 32


def musicnn_segment_values(segments: np.ndarray, *, settings: FeatureSettings) -> np.ndarray:
    """The musicnn columns of each segment.

    Parameters
    ----------
    segments : np.ndarray [shape=(k, n)]
        ``k`` segments of ``n`` samples at ``settings.sr``.
    settings : FeatureSettings
        A musicnn preset (``settings.preset`` in :data:`MUSICNN_PRESETS`).

    Returns
    -------
    np.ndarray [shape=(k, 250), dtype=float64]
        Per segment, the mean embedding (200) then the mean tag probabilities (50),
        in the order of ``settings.feature_columns()``.

    Raises
    ------
    MusicnnUnavailableError
        The musicnn package is not installed.
    AudioError
        A segment is shorter than one patch once at 16 kHz.
    """
    model = MUSICNN_PRESETS[settings.preset]
    patches = [musicnn_patches(musicnn_logmel(seg, sr=settings.sr)) for seg in segments]
    counts = [len(p) for p in patches]
    out = run_patches(np.concatenate(patches), model=model, batch_size=BATCH_SIZE)
    emb, tags = out[EXPOSED_LAYERS["musicnn"][0]], out["taggram"]
    bounds = np.cumsum([0] + counts)
    values = np.empty((len(segments), emb.shape[1] + tags.shape[1]), dtype=np.float64)
    for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        values[i, : emb.shape[1]] = emb[lo:hi].mean(axis=0, dtype=np.float64)
        values[i, emb.shape[1]:] = tags[lo:hi].mean(axis=0, dtype=np.float64)
    return values
