"""``GET /orders/{id}/payment-qr`` (the grower, or the buyer who placed it) and
``GET /tracking/{token}/payment-qr`` (a guest, by the secret tracking link)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from common.params import IdPath
from services.orders.deps import CipherDep, CurrentPrincipal, SessionDep
from services.orders.orders import service as orders
from services.orders.payments.schemas import PaymentQrOut
from services.orders.payments.service import payment_qr

router = APIRouter(prefix="/api/v1", tags=["payments"])

Format = Annotated[Literal["json", "svg"], Query(description="`svg`: the QR code alone, as image/svg+xml")]
NO_STORE = {"Cache-Control": "no-store"}  # an account number and a secret link: kept out of shared caches
# One 200, two media types: the JSON (`format=json`, the default) and the SVG alone (`format=svg`).
QR_RESPONSES = {
    200: {"description": "`format=json` (the default): the transfer's details and the QR code as JSON. "
                         "`format=svg`: the QR code alone, an SVG document (`image/svg+xml`)",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PaymentQrOut"}},
                      "image/svg+xml": {"schema": {"type": "string", "description": "An SVG document"}}}},
    409: {"description": "Not a bank-transfer order (`/problems/not-bank-transfer`), or cancelled "
                         "(`/problems/order-cancelled`)"},
}


def _reply(qr: PaymentQrOut, fmt: str) -> Response:
    if fmt == "svg":
        return Response(qr.svg, media_type="image/svg+xml", headers={
            **NO_STORE, "Content-Disposition": f'inline; filename="vietqr-{qr.order_code}.svg"',
            "Content-Security-Policy": "default-src 'none'", "X-Content-Type-Options": "nosniff"})
    return Response(qr.model_dump_json(), media_type="application/json", headers=NO_STORE)


@router.get("/orders/{order_id}/payment-qr", operation_id="payments_order_qr", response_model=PaymentQrOut,
            responses=QR_RESPONSES,
            summary="The VietQR to pay a bank-transfer order (its grower, or the buyer who placed it)")
async def order_payment_qr(session: SessionDep, cipher: CipherDep, principal: CurrentPrincipal, order_id: IdPath,
                           format: Format = "json") -> Response:
    order, _ = await orders.get_for(session, order_id, principal)
    return _reply(payment_qr(order, f"/api/v1/orders/{order.id}/payment-qr?format=svg", cipher=cipher), format)


@router.get("/tracking/{token}/payment-qr", operation_id="payments_tracking_qr", response_model=PaymentQrOut,
            responses=QR_RESPONSES,
            summary="The VietQR to pay a guest's bank-transfer order, by its secret tracking link")
async def tracking_payment_qr(session: SessionDep, cipher: CipherDep,
                              token: Annotated[str, Path(min_length=16, max_length=64)],
                              format: Format = "json") -> Response:
    order = await orders.get_by_token(session, token)
    return _reply(payment_qr(order, f"/api/v1/tracking/{token}/payment-qr?format=svg", cipher=cipher), format)
