"""featx's version (read by ``setup.cfg`` and by every file featx writes)."""

__version__ = "0.2.0"
