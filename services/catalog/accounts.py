"""Personal data held by the catalog, for the gateway's ``GET /me/export`` and ``DELETE /me``.

Deleting a grower's account closes their shop: every variety is archived (past orders and
reservations still point at them) and the personal details are wiped: phone, Zalo, street, bank.
"""

from __future__ import annotations

from fastapi import APIRouter, Path
from sqlalchemy import select, update

from common.auth import ServiceCaller
from services.catalog.deps import BaseUrlDep, CipherDep, SessionDep
from services.catalog.products.models import Product, ProductStatus
from services.catalog.shops import service as shops
from services.catalog.shops.models import Shop

router = APIRouter(prefix="/internal/accounts", tags=["internal"], dependencies=[ServiceCaller])
AccountId = Path(min_length=1, max_length=64)
ERASED = "(đã xóa)"


@router.get("/{account_id}/export", operation_id="internal_export_account", summary="This account's shop and varieties")
async def export(session: SessionDep, base_url: BaseUrlDep, cipher: CipherDep, account_id: str = AccountId) -> dict:
    shop = await session.scalar(select(Shop).where(Shop.owner_id == account_id))
    if shop is None:
        return {"shop": None, "products": []}
    products = (await session.scalars(select(Product).where(Product.shop_id == shop.id).order_by(Product.id))).all()
    private = shops.to_private(shop, base_url).model_dump(mode="json")
    if shop.bank_account_encrypted:
        private["bank_account_number"] = cipher.decrypt(shop.bank_account_encrypted)
    return {"shop": private,
            "products": [{**p.model_dump(mode="json", exclude={"search_text", "search_name"}),
                          "variants": [v.model_dump(mode="json") for v in p.variants]} for p in products]}


@router.delete("/{account_id}", operation_id="internal_erase_account",
               summary="Close this account's shop and wipe its personal details")
async def erase(session: SessionDep, account_id: str = AccountId) -> dict:
    shop = await session.scalar(select(Shop).where(Shop.owner_id == account_id))
    if shop is None:
        return {"shop_closed": False}
    await session.execute(update(Product).where(Product.shop_id == shop.id).values(status=ProductStatus.archived))
    shop.owner_id = f"deleted:{shop.id}"
    shop.phone, shop.zalo_phone, shop.street = "", None, ERASED
    shop.bank_bin = shop.bank_account_encrypted = shop.bank_account_last4 = shop.bank_holder = None
    return {"shop_closed": True}
