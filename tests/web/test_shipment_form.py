"""Shipping from the order page without JavaScript: the carrier and tracking code sent with the move,
shown with the carrier's page, changed later; a bad code is said in Vietnamese."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.web.conftest import Market, hidden, place, signed_in

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_ship_with_a_carrier_and_correct_it(market: Market) -> None:
    order = await place(market, "Anh Hải", 2)
    oid, gw, headers = order["id"], market.stack.gw, market.grower["headers"]
    async with signed_in(market) as b:
        assert f'action="/grower/orders/{oid}/shipment"' not in (await b.get(f"/grower/orders/{oid}")).text
        assert (await gw.post(f"/api/v1/orders/{oid}/confirm", headers=headers)).status_code == 200
        html = (await b.get(f"/grower/orders/{oid}")).text
        assert f'action="/grower/orders/{oid}/shipment"' in html and 'name="ship" value="yes"' in html
        assert "Giao Hàng Tiết Kiệm (GHTK)" in html
        csrf = hidden(html, "csrf")
        bad = await b.post(f"/grower/orders/{oid}/shipment", data={
            "csrf": csrf, "ship": "yes", "carrier": "ghn", "tracking_code": "mã có dấu"})
        assert bad.status_code == 422 and "Mã vận đơn gồm 3 đến 40 chữ" in bad.text
        assert 'value="mã có dấu"' in bad.text and 'name="ship" value="yes"' in bad.text  # not shipped
        assert (await gw.get(f"/api/v1/orders/{oid}", headers=headers)).json()["status"] == "confirmed"
        shipped = await b.post(f"/grower/orders/{oid}/shipment", data={
            "csrf": csrf, "ship": "yes", "carrier": "ghn", "tracking_code": "GANVB123"})
        assert shipped.status_code == 303
        html = (await b.get(f"/grower/orders/{oid}")).text
        assert "Đang giao" in html and "Gửi qua Giao Hàng Nhanh (GHN)" in html
        assert '<a href="https://donhang.ghn.vn/?order_code=GANVB123" rel="noopener noreferrer">GANVB123</a>' in html
        assert 'name="ship"' not in html and "Lưu đơn vị vận chuyển" in html
        # The buyer's tracking page names the carrier and the code, and links to the carrier's page.
        tracking = (await gw.get(urlsplit(order["tracking_url"]).path, headers={"Accept": "text/html"})).text
        assert "Giao Hàng Nhanh (GHN) · <code>GANVB123</code>" in tracking
        assert 'href="https://donhang.ghn.vn/?order_code=GANVB123"' in tracking
        unknown = await b.post(f"/grower/orders/{oid}/shipment", data={"csrf": csrf, "carrier": "dhl"})
        assert unknown.status_code == 422 and "Hãy chọn một trong các lựa chọn" in unknown.text
        other = await b.post(f"/grower/orders/{oid}/shipment", data={"csrf": csrf, "carrier": "other"})
        assert other.status_code == 303
        seen = (await gw.get(f"/api/v1/orders/{oid}", headers=headers)).json()
        assert seen["status"] == "shipped" and seen["shipment"]["carrier"] == "other"
        assert seen["shipment"]["tracking_code"] is None
        assert (await b.post(f"/grower/orders/{oid}/shipment", data={"carrier": "ghn"})).status_code == 403
