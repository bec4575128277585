"""The order's state machine: who may move an order from which state to which."""

from __future__ import annotations

from services.orders.orders.models import Order, OrderStatus, PaymentStatus

# action → (from states by role, to state)
TRANSITIONS: dict[str, tuple[dict[str, set[str]], str]] = {
    "confirm": ({"grower": {OrderStatus.placed}}, OrderStatus.confirmed),
    "ship": ({"grower": {OrderStatus.confirmed}}, OrderStatus.shipped),
    "deliver": ({"grower": {OrderStatus.shipped}}, OrderStatus.delivered),
    "cancel": ({"grower": {OrderStatus.placed, OrderStatus.confirmed, OrderStatus.shipped},
                "buyer": {OrderStatus.placed, OrderStatus.confirmed}}, OrderStatus.cancelled),
}


def can(action: str, order: Order, role: str) -> bool:
    return _can(action, order.status, order.payment_status, role)


def _can(action: str, status: str, payment_status: str, role: str) -> bool:
    if action == "mark-paid":
        return role == "grower" and payment_status == PaymentStatus.unpaid and status != OrderStatus.cancelled
    by_role, _ = TRANSITIONS[action]
    return status in by_role.get("grower" if role == "admin" else role, set())


def allowed_actions(order: Order, role: str) -> list[str]:
    return allowed_for(order.status, order.payment_status, role)


def allowed_for(status: str, payment_status: str, role: str) -> list[str]:
    """The moves a ``role`` may make on an order in ``status`` and ``payment_status``."""
    return [a for a in (*TRANSITIONS, "mark-paid") if _can(a, status, payment_status, role)]
