"""The buyer's cart, across varieties and shops, kept in a cookie (so it survives a reload and needs no
JavaScript, nor an account): ``/cart`` shows it by shop with each line's price (retail or wholesale as
the quantity goes), each shop's minimum and delivery fee and one total; checking out places one order
per shop through the API's checkout, all reserved or none (docs/decisions/0012)."""

from __future__ import annotations

import asyncio
import re
import uuid
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from starlette.responses import Response

from common.errors import Forbidden
from common.vietnam import provinces
from gateway import deps
from gateway.web import core, placed, session
from gateway.web.core import Redirect, WebRoute, call, gettext, page
from gateway.web.forms import WHOLE, text, translate_errors
from gateway.web.i18n import N_, money
from gateway.web.places import sorted_wards
from gateway.web.public import BELOW_MINIMUM, CONSENT_PURPOSES, WHOLE_QUANTITY, buyer_errors, buyer_fields, place

router = APIRouter(route_class=WebRoute, include_in_schema=False)

CART_COOKIE = "cv_cart"
MAX_LINES = 50
_ITEM = re.compile(r"(\d{1,10})\.(\d{1,10})\.(\d{1,7})")


def read_cart(request: Request) -> dict[tuple[int, int], int]:
    """``{(product_id, variant_id): quantity}`` from the cookie; anything malformed is dropped."""
    out: dict[tuple[int, int], int] = {}
    for item in request.cookies.get(CART_COOKIE, "").split("-")[:MAX_LINES]:
        found = _ITEM.fullmatch(item)
        if found and int(found.group(3)) > 0:
            out[(int(found.group(1)), int(found.group(2)))] = int(found.group(3))
    return out


def _with_cart(request: Request, response: Response, cart: dict[tuple[int, int], int]) -> Response:
    value = "-".join(f"{p}.{v}.{q}" for (p, v), q in list(cart.items())[:MAX_LINES] if q > 0)
    if value:
        response.set_cookie(CART_COOKIE, value, max_age=30 * 24 * 3600, path="/", samesite="lax", httponly=True,
                            secure=deps.settings(request).environment != "development")
    else:
        response.delete_cookie(CART_COOKIE, path="/")
    return response


def _same_site(request: Request) -> None:
    """The product pages are public (no CSRF token in them), so adding to the cart checks where the
    form came from instead: the browser's Origin (or Sec-Fetch-Site) must be this site."""
    site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    if site in ("same-origin", "none") or (origin and urlsplit(origin).netloc == request.url.netloc):
        return
    if site is None and origin is None:  # an old browser sends neither
        return
    raise Forbidden(session.RESEND)


def unit_price(variant: dict, quantity: int) -> tuple[int, str]:
    unit, kind = variant["retail_price"], "retail"
    for tier in variant.get("wholesale_tiers") or []:
        if quantity >= tier["min_quantity"]:
            unit, kind = tier["unit_price"], "wholesale"
    return unit, kind


async def _priced(request: Request, cart: dict[tuple[int, int], int]) -> list[dict]:
    """The cart by shop: ``[{shop, lines: [{product, variant, quantity, unit, kind, total}], subtotal, fee,
    below_min}]``; a variety no longer on sale is left out."""
    ids = sorted({p for p, _ in cart})
    replies = await asyncio.gather(*(call(request, "catalog", "GET", f"/api/v1/products/{p}") for p in ids))
    products = {p: r.data for p, r in zip(ids, replies, strict=True) if r.ok}
    shop_ids = sorted({p["shop_id"] for p in products.values()})
    shop_replies = await asyncio.gather(*(call(request, "catalog", "GET", f"/api/v1/shops/{s}") for s in shop_ids))
    shops = {s: r.data for s, r in zip(shop_ids, shop_replies, strict=True) if r.ok}
    groups: dict[int, dict] = {}
    for (pid, vid), quantity in cart.items():
        product = products.get(pid)
        variant = next((v for v in (product or {}).get("variants", []) if v["id"] == vid), None)
        if variant is None or product["shop_id"] not in shops:
            continue
        unit, kind = unit_price(variant, quantity)
        group = groups.setdefault(product["shop_id"], {"shop": shops[product["shop_id"]], "lines": []})
        group["lines"].append({"product": product, "variant": variant, "quantity": quantity, "unit": unit,
                               "kind": kind, "total": unit * quantity, "name": f"q.{pid}.{vid}"})
    for group in groups.values():
        delivery = group["shop"]["delivery"]
        group["subtotal"] = sum(line["total"] for line in group["lines"])
        free = delivery.get("free_above") is not None and group["subtotal"] >= delivery["free_above"]
        group["fee"] = 0 if free else delivery.get("flat_fee") or 0
        group["below_min"] = max(0, group["shop"]["min_order_value"] - group["subtotal"])
    return list(groups.values())


def _context(request: Request, groups: list[dict], values: dict, errors: dict[str, str], message: str = "") -> dict:
    province = values.get("address.province_code", "")
    return {"groups": groups, "values": values, "errors": errors, "message": message,
            "total": sum(g["subtotal"] + g["fee"] for g in groups), "provinces": provinces(),
            "wards": sorted_wards(province) if province else [],
            "pickup": bool(groups) and all(g["shop"]["delivery"].get("pickup") for g in groups),
            "bank": bool(groups) and all(g["shop"].get("bank_name") for g in groups),
            "purposes": gettext(request)(CONSENT_PURPOSES)}


@router.post("/cart/add")
async def add_to_cart(request: Request) -> Response:
    _same_site(request)
    form = await request.form()
    product_id, variant, qty = text(form, "product_id"), text(form, "variant"), text(form, "qty") or "1"
    if not (product_id.isdigit() and variant.isdigit() and WHOLE.fullmatch(qty)) or int(qty) < 1:
        raise Redirect(f"/p/{product_id}/order?variant={variant}&qty={qty}" if product_id.isdigit() else "/cart")
    cart = read_cart(request)
    key = (int(product_id), int(variant))
    cart[key] = min(cart.get(key, 0) + int(qty), 1_000_000)
    return _with_cart(request, core.redirect(request, "/cart?added=1"), cart)


@router.get("/cart")
async def cart_page(request: Request, added: str | None = None) -> Response:
    groups = await _priced(request, read_cart(request))
    values = {"idempotency_key": uuid.uuid4().hex, "payment_method": "cod", "delivery_method": "ship"}
    message = gettext(request)(ADDED) if added and groups else ""
    return page(request, "cart.html", **_context(request, groups, values, {}, message))


ADDED = N_("Added to your cart. Add more from any shop, then order once.")


@router.post("/cart")
async def cart_checkout(request: Request) -> Response:
    form = await request.form()
    session.check_csrf(request, text(form, session.CSRF_FIELD))
    _ = gettext(request)
    cart, errors = read_cart(request), {}
    values = {k: v for k, v in form.items() if isinstance(v, str) and k != session.CSRF_FIELD}
    for (pid, vid) in list(cart):  # the quantities as they stand in the form ("0" removes a line)
        name = f"q.{pid}.{vid}"
        typed = text(form, name)
        if name not in form:
            continue
        if not WHOLE.fullmatch(typed or "0"):
            errors[name] = _(WHOLE_QUANTITY)
        else:
            cart[(pid, vid)] = int(typed or 0)
    cart = {k: q for k, q in cart.items() if q > 0}
    action = text(form, "action")
    if action in ("update", "wards") or errors:
        groups = await _priced(request, cart)
        status = 422 if errors else 200
        message = _("Please check the marked fields") if errors else ""
        response = page(request, "cart.html", status=status, **_context(request, groups, values, errors, message))
        return _with_cart(request, response, cart) if not errors else response
    groups = await _priced(request, cart)
    delivery = text(form, "delivery_method") or "ship"
    if not groups:
        errors["lines"] = _("Choose how many you want")
    errors.update(buyer_errors(form, delivery, _))
    for group in groups:
        if group["below_min"]:
            errors[f"shop.{group['shop']['id']}"] = _(BELOW_MINIMUM) % {
                "amount": money(group["shop"]["min_order_value"], core.locale_of(request))}
    if errors:
        return page(request, "cart.html", status=422,
                    **_context(request, groups, values, errors, _("Please check the marked fields")))
    lines = [{"variant_id": line["variant"]["id"], "quantity": line["quantity"]} for g in groups for line in g["lines"]]
    key = text(form, "idempotency_key")
    if not (8 <= len(key) <= 64):
        key = uuid.uuid4().hex
    reply = await place(request, "/api/v1/checkouts", {"lines": lines, **buyer_fields(request, form, delivery)}, key)
    if reply.ok:
        orders = [{**o, "token": urlsplit(o["tracking_url"]).path.rsplit("/", 1)[-1]} for o in reply.data["orders"]]
        response = placed.remember(request, page(request, "cart_done.html", orders=orders, total=reply.data["total"]),
                                   [o["token"] for o in orders])
        return _with_cart(request, response, {})
    if reply.status >= 500 or reply.status in (401, 403, 429):
        core.expect(reply)
    errors = translate_errors(request, (reply.data or {}).get("errors"), {})
    values["idempotency_key"] = uuid.uuid4().hex
    if str((reply.data or {}).get("type", "")).endswith("/out-of-stock"):
        message = _("Not enough stock for this order: lower the quantity")
    else:
        message = _("Please check the marked fields") if errors else reply.detail or _("The order could not be placed")
    return page(request, "cart.html", status=422 if reply.status == 422 else 409,
                **_context(request, groups, values, errors, message))
