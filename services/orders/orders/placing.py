"""Placing one order, or a checkout of several shops' orders, all reserved or none."""

from __future__ import annotations

import uuid
from collections import defaultdict

from fastapi import Request

from common.auth import Principal
from common.errors import UnprocessableEntity
from services.orders import reconciler
from services.orders.catalog_client import CatalogClient
from services.orders.orders import idempotency, service, tracking
from services.orders.orders.schemas import CheckoutCreate, CheckoutOut, OrderCreate, OrderFields


def scope_of(principal: Principal | None) -> str:
    return f"account:{principal.sub}" if principal else "guest"


async def _with_key(request: Request, principal: Principal | None, run):
    """Claim the Idempotency-Key, run, and give the key up if anything fails."""
    state = request.app.state
    key = idempotency.check_key(request.headers.get("idempotency-key"))
    print_ = idempotency.fingerprint(request.url.path, await request.body())
    row_id, replay = await idempotency.begin(state.db.autocommit, scope_of(principal), key, print_)
    if replay is not None:
        return replay
    try:
        return await run(row_id)
    except BaseException:
        await idempotency.abandon(state.db.autocommit, row_id)
        raise


async def place_order(request: Request, principal: Principal | None, data: OrderCreate | OrderFields,
                      source: str, shop_id: int | None = None) -> tuple[int, dict]:
    state = request.app.state
    catalog: CatalogClient = state.catalog
    role = "grower" if source == "phone" else (principal.role if principal else "guest")
    buyer = principal if source != "phone" else None

    async def run(row_id: int) -> tuple[int, dict]:
        reservation_id = service.new_reservation_id()
        reservation = await catalog.reserve(reservation_id, [ln.model_dump() for ln in data.lines], shop_id,
                                            data.payment_method)
        try:
            if source == "phone" and reservation.shop.owner_id != principal.sub:
                raise UnprocessableEntity("A phone order is for your own shop's varieties", errors=[
                    {"field": "body.lines", "message": "not your shop's varieties", "type": "not_your_shop"}])
            placed = service.build_order(reservation, data, buyer, source, state.cipher)
            if source == "phone":
                placed.order.history[0].actor_role = "grower"
                placed.order.history[0].actor_id = principal.sub
            async with state.db.sessionmaker() as session:
                await service.store(session, [placed])
                # Now that the order has its id: the key's stored reply and ours are one.
                reply = service.to_created(placed, state.settings.public_base_url, role).model_dump(mode="json")
                await idempotency.complete(session, row_id, 201, reply)
                await session.commit()
        except BaseException:
            await service.release_quietly(catalog, [reservation_id])
            raise
        reconciler.wake(request.app)  # step 4, batched with other orders' (services/orders/reconciler.py)
        if placed.order.buyer_mail:
            tracking.wake(request.app)  # the buyer's mail with the link, handed to notify after the reply
        return 201, reply

    return await _with_key(request, principal, run)


async def place_checkout(request: Request, principal: Principal | None, data: CheckoutCreate) -> tuple[int, dict]:
    state = request.app.state
    catalog: CatalogClient = state.catalog
    role = principal.role if principal else "guest"

    async def run(row_id: int) -> tuple[int, dict]:
        shops = await catalog.variant_shops(sorted({ln.variant_id for ln in data.lines}))
        unknown = [i for i, ln in enumerate(data.lines) if ln.variant_id not in shops]
        if unknown:
            raise UnprocessableEntity("Some lines cannot be ordered", errors=[
                {"field": f"body.lines[{i}].variant_id", "message": "no such variant on sale",
                 "type": "unknown_variant"} for i in unknown])
        by_shop: dict[int, list] = defaultdict(list)
        for line in data.lines:
            by_shop[shops[line.variant_id]].append(line)
        checkout_id = uuid.uuid4().hex
        reserved: list[str] = []
        try:
            placed = []
            for shop_id, lines in sorted(by_shop.items()):
                reservation_id = service.new_reservation_id()
                reservation = await catalog.reserve(reservation_id, [ln.model_dump() for ln in lines], shop_id,
                                                    data.payment_method)
                reserved.append(reservation_id)
                part = OrderFields(**{**data.model_dump(exclude={"lines"}), "lines": [ln.model_dump() for ln in lines]})
                item = service.build_order(reservation, part, principal, "web", state.cipher, checkout_id)
                placed.append(item)
            async with state.db.sessionmaker() as session:
                await service.store(session, placed)
                orders = [service.to_created(p, state.settings.public_base_url, role) for p in placed]
                reply = CheckoutOut(checkout_id=checkout_id, orders=orders,
                                    total=sum(o.total for o in orders)).model_dump(mode="json")
                await idempotency.complete(session, row_id, 201, reply)
                await session.commit()
        except BaseException:
            await service.release_quietly(catalog, reserved)
            raise
        reconciler.wake(request.app)
        if any(p.order.buyer_mail for p in placed):
            tracking.wake(request.app)  # one mail per order, each with its own link
        return 201, reply

    return await _with_key(request, principal, run)
