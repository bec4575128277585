"""``/api/v1/webhooks``: a grower's (or their API key's, with scope ``webhooks``) webhook endpoints.
Someone else's endpoint answers 404, as if it did not exist."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from common.db import on_commit
from common.pagination import CursorQuery, LimitQuery, Page
from common.params import IdPath
from services.notify.deps import SessionDep, SettingsDep, WebhookCipherDep, WebhookSenderDep
from services.notify.deps import WebhookOwner as Owner
from services.notify.webhooks import service
from services.notify.webhooks.models import DeliveryState, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from services.notify.webhooks.schemas import (
    AttemptOut,
    DeliveryOut,
    EndpointCreate,
    EndpointOut,
    EndpointUpdate,
    EndpointWithSecret,
)

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])
NOT_YOURS = {404: {"description": "No such endpoint (or delivery), or not yours"}}


def endpoint_out(row: WebhookEndpoint) -> EndpointOut:
    return EndpointOut.model_validate(row, from_attributes=True)


def with_secret(row: WebhookEndpoint, secret: str) -> EndpointWithSecret:
    return EndpointWithSecret(**endpoint_out(row).model_dump(), secret=secret)


def delivery_out(row: WebhookDelivery, log: list[WebhookAttempt]) -> DeliveryOut:
    return DeliveryOut(id=row.id, webhook_id=row.message_id, event_id=row.event_id, event_type=row.event_type,
                       state=row.state, attempts=row.attempts, next_attempt_at=row.next_attempt_at,
                       last_status=row.last_status, last_error=row.last_error, created_at=row.created_at,
                       delivered_at=row.delivered_at, payload=row.payload,
                       log=[AttemptOut.model_validate(a, from_attributes=True) for a in log])


@router.post("", operation_id="webhooks_create", status_code=201, response_model=EndpointWithSecret,
             summary="Register an endpoint for some event types; the reply shows its signing secret, once",
             responses={409: {"description": "You already have the most endpoints allowed (10)"},
                        422: {"description": "Invalid fields, or a URL that cannot receive webhooks (not https, "
                                             "a user in it, a host that does not resolve or resolves to a "
                                             "loopback, private, link-local or metadata address)"}})
async def create_endpoint(session: SessionDep, owner: Owner, settings: SettingsDep, cipher: WebhookCipherDep,
                          data: EndpointCreate) -> EndpointWithSecret:
    row, secret = await service.create(session, owner.sub, data, settings=settings, cipher=cipher)
    return with_secret(row, secret)


@router.get("", operation_id="webhooks_list", response_model=Page[EndpointOut], summary="Your endpoints, newest first")
async def list_endpoints(session: SessionDep, owner: Owner, limit: LimitQuery = 20,
                         cursor: CursorQuery = None) -> Page[EndpointOut]:
    rows, next_cursor = await service.page(session, owner.sub, limit, cursor)
    return Page[EndpointOut](items=[endpoint_out(r) for r in rows], next_cursor=next_cursor)


@router.get("/{endpoint_id}", operation_id="webhooks_get",
            response_model=EndpointOut, summary="One endpoint", responses=NOT_YOURS)
async def get_endpoint(session: SessionDep, owner: Owner, endpoint_id: IdPath) -> EndpointOut:
    return endpoint_out(await service.get_owned(session, owner.sub, endpoint_id))


@router.patch("/{endpoint_id}", operation_id="webhooks_update", response_model=EndpointOut, responses=NOT_YOURS,
              summary="Change the URL, event types or description; `active: true` enables it again")
async def update_endpoint(session: SessionDep, owner: Owner, settings: SettingsDep, endpoint_id: IdPath,
                          data: EndpointUpdate) -> EndpointOut:
    row = await service.update_endpoint(session, owner.sub, endpoint_id, data, settings=settings)
    return endpoint_out(row)


@router.delete("/{endpoint_id}", operation_id="webhooks_delete",
               status_code=204, response_class=Response, responses=NOT_YOURS,
               summary="Delete the endpoint with its delivery log")
async def delete_endpoint(session: SessionDep, owner: Owner, endpoint_id: IdPath) -> Response:
    await service.delete_endpoint(session, owner.sub, endpoint_id)
    return Response(status_code=204)


@router.post("/{endpoint_id}/rotate-secret", operation_id="webhooks_rotate_secret",
             response_model=EndpointWithSecret, responses=NOT_YOURS,
             summary="A new signing secret (shown once); the old one also signs for 24 hours")
async def rotate_secret(session: SessionDep, owner: Owner, cipher: WebhookCipherDep,
                        endpoint_id: IdPath) -> EndpointWithSecret:
    row, secret = await service.rotate_secret(session, owner.sub, endpoint_id, cipher=cipher)
    return with_secret(row, secret)


@router.post("/{endpoint_id}/test", operation_id="webhooks_test", status_code=202, response_model=DeliveryOut,
             responses={**NOT_YOURS, 409: {"description": "The endpoint is disabled"}},
             summary="Send a `webhook.test` event to the endpoint now (follow it in the delivery log)")
async def send_test(session: SessionDep, owner: Owner, sender: WebhookSenderDep, endpoint_id: IdPath) -> DeliveryOut:
    delivery = await service.ping(session, owner.sub, endpoint_id)
    on_commit(session, sender.wake)
    return delivery_out(delivery, [])


@router.get("/{endpoint_id}/deliveries", operation_id="webhooks_list_deliveries",
            response_model=Page[DeliveryOut], responses=NOT_YOURS,
            summary="The endpoint's delivery log, newest first, each with its attempts")
async def list_deliveries(session: SessionDep, owner: Owner, endpoint_id: IdPath,
                          state: Annotated[DeliveryState | None, Query(description="Only these")] = None,
                          limit: LimitQuery = 20, cursor: CursorQuery = None) -> Page[DeliveryOut]:
    endpoint = await service.get_owned(session, owner.sub, endpoint_id)
    rows, next_cursor = await service.deliveries_page(session, endpoint, state, limit, cursor)
    return Page[DeliveryOut](items=[delivery_out(r, log) for r, log in rows], next_cursor=next_cursor)


@router.get("/{endpoint_id}/deliveries/{delivery_id}", operation_id="webhooks_get_delivery",
            response_model=DeliveryOut, responses=NOT_YOURS,
            summary="One delivery with its attempts")
async def get_delivery(session: SessionDep, owner: Owner, endpoint_id: IdPath, delivery_id: IdPath) -> DeliveryOut:
    _, delivery = await service.get_delivery(session, owner.sub, endpoint_id, delivery_id)
    return delivery_out(*await service.with_log(session, delivery))


@router.post("/{endpoint_id}/deliveries/{delivery_id}/redeliver", operation_id="webhooks_redeliver",
             status_code=202, response_model=DeliveryOut,
             responses={**NOT_YOURS, 409: {"description": "The endpoint is disabled"}},
             summary="Send a delivery again now, same `webhook-id`, with a fresh round of retries")
async def redeliver(session: SessionDep, owner: Owner, sender: WebhookSenderDep, endpoint_id: IdPath,
                    delivery_id: IdPath) -> DeliveryOut:
    delivery = await service.redeliver(session, owner.sub, endpoint_id, delivery_id)
    on_commit(session, sender.wake)
    return delivery_out(*await service.with_log(session, delivery))
