"""Personal data held by orders, for the gateway's ``GET /me/export`` and ``DELETE /me``.

Orders are the shop's business records and are kept; a deleted buyer's contact in them is
anonymised (name, phone, email, street) and the link to the account removed.
"""

from __future__ import annotations

from fastapi import APIRouter, Path
from sqlalchemy import select, update

from common.auth import ServiceCaller
from services.orders.deps import SessionDep
from services.orders.orders.models import Order

router = APIRouter(prefix="/internal/accounts", tags=["internal"], dependencies=[ServiceCaller])
AccountId = Path(min_length=1, max_length=64)
ERASED = "(đã xóa)"


@router.get("/{account_id}/export", operation_id="internal_export_account", summary="The orders this account placed")
async def export(session: SessionDep, account_id: str = AccountId) -> dict:
    orders = (await session.scalars(select(Order).where(Order.buyer_id == account_id).order_by(Order.id))).all()
    return {"orders": [{**o.model_dump(mode="json", exclude={"tracking_token_hash", "tracking_token_encrypted",
                                                                "reservation_id", "bank", "reservation_state",
                                                                "buyer_mail"}),
                        "lines": [ln.model_dump(mode="json", exclude={"order_id"}) for ln in o.lines]}
                       for o in orders]}


@router.delete("/{account_id}", operation_id="internal_erase_account",
               summary="Anonymise this account's contact in the orders the shops keep")
async def erase(session: SessionDep, account_id: str = AccountId) -> dict:
    orders = (await session.scalars(select(Order).where(Order.buyer_id == account_id))).all()
    for order in orders:
        order.contact = {"name": ERASED, "phone": "", "email": None}
        order.address = {**order.address, "street": ERASED}
        order.note = ""
    await session.execute(update(Order).where(Order.buyer_id == account_id).values(buyer_id=None))
    return {"orders_anonymised": len(orders)}
