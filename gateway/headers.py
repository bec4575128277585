"""Security headers on every reply of the gateway's public port, set in one place.

Every reply: ``X-Content-Type-Options: nosniff`` and a ``Referrer-Policy``. Every HTML reply: a
``Content-Security-Policy`` (no inline script; ``frame-ancestors 'none'``) — the pages' own
(:data:`gateway.web.core.CSP`) unless the route chose a stricter or a different one (the API docs
allow exactly their one inline script by its hash). A header a route set itself is kept.
"""

from __future__ import annotations

import base64
import hashlib
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.web.core import CSP

REFERRER_POLICY = b"strict-origin-when-cross-origin"
_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S | re.I)


def script_hashes(html: str) -> list[str]:
    """CSP sources allowing exactly the page's inline scripts: ``'sha256-…'`` each."""
    return [f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"
            for body in _INLINE_SCRIPT.findall(html)]


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, csp: str = CSP) -> None:
        self.app = app
        self.csp = csp.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                if b"x-content-type-options" not in names:
                    headers.append((b"x-content-type-options", b"nosniff"))
                if b"referrer-policy" not in names:
                    headers.append((b"referrer-policy", REFERRER_POLICY))
                html = any(n.lower() == b"content-type" and v.lower().startswith(b"text/html") for n, v in headers)
                if html and b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", self.csp))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
