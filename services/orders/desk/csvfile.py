"""The desk's CSV files, as Excel opens them: UTF-8 with a byte-order mark (or Excel shows
Vietnamese as mojibake), CRLF line ends, and no cell a spreadsheet would run as a formula.

Vietnamese headers and words by default (``lang=vi``); ``lang=en`` gives the API's field names and
values (``placed``, ``bank_transfer``) for integrators' scripts.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import AsyncIterator, Iterable
from typing import Literal

import phonenumbers

from common.vietnam import VN_TZ, province_name, ward_name
from services.orders.desk.schemas import PackingList
from services.orders.orders.models import Order

Lang = Literal["vi", "en"]
Delimiter = Literal["comma", "semicolon"]
DELIMITERS = {"comma": ",", "semicolon": ";"}

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")

ORDER_COLUMNS = {
    "en": ("code", "placed_at", "status", "payment_status", "payment_method", "source", "buyer_name", "phone",
           "address", "lines", "subtotal", "delivery_fee", "total", "note"),
    "vi": ("Mã đơn", "Ngày đặt", "Trạng thái", "Thanh toán", "Hình thức", "Nguồn", "Người mua", "Điện thoại",
           "Địa chỉ", "Hàng", "Tạm tính", "Phí giao", "Tổng cộng", "Ghi chú"),
}
PACKING_COLUMNS = {
    "en": ("product_name", "variant_label", "quantity", "order_count", "orders", "product_id", "variant_id"),
    "vi": ("Sản phẩm", "Loại", "Số lượng", "Số đơn", "Đơn hàng", "Mã sản phẩm", "Mã loại"),
}
WORDS_VI = {
    "placed": "Mới đặt", "confirmed": "Đã xác nhận", "shipped": "Đang giao", "delivered": "Đã giao",
    "cancelled": "Đã hủy", "unpaid": "Chưa thanh toán", "paid": "Đã thanh toán",
    "cod": "Thanh toán khi nhận hàng (COD)", "bank_transfer": "Chuyển khoản",
    "web": "Web", "api": "API", "phone": "Điện thoại", "facebook": "Facebook", "zalo": "Zalo",
}


def escape(cell: str) -> str:
    """``=HYPERLINK(…)`` → ``'=HYPERLINK(…)``: shown as text, never run. An apostrophe already in
    front of a formula start is escaped too, so that the escape cannot be undone by the input."""
    return "'" + cell if _needs_escape(cell) else cell


def _needs_escape(cell: str) -> bool:
    return cell.startswith(FORMULA_STARTS) or (cell.startswith("'") and _needs_escape(cell[1:]))


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return value  # money and quantities stay numbers, so Excel can sum them
    return escape(str(value))


def _word(value: str, lang: Lang) -> str:
    return WORDS_VI.get(value, value) if lang == "vi" else value


def phone_for_people(e164: str) -> str:
    """``+84987654321`` → ``0987 654 321``: as growers dial it, and kept as text by Excel (the spaces
    stop it from becoming the number 987654321)."""
    try:
        return phonenumbers.format_number(phonenumbers.parse(e164), phonenumbers.PhoneNumberFormat.NATIONAL)
    except phonenumbers.NumberParseException:
        return e164


def address_text(address: dict) -> str:
    province, ward = address.get("province_code", ""), address.get("ward_code", "")
    parts = (address.get("street", ""), ward_name(province, ward) or ward, province_name(province) or province)
    return ", ".join(p for p in parts if p)


def lines_text(order: Order) -> str:
    return "; ".join(f"{ln.product_name} – {ln.variant_label} × {ln.quantity}" for ln in order.lines)


def order_row(order: Order, lang: Lang) -> list[object]:
    placed = order.created_at.astimezone(VN_TZ)
    contact = order.contact or {}
    return [order.code, placed.strftime("%Y-%m-%d %H:%M"), _word(order.status, lang),
            _word(order.payment_status, lang), _word(order.payment_method, lang), _word(order.source, lang),
            contact.get("name", ""), phone_for_people(contact.get("phone", "")), address_text(order.address or {}),
            lines_text(order), order.subtotal, order.delivery_fee, order.total, order.note]


class _Writer:
    def __init__(self, delimiter: Delimiter) -> None:
        self.buffer = io.StringIO()
        self.writer = csv.writer(self.buffer, delimiter=DELIMITERS[delimiter], lineterminator="\r\n")

    def rows(self, rows: Iterable[Iterable[object]]) -> bytes:
        for row in rows:
            self.writer.writerow([_cell(c) for c in row])
        out = self.buffer.getvalue().encode("utf-8")
        self.buffer.seek(0)
        self.buffer.truncate()
        return out


async def orders_csv(pages: AsyncIterator[list[Order]], lang: Lang, delimiter: Delimiter) -> AsyncIterator[bytes]:
    """The export's bytes: the BOM and header first, then one chunk per page of orders."""
    writer = _Writer(delimiter)
    yield codecs.BOM_UTF8 + writer.rows([ORDER_COLUMNS[lang]])
    async for page in pages:
        yield writer.rows(order_row(order, lang) for order in page)


def packing_csv(packing: PackingList, lang: Lang, delimiter: Delimiter) -> bytes:
    writer = _Writer(delimiter)
    rows = [[p.product_name, p.variant_label, p.quantity, p.order_count,
             ", ".join(f"{o.code} ({o.quantity})" for o in p.orders), p.product_id, p.variant_id]
            for p in packing.items]
    return codecs.BOM_UTF8 + writer.rows([PACKING_COLUMNS[lang], *rows])
