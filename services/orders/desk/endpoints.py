"""The grower's desk: the orders as a CSV file, the packing list (JSON or CSV), a month's sales, and the
buyers' tracking links (for the packing slips' QR codes, and to mail them again).

Static paths under ``/orders/``: this router is registered before the orders router, so that
``/orders/export.csv`` is not taken for ``/orders/{order_id}``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response, StreamingResponse
from pydantic import Field
from sqlalchemy import select

from common.auth import Principal
from common.errors import Conflict
from common.params import MAX_ID, IdPath
from common.vietnam import VN_TZ, local_bound
from services.orders.deps import BaseUrlDep, CipherDep, DatabaseDep, NotifyMailDep, SessionDep
from services.orders.deps import Grower as GrowerWriting
from services.orders.deps import GrowerReader as Grower
from services.orders.desk import csvfile, sales
from services.orders.desk.schemas import PackingList, SalesMonth, TrackingLink, TrackingLinks, TrackingMailOut
from services.orders.desk.service import OPEN_STATUSES, DeskFilter, iter_orders, packing_list
from services.orders.orders import service as orders
from services.orders.orders import tracking
from services.orders.orders.models import Order, OrderStatus

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


# ---- the buyer's tracking link (decision 0024) ---------------------------------------------------------

OrderIds = Annotated[list[Annotated[int, Field(ge=1, le=MAX_ID)]],
                     Query(alias="order_id", min_length=1, max_length=100,
                           description="Repeat for several orders (at most 100)")]


class NoBuyerEmail(Conflict):
    slug, title = "no-buyer-email", "This order has no email to send to"


class NoTrackingLink(Conflict):
    slug, title = "no-tracking-link", "This order's tracking link was not kept"


@router.get("/orders/tracking-links", operation_id="desk_tracking_links", response_model=TrackingLinks,
            responses={200: {"headers": {"Cache-Control": {"schema": {"type": "string"},
                                                           "description": "`no-store`: secret links"}}}},
            summary="The buyers' tracking links of your orders (for packing slips' QR codes, or to send again)")
async def tracking_links(session: SessionDep, grower: Grower, order_ids: OrderIds, response: Response,
                         cipher: CipherDep, base_url: BaseUrlDep) -> TrackingLinks:
    found = (await session.scalars(select(Order).where(Order.id.in_(set(order_ids)),
                                                       Order.shop_owner_id == grower.sub)
                                   .order_by(Order.id))).all()
    response.headers["Cache-Control"] = "no-store"
    return TrackingLinks(items=[TrackingLink(order_id=o.id, code=o.code, tracking_url=tracking.link_of(
        o, cipher, base_url)) for o in found])


MailId = Annotated[uuid.UUID | None, Header(alias="Idempotency-Key", description="A UUID: the same key again "
                                                                                 "sends nothing more")]


@router.post("/orders/{order_id}/tracking-link/mail", operation_id="desk_mail_tracking_link", status_code=202,
             response_model=TrackingMailOut,
             responses={409: {"description": "No email (`/problems/no-buyer-email`) or no kept link "
                                             "(`/problems/no-tracking-link`)"}},
             summary="Email the buyer their tracking link again, with the order (to the order's email)")
async def mail_tracking_link(session: SessionDep, grower: GrowerWriting, order_id: IdPath, cipher: CipherDep,
                             base_url: BaseUrlDep, notify_mail: NotifyMailDep,
                             idempotency_key: MailId = None) -> TrackingMailOut:
    order, _ = await orders.get_for(session, order_id, grower)
    email = order.contact.get("email")
    if not email:
        raise NoBuyerEmail("The buyer gave no email for this order: send the link by SMS or Zalo")
    link = tracking.link_of(order, cipher, base_url)
    if link is None:
        raise NoTrackingLink("This order was placed before tracking links were kept: its link was shown only "
                             "once, when it was placed")
    queued = await notify_mail.queue(tracking.mail_request(order, link, cipher, idempotency_key or uuid.uuid4()))
    return TrackingMailOut(order_id=order.id, recipient=email, queued=queued)
