"""What every page shares: rendering (per language), replies (gzip, ETag, Cache-Control, CSP),
redirects, calls to the services' public API, and error pages.

Pages ask the services exactly as a client would, through the gateway's pooled upstream clients and
with the user's bearer token: the services stay the authority for prices, stock and validation.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, urlsplit

import httpx
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import RedirectResponse, Response

from common.errors import Problem, ServiceUnavailable
from common.http_cache import etag_matches, weak_etag
from gateway import deps
from gateway.web import assets, session
from gateway.web.i18n import LANG_COOKIE, LOCALES, N_, local_phone, locale_of, money, translations, when

log = logging.getLogger("gateway.web")

TEMPLATES = Path(__file__).parent / "templates"
# Public pages: kept by browsers and shared caches, but asked again on every view (no-cache), so a
# changed price or stock shows at once; an unchanged page is a 304 with no body (docs/decisions/0011).
PUBLIC_CACHE = "public, no-cache"
CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")


def media_path(url: str | None) -> str:
    """A photo's address on this site (``/media/…``) whatever public base the catalog was given."""
    if not url:
        return ""
    parts = urlsplit(url)
    return parts.path if parts.path.startswith("/media/") else url


def srcset(value: str | None) -> str:
    """A photo's ``srcset`` with each address made local (see :func:`media_path`)."""
    parts = []
    for candidate in (value or "").split(","):
        url, _, width = candidate.strip().partition(" ")
        if url:
            parts.append(f"{media_path(url)} {width}".strip())
    return ", ".join(parts)


def national_digits(e164: str | None) -> str:
    """``+84912345678`` → ``0912345678``: how Zalo names an account (``https://zalo.me/0912345678``)."""
    if not e164:
        return ""
    return "0" + e164[3:] if e164.startswith("+84") else e164.lstrip("+")


def map_link(shop: dict) -> str:
    """A map search for the nursery's address (opens the phone's maps app)."""
    parts = [shop.get("street"), shop.get("ward_name"), shop.get("province_name"), "Việt Nam"]
    return "https://www.google.com/maps/search/?api=1&query=" + quote_plus(", ".join(p for p in parts if p))


def _environment(locale: str) -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                      extensions=["jinja2.ext.i18n"], trim_blocks=True, lstrip_blocks=True)
    env.install_gettext_translations(translations(locale), newstyle=True)
    env.globals.update(static=assets.url, locale=locale, LANG_COOKIE=LANG_COOKIE)
    env.filters.update(vnd=lambda v: money(v, locale), when=lambda v: when(v, locale), media=media_path,
                       srcset=srcset, phone=local_phone,
                       zalo=lambda p: f"https://zalo.me/{national_digits(p)}", map_link=map_link)
    return env


ENVIRONMENTS = {locale: _environment(locale) for locale in LOCALES}


def gettext(request: Request) -> Callable[[str], str]:
    return translations(locale_of(request)).gettext


def render_text(request: Request, template: str, **context: Any) -> str:
    env = ENVIRONMENTS[locale_of(request)]
    context.setdefault("request", request)
    context.setdefault("path", request.url.path)
    return env.get_template(template).render(**context)


def page(request: Request, template: str, *, status: int = 200, public: bool = False,
         **context: Any) -> Response:
    """An HTML page. ``public``: the same for every visitor in a language, so storable by anyone and
    revalidated on each view by its ETag (a 304 when it has not changed); otherwise private and never
    stored."""
    if not public:
        context.setdefault("csrf", session.csrf_token(request))
    body = render_text(request, template, **context).encode()
    headers = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
               "Referrer-Policy": "strict-origin-when-cross-origin", "Vary": "Accept-Encoding, Cookie",
               "Content-Language": locale_of(request)}
    if public and status == 200:
        etag = weak_etag(body)
        headers.update({"ETag": etag, "Cache-Control": PUBLIC_CACHE})
        if etag_matches(request.headers.get("if-none-match"), etag):
            return session.apply_cookies(request, Response(status_code=304, headers=headers))
    else:
        headers["Cache-Control"] = "private, no-store"
    if assets.accepts_gzip(request) and len(body) > 512:
        body = gzip.compress(body, 6)
        headers["Content-Encoding"] = "gzip"
    response = Response(body, status_code=status, media_type="text/html; charset=utf-8", headers=headers)
    return session.apply_cookies(request, response)


def redirect(request: Request, location: str) -> Response:
    return session.apply_cookies(request, RedirectResponse(location, status_code=303,
                                                           headers={"Cache-Control": "no-store"}))


class Redirect(Exception):
    def __init__(self, location: str) -> None:
        self.location = location


def wants_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/html" in accept or request.method == "POST" and "application/json" not in accept


class WebRoute(APIRoute):
    """Pages' routes: a :class:`Redirect` becomes a 303; a problem becomes an HTML error page for a
    browser (``Accept: text/html``) and stays problem+json for anything else."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except Redirect as exc:
                return redirect(request, exc.location)
            except Problem as exc:
                if not wants_html(request):
                    raise
                return error_page(request, exc.status, exc.detail)
            except RequestValidationError:
                if not wants_html(request):
                    raise
                # A path or query no page has (/p/abc): for a person, a page that is not there.
                return error_page(request, 404 if request.method == "GET" else 422)

        return run


def error_page(request: Request, status: int, detail: str | None = None) -> Response:
    """The error page in the page's language; a service's English ``detail`` is shown only when the
    catalog translates it (a person reads what happened by its status, never an English sentence)."""
    _ = gettext(request)
    shown = detail if detail and (locale_of(request) == "en" or _(detail) != detail) else None
    return page(request, "error.html", status=status, public=True, status_code=status, detail=shown)


# ---- the services' public API ------------------------------------------------------------------------

class Upstream:
    """One reply of a service: status, JSON body, and its problem's field errors, if any."""

    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        self.response = response
        ctype = response.headers.get("content-type", "")
        self.data: Any = response.json() if "json" in ctype and response.content else None

    @property
    def ok(self) -> bool:
        return self.status < 400

    @property
    def detail(self) -> str:
        return (self.data or {}).get("detail", "") if isinstance(self.data, dict) else ""

    def field_errors(self) -> dict[str, str]:
        """``{"contact.phone": "…"}`` from a problem's ``errors`` (``body.`` dropped); a problem
        that names one ``field`` (a conflict) counts too."""
        if not isinstance(self.data, dict):
            return {}
        out: dict[str, str] = {}
        for err in self.data.get("errors") or []:
            field = str(err.get("field", "")).removeprefix("body.").removeprefix("body")
            out.setdefault(field, err.get("message", ""))
        if isinstance(self.data.get("field"), str):
            out.setdefault(self.data["field"].removeprefix("body."), self.detail)
        return out


async def call(request: Request, service: str, method: str, path: str, *, auth: session.Session | None = None,
               json: Any = None, params: dict | None = None, content: bytes | None = None,
               headers: dict[str, str] | None = None) -> Upstream:
    client = deps.upstream(request, service)
    sent = {"X-Forwarded-For": request.client.host if request.client else "unknown"}
    if auth is not None:
        sent.update(auth.headers)
    sent.update(headers or {})
    try:
        resp = await client.request(method, path, json=json, params=params, content=content, headers=sent)
    except httpx.TimeoutException:
        raise ServiceUnavailable(N_("The marketplace is too slow right now; try again"), service=service) from None
    except httpx.HTTPError:
        raise ServiceUnavailable(N_("The marketplace cannot be reached; try again shortly"),
                                 service=service) from None
    return Upstream(resp)


def expect(reply: Upstream) -> Any:
    """The body of a successful reply; else the service's problem, raised as is."""
    if reply.ok:
        return reply.data
    error = Problem(reply.detail or None)
    error.status = reply.status if 400 <= reply.status < 600 else 502
    if reply.status >= 500:
        error.status = 502
    raise error
