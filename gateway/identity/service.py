"""Accounts, sign-in, token rotation and API keys. Endpoints call these."""

from __future__ import annotations

import datetime as dt
import hmac
import uuid

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from common.db import flush_unique, get_scoped
from common.errors import Conflict, Unauthorized, UnprocessableEntity
from common.pagination import keyset_page
from common.vietnam import InvalidPhone, normalise_vn_mobile
from gateway.identity.models import Account, ApiKey, RefreshToken, utcnow
from gateway.identity.passwords import burn_time, hash_password, password_problem, verify_password
from gateway.identity.schemas import AccountUpdate, ApiKeyCreate, Registration, TokenPair
from gateway.identity.tokens import Signer, api_key_prefix, digest, new_api_key, new_refresh_token


class InvalidCredentials(Unauthorized):
    slug, title = "invalid-credentials", "Wrong login or password"


class InvalidRefreshToken(Unauthorized):
    slug, title = "invalid-refresh-token", "The refresh token is not valid"


def weak_password(reason: str) -> UnprocessableEntity:
    return UnprocessableEntity(reason, errors=[{"field": "body.password", "message": reason,
                                                "type": "password_policy"}])


async def register(session: AsyncSession, data: Registration) -> Account:
    reason = password_problem(data.password, phone=data.phone, name=data.name)
    if reason:
        raise weak_password(reason)
    account = Account(role=data.role, name=data.name, phone=data.phone, email=data.email,
                      locale=data.locale, password_hash=await hash_password(data.password))
    session.add(account)
    await flush_unique(session, Conflict("An account with this phone number or email already exists; sign in instead"))
    return account


def login_key(login: str) -> str:
    """One spelling per account for rate limits: phones in E.164, emails lower-cased."""
    login = login.strip()
    if "@" not in login:
        try:
            return normalise_vn_mobile(login)
        except InvalidPhone:
            pass
    return login.lower()


async def _find_by_login(session: AsyncSession, login: str) -> Account | None:
    login = login.strip()
    if "@" in login:
        return await session.scalar(select(Account).where(Account.email == login.lower()))
    try:
        phone = normalise_vn_mobile(login)
    except InvalidPhone:
        return None
    return await session.scalar(select(Account).where(Account.phone == phone))


find_by_login = _find_by_login


async def authenticate(session: AsyncSession, login: str, password: str) -> Account:
    """The account, or the same 401 for a wrong password, an unknown login and a locked account."""
    account = await _find_by_login(session, login)
    if account is None:
        await burn_time(password)
        raise InvalidCredentials()
    ok = await verify_password(account.password_hash, password)
    if not ok or account.locked:
        raise InvalidCredentials()
    return account


async def issue_tokens(session: AsyncSession, account: Account, *, signer: Signer, refresh_ttl: int,
                       family_id: str | None = None) -> TokenPair:
    refresh = new_refresh_token()
    session.add(RefreshToken(account_id=account.id, family_id=family_id or str(uuid.uuid4()),
                             token_hash=digest(refresh),
                             expires_at=utcnow() + dt.timedelta(seconds=refresh_ttl)))
    return TokenPair(access_token=signer.access_token(sub=account.id, role=account.role),
                     expires_in=signer.access_ttl, refresh_token=refresh)


async def _revoke_family(session: AsyncSession, family_id: str) -> None:
    await session.execute(update(RefreshToken).where(RefreshToken.family_id == family_id,
                                                     RefreshToken.revoked_at.is_(None))
                          .values(revoked_at=utcnow()))


async def _revoke_and_refuse(session: AsyncSession, family_id: str, refusal: InvalidRefreshToken):
    """The family is revoked although the request fails: committed here, before the 401, which the
    request's unit of work would otherwise roll back."""
    await _revoke_family(session, family_id)
    await session.commit()
    raise refusal


async def rotate(session: AsyncSession, token: str, *, signer: Signer, refresh_ttl: int,
                 grace: float = 0.0) -> TokenPair:
    """Exchange a refresh token for a new pair. A token used twice revokes its whole family.

    ``grace`` (seconds; 0 for the API): a token presented again within this time of its first use gets a
    pair of its own in the same family instead (two requests of one browser that found the access
    token expired together, on any gateway replica: the state is the row's ``used_at``, in the
    database every replica shares). Later than that, a reuse revokes the family as ever.
    """
    row = await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == digest(token)))
    if row is None or row.revoked_at is not None:
        raise InvalidRefreshToken()
    if row.expires_at <= utcnow():
        raise InvalidRefreshToken("The refresh token has expired; sign in again")
    claimed = await session.execute(update(RefreshToken)
                                    .where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None))
                                    .values(used_at=utcnow()))
    if claimed.rowcount != 1 and grace > 0:
        used_at = await session.scalar(select(RefreshToken.used_at).where(RefreshToken.id == row.id))
        if used_at is not None and utcnow() - used_at <= dt.timedelta(seconds=grace):
            account = await session.get(Account, row.account_id)
            if account is not None and not account.locked:
                return await issue_tokens(session, account, signer=signer, refresh_ttl=refresh_ttl,
                                          family_id=row.family_id)
    if claimed.rowcount != 1:  # already rotated: someone replays a stolen token
        await _revoke_and_refuse(session, row.family_id, InvalidRefreshToken(
            "This refresh token was already used; every session of it is now signed out"))
    account = await session.get(Account, row.account_id)
    if account is None or account.locked:
        await _revoke_and_refuse(session, row.family_id, InvalidRefreshToken())
    return await issue_tokens(session, account, signer=signer, refresh_ttl=refresh_ttl, family_id=row.family_id)


async def logout(session: AsyncSession, token: str, account_id: str | None = None) -> None:
    row = await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == digest(token)))
    if row is not None and (account_id is None or row.account_id == account_id):
        await _revoke_family(session, row.family_id)


async def get_account(session: AsyncSession, account_id: str) -> Account:
    account = await session.get(Account, account_id)
    if account is None:
        raise Unauthorized("This account no longer exists")
    return account


async def update_account(session: AsyncSession, account_id: str, data: AccountUpdate) -> Account:
    account = await get_account(session, account_id)
    for name, value in data.model_dump(exclude_unset=True).items():
        if value is not None:
            setattr(account, name, value.lower() if name == "email" else value)
    await flush_unique(session, Conflict("Another account uses this email"))
    return account


# ---- API keys --------------------------------------------------------------------------------------

async def create_api_key(session: AsyncSession, account: Account, data: ApiKeyCreate) -> tuple[ApiKey, str]:
    prefix, key = new_api_key()
    row = ApiKey(account_id=account.id, name=data.name, prefix=prefix, key_hash=digest(key),
                 scopes=sorted(set(data.scopes)))
    session.add(row)
    await session.flush()
    return row, key


async def list_api_keys(session: AsyncSession, account_id: str, limit: int,
                        cursor: str | None) -> tuple[list[ApiKey], str | None]:
    return await keyset_page(session, select(ApiKey).where(ApiKey.account_id == account_id), ApiKey.id,
                             limit, cursor)


async def revoke_api_key(session: AsyncSession, account_id: str, key_id: int) -> None:
    row = await get_scoped(session, ApiKey, key_id, "No such API key", account_id=account_id)
    if row.revoked_at is None:
        row.revoked_at = utcnow()


async def resolve_api_key(session: AsyncSession, key: str) -> tuple[ApiKey, Account] | None:
    """The live key and its owner for a presented key, or None. Checked on every request."""
    prefix = api_key_prefix(key)
    if prefix is None:
        return None
    row = await session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.key_hash, digest(key)):
        return None
    account = await session.get(Account, row.account_id)
    if account is None or account.locked:
        return None
    return row, account


async def record_key_use(session: AsyncSession, key_id: int) -> None:
    await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=utcnow()))
