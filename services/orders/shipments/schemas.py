"""What the shipment endpoint accepts and replies."""

from typing import Literal

from pydantic import BaseModel, Field

from common.params import StrictBody

Carrier = Literal["ghn", "ghtk", "viettel_post", "jt", "vnpost", "other"]


class ShipmentIn(StrictBody):
    carrier: Carrier = Field(description="GHN, GHTK, Viettel Post, J&T, VNPost, or another")
    tracking_code: str | None = Field(None, min_length=3, max_length=40, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                                      description="The carrier's code for the parcel (letters, digits, . _ -)")


class ShipmentOut(BaseModel):
    carrier: Carrier
    carrier_name: str
    tracking_code: str | None
    tracking_url: str | None = Field(description="The carrier's page for this parcel, when it has one")
