"""The largest request body an app will read.

A declared ``Content-Length`` over the limit is answered 413 before a byte of the body is read; a
body streamed past it (chunked, or longer than declared) is cut off at the limit with the same 413.
Uploads (``multipart/form-data``, ``image/*``) are left to their own, larger limits: the gateway's
``GATEWAY_MAX_UPLOAD_BYTES`` and the catalog's ``CATALOG_MAX_PHOTO_BYTES``.

Every app gets it from :func:`common.service.create_service_app`: the gateway with
``GATEWAY_MAX_JSON_BODY_BYTES`` (its own routes, sign-up and sign-in, are not behind the proxy's
limit), the services with :data:`DEFAULT_MAX_BODY_BYTES`.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.errors import problem_response

DEFAULT_MAX_BODY_BYTES = 1_048_576
UPLOAD_TYPES = (b"multipart/form-data", b"image/")
TITLE = "The request body is too large"


def _too_large(limit: int) -> str:
    return f"The body is larger than {limit} bytes"


class BodyTooLarge(HTTPException):
    """A body streamed past the limit. An HTTPException, so that FastAPI's body parsing passes it on
    as it is; the problem handler adds ``limit`` (``problem_extra``), as on a declared length."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, _too_large(limit))
        self.problem_title = TITLE
        self.problem_extra = {"limit": limit}


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = b""
        for name, value in scope["headers"]:
            if name == b"content-type" and value.lower().lstrip().startswith(UPLOAD_TYPES):
                await self.app(scope, receive, send)
                return
            if name == b"content-length":
                declared = value.strip()
        if declared.isdigit() and int(declared) > self.max_bytes:
            response = problem_response(413, "payload-too-large", TITLE,
                                        _too_large(self.max_bytes), limit=self.max_bytes)
            await response(scope, receive, send)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited_receive, send)
