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
                nosniff = referrer = csp = True  # still to add
                html = False
                for name, value in headers:
                    name = name.lower()
                    if name == b"content-type":
                        html = html or value.lower().startswith(b"text/html")
                    elif name == b"x-content-type-options":
                        nosniff = False
                    elif name == b"referrer-policy":
                        referrer = False
                    elif name == b"content-security-policy":
                        csp = False
                if nosniff:
                    headers.append((b"x-content-type-options", b"nosniff"))
                if referrer:
                    headers.append((b"referrer-policy", REFERRER_POLICY))
                if html and csp:
                    headers.append((b"content-security-policy", self.csp))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
