"""``/internal/events``: the HTTP-push transport (the embedded default). The orders and catalog
relays POST each event here; a 2xx means it is handled (or was already)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from common.auth import ServiceCaller
from common.events import Envelope
from services.notify.events.handler import handle

router = APIRouter(prefix="/internal/events", tags=["internal"], dependencies=[ServiceCaller])


@router.post("", operation_id="internal_receive_event", summary="Receive one event (idempotent on its id)")
async def receive(request: Request, envelope: Envelope) -> dict:
    new = await handle(request.app, envelope)
    return {"id": str(envelope.id), "handled": "new" if new else "duplicate"}
