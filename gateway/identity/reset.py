"""Password reset: a link by email or a six-digit code by SMS, either working once for
``GATEWAY_PASSWORD_RESET_TTL`` seconds (ten minutes). Asking again ends the account's earlier ones; a
code is ended too after ``GATEWAY_PASSWORD_RESET_CODE_TRIES`` wrong tries. Choosing the new password
ends every sign-in of the account: all its refresh tokens are revoked.

Only digests are stored: the link's 256-bit token as SHA-256, the code (a million values, so a plain
hash would fall to a lookup) as an HMAC keyed from the gateway's signing key and bound to the
reset's id. The rate limits (per phone or email, per client address) are the caller's, as for sign-in.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.identity.models import Account, PasswordReset, RefreshToken, utcnow
from gateway.identity.passwords import hash_password, password_problem
from gateway.identity.tokens import digest

EMAIL, SMS = "email", "sms"


class ResetRefused(Exception):
    """The link or code does not work (unknown, expired, used, ended, or wrong)."""


class WeakPassword(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _mac(key: bytes, reset_id: str, code: str) -> str:
    return hmac.new(key, f"{reset_id}:{code}".encode(), hashlib.sha256).hexdigest()


def mac_key(signing_secret: str) -> bytes:
    return hashlib.sha256(b"cho-vuon password reset code\0" + signing_secret.encode()).digest()


async def start(session: AsyncSession, account: Account, channel: str, *, ttl: int, key: bytes
                ) -> tuple[PasswordReset, str]:
    """A new reset for ``account``, ending any earlier one. Returns it and its secret (the link's
    token, or the code), which is nowhere stored."""
    now = utcnow()
    await session.execute(update(PasswordReset).where(PasswordReset.account_id == account.id,
                                                      PasswordReset.ended_at.is_(None)).values(ended_at=now))
    reset = PasswordReset(account_id=account.id, channel=channel, secret_hash="", created_at=now,
                          expires_at=now + dt.timedelta(seconds=ttl))
    if channel == EMAIL:
        secret = secrets.token_urlsafe(32)
        reset.secret_hash = digest(secret)
    else:
        secret = f"{secrets.randbelow(10**6):06d}"
        reset.secret_hash = _mac(key, reset.id, secret)
    session.add(reset)
    await session.flush()
    return reset, secret


def _live(query):
    return query.where(PasswordReset.ended_at.is_(None), PasswordReset.expires_at > utcnow())


async def by_link(session: AsyncSession, token: str) -> tuple[PasswordReset, Account]:
    """The live email reset of ``token`` and its account, or :class:`ResetRefused`."""
    reset = await session.scalar(_live(select(PasswordReset).where(PasswordReset.secret_hash == digest(token),
                                                                   PasswordReset.channel == EMAIL)))
    account = await session.get(Account, reset.account_id) if reset is not None else None
    if reset is None or account is None or account.locked:
        raise ResetRefused()
    return reset, account


async def check_code(session: AsyncSession, account: Account | None, code: str, *, key: bytes,
                     max_tries: int) -> PasswordReset:
    """The account's live SMS reset when ``code`` is its code. A wrong code counts a try; the last
    allowed wrong try ends the reset."""
    reset = None
    if account is not None and not account.locked:
        reset = await session.scalar(_live(select(PasswordReset).where(PasswordReset.account_id == account.id,
                                                                       PasswordReset.channel == SMS))
                                     .order_by(PasswordReset.created_at.desc()).limit(1))
    if reset is None:
        raise ResetRefused()
    if not (code.isdigit() and len(code) == 6 and hmac.compare_digest(reset.secret_hash, _mac(key, reset.id, code))):
        tries = reset.wrong_tries + 1
        await session.execute(update(PasswordReset).where(PasswordReset.id == reset.id).values(
            wrong_tries=tries, **({"ended_at": utcnow()} if tries >= max_tries else {})))
        await session.commit()  # the try counts although the request fails: committed before the refusal
        raise ResetRefused()
    return reset


async def finish(session: AsyncSession, reset: PasswordReset, account: Account, password: str) -> None:
    """Spend ``reset`` (once: a second use, even at the same moment, is refused), set the password and
    sign the account out everywhere. A password the policy refuses spends nothing."""
    reason = password_problem(password, phone=account.phone, name=account.name)
    if reason:
        raise WeakPassword(reason)
    new_hash = await hash_password(password)
    now = utcnow()
    claimed = await session.execute(update(PasswordReset).where(PasswordReset.id == reset.id,
                                                                PasswordReset.ended_at.is_(None),
                                                                PasswordReset.expires_at > now)
                                    .values(ended_at=now, used_at=now))
    if claimed.rowcount != 1:
        await session.rollback()
        raise ResetRefused()
    await session.execute(update(Account).where(Account.id == account.id).values(password_hash=new_hash))
    await session.execute(update(RefreshToken).where(RefreshToken.account_id == account.id,
                                                     RefreshToken.revoked_at.is_(None)).values(revoked_at=now))
