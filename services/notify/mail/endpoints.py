"""``/internal/mail``: mail another app asks for that no event carries — the gateway's password-reset
link, and orders' mail to a buyer with the order's secret tracking link (events, which webhooks and the
bus also carry, never hold it; decision 0024). Queued like an event's mail (the same table, sender,
retries and dead letters); the request's ``id`` plays the event id's part, so asking twice sends once."""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, EmailStr, Field, model_validator
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


class MailLine(StrictBody):
    product_name: str = Field(max_length=160)
    variant_label: str = Field(max_length=80)
    quantity: int = Field(ge=1)
    unit_price: int = Field(ge=0)


class TransferDetails(StrictBody):
    bank_name: str = Field(max_length=120)
    account_number: str = Field(max_length=19)
    account_holder: str = Field("", max_length=120)
    memo: str = Field(max_length=25, description="The transfer's content: the order code")


class OrderPlacedBuyerMail(StrictBody):
    """The buyer's mail after ordering (or sent again from the desk): the order, how to pay, the link."""

    code: str = Field(max_length=12)
    shop_name: str = Field(max_length=120)
    shop_phone: str = Field(max_length=16)
    contact_name: str = Field(max_length=100)
    delivery_method: Literal["ship", "pickup"]
    payment_method: Literal["cod", "bank_transfer"]
    payment_status: Literal["unpaid", "paid"]
    total: int = Field(ge=0)
    lines: list[MailLine] = Field(min_length=1, max_length=100)
    bank: TransferDetails | None = Field(None, description="For a bank transfer: where to send it")
    tracking_url: str = Field(min_length=10, max_length=500, pattern=r"^https?://")


TEMPLATES = {"password_reset": PasswordResetMail, "order_placed_buyer": OrderPlacedBuyerMail}


class MailRequest(StrictBody):
    id: uuid.UUID = Field(description="The request's own id: the same id again queues nothing more")
    recipient: EmailStr = Field(max_length=254)
    locale: Literal["vi", "en"] = "vi"
    template: Literal["password_reset", "order_placed_buyer"]
    context: PasswordResetMail | OrderPlacedBuyerMail

    @model_validator(mode="after")
    def _context_of_template(self) -> MailRequest:
        if not isinstance(self.context, TEMPLATES[self.template]):
            raise ValueError(f"context is not the {self.template} template's")
        return self


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
