"""The orders this browser placed, so that their tracking pages show the buyer's own details to them.

A tracking link is a secret, but it travels: a buyer forwards it to the one who receives the parcel,
posts it in a group, and a posted link can reach a search engine. So the tracking page shows the
receiver's full phone number and street only to the browser that placed the order; anyone else the
link reaches sees them masked ("0987 ••• 321", the ward and province without the street), which is
all a page open to whoever holds the link should show (docs/decisions/0028-tracking-page-details.md).

The browser is known by a cookie of tags, one per order it placed: an HMAC of the tracking token
under a key derived from the gateway's signing key, so that holding a link is not enough to make the
tag (a forged cookie opens nothing). The newest :data:`KEEP` orders are kept for :data:`MAX_AGE`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from fastapi import Request, Response

from gateway import deps

COOKIE = "cv_placed"
KEEP = 30
MAX_AGE = 180 * 24 * 3600


def _tag(request: Request, token: str) -> str:
    settings = deps.settings(request)
    key = hashlib.sha256(b"cho-vuon placed orders\0" + settings.jwt_private_key.get_secret_value().encode()).digest()
    digest = hmac.new(key, token.encode(), hashlib.sha256).digest()[:12]
    return base64.urlsafe_b64encode(digest).decode()


def _tags(request: Request) -> list[str]:
    return [t for t in request.cookies.get(COOKIE, "").split(".") if t][:KEEP]


def placed_here(request: Request, token: str) -> bool:
    mine = _tag(request, token)
    return any(hmac.compare_digest(mine, tag) for tag in _tags(request))


def remember(request: Request, response: Response, tokens: list[str]) -> Response:
    """``response`` with the cookie holding ``tokens``' tags first, then the ones already kept."""
    new = [_tag(request, token) for token in tokens]
    kept = new + [tag for tag in _tags(request) if tag not in new]
    response.set_cookie(COOKIE, ".".join(kept[:KEEP]), max_age=MAX_AGE, path="/t/", samesite="lax", httponly=True,
                        secure=deps.settings(request).environment != "development")
    return response


def masked_phone(phone: str) -> str:
    """``+84987654321`` → ``0987 ••• 321``: the shape and the last digits, enough to recognise one's own."""
    local = "0" + phone.removeprefix("+84") if phone.startswith("+84") else phone
    return f"{local[:4]} ••• {local[-3:]}" if len(local) >= 8 else "•••"
