"""Strict bodies: every write route of every app refuses a field it does not know, with a 422 naming
it. Two walks keep it so for routes added later: one over each app's OpenAPI document (every object
a JSON body can hold says ``additionalProperties: false``), one sending each route an unknown field."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.apps import make_app
from tests.catalog.helpers import PRODUCT, SHOP
from tests.conftest import asgi_client
from tests.support.auth import auth
from tests.support.databases import sqlite_urls
from tests.support.fullstack import full_stack

APPS = ("gateway", "catalog", "orders", "notify")
WRITES = ("post", "put", "patch", "delete")
# The HTTP push of events takes what the NATS transport takes: an envelope from a newer producer may
# carry more than this consumer knows (its `version` says what changed), and must not be dead-lettered.
TOLERANT = {("notify", "post", "/internal/events"), ("notify", "post", "/internal/events/batch")}


def _resolve(doc: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def open_objects(doc: dict, schema: dict, where: str, seen: set[str]) -> list[str]:
    """The places in ``schema`` where an object with named properties would take unknown ones."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        if name in seen:
            return []
        seen.add(name)
        return open_objects(doc, _resolve(doc, schema), f"{where}→{name}", seen)
    found = []
    if schema.get("properties") and schema.get("additionalProperties") is not False:
        found.append(where)
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        for i, sub in enumerate(schema.get(key, [])):
            found += open_objects(doc, sub, f"{where}.{key}[{i}]", seen)
    for name, sub in (schema.get("properties") or {}).items():
        found += open_objects(doc, sub, f"{where}.{name}", seen)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            found += open_objects(doc, schema[key], f"{where}.{key}", seen)
    return found


def json_bodies(doc: dict):
    for path, item in doc["paths"].items():
        for method in WRITES:
            body = item.get(method, {}).get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None:
                yield method, path, body["schema"]


@pytest.mark.parametrize("name", APPS)
async def test_every_json_body_in_the_documents_refuses_unknown_fields(name, tmp_path) -> None:
    app = make_app(name, sqlite_urls(tmp_path))
    doc = app.openapi() if name != "gateway" else _gateway_doc(app)
    bodies = list(json_bodies(doc))
    assert bodies, name
    open_ = {(m, p): open_objects(doc, s, "body", set()) for m, p, s in bodies if (name, m, p) not in TOLERANT}
    assert not {k: v for k, v in open_.items() if v}, "bodies that take unknown fields (extra=\"forbid\")"


def _gateway_doc(app) -> dict:
    from fastapi.openapi.utils import get_openapi

    return get_openapi(title=app.title, version=app.version, routes=app.routes)


@pytest.mark.parametrize("name", APPS)
async def test_every_write_route_answers_an_unknown_field_with_a_422_naming_it(name, tmp_path) -> None:
    app = make_app(name, sqlite_urls(tmp_path))
    doc = app.openapi() if name != "gateway" else _gateway_doc(app)
    headers = {**auth(), "X-Service-Token": app.state.settings.service_token.get_secret_value(),
               "Idempotency-Key": uuid.uuid4().hex}
    tried = 0
    async with asgi_client(app) as client:
        for method, path, _ in json_bodies(doc):
            if (name, method, path) in TOLERANT:
                continue
            url = re.sub(r"\{[a-z_]*id\}", "1", path.replace("{reservation_id}", "r" * 10))
            url = url.replace("{action}", "confirm")
            assert "{" not in url, url
            resp = await client.request(method.upper(), url, json={"zz_unknown": 1}, headers=headers)
            assert resp.status_code == 422, (method, path, resp.status_code, resp.text)
            fields = {(e["field"], e["type"]) for e in resp.json()["errors"]}
            assert ("body.zz_unknown", "extra_forbidden") in fields, (method, path, fields)
            tried += 1
    assert tried, name


async def test_the_fields_of_the_issue_are_refused_through_the_gateway(db_urls) -> None:
    async with full_stack(db_urls) as s:
        grower = await s.register("grower", "0912 700 003")
        assert (await s.gw.post("/api/v1/shops", json=SHOP, headers=grower["headers"])).status_code == 201
        variant = {**PRODUCT["variants"][1], "wholesale_tier": [{"min_quantity": 2, "unit_price": 1}], "stok": 7}
        product = await s.gw.post("/api/v1/products", json={**PRODUCT, "variants": [variant]},
                                  headers=grower["headers"])
        assert product.status_code == 422, product.text
        fields = {e["field"] for e in product.json()["errors"]}
        assert fields == {"body.variants[0].wholesale_tier", "body.variants[0].stok"}, fields
        mine = (await s.gw.get("/api/v1/products", params={"mine": "true"}, headers=grower["headers"])).json()
        assert mine["items"] == []  # nothing was created

        admin = await s.gw.patch("/api/v1/me", json={"is_admin": True}, headers=grower["headers"])
        assert admin.status_code == 422 and admin.json()["errors"][0]["field"] == "body.is_admin", admin.text
        me = (await s.gw.get("/api/v1/me", headers=grower["headers"])).json()
        assert me["role"] == "grower"
