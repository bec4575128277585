"""How the month went, for the grower: this month (or the one asked for) against the one before —
orders, revenue, retail against wholesale, the top varieties, where orders came from, the bank
transfers still unpaid — as small SVG charts drawn here (``gateway.web.charts``) with the numbers as
text; and the orders of a date range as the CSV file the orders service writes."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import httpx
from fastapi import APIRouter, Query, Request
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from common.errors import ServiceUnavailable
from common.vietnam import VN_TZ
from gateway import deps
from gateway.web import charts
from gateway.web.core import Upstream, WebRoute, call, error_page, expect, gettext, locale_of, page
from gateway.web.grower import Grower
from gateway.web.i18n import N_, money

router = APIRouter(prefix="/grower", route_class=WebRoute, include_in_schema=False)

Month = Annotated[str | None, Query(pattern=r"^2\d{3}-(0[1-9]|1[0-2])$")]
MAX_EXPORT_DAYS = 366


def _previous(month: str) -> str:
    year, number = int(month[:4]), int(month[5:])
    return f"{year - 1}-12" if number == 1 else f"{year}-{number - 1:02d}"


def _next(month: str) -> str:
    year, number = int(month[:4]), int(month[5:])
    return f"{year + 1}-01" if number == 12 else f"{year}-{number + 1:02d}"


def _label(month: str) -> str:
    return f"{month[5:]}/{month[:4]}"


def _charts(request: Request, now: dict, before: dict) -> dict:
    _ = gettext(request)
    locale = locale_of(request)
    vnd = lambda v: money(v, locale)  # noqa: E731
    this, last = _label(now["month"]), _label(before["month"])
    best = max(now["days"], key=lambda d: d["revenue"]) if now["days"] else None
    ticks = {i: str(dt.date.fromisoformat(d["day"]).day) for i, d in enumerate(now["days"])
             if dt.date.fromisoformat(d["day"]).day in (1, 10, 20) or i == len(now["days"]) - 1}
    per_day = charts.columns(
        _("Revenue per day, %(month)s") % {"month": this},
        (_("Best day: %(day)s, %(amount)s") % {"day": dt.date.fromisoformat(best["day"]).strftime("%d/%m"),
                                                "amount": vnd(best["revenue"])})
        if best and best["revenue"] else _("No orders this month yet"),
        [d["revenue"] for d in now["days"]], ticks)
    compare = charts.bars(
        _("Revenue: %(this)s against %(last)s") % {"this": this, "last": last},
        f"{this}: {vnd(now['revenue'])}; {last}: {vnd(before['revenue'])}",
        [charts.Bar(this, now["revenue"], vnd(now["revenue"])),
         charts.Bar(last, before["revenue"], vnd(before["revenue"]))], (charts.GREEN, charts.PALE))
    kinds = charts.split(
        _("Retail and wholesale"),
        "; ".join(_("%(month)s: retail %(retail)s, wholesale %(wholesale)s") % {
            "month": _label(m["month"]), "retail": vnd(m["retail"]), "wholesale": vnd(m["wholesale"])}
                  for m in (now, before)),
        [(this, now["retail"], now["wholesale"]), (last, before["retail"], before["wholesale"])],
        (_("Retail sales"), _("Wholesale")))
    top = charts.bars(
        _("Top varieties, %(month)s") % {"month": this},
        "; ".join(f"{v['product_name']}: {vnd(v['revenue'])}" for v in now["top_varieties"]) or
        _("No orders this month yet"),
        [charts.Bar(v["product_name"], v["revenue"], vnd(v["revenue"])) for v in now["top_varieties"]]) \
        if now["top_varieties"] else None
    return {"per_day": per_day, "compare": compare, "kinds": kinds, "top": top}


@router.get("/sales")
async def sales(request: Request, grower: Grower, month: Month = None) -> Response:
    month = month or dt.datetime.now(VN_TZ).strftime("%Y-%m")
    now = expect(await call(request, "orders", "GET", "/api/v1/orders/sales", auth=grower, params={"month": month}))
    before = expect(await call(request, "orders", "GET", "/api/v1/orders/sales", auth=grower,
                               params={"month": _previous(month)}))
    first = dt.date.fromisoformat(now["days"][0]["day"])
    last = dt.date.fromisoformat(now["days"][-1]["day"])
    current = dt.datetime.now(VN_TZ).strftime("%Y-%m")
    return page(request, "grower_sales.html", now=now, before=before, label=_label(month),
                last_label=_label(before["month"]), previous=_previous(month),
                following=_next(month) if month < current else "", since=first.isoformat(), until=last.isoformat(),
                **_charts(request, now, before))


@router.get("/sales/export.csv")
async def export(request: Request, grower: Grower, since: dt.date, until: dt.date) -> Response:
    """The orders placed from ``since`` to ``until`` (both included, Vietnam days), as the orders
    service writes them for Excel; streamed through."""
    _ = gettext(request)
    if until < since or (until - since).days > MAX_EXPORT_DAYS:
        return error_page(request, 422, N_("Choose a start day before the end day, at most a year apart"))
    client = deps.upstream(request, "orders")
    try:
        upstream = await client.send(client.build_request(
            "GET", "/api/v1/orders/export.csv", headers=dict(grower.headers),
            params={"since": since.isoformat(), "until": until.isoformat()}), stream=True)
    except httpx.HTTPError:
        raise ServiceUnavailable(_("The marketplace cannot be reached; try again shortly"), service="orders") from None
    if upstream.status_code != 200:
        await upstream.aread()
        await upstream.aclose()
        expect(Upstream(upstream))
    filename = f"don-hang-{since.isoformat()}-{until.isoformat()}.csv"
    return StreamingResponse(upstream.aiter_raw(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{filename}"',
                                      "Cache-Control": "private, no-store"},
                             background=BackgroundTask(upstream.aclose))
