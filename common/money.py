"""Money is integer VND; shown the Vietnamese way: ``150.000 ₫``."""

from __future__ import annotations

from babel.numbers import format_currency


def format_vnd(amount: int, locale: str = "vi") -> str:
    return format_currency(amount, "VND", locale="vi_VN" if locale == "vi" else "en_US",
                           format="#,##0 ¤" if locale == "vi" else None, currency_digits=True)
