"""VietQR: the NAPAS EMVCo QR payload a Vietnamese bank app scans to pre-fill a transfer.

The payload is a string of TLV fields (a 2-digit tag, a 2-digit length, the value), nested for the
merchant account (38) and the additional data (62), closed by a CRC (63):

    00 "01"                          payload format
    01 "12" (dynamic: with amount)   point of initiation; "11" static, without an amount
    38 00 "A000000727"               NAPAS GUID
       01 00 BIN, 01 account         the beneficiary: bank (6-digit NAPAS BIN) and account number
       02 "QRIBFTTA"                 service: transfer to an account
    53 "704"                         currency: VND
    54 amount                        integer VND
    58 "VN"                          country
    62 08 memo                       purpose of transaction (what the buyer's transfer will say)
    63 CRC                           CRC-16/CCITT-FALSE over everything before it, "6304" included

``build`` makes a payload, ``parse`` reads one back and checks it (CRC included); the tests hold
``build`` to a known-good payload (``VERIFIED`` in tests/orders/test_payments.py). ``svg`` renders it
with segno.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

from common.text import fold

NAPAS_GUID = "A000000727"
SERVICE_ACCOUNT = "QRIBFTTA"  # transfer to an account number ("QRIBFTTC": to a card number)
CURRENCY_VND = "704"
COUNTRY = "VN"
DYNAMIC, STATIC = "12", "11"
MEMO_MAX = 25  # EMVCo: the purpose of transaction (62/08) is at most 25 characters
MAX_AMOUNT = 10**13 - 1  # tag 54 holds at most 13 characters

_BIN = re.compile(r"\d{6}")
_ACCOUNT = re.compile(r"[0-9A-Za-z]{1,19}")
_MEMO_DISALLOWED = re.compile(r"[^A-Za-z0-9 \-]")
_SPACES = re.compile(r"\s+")


class InvalidPayload(ValueError):
    """Not a VietQR payload we accept; the message says which part is wrong."""


# ---- CRC ---------------------------------------------------------------------------------------

def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: polynomial 0x1021, initial 0xFFFF, no reflection, no final XOR."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def crc_hex(text: str) -> str:
    return f"{crc16_ccitt_false(text.encode('ascii')):04X}"


# ---- TLV ---------------------------------------------------------------------------------------

def tlv(tag: str, value: str) -> str:
    if len(tag) != 2 or not tag.isdigit():
        raise ValueError(f"a tag is two digits, not {tag!r}")
    if len(value) > 99:
        raise ValueError(f"field {tag} is longer than 99 characters")
    return f"{tag}{len(value):02d}{value}"


def parse_tlv(text: str, where: str = "payload") -> list[tuple[str, str]]:
    """The fields of a TLV string, in order; refuses a length that runs past the end."""
    fields: list[tuple[str, str]] = []
    i = 0
    while i < len(text):
        head = text[i:i + 4]
        if len(head) < 4 or not head.isdigit():
            raise InvalidPayload(f"{where}: a field at position {i} has no tag and length")
        tag, length = head[:2], int(head[2:])
        value = text[i + 4:i + 4 + length]
        if len(value) != length:
            raise InvalidPayload(f"{where}: field {tag} says {length} characters but the text ends first")
        fields.append((tag, value))
        i += 4 + length
    return fields


# ---- Memo --------------------------------------------------------------------------------------

def memo_text(value: str) -> str:
    """What a bank app accepts as a transfer's content: ASCII letters, digits, spaces and hyphens, at
    most 25 characters. Vietnamese is folded (accents off, đ → d) keeping upper case, so that
    "Đơn CV-7K3Q9" → "Don CV-7K3Q9"; anything else is dropped."""
    out = []
    for ch in value:
        if ch.isascii():
            out.append(ch)
            continue
        folded = fold(ch)
        out.append(folded.upper() if ch.isupper() else folded)
    text = _MEMO_DISALLOWED.sub("", _SPACES.sub(" ", "".join(out)))
    return _SPACES.sub(" ", text).strip()[:MEMO_MAX].strip()


# ---- Build and parse ---------------------------------------------------------------------------

@dataclass(frozen=True)
class VietQR:
    bank_bin: str
    account: str
    amount: int | None
    memo: str
    service: str = SERVICE_ACCOUNT
    initiation: str = DYNAMIC
    currency: str = CURRENCY_VND
    country: str = COUNTRY


def build(bank_bin: str, account: str, amount: int | None, memo: str = "") -> str:
    """The payload for a transfer of ``amount`` VND (dynamic) or of any amount (static, ``None``)."""
    if not _BIN.fullmatch(bank_bin or ""):
        raise ValueError("the bank's BIN is six digits")
    if not _ACCOUNT.fullmatch(account or ""):
        raise ValueError("the account number is 1 to 19 letters or digits")
    if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int)
                               or not 0 < amount <= MAX_AMOUNT):
        raise ValueError("the amount is a positive whole number of VND")
    memo = memo_text(memo)
    beneficiary = tlv("00", bank_bin) + tlv("01", account)
    merchant = tlv("00", NAPAS_GUID) + tlv("01", beneficiary) + tlv("02", SERVICE_ACCOUNT)
    body = (tlv("00", "01") + tlv("01", STATIC if amount is None else DYNAMIC) + tlv("38", merchant)
            + tlv("53", CURRENCY_VND) + (tlv("54", str(amount)) if amount is not None else "")
            + tlv("58", COUNTRY) + (tlv("62", tlv("08", memo)) if memo else "") + "6304")
    return body + crc_hex(body)


def parse(payload: str) -> VietQR:
    """Read a VietQR payload back, checking its CRC, structure and every field ``build`` writes."""
    if not payload.isascii():
        raise InvalidPayload("the payload is not ASCII")
    if len(payload) < 8 or payload[-8:-4] != "6304":
        raise InvalidPayload("the payload does not end with a CRC field (6304….)")
    given, expected = payload[-4:], crc_hex(payload[:-4])
    if given != expected:
        raise InvalidPayload(f"CRC mismatch: the payload says {given}, its content gives {expected}")
    fields = parse_tlv(payload)
    tags = [tag for tag, _ in fields]
    if tags[0] != "00" or fields[0][1] != "01":
        raise InvalidPayload("the payload does not start with the format indicator 000201")
    if len(set(tags)) != len(tags):
        raise InvalidPayload("a field appears twice")
    top = dict(fields)
    for tag in ("01", "38", "53", "58"):
        if tag not in top:
            raise InvalidPayload(f"field {tag} is missing")
    initiation = top["01"]
    if initiation not in (DYNAMIC, STATIC):
        raise InvalidPayload(f"field 01 (point of initiation) is {initiation!r}, not 11 or 12")
    merchant = dict(parse_tlv(top["38"], "field 38"))
    if merchant.get("00") != NAPAS_GUID:
        raise InvalidPayload("field 38 is not a NAPAS account (GUID A000000727)")
    beneficiary = dict(parse_tlv(merchant.get("01", ""), "field 38/01"))
    bank_bin, account = beneficiary.get("00", ""), beneficiary.get("01", "")
    if not _BIN.fullmatch(bank_bin):
        raise InvalidPayload("field 38/01/00 (bank BIN) is not six digits")
    if not _ACCOUNT.fullmatch(account):
        raise InvalidPayload("field 38/01/01 (account) is not 1 to 19 letters or digits")
    amount = None
    if "54" in top:
        if not top["54"].isdigit() or int(top["54"]) <= 0:
            raise InvalidPayload("field 54 (amount) is not a positive whole number of VND")
        amount = int(top["54"])
    if initiation == DYNAMIC and amount is None:
        raise InvalidPayload("a dynamic (12) payload needs an amount (54)")
    memo = ""
    if "62" in top:
        memo = dict(parse_tlv(top["62"], "field 62")).get("08", "")
        if len(memo) > MEMO_MAX or _MEMO_DISALLOWED.search(memo):
            raise InvalidPayload("field 62/08 (memo) is over 25 characters or has characters banks refuse")
    return VietQR(bank_bin=bank_bin, account=account, amount=amount, memo=memo,
                  service=merchant.get("02", ""), initiation=initiation, currency=top["53"], country=top["58"])


def svg(payload: str, title: str | None = None, scale: int = 6) -> str:
    """The QR code as a standalone SVG document (no XML declaration, so it also inlines into HTML):
    error correction M or better, the 4-module quiet zone, black on an opaque white background so
    that it scans on a dark-mode screen too."""
    import segno  # here: the QR code is drawn only for a bank transfer's page

    qr = segno.make(payload, error="m", micro=False)
    out = io.BytesIO()
    qr.save(out, kind="svg", scale=scale, border=4, dark="#000", light="#fff", xmldecl=False,
            svgclass=None, lineclass=None, title=title, nl=False)
    return out.getvalue().decode("utf-8")
