"""Webhook endpoints and their deliveries: managing them, queueing deliveries when an event comes in,
and disabling an endpoint (and telling its owner)."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from common.crypto import FieldCipher
from common.db import get_scoped, read_once
from common.errors import Conflict, Problem, UnprocessableEntity
from common.events import Event, OrderEvent
from common.pagination import keyset_page
from services.notify import accounts
from services.notify.inbox.models import Notification
from services.notify.settings import NotifySettings
from services.notify.webhooks import signing, ssrf
from services.notify.webhooks.models import (
    OUTSTANDING,
    DeliveryState,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    utcnow,
)
from services.notify.webhooks.schemas import EndpointCreate, EndpointUpdate

MAX_ENDPOINTS = 10  # per owner
ROTATION_GRACE = dt.timedelta(hours=24)  # the old secret keeps signing this long after a rotation
RETENTION = dt.timedelta(days=30)  # finished deliveries (and their attempts) are kept this long
TEST_EVENT = "webhook.test"


class TooManyEndpoints(Problem):
    status, slug, title = 409, "webhook-limit", "Too many webhook endpoints"


# --- the URL --------------------------------------------------------------------------------------


async def checked_url(settings: NotifySettings, url: str) -> str:
    """``url`` normalised, once the SSRF guard let it through; else a 422 naming ``body.url``."""
    try:
        destination = await ssrf.check_with(settings, url)
    except ssrf.Refused as exc:
        why = str(exc)
        if isinstance(exc, ssrf.Loopback):
            why += (f"; a development server takes loopback receivers when started with "
                    f"{settings.env_name('webhooks_allow_loopback')}=true (refused in production)")
        raise UnprocessableEntity(f"This URL cannot receive webhooks: {why}", errors=[
            {"field": "body.url", "message": why,
             "type": "url_unresolvable" if isinstance(exc, ssrf.Unresolvable) else "url_refused"}]) from None
    return str(destination.url)


# --- endpoints ------------------------------------------------------------------------------------


async def create(session: AsyncSession, owner_id: str, data: EndpointCreate, *, settings: NotifySettings,
                 cipher: FieldCipher) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its secret (returned in clear this once; stored encrypted)."""
    url = await checked_url(settings, data.url)  # DNS before the transaction, so no lock waits on it
    count = await session.scalar(select(func.count()).select_from(WebhookEndpoint)
                                 .where(WebhookEndpoint.owner_id == owner_id))
    if count >= MAX_ENDPOINTS:
        raise TooManyEndpoints(f"You have {count} webhook endpoints, the most allowed; delete one first",
                               limit=MAX_ENDPOINTS)
    secret = signing.new_secret()
    endpoint = WebhookEndpoint(owner_id=owner_id, url=url, description=data.description,
                               event_types=list(data.event_types), secret_encrypted=cipher.encrypt(secret))
    session.add(endpoint)
    await session.flush()
    return endpoint, secret


async def page(session: AsyncSession, owner_id: str, limit: int,
               cursor: str | None) -> tuple[list[WebhookEndpoint], str | None]:
    return await keyset_page(session, select(WebhookEndpoint).where(WebhookEndpoint.owner_id == owner_id),
                             WebhookEndpoint.id, limit, cursor)


async def get_owned(session: AsyncSession, owner_id: str, endpoint_id: int) -> WebhookEndpoint:
    """The endpoint, if it is the caller's; anyone else's is as good as absent (404)."""
    return await get_scoped(session, WebhookEndpoint, endpoint_id, "No such webhook endpoint", owner_id=owner_id)


async def update_endpoint(session: AsyncSession, owner_id: str, endpoint_id: int, data: EndpointUpdate, *,
                          settings: NotifySettings) -> WebhookEndpoint:
    url = await checked_url(settings, data.url) if data.url is not None else None
    endpoint = await get_owned(session, owner_id, endpoint_id)
    if url is not None:
        endpoint.url = url
    if data.event_types is not None:
        endpoint.event_types = list(data.event_types)
    if data.description is not None:
        endpoint.description = data.description
    if data.active is True and not endpoint.active:
        endpoint.active, endpoint.disabled_reason, endpoint.disabled_at = True, None, None
        endpoint.failing_since = None
    elif data.active is False and endpoint.active:
        await disable(session, endpoint, "disabled by its owner", tell_owner=False)
    endpoint.updated_at = utcnow()
    return endpoint


async def _delete_all(session: AsyncSession, endpoint_ids) -> None:
    deliveries = select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id.in_(endpoint_ids))
    await session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(deliveries)))
    await session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id.in_(endpoint_ids)))
    await session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id.in_(endpoint_ids)))


async def delete_endpoint(session: AsyncSession, owner_id: str, endpoint_id: int) -> None:
    endpoint = await get_owned(session, owner_id, endpoint_id)
    await _delete_all(session, [endpoint.id])


async def rotate_secret(session: AsyncSession, owner_id: str, endpoint_id: int, *,
                        cipher: FieldCipher) -> tuple[WebhookEndpoint, str]:
    """A new secret; the old one also signs for :data:`ROTATION_GRACE` (two signatures are sent)."""
    endpoint = await get_owned(session, owner_id, endpoint_id)
    secret = signing.new_secret()
    endpoint.previous_secret_encrypted = endpoint.secret_encrypted
    endpoint.previous_secret_expires_at = utcnow() + ROTATION_GRACE
    endpoint.secret_encrypted = cipher.encrypt(secret)
    endpoint.updated_at = utcnow()
    return endpoint, secret


def signing_secrets(endpoint: WebhookEndpoint, cipher: FieldCipher, now: dt.datetime) -> list[str]:
    found = [cipher.decrypt(endpoint.secret_encrypted)]
    if endpoint.previous_secret_encrypted and endpoint.previous_secret_expires_at \
            and endpoint.previous_secret_expires_at > now:
        found.append(cipher.decrypt(endpoint.previous_secret_encrypted))
    return found


async def disable(session: AsyncSession, endpoint: WebhookEndpoint, reason: str, *, tell_owner: bool) -> set[str]:
    """Stop sending to ``endpoint``: what is still outstanding is dead (redeliverable once it is
    enabled again). With ``tell_owner``, a notification in the owner's inbox says so. Returns the
    accounts whose inbox changed. The caller commits."""
    now = utcnow()
    endpoint.active, endpoint.disabled_reason, endpoint.disabled_at = False, reason[:200], now
    endpoint.updated_at = now
    await session.execute(update(WebhookDelivery).where(
        WebhookDelivery.endpoint_id == endpoint.id, WebhookDelivery.state.in_(OUTSTANDING))
        .values(state=DeliveryState.dead, next_attempt_at=None, last_error=f"endpoint disabled: {reason}"[:500]))
    if not tell_owner:
        return set()
    session.add(Notification(
        account_id=endpoint.owner_id, event_id=str(uuid.uuid4()), type="webhook.disabled",
        title=f"Đã tắt webhook {endpoint.url}"[:200],
        body=(f"Chợ Vườn ngừng gửi sự kiện tới địa chỉ này. Lý do: {reason}. Hãy kiểm tra máy nhận, rồi bật "
              f"lại webhook (PATCH /api/v1/webhooks/{endpoint.id} với \"active\": true)."),
        data={"endpoint_id": endpoint.id, "url": endpoint.url, "reason": reason}))
    return {endpoint.owner_id}


# --- deliveries -----------------------------------------------------------------------------------


def owner_of(event: Event) -> str:
    """The account an event concerns: the shop's owner (order.*), the grower (stock.low)."""
    return event.data.shop_owner_id if isinstance(event, OrderEvent) else event.data.owner_id


def _timestamp(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def payload_for(event: Event) -> dict:
    """The body sent: Standard Webhooks' ``type``, ``timestamp`` (when it happened) and ``data``."""
    return {"type": event.type, "timestamp": _timestamp(event.occurred_at), "event_id": str(event.id),
            "version": event.version, "data": event.data.model_dump(mode="json")}


_endpoints = WebhookEndpoint.__table__.c
# Built once, columns only: every event asks, and most owners have no endpoint.
_ACTIVE_ENDPOINTS_OF = select(_endpoints.id, _endpoints.event_types).where(
    _endpoints.owner_id == bindparam("owner_id"), _endpoints.active.is_(True))


async def queue_deliveries(session: AsyncSession, event: Event, first_delay: float = 0) -> set[str]:
    """The effect on every event (in its transaction): one delivery per active endpoint of the
    event's owner that subscribed to its type, first tried ``first_delay`` seconds from now (the
    retry schedule's first entry). Nothing is sent here; the sender is woken after commit."""
    owner_id = owner_of(event)
    if not owner_id:
        return set()
    endpoints = await read_once(session, _ACTIVE_ENDPOINTS_OF, {"owner_id": owner_id})
    if not endpoints:
        return set()
    payload = payload_for(event)
    due = utcnow() + dt.timedelta(seconds=first_delay)
    for endpoint in endpoints:
        if event.type in endpoint.event_types:
            session.add(WebhookDelivery(endpoint_id=endpoint.id, event_id=event.id, event_type=event.type,
                                        payload=payload, next_attempt_at=due))
    return set()


async def ping(session: AsyncSession, owner_id: str, endpoint_id: int) -> WebhookDelivery:
    """A ``webhook.test`` delivery to the endpoint, sent like any other."""
    endpoint = await get_owned(session, owner_id, endpoint_id)
    _require_active(endpoint)
    event_id = uuid.uuid4()
    delivery = WebhookDelivery(endpoint_id=endpoint.id, event_id=event_id, event_type=TEST_EVENT, payload={
        "type": TEST_EVENT, "timestamp": _timestamp(utcnow()), "event_id": str(event_id), "version": 1,
        "data": {"endpoint_id": endpoint.id, "message": "Chợ Vườn: webhook test"}})
    session.add(delivery)
    await session.flush()
    return delivery


def _require_active(endpoint: WebhookEndpoint) -> None:
    if not endpoint.active:
        raise Conflict(f"This endpoint is disabled ({endpoint.disabled_reason}); enable it first "
                       "with PATCH {\"active\": true}")


async def deliveries_page(session: AsyncSession, endpoint: WebhookEndpoint, state: str | None, limit: int,
                          cursor: str | None) -> tuple[list[tuple[WebhookDelivery, list[WebhookAttempt]]], str | None]:
    """The endpoint's delivery log, newest first, each with its attempts (oldest first)."""
    stmt = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
    if state is not None:
        stmt = stmt.where(WebhookDelivery.state == state)
    rows, next_cursor = await keyset_page(session, stmt, WebhookDelivery.id, limit, cursor)
    return [(row, log) for row, log in zip(rows, await _attempts(session, [r.id for r in rows]), strict=True)], \
        next_cursor


async def _attempts(session: AsyncSession, delivery_ids: list[int]) -> list[list[WebhookAttempt]]:
    found: dict[int, list[WebhookAttempt]] = {i: [] for i in delivery_ids}
    if delivery_ids:
        for attempt in (await session.scalars(select(WebhookAttempt).where(
                WebhookAttempt.delivery_id.in_(delivery_ids)).order_by(WebhookAttempt.id))).all():
            found[attempt.delivery_id].append(attempt)
    return [found[i] for i in delivery_ids]


async def get_delivery(session: AsyncSession, owner_id: str, endpoint_id: int,
                       delivery_id: int) -> tuple[WebhookEndpoint, WebhookDelivery]:
    endpoint = await get_owned(session, owner_id, endpoint_id)
    delivery = await get_scoped(session, WebhookDelivery, delivery_id, "No such delivery", endpoint_id=endpoint.id)
    return endpoint, delivery


async def with_log(session: AsyncSession, delivery: WebhookDelivery) -> tuple[WebhookDelivery, list[WebhookAttempt]]:
    return delivery, (await _attempts(session, [delivery.id]))[0]


async def redeliver(session: AsyncSession, owner_id: str, endpoint_id: int, delivery_id: int) -> WebhookDelivery:
    """Send the delivery again, now, with the same ``webhook-id`` and a fresh round of retries."""
    endpoint, delivery = await get_delivery(session, owner_id, endpoint_id, delivery_id)
    _require_active(endpoint)
    delivery.state, delivery.attempts, delivery.next_attempt_at = DeliveryState.pending, 0, utcnow()
    return delivery


async def prune(session: AsyncSession, now: dt.datetime) -> int:
    """Forget finished deliveries older than :data:`RETENTION` (they hold copies of order data)."""
    old = select(WebhookDelivery.id).where(WebhookDelivery.created_at < now - RETENTION,
                                           WebhookDelivery.state.in_((DeliveryState.succeeded, DeliveryState.dead)))
    await session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(old)))
    result = await session.execute(delete(WebhookDelivery).where(
        WebhookDelivery.created_at < now - RETENTION,
        WebhookDelivery.state.in_((DeliveryState.succeeded, DeliveryState.dead))))
    return result.rowcount


# --- personal data (GET /me/export, DELETE /me through services/notify/accounts.py) ---------------------


async def export_personal_data(session: AsyncSession, account_id: str) -> dict:
    rows = (await session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.owner_id == account_id)
                                  .order_by(WebhookEndpoint.id))).all()
    return {"webhook_endpoints": [{"id": r.id, "url": r.url, "description": r.description,
                                   "event_types": r.event_types, "active": r.active,
                                   "created_at": r.created_at.isoformat()} for r in rows]}


async def erase_personal_data(session: AsyncSession, account_id: str) -> None:
    await _delete_all(session, select(WebhookEndpoint.id).where(WebhookEndpoint.owner_id == account_id))


accounts.SECTIONS.append((export_personal_data, erase_personal_data))
