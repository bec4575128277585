"""The public contract: the committed docs/openapi.json is what the gateway serves, no version of it
ever committed is broken by the current one, its operationIds are `<tag>_<verb>`, and the comparison
that guards it (tests/contract/compat.py) catches each kind of breaking change."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess

import pytest

from common.openapi import operation_id_problems
from tests.apps import make_app
from tests.contract.compat import breaking_changes
from tests.contract.document import COMMITTED, SERVICES, public_document
from tests.support.databases import CI, sqlite_urls
from tests.support.fullstack import full_stack

REGENERATE = "run `make openapi` and commit docs/openapi.json"


def committed() -> dict:
    return json.loads(COMMITTED.read_text())


async def test_the_live_document_is_the_committed_contract(tmp_path) -> None:
    async with full_stack(sqlite_urls(tmp_path)) as s:
        resp = await s.gw.get("/openapi.json")
    assert resp.status_code == 200 and "x-openapi-missing" not in resp.headers
    live, contract = resp.json(), committed()
    breaking = breaking_changes(contract, live)
    assert not breaking, "the live document breaks the committed contract:\n" + "\n".join(breaking)
    assert live == contract, f"the live document has changed (compatibly): {REGENERATE}"
    assert public_document() == live  # what `make openapi` writes is what the gateway serves


def _history() -> list[tuple[str, str]]:
    git = shutil.which("git")
    if git is None or subprocess.run([git, "rev-parse"], cwd=COMMITTED.parent, capture_output=True).returncode:
        if CI:
            pytest.fail("CI=true: the contract's history needs git and the repository's history")
        pytest.skip("no git repository: the contract's earlier versions cannot be read")
    path = "docs/openapi.json"
    commits = subprocess.run([git, "log", "--format=%h", "--", path], cwd=COMMITTED.parent, check=True,
                             capture_output=True, text=True).stdout.split()
    return [(c, subprocess.run([git, "show", f"{c}:{path}"], cwd=COMMITTED.parent, check=True,
                               capture_output=True, text=True).stdout) for c in commits]


def test_no_version_of_the_contract_ever_committed_is_broken() -> None:
    current = committed()
    for commit, text in _history():
        breaking = breaking_changes(json.loads(text), current)
        assert not breaking, f"docs/openapi.json breaks its version of {commit}:\n" + "\n".join(breaking)


def test_operation_ids_are_tag_verb_and_unique_in_every_document(tmp_path) -> None:
    assert operation_id_problems(committed()) == []
    for name in SERVICES:  # the services' own documents, /internal routes included
        assert operation_id_problems(make_app(name, sqlite_urls(tmp_path)).openapi()) == [], name


def test_the_contract_is_public_only() -> None:
    doc = committed()
    assert not [p for p in doc["paths"] if p.startswith(("/internal", "/metrics"))]
    internal = {"LineIn", "LineOut", "CommitMany", "ReservationRequest", "ReservationOut", "VariantShopsRequest",
                "Envelope", "ShopTerms"}
    schemas = doc["components"]["schemas"]
    # orders' public LineIn/LineOut are there; the catalog's internal ones are not (no prefixed copies).
    assert not [n for n in schemas if n.startswith(("catalog_", "orders_", "notify_"))]
    assert (internal - {"LineIn", "LineOut"}) & set(schemas) == set()
    assert set(schemas["LineIn"]["properties"]) == {"variant_id", "quantity"}
    assert "weight_grams" not in schemas["LineOut"]["properties"]  # the catalog's reservation line
    titles = [schema.get("title", name) for name, schema in schemas.items()]
    assert len(titles) == len(set(titles)), "two schemas of one title: a generator keeps only one"
    assert set(doc["components"]["securitySchemes"]) == {"bearerAuth", "apiKey"}
    assert doc["components"]["securitySchemes"]["apiKey"]["name"] == "X-API-Key"
    assert "cvk_" in doc["components"]["securitySchemes"]["apiKey"]["description"]
    ops = {(m, p): op for p, item in doc["paths"].items() for m, op in item.items()}
    assert {"bearerAuth": []} in ops["get", "/api/v1/orders"]["security"]
    assert {"apiKey": []} in ops["get", "/api/v1/orders"]["security"]  # forwarded: a key is swapped for a token
    assert {"apiKey": []} not in ops["get", "/api/v1/me"]["security"]  # the gateway's own: signed-in accounts
    for path in ("/api/v1/orders", "/api/v1/checkouts", "/api/v1/orders/phone"):
        key = [p for p in ops["post", path]["parameters"] if p["name"] == "Idempotency-Key"]
        assert key and key[0]["required"] is True and key[0]["schema"]["type"] == "string", path
    for action in ("confirm", "ship", "deliver", "mark-paid"):
        assert "requestBody" not in ops["post", f"/api/v1/orders/{{order_id}}/{action}"], action
    assert ops["post", "/api/v1/orders/{order_id}/cancel"]["requestBody"].get("required") is not True
    qr = ops["get", "/api/v1/orders/{order_id}/payment-qr"]["responses"]["200"]["content"]
    assert qr["application/json"]["schema"] == {"$ref": "#/components/schemas/PaymentQrOut"}
    assert qr["image/svg+xml"]["schema"]["type"] == "string"
    typed = {"/api/v1/banks": "Bank", "/api/v1/provinces": "Province", "/api/v1/provinces/{code}/wards": "Ward",
             "/api/v1/orders/counts": "OrderCounts", "/api/v1/orders/consent": "ConsentOut",
             "/api/v1/me/export": "PersonalData", "/.well-known/jwks.json": "Jwks",
             "/api/v1/notifications/read-all": "MarkedRead"}
    for path, name in typed.items():
        method = "post" if path.endswith("read-all") else "get"
        assert name in json.dumps(ops[method, path]["responses"]["200"]), path
    assert set(doc["webhooks"]) == {"order.placed", "order.confirmed", "order.shipped", "order.delivered",
                                    "order.cancelled", "order.paid", "stock.low", "webhook.test"}
    for name, item in doc["webhooks"].items():
        body = item["post"]["requestBody"]["content"]["application/json"]
        assert body["examples"] and body["schema"]["$ref"].endswith("Payload"), name


# ---- the comparison, kind by kind ------------------------------------------------------------------

THING, THING_IN = {"$ref": "#/components/schemas/Thing"}, {"$ref": "#/components/schemas/ThingIn"}
BASE = {
    "openapi": "3.1.0",
    "paths": {"/api/v1/things": {
        "get": {"operationId": "things_list", "parameters": [
            {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer"}}],
            "responses": {"200": {"content": {"application/json": {"schema": THING}}}}},
        "post": {"operationId": "things_create", "requestBody": {"required": True, "content": {
            "application/json": {"schema": THING_IN}}},
            "responses": {"201": {"content": {"application/json": {"schema": THING}}}}},
    }},
    "webhooks": {"thing.made": {"post": {"operationId": "things_on_made", "requestBody": {"content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}}, "responses": {}}}},
    "components": {"schemas": {
        "ThingIn": {"type": "object", "additionalProperties": False, "required": ["name"], "properties": {
            "name": {"type": "string"},
            "colour": {"anyOf": [{"$ref": "#/components/schemas/Colour"}, {"type": "null"}]},
            "note": {"type": "string"}}},
        "Thing": {"type": "object", "required": ["id", "name", "colour"], "properties": {
            "id": {"type": "integer"}, "name": {"type": "string"}, "colour": {"$ref": "#/components/schemas/Colour"},
            "tags": {"type": "array", "items": {"$ref": "#/components/schemas/Tag"}}}},
        "Tag": {"type": "object", "required": ["label"], "properties": {"label": {"type": "string"}}},
        "Colour": {"type": "string", "enum": ["red", "white", "pink"]},
    }},
}


def changed(edit) -> list[str]:
    new = copy.deepcopy(BASE)
    edit(new)
    return breaking_changes(BASE, new)


def test_a_compatible_change_is_not_breaking() -> None:
    def add_things(doc):
        doc["paths"]["/api/v2/things"] = copy.deepcopy(doc["paths"]["/api/v1/things"])  # a new version
        doc["components"]["schemas"]["Thing"]["properties"]["weight"] = {"type": "integer"}  # a new reply field
        doc["components"]["schemas"]["ThingIn"]["properties"]["weight"] = {"type": "integer"}  # optional input
        doc["components"]["schemas"]["Colour"]["enum"].append("blue")  # a new value
        doc["paths"]["/api/v1/things"]["get"]["parameters"].append(
            {"name": "q", "in": "query", "required": False, "schema": {"type": "string"}})
        doc["components"]["schemas"]["ThingIn"]["required"] = []  # a field no longer required
    assert changed(add_things) == []
    assert breaking_changes(BASE, BASE) == []


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda d: d["paths"].pop("/api/v1/things"), "/api/v1/things: path removed"),
    (lambda d: d["paths"]["/api/v1/things"].pop("post"), "POST /api/v1/things: operation removed"),
    (lambda d: d["paths"]["/api/v1/things"]["get"].update(operationId="list_things"), "operationId 'things_list'"),
    (lambda d: d["components"]["schemas"]["Thing"]["properties"].pop("name"), "reply 200.name: field removed"),
    (lambda d: d["components"]["schemas"]["Tag"]["properties"].pop("label"), "reply 200.tags[].label: field removed"),
    (lambda d: d["components"]["schemas"]["ThingIn"]["properties"].pop("note"), "body.note: field removed"),
    (lambda d: d["components"]["schemas"]["Colour"]["enum"].remove("pink"), "enum value(s) ['pink'] removed"),
    (lambda d: d["components"]["schemas"]["ThingIn"]["required"].append("note"), "body.note: now required"),
    (lambda d: (d["components"]["schemas"]["ThingIn"]["properties"].update(size={"type": "integer"}),
                d["components"]["schemas"]["ThingIn"]["required"].append("size")), "body.size: new required field"),
    (lambda d: d["paths"]["/api/v1/things"]["get"]["parameters"][0].update(required=True),
     "query parameter 'limit' now required"),
    (lambda d: d["paths"]["/api/v1/things"]["get"]["parameters"].pop(), "query parameter 'limit' removed"),
    (lambda d: d["paths"]["/api/v1/things"]["post"].setdefault("parameters", []).append(
        {"name": "Idempotency-Key", "in": "header", "required": True, "schema": {"type": "string"}}),
     "new required header parameter 'idempotency-key'"),
    (lambda d: d["components"]["schemas"]["Thing"]["required"].remove("colour"),
     "reply 200.colour: no longer always in the reply"),
    (lambda d: d["components"]["schemas"]["Thing"]["properties"]["id"].update(type="string"),
     "reply 200.id: type ['integer', 'number'] is now ['string']"),
    (lambda d: d["paths"]["/api/v1/things"]["post"]["responses"].pop("201"), "reply 201 removed"),
    (lambda d: d["webhooks"].pop("thing.made"), "webhook thing.made: removed"),
    (lambda d: d["components"]["schemas"]["Tag"]["properties"].update(label={"type": "integer"}),
     "webhook thing.made payload.tags[].label: type"),
])
def test_each_kind_of_breaking_change_is_caught(edit, expected: str) -> None:
    found = changed(edit)
    assert any(expected in line for line in found), (expected, found)
