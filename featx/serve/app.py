"""The web application: the page, ``POST /predict``, ``GET /model``, ``GET /health``, the API docs.

:func:`create_app` builds a FastAPI application around an :class:`~featx.serve.analysis.Analyser`
(a loaded bundle). Every answer is JSON except the page and the docs; every error is
``{"detail": "one line"}`` with its status, and an unexpected exception is logged on
the server (with its traceback) and answered with a 500 that says only that.
"""
from __future__ import annotations

import contextlib
import importlib.resources
import importlib.util
import logging
from pathlib import Path

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException

from .._version import __version__
from ..errors import FeatxError
from .analysis import AnalysisError, Analyser
from .queue import AnalysisQueue, QueueFull
from .uploads import FIELD, UploadFolder, receive_upload

logger = logging.getLogger(__name__)

__all__ = ["create_app", "PAGE_POLICY"]

#: What the page may load: nothing from anywhere else (its script and style are inline;
#: it talks to this server only, and plays and draws what it holds in memory).
PAGE_POLICY = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
               "img-src data: blob:; media-src blob:; connect-src 'self'; base-uri 'none'; "
               "form-action 'none'; frame-ancestors 'none'")
#: What the API docs page may load: its script, style and icon from this server.
DOCS_POLICY = ("default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
               "img-src 'self' data:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'")
#: Swagger UI's files the docs page uses, served from the swagger-ui-py package (no CDN).
DOCS_FILES = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css",
              "favicon-32x32.png": "image/png"}
#: Seconds a client is asked to wait before trying again after a 503.
RETRY_AFTER = 2

_UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": [FIELD],
    "properties": {FIELD: {"type": "string", "format": "binary",
                           "description": "An audio file (WAV, FLAC, Ogg, MP3, AIFF, AU...)."}}}}}}}

_ERRORS = {
    400: "Not a well-formed form, or no field 'file'.",
    408: "The upload took too long.",
    413: "The upload is larger than --max-upload-mb.",
    415: "Not a multipart form, or bytes that cannot be decoded as audio.",
    422: "Audio longer than the server's limit, or too short for the model.",
    503: "Every worker is busy and the waiting room is full: try again (see Retry-After).",
}


def _docs_folder() -> Path | None:
    """Swagger UI's static files, as the swagger-ui-py package ships them (``None`` without it)."""
    spec = importlib.util.find_spec("swagger_ui")
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        folder = Path(location) / "static"
        if all((folder / name).is_file() for name in DOCS_FILES):
            return folder
    return None


def _error(status: int, detail: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def create_app(analyser: Analyser, *, workers: int = 1, waiting: int = 4, max_upload_mb: float = 50.0,
               temp_parent=None) -> FastAPI:
    """The application that serves ``analyser``'s model.

    Parameters
    ----------
    analyser : Analyser
    workers : int >= 1
        Analyses at a time.
    waiting : int >= 0
        Requests that may wait besides those analysed; more are answered 503.
    max_upload_mb : float > 0
        Largest upload, in MiB (413 beyond).
    temp_parent : path, optional
        Where the private upload folder is made (the system's temporary folder by default).

    Returns
    -------
    FastAPI
        Its lifespan makes the upload folder at start-up and removes it at shutdown.
    """
    queue = AnalysisQueue(workers, waiting)
    max_bytes = int(float(max_upload_mb) * 2**20)
    model = analyser.model_info()
    model["server"] = {"workers": queue.workers, "queue": queue.waiting, "max_upload_mb": float(max_upload_mb)}
    page = importlib.resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")
    docs = _docs_folder()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        app.state.uploads = UploadFolder(temp_parent)
        logger.info("uploads go to %s (removed at shutdown)", app.state.uploads.path)
        try:
            yield
        finally:
            app.state.uploads.remove()

    app = FastAPI(
        title=f"featx serve: {model['model']}", version=__version__, lifespan=lifespan,
        docs_url=None, redoc_url=None,
        description=(f"Genre classification with the featx `{model['model']}` model "
                     f"({', '.join(model['genres'])}). Post an audio file to `/predict` as the "
                     f"multipart field `{FIELD}`; the web page is at `/`."))

    @app.exception_handler(AnalysisError)
    async def refused(request: Request, exc: AnalysisError):
        headers = {"Connection": "close"} if exc.status in (408, 413) else None
        return _error(exc.status, str(exc), headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return _error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        problems = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}" for e in exc.errors())
        return _error(422, f"invalid request: {problems}")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return _error(500, f"internal error while answering {request.method} {request.url.path}; "
                           "the server's log has the details")

    @app.middleware("http")
    async def headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    @app.get("/", include_in_schema=False)
    async def index():
        return HTMLResponse(page, headers={"Content-Security-Policy": PAGE_POLICY, "Cache-Control": "no-cache"})

    @app.get("/docs", include_in_schema=False)
    async def api_docs():
        if docs is None:
            return HTMLResponse("<!doctype html><title>API docs</title><p>The API docs need Swagger UI's files "
                                "from the swagger-ui-py package: pip install 'featx[serve]'. "
                                "<a href='/openapi.json'>/openapi.json</a> has the API.</p>", status_code=404)
        html = get_swagger_ui_html(openapi_url=app.openapi_url, title=app.title + " (API docs)",
                                   swagger_js_url="/docs/swagger-ui-bundle.js",
                                   swagger_css_url="/docs/swagger-ui.css",
                                   swagger_favicon_url="/docs/favicon-32x32.png")
        return HTMLResponse(html.body, headers={"Content-Security-Policy": DOCS_POLICY})

    @app.get("/docs/{name}", include_in_schema=False)
    async def docs_file(name: str):
        if docs is None or name not in DOCS_FILES:
            return _error(404, f"no docs file {name!r}")
        return FileResponse(docs / name, media_type=DOCS_FILES[name], headers={"Cache-Control": "max-age=86400"})

    @app.get("/health", summary="Whether the server is up, and how busy it is")
    async def health():
        return {"status": "ok", "model": model["model"], "workers": queue.workers, "queue": queue.waiting,
                "analysing": queue.running, "waiting": queue.admitted - queue.running}

    @app.get("/model", summary="The model: genres, training data, cross-validated metrics, limits")
    async def model_info():
        return model

    @app.post("/predict", summary="Classify an audio file: genres, probabilities and their timeline",
              openapi_extra=_UPLOAD_BODY,
              responses={status: {"description": text} for status, text in _ERRORS.items()})
    async def predict(request: Request,
                      spectrogram: bool = Query(False, description="Add the file's mel spectrogram "
                                                                   "(one byte per cell, base64).")):
        """The genre of the posted file and every genre's probability (the mean over its windows, as
        `featx predict` gives them), the windows' own probabilities (as `featx predict --timeline`),
        and its duration."""
        try:
            async with queue.place():
                path, name = await receive_upload(request.headers, request.stream(), app.state.uploads,
                                                  max_bytes=max_bytes)
                try:
                    result = await queue.run(_analyse, analyser, path, name, spectrogram)
                finally:
                    path.unlink(missing_ok=True)
        except QueueFull as exc:
            return _error(503, f"the server is busy: {exc}; try again in a moment",
                          {"Retry-After": str(RETRY_AFTER)})
        return JSONResponse(result)

    return app


def _analyse(analyser: Analyser, path: Path, name: str, spectrogram: bool) -> dict:
    """:meth:`Analyser.analyse`, with any other featx error about the input answered as 422."""
    try:
        return analyser.analyse(path, name, spectrogram=spectrogram)
    except FeatxError as exc:
        raise AnalysisError(422, str(exc).replace(str(path), name)) from None
