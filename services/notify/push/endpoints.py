"""``/api/v1/push``: the VAPID public key, and the caller's devices subscribed to Web Push."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from common.errors import ServiceUnavailable
from common.params import IdPath, StrictBody
from services.notify.deps import Grower, PushKeyDep, SessionDep, SettingsDep
from services.notify.push import service
from services.notify.push import vapid as vapid_keys
from services.notify.push.models import PushSubscription

router = APIRouter(prefix="/api/v1/push", tags=["push"])
OFF = {503: {"description": "Web Push is not configured on this server"}}


class PushKey(BaseModel):
    public_key: str = Field(description="The VAPID public key (P-256, 65 bytes, base64url): the "
                                        "`applicationServerKey` of `pushManager.subscribe`")


class SubscriptionKeys(StrictBody):
    p256dh: str = Field(min_length=80, max_length=100, description="The device's P-256 public key, base64url")
    auth: str = Field(min_length=16, max_length=30, description="The device's auth secret (16 bytes), base64url")


class SubscriptionCreate(StrictBody):
    """What ``PushSubscription.toJSON()`` gives in the browser, and a name for the device."""

    endpoint: str = Field(min_length=12, max_length=2048, description="The push service's URL for this device: "
                                                                       "`https://` on a public host")
    keys: SubscriptionKeys
    expirationTime: int | None = Field(None, description="Ignored (browsers send it, mostly null)")  # noqa: N815
    device: str = Field("", max_length=120, description="A name for the device, shown in the list")


class SubscriptionOut(BaseModel):
    id: int
    endpoint: str
    device: str
    created_at: dt.datetime
    last_sent_at: dt.datetime | None


def _key(key):
    if key is None:
        raise ServiceUnavailable("Web Push is not configured on this server")
    return key


def _out(row: PushSubscription) -> SubscriptionOut:
    return SubscriptionOut.model_validate(row, from_attributes=True)


@router.get("/key", operation_id="push_get_key", response_model=PushKey, responses=OFF,
            summary="The server's VAPID public key, to subscribe a device with")
async def get_key(key: PushKeyDep) -> PushKey:
    return PushKey(public_key=vapid_keys.public_key(_key(key)))


@router.post("/subscriptions", operation_id="push_subscribe", status_code=201, response_model=SubscriptionOut,
             responses={**OFF, 422: {"description": "Invalid keys, or an endpoint that is not https on a public host"}},
             summary="Subscribe a device: new orders and low stock are pushed to it (the same endpoint again "
                     "replaces its keys)")
async def subscribe(session: SessionDep, grower: Grower, settings: SettingsDep, key: PushKeyDep,
                    data: SubscriptionCreate) -> SubscriptionOut:
    _key(key)
    row = await service.subscribe(session, grower.sub, data.endpoint, data.keys.p256dh, data.keys.auth, data.device,
                                  settings=settings)
    return _out(row)


@router.get("/subscriptions", operation_id="push_list_subscriptions", response_model=list[SubscriptionOut],
            summary="Your subscribed devices")
async def list_subscriptions(session: SessionDep, grower: Grower) -> list[SubscriptionOut]:
    return [_out(r) for r in await service.listed(session, grower.sub)]


@router.delete("/subscriptions/{subscription_id}", operation_id="push_unsubscribe", status_code=204,
               responses={404: {"description": "No such subscription, or not yours"}},
               summary="Unsubscribe a device")
async def unsubscribe(session: SessionDep, grower: Grower, subscription_id: IdPath) -> Response:
    await service.unsubscribe(session, grower.sub, subscription_id)
    return Response(status_code=204)
