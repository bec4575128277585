"""Reading HTML forms into the API's JSON shapes, and showing the API's field errors in the
language of the page."""

from __future__ import annotations

import re
from typing import Any

from starlette.datastructures import FormData

from gateway.web.core import gettext
from gateway.web.i18n import N_, locale_of

# The services speak English; the common messages by their pydantic type, in the page's language.
_BY_TYPE = {
    "missing": N_("This field is required"),
    "string_too_short": N_("This field is required"),
    "string_too_long": N_("This is too long"),
    "greater_than": N_("This number is too small"),
    "greater_than_equal": N_("This number is too small"),
    "less_than_equal": N_("This number is too large"),
    "int_parsing": N_("Enter a whole number"),
    "int_type": N_("Enter a whole number"),
    "literal_error": N_("Choose one of the options"),
    "enum": N_("Choose one of the options"),
    "string_pattern_mismatch": N_("This is not in the expected form"),
    "value_error.email": N_("This is not an email address"),
}
_BY_TEXT = [
    (re.compile(r"mobile|phone number", re.I), N_("Enter a Vietnamese mobile number, e.g. 0912 345 678")),
    (re.compile(r"email", re.I), N_("This is not an email address")),
    (re.compile(r"ward", re.I), N_("Choose a ward of this province")),
    (re.compile(r"does not deliver", re.I), N_("This shop does not deliver to this province")),
    (re.compile(r"pickup", re.I), N_("This shop does not offer pickup")),
    (re.compile(r"bank transfer", re.I), N_("This shop does not take bank transfers yet")),
    (re.compile(r"minimum order", re.I), N_("The order is below this shop's minimum order value")),
    (re.compile(r"minimum quantit|tiers", re.I), N_("Wholesale tiers: quantities must rise and prices fall")),
]


# The services' own sentences for people (common/vietnam.py's phone numbers, the orders' rules), each
# with its Vietnamese in the catalog: shown translated as a whole, never in English on a Vietnamese page.
_SERVER_SENTENCES = {message: message for message in (
    N_("Enter a Vietnamese mobile number, like 0912 345 678."),
    N_("Only Vietnamese numbers (+84) are accepted."),
    N_("A phone number has only digits, spaces and an optional +84."),
    N_("This is not a valid Vietnamese phone number."),
    N_("This looks like a landline; enter a mobile number (10 digits, starting 03, 05, 07, 08 or 09)."),
    N_("The text must not be empty (or only spaces)"),
    N_("An address is required to ship (not for pickup)"),
)}
_SERVER_PATTERNS = [
    (re.compile(r"11-digit numbers changed to 10 digits in 2018: try (\d+)\."),
     N_("11-digit numbers changed to 10 digits in 2018: try %(number)s."), "number"),
]
NOT_ACCEPTED = N_("This value is not accepted")


def _server_sentence(_, message: str) -> str | None:
    """The page's language for a sentence the services wrote (pydantic's "Value error, " left out)."""
    message = message.removeprefix("Value error, ").strip()
    if message in _SERVER_SENTENCES:
        return _(_SERVER_SENTENCES[message])
    for pattern, msgid, name in _SERVER_PATTERNS:
        found = pattern.fullmatch(message)
        if found:
            return _(msgid) % {name: found.group(1)}
    return None


def translate_errors(request, errors: list[dict[str, Any]] | None, fallback: dict[str, str]) -> dict[str, str]:
    """Field → message in the page's language, from a problem's ``errors``: the services' sentence
    translated, else one by its kind, else (on a page not in English) a plain "not accepted"."""
    _ = gettext(request)
    english = locale_of(request) == "en"
    out: dict[str, str] = {}
    for err in errors or []:
        field = str(err.get("field", "")).removeprefix("body.")
        message = str(err.get("message", ""))
        text = _server_sentence(_, message)
        if text is None and err.get("type") == "out_of_stock" and isinstance(err.get("available"), int):
            text = _("Only %(n)s left") % {"n": err["available"]}
        for pattern, msgid in _BY_TEXT:
            if text is None and pattern.search(message):
                text = _(msgid)
                break
        if text is None and err.get("type") in _BY_TYPE:
            text = _(_BY_TYPE[err["type"]])
        out.setdefault(field, text or (message if english else _(NOT_ACCEPTED)))
    for field, message in fallback.items():
        out.setdefault(field, message)
    return out


def text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def number(form: FormData, name: str, errors: dict[str, str], message: str,
           blank: int | None = None) -> int | None:
    """A whole number as people type it: ``150.000``, ``150 000`` and ``150000`` are the same."""
    raw = text(form, name).replace(".", "").replace(" ", "").replace(",", "").replace("₫", "")
    if not raw:
        return blank
    if not raw.isdigit() or len(raw) > 12:
        errors[name] = message
        return None
    return int(raw)


WHOLE = re.compile(r"\d{1,9}")


def whole(form: FormData, name: str, errors: dict[str, str], message: str, blank: int | None = None) -> int | None:
    """A count as typed: digits only. ``1.5``, ``1,5`` and ``2.0`` are errors, never 15 or 20 (as
    :func:`number` would read an amount's thousands separators)."""
    raw = text(form, name)
    if not raw:
        return blank
    if not WHOLE.fullmatch(raw):
        errors[name] = message
        return None
    return int(raw)
