"""``/api/v1/notifications/settings``: the caller's own notification preferences.

Registered before the inbox router, so that ``settings`` is never taken for a notification id.
"""

from __future__ import annotations

from fastapi import APIRouter

from common.auth import CurrentPrincipal
from common.errors import Forbidden
from services.notify.deps import SessionDep
from services.notify.preferences import service
from services.notify.preferences.models import NotificationSettingsPublic, NotificationSettingsUpdate

router = APIRouter(prefix="/api/v1/notifications/settings", tags=["notifications"])


@router.get("", operation_id="notifications_get_settings", response_model=NotificationSettingsPublic,
            summary="Your notification settings (the defaults until you save them)")
async def get_settings(session: SessionDep, principal: CurrentPrincipal) -> NotificationSettingsPublic:
    row = await service.get(session, principal.sub)
    if row is None:
        return NotificationSettingsPublic(locale="vi", updated_at=None)
    return NotificationSettingsPublic.model_validate(row, from_attributes=True)


@router.put("", operation_id="notifications_put_settings", response_model=NotificationSettingsPublic,
            summary="Replace your notification settings: the email for mail, its language, on or off")
async def put_settings(session: SessionDep, principal: CurrentPrincipal,
                       data: NotificationSettingsUpdate) -> NotificationSettingsPublic:
    if principal.kind != "user":
        raise Forbidden("Where an account's mail goes is changed by the account holder, not with an API key")
    row = await service.save(session, principal.sub, data)
    return NotificationSettingsPublic.model_validate(row, from_attributes=True)
