"""``/internal/reservations``: called by the orders service only (service credential)."""

from __future__ import annotations

from fastapi import APIRouter, Path, Request

from common.auth import ServiceCaller
from services.catalog.reservations import service
from services.catalog.reservations.schemas import ReservationOut, ReservationRequest

router = APIRouter(prefix="/internal/reservations", tags=["internal"], dependencies=[ServiceCaller])
ReservationId = Path(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


@router.post("", response_model=ReservationOut, status_code=201,
             summary="Hold stock for all lines of an order, or for none")
async def reserve(request: Request, data: ReservationRequest) -> ReservationOut:
    state = request.app.state
    async with state.db.writer() as session:
        return await service.reserve(session, data, state.settings.reservation_ttl, state.cipher)


@router.post("/{reservation_id}/commit", summary="The order is stored: keep the stock taken")
async def commit(request: Request, reservation_id: str = ReservationId) -> dict:
    async with request.app.state.db.writer() as session:
        reservation = await service.commit(session, reservation_id)
    return {"id": reservation.id, "status": reservation.status}


@router.post("/{reservation_id}/release", summary="Give the stock back (once, however often asked)")
async def release(request: Request, reservation_id: str = ReservationId) -> dict:
    async with request.app.state.db.writer() as session:
        reservation, restored = await service.release(session, reservation_id)
    return {"id": reservation.id, "status": reservation.status, "restored": restored}
