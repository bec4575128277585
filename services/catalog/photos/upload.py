"""Receiving an upload: streamed from the socket to a temporary file, refused as soon as it is too big.

FastAPI's ``UploadFile`` would have the whole body parsed (and spooled) before the endpoint runs;
here the multipart stream is parsed as it arrives, so a 200 MB upload is cut off at the first chunk
past the limit (413), and the endpoint's checks (who you are, whose product, how many photos) run
before a byte of the body is read. Accepted bodies: ``multipart/form-data`` with one ``file`` part
(what browsers and phones send), or the bare image with ``Content-Type: image/…``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import anyio
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from common.errors import Problem, UnprocessableEntity
from services.catalog.photos.processing import SNIFF_BYTES

FIELD = "file"
# Room for the multipart envelope (boundaries, part headers) on top of the photo itself.
ENVELOPE_BYTES = 64 * 1024
# Other form fields are tolerated (some clients add one) but not stored anywhere: kept small.
MAX_OTHER_FIELD_BYTES = 16 * 1024
FLUSH_BYTES = 1024 * 1024


class PhotoTooLarge(Problem):
    status, slug, title = 413, "payload-too-large", "The photo is too large"


class MalformedUpload(Problem):
    status, slug, title = 400, "malformed-upload", "The upload could not be read"


class NotAnUpload(Problem):
    status, slug, title = 415, "unsupported-media-type", "Send the photo as multipart/form-data"


def too_large(limit: int) -> PhotoTooLarge:
    return PhotoTooLarge(f"A photo may be at most {limit / 1_048_576:.0f} MB ({limit} bytes).", limit=limit)


def missing_file() -> UnprocessableEntity:
    return UnprocessableEntity("Send the photo in a form field named 'file'.", errors=[
        {"field": f"body.{FIELD}", "message": "Field required", "type": "missing"}])


@dataclass(frozen=True)
class ReceivedFile:
    path: Path
    size: int
    head: bytes  # the first bytes, to recognise the type by
    filename: str | None


class _MultipartFile:
    """Callbacks for python-multipart: collects the ``file`` part's bytes, counts everything."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.filename: str | None = None
        self.seen_file = False
        self.in_file = False
        self.other_bytes = 0
        self.pending: list[bytes] = []
        self._headers: dict[bytes, bytes] = {}
        self._name = b""
        self._value = b""

    def callbacks(self) -> dict:
        return {"on_part_begin": self.on_part_begin, "on_header_field": self.on_header_field,
                "on_header_value": self.on_header_value, "on_header_end": self.on_header_end,
                "on_headers_finished": self.on_headers_finished, "on_part_data": self.on_part_data,
                "on_part_end": self.on_part_end}

    def on_part_begin(self) -> None:
        self._headers, self.in_file = {}, False

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._name.lower()] = self._value
        self._name, self._value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if options.get(b"name", b"").decode("latin-1") != FIELD:
            return
        if self.seen_file:
            raise UnprocessableEntity("Send one photo per request.", errors=[
                {"field": f"body.{FIELD}", "message": "more than one file", "type": "too_many_files"}])
        self.seen_file = self.in_file = True
        raw_name = options.get(b"filename")
        self.filename = raw_name.decode("utf-8", "replace")[:255] if raw_name is not None else None

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.in_file:
            self.size += end - start
            if self.size > self.limit:
                raise too_large(self.limit)
            self.pending.append(data[start:end])
        else:
            self.other_bytes += end - start
            if self.other_bytes > MAX_OTHER_FIELD_BYTES:
                raise MalformedUpload("Only the photo is expected in this form (field 'file').")

    def on_part_end(self) -> None:
        self.in_file = False


@contextlib.asynccontextmanager
async def receive_photo(request: Request, limit: int) -> AsyncIterator[ReceivedFile]:
    """Stream the request's photo into a temporary file; it is deleted when the block ends."""
    media_type, params = parse_options_header(request.headers.get("content-type", ""))
    media_type = media_type.decode("latin-1").lower()
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + ENVELOPE_BYTES:
        raise too_large(limit)  # refused before reading a byte
    if media_type == "multipart/form-data":
        boundary = params.get(b"boundary")
        if not boundary:
            raise MalformedUpload("The multipart body has no boundary.")
        parts: _MultipartFile | None = _MultipartFile(limit)
        parser = MultipartParser(boundary, parts.callbacks())
    elif media_type.startswith("image/"):
        parts, parser = None, None
    else:
        raise NotAnUpload("Send the photo as multipart/form-data in a field named 'file' "
                          "(or as the bare body with Content-Type: image/…).")

    fd, name = tempfile.mkstemp(prefix="cho-vuon-photo-", suffix=".upload")
    os.close(fd)
    path = Path(name)
    try:
        size, head, buffer = 0, b"", bytearray()
        async with await anyio.open_file(path, "wb") as out:
            try:
                async for chunk in request.stream():
                    if parser is not None:
                        parser.write(chunk)
                        data = b"".join(parts.pending)
                        parts.pending.clear()
                    else:
                        data = chunk
                        if size + len(data) > limit:
                            raise too_large(limit)
                    size += len(data)
                    if len(head) < SNIFF_BYTES:
                        head += data[:SNIFF_BYTES - len(head)]
                    buffer += data
                    if len(buffer) >= FLUSH_BYTES:
                        await out.write(bytes(buffer))
                        buffer.clear()
                if parser is not None:
                    parser.finalize()
            except FormParserError:
                raise MalformedUpload("The multipart body is malformed.") from None
            except ClientDisconnect:
                raise MalformedUpload("The upload was cut off before it was complete.") from None
            await out.write(bytes(buffer))
        if parts is not None and not parts.seen_file:
            raise missing_file()
        if size == 0:
            raise UnprocessableEntity("The photo is empty.", errors=[
                {"field": f"body.{FIELD}", "message": "empty file", "type": "empty"}])
        yield ReceivedFile(path=path, size=size, head=head, filename=parts.filename if parts else None)
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.Path(path).unlink(missing_ok=True)
