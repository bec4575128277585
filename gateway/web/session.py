"""The web session: the access and refresh tokens in one HttpOnly cookie, refreshed when the access
token expires; and the CSRF token every POST form carries (a signed double-submit cookie).

The refresh token rotates on use and a reused one signs the whole family out, so two requests of one
browser that find the access token expired at the same moment, on one gateway replica or on two, must
not sign it out: within ``ROTATION_GRACE`` of the first use the others get a pair of their own in the same
family (the grace is the token row's ``used_at``, in the database every replica shares).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

import orjson
from starlette.requests import Request
from starlette.responses import Response

from common.auth import Principal
from common.errors import Forbidden, Problem
from gateway import deps
from gateway.identity import service as identity
from gateway.identity.schemas import TokenPair
from gateway.web.i18n import N_

SESSION_COOKIE = "cv_session"
CSRF_COOKIE = "cv_csrf"
CSRF_FIELD = "csrf"
ROTATION_GRACE = 30.0  # seconds within which the same browser's other requests may present the old token


@dataclass
class Session:
    access_token: str
    refresh_token: str
    principal: Principal

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def _secure(request: Request) -> bool:
    return deps.settings(request).environment != "development"


def _encode(pair: TokenPair) -> str:
    raw = orjson.dumps({"a": pair.access_token, "r": pair.refresh_token})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(value: str) -> tuple[str, str] | None:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        return str(data["a"]), str(data["r"])
    except (ValueError, KeyError, TypeError):
        return None


def start(request: Request, pair: TokenPair) -> None:
    """Sign the browser in: the cookie is set on the reply (see :func:`apply_cookies`)."""
    request.state.web_session_cookie = _encode(pair)
    request.state.web_new_csrf = secrets.token_urlsafe(24)  # a new session, a new CSRF secret


def end(request: Request) -> None:
    request.state.web_session_cookie = ""
    request.state.web_new_csrf = secrets.token_urlsafe(24)


async def current(request: Request) -> Session | None:
    """The signed-in browser's session, refreshing its access token when it has expired."""
    if hasattr(request.state, "web_session"):
        return request.state.web_session
    found = await _load(request)
    request.state.web_session = found
    return found


async def _load(request: Request) -> Session | None:
    decoded = _decode(request.cookies.get(SESSION_COOKIE, ""))
    if decoded is None:
        return None
    access, refresh = decoded
    verifier = deps.verifier(request)
    try:
        return Session(access, refresh, verifier.verify(access))
    except Problem:
        pass  # expired or not valid: try the refresh token
    pair = await _rotate(request, refresh)
    if pair is None:
        end(request)
        return None
    request.state.web_session_cookie = _encode(pair)
    return Session(pair.access_token, pair.refresh_token, verifier.verify(pair.access_token))


async def _rotate(request: Request, refresh: str) -> TokenPair | None:
    try:
        # Reads then writes the token: a writer session (on SQLite, one writer at a time).
        async with deps.database(request).unit_of_work(writer=True) as db:
            return await identity.rotate(db, refresh, signer=deps.signer(request),
                                         refresh_ttl=deps.settings(request).refresh_ttl, grace=ROTATION_GRACE)
    except Problem:
        return None


# ---- CSRF --------------------------------------------------------------------------------------------

def _csrf_key(request: Request) -> bytes:
    settings = deps.settings(request)
    return hashlib.sha256(b"cho-vuon web csrf\0" + settings.jwt_private_key.get_secret_value().encode()).digest()


def _csrf_secret(request: Request) -> str:
    new = getattr(request.state, "web_new_csrf", None)
    if new:
        return new
    existing = request.cookies.get(CSRF_COOKIE, "")
    if 16 <= len(existing) <= 64:
        return existing
    request.state.web_new_csrf = secrets.token_urlsafe(24)
    return request.state.web_new_csrf


def csrf_token(request: Request) -> str:
    """The token a form rendered for this browser carries: bound to its CSRF cookie by a MAC."""
    secret = _csrf_secret(request)
    return hmac.new(_csrf_key(request), secret.encode(), hashlib.sha256).hexdigest()


RESEND = N_("This form has expired: open the page again and send it once more")


class CsrfRefused(Forbidden):
    slug, title = "csrf-refused", "This form has expired or did not come from Chợ Vườn"


def check_csrf(request: Request, given: str | None) -> None:
    secret = request.cookies.get(CSRF_COOKIE, "")
    if not secret or not given:
        raise CsrfRefused(RESEND)
    expected = hmac.new(_csrf_key(request), secret.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, given):
        raise CsrfRefused(RESEND)


def apply_cookies(request: Request, response: Response) -> Response:
    secure = _secure(request)
    value = getattr(request.state, "web_session_cookie", None)
    if value == "":
        response.delete_cookie(SESSION_COOKIE, path="/", secure=secure, httponly=True, samesite="lax")
    elif value:
        response.set_cookie(SESSION_COOKIE, value, max_age=deps.settings(request).refresh_ttl, path="/",
                            secure=secure, httponly=True, samesite="lax")
    new_csrf = getattr(request.state, "web_new_csrf", None)
    if new_csrf:
        response.set_cookie(CSRF_COOKIE, new_csrf, path="/", secure=secure, httponly=True, samesite="lax")
    return response
