"""The shop form's delivery: a fee per province and the free-above threshold, saved through the catalog and
shown again; fees set through the API survive a save of the form; a fee that is not a number is refused."""

from __future__ import annotations

import re

import pytest

from tests.web.conftest import Market, hidden, signed_in

pytestmark = pytest.mark.asyncio(loop_scope="module")
CAN_THO, HA_NOI = "92", "01"


def form_values(html: str) -> dict[str, str]:
    """What the form would send as it is shown: its inputs' values and the selected options."""
    data = dict(re.findall(r'<input id="[^"]*" name="([^"]+)" type="[^"]*" value="([^"]*)"', html))
    data.update(re.findall(r'<select id="[^"]*" name="([^"]+)"[^>]*>(?:(?!</select>).)*?<option value="([^"]*)" '
                           r'selected', html, re.S))
    data["csrf"] = hidden(html, "csrf")
    data["delivery.pickup"] = "yes"
    return data


async def test_fees_per_province_and_free_above(market: Market) -> None:
    gw, headers = market.stack.gw, market.grower["headers"]
    async with signed_in(market) as b:
        html = (await b.get("/grower/shop")).text
        assert 'name="delivery.fee.92"' in html and "Phí giao riêng cho một số tỉnh" in html
        assert "<details class=\"fees\">" in html  # closed: no province has its own fee yet
        data = form_values(html)
        data.update({f"delivery.fee.{CAN_THO}": "45.000", "delivery.free_above": "1.500.000",
                     "delivery.flat_fee": "30000"})
        saved = await b.post("/grower/shop", data=data)
        assert saved.status_code == 303, saved.text[:2000]
        confirmed = (await b.get(saved.headers["location"])).text
        assert '<p class="ok" role="status">Đã lưu</p>' in confirmed  # the grower sees it was saved
        delivery = (await gw.get("/api/v1/shops/mine", headers=headers)).json()["delivery"]
        assert delivery["fee_by_province"] == {CAN_THO: 45000} and delivery["free_above"] == 1500000
        again = (await b.get("/grower/shop")).text
        assert '<details class="fees" open>' in again
        # Amounts are shown grouped as people write them (500.000, not 500000) and read back the same.
        assert f'name="delivery.fee.{CAN_THO}" type="text" value="45.000"' in again
        assert 'value="1.500.000"' in again and 'name="delivery.flat_fee" type="text" value="30.000"' in again

        # A fee set through the API stays when the form is saved again.
        shop_id = market.shop["id"]
        patched = await gw.patch(f"/api/v1/shops/{shop_id}", headers=headers, json={"delivery": {
            **delivery, "fee_by_province": {CAN_THO: 45000, HA_NOI: 20000}}})
        assert patched.status_code == 200, patched.text
        html = (await b.get("/grower/shop")).text
        assert (await b.post("/grower/shop", data=form_values(html))).status_code == 303
        kept = (await gw.get("/api/v1/shops/mine", headers=headers)).json()["delivery"]["fee_by_province"]
        assert kept == {CAN_THO: 45000, HA_NOI: 20000}

        bad = form_values(html)
        bad[f"delivery.fee.{CAN_THO}"] = "bốn mươi"
        refused = await b.post("/grower/shop", data=bad)
        assert refused.status_code == 422 and '<details class="fees" open>' in refused.text
        assert "Nhập số tiền bằng đồng" in refused.text
