"""What each event says in the inbox, in Vietnamese (the default) or English."""

from __future__ import annotations

from common.events import Event, OrderChanged, StockLowEvent
from common.money import format_vnd

STATUS_VI = {"confirmed": "đã xác nhận", "shipped": "đang giao", "delivered": "đã giao", "cancelled": "đã hủy",
             "paid": "đã thanh toán"}


def _items(order: OrderChanged) -> int:
    return sum(line.quantity for line in order.lines)


def for_event(event: Event) -> list[tuple[str, str, str]]:
    """(account id, title, body) for every inbox this event lands in."""
    out: list[tuple[str, str, str]] = []
    if isinstance(event, StockLowEvent):
        s = event.data
        out.append((s.owner_id, f"Sắp hết hàng: {s.product_name} – {s.variant_label}",
                    f"Còn {s.stock} (ngưỡng báo {s.threshold})."))
        return out
    d = event.data
    action = event.type.split(".", 1)[1]
    total = format_vnd(d.total)
    if action == "placed":
        paying = "chuyển khoản" if d.payment_method == "bank_transfer" else "thanh toán khi nhận hàng"
        out.append((d.shop_owner_id, f"Đơn mới {d.code} – {total}", f"{d.contact_name} đặt {_items(d)} món, {paying}."))
    elif action == "cancelled" and d.actor_role != "grower":
        out.append((d.shop_owner_id, f"Đơn {d.code} đã bị hủy",
                    f"{d.contact_name} đã hủy đơn{': ' + d.note if d.note else '.'}"))
    if d.buyer_id and action in STATUS_VI:
        out.append((d.buyer_id, f"Đơn {d.code} {STATUS_VI[action]}", f"{d.shop_name} – {total}"))
    return out
