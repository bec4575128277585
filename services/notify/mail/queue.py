"""Which mails an event asks for, queued in the event's transaction (an effect of
``events/handler.py``): nothing is sent here, so a slow or broken SMTP server never holds an event,
and so an order, back.

- the grower: a new order, and an order the buyer cancelled — when their notification settings
  have an email and mail is on, in the language they chose;
- the buyer: their order confirmed, shipped or cancelled — to the order's contact email (a signed-in
  buyer without one: the email in their settings; a signed-in buyer who turned mail off: none), in
  the language the order was placed in.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from common.events import Event, OrderEvent
from services.notify.mail.models import MailJob
from services.notify.mail.render import LOCALES
from services.notify.preferences import service as preferences

GROWER_MAIL = {"placed": "order_placed_grower", "cancelled": "order_cancelled_grower"}
BUYER_MAIL = {"confirmed": "order_confirmed_buyer", "shipped": "order_shipped_buyer",
              "cancelled": "order_cancelled_buyer"}


async def mails_for(session: AsyncSession, event: Event) -> list[tuple[str, str, str]]:
    """(recipient, locale, template) for every mail this event asks for."""
    if not isinstance(event, OrderEvent):
        return []
    action = event.type.split(".", 1)[1]
    order = event.data
    out = []
    # A grower who cancelled the order themselves is not told about it (as in the inbox).
    if action in GROWER_MAIL and not (action == "cancelled" and order.actor_role == "grower"):
        grower = await preferences.mail_settings(session, order.shop_owner_id)
        if grower is not None and grower.email_enabled and grower.email:
            out.append((grower.email, grower.locale, GROWER_MAIL[action]))
    if action in BUYER_MAIL:
        buyer = await preferences.mail_settings(session, order.buyer_id) if order.buyer_id else None
        email = order.contact_email or (buyer.email if buyer else None)
        if email and (buyer is None or buyer.email_enabled):
            out.append((email, order.buyer_locale if order.buyer_locale in LOCALES else "vi", BUYER_MAIL[action]))
    return out


async def queue_mail(session: AsyncSession, event: Event) -> set[str]:
    for recipient, locale, template in await mails_for(session, event):
        session.add(MailJob(event_id=event.id, recipient=recipient, locale=locale, template=template,
                            context={"event_type": event.type, "occurred_at": event.occurred_at.isoformat(),
                                     **event.data.model_dump(mode="json")}))
    return set()  # no inbox changed
