"""``/internal/reservations``: called by the orders service only (service credential)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse
from pydantic import Field, StringConstraints
from sqlalchemy import select

from common.auth import ServiceCaller
from common.params import StrictBody
from common.reservations import ReservationOut, ReservationRequest
from services.catalog.deps import CipherDep, ListingsDep, SessionDep, SettingsDep
from services.catalog.products.models import Product, Variant
from services.catalog.reservations import service

router = APIRouter(prefix="/internal/reservations", tags=["internal"], dependencies=[ServiceCaller])
variants_router = APIRouter(prefix="/internal/variants", tags=["internal"], dependencies=[ServiceCaller])
MAX_COMMIT_BATCH = 500
ReservationId = Path(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


@router.post("", operation_id="internal_reserve", response_model=ReservationOut, status_code=201,
             summary="Hold stock for all lines of an order, or for none")
async def reserve(session: SessionDep, settings: SettingsDep, cipher: CipherDep, listings: ListingsDep,
                  data: ReservationRequest) -> JSONResponse:
    # The reply is built as JSON values in the shape of ReservationOut (the documented model): not
    # validated again here, on the busiest internal call there is.
    reply = await service.reserve(session, data, ttl_seconds=settings.reservation_ttl, cipher=cipher,
                                  listings=listings)
    return JSONResponse(reply, status_code=201)


class CommitMany(StrictBody):
    ids: list[Annotated[str, StringConstraints(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]] = Field(
        min_length=1, max_length=MAX_COMMIT_BATCH)


@router.post("/commit", operation_id="internal_commit_reservations",
             summary="Orders are stored: keep the stock of all their reservations taken",
             description="One transaction for all. Each known reservation's status afterwards: `committed` "
                         "(now or before) or `released` (it expired or was released first); unknown ids "
                         "are listed apart.")
async def commit_many(session: SessionDep, data: CommitMany) -> dict:
    statuses = await service.commit_many(session, data.ids)
    return {"statuses": {rid: str(status) for rid, status in statuses.items()},
            "unknown": sorted(set(data.ids) - statuses.keys())}


@router.post("/{reservation_id}/commit", operation_id="internal_commit_reservation",
             summary="The order is stored: keep the stock taken")
async def commit(session: SessionDep, reservation_id: str = ReservationId) -> dict:
    status = await service.commit(session, reservation_id)
    return {"id": reservation_id, "status": str(status)}


@router.post("/{reservation_id}/release", operation_id="internal_release_reservation",
             summary="Give the stock back (once, however often asked)")
async def release(session: SessionDep, reservation_id: str = ReservationId) -> dict:
    reservation, restored = await service.release(session, reservation_id)
    return {"id": reservation.id, "status": reservation.status, "restored": restored}


class VariantShopsRequest(StrictBody):
    variant_ids: list[int] = Field(min_length=1, max_length=100)


@variants_router.post("/shops", operation_id="internal_variant_shops",
                      summary="Which shop each variant belongs to (to split a checkout)")
async def variant_shops(session: SessionDep, data: VariantShopsRequest) -> dict:
    rows = (await session.execute(select(Variant.id, Product.shop_id).join(Product, Product.id == Variant.product_id)
                                  .where(Variant.id.in_(data.variant_ids)))).all()
    return {"shops": {str(variant_id): shop_id for variant_id, shop_id in rows}}
