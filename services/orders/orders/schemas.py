"""What the order endpoints accept and reply. Clients never send prices or totals: the shape
forbids unknown fields, so a `unit_price` or `total` in a request is a 422."""

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, EmailStr, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from common.params import StrictBody
from common.text import CleanText, NonEmptyText
from common.vietnam import VnMobile, province_name, ward_name
from services.orders.shipments.schemas import ShipmentOut

CONSENT_PURPOSES = (
    "Chợ Vườn and the shop use your name, phone, email and address to deliver this order, to tell you "
    "about it, and to keep the shop's sales records (required by law). Nothing is used for advertising."
)
MAX_QUANTITY = 1_000_000


def _json_true(value: object) -> object:
    if value is not True:
        raise ValueError("Consent is the JSON value true")
    return value


# Only JSON `true` (the lax default would take `1` as well).
Consent = Annotated[Literal[True], BeforeValidator(_json_true)]


class LineIn(StrictBody):
    variant_id: int = Field(ge=1, le=2**31 - 1, strict=True)
    quantity: int = Field(ge=1, le=MAX_QUANTITY, strict=True)


class Contact(StrictBody):
    name: NonEmptyText = Field(min_length=1, max_length=100)
    phone: VnMobile
    email: EmailStr | None = Field(None, max_length=254)


class Address(StrictBody):
    province_code: str = Field(pattern=r"^\d{2}$")
    ward_code: str = Field(pattern=r"^\d{5}$")
    street: NonEmptyText = Field(min_length=1, max_length=200)

    @field_validator("province_code")
    @classmethod
    def _province(cls, v: str) -> str:
        if province_name(v) is None:
            raise ValueError("unknown province (see GET /api/v1/provinces)")
        return v

    @model_validator(mode="after")
    def _ward(self) -> "Address":
        if ward_name(self.province_code, self.ward_code) is None:
            raise ValueError("ward_code is not a ward of this province (see GET /api/v1/provinces/{code}/wards)")
        return self


ADDRESS_DESCRIPTION = "Where to ship: required for `ship`, not needed for `pickup` (then not kept)"


def _address_to_ship(address: "Address | None", info: ValidationInfo) -> "Address | None":
    """An address is needed to ship, not to collect at the nursery (``delivery_method: pickup``)."""
    method = info.data.get("delivery_method")
    if method == "pickup":
        return None
    if method == "ship" and address is None:
        raise PydanticCustomError("missing", "An address is required to ship (not for pickup)")
    return address


class OrderFields(StrictBody):
    lines: list[LineIn] = Field(min_length=1, max_length=50)
    contact: Contact
    delivery_method: Literal["ship", "pickup"] = "ship"
    address: Address | None = Field(None, description=ADDRESS_DESCRIPTION, validate_default=True)
    payment_method: Literal["cod", "bank_transfer"]
    note: CleanText = Field("", max_length=1000)
    locale: Literal["vi", "en"] = Field("vi", description="The buyer's language for messages about this order")
    consent: Consent = Field(description="The buyer agrees to the purposes that GET /api/v1/orders/consent states")

    _address = field_validator("address")(_address_to_ship)


class OrderCreate(OrderFields):
    shop_id: int | None = Field(None, ge=1, le=2**31 - 1, strict=True,
                                description="When given, every line must be of it")


class PhoneOrderCreate(OrderFields):
    """An order the grower took by phone or in a chat: same rules, marked with where it came from."""

    consent: Consent = Field(description="The buyer agreed on the phone or in the chat to the stated purposes")
    source: Literal["phone", "facebook", "zalo"] = Field(
        "phone", description="Where the grower took it: a call, a Facebook chat or a Zalo chat")


class CheckoutCreate(OrderFields):
    """Several shops at once: lines are split per shop into one order each, all reserved or none."""

    lines: list[LineIn] = Field(min_length=1, max_length=100)


class LineOut(BaseModel):
    variant_id: int
    product_id: int
    product_name: str
    variant_label: str
    quantity: int
    unit_price: int
    price_kind: Literal["retail", "wholesale"]
    line_total: int


class HistoryOut(BaseModel):
    action: str
    from_status: str | None
    to_status: str | None
    actor_role: str
    note: str
    at: dt.datetime


class OrderOut(BaseModel):
    id: int
    code: str
    shop_id: int
    shop_name: str
    status: str
    payment_status: str
    payment_method: str
    delivery_method: str
    source: str
    lines: list[LineOut]
    contact: dict
    address: dict
    note: str
    subtotal: int
    delivery_fee: int
    total: int
    allowed_actions: list[str]
    history: list[HistoryOut]
    shipment: ShipmentOut | None = Field(None, description="The carrier and tracking code, once the grower sets them")
    created_at: dt.datetime
    updated_at: dt.datetime


class OrderCreated(OrderOut):
    tracking_url: str = Field(description="The buyer's private link to follow this order; mailed to `contact.email` "
                                          "when given; its grower reads it again at `GET /orders/tracking-links`")


class CheckoutOut(BaseModel):
    checkout_id: str
    orders: list[OrderCreated]
    total: int


class ConsentOut(BaseModel):
    purposes: str = Field(description="What the buyer agrees to with `consent: true`, to show beside the box")


class OrderCounts(BaseModel):
    """How many of the shop's orders are in each state."""

    placed: int
    confirmed: int
    shipped: int
    delivered: int
    cancelled: int


class CancelRequest(StrictBody):
    reason: str = Field("", max_length=500)
