"""Identity routes served by the gateway itself: accounts, tokens, API keys, the JWKS."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from common.auth import Principal
from common.errors import Forbidden
from common.openapi import problems
from common.pagination import CursorQuery, LimitQuery, Page
from common.params import IdPath
from gateway.deps import CurrentPrincipal, Grower, LimitsDep, SessionDep, SettingsDep, SignerDep, UpstreamsDep
from gateway.identity import personal_data, service
from gateway.identity.schemas import (
    AccountPublic,
    AccountUpdate,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPublic,
    Jwks,
    Login,
    PersonalData,
    RefreshRequest,
    Registration,
    TokenPair,
)

router = APIRouter(prefix="/api/v1", tags=["identity"])
jwks_router = APIRouter(tags=["identity"])


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/auth/register", operation_id="identity_register", status_code=201, response_model=AccountPublic,
             summary="Open a grower or buyer account",
             responses=problems(409, 429, s409="An account with this phone number or email already exists"))
async def register(request: Request, session: SessionDep, limits: LimitsDep, data: Registration) -> AccountPublic:
    await limits.check("register-ip", client_ip(request))
    account = await service.register(session, data)
    return AccountPublic.model_validate(account, from_attributes=True)


@router.post("/auth/token", operation_id="identity_token",
             response_model=TokenPair, summary="Sign in with phone or email and password",
             responses=problems(401, 429, s401="Wrong login or password"))
async def token(request: Request, session: SessionDep, limits: LimitsDep, signer: SignerDep, settings: SettingsDep,
                data: Login) -> TokenPair:
    await limits.check("login-ip", client_ip(request))
    await limits.check("login-account", service.login_key(data.login))
    account = await service.authenticate(session, data.login, data.password)
    return await service.issue_tokens(session, account, signer=signer, refresh_ttl=settings.refresh_ttl)


@router.post("/auth/refresh", operation_id="identity_refresh", response_model=TokenPair,
             summary="Exchange a refresh token for a new pair (the old one stops working)",
             responses=problems(401, 429, s401="The refresh token is not valid, has expired or was already used"))
async def refresh(request: Request, session: SessionDep, limits: LimitsDep, signer: SignerDep, settings: SettingsDep,
                  data: RefreshRequest) -> TokenPair:
    await limits.check("login-ip", client_ip(request))
    return await service.rotate(session, data.refresh_token, signer=signer, refresh_ttl=settings.refresh_ttl)


@router.post("/auth/logout", operation_id="identity_logout",
             status_code=204, summary="Sign out: the refresh token's family is revoked")
async def logout(session: SessionDep, data: RefreshRequest) -> Response:
    await service.logout(session, data.refresh_token)
    return Response(status_code=204)


@router.get("/me", operation_id="identity_me", response_model=AccountPublic, summary="The signed-in account")
async def me(session: SessionDep, principal: CurrentPrincipal) -> AccountPublic:
    account = await service.get_account(session, principal.sub)
    return AccountPublic.model_validate(account, from_attributes=True)


@router.patch("/me", operation_id="identity_update_me",
              response_model=AccountPublic, summary="Change name, email or language",
              responses=problems(409, s409="Another account uses this email"))
async def update_me(session: SessionDep, principal: CurrentPrincipal, data: AccountUpdate) -> AccountPublic:
    account = await service.update_account(session, principal.sub, data)
    return AccountPublic.model_validate(account, from_attributes=True)


@router.get("/me/export", operation_id="identity_export_me", response_model=PersonalData,
            summary="Everything Chợ Vườn holds about you, as JSON")
async def export_me(session: SessionDep, principal: CurrentPrincipal, upstreams: UpstreamsDep,
                    settings: SettingsDep) -> dict:
    _only_users(principal)
    return await personal_data.export(session, principal.sub, upstreams=upstreams, settings=settings)


@router.delete("/me", operation_id="identity_delete_me", status_code=204,
               summary="Delete your account; orders shops must keep are anonymised, a grower's shop is closed")
async def delete_me(session: SessionDep, principal: CurrentPrincipal, upstreams: UpstreamsDep,
                    settings: SettingsDep) -> Response:
    _only_users(principal)
    await personal_data.erase(session, principal.sub, upstreams=upstreams, settings=settings)
    return Response(status_code=204)


@router.post("/api-keys", operation_id="identity_create_api_key", status_code=201, response_model=ApiKeyCreated,
             summary="Create an API key for an integration (the key is shown once)")
async def create_api_key(session: SessionDep, principal: Grower, data: ApiKeyCreate) -> ApiKeyCreated:
    _only_users(principal)
    account = await service.get_account(session, principal.sub)
    row, key = await service.create_api_key(session, account, data)
    return ApiKeyCreated(**ApiKeyPublic.model_validate(row, from_attributes=True).model_dump(), key=key)


@router.get("/api-keys", operation_id="identity_list_api_keys",
            response_model=Page[ApiKeyPublic], summary="Your API keys (without the keys)")
async def list_api_keys(session: SessionDep, principal: Grower, limit: LimitQuery = 20,
                        cursor: CursorQuery = None) -> Page[ApiKeyPublic]:
    _only_users(principal)
    rows, next_cursor = await service.list_api_keys(session, principal.sub, limit, cursor)
    return Page(items=[ApiKeyPublic.model_validate(r, from_attributes=True) for r in rows],
                next_cursor=next_cursor)


@router.delete("/api-keys/{key_id}", operation_id="identity_revoke_api_key",
               status_code=204, summary="Revoke an API key")
async def revoke_api_key(session: SessionDep, principal: Grower, key_id: IdPath) -> Response:
    _only_users(principal)
    await service.revoke_api_key(session, principal.sub, key_id)
    return Response(status_code=204)


def _only_users(principal: Principal) -> None:
    if principal.kind != "user":
        raise Forbidden("API keys are managed by signing in, not with another key")


@jwks_router.get("/.well-known/jwks.json", operation_id="identity_jwks", response_model=Jwks,
                 summary="Public keys that verify access tokens")
async def jwks(signer: SignerDep) -> dict:
    return signer.jwks()
