"""Vietnamese text helpers: NFC storage form and accent-free folding for search."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator

_SPACES = re.compile(r"\s+")
_CONTROL = {c for c in range(32) if c not in (9, 10, 13)} | {0x7F}


def nfc(value: str) -> str:
    """The stored form of any user text: NFC, trimmed."""
    return unicodedata.normalize("NFC", value).strip()


def has_control_chars(value: str) -> bool:
    """NUL and other C0 controls (tab and newlines allowed) have no place in names or addresses."""
    return any(ord(ch) in _CONTROL for ch in value)


def fold(value: str) -> str:
    """Lower-case, accents removed, đ → d, spaces collapsed: "HOA SÚNG Đỏ" → "hoa sung do"."""
    decomposed = unicodedata.normalize("NFD", value.replace("đ", "d").replace("Đ", "D"))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _SPACES.sub(" ", stripped.lower()).strip()


def clean_text(value: str, what: str) -> str:
    """A field's text as stored (NFC, trimmed); NUL and other control characters are refused
    (``what`` names the field in the error). Tabs and line breaks are allowed."""
    value = nfc(value)
    if has_control_chars(value):
        raise ValueError(f"{what} must not contain control characters")
    return value


def _cleaned(value: str) -> str:
    return clean_text(value, "The text")


def _cleaned_not_empty(value: str) -> str:
    value = _cleaned(value)
    if not value:
        raise ValueError("The text must not be empty (or only spaces)")
    return value


# A person's text as stored: NFC, trimmed, no control characters (tabs and line breaks allowed). Put
# length limits on the field (``Field(max_length=…)``): they count what was sent.
CleanText = Annotated[str, AfterValidator(_cleaned)]
# The same, and something must be left once trimmed: names, labels, streets.
NonEmptyText = Annotated[str, AfterValidator(_cleaned_not_empty)]
