"""What the fuzzer relies on, pinned quickly: errors documented as problem+json from the routes
themselves, security declared where a token is read, `Allow` naming the resource's methods, JSON types
taken strictly, and the gateway's own statuses on forwarded operations."""

from __future__ import annotations

from common.errors import PROBLEM_CONTENT_TYPE
from gateway.openapi import merge
from tests.apps import make_app
from tests.conftest import asgi_client
from tests.support.auth import auth
from tests.support.databases import sqlite_urls

METHODS = ("get", "put", "post", "patch", "delete")


async def catalog_doc(tmp_path) -> dict:
    async with asgi_client(make_app("catalog", sqlite_urls(tmp_path))) as client:
        return (await client.get("/openapi.json")).json()


async def test_errors_and_security_are_documented_from_the_routes(tmp_path) -> None:
    doc = await catalog_doc(tmp_path)
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert {"type", "title", "status", "detail"} <= set(doc["components"]["schemas"]["ProblemDetails"]["required"])
    errors = 0
    for item in doc["paths"].values():
        for method in METHODS:
            for code, response in item.get(method, {}).get("responses", {}).items():
                if code[0] in "45":
                    errors += 1
                    assert list(response["content"]) == [PROBLEM_CONTENT_TYPE], (method, code)
    assert errors > 50

    # Security and statuses follow each route's dependencies and inputs.
    paths = doc["paths"]
    mine = paths["/api/v1/shops/mine"]["get"]
    assert mine["security"] == [{"bearerAuth": []}]
    assert {"401", "403", "404"} <= set(mine["responses"])
    listing = paths["/api/v1/products"]["get"]
    assert listing["security"] == [{}, {"bearerAuth": []}]  # a token is read, not needed
    assert "404" not in paths["/api/v1/shops"]["get"]["responses"]  # no path parameter, nothing to miss
    assert "404" in paths["/api/v1/products/{product_id}"]["patch"]["responses"]
    internal = paths["/internal/reservations"]["post"]
    assert internal["security"] == [{"serviceToken": []}] and "401" in internal["responses"]
    assert "security" not in paths["/api/v1/provinces"]["get"]


async def test_405_names_every_method_of_the_resource(tmp_path) -> None:
    async with asgi_client(make_app("catalog", sqlite_urls(tmp_path))) as client:
        shops = await client.delete("/api/v1/shops")
        mine = await client.delete("/api/v1/shops/mine")
    assert shops.status_code == 405 and shops.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert {"GET", "POST"} <= set(shops.headers["allow"].split(", "))
    # The concrete path's methods, not those of /shops/{shop_id} that its pattern also matches.
    assert mine.status_code == 405 and set(mine.headers["allow"].split(", ")) == {"GET", "PATCH"}


async def test_json_types_are_taken_strictly(tmp_path) -> None:
    variant = {"label": "Củ", "retail_price": 45000, "stock": 3}
    async with asgi_client(make_app("catalog", sqlite_urls(tmp_path))) as client:
        for wrong in ({"stock": True}, {"retail_price": "45000"}, {"weight_grams": False}):
            resp = await client.post("/api/v1/products", headers=auth(), json={
                "name": "Súng", "category": "water_lily", "variants": [{**variant, **wrong}]})
            assert resp.status_code == 422, (wrong, resp.text)
            assert resp.json()["errors"][0]["field"].startswith("body.variants[0].")


def test_the_gateway_documents_what_it_answers_itself() -> None:
    service = {"paths": {"/api/v1/things": {"post": {"requestBody": {}, "responses": {"201": {}}},
                                             "get": {"responses": {"200": {}}}},
                         "/internal/x": {"get": {"responses": {"200": {}}}}}}
    doc = merge({"paths": {}}, {"things": service})
    assert "/internal/x" not in doc["paths"]
    post, get = doc["paths"]["/api/v1/things"]["post"], doc["paths"]["/api/v1/things"]["get"]
    assert {"413", "429", "502", "503", "504"} <= set(post["responses"])
    assert "413" not in get["responses"] and "503" in get["responses"]
    assert doc["components"]["schemas"]["ProblemDetails"]
