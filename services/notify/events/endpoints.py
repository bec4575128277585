"""``/internal/events``: the HTTP-push transport (the embedded default). The orders and catalog
relays POST each event here; a 2xx means it is handled (or was already)."""

from __future__ import annotations

from fastapi import APIRouter

from common.auth import ServiceCaller
from common.events import Envelope
from services.notify.deps import BroadcasterDep, DatabaseDep, EffectsDep
from services.notify.events.handler import handle

router = APIRouter(prefix="/internal/events", tags=["internal"], dependencies=[ServiceCaller])


@router.post("", operation_id="internal_receive_event", summary="Receive one event (idempotent on its id)")
async def receive(db: DatabaseDep, effects: EffectsDep, broadcaster: BroadcasterDep, envelope: Envelope) -> dict:
    new = await handle(db, envelope, effects=effects, broadcaster=broadcaster)
    return {"id": str(envelope.id), "handled": "new" if new else "duplicate"}
