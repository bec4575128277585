from __future__ import annotations

SHOP = {
    "name": "Vườn Sen Bà Tư", "description": "Sen và súng Đồng Tháp", "province_code": "92",
    "ward_code": "31135", "street": "12 Lê Lợi", "phone": "0912 345 678",
    "delivery": {"pickup": True, "flat_fee": 30000, "fee_by_province": {"92": 15000}, "free_above": 800000},
    "min_order_value": 50000,
}

BANK = {"bin": "970415", "account_number": "113366668888", "holder": "Nguyễn Thị Tư"}

PRODUCT = {
    "name": "Súng Thái đỏ", "description": "Hoa đỏ, nở ngày", "category": "water_lily", "status": "active",
    "variants": [
        {"label": "Củ giống", "retail_price": 45000, "stock": 100, "min_order_quantity": 1,
         "wholesale_tiers": [{"min_quantity": 10, "unit_price": 38000}, {"min_quantity": 50, "unit_price": 32000}]},
        {"label": "Chậu 30 cm", "retail_price": 150000, "stock": 5},
    ],
}


async def open_shop(client, headers, **overrides) -> dict:
    resp = await client.post("/api/v1/shops", json={**SHOP, **overrides}, headers=headers)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def add_product(client, headers, **overrides) -> dict:
    resp = await client.post("/api/v1/products", json={**PRODUCT, **overrides}, headers=headers)
    assert resp.status_code == 201, resp.text
    return resp.json()
