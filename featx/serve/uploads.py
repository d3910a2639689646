"""Uploads: streamed into a private folder, refused as soon as they are too large.

The request body is parsed as it arrives by python-multipart's streaming parser, and the
part named ``file`` is written to a new file (mode 0600) in a temporary folder of the
server's own (mode 0700). The body is counted while it streams: a declared
``Content-Length`` over the limit is refused before anything is read, and a body that
grows over it is refused at that moment, not after it has all been read.
"""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import stat
import tempfile
import uuid
from pathlib import Path

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from ..extract.audio import AUDIO_EXTENSIONS
from .analysis import AnalysisError, client_name

logger = logging.getLogger(__name__)

__all__ = ["UploadFolder", "receive_upload", "FIELD", "UPLOAD_SECONDS"]

#: The multipart field that carries the audio file.
FIELD = "file"
#: Room for the multipart framing around the file (boundaries, part headers, small fields).
FRAMING_BYTES = 64 * 1024
#: Longest an upload may take, in seconds (a client that sends too slowly holds a place in the queue).
UPLOAD_SECONDS = 300.0


class UploadFolder:
    """A temporary folder only this process's user can enter (mode 0700); removed by :meth:`remove`."""

    def __init__(self, parent=None):
        self.path = Path(tempfile.mkdtemp(prefix="featx-serve-", dir=parent))
        os.chmod(self.path, stat.S_IRWXU)  # mkdtemp makes it 0700 already; say so explicitly

    def new_file(self, filename: str) -> tuple[Path, int]:
        """A new, empty file for an upload (its extension kept when it is an audio one): path and descriptor."""
        suffix = Path(filename).suffix.lower()
        path = self.path / f"{uuid.uuid4().hex}{suffix if suffix in AUDIO_EXTENSIONS else ''}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        return path, fd

    def remove(self) -> None:
        """Remove the folder and whatever is left in it."""
        shutil.rmtree(self.path, ignore_errors=True)


class _Receiver:
    """The callbacks of the multipart parser: the ``file`` part goes to a new file."""

    def __init__(self, folder: UploadFolder, max_bytes: int):
        self.folder, self.max_bytes = folder, max_bytes
        self.header_name, self.header_value, self.headers = b"", b"", {}
        self.fd: int | None = None
        self.path: Path | None = None
        self.name: str | None = None
        self.writing = False
        self.written = 0
        self.files = 0

    def callbacks(self) -> dict:
        return {"on_part_begin": self.part_begin, "on_header_field": self.header_field,
                "on_header_value": self.header_value_part, "on_header_end": self.header_end,
                "on_headers_finished": self.headers_finished, "on_part_data": self.part_data,
                "on_part_end": self.part_end}

    def part_begin(self):
        self.headers, self.writing = {}, False

    def header_field(self, data, start, end):
        self.header_name += data[start:end]

    def header_value_part(self, data, start, end):
        self.header_value += data[start:end]

    def header_end(self):
        self.headers[self.header_name.strip().lower()] = self.header_value.strip()
        self.header_name, self.header_value = b"", b""

    def headers_finished(self):
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        if options.get(b"name", b"").decode("utf-8", "replace") != FIELD:
            return
        self.files += 1
        if self.files > 1:
            raise AnalysisError(400, f"more than one field {FIELD!r} in the form; expected one audio file per request")
        self.name = client_name(options.get(b"filename", b"").decode("utf-8", "replace"))
        self.path, self.fd = self.folder.new_file(self.name)
        self.writing = True

    def part_data(self, data, start, end):
        if not self.writing:
            return
        self.written += end - start
        if self.written > self.max_bytes:
            raise _too_large(self.max_bytes)
        view = memoryview(data)[start:end]
        while view:
            view = view[os.write(self.fd, view):]

    def part_end(self):
        self.writing = False

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _too_large(max_bytes: int) -> AnalysisError:
    return AnalysisError(413, f"the upload is larger than the {max_bytes / 2**20:g} MB this server accepts; "
                              "expected a smaller audio file")


async def receive_upload(headers, stream, folder: UploadFolder, *, max_bytes: int,
                         seconds: float = UPLOAD_SECONDS) -> tuple[Path, str]:
    """Stream a ``multipart/form-data`` body into ``folder``; the path of its ``file`` part and the client's name.

    Parameters
    ----------
    headers : Mapping[str, str]
        The request's headers (lower-case names).
    stream : async iterator of bytes
        The request body as it arrives.
    folder : UploadFolder
    max_bytes : int
        Largest file accepted.
    seconds : float
        Longest the upload may take.

    Raises
    ------
    AnalysisError
        413 (too large: the declared length, or as soon as the body passes the limit),
        415 (not a multipart form), 400 (a malformed form, or no ``file`` field),
        408 (the upload took longer than ``seconds``). A file already written is removed.
    """
    kind, options = parse_options_header(headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise AnalysisError(415, f"expected a multipart/form-data body with the audio file in field {FIELD!r}. "
                                 f"Received: Content-Type {headers.get('content-type', '(none)')!r}")
    limit = max_bytes + FRAMING_BYTES
    declared = headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise _too_large(max_bytes)
    receiver = _Receiver(folder, max_bytes)
    parser = MultipartParser(boundary, receiver.callbacks())
    received = 0
    try:
        async with asyncio.timeout(seconds):
            async for chunk in stream:
                received += len(chunk)
                if received > limit:
                    raise _too_large(max_bytes)
                parser.write(chunk)
        parser.finalize()
    except TimeoutError:
        receiver.close()
        _discard(receiver.path)
        raise AnalysisError(408, f"the upload took longer than {seconds:g} s; expected it sooner") from None
    except MultipartParseError as exc:
        receiver.close()
        _discard(receiver.path)
        raise AnalysisError(400, f"malformed multipart form ({exc}); expected the audio file in field "
                                 f"{FIELD!r}") from None
    except BaseException:
        receiver.close()
        _discard(receiver.path)
        raise
    receiver.close()
    if receiver.path is None:
        raise AnalysisError(400, f"no field {FIELD!r} in the form; expected the audio file in a multipart field "
                                 f"named {FIELD!r}")
    return receiver.path, receiver.name


def _discard(path: Path | None) -> None:
    if path is not None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
