"""What the shop endpoints accept and reply."""

import datetime as dt
import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, field_validator, model_validator

from common.params import StrictBody
from common.text import CleanText, NonEmptyText
from common.vietnam import BANKS, VnMobile, province_name, ward_name

MAX_VND = 1_000_000_000
Money = Annotated[int, Field(ge=0, le=MAX_VND, strict=True, description="VND")]
SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{1,58}[a-z0-9])$")


class Delivery(StrictBody):
    """How the shop delivers. Fees in VND; a province's own fee wins over the flat fee."""

    pickup: bool = Field(True, strict=True, description="Buyers may collect at the nursery")
    flat_fee: Money | None = Field(None, description="Fee for any address")
    fee_by_province: dict[str, Money] = Field(default_factory=dict, max_length=34,
                                              description="Province code → fee")
    free_above: Money | None = Field(None, description="Orders of at least this value ship free")

    @field_validator("fee_by_province")
    @classmethod
    def _provinces(cls, v: dict[str, int]) -> dict[str, int]:
        unknown = [code for code in v if province_name(code) is None]
        if unknown:
            raise ValueError(f"unknown province codes: {', '.join(sorted(unknown))}")
        return v

    @model_validator(mode="after")
    def _some_way(self) -> "Delivery":
        if not self.pickup and self.flat_fee is None and not self.fee_by_province:
            raise ValueError("offer pickup or a delivery fee")
        return self


class BankAccount(StrictBody):
    bin: str = Field(pattern=r"^\d{6}$", description="The bank's NAPAS BIN (see GET /api/v1/banks)")
    account_number: str = Field(pattern=r"^[0-9A-Za-z]{4,19}$")
    holder: Annotated[NonEmptyText, AfterValidator(str.upper)] = Field(
        min_length=2, max_length=80, description="Account holder, as the bank writes it")

    @field_validator("bin")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in BANKS:
            raise ValueError("unknown bank; see GET /api/v1/banks")
        return v


class ShopFields(StrictBody):
    name: NonEmptyText = Field(min_length=1, max_length=120)
    description: CleanText = Field("", max_length=4000)
    province_code: str = Field(pattern=r"^\d{2}$")
    ward_code: str = Field(pattern=r"^\d{5}$")
    street: NonEmptyText = Field(min_length=1, max_length=200)
    phone: VnMobile
    zalo_phone: VnMobile | None = None
    delivery: Delivery = Field(default_factory=Delivery)
    min_order_value: Money = 0

    @model_validator(mode="after")
    def _address(self):
        if province_name(self.province_code) is None:
            raise ValueError("province_code: unknown province (see GET /api/v1/provinces)")
        if ward_name(self.province_code, self.ward_code) is None:
            raise ValueError("ward_code: not a ward of this province (see GET /api/v1/provinces/{code}/wards)")
        return self


class ShopCreate(ShopFields):
    slug: str | None = Field(None, description="The public address /s/{slug}; made from the name if absent")
    bank: BankAccount | None = None

    @field_validator("slug")
    @classmethod
    def _slug(cls, v: str | None) -> str | None:
        if v is not None and not SLUG.match(v):
            raise ValueError("3–60 lower-case letters, digits and hyphens")
        return v


class ShopUpdate(StrictBody):
    name: NonEmptyText | None = Field(None, min_length=1, max_length=120)
    description: CleanText | None = Field(None, max_length=4000)
    province_code: str | None = Field(None, pattern=r"^\d{2}$")
    ward_code: str | None = Field(None, pattern=r"^\d{5}$")
    street: NonEmptyText | None = Field(None, min_length=1, max_length=200)
    phone: VnMobile | None = None
    zalo_phone: VnMobile | None = None
    delivery: Delivery | None = None
    min_order_value: Money | None = None
    bank: BankAccount | None = None


class ShopPublic(BaseModel):
    id: int
    slug: str
    url: str
    name: str
    description: str
    province_code: str
    province_name: str | None
    ward_code: str
    ward_name: str | None
    street: str
    phone: str
    zalo_phone: str | None
    delivery: Delivery
    min_order_value: int
    bank_name: str | None
    created_at: dt.datetime


class Province(BaseModel):
    code: str = Field(description="Two digits, as `province_code` takes it")
    name: str


class Ward(BaseModel):
    code: str = Field(description="Five digits, as `ward_code` takes it")
    name: str


class Bank(BaseModel):
    bin: str = Field(description="The NAPAS bank identification number, as `bank.bin` takes it")
    name: str


class ShopPrivate(ShopPublic):
    """What the owner sees: the bank details, with the account number masked."""

    bank_bin: str | None
    bank_account_last4: str | None
    bank_holder: str | None
    owner_id: str
