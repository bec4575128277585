from __future__ import annotations

from services.orders.orders.models import Order
from services.orders.shipments.carriers import carrier_name, tracking_url
from services.orders.shipments.schemas import ShipmentOut


def shipment_of(order: Order) -> ShipmentOut | None:
    if not order.carrier:
        return None
    return ShipmentOut(carrier=order.carrier, carrier_name=carrier_name(order.carrier) or order.carrier,
                       tracking_code=order.tracking_code, tracking_url=tracking_url(order.carrier, order.tracking_code))
