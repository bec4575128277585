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
import re
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
API_KEY = "apiKey"
SERVICE = "serviceToken"
# An operation's marker (from a dependency's ``required_headers``), turned into ``required: true``.
REQUIRED_HEADERS = "x-required-headers"
# operationIds are `<tag>_<verb>`: short, stable, and what generated clients name their calls after.
OPERATION_ID = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)+$")

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
             "description": "An access token from `POST /api/v1/auth/token` (an Ed25519 JWT of at most 15 "
                            "minutes). On the services' routes an API key (`cvk_…`) may be sent the same way"},
    API_KEY: {"type": "apiKey", "in": "header", "name": "X-API-Key",
              "description": "An integration's API key (`cvk_…`, from "
                             "`POST /api/v1/api-keys`), limited to its scopes"},
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

    type: str = Field(description="An absolute URI ending in `/problems/<slug>`, whose page documents the "
                                  "problem; match on it, not on `title` or `detail`")
    title: str
    status: int
    detail: str
    request_id: str | None = None
    errors: list[FieldError] | None = Field(None, description="Validation errors, one per field")


F = TypeVar("F", bound=Callable[..., Any])


def declares(*statuses: int, security: list[dict[str, list[str]]] | None = None,
             required_headers: tuple[str, ...] = (), **descriptions: str) -> Callable[[F], F]:
    """Mark a dependency with the problem statuses it raises and the credential it reads.

    ``security`` is the OpenAPI security requirement (``[{}, …]`` when the credential is optional).
    ``required_headers`` are documented as required although the dependency takes them as optional
    (to answer their absence with a problem of its own rather than a validation 422).
    """

    def mark(func: F) -> F:
        func.__problems__ = {s: descriptions.get(f"s{s}", DESCRIPTIONS.get(s, "Error")) for s in statuses}
        if security is not None:
            func.__security__ = security
        if required_headers:
            func.__required_headers__ = required_headers
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
        headers: list[str] = []
        for call in _calls(ctx.dependant):
            statuses.update(getattr(call, "__problems__", {}))
            headers += getattr(call, "__required_headers__", ())
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
            if headers:
                target.openapi_extra = {**(target.openapi_extra or {}), REQUIRED_HEADERS: headers}


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
            required = set(op.pop(REQUIRED_HEADERS, ()))
            for param in op.get("parameters", []):
                if param.get("in") == "header" and param.get("name") in required:
                    param["required"] = True  # and a string, not "a string or null"
                    schema = param.get("schema", {})
                    if "anyOf" in schema:
                        kinds = [k for k in schema.pop("anyOf") if k.get("type") != "null"]
                        param["schema"] = {**(kinds[0] if len(kinds) == 1 else {"anyOf": kinds}), **schema}
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
    # The schemes the operations use, and no other: the public document has no service credential.
    if uses_security:
        components["securitySchemes"] = {name: SECURITY_SCHEMES[name] for name in sorted(uses_security)
                                         if name in SECURITY_SCHEMES}
    else:
        components.pop("securitySchemes", None)
    return doc


def document_webhooks(doc: dict[str, Any]) -> dict[str, Any]:
    """A webhook's responses are what the receiver may answer, as declared: not FastAPI's defaults for
    a route it would serve (its 200 and its 422)."""
    for item in doc.get("webhooks", {}).values():
        for op in item.values():
            responses = op.get("responses", {})
            responses.pop("422", None)
            if responses.get("200", {}).get("description") == "Successful Response":
                responses.pop("200")
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
                              routes=app.routes, webhooks=app.webhooks.routes)
            app.openapi_schema = document_webhooks(document_problems(doc))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def operation_id_problems(doc: dict[str, Any]) -> list[str]:
    """What is wrong with a document's operationIds: each operation (webhooks too) has one, of the
    form `<tag>_<verb>` with its first tag, and no two are the same."""
    found: list[str] = []
    seen: dict[str, str] = {}
    for section in ("paths", "webhooks"):
        for path, item in doc.get(section, {}).items():
            for method, op in item.items():
                if not isinstance(op, dict) or "responses" not in op:
                    continue
                where = f"{method.upper()} {path}"
                op_id = op.get("operationId", "")
                tag = (op.get("tags") or [""])[0].replace("-", "_")
                if not OPERATION_ID.match(op_id) or not op_id.startswith(f"{tag}_"):
                    found.append(f"{where}: operationId {op_id!r} is not `<tag>_<verb>` (tag {tag!r})")
                elif op_id in seen:
                    found.append(f"{where}: operationId {op_id!r} is also {seen[op_id]}")
                seen.setdefault(op_id, where)
    return found
