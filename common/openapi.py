"""What the OpenAPI documents say about errors and sign-in, derived from the routes themselves.

Every error reply is ``application/problem+json`` (:mod:`common.errors`). Dependencies declare the
problems they raise and the credential they read, as attributes of the dependency function
(:func:`declares`); :func:`declare_problems` walks each route's dependencies and adds those statuses,
plus 404 for a route with path parameters, 400 for a JSON body and 422 for any input, to the route's
documented responses, and its security requirement to the operation. :func:`document_problems`
then gives every error response the problem+json media type and the ``ProblemDetails`` schema (in
place of FastAPI's default ``HTTPValidationError``), and adds the schemas and security schemes the
operations refer to. Both are idempotent: the gateway applies the second again to the merged document.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from common.errors import PROBLEM_CONTENT_TYPE

PROBLEM_REF = "#/components/schemas/ProblemDetails"
BEARER = "bearerAuth"
SERVICE = "serviceToken"

DESCRIPTIONS = {
    400: "Malformed request: the body is not valid JSON, or a required header is missing",
    401: "Sign-in required, or the access token (or service credential) is not valid",
    403: "The account's role or the API key's scopes do not allow this",
    404: "No such resource, or it is not yours",
    409: "Conflict with the resource's current state",
    413: "The body is too large",
    415: "Unsupported media type",
    422: "The request is not valid; `errors` lists each field with its path",
    429: "Too many requests; `Retry-After` says when to try again",
    502: "An upstream service broke the connection",
    503: "An upstream service is unavailable; `Retry-After` says when to try again",
    504: "An upstream service did not answer in time",
}
SECURITY_SCHEMES = {
    BEARER: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
             "description": "An access token from `POST /api/v1/auth/token`, or an API key "
                            "(`cv_…`) sent the same way"},
    SERVICE: {"type": "apiKey", "in": "header", "name": "X-Service-Token",
              "description": "Service credential for `/internal/*` (never routed by the gateway)"},
}


class FieldError(BaseModel):
    field: str = Field(description="Where: `body.lines[0].quantity`, `query.limit`, …")
    message: str
    type: str


class ProblemDetails(BaseModel):
    """RFC 9457 problem details; a problem may carry more members than these."""

    model_config = ConfigDict(extra="allow", title="ProblemDetails")

    type: str = Field(description="`/problems/<slug>`, or `about:blank`")
    title: str
    status: int
    detail: str
    request_id: str | None = None
    errors: list[FieldError] | None = Field(None, description="Validation errors, one per field")


F = TypeVar("F", bound=Callable[..., Any])


def declares(*statuses: int, security: list[dict[str, list[str]]] | None = None,
             **descriptions: str) -> Callable[[F], F]:
    """Mark a dependency with the problem statuses it raises and the credential it reads.

    ``security`` is the OpenAPI security requirement (``[{}, …]`` when the credential is optional).
    """

    def mark(func: F) -> F:
        func.__problems__ = {s: descriptions.get(f"s{s}", DESCRIPTIONS.get(s, "Error")) for s in statuses}
        if security is not None:
            func.__security__ = security
        return func

    return mark


def problems(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """For a route's ``responses=``: the problems it raises besides those its inputs and dependencies
    declare, e.g. ``problems(409, s409="The order cannot move from its state")``."""
    return {s: problem_response(descriptions.get(f"s{s}", DESCRIPTIONS.get(s, "Error"))) for s in statuses}


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dep in dependant.dependencies:
        if dep.call is not None:
            yield dep.call
        yield from _calls(dep)


def problem_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": PROBLEM_REF}}}}


def declare_problems(app: FastAPI) -> None:
    """Add to each route's documented responses the problems its dependencies and inputs can raise."""
    for ctx in routing.iter_route_contexts(app.routes):
        original = ctx.original_route
        if not isinstance(original, APIRoute) or not ctx.include_in_schema:
            continue
        statuses: dict[int, str] = {}
        security: list[dict[str, list[str]]] | None = None
        for call in _calls(ctx.dependant):
            statuses.update(getattr(call, "__problems__", {}))
            if getattr(call, "__security__", None) is not None:
                required = [r for r in call.__security__ if r]
                # A required credential wins over an optional one read by a sub-dependency.
                if security is None or (required and {} in security):
                    security = call.__security__
        d = ctx.dependant
        if d.path_params:
            statuses.setdefault(404, DESCRIPTIONS[404])
        if ctx.body_field is not None:
            statuses.setdefault(400, DESCRIPTIONS[400])
        if d.path_params or d.query_params or d.header_params or d.cookie_params or ctx.body_field is not None:
            statuses.setdefault(422, DESCRIPTIONS[422])
        # The route as this app serves it (FastAPI reads it when it builds the document), and the
        # router's own route, from which another app's view is built.
        for target in {id(x): x for x in (ctx._effective_route, original)}.values():
            for status, description in statuses.items():
                if status not in target.responses and str(status) not in target.responses:
                    target.responses[status] = problem_response(description)
            if security is not None:
                target.openapi_extra = {"security": security, **(target.openapi_extra or {})}


def _is_problem_schema(schema: dict[str, Any] | None) -> bool:
    if not schema:
        return True
    ref = schema.get("$ref", "")
    return ref.endswith(("/HTTPValidationError", "/ProblemDetails"))


def document_problems(doc: dict[str, Any]) -> dict[str, Any]:
    """Every 4xx/5xx response as problem+json with ``ProblemDetails``; schemas and schemes it needs."""
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    uses_security: set[str] = set()
    for item in doc.get("paths", {}).values():
        for op in item.values():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            for requirement in op.get("security", []):
                uses_security.update(requirement)
            for code, response in op["responses"].items():
                if str(code)[0] not in "45":
                    continue
                content = response.get("content") or {}
                json_schema = (content.get("application/json") or {}).get("schema")
                if PROBLEM_CONTENT_TYPE in content and "application/json" not in content:
                    continue
                if content and not _is_problem_schema(json_schema):
                    continue  # an error reply with a body of its own kind: left as declared
                response["content"] = {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": PROBLEM_REF}}}
                if int(code) == 422 and response.get("description") == "Validation Error":
                    response["description"] = DESCRIPTIONS[422]
    problem_schema = ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, schema in problem_schema.pop("$defs", {}).items():
        schemas.setdefault(name, schema)
    schemas["ProblemDetails"] = problem_schema
    for unused in ("HTTPValidationError", "ValidationError"):
        if unused in schemas and f"/{unused}\"" not in _refs(doc):
            schemas.pop(unused)
    if uses_security:
        schemes = components.setdefault("securitySchemes", {})
        for name in uses_security:
            if name in SECURITY_SCHEMES:
                schemes.setdefault(name, SECURITY_SCHEMES[name])
    return doc


def _refs(doc: dict[str, Any]) -> str:
    paths = json.dumps(doc.get("paths", {}))
    others = json.dumps({k: v for k, v in doc.get("components", {}).get("schemas", {}).items()
                         if k not in ("HTTPValidationError", "ValidationError")})
    return paths + others


def install_openapi(app: FastAPI) -> None:
    """Declare every route's problems now, and document them whenever the schema is built."""
    declare_problems(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, description=app.description,
                              routes=app.routes)
            app.openapi_schema = document_problems(doc)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
