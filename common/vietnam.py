"""Vietnam specifics shared by the apps: mobile phone numbers."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

import phonenumbers
from phonenumbers import PhoneNumberType
from pydantic import AfterValidator, Field, TypeAdapter, ValidationError

from common.errors import UnprocessableEntity

# Since 2018 the 11-digit mobile numbers moved to 10 digits: 0168 x → 038 x, and so on.
OLD_MOBILE_PREFIXES = {
    "0162": "032", "0163": "033", "0164": "034", "0165": "035", "0166": "036", "0167": "037",
    "0168": "038", "0169": "039", "0120": "070", "0121": "079", "0122": "077", "0126": "076",
    "0128": "078", "0123": "083", "0124": "084", "0125": "085", "0127": "081", "0129": "082",
    "0186": "056", "0188": "058", "0199": "059",
}
_NOISE = re.compile(r"[\s().\-]")


class InvalidPhone(ValueError):
    """Not a Vietnamese mobile number; the message says why and what to do."""


def _national(raw: str) -> str:
    """Reduce the usual spellings to national digits: "(+84) 0912 345 678" → "0912345678"."""
    digits = _NOISE.sub("", raw)
    if digits.startswith("+84"):
        digits = digits[3:]
    elif digits.startswith("0084"):
        digits = digits[4:]
    elif digits.startswith("84") and len(digits) in (11, 12):
        digits = digits[2:]
    if not digits.startswith("0"):
        digits = "0" + digits
    return digits


def normalise_vn_mobile(raw: str) -> str:
    """A Vietnamese mobile number in E.164 (``+84912345678``), or :class:`InvalidPhone`."""
    if not isinstance(raw, str) or len(raw) > 32 or "\x00" in raw:
        raise InvalidPhone("Enter a Vietnamese mobile number, like 0912 345 678.")
    compact = _NOISE.sub("", raw)
    if compact.startswith("+") and not compact.startswith("+84"):
        raise InvalidPhone("Only Vietnamese numbers (+84) are accepted.")
    national = _national(raw)
    if not national.isdigit():
        raise InvalidPhone("A phone number has only digits, spaces and an optional +84.")
    if len(national) == 11 and national[:4] in OLD_MOBILE_PREFIXES:
        new = OLD_MOBILE_PREFIXES[national[:4]] + national[4:]
        raise InvalidPhone(f"11-digit numbers changed to 10 digits in 2018: try {new}.")
    try:
        number = phonenumbers.parse(national, "VN")
    except phonenumbers.NumberParseException:
        raise InvalidPhone("Enter a Vietnamese mobile number, like 0912 345 678.") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone("This is not a valid Vietnamese phone number.")
    kind = phonenumbers.number_type(number)
    if kind not in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE):
        raise InvalidPhone("This looks like a landline; enter a mobile number (10 digits, starting 03, 05, "
                           "07, 08 or 09).")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _mobile(value: str) -> str:
    try:
        return normalise_vn_mobile(value)
    except InvalidPhone as exc:
        raise ValueError(str(exc)) from None


VnMobile = Annotated[str, Field(max_length=32, description="A Vietnamese mobile number, any usual spelling; "
                                                           "replies give it in E.164"),
                     AfterValidator(_mobile)]
"""A request field holding a Vietnamese mobile number, normalised to E.164 (``+84912345678``)."""


# ---- Administrative divisions (34 provinces since 1 July 2025), from the vietnam-provinces package ----

def province_name(code: str) -> str | None:
    from vietnam_provinces import Province

    try:
        return Province.from_code(int(code)).name if code.isdigit() else None
    except (ValueError, KeyError):
        return None


def ward_name(province_code: str, ward_code: str) -> str | None:
    """The ward's name when it exists and lies in the province, else None."""
    from vietnam_provinces import Ward

    if not (province_code.isdigit() and ward_code.isdigit()):
        return None
    try:
        ward = Ward.from_code(int(ward_code))
    except (ValueError, KeyError):
        return None
    return ward.name if ward.province_code.value == int(province_code) else None


def provinces() -> list[dict[str, str]]:
    from vietnam_provinces import Province

    return [{"code": f"{p.code.value:02d}", "name": p.name} for p in Province.iter_all()]


def wards(province_code: str) -> list[dict[str, str]] | None:
    from vietnam_provinces import Province, Ward

    if not province_code.isdigit():
        return None
    try:
        province = Province.from_code(int(province_code))
    except (ValueError, KeyError):
        return None
    return [{"code": f"{w.code.value:05d}", "name": w.name} for w in Ward.iter_by_province(province.code)]


# ---- Banks for VietQR: NAPAS bank identification numbers (BIN) ----

BANKS: dict[str, str] = {
    "970436": "Vietcombank", "970415": "VietinBank", "970418": "BIDV", "970405": "Agribank",
    "970407": "Techcombank", "970422": "MB Bank", "970416": "ACB", "970432": "VPBank",
    "970403": "Sacombank", "970423": "TPBank", "970437": "HDBank", "970441": "VIB", "970443": "SHB",
    "970431": "Eximbank", "970426": "MSB", "970448": "OCB", "970440": "SeABank", "970449": "LPBank",
    "970428": "Nam A Bank", "970409": "Bac A Bank", "970452": "KienlongBank", "970400": "Saigonbank",
    "970412": "PVcomBank", "970425": "ABBANK", "970438": "BaoViet Bank", "970427": "VietABank",
    "970419": "NCB", "970406": "DongA Bank", "970408": "GPBank", "970414": "OceanBank",
    "970444": "CBBank", "970433": "Vietbank", "970454": "BVBank", "970430": "PGBank",
    "970429": "SCB", "970458": "UOB Vietnam", "970424": "Shinhan Bank Vietnam",
}


# ---- Dates: a grower thinks in Vietnamese days ----

# Vietnam has kept UTC+7, without daylight saving, since 1975: a fixed offset needs no tz database
# (slim container images may lack one).
VN_TZ = dt.timezone(dt.timedelta(hours=7), "ICT")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = TypeAdapter(dt.datetime)


def local_bound(value: str | None, name: str, *, end: bool = False) -> dt.datetime | None:
    """A ``since``/``until`` query value as an aware datetime.

    A date (``2025-07-01``) or a time without offset is Vietnam time (UTC+7); ``until`` as a date
    (``end=True``) includes that whole day. Times with an offset are taken as they are; anything
    else is a 422 naming the query field.
    """
    if value is None or value == "":
        return None
    if _DATE.fullmatch(value):
        try:
            day = dt.date.fromisoformat(value)
        except ValueError:
            raise _bad(name, "not a real date (YYYY-MM-DD)") from None
        if end:
            day += dt.timedelta(days=1)
        return dt.datetime.combine(day, dt.time(), tzinfo=VN_TZ)
    try:
        moment = _DATETIME.validate_python(value)
    except ValidationError:
        raise _bad(name, "a date (YYYY-MM-DD) or a date and time (ISO 8601) is expected") from None
    return moment.replace(tzinfo=VN_TZ) if moment.tzinfo is None else moment


def _bad(name: str, message: str) -> UnprocessableEntity:
    return UnprocessableEntity(f"{name}: {message}",
                               errors=[{"field": f"query.{name}", "message": message, "type": "datetime_parsing"}])


def local_phone(e164: str | None) -> str:
    """``+84987654321`` → ``0987 654 321``, as Vietnamese write a mobile number."""
    if not e164 or not e164.startswith("+84") or len(e164) != 12:
        return e164 or ""
    digits = "0" + e164[3:]
    return f"{digits[:4]} {digits[4:7]} {digits[7:]}"
