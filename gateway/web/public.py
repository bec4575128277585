"""The buyer's pages, reached from a shared link: the shop ``/s/{slug}``, a variety ``/p/{id}``, the
order form ``/p/{id}/order`` (as a guest) and the tracking page ``/t/{token}``."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from common.errors import NotFound
from common.vietnam import province_name, provinces, ward_name
from gateway import deps
from gateway.web import core, placed, session
from gateway.web.core import Redirect, WebRoute, call, expect, gettext, page
from gateway.web.forms import WHOLE, text, translate_errors, whole
from gateway.web.i18n import LANG_COOKIE, LOCALES, N_, money
from gateway.web.places import sorted_wards

router = APIRouter(route_class=WebRoute, include_in_schema=False)

Slug = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{1,58}[a-z0-9]$")]
ProductId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Token = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{16,64}$")]


def safe_next(value: str | None) -> str:
    """Only a path on this site: never ``//elsewhere`` or ``https://elsewhere``."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


@router.get("/lang/{code}")
async def switch_language(request: Request, code: str, next: str | None = None) -> Response:
    if code not in LOCALES:
        raise NotFound("No such language")
    response = core.redirect(request, safe_next(next))
    response.set_cookie(LANG_COOKIE, code, max_age=365 * 24 * 3600, path="/", samesite="lax",
                        secure=deps.settings(request).environment != "development")
    return response


HOME_PAGE_SIZE = 20


@router.get("/")
async def home(request: Request, q: Annotated[str | None, Query(max_length=200)] = None,
               province: Annotated[str | None, Query(max_length=2)] = None,
               min_price: Annotated[str | None, Query(max_length=15)] = None,
               max_price: Annotated[str | None, Query(max_length=15)] = None,
               in_stock: Annotated[str | None, Query(max_length=3)] = None,
               wholesale: Annotated[str | None, Query(max_length=3)] = None,
               cursor: Annotated[str | None, Query(max_length=500)] = None) -> Response:
    """Varieties from every shop, newest first (or by relevance with ``q``), 20 a page, filtered by
    the shop's province, a price range, stock and a wholesale price; each card names its shop and province."""
    _ = gettext(request)
    errors: dict[str, str] = {}
    filters: dict[str, str] = {}
    if q:
        filters["q"] = q
    if province and province_name(province):
        filters["province"] = province
    for name, raw in (("min_price", min_price), ("max_price", max_price)):
        typed = (raw or "").replace(".", "").replace(" ", "").replace("₫", "")
        if typed.isdigit() and len(typed) <= 12:
            filters[name] = typed
        elif typed:
            errors[name] = _("Enter a whole number")
    if in_stock:
        filters["in_stock"] = "1"
    if wholesale:
        filters["wholesale"] = "1"
    params = {"limit": HOME_PAGE_SIZE, **{k: v for k, v in filters.items() if k in ("q", "min_price", "max_price")},
              **({"province_code": filters["province"]} if "province" in filters else {}),
              **({"in_stock": "true"} if "in_stock" in filters else {}),
              **({"wholesale": "true"} if "wholesale" in filters else {}), **({"cursor": cursor} if cursor else {})}
    reply = await call(request, "catalog", "GET", "/api/v1/products", params=params)
    if reply.status == 422 and cursor:  # a cursor from an old link: the first page instead
        raise Redirect("/" + ("?" + urlencode(filters) if filters else ""))
    found = expect(reply)
    shops = await _shops_of(request, found["items"])
    suggestions = []
    if not found["items"] and filters:  # nothing: the newest varieties, as something to look at
        suggestions = expect(await call(request, "catalog", "GET", "/api/v1/products", params={"limit": 6}))["items"]
        shops |= await _shops_of(request, suggestions)
    next_url = "/?" + urlencode({**filters, "cursor": found["next_cursor"]}) if found.get("next_cursor") else None
    return page(request, "home.html", public=True, products=found["items"], q=q or "", filters=filters,
                errors=errors, shops=shops, provinces=provinces(), next_url=next_url, suggestions=suggestions,
                paged=bool(cursor))


async def _shops_of(request: Request, products: list[dict]) -> dict[int, dict]:
    """The shops of these varieties (their names and provinces on the cards), asked in parallel."""
    ids = sorted({p["shop_id"] for p in products})
    replies = await asyncio.gather(*(call(request, "catalog", "GET", f"/api/v1/shops/{i}") for i in ids))
    return {i: r.data for i, r in zip(ids, replies, strict=True) if r.ok}


async def find_shop(request: Request, slug: str) -> dict:
    """The shop at ``/s/{slug}`` (the catalog's ``GET /api/v1/shops?slug=``)."""
    data = expect(await call(request, "catalog", "GET", "/api/v1/shops", params={"slug": slug, "limit": 1}))
    if not data["items"]:
        raise NotFound("No such shop")
    return data["items"][0]


@router.get("/s/{slug}")
async def shop_page(request: Request, slug: Slug) -> Response:
    shop = await find_shop(request, slug)
    found = expect(await call(request, "catalog", "GET", "/api/v1/products",
                              params={"shop_id": shop["id"], "limit": 100}))
    return page(request, "shop.html", public=True, shop=shop, products=found["items"],
                share_url=shop["url"])


async def _product_and_shop(request: Request, product_id: int) -> tuple[dict, dict]:
    product = expect(await call(request, "catalog", "GET", f"/api/v1/products/{product_id}"))
    shop = expect(await call(request, "catalog", "GET", f"/api/v1/shops/{product['shop_id']}"))
    return product, shop


@router.get("/p/{product_id}")
async def product_page(request: Request, product_id: ProductId) -> Response:
    product, shop = await _product_and_shop(request, product_id)
    return page(request, "product.html", public=True, product=product, shop=shop, share_url=product["url"])


# ---- ordering as a guest -------------------------------------------------------------------------------

def _order_context(request: Request, product: dict, shop: dict, values: dict, errors: dict[str, str],
                   message: str = "") -> dict:
    province = values.get("address.province_code", "")
    return {"product": product, "shop": shop, "values": values, "errors": errors, "message": message,
            "provinces": provinces(), "wards": sorted_wards(province) if province else [],
            "bank": bool(shop.get("bank_name")), "purposes": gettext(request)(CONSENT_PURPOSES)}


CONSENT_PURPOSES = N_(
    "Chợ Vườn and the shop use your name, phone, email and address to deliver this order, to tell you "
    "about it, and to keep the shop's sales records (required by law). Nothing is used for advertising.")


BELOW_MINIMUM = N_("This shop's minimum order is %(amount)s of goods (delivery not counted): add a little more")
WHOLE_QUANTITY = N_("Quantities are whole numbers (1, 2, 3…), with no comma or dot")
ADDRESS_FIELDS = ("address.province_code", "address.ward_code", "address.street")


@router.get("/p/{product_id}/order")
async def order_form(request: Request, product_id: ProductId,
                     variant: Annotated[int | None, Query(ge=1)] = None,
                     qty: Annotated[str | None, Query(max_length=20)] = None) -> Response:
    product, shop = await _product_and_shop(request, product_id)
    values: dict[str, str] = {"idempotency_key": uuid.uuid4().hex, "payment_method": "cod",
                              "delivery_method": "ship"}
    errors: dict[str, str] = {}
    chosen = variant or (product["variants"][0]["id"] if len(product["variants"]) == 1 else None)
    for v in product["variants"]:
        if v["id"] == chosen:
            name = f"qty.{v['id']}"
            typed = (qty or "").strip()
            if typed and not WHOLE.fullmatch(typed):  # "1.5" on the variety's page: said, not guessed
                values[name], errors[name] = typed, gettext(request)(WHOLE_QUANTITY)
            else:
                values[name] = str(max(int(typed or 0), v["min_order_quantity"]))
    return page(request, "order.html", **_order_context(request, product, shop, values, errors))


@router.post("/p/{product_id}/order")
async def place_order(request: Request, product_id: ProductId) -> Response:
    form = await request.form()
    session.check_csrf(request, text(form, session.CSRF_FIELD))
    _ = gettext(request)
    product, shop = await _product_and_shop(request, product_id)
    values = {k: v for k, v in form.items() if isinstance(v, str) and k != session.CSRF_FIELD}
    errors: dict[str, str] = {}
    if text(form, "action") == "wards":  # without JavaScript: the wards of the chosen province
        return page(request, "order.html", **_order_context(request, product, shop, values, errors))
    lines, line_fields = [], []
    for v in product["variants"]:
        name = f"qty.{v['id']}"
        quantity = whole(form, name, errors, _(WHOLE_QUANTITY), blank=0)
        if quantity:
            lines.append({"variant_id": v["id"], "quantity": quantity})
            line_fields.append(name)
    if not lines and not errors:
        errors["lines"] = _("Choose how many you want")
    delivery = text(form, "delivery_method") or "ship"
    errors.update(buyer_errors(form, delivery, _))
    key = text(form, "idempotency_key")
    if not (8 <= len(key) <= 64):
        key = uuid.uuid4().hex
        values["idempotency_key"] = key
    if errors:
        return page(request, "order.html", status=422,
                    **_order_context(request, product, shop, values, errors, _("Please check the marked fields")))
    body = {"shop_id": shop["id"], "lines": lines, **buyer_fields(request, form, delivery)}
    reply = await place(request, "/api/v1/orders", body, key)
    if reply.ok:
        token = urlsplit(reply.data["tracking_url"]).path.rsplit("/", 1)[-1]
        return placed.remember(request, core.redirect(request, f"/t/{token}"), [token])
    errors = translate_errors(request, (reply.data or {}).get("errors"), {})
    if "address" in errors:  # no address at all: shown by its first field
        errors.setdefault("address.province_code", errors.pop("address"))
    for i, name in enumerate(line_fields):  # lines[0].quantity → the variant's own field
        for suffix in (".quantity", ".variant_id", ""):
            if f"lines[{i}]{suffix}" in errors:
                errors[name] = errors.pop(f"lines[{i}]{suffix}")
    if reply.status >= 500 or reply.status in (401, 403, 404, 429):
        expect(reply)
    values["idempotency_key"] = uuid.uuid4().hex  # nothing was placed: another try is another order
    if any(e.get("type") == "below_min_order_value" for e in (reply.data or {}).get("errors") or []):
        errors["lines"] = _(BELOW_MINIMUM) % {"amount": money(shop["min_order_value"], core.locale_of(request))}
    if str((reply.data or {}).get("type", "")).endswith("/out-of-stock"):
        message = _("Not enough stock for this order: lower the quantity")
    elif "lines" in errors and len(errors) == 1:
        message = errors["lines"]
    elif errors:
        message = _("Please check the marked fields")
    else:
        message = reply.detail or _("The order could not be placed")
    return page(request, "order.html", status=422 if reply.status == 422 else 409 if reply.status == 409 else 400,
                **_order_context(request, product, shop, values, errors, message))


def buyer_errors(form, delivery: str, _) -> dict[str, str]:
    """What the buyer's part of an order or checkout form lacks (the part :func:`buyer_fields` reads): the
    address, unless collecting at the nursery, and the consent."""
    errors = {}
    if delivery != "pickup":
        errors.update({name: _("This field is required") for name in ADDRESS_FIELDS if not text(form, name)})
    if form.get("consent") != "yes":
        errors["consent"] = _("Tick the box to agree, or we cannot deliver")
    return errors


def buyer_fields(request: Request, form, delivery: str) -> dict:
    """The contact, delivery, payment, note and consent of an order or checkout, from the form; no
    address when collecting at the nursery."""
    email = text(form, "contact.email")
    body = {"contact": {"name": text(form, "contact.name"), "phone": text(form, "contact.phone"),
                        **({"email": email} if email else {})},
            "payment_method": text(form, "payment_method") or "cod", "delivery_method": delivery,
            "note": text(form, "note"), "locale": core.locale_of(request), "consent": True}
    if delivery != "pickup":
        body["address"] = {name.removeprefix("address."): text(form, name) for name in ADDRESS_FIELDS}
    return body


async def place(request: Request, path: str, body: dict, key: str) -> core.Upstream:
    """POST an order or a checkout with its Idempotency-Key, within the per-address limit; the same
    key still in flight (a double tap) is waited for, so both taps get the one reply."""
    await deps.limits(request).check("order-ip", request.client.host if request.client else "unknown")
    for _attempt in range(20):
        reply = await call(request, "orders", "POST", path, json=body, headers={"Idempotency-Key": key})
        if not (reply.status == 409 and "in-flight" in str((reply.data or {}).get("type", ""))):
            break
        await asyncio.sleep(0.25)
    return reply


@router.get("/t/{token}")
async def tracking_page(request: Request, token: Token) -> Response:
    order = expect(await call(request, "orders", "GET", f"/api/v1/tracking/{token}"))
    qr = None
    if order["payment_method"] == "bank_transfer" and order["payment_status"] != "paid" \
            and order["status"] != "cancelled":
        reply = await call(request, "orders", "GET", f"/api/v1/tracking/{token}/payment-qr")
        if reply.ok:
            qr = reply.data
            qr["img"] = f"/api/v1/tracking/{token}/payment-qr?format=svg"
    found = await call(request, "catalog", "GET", f"/api/v1/shops/{order['shop_id']}")
    shop = found.data if found.ok else None  # the shop's contact as it is now; the page stands without it
    # The receiver's phone and street in full only for the browser that placed the order (placed.py).
    mine = placed.placed_here(request, token)
    where = order.get("address") or {}
    code = where.get("province_code", "")
    address = ", ".join(p for p in (where.get("street") if mine else None, ward_name(code, where.get("ward_code", "")),
                                    province_name(code)) if p)
    phone = order["contact"]["phone"]
    tracking_url = f"{deps.settings(request).public_base_url}/t/{token}"
    response = page(request, "tracking.html", order=order, qr=qr, token=token, shop=shop, address=address,
                    tracking_url=tracking_url, mine=mine, receiver_phone=phone if mine else placed.masked_phone(phone))
    response.headers["Referrer-Policy"] = "no-referrer"  # the link is the secret
    return response
