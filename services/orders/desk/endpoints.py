"""The grower's desk: the orders as a CSV file, the packing list (JSON or CSV), and a month's sales.

Static paths under ``/orders/``: this router is registered before the orders router, so that
``/orders/export.csv`` is not taken for ``/orders/{order_id}``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response, StreamingResponse

from common.auth import Principal
from common.vietnam import VN_TZ, local_bound
from services.orders.deps import DatabaseDep
from services.orders.deps import GrowerReader as Grower
from services.orders.desk import csvfile, sales
from services.orders.desk.schemas import PackingList, SalesMonth
from services.orders.desk.service import OPEN_STATUSES, DeskFilter, iter_orders, packing_list
from services.orders.orders.models import OrderStatus

router = APIRouter(prefix="/api/v1", tags=["desk"])
Statuses = Annotated[list[OrderStatus] | None, Query(description="Repeat for several states")]
Since = Annotated[str | None, Query(max_length=40, description="Placed at or after: `2025-07-01` (Vietnam time) or an "
                                                                "ISO 8601 date-time; without an offset, Vietnam time")]
Until = Annotated[str | None, Query(max_length=40, description="Placed before this date-time; a bare date "
                                                                "(`2025-07-31`) includes that whole day")]
Lang = Annotated[csvfile.Lang, Query(description="`vi`: Vietnamese headers and words; `en`: the API's names")]
Delimiter = Annotated[csvfile.Delimiter, Query(description="`semicolon` for Excel with Vietnamese regional settings")]
CSV = "text/csv; charset=utf-8"
CSV_RESPONSE = {200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                       "description": "UTF-8 with a byte-order mark"}}


def _filter(grower: Principal, statuses: list[OrderStatus] | None, paid: bool | None, since: str | None,
            until: str | None, default: tuple[str, ...] = ()) -> DeskFilter:
    chosen = tuple(dict.fromkeys(s.value for s in statuses)) if statuses else tuple(s.value for s in default)
    return DeskFilter.of(grower, statuses=chosen, paid=paid, since=local_bound(since, "since"),
                         until=local_bound(until, "until", end=True))


def _attachment(stem: str) -> dict[str, str]:
    today = dt.datetime.now(VN_TZ).date().isoformat()
    return {"Content-Disposition": f'attachment; filename="{stem}-{today}.csv"', "Cache-Control": "no-store"}


@router.get("/orders/export.csv", operation_id="desk_export_orders",
            response_class=StreamingResponse, responses=CSV_RESPONSE,
            summary="Your shop's orders as a CSV file for Excel (filters as in the list)")
async def export_orders(db: DatabaseDep, grower: Grower, status: Statuses = None, paid: bool | None = None,
                        since: Since = None, until: Until = None, lang: Lang = "vi",
                        delimiter: Delimiter = "comma") -> StreamingResponse:
    filt = _filter(grower, status, paid, since, until)
    body = csvfile.orders_csv(iter_orders(db, filt), lang, delimiter)
    return StreamingResponse(body, media_type=CSV, headers=_attachment("don-hang" if lang == "vi" else "orders"))


@router.get("/orders/packing-list", operation_id="desk_packing_list", response_model=PackingList,
            summary="What to prepare: quantity per variant across your placed and confirmed orders")
async def get_packing_list(db: DatabaseDep, grower: Grower, status: Statuses = None, paid: bool | None = None,
                           since: Since = None, until: Until = None) -> PackingList:
    return await packing_list(db, _filter(grower, status, paid, since, until, OPEN_STATUSES))


@router.get("/orders/packing-list.csv", operation_id="desk_packing_list_csv",
            response_class=Response, responses=CSV_RESPONSE,
            summary="The packing list as a CSV file for Excel")
async def get_packing_list_csv(db: DatabaseDep, grower: Grower, status: Statuses = None,
                               paid: bool | None = None, since: Since = None, until: Until = None,
                               lang: Lang = "vi", delimiter: Delimiter = "comma") -> Response:
    packing = await packing_list(db, _filter(grower, status, paid, since, until, OPEN_STATUSES))
    return Response(csvfile.packing_csv(packing, lang, delimiter), media_type=CSV,
                    headers=_attachment("soan-hang" if lang == "vi" else "packing-list"))


Month = Annotated[str | None, Query(max_length=7, description="`2026-11` (Vietnam time); this month when left out",
                                    examples=["2026-11"])]


@router.get("/orders/sales", operation_id="desk_sales_month", response_model=SalesMonth,
            summary="How a month went: orders, revenue, retail and wholesale, top varieties, unpaid transfers")
async def get_sales_month(db: DatabaseDep, grower: Grower, month: Month = None) -> SalesMonth:
    name, since, until = sales.month_bounds(month)
    return await sales.month_sales(db, DeskFilter.of(grower), name, since, until)
