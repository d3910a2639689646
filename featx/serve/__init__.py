"""``featx serve``: a trained bundle behind a web page and a JSON API (FastAPI on uvicorn).

* :mod:`featx.serve.analysis`: one upload decoded once, classified window by window with
  the bundle's own methods (the numbers ``featx predict`` gives), and what ``/model`` says;
* :mod:`featx.serve.spectrogram`: the page's mel spectrogram, whole file, bounded width;
* :mod:`featx.serve.uploads`: uploads streamed into a private folder, refused when too large;
* :mod:`featx.serve.queue`: ``workers`` analyses at a time, a small waiting room, 503 beyond;
* :mod:`featx.serve.app`: the FastAPI application and its page (``page.html``, self-contained);
* :mod:`featx.serve.server`: the socket and the uvicorn server, stopped cleanly by a signal.

The web packages are an extra (``pip install 'featx[serve]'``); this module imports none
of them, so that :func:`missing_packages` can say what is missing.
"""
from __future__ import annotations

import importlib.util

__all__ = ["INSTALL", "REQUIRED", "missing_packages"]

#: The one command that installs what ``featx serve`` needs.
INSTALL = "pip install 'featx[serve]'"
#: Import name -> distribution name of every package of the ``serve`` extra.
REQUIRED = {"fastapi": "fastapi", "uvicorn": "uvicorn", "python_multipart": "python-multipart",
            "swagger_ui": "swagger-ui-py"}


def missing_packages() -> list[str]:
    """The distributions of the ``serve`` extra that are not installed."""
    return [dist for module, dist in REQUIRED.items() if importlib.util.find_spec(module) is None]
