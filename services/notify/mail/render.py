"""A queued mail, made into a message: Jinja2 templates in Vietnamese (the default) or English.

``templates/<locale>/<template>.subject.txt``, ``.txt`` and ``.html`` (HTML autoescaped) become a
``multipart/alternative`` message with a plain-text and an HTML part. Headers with Vietnamese in
them are MIME-encoded (RFC 2047); the Message-ID is made from the job's id, so a mail sent again
after a crash carries the same Message-ID.
"""

from __future__ import annotations

import datetime as dt
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, parseaddr
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context, select_autoescape

from common.money import format_vnd
from common.vietnam import local_phone
from services.notify.mail.models import MailJob

LOCALES = ("vi", "en")
TEMPLATES = Path(__file__).parent / "templates"


@pass_context
def _vnd(context, amount: int) -> str:
    return format_vnd(amount, context.get("locale", "vi"))


_env = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined, trim_blocks=True,
                   lstrip_blocks=True, keep_trailing_newline=True,
                   autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False))
_env.filters["vnd"] = _vnd
_env.filters["phone"] = local_phone


def context_for(job: MailJob) -> dict:
    """The event's data, and what the templates derive from it."""
    ctx = dict(job.context)
    if "total" in ctx:  # an order's mail (the account mail, a password reset, has none of this)
        ctx.setdefault("note", "")
        lines = ctx.get("lines", [])
        ctx["subtotal"] = sum(line["quantity"] * line["unit_price"] for line in lines)
        ctx["delivery_fee"] = ctx["total"] - ctx["subtotal"]
        ctx["items"] = sum(line["quantity"] for line in lines)
    ctx["locale"] = job.locale if job.locale in LOCALES else "vi"
    return ctx


def render(job: MailJob) -> tuple[str, str, str]:
    """(subject, text, html) of ``job``."""
    ctx = context_for(job)
    name = f"{ctx['locale']}/{job.template}"
    subject = " ".join(_env.get_template(f"{name}.subject.txt").render(ctx).split())
    return subject, _env.get_template(f"{name}.txt").render(ctx), _env.get_template(f"{name}.html").render(ctx)


def message_for(job: MailJob, mail_from: str, now: dt.datetime | None = None) -> EmailMessage:
    subject, text, html = render(job)
    msg = EmailMessage(policy=SMTP)
    msg["Subject"] = subject
    msg["From"] = mail_from
    msg["To"] = job.recipient
    msg["Date"] = format_datetime(now or dt.datetime.now(dt.UTC))
    msg["Message-ID"] = f"<{job.id}@{_domain(mail_from)}>"
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to a notification
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    msg["Content-Language"] = job.locale  # after the body: set_content clears Content-* headers
    return msg


def _domain(mail_from: str) -> str:
    address = parseaddr(mail_from)[1]
    try:
        return Address(addr_spec=address).domain or "cho-vuon.local"
    except (ValueError, IndexError):
        return "cho-vuon.local"
