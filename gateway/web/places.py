"""Provinces' wards as people look for them: in Vietnamese alphabetical order of their names (the
word "Phường", "Xã" or "Đặc khu" aside), so that a list of 103 wards can be read and searched."""

from __future__ import annotations

import unicodedata

from common.vietnam import wards

ALPHABET = "aăâbcdđeêfghijklmnoôơpqrstuưvwxyz"
TONES = {"\u0300", "\u0301", "\u0303", "\u0309", "\u0323"}  # huyền, sắc, ngã, hỏi, nặng
KINDS = ("phường ", "xã ", "đặc khu ")


def vietnamese_key(text: str) -> tuple:
    """A sort key in Vietnamese order: letters first (ă after a, đ after d…), tones after."""
    text = text.lower()
    for kind in KINDS:
        if text.startswith(kind):
            text = text[len(kind):]
            break
    letters, tones = [], []
    for char in unicodedata.normalize("NFD", text):
        if char in TONES:
            tones.append(char)
            continue
        if unicodedata.combining(char) and letters:  # breve, circumflex, horn: part of the letter
            letters[-1] = unicodedata.normalize("NFC", letters[-1] + char)
            continue
        letters.append(char)
    return tuple(ALPHABET.find(c) if c in ALPHABET else 100 + ord(c) for c in letters), tuple(tones), text


def sorted_wards(province_code: str) -> list[dict[str, str]]:
    """The province's wards in Vietnamese order, each name with single spaces (the source has a few doubled)."""
    tidy = [{**w, "name": " ".join(w["name"].split())} for w in wards(province_code) or []]
    return sorted(tidy, key=lambda w: vietnamese_key(w["name"]))
