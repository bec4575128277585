"""A bank-transfer order's VietQR: amount = the order's total, memo = its code, the shop's account as
it was when the order was placed (``order.bank``)."""

from __future__ import annotations

from common.crypto import FieldCipher
from common.errors import Conflict
from common.vietnam import BANKS
from services.orders.orders.models import Order, OrderStatus
from services.orders.payments import vietqr
from services.orders.payments.schemas import PaymentQrOut


class NotBankTransfer(Conflict):
    slug, title = "not-bank-transfer", "This order is not paid by bank transfer"


class OrderCancelled(Conflict):
    slug, title = "order-cancelled", "This order is cancelled"


def payment_qr(order: Order, svg_url: str, *, cipher: FieldCipher) -> PaymentQrOut:
    """The QR for an unpaid or paid bank-transfer order (paid ones say so in ``payment_status``).
    Cash-on-delivery orders, and cancelled ones (nothing to pay), are a 409."""
    if order.payment_method != "bank_transfer":
        raise NotBankTransfer("This order is paid in cash on delivery (COD): there is no transfer to make",
                              payment_method=order.payment_method)
    if order.status == OrderStatus.cancelled:
        raise OrderCancelled("This order is cancelled: there is nothing to pay", order_status=order.status)
    bank = order.bank or {}
    if not (bank.get("bin") and bank.get("account_encrypted")):
        raise NotBankTransfer("This order has no bank account to pay to; contact the shop")
    account = cipher.decrypt(bank["account_encrypted"])
    payload = vietqr.build(bank["bin"], account, order.total, order.code)
    return PaymentQrOut(
        order_id=order.id, order_code=order.code, payment_status=order.payment_status, payload=payload,
        amount=order.total, memo=vietqr.memo_text(order.code), bank_bin=bank["bin"], bank_name=BANKS.get(bank["bin"]),
        account_number=account, account_holder=bank.get("holder"),
        svg=vietqr.svg(payload, title=f"VietQR {order.code}"), svg_url=svg_url)
