"""API1 Broken Object Level Authorization, at each service directly.

tests/test_ownership_walk.py walks the merged OpenAPI through the gateway. Services verify tokens
themselves, so the same walk is made here straight at each service (its own OpenAPI document): a
caller who reaches a service without the gateway gets no further. Each operation is called with the
owner's ids by another grower, another buyer and nobody; none of the owner's private data may come
back, nothing may be a 500, and at the end none of the owner's things has changed.
"""

from __future__ import annotations

import re
import time
import uuid

import httpx

from tests.security.conftest import ORDER, Market
from tests.test_ownership_walk import sample

SECRET_STREET = "9 Hẻm Bí Mật"
SECRET_EMAIL = "khach.rieng@example.vn"


def read_stream(client: httpx.Client, url: str, headers: dict, seconds: float = 1.0) -> tuple[int, str]:
    """The first moments of a server-sent-events stream (it never ends by itself)."""
    text = ""
    deadline = time.monotonic() + seconds
    with client.stream("GET", url, headers=headers, timeout=httpx.Timeout(seconds + 1, read=seconds)) as resp:
        try:
            for chunk in resp.iter_text():
                text += chunk
                if time.monotonic() > deadline:
                    break
        except httpx.ReadTimeout:
            pass
        return resp.status_code, text


def wait_for_notification(market: Market, owner) -> dict:
    for _ in range(200):
        items = market.gw.get("/api/v1/notifications", headers=owner.headers).json()["items"]
        if items:
            return items[0]
        time.sleep(0.05)
    raise AssertionError("the order never reached the grower's inbox")


def test_another_callers_token_reaches_nothing_of_theirs_at_any_service(market: Market) -> None:
    owner, shop, product = market.grower_with_shop()
    buyer = market.register("buyer")
    draft = market.gw.post("/api/v1/products", headers=owner.headers, json={
        "name": "Giống chưa bán", "status": "draft",
        "variants": [{"label": "Củ", "retail_price": 90000, "stock": 3}]}).json()
    placed = market.place(product["variants"][0]["id"], buyer.headers, quantity=2,
                          contact={**ORDER["contact"], "email": SECRET_EMAIL},
                          address={**ORDER["address"], "street": SECRET_STREET})
    assert placed.status_code == 201, placed.text
    order = placed.json()
    hook = market.gw.post("/api/v1/webhooks", headers=owner.headers, json={
        "url": f"https://8.8.8.8/hooks/{uuid.uuid4().hex}", "event_types": ["stock.low"]}).json()
    notification = wait_for_notification(market, owner)

    ids = {"shop_id": shop["id"], "product_id": draft["id"], "order_id": order["id"], "endpoint_id": hook["id"],
           "notification_id": notification["id"], "variant_id": product["variants"][0]["id"],
           "token": order["tracking_url"].rsplit("/", 1)[1][:8] + "x" * 24, "code": "92", "photo_id": 1,
           "delivery_id": 1, "account_id": owner.id}
    private = [order["code"], SECRET_EMAIL, SECRET_STREET, "Giống chưa bán", "113366668888", hook["url"],
               notification["title"]]
    intruders = {"grower": market.register("grower").headers, "buyer": market.register("buyer").headers,
                 "nobody": {}}

    walked = 0
    for service in ("catalog", "orders", "notify"):
        client = market.direct[service]
        doc = client.get("/openapi.json").json()
        components = doc.get("components", {}).get("schemas", {})
        for path, item in doc["paths"].items():
            if not path.startswith("/api/"):
                continue
            for method, op in item.items():
                if method not in ("get", "post", "put", "patch", "delete"):
                    continue
                url = re.sub(r"\{(\w+)\}", lambda m: str(ids.get(m.group(1), 1)), path)
                content = (op.get("requestBody") or {}).get("content", {})
                body = sample(content["application/json"]["schema"], components) \
                    if "application/json" in content else None
                for who, headers in intruders.items():
                    headers = {**headers, "Idempotency-Key": uuid.uuid4().hex}
                    if "text/event-stream" in str(op.get("responses", {})):
                        status, text = read_stream(client, url, {**headers, "Last-Event-ID": "0"})
                    else:
                        resp = client.request(method.upper(), url, json=body, headers=headers)
                        status, text = resp.status_code, resp.text
                    walked += 1
                    assert status < 500, (service, who, method, url, status, text[:300])
                    leaked = [p for p in private if p in text]
                    assert not leaked, f"{who} {method.upper()} {service}{url} revealed {leaked}: {text[:300]}"
    assert walked > 100, walked

    # Nothing of the owner's changed.
    again = market.gw.get(f"/api/v1/orders/{order['id']}", headers=owner.headers).json()
    assert again["status"] == "placed" and again["payment_status"] == "unpaid"
    mine = market.gw.get(f"/api/v1/products/{draft['id']}", headers=owner.headers).json()
    assert mine["name"] == "Giống chưa bán" and mine["status"] == "draft"
    assert market.gw.get("/api/v1/shops/mine", headers=owner.headers).json()["name"] == shop["name"]
    endpoint = market.gw.get(f"/api/v1/webhooks/{hook['id']}", headers=owner.headers).json()
    assert endpoint["url"] == hook["url"] and endpoint["active"] is True
    assert market.gw.get("/api/v1/notifications", headers=owner.headers).json()["unread_count"] >= 1
