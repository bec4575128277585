"""The sales page without a browser: this month against the last as numbers and SVG charts (titled,
described, no script), the unpaid bank transfers, the CSV export of a date range; light enough."""

from __future__ import annotations

import codecs
import datetime as dt
import re

import pytest

from common.vietnam import VN_TZ
from tests.web.conftest import Market, place, signed_in

pytestmark = pytest.mark.asyncio(loop_scope="module")
BUDGET = 60 * 1024


async def test_this_month_against_the_last_with_charts_and_the_csv(market: Market) -> None:
    retail = await place(market, "Anh Bình", 2)
    wholesale = await place(market, "Chị Thu", 10, "bank_transfer")
    month = dt.datetime.now(VN_TZ).strftime("%m/%Y")
    async with signed_in(market) as b:
        assert 'href="/grower/sales"' in (await b.get("/grower/")).text
        resp = await b.get("/grower/sales", headers={"Accept-Encoding": "gzip"})
        assert resp.status_code == 200 and resp.headers["cache-control"] == "private, no-store"
        html = resp.text
        assert f"Bán hàng tháng {month}" in html
        revenue = retail["total"] + wholesale["total"]
        assert f"{revenue:,} ₫".replace(",", ".") in html
        assert f"{wholesale['subtotal']:,} ₫".replace(",", ".") in html  # the wholesale goods, as text
        svgs = re.findall(r"<svg .*?</svg>", html, re.S)
        assert len(svgs) == 4
        for svg in svgs:
            title, desc = re.search(r'aria-labelledby="(\S+) (\S+)"', svg).groups()
            assert f'<title id="{title}">' in svg and f'<desc id="{desc}">' in svg and 'role="img"' in svg
        assert "<script" not in "".join(svgs)
        assert "Súng Thái Mini Pink" in svgs[-1]
        unpaid = html[html.index("Chuyển khoản chưa nhận được"):]
        assert wholesale["code"] in unpaid and retail["code"] not in unpaid[:unpaid.index("</ul>")]
        total = resp.num_bytes_downloaded
        for ref in re.findall(r'(?:href|src)="(/static/[^"]+)"', html):
            total += (await b.get(ref, headers={"Accept-Encoding": "gzip"})).num_bytes_downloaded
        print(f"sales page with its CSS and JS: {total} bytes on the wire (gzip)")
        assert total <= BUDGET, total

        link = re.search(r'href="(/grower/sales/export\.csv\?since=[^"]+)"', html).group(1).replace("&amp;", "&")
        csv = await b.get(link)
        assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
        assert csv.headers["content-disposition"].startswith('attachment; filename="don-hang-')
        assert csv.content.startswith(codecs.BOM_UTF8 + "Mã đơn,".encode())
        assert retail["code"] in csv.text and wholesale["code"] in csv.text
        empty = await b.get("/grower/sales/export.csv", params={"since": "2020-01-01", "until": "2020-01-31"})
        assert empty.status_code == 200 and empty.text.count("\r\n") == 1  # the header alone

        before = await b.get("/grower/sales", params={"month": "2020-02"})
        assert before.status_code == 200 and "Tháng này chưa có đơn nào" in before.text
        assert 'href="/grower/sales?month=2020-03"' in before.text


async def test_bad_months_and_ranges_get_a_page_in_vietnamese(market: Market) -> None:
    async with signed_in(market) as b:
        for params in ({"month": "2026-13"}, {"month": "tháng-trước"}):
            resp = await b.get("/grower/sales", params=params)
            assert resp.status_code in (404, 422) and resp.headers["content-type"].startswith("text/html"), params
        reversed_range = await b.get("/grower/sales/export.csv", params={"since": "2026-02-01", "until": "2026-01-01"})
        assert reversed_range.status_code == 422 and "Chọn ngày bắt đầu trước ngày kết thúc" in reversed_range.text
        assert (await b.get("/grower/sales/export.csv", params={"since": "hôm qua", "until": "x"})).status_code \
            in (404, 422)
    async with market.browser() as anonymous:
        assert (await anonymous.get("/grower/sales")).status_code == 303
        assert (await anonymous.get("/grower/sales/export.csv?since=2026-01-01&until=2026-01-02")).status_code == 303
