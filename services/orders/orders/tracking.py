"""The buyer's tracking link kept (decision 0024), and the mail that carries it.

- The link's token is kept twice: its SHA-256 finds the order (``service.get_by_token``), and the
  token itself, encrypted with the data key (``tracking_token_encrypted``), lets the grower's desk show
  the link again (the packing slip's QR, sending it to the buyer later). Orders placed before the
  token was kept have none: ``link_of`` is None for them.
- An order whose buyer gave an email is stored with ``buyer_mail = "pending"``. The buyer-mail worker
  (woken when an order is stored, and every ``ORDERS_BUYER_MAIL_INTERVAL`` seconds) hands it to
  notify's ``POST /internal/mail`` (template ``order_placed_buyer``), which queues it durably and
  sends it over SMTP with its own retries; the order is then ``queued``. While notify cannot be
  reached, the order stays pending and the next round tries again: placing never waits for notify.
  The mail's id is drawn from the order, so a try whose reply was lost queues nothing twice. An
  order still pending a day after it was placed is ``dropped`` (logged): a "thank you for your
  order" days late helps no one, and the grower can still send the link from the desk. So is one
  notify refuses (a 4xx: retrying would not change it), or whose buyer's email was erased meanwhile.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from functools import partial

import httpx
import orjson
from fastapi import FastAPI
from sqlalchemy import select, update

from common.crypto import FieldCipher
from common.errors import ServiceUnavailable
from common.logging import request_id_var
from common.transport import ServiceClient
from common.vietnam import BANKS
from common.worker import Worker
from services.orders.orders.models import Order, utcnow
from services.orders.payments import vietqr

log = logging.getLogger("orders.buyer_mail")

BATCH = 50
GIVE_UP = dt.timedelta(days=1)
MAIL_IDS = uuid.UUID("5d8e1f8a-3a51-4c4e-9a53-2b7f0f6c1d24")  # the namespace of the placed orders' mail ids


def link_of(order: Order, cipher: FieldCipher, base_url: str) -> str | None:
    """The buyer's tracking link, or None for an order placed before the token was kept."""
    if not order.tracking_token_encrypted:
        return None
    return f"{base_url.rstrip('/')}/t/{cipher.decrypt(order.tracking_token_encrypted)}"


def mail_request(order: Order, link: str, cipher: FieldCipher, mail_id: uuid.UUID | None = None) -> dict:
    """The body of notify's ``POST /internal/mail`` for the buyer's mail: the order, how to pay it and the link."""
    bank = order.bank or {}
    pay = None
    if order.payment_method == "bank_transfer" and bank.get("account_encrypted"):
        pay = {"bank_name": BANKS.get(bank.get("bin", "")) or bank.get("bin", ""),
               "account_number": cipher.decrypt(bank["account_encrypted"]), "account_holder": bank.get("holder") or "",
               "memo": vietqr.memo_text(order.code)}
    return {
        "id": str(mail_id or uuid.uuid5(MAIL_IDS, f"{order.id}:{order.code}")),
        "recipient": order.contact["email"], "locale": order.locale if order.locale in ("vi", "en") else "vi",
        "template": "order_placed_buyer",
        "context": {
            "code": order.code, "shop_name": order.shop_name, "shop_phone": order.shop_phone,
            "contact_name": order.contact.get("name", ""), "delivery_method": order.delivery_method,
            "payment_method": order.payment_method, "payment_status": order.payment_status, "total": order.total,
            "lines": [{"product_name": ln.product_name, "variant_label": ln.variant_label, "quantity": ln.quantity,
                       "unit_price": ln.unit_price} for ln in order.lines],
            "bank": pay, "tracking_url": link,
        },
    }


class MailNotQueued(ServiceUnavailable):
    def __init__(self) -> None:
        super().__init__("The mail could not be handed to notify now; try again shortly.",
                         headers={"Retry-After": "5"}, service="notify")


class MailRefused(MailNotQueued):
    """Notify answered that this mail is wrong (a 4xx): trying it again would not change that."""


class NotifyMail:
    """Notify's ``/internal/mail``, the one call orders makes to notify outside events."""

    def __init__(self, base_url: str, service_token: str, timeout: float = 5.0) -> None:
        self.client = ServiceClient(base_url, timeout=httpx.Timeout(timeout, connect=2.0),
                                    headers={"X-Service-Token": service_token})

    async def queue(self, body: dict) -> str:
        """``new`` or ``duplicate`` (that id was queued before); :class:`MailNotQueued` when notify did not take it."""
        try:
            resp = await self.client.post("/internal/mail", orjson.dumps(body),
                                          {"X-Request-ID": request_id_var.get() or ""})
        except httpx.HTTPError as exc:
            log.warning("notify could not be reached for mail %s: %s", body["id"], exc)
            raise MailNotQueued() from None
        if resp.status_code not in (200, 202):
            log.error("notify did not queue mail %s: %s %s", body["id"], resp.status_code, resp.text[:300])
            raise MailRefused() if 400 <= resp.status_code < 500 and resp.status_code != 429 else MailNotQueued()
        return orjson.loads(resp.content)["queued"]

    async def aclose(self) -> None:
        await self.client.aclose()


async def send_pending(app: FastAPI) -> bool:
    """One round: every order whose buyer's mail is pending handed to notify. True: a full batch went."""
    state = app.state
    async with state.db.sessionmaker() as session:
        orders = (await session.scalars(select(Order).where(Order.buyer_mail == "pending")
                                        .order_by(Order.id).limit(BATCH))).all()
    queued, dropped, stopped = [], [], False
    for order in orders:
        link = link_of(order, state.cipher, state.settings.public_base_url)
        if order.created_at < utcnow() - GIVE_UP or not order.contact.get("email") or link is None:
            # Too late, or nothing to send any more (the buyer's data was erased meanwhile).
            log.warning("the buyer's mail of %s was not handed to notify: given up", order.code)
            dropped.append(order.id)
            continue
        try:
            await state.notify_mail.queue(mail_request(order, link, state.cipher))
        except MailRefused:
            dropped.append(order.id)  # logged by queue(); the others still go
            continue
        except MailNotQueued:
            stopped = True  # notify is down: the rest wait for the next round
            break
        queued.append(order.id)
    async with state.db.writer() as session:
        for ids, outcome in ((queued, "queued"), (dropped, "dropped")):
            if ids:  # conditional: another replica's round may have settled it first
                await session.execute(update(Order).where(Order.id.in_(ids), Order.buyer_mail == "pending")
                                      .values(buyer_mail=outcome).execution_options(synchronize_session=False))
        await session.commit()
    return len(orders) == BATCH and not stopped


async def start(app: FastAPI) -> None:
    settings = app.state.settings
    app.state.notify_mail = NotifyMail(settings.notify_url, settings.service_token.get_secret_value())
    app.state.buyer_mail = Worker("buyer mail", partial(send_pending, app), interval=settings.buyer_mail_interval,
                                  linger=0.05)
    await app.state.buyer_mail.start()


async def stop(app: FastAPI) -> None:
    await app.state.buyer_mail.stop()
    await app.state.notify_mail.aclose()
