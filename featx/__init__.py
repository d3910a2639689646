"""featx: music-genre classification from hand-crafted audio features."""

__version__ = "0.1.0"
