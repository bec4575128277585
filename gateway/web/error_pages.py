"""Error pages for people: a browser asking for a page (``Accept: text/html``) that ends in a problem
(an unknown path, a wrong method, a gone resource, an unhandled error, a service that cannot be
reached) gets an HTML page in its language, with the same status and headers such as ``Retry-After``.
Anything else, and every ``/api/`` path, keeps the problem+json reply (content negotiation).

An ASGI middleware outside the apps' own handlers, so it also sees the 500 that the request context
middleware makes of an unhandled exception."""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROBLEM_JSON = b"application/problem+json"
KEPT_HEADERS = ("retry-after", "allow", "x-request-id")


def wants_page(scope: Scope) -> bool:
    if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD", "POST"):
        return False
    if scope["path"].startswith("/api/"):
        return False
    accept = next((v for k, v in scope["headers"] if k == b"accept"), b"")
    return b"text/html" in accept


class HtmlErrorPages:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not wants_page(scope):
            await self.app(scope, receive, send)
            return
        start: Message | None = None

        async def send_or_replace(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                ctype = dict(message.get("headers", [])).get(b"content-type", b"")
                if message["status"] >= 400 and ctype.startswith(PROBLEM_JSON):
                    start = message  # held: the page replaces this reply
                    return
                await send(message)
            elif start is None:
                await send(message)
            elif not message.get("more_body", False):
                await self._page(scope, start, send)

        await self.app(scope, receive, send_or_replace)

    async def _page(self, scope: Scope, start: Message, send: Send) -> None:
        from gateway.web.core import error_page

        kept = {k.decode(): v.decode() for k, v in start.get("headers", []) if k.decode().lower() in KEPT_HEADERS}
        response = error_page(Request(scope), start["status"])
        response.headers.update(kept)
        await response(scope, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}
