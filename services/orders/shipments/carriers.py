"""The carriers Vietnamese nurseries ship with, and each one's public page for following a parcel by
its code (as the carriers link them from their own sites). ``other``: a carrier without such a page
here; the buyer sees its name and the code."""

from __future__ import annotations

from urllib.parse import quote

CARRIERS: dict[str, tuple[str, str | None]] = {
    "ghn": ("Giao Hàng Nhanh (GHN)", "https://donhang.ghn.vn/?order_code={code}"),
    "ghtk": ("Giao Hàng Tiết Kiệm (GHTK)", "https://i.ghtk.vn/{code}"),
    "viettel_post": ("Viettel Post", "https://viettelpost.com.vn/tra-cuu-hanh-trinh-don/?code={code}"),
    "jt": ("J&T Express", "https://jtexpress.vn/vi/tracking?type=track&billcode={code}"),
    "vnpost": ("VNPost", "https://vnpost.vn/vi-vn/dinh-vi/buu-pham?key={code}"),
    "other": ("Khác", None),
}


def carrier_name(carrier: str | None) -> str | None:
    return CARRIERS[carrier][0] if carrier in CARRIERS else None


def tracking_url(carrier: str | None, code: str | None) -> str | None:
    """The carrier's page for this parcel, or None (no carrier, no code, or no page known)."""
    if not carrier or not code or carrier not in CARRIERS or CARRIERS[carrier][1] is None:
        return None
    return CARRIERS[carrier][1].format(code=quote(code, safe=""))
