"""Bank transfer by VietQR: the payload (held to a known-good one, ``VERIFIED`` below), its CRC, and who
may see an order's QR code. A real catalog answers the reservations."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from services.orders.payments import vietqr
from tests.catalog.helpers import BANK
from tests.orders.market import BUYER, GROWER, market
from tests.support.auth import auth

VERIFIED = ("00020101021238570010A00000072701270006970415011300110019324180208QRIBFTTA530370454061200005802VN"
            "62170813ung ho lu lut6304C15C")


# ---- The payload, without a server ---------------------------------------------------------------

def test_crc_known_answer() -> None:
    assert vietqr.crc16_ccitt_false(b"123456789") == 0x29B1
    assert vietqr.crc16_ccitt_false(b"") == 0xFFFF


def test_build_reproduces_the_verified_payload() -> None:
    assert vietqr.build("970415", "0011001932418", 120000, "ung ho lu lut") == VERIFIED
    assert vietqr.crc_hex(VERIFIED[:-4]) == "C15C"


def test_parse_reads_the_verified_payload() -> None:
    qr = vietqr.parse(VERIFIED)
    assert (qr.bank_bin, qr.account, qr.amount, qr.memo) == ("970415", "0011001932418", 120000, "ung ho lu lut")
    assert (qr.service, qr.initiation, qr.currency, qr.country) == ("QRIBFTTA", "12", "704", "VN")


@pytest.mark.parametrize("broken,why", [
    (VERIFIED[:-4] + "C15D", "CRC mismatch"),
    (VERIFIED.replace("120000", "120001"), "CRC mismatch"),
    (VERIFIED[:-8], "CRC field"),
    ("0002010102115802VN6304", "CRC field"),
    ("000201Ủng hộ6304ABCD", "not ASCII"),
])
def test_parse_refuses_damaged_payloads(broken: str, why: str) -> None:
    with pytest.raises(vietqr.InvalidPayload, match=why):
        vietqr.parse(broken)


def test_parse_refuses_wrong_structure_even_with_a_right_crc() -> None:
    def signed(body: str) -> str:
        return body + "6304" + vietqr.crc_hex(body + "6304")

    with pytest.raises(vietqr.InvalidPayload, match="runs|ends first"):
        vietqr.parse(signed("000201010212389900"))
    with pytest.raises(vietqr.InvalidPayload, match="NAPAS"):
        vietqr.parse(signed("0002010102123814" + "0010A000000728" + "5303704" + "5802VN"))
    static = vietqr.build("970415", "123", None)[:-8]
    with pytest.raises(vietqr.InvalidPayload, match="needs an amount"):
        vietqr.parse(signed(static.replace("010211", "010212", 1)))
    with pytest.raises(vietqr.InvalidPayload, match="appears twice"):
        vietqr.parse(signed(static + "5802VN"))


def test_static_payload_has_no_amount() -> None:
    payload = vietqr.build("970436", "1234567890", None)
    qr = vietqr.parse(payload)
    assert qr.initiation == "11" and qr.amount is None and qr.memo == ""
    assert [tag for tag, _ in vietqr.parse_tlv(payload)] == ["00", "01", "38", "53", "58", "63"]


@pytest.mark.parametrize("raw,memo", [
    ("CV-7K3Q9", "CV-7K3Q9"),
    ("Đơn hàng Súng Thái đỏ", "Don hang Sung Thai do"),
    ("  Ủng hộ\tlũ lụt!! ", "Ung ho lu lut"),
    ("a" * 40, "a" * 25),
    ("Thanh toán đơn CV-7K3Q9 nhé", "Thanh toan don CV-7K3Q9 n"),
    ("<script>&;\"'", "script"),
])
def test_memo_is_ascii_folded_and_short(raw: str, memo: str) -> None:
    assert vietqr.memo_text(raw) == memo
    assert vietqr.parse(vietqr.build("970415", "1", 1000, raw)).memo == memo


@pytest.mark.parametrize("args", [
    ("97041", "1", 1000), ("970415", "", 1000), ("970415", "12 34", 1000), ("970415", "1" * 20, 1000),
    ("970415", "1", 0), ("970415", "1", -5), ("970415", "1", 10**13), ("970415", "1", True),
])
def test_build_refuses_bad_input(args) -> None:
    with pytest.raises(ValueError):
        vietqr.build(*args)


def test_svg_is_a_qr_code_document() -> None:
    svg = vietqr.svg(VERIFIED, title="VietQR CV-7K3Q9")
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg" and svg.startswith("<svg")
    assert root.find("{http://www.w3.org/2000/svg}title").text == "VietQR CV-7K3Q9"
    assert 'fill="#fff"' in svg  # an opaque quiet zone: it scans on a dark page too


# ---- The endpoints ---------------------------------------------------------------------------------

@pytest.fixture
async def m(db_urls):
    async with market(db_urls) as mk:
        yield mk


async def place(m, method: str = "bank_transfer", headers: dict | None = None) -> dict:
    resp = await m.place([{"variant_id": m.tuber, "quantity": 3}], payment_method=method, headers=headers)
    assert resp.status_code == 201, resp.text
    return resp.json()


def check_qr(body: dict, order: dict) -> None:
    assert body["order_id"] == order["id"] and body["order_code"] == order["code"]
    assert body["amount"] == order["total"] == 165000
    assert body["memo"] == order["code"]
    qr = vietqr.parse(body["payload"])  # the CRC is checked here
    assert (qr.bank_bin, qr.account, qr.amount, qr.memo) == (BANK["bin"], BANK["account_number"], order["total"],
                                                             order["code"])
    assert body["bank_bin"] == "970415" and body["bank_name"] == "VietinBank"
    assert body["account_number"] == BANK["account_number"] and body["account_holder"] == BANK["holder"].upper()
    assert ET.fromstring(body["svg"]).tag.endswith("svg")


async def test_grower_and_buyer_get_the_qr_others_do_not(m) -> None:
    order = await place(m, headers=BUYER)
    url = f"/api/v1/orders/{order['id']}/payment-qr"
    for who in (GROWER, BUYER, auth("ops", role="admin"), auth("grower-orders-1", kind="api_key",
                                                                 scopes=["orders:read"])):
        resp = await m.orders.get(url, headers=who)
        assert resp.status_code == 200, resp.text
        assert resp.headers["cache-control"] == "no-store"
        check_qr(resp.json(), order)
        assert resp.json()["payment_status"] == "unpaid"
        assert resp.json()["svg_url"] == url + "?format=svg"
    for stranger in (auth("grower-orders-2"), auth("buyer-2", role="buyer"),
                     auth("grower-orders-1", kind="api_key", scopes=["catalog:read"])):
        resp = await m.orders.get(url, headers=stranger)
        assert resp.status_code == 404 and resp.headers["content-type"] == "application/problem+json"
    assert (await m.orders.get(url)).status_code == 401
    assert (await m.orders.get("/api/v1/orders/999999/payment-qr", headers=GROWER)).status_code == 404


async def test_guest_gets_the_qr_by_tracking_token(m) -> None:
    order = await place(m)
    token = order["tracking_url"].rsplit("/", 1)[1]
    resp = await m.orders.get(f"/api/v1/tracking/{token}/payment-qr")
    assert resp.status_code == 200, resp.text
    check_qr(resp.json(), order)
    by_grower = await m.orders.get(f"/api/v1/orders/{order['id']}/payment-qr", headers=GROWER)
    assert by_grower.json()["payload"] == resp.json()["payload"]
    assert (await m.orders.get(f"/api/v1/tracking/{token[:-3]}abc/payment-qr")).status_code == 404
    # A guest's order is not any signed-in buyer's.
    assert (await m.orders.get(f"/api/v1/orders/{order['id']}/payment-qr", headers=BUYER)).status_code == 404


async def test_svg_format(m) -> None:
    order = await place(m)
    token = order["tracking_url"].rsplit("/", 1)[1]
    for url, headers in ((f"/api/v1/orders/{order['id']}/payment-qr", GROWER),
                         (f"/api/v1/tracking/{token}/payment-qr", {})):
        resp = await m.orders.get(url, params={"format": "svg"}, headers=headers)
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("image/svg+xml")
        assert resp.headers["content-security-policy"] == "default-src 'none'"
        root = ET.fromstring(resp.content)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert resp.text == (await m.orders.get(url, headers=headers)).json()["svg"]
    bad = await m.orders.get(f"/api/v1/orders/{order['id']}/payment-qr", params={"format": "png"}, headers=GROWER)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.format"


async def test_cash_on_delivery_is_409(m) -> None:
    order = await place(m, method="cod")
    token = order["tracking_url"].rsplit("/", 1)[1]
    for resp in (await m.orders.get(f"/api/v1/orders/{order['id']}/payment-qr", headers=GROWER),
                 await m.orders.get(f"/api/v1/tracking/{token}/payment-qr"),
                 await m.orders.get(f"/api/v1/tracking/{token}/payment-qr", params={"format": "svg"})):
        assert resp.status_code == 409
        assert resp.headers["content-type"] == "application/problem+json"
        assert resp.json()["type"] == "http://localhost:8000/problems/not-bank-transfer"


async def test_the_catalog_sends_the_bank_account_only_for_a_bank_transfer(m) -> None:
    """What the catalog answered to each order's reservation, as orders' catalog client received it:
    a cash-on-delivery order's reply carries no bank account; a bank transfer's does, and its QR is right."""
    catalog = m.orders_app.state.catalog
    real_reserve, replies = catalog.reserve, []

    async def recording(*args, **kwargs):
        replies.append(reply := await real_reserve(*args, **kwargs))
        return reply

    catalog.reserve = recording
    try:
        await place(m, method="cod")
        order = await place(m, method="bank_transfer", headers=BUYER)
    finally:
        catalog.reserve = real_reserve
    cod, bank = (reply.shop for reply in replies)
    assert (cod.bank_bin, cod.bank_account, cod.bank_holder) == (None, None, None)
    assert BANK["account_number"] not in replies[0].model_dump_json()
    assert (bank.bank_bin, bank.bank_account) == (BANK["bin"], BANK["account_number"])
    resp = await m.orders.get(f"/api/v1/orders/{order['id']}/payment-qr", headers=BUYER)
    assert resp.status_code == 200, resp.text
    check_qr(resp.json(), order)


async def test_paid_orders_still_show_it_cancelled_ones_do_not(m) -> None:
    paid = await place(m)
    resp = await m.orders.post(f"/api/v1/orders/{paid['id']}/mark-paid", headers=GROWER)
    assert resp.status_code == 200, resp.text
    qr = await m.orders.get(f"/api/v1/orders/{paid['id']}/payment-qr", headers=GROWER)
    assert qr.status_code == 200 and qr.json()["payment_status"] == "paid"
    cancelled = await place(m)
    assert (await m.orders.post(f"/api/v1/orders/{cancelled['id']}/cancel", headers=GROWER)).status_code == 200
    resp = await m.orders.get(f"/api/v1/orders/{cancelled['id']}/payment-qr", headers=GROWER)
    assert resp.status_code == 409 and resp.json()["type"] == "http://localhost:8000/problems/order-cancelled"


async def test_the_qr_route_does_not_disturb_the_order_routes(m) -> None:
    order = await place(m)
    assert (await m.orders.get(f"/api/v1/orders/{order['id']}", headers=GROWER)).json()["code"] == order["code"]
    confirm = await m.orders.post(f"/api/v1/orders/{order['id']}/confirm", headers=GROWER)
    assert confirm.status_code == 200 and confirm.json()["status"] == "confirmed"
    qr = await m.orders.get(f"/api/v1/orders/{order['id']}/payment-qr", headers=GROWER)
    assert qr.status_code == 200
    assert (await m.orders.get("/api/v1/orders/0/payment-qr", headers=GROWER)).status_code == 422
