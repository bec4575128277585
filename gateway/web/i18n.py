"""Languages of the web pages: Vietnamese (the default) and English, by a cookie.

Templates and code write English message ids; ``locale/vi/LC_MESSAGES/messages.po`` gives the
Vietnamese. Catalogs are read from the ``.po`` files at start-up (no compiled files to keep in step).
"""

from __future__ import annotations

import datetime as dt
import io
from functools import cache
from pathlib import Path

from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from starlette.requests import Request

from common.money import format_vnd
from common.vietnam import VN_TZ, local_phone  # noqa: F401 - the pages' phone filter

LOCALES = ("vi", "en")
DEFAULT_LOCALE = "vi"
LANG_COOKIE = "cv_lang"
LOCALE_DIR = Path(__file__).parent / "locale"


@cache
def translations(locale: str) -> NullTranslations:
    po = LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po"
    if not po.is_file():
        return NullTranslations()  # English: the message ids themselves
    with po.open("rb") as fh:
        catalog = read_po(fh, locale=locale)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(buf)


def N_(message: str) -> str:
    """Marks a message for the catalog where it is defined; it is translated where it is shown."""
    return message


def locale_of(request: Request) -> str:
    value = request.cookies.get(LANG_COOKIE, "")
    return value if value in LOCALES else DEFAULT_LOCALE


def money(amount: int | None, locale: str) -> str:
    return "" if amount is None else format_vnd(int(amount), locale)


def when(value: str | dt.datetime | None, locale: str) -> str:
    if not value:
        return ""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return format_datetime(value.astimezone(VN_TZ), "HH:mm dd/MM/yyyy", locale="vi_VN" if locale == "vi" else "en_GB")
