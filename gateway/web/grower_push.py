"""The desk's per-device push switch: ``static/grower.js`` asks for the VAPID public key, subscribes
the browser (``pushManager.subscribe``) and hands the subscription to notify through these routes
(the session's token, the form's CSRF token); turning it off removes this device's subscription only."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from gateway.web.core import WebRoute, call, expect
from gateway.web.forms import text
from gateway.web.grower import Grower, posted_form

router = APIRouter(prefix="/grower/push", route_class=WebRoute, include_in_schema=False)
NO_STORE = {"Cache-Control": "no-store"}


@router.get("/key")
async def push_key(request: Request, grower: Grower) -> Response:
    key = expect(await call(request, "notify", "GET", "/api/v1/push/key", auth=grower))
    return JSONResponse({"public_key": key["public_key"]}, headers=NO_STORE)


@router.post("")
async def push_on(request: Request, grower: Grower) -> Response:
    form = await posted_form(request)
    body = {"endpoint": text(form, "endpoint"), "keys": {"p256dh": text(form, "p256dh"), "auth": text(form, "auth")},
            "device": text(form, "device")[:120]}
    sub = expect(await call(request, "notify", "POST", "/api/v1/push/subscriptions", auth=grower, json=body))
    return JSONResponse({"id": sub["id"]}, status_code=201, headers=NO_STORE)


@router.post("/off")
async def push_off(request: Request, grower: Grower) -> Response:
    form = await posted_form(request)
    endpoint = text(form, "endpoint")
    subs = expect(await call(request, "notify", "GET", "/api/v1/push/subscriptions", auth=grower))
    for sub in subs:
        if sub["endpoint"] == endpoint:
            expect(await call(request, "notify", "DELETE", f"/api/v1/push/subscriptions/{sub['id']}", auth=grower))
    return Response(status_code=204, headers=NO_STORE)
