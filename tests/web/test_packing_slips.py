"""Packing slips without a browser: one order's A6 slip (shop, buyer, phone, address, lines, the COD amount
to collect, or that it is paid) and every slip of a day at once; another shop's order is not shown."""

from __future__ import annotations

import datetime as dt

import pytest

from common.vietnam import VN_TZ
from tests.web.conftest import Market, place, signed_in

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_one_slip_and_a_days_slips(market: Market) -> None:
    cod = await place(market, "Anh Bình", 3)
    paid_later = await place(market, "Chị Thu", 12, "bank_transfer")
    cancelled = await place(market, "Chú Sáu", 1)
    assert (await market.stack.gw.post(f"/api/v1/orders/{cancelled['id']}/cancel", json={"reason": "hết"},
                                       headers=market.grower["headers"])).status_code == 200
    async with signed_in(market) as b:
        order_page = (await b.get(f"/grower/orders/{cod['id']}")).text
        assert f'href="/grower/orders/{cod["id"]}/slip"' in order_page
        slip = await b.get(f"/grower/orders/{cod['id']}/slip")
        assert slip.status_code == 200 and slip.headers["cache-control"] == "private, no-store"
        text = slip.text
        for expected in (cod["code"], "Vườn Súng Đồng Tháp", "0912 345 670", "Anh Bình", "0977 000 222",
                         "15 Hàng Bông", "Phường Ba Đình", "Súng Thái Mini Pink – Củ giống",
                         "Thu hộ (COD): 480.000"):
            assert expected in text, expected
        assert "/static/slip." in text and "/static/app." not in text  # the print sheet only

        bank = (await b.get(f"/grower/orders/{paid_later['id']}/slip")).text
        assert "Thu hộ" not in bank and "Chuyển khoản chưa nhận được tiền: không thu tiền khi giao" in bank
        assert (await market.stack.gw.post(f"/api/v1/orders/{paid_later['id']}/mark-paid",
                                           headers=market.grower["headers"])).status_code == 200
        assert "Đã thanh toán: không thu tiền" in (await b.get(f"/grower/orders/{paid_later['id']}/slip")).text

        today = dt.datetime.now(VN_TZ).date()
        packing = (await b.get("/grower/packing")).text
        assert f'href="/grower/slips?day={today.isoformat()}"' in packing
        day = await b.get(f"/grower/slips?day={today.isoformat()}")
        assert day.status_code == 200
        assert cod["code"] in day.text and paid_later["code"] in day.text and cancelled["code"] not in day.text
        slips = day.text.count('<article class="slip"')
        assert slips == 2 and "In 2 phiếu" in day.text
        empty = await b.get("/grower/slips?day=2020-01-01")
        assert "Không có đơn nào đặt ngày 01/01/2020." in empty.text
        assert (await b.get("/grower/slips?day=hôm-qua")).status_code == 404
        assert (await b.get("/grower/orders/999999/slip")).status_code == 404
