"""``/internal/events``: the HTTP-push transport (the embedded default). The orders and catalog
relays POST each round of events here, or one event; a 2xx means they are handled (or were already)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

from common.auth import ServiceCaller
from common.events import Envelope
from services.notify.deps import BroadcasterDep, DatabaseDep, EffectsDep
from services.notify.events.handler import Delivery, MalformedEvent, handle, handle_many

router = APIRouter(prefix="/internal/events", tags=["internal"], dependencies=[ServiceCaller])

BATCH_MOST = 100  # a relay's round (common.relay.OutboxRelay's batch)


class CarriedEvent(BaseModel):
    """One event of a batch, with what its producer carried along for the work it causes."""

    envelope: Envelope
    request_id: str | None = Field(default=None, max_length=128, description="X-Request-ID of its request")
    traceparent: str | None = Field(default=None, max_length=128, description="W3C traceparent of its producer")


class EventBatch(BaseModel):
    events: list[CarriedEvent] = Field(min_length=1, max_length=BATCH_MOST)


class Handled(BaseModel):
    id: str
    handled: Literal["new", "duplicate"]


class BatchHandled(BaseModel):
    events: list[Handled]


def _refused(exc: MalformedEvent, where: tuple) -> RequestValidationError:
    """A malformed event's 422, its fields under where it was in the body (``where``)."""
    return RequestValidationError([{**e, "loc": (*where, *e["loc"][1:])} for e in exc.errors])  # [0]: the type


def _handled(envelope: Envelope, new: bool) -> dict:
    return {"id": str(envelope.id), "handled": "new" if new else "duplicate"}


@router.post("", operation_id="internal_receive_event", summary="Receive one event (idempotent on its id)",
             response_model=Handled)
async def receive(db: DatabaseDep, effects: EffectsDep, broadcaster: BroadcasterDep, envelope: Envelope) -> dict:
    try:
        new = await handle(db, envelope, effects=effects, broadcaster=broadcaster)
    except MalformedEvent as exc:
        raise _refused(exc, ("body",)) from None
    return _handled(envelope, new)


@router.post("/batch", operation_id="internal_receive_events", response_model=BatchHandled,
             summary="Receive a relay's round of events in one transaction (idempotent on each id)")
async def receive_batch(db: DatabaseDep, effects: EffectsDep, broadcaster: BroadcasterDep,
                        batch: EventBatch) -> dict:
    deliveries = [Delivery(item.envelope, {k: v for k, v in (("X-Request-ID", item.request_id),
                                                             ("traceparent", item.traceparent)) if v})
                  for item in batch.events]
    try:
        news = await handle_many(db, deliveries, effects=effects, broadcaster=broadcaster)
    except MalformedEvent as exc:
        raise _refused(exc, ("body", "events", exc.index, "envelope")) from None
    return {"events": [_handled(d.envelope, new) for d, new in zip(deliveries, news, strict=True)]}
