"""Accent-free search: what is indexed, and how a buyer's words become a safe query.

Documents and queries go through the same folding (``common.text.fold``: lower case, accents removed,
đ → d) and the same split into words (letters and digits; everything else separates). A document is
stored as its words joined by single spaces with a space before and after (" sung thai do "), so that
on PostgreSQL ``LIKE '% word %'`` matches whole words and ``LIKE '% wor%'`` the start of one, exactly
as FTS5's ``"word"`` and ``"wor"*`` do on SQLite. A query keeps only words, so no quote, operator,
bracket or NUL byte a user types ever reaches FTS5's query syntax or a LIKE pattern.

See docs/decisions/0004-search.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from common.text import fold
from common.vietnam import province_name

_WORD = re.compile(r"[^\W_]+")

MAX_TERMS = 8
"""Words of a query beyond this are ignored: they would narrow an AND search to nothing anyway."""

PG_WINDOW = 2000
"""PostgreSQL: rows read in the page's order (btree) and checked with LIKE before the trigram index is
asked for the rest; words common enough to fill a page within them never touch the trigram index."""

PROBE_CAP = 2000
"""SQLite, sorting matches by price: fewer matches than this are fetched through FTS5 and sorted; more,
and the price index is walked in order, each row checked with LIKE, stopping after a page."""


def words(text: str) -> list[str]:
    """ "Súng Thái (đỏ)!" → ["sung", "thai", "do"]."""
    return _WORD.findall(fold(text))


def document(*parts: str | None) -> str:
    """The stored, searchable form of some text: " sung thai do hoa do ", or "" for no words."""
    found = [w for part in parts if part for w in words(part)]
    return f" {' '.join(found)} " if found else ""


def product_documents(name: str, description: str, shop_name: str, province_code: str) -> tuple[str, str]:
    """(search_name, search_text) of a variety: its name; and its name, description, the shop's name
    and the shop's province, so that "dong thap" finds the varieties of the shops in Đồng Tháp."""
    return document(name), document(name, description, shop_name, province_name(province_code))


def shop_document(name: str, description: str, province_code: str) -> str:
    return document(name, description, province_name(province_code))


@dataclass(frozen=True)
class Query:
    """A buyer's search, folded and split. The last word is a prefix ("hoa su" finds "hoa súng")."""

    terms: tuple[str, ...]

    @classmethod
    def parse(cls, text: str | None) -> Query | None:
        """None when the text has no words at all (empty, or only punctuation): nothing to search for."""
        terms = tuple(words(text or "")[:MAX_TERMS])
        return cls(terms) if terms else None

    @property
    def text(self) -> str:
        return " ".join(self.terms)

    def fts5(self) -> str:
        """An FTS5 MATCH expression: every word a quoted string (implicit AND), the last a prefix.

        Words hold only letters and digits, so quoting them is enough to make any input inert.
        """
        *whole, last = self.terms
        return " ".join([*(f'"{t}"' for t in whole), f'"{last}"*'])

    def fts5_in_name(self) -> str:
        """The same words, all in the name column."""
        return f"{{search_name}} : ({self.fts5()})"

    def fts5_not_in_name(self) -> str:
        """The same words, not all of them in the name (so in the description, shop or province)."""
        return f"({self.fts5()}) NOT {self.fts5_in_name()}"

    def like_patterns(self) -> list[str]:
        """One LIKE pattern per word, for documents made by :func:`document` (no LIKE wildcards
        can appear in a word, so none need escaping)."""
        *whole, last = self.terms
        return [*(f"% {t} %" for t in whole), f"% {last}%"]
