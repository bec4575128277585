"""The merged OpenAPI document: the gateway's own routes plus every service's public paths."""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from common.openapi import API_KEY, BEARER, DESCRIPTIONS, document_problems, document_webhooks, problem_response

log = logging.getLogger("gateway.openapi")

HIDDEN_PREFIXES = ("/internal", "/healthz", "/readyz", "/metrics")
CACHE_SECONDS = 30.0
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# What the gateway itself may answer on any forwarded operation: its rate limit per API key (429), its
# body limits (413, operations with a body) and the upstream's failures (502, 503, 504).
FORWARDED = (429, 502, 503, 504)


def _rename_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith("#/components/schemas/"):
                name = value.rsplit("/", 1)[1]
                out[key] = "#/components/schemas/" + renames.get(name, name)
            else:
                out[key] = _rename_refs(value, renames)
        return out
    if isinstance(node, list):
        return [_rename_refs(v, renames) for v in node]
    return node


def own_document(app: FastAPI) -> dict[str, Any]:
    """The gateway's own routes (identity, JWKS, health), before the services' are merged in."""
    return get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)


def merge(base: dict[str, Any], services: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The public document: ``base`` plus each service's public paths and webhooks, with the schemas
    they use and no other (an internal route's schemas stay in its service's own document). A schema
    name two services use for different schemas gets the service's prefix, in its key and its title."""
    merged = copy.deepcopy(base)
    paths = merged.setdefault("paths", {})
    webhooks = merged.setdefault("webhooks", {})
    schemas = merged.setdefault("components", {}).setdefault("schemas", {})
    for service, doc in services.items():
        public = {path: item for path, item in doc.get("paths", {}).items() if not path.startswith(HIDDEN_PREFIXES)}
        theirs = _used(doc.get("components", {}).get("schemas", {}), [public, doc.get("webhooks", {})])
        renames = {name: f"{service}_{name}" for name, schema in theirs.items()
                   if name in schemas and schemas[name] != schema}
        for name, schema in theirs.items():
            schema = _rename_refs(schema, renames)
            if name in renames:
                schema["title"] = renames[name]
            schemas[renames.get(name, name)] = schema
        for path, item in public.items():
            paths[path] = _forwarded(_rename_refs(item, renames))
        for name, item in doc.get("webhooks", {}).items():
            webhooks[name] = _rename_refs(item, renames)
    merged["paths"] = dict(sorted(paths.items()))
    if not webhooks:
        merged.pop("webhooks")
    doc = document_webhooks(document_problems(merged))
    doc["components"]["schemas"] = dict(sorted(_used(doc["components"]["schemas"],
                                                     [doc["paths"], doc.get("webhooks", {})]).items()))
    return doc


def _used(schemas: dict[str, Any], roots: list[Any]) -> dict[str, Any]:
    """The schemas that ``roots`` refer to, directly or through other schemas."""
    used: set[str] = set()
    todo = [n for root in roots for n in _ref_names(root)]
    while todo:
        name = todo.pop()
        if name in used or name not in schemas:
            continue
        used.add(name)
        todo += _ref_names(schemas[name])
    return {name: schema for name, schema in schemas.items() if name in used}


def _ref_names(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"].rsplit("/", 1)[1]] if isinstance(node.get("$ref"), str) else []
        return found + [n for value in node.values() for n in _ref_names(value)]
    if isinstance(node, list):
        return [n for value in node for n in _ref_names(value)]
    return []


def _forwarded(item: dict[str, Any]) -> dict[str, Any]:
    """A forwarded operation: what the gateway answers itself, and an API key accepted where a token is
    (the gateway swaps it for a token: gateway/identity/integrations.py)."""
    for method, op in item.items():
        if method not in METHODS:
            continue
        responses = op.setdefault("responses", {})
        for status in FORWARDED + ((413,) if "requestBody" in op else ()):
            responses.setdefault(str(status), problem_response(DESCRIPTIONS[status]))
        if any(BEARER in requirement for requirement in op.get("security", [])):
            op["security"] = op["security"] + [{API_KEY: []}]
    return item


class MergedOpenAPI:
    """Fetches the services' documents (cached briefly) and merges them with the gateway's own."""

    def __init__(self, clients: dict[str, httpx.AsyncClient]) -> None:
        self.clients = clients
        self._cache: tuple[float, dict[str, Any]] | None = None
        self._lock = asyncio.Lock()

    async def _fetch(self, name: str, client: httpx.AsyncClient) -> dict[str, Any] | None:
        try:
            resp = await client.get("/openapi.json", timeout=5.0)
            resp.raise_for_status()
            return resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("could not fetch the %s OpenAPI document: %s", name, exc)
            return None

    async def document(self, base: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        async with self._lock:
            if self._cache and time.monotonic() - self._cache[0] < CACHE_SECONDS:
                return self._cache[1], []
            names = list(self.clients)
            docs = await asyncio.gather(*(self._fetch(n, self.clients[n]) for n in names))
            missing = [n for n, d in zip(names, docs, strict=True) if d is None]
            merged = merge(base, {n: d for n, d in zip(names, docs, strict=True) if d is not None})
            if not missing:
                self._cache = (time.monotonic(), merged)
            return merged, missing
