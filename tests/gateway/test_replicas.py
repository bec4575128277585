"""Refresh rotation across gateway replicas: two gateway apps on one database, as two replicas behind
a balancer. A token rotated on one is spent on the other; a replay on either revokes the family on
both; two replicas rotating one token at once issue one pair (or, within the web's grace, a pair each
in the same family, never a sign-out)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt

from sqlalchemy import update
from starlette.requests import Request

from gateway.identity import service as identity
from gateway.identity.models import RefreshToken
from gateway.web import session as web_session
from tests.apps import make_app
from tests.conftest import asgi_client
from tests.gateway.test_identity import grower, sign_in


@contextlib.asynccontextmanager
async def two_gateways(db_urls):
    first, second = make_app("gateway", db_urls), make_app("gateway", db_urls)
    async with asgi_client(first) as a, asgi_client(second) as b:
        a.app, b.app = first, second
        yield a, b


async def refresh(client, token: str):
    return await client.post("/api/v1/auth/refresh", json={"refresh_token": token})


async def test_a_rotation_on_one_replica_holds_on_the_other(db_urls) -> None:
    async with two_gateways(db_urls) as (a, b):
        assert (await a.post("/api/v1/auth/register", json=grower())).status_code == 201
        first = await sign_in(a, "0912345678")
        second = await refresh(b, first["refresh_token"])
        assert second.status_code == 200, second.text
        third = await refresh(a, second.json()["refresh_token"])
        assert third.status_code == 200
        assert (await b.get("/api/v1/me", headers={
            "Authorization": f"Bearer {third.json()['access_token']}"})).status_code == 200
        # The first token replayed on replica b: refused, and the family with it on replica a too.
        assert (await refresh(b, first["refresh_token"])).status_code == 401
        assert (await refresh(a, third.json()["refresh_token"])).status_code == 401


async def test_two_replicas_rotating_one_token_at_once_issue_one_pair(db_urls) -> None:
    async with two_gateways(db_urls) as (a, b):
        await a.post("/api/v1/auth/register", json=grower())
        token = (await sign_in(a, "0912345678"))["refresh_token"]
        answers = await asyncio.gather(refresh(a, token), refresh(b, token))
        assert sorted(r.status_code for r in answers) == [200, 401], "one rotation wins; the other is a reuse"


async def test_within_the_grace_both_replicas_get_a_pair_and_nobody_is_signed_out(db_urls) -> None:
    async with two_gateways(db_urls) as (a, b):
        await a.post("/api/v1/auth/register", json=grower())
        token = (await sign_in(a, "0912345678"))["refresh_token"]

        async def rotate_on(client):
            state = client.app.state
            async with state.db.unit_of_work(writer=True) as session:  # as a request that writes
                return await identity.rotate(session, token, signer=state.signer,
                                             refresh_ttl=state.settings.refresh_ttl, grace=30)

        pairs = await asyncio.gather(rotate_on(a), rotate_on(b))
        assert pairs[0].refresh_token != pairs[1].refresh_token
        for pair, client in zip(pairs, (b, a), strict=True):  # each pair works on the other replica
            assert (await refresh(client, pair.refresh_token)).status_code == 200
        # Past the grace, the same token again is a replay: the family is revoked.
        async with a.app.state.db.sessionmaker() as session:
            await session.execute(update(RefreshToken).where(RefreshToken.used_at.is_not(None))
                                  .values(used_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=60)))
            await session.commit()
        late = None
        try:
            await rotate_on(b)
        except identity.InvalidRefreshToken as exc:
            late = exc
        assert late is not None, "a reuse after the grace is refused"
        assert (await sign_in(a, "0912345678"))  # signing in again still works


async def test_a_browsers_requests_on_two_replicas_keep_it_signed_in(db_urls) -> None:
    """The web session refreshes an expired access token with the cookie's refresh token: two requests
    of one browser doing so at once on two replicas both stay signed in, and the family is not revoked."""
    async with two_gateways(db_urls) as (a, b):
        await a.post("/api/v1/auth/register", json=grower())
        token = (await sign_in(a, "0912345678"))["refresh_token"]

        def browser_request(app) -> Request:
            return Request({"type": "http", "app": app, "headers": [], "method": "GET", "path": "/grower/"})

        pairs = await asyncio.gather(web_session._rotate(browser_request(a.app), token),
                                     web_session._rotate(browser_request(b.app), token))
        assert None not in pairs, "neither request is signed out"
        for pair, client in zip(pairs, (b, a), strict=True):
            assert (await refresh(client, pair.refresh_token)).status_code == 200
