"""RFC 9457 problem details: one exception base, one place that turns errors into replies.

Every error any app returns is ``application/problem+json`` with ``type``, ``title``, ``status``,
``detail`` and, for validation, ``errors`` with field paths. Unhandled exceptions become a 500
carrying the request id and never a stack trace (that goes to the log).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request, routing
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from common.logging import request_id_var

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_BASE = "/problems/"


class ProblemResponse(Response):
    media_type = PROBLEM_CONTENT_TYPE

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def problem_body(status: int, slug: str | None = None, title: str | None = None,
                 detail: str | None = None, **extra: Any) -> dict[str, Any]:
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug if slug else "about:blank",
        "title": title or phrase,
        "status": status,
        "detail": detail or title or phrase,
    }
    rid = request_id_var.get()
    if rid:
        body["request_id"] = rid
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


def problem_response(status: int, slug: str | None = None, title: str | None = None,
                     detail: str | None = None, headers: dict[str, str] | None = None,
                     **extra: Any) -> ProblemResponse:
    return ProblemResponse(problem_body(status, slug, title, detail, **extra), status_code=status,
                           headers=headers)


class Problem(Exception):
    """Base of every error the apps raise on purpose. Subclasses fix status, slug and title."""

    status: int = 400
    slug: str = "bad-request"
    title: str = "Bad request"

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers
        self.extra = extra

    def to_response(self) -> ProblemResponse:
        return problem_response(self.status, self.slug, self.title, self.detail, self.headers,
                                **self.extra)


class NotFound(Problem):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(Problem):
    status, slug, title = 409, "conflict", "Conflict"


class Unauthorized(Problem):
    status, slug, title = 401, "unauthorized", "Authentication required"


class Forbidden(Problem):
    status, slug, title = 403, "forbidden", "Forbidden"


class UnprocessableEntity(Problem):
    status, slug, title = 422, "validation-error", "The request is not valid"


class ServiceUnavailable(Problem):
    status, slug, title = 503, "service-unavailable", "Service unavailable"


def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """('body', 'lines', 0, 'quantity') → 'body.lines[0].quantity'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def validation_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"field": field_path(e.get("loc", ())), "message": e.get("msg", ""), "type": e.get("type", "")}
        for e in errors
    ]


def validation_problem(errors: list[dict[str, Any]]) -> ProblemResponse:
    """422 with field paths; a body that is not JSON at all is a 400."""
    if any(e.get("type") == "json_invalid" for e in errors):
        return problem_response(400, "malformed-json", "The body is not valid JSON",
                                errors=validation_errors(errors))
    return problem_response(422, "validation-error", "The request is not valid",
                            "One or more fields are invalid; see errors.",
                            errors=validation_errors(errors))


_HTTP_SLUGS = {404: "not-found", 405: "method-not-allowed", 413: "payload-too-large",
               401: "unauthorized", 403: "forbidden", 409: "conflict", 429: "rate-limited"}


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> Response:
        return exc.to_response()

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        return validation_problem(list(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else None
        if exc.status_code == 404 and detail == "Not Found":
            detail = "No such resource"
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
        return problem_response(exc.status_code, _HTTP_SLUGS.get(exc.status_code), detail=detail,
                                headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """The methods of the resource at this path (Starlette's 405 names only the first route's).

    As in OpenAPI path matching, a concrete path wins over a templated one: at ``/shops/mine`` the
    methods of ``/shops/mine`` count, not those of ``/shops/{shop_id}``. Catch-all routes
    (``{…:path}``) are no resource and never count.
    """
    path = request.scope.get("path", "")
    best, methods = -1, set()
    for ctx in routing.iter_route_contexts(request.app.routes):
        regex, route_methods = getattr(ctx, "path_regex", None), getattr(ctx, "methods", None)
        template = getattr(ctx, "path_format", None) or ""
        if regex is None or not route_methods or ":path}" in getattr(ctx, "path", "") or not regex.match(path):
            continue
        concrete = sum(1 for segment in template.split("/") if segment and "{" not in segment)
        if concrete > best:
            best, methods = concrete, set()
        if concrete == best:
            methods.update(route_methods)
    order = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    return sorted(methods, key=lambda m: (order.index(m) if m in order else len(order), m))
