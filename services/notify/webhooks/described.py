"""The webhooks Chợ Vườn sends, described for the OpenAPI document's ``webhooks`` section.

Nothing here is served: each entry is the request an endpoint receives for one event type, with
its payload (``service.payload_for``: Standard Webhooks' ``type``, ``timestamp`` and ``data``, plus
``event_id`` and ``version``), the signature headers and an example.
"""

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header
from pydantic import BaseModel, Field

from common.events import OrderChanged, OrderLineSummary, StockLow

ORDER_EVENTS = ("order.placed", "order.confirmed", "order.shipped", "order.delivered", "order.cancelled",
                "order.paid")


class _Payload(BaseModel):
    timestamp: dt.datetime = Field(description="When the event happened (UTC)")
    event_id: uuid.UUID = Field(description="The event's id: the same in every delivery of it")
    version: int = Field(description="The version of `data`'s contract; 1 so far")


class OrderEventPayload(_Payload):
    """An order of your shop was placed, moved or paid."""

    type: Literal[ORDER_EVENTS]  # type: ignore[valid-type]
    data: OrderChanged


class StockLowPayload(_Payload):
    """One of your variants has fallen to its low-stock threshold."""

    type: Literal["stock.low"]
    data: StockLow


class TestData(BaseModel):
    endpoint_id: int
    message: str


class TestPayload(_Payload):
    """Sent by `POST /api/v1/webhooks/{endpoint_id}/test`."""

    type: Literal["webhook.test"]
    data: TestData


_WHEN = dt.datetime(2026, 11, 27, 2, 30, tzinfo=dt.UTC)
_ORDER = OrderChanged(
    order_id=42, code="CV-7K3Q9", shop_id=3, shop_owner_id="0b7c3f0e-4d0a-4f57-9a51-2c1e8f6a9b10",
    shop_name="Vườn Súng Cô Út", buyer_id=None, status="placed", payment_status="unpaid", payment_method="cod",
    total=165000, contact_name="Chị Lan", contact_email="lan@example.vn", buyer_locale="vi",
    lines=[OrderLineSummary(product_name="Súng Thái đỏ", variant_label="Củ giống", quantity=3, unit_price=45000)],
    actor_role="guest")
_STATUS = {"order.placed": "placed", "order.confirmed": "confirmed", "order.shipped": "shipped",
           "order.delivered": "delivered", "order.cancelled": "cancelled", "order.paid": "confirmed"}


def example(event_type: str) -> dict[str, Any]:
    """What an endpoint receives for ``event_type`` (valid against its payload model)."""
    head = {"type": event_type, "timestamp": _WHEN, "event_id": uuid.UUID("0b6f4c52-8a5e-4f0e-b6f1-6a2d3c4e5f60"),
            "version": 1}
    if event_type == "stock.low":
        data: BaseModel = StockLow(shop_id=3, owner_id=_ORDER.shop_owner_id, product_id=7, product_name="Súng Thái đỏ",
                                   variant_id=12, variant_label="Củ giống", stock=2, threshold=3)
        return StockLowPayload(**head, data=data).model_dump(mode="json")
    if event_type == "webhook.test":
        test = TestData(endpoint_id=5, message="Chợ Vườn: webhook test")
        return TestPayload(**head, data=test).model_dump(mode="json")
    paid = "paid" if event_type == "order.paid" else "unpaid"
    data = _ORDER.model_copy(update={"status": _STATUS[event_type], "payment_status": paid,
                                     "actor_role": "guest" if event_type == "order.placed" else "grower",
                                     "payment_method": "bank_transfer" if paid == "paid" else "cod"})
    return OrderEventPayload(**head, data=data).model_dump(mode="json")


SUMMARIES = {
    "order.placed": "A new order for your shop",
    "order.confirmed": "You confirmed an order",
    "order.shipped": "You shipped an order",
    "order.delivered": "An order was delivered",
    "order.cancelled": "An order was cancelled (by the buyer or by you); its stock is back",
    "order.paid": "You marked a bank-transfer order paid",
    "stock.low": "A variant's stock fell to its low-stock threshold",
    "webhook.test": "A test, sent when you ask for one",
}
MODELS: dict[str, type[_Payload]] = {**dict.fromkeys(ORDER_EVENTS, OrderEventPayload),
                                     "stock.low": StockLowPayload, "webhook.test": TestPayload}
DESCRIPTION = ("POSTed to each of your endpoints subscribed to this type, signed after the Standard Webhooks "
               "specification: verify `webhook-signature` over `{webhook-id}.{webhook-timestamp}.{body}` with "
               "the endpoint's secret before trusting the body (docs/api.md, Webhooks). Answer 2xx within 15 "
               "seconds; anything else is retried; 410 disables the endpoint.")
RECEIVED = {"2XX": {"description": "Received: no retry"},
            "410": {"description": "Gone: the endpoint is disabled at once"},
            "default": {"description": "Anything else (or no answer within 15 s): retried with backoff"}}

def _receiver(event_type: str):
    model = MODELS[event_type]

    async def receive(
        payload: Annotated[model, Body(openapi_examples={event_type: {"summary": SUMMARIES[event_type],  # type: ignore[valid-type]
                                                                      "value": example(event_type)}})],
        webhook_id: Annotated[str, Header(alias="webhook-id", description="`msg_…`: the same on every retry; "
                                                                          "drop a repeat")],
        webhook_timestamp: Annotated[int, Header(alias="webhook-timestamp",
                                                 description="Unix seconds of this try")],
        webhook_signature: Annotated[str, Header(alias="webhook-signature",
                                                 description="`v1,<base64 HMAC-SHA256>`, space-separated "
                                                             "when more than one (after a rotation)")],
    ) -> None:
        raise NotImplementedError  # documentation only: never routed

    return receive


router = APIRouter(tags=["webhooks"])
for _type in MODELS:
    router.add_api_route(_type, _receiver(_type), methods=["POST"], summary=SUMMARIES[_type],
                         description=DESCRIPTION, responses=RECEIVED, status_code=200, response_model=None,
                         operation_id="webhooks_on_" + _type.replace(".", "_"))
