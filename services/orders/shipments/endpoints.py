"""The carrier and tracking code of an order, set by its grower when it ships or afterwards (a code is
often known only once the carrier has picked the parcel up, and typos get corrected)."""

from __future__ import annotations

from fastapi import APIRouter

from common.errors import Conflict, Forbidden
from common.openapi import problems
from common.params import IdPath
from services.orders.deps import CurrentPrincipal, SessionDep
from services.orders.orders import service
from services.orders.orders.models import OrderStatus, utcnow
from services.orders.shipments.schemas import ShipmentIn, ShipmentOut
from services.orders.shipments.service import shipment_of

router = APIRouter(prefix="/api/v1", tags=["orders"])
SHIPPABLE = (OrderStatus.confirmed, OrderStatus.shipped, OrderStatus.delivered)


@router.put("/orders/{order_id}/shipment", operation_id="orders_set_shipment", response_model=ShipmentOut,
            summary="Set the carrier and tracking code of a confirmed, shipped or delivered order (its grower)",
            responses=problems(403, 409, s403="Not the order's grower, or the API key lacks orders:write",
                               s409="The order is placed or cancelled"))
async def set_shipment(session: SessionDep, principal: CurrentPrincipal, order_id: IdPath,
                       body: ShipmentIn) -> ShipmentOut:
    order, role = await service.get_for(session, order_id, principal, for_update=True)
    if role not in ("grower", "admin") or not principal.allows("orders:write"):
        raise Forbidden("Only the order's grower sets its shipment", scope="orders:write")
    if order.status not in SHIPPABLE:
        raise Conflict(f"An order that is {order.status} has no shipment")
    order.carrier, order.tracking_code = body.carrier, body.tracking_code
    order.updated_at = utcnow()
    return shipment_of(order)
