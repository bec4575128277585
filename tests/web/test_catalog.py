"""The Vietnamese catalog: every message the pages can show has a translation, and none is left over."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

WEB = Path(__file__).resolve().parents[2] / "gateway" / "web"
KEYWORDS = {"_": None, "gettext": None, "N_": None}
METHODS = [("**.py", "python"), ("templates/**.html", "jinja2")]


def extracted() -> set[str]:
    found = extract_from_dir(str(WEB), METHODS, keywords=KEYWORDS,
                             options_map={"templates/**.html": {"extensions": "jinja2.ext.i18n"}})
    return {message for _, _, message, _, _ in found if isinstance(message, str) and message}


def test_every_message_has_its_vietnamese_and_none_is_stale() -> None:
    with (WEB / "locale" / "vi" / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        catalog = read_po(fh, locale="vi")
    translated = {m.id: m.string for m in catalog if m.id}
    used = extracted()
    assert len(used) > 150
    assert sorted(used - translated.keys()) == [], "messages without a Vietnamese translation"
    assert sorted(translated.keys() - used) == [], "translations no page uses any more"
    assert [k for k, v in translated.items() if not v or v == k] == []
    assert not any(m.fuzzy for m in catalog if m.id)


def test_each_message_is_translated_once() -> None:
    """Two translations of one message (as merging two branches can leave) would show whichever the
    reader keeps last; msgfmt calls it a fatal error."""
    text = (WEB / "locale" / "vi" / "LC_MESSAGES" / "messages.po").read_text(encoding="utf-8")
    ids = re.findall(r'^(?:msgctxt "((?:[^"\\]|\\.)*)"\n)?msgid "((?:[^"\\]|\\.)*)"\n((?:"(?:[^"\\]|\\.)*"\n)*)',
                     text, flags=re.M)
    keys = [(ctx, head + "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', rest))) for ctx, head, rest in ids]
    assert len(keys) > 150
    assert sorted({k for k in keys if keys.count(k) > 1}) == []
