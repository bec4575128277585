"""GET /me/export returns everything held about a user; DELETE /me erases the account, anonymises
the buyer's contact in the orders the shops keep, and closes a grower's shop."""

from __future__ import annotations

import asyncio

from tests.catalog.helpers import BANK, PRODUCT, SHOP
from tests.support.fullstack import PASSWORD, full_stack

ORDER = {"contact": {"name": "Chị Lan", "phone": "0987 111 222", "email": "lan@example.vn"},
         "address": {"province_code": "92", "ward_code": "31135", "street": "7 Trần Phú"},
         "payment_method": "cod", "consent": True}


async def test_export_and_erase(db_urls) -> None:
    async with full_stack(db_urls) as s:
        grower = await s.register("grower", "0912 345 678", "Bà Tư", email="tu@example.vn")
        buyer = await s.register("buyer", "0987 111 222", "Chị Lan")
        await s.gw.post("/api/v1/shops", json={**SHOP, "bank": BANK}, headers=grower["headers"])
        product = (await s.gw.post("/api/v1/products", json=PRODUCT, headers=grower["headers"])).json()
        lines = [{"variant_id": product["variants"][0]["id"], "quantity": 3}]
        placed = await s.gw.post("/api/v1/orders", json={**ORDER, "lines": lines},
                                 headers={**buyer["headers"], **s.key()})
        assert placed.status_code == 201, placed.text
        for _ in range(100):  # the order's event reaches the buyer's and grower's inboxes
            if (await s.gw.get("/api/v1/notifications", headers=grower["headers"])).json()["items"]:
                break
            await asyncio.sleep(0.05)

        mine = (await s.gw.get("/api/v1/me/export", headers=buyer["headers"])).json()
        assert mine["account"]["phone"] == "+84987111222"
        assert [o["code"] for o in mine["orders"]["orders"]] == [placed.json()["code"]]
        assert mine["catalog"] == {"shop": None, "products": []}
        assert "password" not in str(mine) and "hash" not in str(mine)
        theirs = (await s.gw.get("/api/v1/me/export", headers=grower["headers"])).json()
        assert theirs["catalog"]["shop"]["bank_account_number"] == BANK["account_number"]
        assert theirs["notify"]["notifications"][0]["title"].startswith("Đơn mới")

        assert (await s.gw.delete("/api/v1/me", headers=buyer["headers"])).status_code == 204
        assert (await s.gw.post("/api/v1/auth/token", json={"login": "0987111222",
                                                            "password": PASSWORD})).status_code == 401
        assert (await s.gw.get("/api/v1/me", headers=buyer["headers"])).status_code == 401
        kept = (await s.gw.get(f"/api/v1/orders/{placed.json()['id']}", headers=grower["headers"])).json()
        assert kept["contact"] == {"name": "(đã xóa)", "phone": "", "email": None}
        assert kept["address"]["street"] == "(đã xóa)" and kept["total"] == placed.json()["total"]

        assert (await s.gw.delete("/api/v1/me", headers=grower["headers"])).status_code == 204
        assert (await s.gw.get(f"/api/v1/products/{product['id']}")).status_code == 404
        shop = (await s.gw.get(f"/api/v1/shops/{placed.json()['shop_id']}")).json()
        assert shop["phone"] == "" and shop["bank_name"] is None


async def test_erase_waits_for_every_service(db_urls) -> None:
    async with full_stack(db_urls) as s:
        buyer = await s.register("buyer", "0987 111 222", "Chị Lan")
        s.apps["gateway"].state.upstreams.clients["orders"]._base_url = \
            s.apps["gateway"].state.upstreams.clients["orders"]._merge_url("http://127.0.0.1:9")
        refused = await s.gw.delete("/api/v1/me", headers=buyer["headers"])
        assert refused.status_code == 503 and refused.json()["service"] == "orders"
        assert (await s.gw.get("/api/v1/me", headers=buyer["headers"])).status_code == 200
