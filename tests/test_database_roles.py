"""Least privilege: the compose shape's init script (deploy/postgres/initdb) makes a role per app that
owns only its own database, and the four apps run on those roles alone.

The script runs as the postgres image's entrypoint runs it (as POSTGRES_USER over the local socket,
the passwords from the environment) against a private PostgreSQL server whose TCP connections need a
password (scram-sha-256, as in the image); the apps then connect over TCP as their roles.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid

import asyncpg
import pytest

from tests.catalog.helpers import BANK, PRODUCT, SHOP
from tests.events.stack import ORDER
from tests.support.databases import APPS, require
from tests.support.fullstack import full_stack
from tests.support.postgres import PrivatePostgres, unavailable
from tests.support.servers import ROOT

INIT_SCRIPT = ROOT / "deploy" / "postgres" / "initdb" / "01-databases.sh"
PASSWORDS = {app: f"{app}-pw-{uuid.uuid4().hex}" for app in APPS}


@pytest.fixture(scope="module")
def server():
    require(unavailable() is None, unavailable() or "")
    pg = PrivatePostgres()
    try:
        pg.init()
        # As the postgres image configures it: the socket is trusted, TCP needs a password.
        (pg.data / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n")
        pg.start()
        env = {"PATH": "/usr/bin:/bin", "POSTGRES_USER": "postgres", "PGHOST": str(pg.folder),
               "PGPORT": str(pg.port), **{f"{a.upper()}_DB_PASSWORD": p for a, p in PASSWORDS.items()}}
        done = subprocess.run(["bash", str(INIT_SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        yield pg
    finally:
        pg.remove()


def dsn(pg: PrivatePostgres, role: str, database: str, password: str | None = None) -> str:
    return f"postgresql://{role}:{password or PASSWORDS[role]}@127.0.0.1:{pg.port}/{database}"


async def _connect(pg, role, database, password=None):
    return await asyncpg.connect(dsn(pg, role, database, password), timeout=10)


def test_each_role_owns_its_database_and_nothing_more(server) -> None:
    async def go() -> None:
        admin = await asyncpg.connect(f"postgresql://postgres@/postgres?host={server.folder}&port={server.port}")
        try:
            roles = {r["rolname"]: r for r in await admin.fetch(
                "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls "
                "FROM pg_roles WHERE rolname = ANY($1)", list(APPS))}
            owners = dict(await admin.fetch(
                "SELECT datname, pg_get_userbyid(datdba) FROM pg_database WHERE datname = ANY($1)", list(APPS)))
        finally:
            await admin.close()
        assert sorted(roles) == sorted(APPS)
        for role in roles.values():
            assert not any(role[k] for k in ("rolsuper", "rolcreatedb", "rolcreaterole", "rolreplication",
                                              "rolbypassrls")), dict(role)
        assert owners == {app: app for app in APPS}
        for app in APPS:
            conn = await _connect(server, app, app)
            try:
                assert await conn.fetchval("SELECT current_user") == app
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute("CREATE DATABASE sneaky")
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute("CREATE ROLE sneaky")
            finally:
                await conn.close()
            for other in APPS:
                if other != app:  # CONNECT is revoked from PUBLIC: another app's database is closed
                    with pytest.raises(asyncpg.InsufficientPrivilegeError):
                        await _connect(server, app, other)
        with pytest.raises(asyncpg.InvalidPasswordError):
            await _connect(server, "orders", "orders", password="wrong")
        with pytest.raises(asyncpg.InvalidPasswordError):  # the administrator has no TCP way in without one
            await _connect(server, "postgres", "postgres", password="guess")

    asyncio.run(go())


async def test_the_apps_run_on_their_own_roles(server, tmp_path, monkeypatch) -> None:
    """Migrations at start, then an order end to end: each app as its own role, none a superuser."""
    monkeypatch.setenv("CATALOG_MEDIA_DIR", str(tmp_path / "media"))
    urls = {app: f"postgresql+asyncpg://{app}:{PASSWORDS[app]}@127.0.0.1:{server.port}/{app}" for app in APPS}
    async with full_stack(urls) as stack:
        grower = await stack.register("grower", "0912345670", "Chị Tư")
        shop = await stack.gw.post("/api/v1/shops", json={**SHOP, "bank": BANK}, headers=grower["headers"])
        assert shop.status_code == 201, shop.text
        product = await stack.gw.post("/api/v1/products", json=PRODUCT, headers=grower["headers"])
        assert product.status_code == 201, product.text
        order = await stack.gw.post("/api/v1/orders", headers=stack.key(), json={
            **ORDER, "lines": [{"variant_id": product.json()["variants"][0]["id"], "quantity": 2}]})
        assert order.status_code == 201, order.text
        ready = await stack.gw.get("/readyz")
        assert ready.status_code == 200, ready.text
    owners = set()
    for app in APPS:
        conn = await _connect(server, app, app)
        try:
            owners |= {r["tableowner"] for r in await conn.fetch(
                "SELECT tableowner FROM pg_tables WHERE schemaname = 'public'")}
        finally:
            await conn.close()
    assert owners == set(APPS), owners  # every table made by its app's role, none by the administrator
