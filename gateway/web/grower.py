"""The grower's pages under ``/grower/``: sign up, sign in, the shop, varieties with photos, the order
desk (live), an order's moves, and the packing list."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import httpx
from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import ValidationError
from starlette.background import BackgroundTask
from starlette.datastructures import FormData, UploadFile
from starlette.responses import Response, StreamingResponse

from common.errors import NotFound, Problem
from common.vietnam import BANKS, VN_TZ, province_name, provinces, ward_name, wards
from gateway import deps
from gateway.identity import service as identity
from gateway.identity.schemas import Registration
from gateway.web import session
from gateway.web.core import Redirect, WebRoute, call, expect, gettext, page
from gateway.web.forms import number, text, translate_errors
from gateway.web.public import safe_next
from gateway.web.tracking_links import links_of, qr_svg, tracking_of

router = APIRouter(prefix="/grower", route_class=WebRoute, include_in_schema=False)

CATEGORIES = ("water_lily", "lotus", "aquatic", "seedling", "supplies", "other")
ACTIONS = ("confirm", "ship", "deliver", "cancel", "mark-paid")
MAX_PHOTOS_PER_FORM = 10
VARIANT_ROWS_SPARE = 1
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]


class PhotosTooLarge(Problem):
    status, slug, title = 413, "payload-too-large", "The request body is too large"


async def signed_in_grower(request: Request) -> session.Session:
    found = await session.current(request)
    if found is None or found.principal.role != "grower":
        raise Redirect(f"/grower/login?next={request.url.path}")
    return found


Grower = Annotated[session.Session, Depends(signed_in_grower)]


async def posted_form(request: Request, max_files: int = 0) -> FormData:
    limit = deps.settings(request).max_upload_bytes * (3 if max_files else 1)
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        _ = gettext(request)
        raise PhotosTooLarge(_("The photos are too large: send fewer at a time"), limit=limit)
    form = await request.form(max_files=max_files, max_fields=400)
    session.check_csrf(request, text(form, session.CSRF_FIELD))
    return form


def values_of(form: FormData) -> dict[str, str]:
    return {k: v for k, v in form.items() if isinstance(v, str) and k != session.CSRF_FIELD}


# ---- sign up, sign in, sign out -------------------------------------------------------------------------

@router.get("/signup")
async def signup_form(request: Request) -> Response:
    return page(request, "signup.html", values={}, errors={})


@router.post("/signup")
async def signup(request: Request) -> Response:
    form = await posted_form(request)
    _ = gettext(request)
    values = values_of(form)
    values.pop("password", None)
    await deps.limits(request).check("register-ip", request.client.host if request.client else "unknown")
    try:
        data = Registration(role="grower", name=text(form, "name"), phone=text(form, "phone"),
                            password=form.get("password") or "", email=text(form, "email") or None,
                            locale="en" if request.cookies.get("cv_lang") == "en" else "vi")
    except ValidationError as exc:
        errors = translate_errors(request, [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"],
                                             "type": e["type"]} for e in exc.errors()], {})
        return page(request, "signup.html", status=422, values=values, errors=errors)
    async with deps.database(request).unit_of_work() as db:
        try:
            account = await identity.register(db, data)
        except Problem as exc:
            if exc.status == 409:
                errors = {"phone": _("An account with this phone number or email already exists; sign in instead")}
            else:
                errors = {"password": _("Choose a longer password that is hard to guess")}
            return page(request, "signup.html", status=exc.status, values=values, errors=errors)
        pair = await identity.issue_tokens(db, account, signer=deps.signer(request),
                                           refresh_ttl=deps.settings(request).refresh_ttl)
    session.start(request, pair)
    raise Redirect("/grower/shop")


@router.get("/login")
async def login_form(request: Request, next: str | None = None, reset: int | None = None) -> Response:
    _ = gettext(request)
    notice = _("Your password is changed, and every other sign-in ended. Sign in with it now.")
    return page(request, "login.html", values={"next": safe_next(next)}, errors={}, notice=notice if reset else "")


@router.post("/login")
async def login(request: Request) -> Response:
    form = await posted_form(request)
    _ = gettext(request)
    login_name, password = text(form, "login"), str(form.get("password") or "")
    values = {"login": login_name, "next": safe_next(text(form, "next"))}
    if not login_name or not password:
        return page(request, "login.html", status=422, values=values,
                    errors={"login" if not login_name else "password": _("This field is required")})
    ip = request.client.host if request.client else "unknown"
    limits = deps.limits(request)
    await limits.check("login-ip", ip)
    await limits.check("login-account", identity.login_key(login_name))
    async with deps.database(request).unit_of_work() as db:
        try:
            account = await identity.authenticate(db, login_name, password)
        except Problem:
            return page(request, "login.html", status=401, values=values,
                        message=_("Wrong phone number, email or password"), errors={})
        pair = await identity.issue_tokens(db, account, signer=deps.signer(request),
                                           refresh_ttl=deps.settings(request).refresh_ttl)
    session.start(request, pair)
    next_page = values["next"] if values["next"] != "/" else "/grower/"
    raise Redirect(next_page if account.role == "grower" else "/")


@router.post("/logout")
async def logout(request: Request) -> Response:
    await posted_form(request)
    found = await session.current(request)
    if found is not None:
        async with deps.database(request).unit_of_work() as db:
            await identity.logout(db, found.refresh_token, found.principal.sub)
    session.end(request)
    raise Redirect("/")


# ---- the shop ------------------------------------------------------------------------------------------

async def my_shop(request: Request, grower: session.Session) -> dict | None:
    reply = await call(request, "catalog", "GET", "/api/v1/shops/mine", auth=grower)
    if reply.status == 404:
        return None
    return expect(reply)


def _shop_values(shop: dict) -> dict[str, str]:
    delivery = shop.get("delivery") or {}
    return {
        "name": shop["name"], "description": shop.get("description", ""), "province_code": shop["province_code"],
        "ward_code": shop["ward_code"], "street": shop["street"], "phone": _local_phone(shop["phone"]),
        "zalo_phone": _local_phone(shop.get("zalo_phone") or ""), "slug": shop["slug"],
        "delivery.pickup": "yes" if delivery.get("pickup") else "",
        "delivery.flat_fee": _amount(delivery.get("flat_fee")),
        "delivery.free_above": _amount(delivery.get("free_above")),
        "min_order_value": _amount(shop.get("min_order_value") or None), "bank.bin": shop.get("bank_bin") or "",
        "bank.holder": shop.get("bank_holder") or "",
        **{f"delivery.fee.{code}": _amount(fee) for code, fee in (delivery.get("fee_by_province") or {}).items()},
    }


def _province_fees(form: FormData, errors: dict[str, str], message: str) -> dict[str, int]:
    """``delivery.fee.{code}``: a province's own fee; left empty, the province pays the flat fee."""
    fees = {}
    for province in provinces():
        fee = number(form, f"delivery.fee.{province['code']}", errors, message)
        if fee is not None:
            fees[province["code"]] = fee
    return fees


def _local_phone(e164: str) -> str:
    return "0" + e164[3:] if e164.startswith("+84") else e164


def _str(value) -> str:
    return "" if value is None else str(value)


def _amount(value: int | None) -> str:
    """An amount as the form shows it, grouped as Vietnamese write it: ``500.000`` (``number`` reads it back)."""
    return "" if value is None else f"{value:,}".replace(",", ".")


def _shop_page(request: Request, shop: dict | None, values: dict, errors: dict, status: int = 200,
               message: str = "") -> Response:
    province = values.get("province_code", "")
    fees_open = any(k.startswith("delivery.fee.") and (v or k in errors) for k, v in values.items())
    return page(request, "grower_shop.html", status=status, shop=shop, values=values, errors=errors,
                message=message, provinces=provinces(), fees_open=fees_open,
                wards=wards(province) or [] if province else [], banks=sorted(BANKS.items(), key=lambda b: b[1]))


@router.get("/shop")
async def shop_form(request: Request, grower: Grower) -> Response:
    shop = await my_shop(request, grower)
    values = _shop_values(shop) if shop else {"delivery.pickup": "yes"}
    return _shop_page(request, shop, values, {})


@router.post("/shop")
async def save_shop(request: Request, grower: Grower) -> Response:
    form = await posted_form(request)
    _ = gettext(request)
    shop = await my_shop(request, grower)
    values = values_of(form)
    if text(form, "action") == "wards":
        return _shop_page(request, shop, values, {})
    errors: dict[str, str] = {}
    money_message = _("Enter an amount in đồng, e.g. 30000")
    delivery = {"pickup": form.get("delivery.pickup") == "yes",
                "flat_fee": number(form, "delivery.flat_fee", errors, money_message),
                "free_above": number(form, "delivery.free_above", errors, money_message),
                "fee_by_province": _province_fees(form, errors, money_message)}
    body: dict = {"name": text(form, "name"), "description": text(form, "description"),
                  "province_code": text(form, "province_code"), "ward_code": text(form, "ward_code"),
                  "street": text(form, "street"), "phone": text(form, "phone"),
                  "zalo_phone": text(form, "zalo_phone") or None, "delivery": delivery,
                  "min_order_value": number(form, "min_order_value", errors, money_message, blank=0)}
    if text(form, "bank.account_number"):
        body["bank"] = {"bin": text(form, "bank.bin"), "account_number": text(form, "bank.account_number"),
                        "holder": text(form, "bank.holder")}
    if shop is None and text(form, "slug"):
        body["slug"] = text(form, "slug").lower()
    if errors:
        return _shop_page(request, shop, values, errors, 422, _("Please check the marked fields"))
    if shop is None:
        reply = await call(request, "catalog", "POST", "/api/v1/shops", json=body, auth=grower)
    else:
        reply = await call(request, "catalog", "PATCH", f"/api/v1/shops/{shop['id']}", json=body, auth=grower)
    if reply.ok:
        raise Redirect("/grower/products" if shop is None else "/grower/shop?saved=1")
    if reply.status >= 500 or reply.status in (401, 403):
        expect(reply)
    errors = translate_errors(request, (reply.data or {}).get("errors"), reply.field_errors())
    message = errors.pop("", None) or (reply.detail if not errors else _("Please check the marked fields"))
    return _shop_page(request, shop, values, errors, 422 if reply.status == 422 else reply.status, message)


# ---- varieties ----------------------------------------------------------------------------------------

@router.get("/products")
async def products_list(request: Request, grower: Grower,
                        saved: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None) -> Response:
    return await _products_page(request, grower, saved=saved)


async def _products_page(request: Request, grower: session.Session, *, saved: int | None = None,
                         stock_errors: dict[int, str] | None = None, status: int = 200) -> Response:
    """The varieties, each with its state and every Phân loại's stock, changed in place."""
    shop = await my_shop(request, grower)
    if shop is None:
        raise Redirect("/grower/shop")
    found = expect(await call(request, "catalog", "GET", "/api/v1/products", auth=grower,
                              params={"mine": "true", "limit": 100}))
    return page(request, "grower_products.html", status=status, shop=shop, saved=saved,
                stock_errors=stock_errors or {}, products=[p for p in found["items"] if p["status"] != "archived"])


def _product_values(product: dict | None) -> dict[str, str]:
    if product is None:
        return {"status": "active", "category": "water_lily", "variants[0].min_order_quantity": "1"}
    values = {"name": product["name"], "description": product["description"], "category": product["category"],
              "status": product["status"]}
    for i, v in enumerate(product["variants"]):
        row = f"variants[{i}]"
        values.update({f"{row}.id": str(v["id"]), f"{row}.label": v["label"],
                       f"{row}.retail_price": _amount(v["retail_price"]), f"{row}.stock": str(v["stock"]),
                       f"{row}.min_order_quantity": str(v["min_order_quantity"]),
                       f"{row}.weight_grams": _str(v.get("weight_grams"))})
        for t, tier in enumerate(v["wholesale_tiers"][:2]):
            values[f"{row}.tiers[{t}].min_quantity"] = str(tier["min_quantity"])
            values[f"{row}.tiers[{t}].unit_price"] = _amount(tier["unit_price"])
    return values


def _rows(values: dict[str, str], product: dict | None) -> int:
    used = max((int(k[9:k.index("]")]) + 1 for k in values if k.startswith("variants[")), default=0)
    return max(used, len(product["variants"]) if product else 0) + VARIANT_ROWS_SPARE


def _product_page(request: Request, product: dict | None, values: dict, errors: dict, status: int = 200,
                  message: str = "") -> Response:
    return page(request, "grower_product.html", status=status, product=product, values=values, errors=errors,
                message=message, rows=_rows(values, product), categories=CATEGORIES)


def _parse_product(request: Request, form: FormData, rows: int) -> tuple[dict, dict[str, str], list[str]]:
    """The product's JSON body from the form; blank variant rows are left out. Returns the body, the
    form's own errors, and for each variant sent, its row's field prefix (to place the API's errors)."""
    _ = gettext(request)
    errors: dict[str, str] = {}
    money_message, count_message = _("Enter an amount in đồng, e.g. 150000"), _("Enter a whole number")
    variants, sent_rows = [], []
    for i in range(rows):
        row = f"variants[{i}]"
        label, price = text(form, f"{row}.label"), text(form, f"{row}.retail_price")
        if not label and not price:
            continue
        variant: dict = {"label": label, "retail_price": number(form, f"{row}.retail_price", errors, money_message),
                         "stock": number(form, f"{row}.stock", errors, count_message, blank=0),
                         "min_order_quantity": number(form, f"{row}.min_order_quantity", errors, count_message,
                                                      blank=1),
                         "wholesale_tiers": []}
        if text(form, f"{row}.id").isdigit():
            variant["id"] = int(text(form, f"{row}.id"))
        weight = number(form, f"{row}.weight_grams", errors, count_message)
        if weight is not None:
            variant["weight_grams"] = weight
        for t in range(2):
            qty = number(form, f"{row}.tiers[{t}].min_quantity", errors, count_message)
            unit = number(form, f"{row}.tiers[{t}].unit_price", errors, money_message)
            if qty is None and unit is None:
                continue
            if qty is None or unit is None:
                errors[f"{row}.tiers[{t}].min_quantity" if qty is None else f"{row}.tiers[{t}].unit_price"] = \
                    _("Give both the quantity and the price of a wholesale tier")
                continue
            variant["wholesale_tiers"].append({"min_quantity": qty, "unit_price": unit})
        variants.append(variant)
        sent_rows.append(row)
    if not variants:
        errors["variants[0].label"] = _("Add at least one way to sell it, with its price")
    body = {"name": text(form, "name"), "description": text(form, "description"),
            "category": text(form, "category") or "other",
            "status": "active" if form.get("status") == "active" else "draft", "variants": variants}
    return body, errors, sent_rows


def _place_errors(request: Request, reply, sent_rows: list[str]) -> dict[str, str]:
    errors = translate_errors(request, (reply.data or {}).get("errors"), reply.field_errors())
    placed: dict[str, str] = {}
    for field, message in errors.items():
        for i, row in enumerate(sent_rows):  # variants[i] of the body → the form's own row
            if field.startswith(f"variants[{i}]"):
                field = row + field[len(f"variants[{i}]"):]
                field = field.replace(".wholesale_tiers", ".tiers")
                break
        placed[field] = message
    return placed


async def _upload_photos(request: Request, grower: session.Session, product_id: int,
                         form: FormData) -> list[str]:
    """Each photo to the catalog as it came (already shrunk on the phone when JavaScript ran)."""
    _ = gettext(request)
    problems = []
    files = [f for f in form.getlist("photos") if isinstance(f, UploadFile) and f.filename]
    for upload in files[:MAX_PHOTOS_PER_FORM]:
        content = await upload.read()
        if not content:
            continue
        reply = await call(request, "catalog", "POST", f"/api/v1/products/{product_id}/photos", auth=grower,
                           content=content, headers={"Content-Type": upload.content_type or "image/jpeg"})
        if reply.status in (413, 415):
            problems.append(_("{name}: not a photo we can read (JPEG, PNG, WebP or HEIC, at most 15 MB)")
                            .format(name=upload.filename))
        elif not reply.ok:
            problems.append(f"{upload.filename}: {reply.detail}")
    return problems


@router.get("/products/new")
async def new_product_form(request: Request, grower: Grower) -> Response:
    if await my_shop(request, grower) is None:
        raise Redirect("/grower/shop")
    return _product_page(request, None, _product_values(None), {})


@router.post("/products/new")
async def create_product(request: Request, grower: Grower) -> Response:
    form = await posted_form(request, MAX_PHOTOS_PER_FORM)
    _ = gettext(request)
    values = values_of(form)
    body, errors, sent_rows = _parse_product(request, form, _rows(values, None))
    if errors:
        return _product_page(request, None, values, errors, 422, _("Please check the marked fields"))
    reply = await call(request, "catalog", "POST", "/api/v1/products", json=body, auth=grower)
    if not reply.ok:
        if reply.status >= 500 or reply.status in (401, 403, 404):
            expect(reply)
        return _product_page(request, None, values, _place_errors(request, reply, sent_rows), 422,
                             _("Please check the marked fields"))
    problems = await _upload_photos(request, grower, reply.data["id"], form)
    if problems:
        product = expect(await call(request, "catalog", "GET", f"/api/v1/products/{reply.data['id']}", auth=grower))
        return _product_page(request, product, _product_values(product), {"photos": " ".join(problems)}, 422,
                             _("The variety is saved, but some photos were not"))
    raise Redirect(f"/grower/products/{reply.data['id']}?saved=1")


async def _owned_product(request: Request, grower: session.Session, product_id: int) -> dict:
    return expect(await call(request, "catalog", "GET", f"/api/v1/products/{product_id}", auth=grower))


@router.get("/products/{product_id}")
async def edit_product_form(request: Request, grower: Grower, product_id: Id,
                            saved: Annotated[int | None, Query()] = None,
                            copied: Annotated[int | None, Query()] = None) -> Response:
    _ = gettext(request)
    product = await _owned_product(request, grower, product_id)
    message = _("Saved") if saved else ""
    if copied:
        message = _("This is a copy, hidden from buyers: change its name, stock and photos, then put it on sale.")
    return _product_page(request, product, _product_values(product), {}, message=message)


@router.post("/products/{product_id}")
async def update_product(request: Request, grower: Grower, product_id: Id) -> Response:
    form = await posted_form(request, MAX_PHOTOS_PER_FORM)
    _ = gettext(request)
    product = await _owned_product(request, grower, product_id)
    values = values_of(form)
    body, errors, sent_rows = _parse_product(request, form, _rows(values, product))
    if errors:
        return _product_page(request, product, values, errors, 422, _("Please check the marked fields"))
    reply = await call(request, "catalog", "PATCH", f"/api/v1/products/{product_id}", json=body, auth=grower)
    if not reply.ok:
        if reply.status >= 500 or reply.status in (401, 403, 404):
            expect(reply)
        return _product_page(request, product, values, _place_errors(request, reply, sent_rows), 422,
                             _("Please check the marked fields"))
    problems = await _upload_photos(request, grower, product_id, form)
    if problems:
        product = await _owned_product(request, grower, product_id)
        return _product_page(request, product, _product_values(product), {"photos": " ".join(problems)}, 422,
                             _("The variety is saved, but some photos were not"))
    raise Redirect(f"/grower/products/{product_id}?saved=1")


@router.post("/products/{product_id}/sold-out")
async def mark_sold_out(request: Request, grower: Grower, product_id: Id) -> Response:
    await posted_form(request)
    product = await _owned_product(request, grower, product_id)
    await _set_stock(request, grower, product, {v["id"]: 0 for v in product["variants"]})
    raise Redirect(f"/grower/products/{product_id}?saved=1")


def _kept(variant: dict) -> dict:
    """A variant kept as it is in a PATCH: its id and the two fields every variant sends. The catalog
    keeps the fields not sent, so stock an order took meanwhile is not written back."""
    return {"id": variant["id"], "label": variant["label"], "retail_price": variant["retail_price"]}


async def _set_stock(request: Request, grower: session.Session, product: dict, stock: dict[int, int]) -> None:
    variants = [{**_kept(v), **({"stock": stock[v["id"]]} if v["id"] in stock else {})} for v in product["variants"]]
    expect(await call(request, "catalog", "PATCH", f"/api/v1/products/{product['id']}", json={"variants": variants},
                      auth=grower))


@router.post("/products/{product_id}/stock")
async def change_stock(request: Request, grower: Grower, product_id: Id) -> Response:
    """One Phân loại's stock, from the list (in place: with JavaScript the list is not reloaded)."""
    form = await posted_form(request)
    _ = gettext(request)
    product = await _owned_product(request, grower, product_id)
    raw_id = text(form, "variant_id")
    variant_id = int(raw_id) if raw_id.isdigit() and len(raw_id) < 11 else 0
    if variant_id not in {v["id"] for v in product["variants"]}:
        raise NotFound("No such variant")
    errors: dict[str, str] = {}
    stock = number(form, "stock", errors, _("Enter a whole number"))
    if stock is None or stock > 1_000_000:
        return await _products_page(request, grower, status=422,
                                    stock_errors={variant_id: errors.get("stock") or _("Enter a whole number")})
    await _set_stock(request, grower, product, {variant_id: stock})
    raise Redirect(f"/grower/products?saved={variant_id}#v-{variant_id}")


PHOTO_ACTIONS = ("cover", "earlier", "later", "delete")


@router.post("/products/{product_id}/photos/{photo_id}/{action}")
async def photo_action(request: Request, grower: Grower, product_id: Id, photo_id: Id, action: str) -> Response:
    """A photo made the cover, moved one place earlier or later, or deleted."""
    await posted_form(request)
    if action not in PHOTO_ACTIONS:
        raise NotFound("No such action")
    product = await _owned_product(request, grower, product_id)
    photo = next((p for p in product["photos"] if p["id"] == photo_id), None)
    if photo is None:
        raise NotFound("No such photo")
    path = f"/api/v1/products/{product_id}/photos/{photo_id}"
    if action == "delete":
        expect(await call(request, "catalog", "DELETE", path, auth=grower))
    else:
        last = len(product["photos"]) - 1
        position = {"cover": 0, "earlier": max(0, photo["position"] - 1),
                    "later": min(last, photo["position"] + 1)}[action]
        expect(await call(request, "catalog", "PATCH", path, json={"position": position}, auth=grower))
    raise Redirect(f"/grower/products/{product_id}?saved=1#photos")


@router.post("/products/{product_id}/duplicate")
async def duplicate_product(request: Request, grower: Grower, product_id: Id) -> Response:
    """A copy to start a similar variety from: hidden, no stock, no photos (those are the new one's)."""
    await posted_form(request)
    _ = gettext(request)
    product = await _owned_product(request, grower, product_id)
    variants = [{"label": v["label"], "retail_price": v["retail_price"], "wholesale_tiers": v["wholesale_tiers"],
                 "min_order_quantity": v["min_order_quantity"], "stock": 0,
                 "low_stock_threshold": v.get("low_stock_threshold", 0),
                 **({"weight_grams": v["weight_grams"]} if v.get("weight_grams") is not None else {})}
                for v in product["variants"]]
    body = {"name": _("%(name)s (copy)") % {"name": product["name"][:150]}, "description": product["description"],
            "category": product["category"], "status": "draft", "variants": variants}
    created = expect(await call(request, "catalog", "POST", "/api/v1/products", json=body, auth=grower))
    raise Redirect(f"/grower/products/{created['id']}?copied=1")


# ---- the order desk -----------------------------------------------------------------------------------

Status = Literal["placed", "confirmed", "shipped", "delivered", "cancelled"]


@router.get("/")
async def desk(request: Request, grower: Grower, status: Status | None = None) -> Response:
    shop = await my_shop(request, grower)
    if shop is None:
        raise Redirect("/grower/shop")
    params = {"limit": 50, **({"status": status} if status else {})}
    orders = expect(await call(request, "orders", "GET", "/api/v1/orders", auth=grower, params=params))
    counts = expect(await call(request, "orders", "GET", "/api/v1/orders/counts", auth=grower))
    return page(request, "grower_desk.html", shop=shop, orders=orders["items"], counts=counts, state=status or "")


@router.get("/stream")
async def stream(request: Request, grower: Grower) -> Response:
    """The inbox's live stream, for the desk's EventSource (which cannot send an Authorization
    header): the same server-sent events, asked for with the session's token."""
    client = deps.upstream(request, "notify")
    headers = dict(grower.headers)
    if request.headers.get("last-event-id", "").isdigit():
        headers["Last-Event-ID"] = request.headers["last-event-id"]
    upstream_request = client.build_request("GET", "/api/v1/notifications/stream", headers=headers,
                                            timeout=httpx.Timeout(5.0, read=75.0))
    try:
        upstream = await client.send(upstream_request, stream=True)
    except httpx.HTTPError:
        return Response(status_code=503, headers={"Retry-After": "5"})
    if upstream.status_code != 200:
        await upstream.aclose()
        return Response(status_code=upstream.status_code)
    return StreamingResponse(upstream.aiter_raw(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
                             background=BackgroundTask(upstream.aclose))


@router.get("/orders/{order_id}")
async def order_detail(request: Request, grower: Grower, order_id: Id) -> Response:
    order = expect(await call(request, "orders", "GET", f"/api/v1/orders/{order_id}", auth=grower))
    _ = gettext(request)
    mailed = _("The tracking link was emailed to %(email)s") % {"email": order["contact"].get("email")}
    notice = mailed if request.query_params.get("mailed") else ""
    return page(request, "grower_order.html", order=with_place_names(order),
                **await tracking_of(request, grower, order), notice=notice)


@router.post("/orders/{order_id}/{action}")
async def order_action(request: Request, grower: Grower, order_id: Id, action: str) -> Response:
    form = await posted_form(request)
    if action not in ACTIONS:
        raise NotFound("No such action")
    body = {"reason": text(form, "reason")[:500]} if action == "cancel" else None
    reply = await call(request, "orders", "POST", f"/api/v1/orders/{order_id}/{action}", json=body, auth=grower)
    if reply.status == 409:  # someone else moved it first: show it as it is now
        raise Redirect(f"/grower/orders/{order_id}")
    expect(reply)
    raise Redirect(safe_next(text(form, "next")) if text(form, "next") else f"/grower/orders/{order_id}")


@router.get("/packing")
async def packing(request: Request, grower: Grower) -> Response:
    data = expect(await call(request, "orders", "GET", "/api/v1/orders/packing-list", auth=grower))
    return page(request, "grower_packing.html", packing=data, today=dt.datetime.now(VN_TZ).date().isoformat())


# ---- packing slips (A6, to print) -----------------------------------------------------------------------

MAX_SLIPS = 200


def with_place_names(order: dict) -> dict:
    """The order's address with its ward's and province's names (the API gives their codes)."""
    address = order.get("address") or {}
    if address.get("province_code"):
        address.setdefault("province_name", province_name(address["province_code"]) or "")
        address.setdefault("ward_name", ward_name(address["province_code"], address.get("ward_code", "")) or "")
    return order


async def _slips_page(request: Request, grower: session.Session, orders: list[dict],
                     day: dt.date | None = None) -> Response:
    """The slips, each with the QR code of the buyer's tracking link when the orders service kept it."""
    _ = gettext(request)
    links = await links_of(request, grower, [o["id"] for o in orders]) if orders else {}
    orders = [with_place_names(o) for o in orders]
    qr = {o["id"]: qr_svg(links[o["id"]], _("Tracking link of order %(code)s") % {"code": o["code"]})
          for o in orders if links.get(o["id"])}
    return page(request, "grower_slips.html", shop=await my_shop(request, grower) or {}, orders=orders, qr=qr,
                day=day.strftime("%d/%m/%Y") if day else "")


@router.get("/orders/{order_id}/slip")
async def packing_slip(request: Request, grower: Grower, order_id: Id) -> Response:
    order = expect(await call(request, "orders", "GET", f"/api/v1/orders/{order_id}", auth=grower))
    return await _slips_page(request, grower, [order])


@router.get("/slips")
async def day_slips(request: Request, grower: Grower, day: dt.date | None = None) -> Response:
    """Every slip of the orders placed on ``day`` (Vietnam time; today by default), cancelled ones left out."""
    day = day or dt.datetime.now(VN_TZ).date()
    orders: list[dict] = []
    cursor = None
    while len(orders) < MAX_SLIPS:
        params = {"since": day.isoformat(), "until": day.isoformat(), "limit": 100}
        if cursor:
            params["cursor"] = cursor
        found = expect(await call(request, "orders", "GET", "/api/v1/orders", auth=grower, params=params))
        orders += [o for o in found["items"] if o["status"] != "cancelled"]
        cursor = found.get("next_cursor")
        if not cursor:
            break
    orders.sort(key=lambda o: o["id"])
    return await _slips_page(request, grower, orders[:MAX_SLIPS], day)
