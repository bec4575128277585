"""What the identity endpoints accept and reply."""

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, EmailStr, Field, field_validator

from common.auth import SCOPES
from common.params import StrictBody
from common.text import NonEmptyText
from common.vietnam import VnMobile


class Registration(StrictBody):
    role: Literal["grower", "buyer"]
    name: NonEmptyText = Field(min_length=1, max_length=100)
    phone: VnMobile
    password: str = Field(min_length=8, max_length=128)
    email: EmailStr | None = Field(default=None, max_length=254)
    locale: Literal["vi", "en"] = "vi"

    @field_validator("email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        return v.lower() if v else v


class AccountPublic(BaseModel):
    id: str
    role: str
    name: str
    phone: str
    email: str | None
    locale: str
    created_at: dt.datetime


class AccountUpdate(StrictBody):
    name: NonEmptyText | None = Field(default=None, min_length=1, max_length=100)
    email: EmailStr | None = Field(default=None, max_length=254)
    locale: Literal["vi", "en"] | None = None


class Login(StrictBody):
    login: str = Field(min_length=1, max_length=254, description="Phone number or email")
    password: str = Field(min_length=1, max_length=128)


class RefreshRequest(StrictBody):
    refresh_token: str = Field(min_length=1, max_length=200)


class TokenPair(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    refresh_token: str


Scope = Literal[SCOPES]  # type: ignore[valid-type]


class ApiKeyCreate(StrictBody):
    name: NonEmptyText = Field(min_length=1, max_length=80)
    scopes: list[Scope] = Field(min_length=1, max_length=len(SCOPES))


class ApiKeyPublic(BaseModel):
    id: int
    name: str
    prefix: str
    scopes: list[str]
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="The key itself. Shown once: store it now.")


class ExportedAccount(AccountPublic):
    locked: bool = Field(description="Sign-in is locked after too many wrong passwords")


class PersonalData(BaseModel):
    """Everything Chợ Vườn holds about an account: the gateway's part, and each service's as it holds it."""

    account: ExportedAccount
    api_keys: list[ApiKeyPublic]
    catalog: dict[str, Any] = Field(description="Your shop (with its bank account) and its varieties")
    orders: dict[str, Any] = Field(description="The orders you placed, with their lines")
    notify: dict[str, Any] = Field(description="Your notifications and notification settings")


class Jwk(BaseModel):
    """An Ed25519 public key (RFC 8037) that verifies access tokens."""

    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    x: str = Field(description="The public key, base64url")
    kid: str = Field(description="Matches the `kid` in an access token's header")
    alg: Literal["EdDSA"]
    use: Literal["sig"]


class Jwks(BaseModel):
    keys: list[Jwk]
