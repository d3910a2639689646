"""The ``featx`` command line (entry point :func:`featx.cli.main`)."""
from .main import main

__all__ = ["main"]
