"""Personal data held by notify, for the gateway's ``GET /me/export`` and ``DELETE /me``."""

from __future__ import annotations

from fastapi import APIRouter, Path
from sqlalchemy import delete, select

from common.auth import ServiceCaller
from services.notify.deps import SessionDep
from services.notify.inbox.models import Notification

router = APIRouter(prefix="/internal/accounts", tags=["internal"], dependencies=[ServiceCaller])
AccountId = Path(min_length=1, max_length=64)

# Other domains (mail settings, webhooks) add (export, erase) pairs here.
SECTIONS: list = []


@router.get("/{account_id}/export", operation_id="internal_export_account",
            summary="This account's notifications and settings")
async def export(session: SessionDep, account_id: str = AccountId) -> dict:
    rows = (await session.scalars(select(Notification).where(Notification.account_id == account_id)
                                  .order_by(Notification.id))).all()
    out = {"notifications": [r.model_dump(mode="json") for r in rows]}
    for export_section, _ in SECTIONS:
        out.update(await export_section(session, account_id))
    return out


@router.delete("/{account_id}", operation_id="internal_erase_account",
               summary="Delete this account's notifications and settings")
async def erase(session: SessionDep, account_id: str = AccountId) -> dict:
    result = await session.execute(delete(Notification).where(Notification.account_id == account_id))
    for _, erase_section in SECTIONS:
        await erase_section(session, account_id)
    return {"notifications_deleted": result.rowcount}
