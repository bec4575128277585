from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse

from common.auth import Principal
from common.errors import Forbidden
from common.openapi import declares, problems
from common.pagination import CursorQuery, LimitQuery, Page
from common.params import IdPath
from common.vietnam import local_bound
from services.orders.deps import (
    CatalogClientDep,
    CurrentPrincipal,
    Grower,
    GrowerReader,
    OptionalPrincipal,
    PlacingDep,
    SessionDep,
)
from services.orders.orders import idempotency, placing, service
from services.orders.orders.models import OrderStatus
from services.orders.orders.schemas import (
    CONSENT_PURPOSES,
    CancelRequest,
    CheckoutCreate,
    CheckoutOut,
    ConsentOut,
    OrderCounts,
    OrderCreate,
    OrderCreated,
    OrderOut,
    PhoneOrderCreate,
)

router = APIRouter(prefix="/api/v1", tags=["orders"])


@declares(required_headers=("Idempotency-Key",))
async def idempotency_key(key: Annotated[str | None, Header(
        alias="Idempotency-Key", max_length=255,
        description="A unique key per order (e.g. a UUID); retries reuse it")] = None) -> str | None:
    """The header, documented as required; placing answers its absence with a 400
    (``/problems/idempotency-key-missing``), as the IETF draft says, not with a validation 422."""
    return key


IdempotencyKey = Annotated[str | None, Depends(idempotency_key)]
PLACING = problems(400, 403, 404, 409, 503,
                   s400="No Idempotency-Key, or a body that is not JSON",
                   s403="This account (or API key) may not place orders",
                   s404="A variant or shop that does not exist or is not on sale",
                   s409="A line is out of stock, or another request with this Idempotency-Key is in flight",
                   s503="The catalog is unavailable; nothing was ordered")


async def _saga(request: Request, collaborators: PlacingDep) -> dict:
    """What placing takes besides the session and the order, as its keyword arguments: the
    Idempotency-Key as sent, the fingerprint of the path and body, and the collaborators."""
    return {"key": request.headers.get("idempotency-key"),
            "fingerprint": idempotency.fingerprint(request.url.path, await request.body()), **collaborators}


Saga = Annotated[dict, Depends(_saga)]


def _check_buyer(principal: Principal | None) -> None:
    if principal is not None and principal.role == "grower" and principal.kind == "user":
        return  # a grower may buy from another grower
    if principal is not None and not principal.allows("orders:write"):
        raise Forbidden("This API key lacks the orders:write scope", scope="orders:write")


@router.post("/orders", operation_id="orders_create", status_code=201, response_model=OrderCreated,
             summary="Place an order at one shop (as a guest or signed in); needs an Idempotency-Key",
             responses=PLACING)
async def create_order(session: SessionDep, principal: OptionalPrincipal, data: OrderCreate, saga: Saga,
                       idempotency_key: IdempotencyKey = None) -> JSONResponse:
    _check_buyer(principal)
    source = "api" if principal and principal.kind == "api_key" else "web"
    status, body = await placing.place_order(session, principal, data, source=source,
                                             shop_id=data.shop_id, **saga)
    return JSONResponse(body, status_code=status)


@router.post("/checkouts", operation_id="orders_checkout", status_code=201, response_model=CheckoutOut,
             summary="Order from several shops at once: one order per shop, all reserved or none",
             responses=PLACING)
async def create_checkout(session: SessionDep, principal: OptionalPrincipal, data: CheckoutCreate, saga: Saga,
                          idempotency_key: IdempotencyKey = None) -> JSONResponse:
    _check_buyer(principal)
    status, body = await placing.place_checkout(session, principal, data, **saga)
    return JSONResponse(body, status_code=status)


@router.post("/orders/phone", operation_id="orders_create_phone", status_code=201, response_model=OrderCreated,
             summary="Record an order the grower took by phone (same rules, marked as a phone order)",
             responses=PLACING)
async def create_phone_order(session: SessionDep, grower: Grower, data: PhoneOrderCreate, saga: Saga,
                             idempotency_key: IdempotencyKey = None) -> JSONResponse:
    status, body = await placing.place_order(session, grower, data, source="phone", **saga)
    return JSONResponse(body, status_code=status)


@router.get("/orders/consent", operation_id="orders_consent", summary="The purposes a buyer agrees to when ordering")
async def consent_text() -> ConsentOut:
    return ConsentOut(purposes=CONSENT_PURPOSES)


@router.get("/orders", operation_id="orders_list",
            response_model=Page[OrderOut], summary="Your orders (growers: your shop's)")
async def list_orders(
    session: SessionDep, principal: CurrentPrincipal,
    status: OrderStatus | None = None, paid: bool | None = None,
    since: Annotated[str | None, Query(max_length=40, description="Placed on or after (a date or date-time; "
                                                                    "without an offset, Vietnam time)")] = None,
    until: Annotated[str | None, Query(max_length=40, description="Placed before; a date includes that day")] = None,
    limit: LimitQuery = 20, cursor: CursorQuery = None,
) -> Page[OrderOut]:
    if not principal.allows("orders:read"):
        raise Forbidden("This API key lacks the orders:read scope", scope="orders:read")
    rows, next_cursor = await service.list_for(session, principal, status=status, paid=paid,
                                               since=local_bound(since, "since"),
                                               until=local_bound(until, "until", end=True), limit=limit, cursor=cursor)
    role = "grower" if principal.role in ("grower", "admin") else "buyer"
    return Page(items=[service.to_out(o, role) for o in rows], next_cursor=next_cursor)


@router.get("/orders/counts", operation_id="orders_counts",
            summary="How many of your shop's orders are in each state")
async def order_counts(session: SessionDep, grower: GrowerReader) -> OrderCounts:
    return OrderCounts(**await service.counts_for(session, grower))


@router.get("/orders/{order_id}", operation_id="orders_get", response_model=OrderOut, summary="One of your orders")
async def get_order(session: SessionDep, principal: CurrentPrincipal, order_id: IdPath) -> OrderOut:
    order, role = await service.get_for(session, order_id, principal)
    return service.to_out(order, role)


@router.get("/tracking/{token}", operation_id="orders_track",
            response_model=OrderOut, summary="A guest's order, by its secret tracking link")
async def track(session: SessionDep, token: Annotated[str, Path(min_length=16, max_length=64)]) -> OrderOut:
    return service.to_out(await service.get_by_token(session, token), "guest")


MOVE_PROBLEMS = problems(403, 409, s403="The API key lacks orders:write",
                         s409="The order cannot make this move from its state (`allowed_actions` lists those it can)")


async def _move(session: SessionDep, catalog: CatalogClientDep, principal: Principal, order_id: int, action: str,
                reason: str = "") -> OrderOut:
    order, role = await service.get_for(session, order_id, principal, for_update=True)
    if role in ("grower", "admin") and not principal.allows("orders:write"):
        raise Forbidden("This API key lacks the orders:write scope", scope="orders:write")
    order = await service.transition(session, order, action, role, principal.sub, reason, catalog=catalog)
    return service.to_out(order, role)


# One operation per move, so that a generated client has `orders_confirm(order_id)` and no body to make up.
@router.post("/orders/{order_id}/confirm", operation_id="orders_confirm", response_model=OrderOut,
             summary="Confirm a placed order (its grower)", responses=MOVE_PROBLEMS)
async def confirm(session: SessionDep, catalog: CatalogClientDep, principal: CurrentPrincipal,
                  order_id: IdPath) -> OrderOut:
    return await _move(session, catalog, principal, order_id, "confirm")


@router.post("/orders/{order_id}/ship", operation_id="orders_ship", response_model=OrderOut,
             summary="Mark a confirmed order shipped (its grower)", responses=MOVE_PROBLEMS)
async def ship(session: SessionDep, catalog: CatalogClientDep, principal: CurrentPrincipal,
               order_id: IdPath) -> OrderOut:
    return await _move(session, catalog, principal, order_id, "ship")


@router.post("/orders/{order_id}/deliver", operation_id="orders_deliver", response_model=OrderOut,
             summary="Mark a shipped order delivered (its grower)", responses=MOVE_PROBLEMS)
async def deliver(session: SessionDep, catalog: CatalogClientDep, principal: CurrentPrincipal,
                  order_id: IdPath) -> OrderOut:
    return await _move(session, catalog, principal, order_id, "deliver")


@router.post("/orders/{order_id}/cancel", operation_id="orders_cancel", response_model=OrderOut,
             summary="Cancel an order (the buyer while placed or confirmed; the grower until delivered); "
                     "its stock returns", responses=MOVE_PROBLEMS)
async def cancel(session: SessionDep, catalog: CatalogClientDep, principal: CurrentPrincipal, order_id: IdPath,
                 body: Annotated[CancelRequest, Body(default_factory=CancelRequest)]) -> OrderOut:
    return await _move(session, catalog, principal, order_id, "cancel", body.reason)


@router.post("/orders/{order_id}/mark-paid", operation_id="orders_mark_paid", response_model=OrderOut,
             summary="Mark a bank-transfer order paid (its grower)", responses=MOVE_PROBLEMS)
async def mark_paid(session: SessionDep, catalog: CatalogClientDep, principal: CurrentPrincipal,
                    order_id: IdPath) -> OrderOut:
    return await _move(session, catalog, principal, order_id, "mark-paid")
