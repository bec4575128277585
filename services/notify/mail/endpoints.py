"""``/internal/mail``: mail another app asks for that no event carries — today the gateway's
password-reset link. Queued like an event's mail (the same table, sender, retries and dead letters);
the request's ``id`` plays the event id's part, so asking twice sends once."""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, EmailStr, Field
from sqlalchemy.exc import IntegrityError

from common.auth import ServiceCaller
from common.params import StrictBody
from services.notify.deps import SessionDep
from services.notify.mail.models import MailJob

router = APIRouter(prefix="/internal/mail", tags=["internal"], dependencies=[ServiceCaller])


class PasswordResetMail(StrictBody):
    name: str = Field(min_length=1, max_length=100, description="The account holder's name")
    link: str = Field(min_length=10, max_length=500, pattern=r"^https?://",
                      description="Where the new password is chosen; works once")
    expires_minutes: int = Field(ge=1, le=120)


class MailRequest(StrictBody):
    id: uuid.UUID = Field(description="The request's own id: the same id again queues nothing more")
    recipient: EmailStr = Field(max_length=254)
    locale: Literal["vi", "en"] = "vi"
    template: Literal["password_reset"]
    context: PasswordResetMail


class MailQueued(BaseModel):
    id: uuid.UUID
    queued: Literal["new", "duplicate"]


@router.post("", operation_id="internal_queue_mail", status_code=202, response_model=MailQueued,
             summary="Queue one mail from a template (idempotent on its id)")
async def queue(session: SessionDep, data: MailRequest, response: Response) -> MailQueued:
    session.add(MailJob(event_id=data.id, recipient=data.recipient.lower(), locale=data.locale,
                        template=data.template, context=data.context.model_dump()))
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        response.status_code = 200
        return MailQueued(id=data.id, queued="duplicate")
    return MailQueued(id=data.id, queued="new")
