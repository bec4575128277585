"""Push subscriptions kept per device, and the pushes an event asks for (queued in the event's transaction).

A new order rings the shop's grower; low stock rings the variety's owner. Each of the grower's devices
gets its own push, with the inbox's words and the page to open."""

from __future__ import annotations

import base64
import binascii

from sqlalchemy import bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from common.db import get_scoped, read_once
from common.errors import UnprocessableEntity
from common.events import Event, StockLowEvent
from services.notify.inbox import messages
from services.notify.push.models import PushDelivery, PushSubscription
from services.notify.settings import NotifySettings
from services.notify.webhooks import ssrf

MAX_PER_ACCOUNT = 20  # devices; the oldest is dropped when a new one subscribes past it
PUSHED = ("order.placed", "stock.low")


def _key(value: str, size: int, field: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != size or (size == 65 and raw[0] != 4):
        raise UnprocessableEntity("The subscription's keys are not what a browser gives", errors=[
            {"field": f"body.keys.{field}", "message": f"base64url of {size} bytes expected", "type": "value_error"}])
    return value.rstrip("=")


async def checked_endpoint(settings: NotifySettings, url: str) -> str:
    """The push service's URL once the SSRF guard let it through (https, public addresses); else a 422."""
    try:
        destination = await ssrf.check_with(settings, url)
    except ssrf.Refused as exc:
        raise UnprocessableEntity(f"This push endpoint cannot be used: {exc}", errors=[
            {"field": "body.endpoint", "message": str(exc), "type": "url_refused"}]) from None
    return str(destination.url)


async def subscribe(session: AsyncSession, account_id: str, endpoint: str, p256dh: str, auth: str, device: str, *,
                    settings: NotifySettings) -> PushSubscription:
    p256dh, auth = _key(p256dh, 65, "p256dh"), _key(auth, 16, "auth")
    endpoint = await checked_endpoint(settings, endpoint)
    row = await session.scalar(select(PushSubscription).where(PushSubscription.endpoint == endpoint))
    if row is None:
        row = PushSubscription(account_id=account_id, endpoint=endpoint, p256dh=p256dh, auth=auth, device=device)
        session.add(row)
    else:  # the same browser again (or signed in as someone else now): this account's, with its new keys
        if row.account_id != account_id:
            await session.execute(delete(PushDelivery).where(PushDelivery.subscription_id == row.id))
        row.account_id, row.p256dh, row.auth, row.device = account_id, p256dh, auth, device
    await session.flush()
    ids = (await session.scalars(select(PushSubscription.id).where(PushSubscription.account_id == account_id)
                                 .order_by(PushSubscription.id.desc()).offset(MAX_PER_ACCOUNT))).all()
    for old in ids:
        await remove(session, old)
    return row


async def listed(session: AsyncSession, account_id: str) -> list[PushSubscription]:
    return list((await session.scalars(select(PushSubscription).where(PushSubscription.account_id == account_id)
                                       .order_by(PushSubscription.id))).all())


async def remove(session: AsyncSession, subscription_id: int) -> None:
    """A subscription and its queued pushes (in the caller's transaction)."""
    await session.execute(delete(PushDelivery).where(PushDelivery.subscription_id == subscription_id))
    await session.execute(delete(PushSubscription).where(PushSubscription.id == subscription_id))


async def unsubscribe(session: AsyncSession, account_id: str, subscription_id: int) -> None:
    await get_scoped(session, PushSubscription, subscription_id, "No such push subscription", account_id=account_id)
    await remove(session, subscription_id)


def payload_for(event: Event) -> tuple[str, dict] | None:
    """(the account to ring, what the notification shows) for an event that rings, else None."""
    if event.type not in PUSHED:
        return None
    account, title, body = messages.for_event(event)[0]
    if isinstance(event, StockLowEvent):
        url, tag = f"/grower/products/{event.data.product_id}", f"stock-{event.data.variant_id}"
    else:
        url, tag = f"/grower/orders/{event.data.order_id}", f"order-{event.data.order_id}"
    return account, {"title": title, "body": body, "url": url, "tag": tag, "type": event.type,
                     "event_id": str(event.id)}


_SUBSCRIPTIONS_OF = select(PushSubscription.__table__.c.id).where(
    PushSubscription.__table__.c.account_id == bindparam("account_id"))  # built once: every event asks


async def queue_push(session: AsyncSession, event: Event) -> set[str]:
    found = payload_for(event)
    if found is not None:
        account, payload = found
        for (sub_id,) in await read_once(session, _SUBSCRIPTIONS_OF, {"account_id": account}):
            session.add(PushDelivery(subscription_id=sub_id, event_id=event.id, payload=payload))
    return set()  # no inbox changed
