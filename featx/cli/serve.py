"""``featx serve``: a trained bundle behind a web page and a JSON API."""
from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

import click

from ..errors import BundleError, ConfigError
from ..serve import INSTALL, missing_packages
from . import options
from ._common import handle_errors, info

logger = logging.getLogger(__name__)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@click.command("serve")
@click.argument("bundle_dir", metavar="BUNDLE", type=click.Path(path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; the default answers this machine only (0.0.0.0: every network).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="TCP port (0: any free port, printed at start-up).")
@click.option("--max-upload-mb", type=click.FloatRange(min=0, min_open=True), default=50.0, show_default=True,
              help="Largest upload in MiB; larger ones get 413 as soon as they pass it.")
@click.option("--max-seconds", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Longest audio analysed; longer gets 422 [default: featx's decoder cap, 2^27 samples "
                   "at the model's rate, about 101 min at 22050 Hz].")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Files analysed at once (threads sharing the one loaded model).")
@click.option("--queue", "waiting", type=click.IntRange(min=0), default=4, show_default=True,
              help="Requests that may wait for a worker; when all places are taken, more get 503.")
@options.verbosity
@click.pass_context
@handle_errors(interrupted="server stopped")
def serve(ctx, bundle_dir, host, port, max_upload_mb, max_seconds, workers, waiting):
    """Serve a trained BUNDLE: a web page at / (drop a song, see its genres over time and its mel
    spectrogram), POST /predict (multipart field 'file') answering JSON with the numbers of
    featx predict, GET /model, GET /health, and the API docs at /docs.

    Ctrl-C stops the server; requests in progress are given a few seconds to finish.
    """
    missing = missing_packages()
    if missing:
        raise ConfigError(f"featx serve needs {', '.join(missing)}, not installed here: {INSTALL}")
    from ..bundle import load_bundle  # pulls in pandas: only on this path
    from ..serve.analysis import Analyser  # pulls in pandas: only on this path
    from ..serve.app import create_app  # the web packages: only on this path
    from ..serve.server import bind, run, url_of  # the web packages: only on this path

    sock = bind(host, port)  # before the model loads: a busy port is said at once
    try:
        bundle = load_bundle(bundle_dir)
        if bundle.sample_rate is None:
            raise BundleError(f"{bundle_dir}: the {bundle.spec.name} model's training features have no known "
                              "extraction settings, so it cannot classify audio; expected a bundle trained on "
                              "features featx extracted (or on the Kaggle GTZAN tables)")
        analyser = Analyser(bundle, max_seconds=max_seconds)
        app = create_app(analyser, workers=workers, waiting=waiting, max_upload_mb=max_upload_mb)
    except BaseException:
        sock.close()
        raise
    if not _loopback(host):
        info(f"WARNING: listening on {host}: anyone who can reach this machine can use the model "
             "(featx serve has no authentication)", err=True)
    url = url_of(sock)
    info(f"serving {bundle.spec.name} ({len(bundle.classes)} genres) from {bundle_dir} at {url} "
         f"(API docs: {url}docs); Ctrl-C stops it", err=True)
    quiet = bool((ctx.find_root().obj or {}).get("quiet"))
    run(app, sock, quiet=quiet)
