from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse

from common.auth import CurrentPrincipal, OptionalPrincipal, Principal, require
from common.db import SessionDep
from common.errors import Forbidden
from common.openapi import problems
from common.pagination import CursorQuery, LimitQuery, Page
from common.params import IdPath
from common.vietnam import local_bound
from services.orders.orders import placing, service
from services.orders.orders.models import OrderStatus
from services.orders.orders.schemas import (
    CONSENT_PURPOSES,
    CancelRequest,
    CheckoutCreate,
    CheckoutOut,
    OrderCreate,
    OrderCreated,
    OrderOut,
    PhoneOrderCreate,
)

router = APIRouter(prefix="/api/v1", tags=["orders"])
Grower = Annotated[Principal, Depends(require("grower", scope="orders:write"))]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255,
                                              description="A unique key per order (e.g. a UUID); retries reuse it")]
PLACING = problems(400, 403, 404, 409, 503,
                   s400="No Idempotency-Key, or a body that is not JSON",
                   s403="This account (or API key) may not place orders",
                   s404="A variant or shop that does not exist or is not on sale",
                   s409="A line is out of stock, or another request with this Idempotency-Key is in flight",
                   s503="The catalog is unavailable; nothing was ordered")


def _check_buyer(principal: Principal | None) -> None:
    if principal is not None and principal.role == "grower" and principal.kind == "user":
        return  # a grower may buy from another grower
    if principal is not None and not principal.allows("orders:write"):
        raise Forbidden("This API key lacks the orders:write scope", scope="orders:write")


@router.post("/orders", status_code=201, response_model=OrderCreated,
             summary="Place an order at one shop (as a guest or signed in); needs an Idempotency-Key",
             responses=PLACING)
async def create_order(request: Request, principal: OptionalPrincipal, data: OrderCreate,
                       idempotency_key: IdempotencyKey = None) -> JSONResponse:
    _check_buyer(principal)
    status, body = await placing.place_order(request, principal, data, "api" if principal and
                                             principal.kind == "api_key" else "web", data.shop_id)
    return JSONResponse(body, status_code=status)


@router.post("/checkouts", status_code=201, response_model=CheckoutOut,
             summary="Order from several shops at once: one order per shop, all reserved or none",
             responses=PLACING)
async def create_checkout(request: Request, principal: OptionalPrincipal, data: CheckoutCreate,
                          idempotency_key: IdempotencyKey = None) -> JSONResponse:
    _check_buyer(principal)
    status, body = await placing.place_checkout(request, principal, data)
    return JSONResponse(body, status_code=status)


@router.post("/orders/phone", status_code=201, response_model=OrderCreated,
             summary="Record an order the grower took by phone (same rules, marked as a phone order)",
             responses=PLACING)
async def create_phone_order(request: Request, grower: Grower, data: PhoneOrderCreate,
                             idempotency_key: IdempotencyKey = None) -> JSONResponse:
    status, body = await placing.place_order(request, grower, data, "phone")
    return JSONResponse(body, status_code=status)


@router.get("/orders/consent", summary="The purposes a buyer agrees to when ordering")
async def consent_text() -> dict:
    return {"purposes": CONSENT_PURPOSES}


@router.get("/orders", response_model=Page[OrderOut], summary="Your orders (growers: your shop's)")
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


@router.get("/orders/counts", summary="How many of your shop's orders are in each state")
async def order_counts(session: SessionDep, grower: Annotated[Principal, Depends(require("grower",
                                                                                          scope="orders:read"))]
                       ) -> dict[str, int]:
    return await service.counts_for(session, grower)


@router.get("/orders/{order_id}", response_model=OrderOut, summary="One of your orders")
async def get_order(session: SessionDep, principal: CurrentPrincipal, order_id: IdPath) -> OrderOut:
    order, role = await service.get_for(session, order_id, principal)
    return service.to_out(order, role)


@router.get("/tracking/{token}", response_model=OrderOut, summary="A guest's order, by its secret tracking link")
async def track(session: SessionDep, token: Annotated[str, Path(min_length=16, max_length=64)]) -> OrderOut:
    return service.to_out(await service.get_by_token(session, token), "guest")


Action = Literal["confirm", "ship", "deliver", "cancel", "mark-paid"]


@router.post("/orders/{order_id}/{action}", response_model=OrderOut,
             summary="Move an order: confirm, ship, deliver, cancel or mark-paid",
             responses=problems(403, 409, s403="The API key lacks orders:write",
                                s409="The order cannot make this move from its state (`allowed_actions` "
                                     "lists those it can)"))
async def act(request: Request, session: SessionDep, principal: CurrentPrincipal, order_id: IdPath,
              action: Action, body: Annotated[CancelRequest | None, Body()] = None) -> OrderOut:
    order, role = await service.get_for(session, order_id, principal, for_update=True)
    if role in ("grower", "admin") and not principal.allows("orders:write"):
        raise Forbidden("This API key lacks the orders:write scope", scope="orders:write")
    order = await service.transition(session, request.app.state.catalog, order, action, role, principal.sub,
                                     body.reason if body else "")
    return service.to_out(order, role)
