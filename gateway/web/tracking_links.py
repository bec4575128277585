"""The buyer's tracking link in the desk (decision 0024): the orders service keeps it (encrypted) since
then, so a packing slip carries its QR code and an order's page offers it again — by SMS, Zalo, a copy,
or mailed once more. An order placed before it was kept has none: its slip has no QR and says so."""

from __future__ import annotations

import io
import uuid
from urllib.parse import quote

from markupsafe import Markup
from starlette.requests import Request

from gateway.web import session
from gateway.web.core import call, expect, gettext


async def links_of(request: Request, grower: session.Session, order_ids: list[int]) -> dict[int, str | None]:
    """Each order's tracking link (None when it was not kept), one call for up to 100 orders."""
    links: dict[int, str | None] = {}
    for start in range(0, len(order_ids), 100):
        found = expect(await call(request, "orders", "GET", "/api/v1/orders/tracking-links", auth=grower,
                                  params={"order_id": order_ids[start:start + 100]}))
        links.update({item["order_id"]: item["tracking_url"] for item in found["items"]})
    return links


def qr_svg(url: str, title: str) -> Markup:
    """The link as a QR code, an SVG to inline in the slip: black on white with the 4-module quiet zone,
    error correction M, 3 px modules (about 2.5 cm across for a 40-character link)."""
    import segno  # here: only the slips print a QR code

    out = io.BytesIO()
    segno.make(url, error="m", micro=False).save(
        out, kind="svg", scale=3, border=4, dark="#000", light="#fff", xmldecl=False, svgns=True,
        svgclass="qr", lineclass=None, title=title, nl=False)
    return Markup(out.getvalue().decode("utf-8"))  # noqa: S704 - segno's own SVG; the title is escaped by it


def share_of(request: Request, order: dict, url: str) -> dict[str, str]:
    """What the desk offers to send the link with: an SMS ready to go, the buyer's Zalo, the words to paste."""
    _ = gettext(request)
    greeting = _("%(shop)s: your order %(code)s is recorded. Follow it here: %(url)s") % {
        "shop": order["shop_name"], "code": order["code"], "url": url}
    phone = order["contact"].get("phone", "")
    zalo = f"https://zalo.me/0{phone[3:]}" if phone.startswith("+84") else ""
    return {"url": url, "sms": f"sms:{phone}?&body={quote(greeting)}", "zalo": zalo, "greeting": greeting}


async def tracking_of(request: Request, grower: session.Session, order: dict) -> dict:
    """For the order's page in the desk: the link to send (None: placed before links were kept), and a key
    for the "email it again" form, so that a double tap mails once."""
    url = (await links_of(request, grower, [order["id"]])).get(order["id"])
    return {"share": share_of(request, order, url) if url else None, "mail_key": uuid.uuid4().hex}
