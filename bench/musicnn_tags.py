"""Top tags of real clips from the pretrained musicnn networks, with timings.

For each clip it prints the five tags of highest mean probability over the clip's 3-s
patches, and the seconds spent decoding and computing the log-mel patches and running
the network. The one-off costs (loading Keras and TensorFlow, building the network,
reading the weights from the ``.npz`` cache or, the first time, from the musicnn
package's checkpoint) are printed apart.

    python bench/musicnn_tags.py                               # ../shared/data/gtzan/audio
    python bench/musicnn_tags.py AUDIO_DIR --model MSD_musicnn --clips 3

Needs the musicnn package for its weights: ``pip install --no-deps musicnn==0.1.0``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from featx.errors import FeatxError
from featx.extract.audio import find_audio, load
from featx.features.musicnn_input import (
    HOP_LENGTH,
    N_FRAMES,
    SR,
    musicnn_logmel,
    musicnn_patches,
)
from featx.extract.musicnn import MODELS, load_musicnn, run_patches, tag_names

DEFAULT_AUDIO = HERE.parent.parent / "shared" / "data" / "gtzan" / "audio"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("audio", nargs="?", default=str(DEFAULT_AUDIO), help="audio file or folder")
    parser.add_argument("--model", default="MTT_musicnn", choices=MODELS)
    parser.add_argument("--clips", type=int, default=None, help="at most this many clips")
    parser.add_argument("--top", type=int, default=5, help="tags per clip")
    args = parser.parse_args(argv)
    try:
        files = find_audio([args.audio])[: args.clips]
        start = time.perf_counter()
        load_musicnn(args.model)
        setup = time.perf_counter() - start
        tags = tag_names(args.model)
    except FeatxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"model {args.model}; Keras, TensorFlow, network and weights loaded in {setup:.2f} s")
    print(f"{'clip':<22} {'patches':>7} {'input s':>8} {'net s':>7}  top {args.top} tags (mean probability)")
    totals = [0.0, 0.0, 0]
    for path in files:
        t0 = time.perf_counter()
        patches = musicnn_patches(musicnn_logmel(load(path, sr=SR), sr=SR))
        t1 = time.perf_counter()
        taggram = run_patches(patches, model=args.model)["taggram"]
        t2 = time.perf_counter()
        mean = taggram.mean(axis=0)
        best = mean.argsort()[::-1][: args.top]
        top = ", ".join(f"{tags[i]} {mean[i]:.2f}" for i in best)
        print(f"{path.name:<22} {len(patches):>7} {t1 - t0:>8.2f} {t2 - t1:>7.2f}  {top}")
        totals[0] += t1 - t0
        totals[1] += t2 - t1
        totals[2] += len(patches)
    if files:
        audio_s = totals[2] * N_FRAMES * HOP_LENGTH / SR
        print(f"total: {len(files)} clips, {totals[2]} patches; input {totals[0]:.2f} s, network {totals[1]:.2f} s "
              f"({audio_s / max(totals[0] + totals[1], 1e-9):.0f}x realtime over the {audio_s:.0f} s of patches)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
