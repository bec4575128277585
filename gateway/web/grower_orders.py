"""Orders the grower takes in a call or a chat (phone, Facebook, Zalo), entered from the desk: the
shop's varieties with their quantities (the catalog applies wholesale tiers), the buyer, delivery or
pickup, the payment method. Placed through the orders service's ``POST /api/v1/orders/phone`` with
an Idempotency-Key made with the form, so a double tap or a reload is the same order."""

from __future__ import annotations

import asyncio
import re
import uuid

from fastapi import APIRouter, Request
from starlette.responses import Response

from common.vietnam import provinces, wards
from gateway.web import session
from gateway.web.core import Redirect, WebRoute, call, expect, gettext, page
from gateway.web.forms import number, text, translate_errors
from gateway.web.grower import Grower, Id, my_shop, posted_form, values_of, with_place_names
from gateway.web.public import CONSENT_PURPOSES
from gateway.web.tracking_links import share_of, tracking_of

router = APIRouter(prefix="/grower", route_class=WebRoute, include_in_schema=False)

SOURCES = ("phone", "facebook", "zalo")
PAYMENTS = ("cod", "bank_transfer")
DELIVERIES = ("ship", "pickup")


async def _on_sale(request: Request, grower: session.Session) -> list[dict]:
    found = expect(await call(request, "catalog", "GET", "/api/v1/products", auth=grower,
                              params={"mine": "true", "limit": 100}))
    return [p for p in found["items"] if p["status"] == "active" and p["variants"]]


def _form_page(request: Request, shop: dict, products: list[dict], values: dict, errors: dict,
               status: int = 200, message: str = "") -> Response:
    province = values.get("address.province_code", "")
    return page(request, "grower_new_order.html", status=status, shop=shop, products=products, values=values,
                errors=errors, message=message, provinces=provinces(),
                wards=wards(province) or [] if province else [], bank=bool(shop.get("bank_bin")),
                purposes=gettext(request)(CONSENT_PURPOSES))


async def _shop_or_setup(request: Request, grower: session.Session) -> dict:
    shop = await my_shop(request, grower)
    if shop is None:
        raise Redirect("/grower/shop")
    return shop


@router.get("/orders/new")
async def new_order_form(request: Request, grower: Grower) -> Response:
    shop = await _shop_or_setup(request, grower)
    values = {"idempotency_key": uuid.uuid4().hex, "payment_method": "cod", "delivery_method": "ship",
              "source": "phone"}
    return _form_page(request, shop, await _on_sale(request, grower), values, {})


def _body(form, shop: dict, lines: list[dict]) -> dict:
    delivery = text(form, "delivery_method") if text(form, "delivery_method") in DELIVERIES else "ship"
    address = {"province_code": text(form, "address.province_code"), "ward_code": text(form, "address.ward_code"),
               "street": text(form, "address.street")}
    if delivery == "pickup":
        address = None  # collected at the nursery: an order to pick up keeps no address, as on the web
    return {
        "lines": lines, "source": text(form, "source"),
        "contact": {"name": text(form, "contact.name"), "phone": text(form, "contact.phone"),
                    **({"email": text(form, "contact.email")} if text(form, "contact.email") else {})},
        "address": address, "payment_method": text(form, "payment_method"), "delivery_method": delivery,
        "note": text(form, "note"), "locale": "vi", "consent": True,
    }


@router.post("/orders/new")
async def place_chat_order(request: Request, grower: Grower) -> Response:
    form = await posted_form(request)
    _ = gettext(request)
    shop = await _shop_or_setup(request, grower)
    products = await _on_sale(request, grower)
    values = values_of(form)
    if text(form, "action") == "wards":  # without JavaScript: the wards of the chosen province
        return _form_page(request, shop, products, values, {})
    errors: dict[str, str] = {}
    lines, line_fields = [], []
    for product in products:
        for v in product["variants"]:
            name = f"qty.{v['id']}"
            quantity = number(form, name, errors, _("Enter a whole number"), blank=0)
            if quantity:
                lines.append({"variant_id": v["id"], "quantity": quantity})
                line_fields.append(name)
    if not lines and not errors:
        errors["lines"] = _("Choose the varieties and how many")
    for name, allowed in (("source", SOURCES), ("payment_method", PAYMENTS)):
        if text(form, name) not in allowed:
            errors[name] = _("Choose one of the options")
    if form.get("consent") != "yes":
        errors["consent"] = _("Ask the buyer, then tick the box: without it the order cannot be kept")
    key = text(form, "idempotency_key")
    if not (8 <= len(key) <= 64):
        key = values["idempotency_key"] = uuid.uuid4().hex
    if errors:
        return _form_page(request, shop, products, values, errors, 422, _("Please check the marked fields"))
    body = _body(form, shop, lines)
    for _attempt in range(20):  # the same key still in flight (a double tap): wait for its reply
        reply = await call(request, "orders", "POST", "/api/v1/orders/phone", json=body, auth=grower,
                           headers={"Idempotency-Key": key})
        if not (reply.status == 409 and "in-flight" in str((reply.data or {}).get("type", ""))):
            break
        await asyncio.sleep(0.25)
    if reply.ok:
        return _created_page(request, reply.data)
    if reply.status >= 500 or reply.status in (401, 403, 429):
        expect(reply)
    errors = translate_errors(request, (reply.data or {}).get("errors"), {})
    for i, name in enumerate(line_fields):  # lines[0].quantity → the variant's own field
        for suffix in (".quantity", ".variant_id", ""):
            if f"lines[{i}]{suffix}" in errors:
                errors[name] = errors.pop(f"lines[{i}]{suffix}")
    values["idempotency_key"] = uuid.uuid4().hex  # nothing was placed: another try is another order
    if str((reply.data or {}).get("type", "")).endswith("/out-of-stock"):
        message = _("Not enough stock for this order: lower the quantity")
    elif errors:
        message = _("Please check the marked fields")
    else:
        message = reply.detail or _("The order could not be placed")
    return _form_page(request, shop, products, values, errors, 409 if reply.status == 409 else 422, message)


def _created_page(request: Request, order: dict) -> Response:
    """The new order with its tracking link to send the buyer (also on the order's page later: the
    orders service keeps it); reloading sends the same key and shows the same order."""
    share = share_of(request, order, order["tracking_url"])
    return page(request, "grower_order_created.html", status=201, order=with_place_names(order),
                tracking_url=share["url"], sms=share["sms"], zalo=share["zalo"], greeting=share["greeting"])


@router.post("/orders/{order_id}/tracking-mail")
async def mail_tracking_link(request: Request, grower: Grower, order_id: Id) -> Response:
    """Email the buyer their tracking link again (to the order's email), through notify."""
    form = await posted_form(request)
    _ = gettext(request)
    key = text(form, "mail_key")
    headers = {"Idempotency-Key": key} if re.fullmatch(r"[0-9a-f]{32}", key) else {}
    reply = await call(request, "orders", "POST", f"/api/v1/orders/{order_id}/tracking-link/mail", auth=grower,
                       headers=headers)
    if reply.ok:
        raise Redirect(f"/grower/orders/{order_id}?mailed=1")
    if reply.status == 409:
        no_email = str((reply.data or {}).get("type", "")).endswith("/no-buyer-email")
        return await _order_page(request, grower, order_id, {}, {}, status=409, message=_(
            "The buyer gave no email for this order: send the link by SMS or Zalo") if no_email else _(
            "This order's tracking link was not kept: it cannot be emailed"))
    if reply.status == 503:
        return await _order_page(request, grower, order_id, {}, {}, status=503, message=_(
            "The email could not be sent now: try again in a moment, or send the link by SMS or Zalo"))
    expect(reply)
    raise Redirect(f"/grower/orders/{order_id}")


# ---- the carrier and tracking code --------------------------------------------------------------------

CARRIERS = ("ghn", "ghtk", "viettel_post", "jt", "vnpost", "other")
TRACKING_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{2,39}")  # as the orders service takes it


@router.post("/orders/{order_id}/shipment")
async def set_shipment(request: Request, grower: Grower, order_id: Id) -> Response:
    """Ship a confirmed order with its carrier and tracking code (``ship=yes``), or set them on one
    already shipped; the orders service keeps them and the buyer's link shows the carrier's page."""
    form = await posted_form(request)
    _ = gettext(request)
    carrier, code = text(form, "carrier"), text(form, "tracking_code")
    errors: dict[str, str] = {}
    if carrier not in CARRIERS:
        errors["carrier"] = _("Choose one of the options")
    if code and not TRACKING_CODE.fullmatch(code):  # checked before the move: a bad code ships nothing
        errors["tracking_code"] = _("A tracking code is 3 to 40 letters, digits, dots, dashes or underscores")
    if errors:
        return await _order_page(request, grower, order_id, errors, {"carrier": carrier, "tracking_code": code})
    if form.get("ship") == "yes":
        moved = await call(request, "orders", "POST", f"/api/v1/orders/{order_id}/ship", auth=grower)
        if moved.status == 409:  # someone else moved it first: show it as it is now
            raise Redirect(f"/grower/orders/{order_id}")
        expect(moved)
    body = {"carrier": carrier, **({"tracking_code": code} if code else {})}
    reply = await call(request, "orders", "PUT", f"/api/v1/orders/{order_id}/shipment", json=body, auth=grower)
    if reply.status == 422:
        errors = {"tracking_code": _("A tracking code is 3 to 40 letters, digits, dots, dashes or underscores")}
        return await _order_page(request, grower, order_id, errors, {"carrier": carrier, "tracking_code": code})
    expect(reply)
    raise Redirect(f"/grower/orders/{order_id}")


async def _order_page(request: Request, grower: session.Session, order_id: int, errors: dict[str, str],
                      values: dict[str, str], message: str = "", status: int = 422) -> Response:
    order = expect(await call(request, "orders", "GET", f"/api/v1/orders/{order_id}", auth=grower))
    return page(request, "grower_order.html", status=status, order=with_place_names(order),
                **await tracking_of(request, grower, order),
                errors=errors, values=values, message=message or gettext(request)("Please check the marked fields"))
