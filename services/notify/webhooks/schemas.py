"""What the webhooks API takes and gives back."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

from common.events import EventType
from common.params import StrictBody


def _distinct(types: list[str]) -> list[str]:
    return list(dict.fromkeys(types))


EventTypes = Annotated[list[EventType], Field(min_length=1, max_length=20,
                                              description="The events to receive (at least one)"),
                       AfterValidator(_distinct)]
Url = Annotated[str, Field(min_length=8, max_length=2048, examples=["https://example.vn/hooks/cho-vuon"],
                           description="Where to POST: `https://` (`http://` only in development). Its host "
                                       "must resolve to public addresses only")]
Description = Annotated[str, Field(max_length=200)]


class EndpointCreate(StrictBody):
    url: Url
    event_types: EventTypes
    description: Description = ""


class EndpointUpdate(StrictBody):
    url: Url | None = None
    event_types: EventTypes | None = None
    description: Description | None = None
    active: bool | None = Field(None, strict=True,
                                description="`true` enables a disabled endpoint again; `false` pauses it")


class EndpointOut(BaseModel):
    id: int
    url: str
    description: str
    event_types: list[str]
    active: bool
    disabled_reason: str | None = Field(description="Why it is disabled: `410 Gone`, `failing since …`, "
                                                    "`disabled by its owner`")
    disabled_at: dt.datetime | None
    failing_since: dt.datetime | None = Field(description="Deliveries have failed since then, with no success")
    created_at: dt.datetime
    updated_at: dt.datetime


class EndpointWithSecret(EndpointOut):
    secret: str = Field(description="The signing secret (`whsec_…`). Shown only now: keep it safe")


class AttemptOut(BaseModel):
    attempted_at: dt.datetime
    status_code: int | None = Field(description="The receiver's HTTP status; null when nothing was answered")
    error: str | None
    duration_ms: int


class DeliveryOut(BaseModel):
    id: int
    webhook_id: str = Field(description="The `webhook-id` header: the same on every try and redelivery")
    event_id: uuid.UUID
    event_type: str
    state: str = Field(description="`pending`, `failed` (a retry is scheduled), `succeeded` or `dead`")
    attempts: int = Field(description="Tries in the current round (a redelivery starts a new round)")
    next_attempt_at: dt.datetime | None
    last_status: int | None
    last_error: str | None
    created_at: dt.datetime
    delivered_at: dt.datetime | None
    log: list[AttemptOut] = Field(description="Every try, oldest first")
    payload: dict = Field(description="The body that is sent")
