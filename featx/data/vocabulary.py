"""Names the data layer defines for everyone else (kept free of heavy imports).

The command line builds its choices from these, so this module imports nothing
but the standard library.
"""
from __future__ import annotations

#: How rows are split into training and test parts (see :func:`featx.data.splits.make_splits`).
SPLITS = ("track", "artist", "fault-filtered", "random")
