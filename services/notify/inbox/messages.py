"""What each event says in the inbox, in Vietnamese (the default) or English."""

from __future__ import annotations

from common.events import Envelope
from common.money import format_vnd

STATUS_VI = {"confirmed": "đã xác nhận", "shipped": "đang giao", "delivered": "đã giao", "cancelled": "đã hủy",
             "paid": "đã thanh toán"}


def _items(data: dict) -> int:
    return sum(line["quantity"] for line in data.get("lines", []))


def for_event(envelope: Envelope) -> list[tuple[str, str, str]]:
    """(account id, title, body) for every inbox this event lands in."""
    d = envelope.data
    kind = envelope.type
    out: list[tuple[str, str, str]] = []
    if kind == "stock.low":
        out.append((d["owner_id"], f"Sắp hết hàng: {d['product_name']} – {d['variant_label']}",
                    f"Còn {d['stock']} (ngưỡng báo {d['threshold']})."))
        return out
    if not kind.startswith("order."):
        return out
    action = kind.split(".", 1)[1]
    total = format_vnd(d["total"])
    if action == "placed":
        paying = "chuyển khoản" if d["payment_method"] == "bank_transfer" else "thanh toán khi nhận hàng"
        out.append((d["shop_owner_id"], f"Đơn mới {d['code']} – {total}",
                    f"{d['contact_name']} đặt {_items(d)} món, {paying}."))
    elif action == "cancelled" and d.get("actor_role") != "grower":
        out.append((d["shop_owner_id"], f"Đơn {d['code']} đã bị hủy",
                    f"{d['contact_name']} đã hủy đơn{': ' + d['note'] if d.get('note') else '.'}"))
    if d.get("buyer_id") and action in STATUS_VI:
        out.append((d["buyer_id"], f"Đơn {d['code']} {STATUS_VI[action]}", f"{d['shop_name']} – {total}"))
    return out
