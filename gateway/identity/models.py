"""Accounts, refresh-token families and integrators' API keys: the gateway's own tables."""

import datetime as dt
import uuid

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field

from common.db import UtcDateTime
from gateway.base import GatewayModel


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _ts(**kw) -> Column:
    return Column(UtcDateTime(), **kw)


class Account(GatewayModel, table=True):
    __tablename__ = "accounts"

    id: str = Field(default_factory=lambda: str(uuid.uuid4()), primary_key=True, max_length=36)
    role: str = Field(max_length=10)
    name: str = Field(max_length=100)
    phone: str = Field(max_length=16, unique=True, description="E.164")
    email: str | None = Field(default=None, max_length=254, unique=True)
    password_hash: str = Field(max_length=255)
    locale: str = Field(default="vi", max_length=5)
    locked: bool = Field(default=False, description="Set by an admin; a locked account cannot sign in")
    created_at: dt.datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class RefreshToken(GatewayModel, table=True):
    """One link of a rotation chain. Presenting a used link again revokes its whole family."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (Index("ix_refresh_tokens_family", "family_id"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(foreign_key="accounts.id", ondelete="CASCADE", index=True, max_length=36)
    family_id: str = Field(max_length=36)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    expires_at: dt.datetime = Field(sa_column=_ts(nullable=False))
    used_at: dt.datetime | None = Field(default=None, sa_column=_ts())
    revoked_at: dt.datetime | None = Field(default=None, sa_column=_ts())


class ApiKey(GatewayModel, table=True):
    __tablename__ = "api_keys"

    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(foreign_key="accounts.id", ondelete="CASCADE", index=True, max_length=36)
    name: str = Field(max_length=80)
    prefix: str = Field(max_length=16, unique=True, description="Shown to the owner to tell keys apart")
    key_hash: str = Field(max_length=64)
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: dt.datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    last_used_at: dt.datetime | None = Field(default=None, sa_column=_ts())
    revoked_at: dt.datetime | None = Field(default=None, sa_column=_ts())


class PasswordReset(GatewayModel, table=True):
    """A password-reset link (by email) or code (by SMS): it works once, until ``expires_at``; a newer
    one for the account, a used one or too many wrong codes end it (``ended_at``)."""

    __tablename__ = "password_resets"

    id: str = Field(default_factory=lambda: str(uuid.uuid4()), primary_key=True, max_length=36)
    account_id: str = Field(foreign_key="accounts.id", ondelete="CASCADE", index=True, max_length=36)
    channel: str = Field(max_length=5, description="email (a link) or sms (a code)")
    secret_hash: str = Field(max_length=64, unique=True,
                             description="SHA-256 of the link's token; HMAC of the code with the reset's id")
    wrong_tries: int = Field(default=0)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    expires_at: dt.datetime = Field(sa_column=_ts(nullable=False))
    ended_at: dt.datetime | None = Field(default=None, sa_column=_ts())
    used_at: dt.datetime | None = Field(default=None, sa_column=_ts())
