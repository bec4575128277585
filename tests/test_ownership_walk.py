"""Every route of the merged OpenAPI, walked with another user's token: no one reaches what is not
theirs. Growers see only their shop, products, orders, keys and webhooks; buyers only their orders.

The walk is generic: new routes are covered as they appear. For each operation the intruder's call
(with the owner's ids in the path and a plausible body) must not reveal the owner's private data,
and at the end none of the owner's things has changed.
"""

from __future__ import annotations

import asyncio
import re

from tests.catalog.helpers import BANK, PRODUCT, SHOP
from tests.support.fullstack import full_stack

ORDER = {"contact": {"name": "Chị Lan", "phone": "0987 111 222", "email": "lan.private@example.vn"},
         "address": {"province_code": "92", "ward_code": "31135", "street": "7 Trần Phú bí mật"},
         "payment_method": "bank_transfer", "consent": True}


def sample(schema: dict, components: dict, depth: int = 0):
    """A plausible value for a JSON schema (required fields only), enough to pass validation often."""
    if depth > 6:
        return None
    if "$ref" in schema:
        return sample(components[schema["$ref"].rsplit("/", 1)[1]], components, depth + 1)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [o for o in schema[key] if o.get("type") != "null"]
            return sample(options[0], components, depth + 1) if options else None
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {k: sample(props[k], components, depth + 1) for k in schema.get("required", []) if k in props}
    if kind == "array":
        return [sample(schema.get("items", {}), components, depth + 1)] if schema.get("minItems") else []
    if kind == "integer":
        return max(1, schema.get("minimum", 1))
    if kind == "number":
        return 1
    if kind == "boolean":
        return True
    if kind == "string":
        if schema.get("format") == "email":
            return "x@example.vn"
        if schema.get("pattern") == r"^\d{2}$":
            return "92"
        if schema.get("pattern") == r"^\d{5}$":
            return "31135"
        return "x" * max(1, schema.get("minLength", 1))
    return None


async def read_stream(client, url: str, headers: dict, seconds: float = 1.5) -> tuple[int, str]:
    """What a server-sent-events stream says in its first moments (it never ends by itself)."""
    text = ""
    async with client.stream("GET", url, headers=headers) as resp:
        try:
            async with asyncio.timeout(seconds):
                async for chunk in resp.aiter_text():
                    text += chunk
        except TimeoutError:
            pass
        return resp.status_code, text


async def test_another_users_token_reaches_nothing_of_theirs(db_urls) -> None:
    async with full_stack(db_urls) as s:
        owner = await s.register("grower", "0912 345 678", "Bà Tư")
        buyer = await s.register("buyer", "0987 111 222", "Chị Lan")
        intruders = {"grower": await s.register("grower", "0977 333 444", "Kẻ lạ"),
                     "buyer": await s.register("buyer", "0966 555 666", "Người lạ")}
        shop = (await s.gw.post("/api/v1/shops", json={**SHOP, "bank": BANK}, headers=owner["headers"])).json()
        product = (await s.gw.post("/api/v1/products", json=PRODUCT, headers=owner["headers"])).json()
        draft = (await s.gw.post("/api/v1/products", json={**PRODUCT, "name": "Giống bí mật", "status": "draft"},
                                 headers=owner["headers"])).json()
        key = (await s.gw.post("/api/v1/api-keys", json={"name": "kho", "scopes": ["orders:read"]},
                               headers=owner["headers"])).json()
        lines = [{"variant_id": product["variants"][0]["id"], "quantity": 3}]
        order = (await s.gw.post("/api/v1/orders", json={**ORDER, "lines": lines},
                                 headers={**buyer["headers"], **s.key()})).json()
        notification = None
        for _ in range(100):
            items = (await s.gw.get("/api/v1/notifications", headers=owner["headers"])).json()["items"]
            if items:
                notification = items[0]
                break
            await asyncio.sleep(0.05)
        assert notification is not None
        ids = {"shop_id": shop["id"], "product_id": draft["id"], "order_id": order["id"], "key_id": key["id"],
               "notification_id": notification["id"], "token": "x" * 32, "code": "92", "variant_id":
               product["variants"][0]["id"]}
        private = [order["code"], "lan.private@example.vn", "Trần Phú bí mật", key["prefix"], "Giống bí mật",
                   BANK["account_number"], notification["title"]]

        doc = (await s.gw.get("/openapi.json")).json()
        components = doc.get("components", {}).get("schemas", {})
        walked = 0
        for path, item in doc["paths"].items():
            if not path.startswith("/api/"):
                continue
            for method, op in item.items():
                if method not in ("get", "post", "put", "patch", "delete"):
                    continue
                url = re.sub(r"\{(\w+)\}", lambda m: str(ids.get(m.group(1), 1)), path)
                body = None
                content = (op.get("requestBody") or {}).get("content", {})
                if "application/json" in content:
                    body = sample(content["application/json"]["schema"], components)
                for role, intruder in intruders.items():
                    headers = {**intruder["headers"], **s.key()}
                    if "text/event-stream" in str(op.get("responses", {})):
                        status, text = await read_stream(s.gw, url, {**headers, "Last-Event-ID": "0"})
                    else:
                        resp = await s.gw.request(method.upper(), url, json=body, headers=headers)
                        status, text = resp.status_code, resp.text
                    walked += 1
                    assert status < 500, (method, url, status, text[:300])
                    leaked = [p for p in private if p in text]
                    assert not leaked, f"{role} {method.upper()} {url} revealed {leaked}: {text[:300]}"
        assert walked > 40

        # Nothing of the owner's changed.
        again = (await s.gw.get(f"/api/v1/orders/{order['id']}", headers=owner["headers"])).json()
        assert again["status"] == "placed" and again["payment_status"] == "unpaid"
        mine = (await s.gw.get(f"/api/v1/products/{draft['id']}", headers=owner["headers"])).json()
        assert mine["name"] == "Giống bí mật" and mine["status"] == "draft"
        assert (await s.gw.get("/api/v1/shops/mine", headers=owner["headers"])).json()["name"] == SHOP["name"]
        keys = (await s.gw.get("/api/v1/api-keys", headers=owner["headers"])).json()["items"]
        assert keys[0]["revoked_at"] is None
        inbox = (await s.gw.get("/api/v1/notifications", headers=owner["headers"])).json()
        assert inbox["unread_count"] >= 1
        assert (await s.gw.get("/api/v1/me", headers=owner["headers"])).status_code == 200
