"""Least privilege: the compose shape's init script (deploy/postgres/initdb) makes a role per app that
owns only its own database, and the four apps run on those roles alone.

The script runs as the postgres image's entrypoint runs it (as POSTGRES_USER over the local socket,
the passwords from the secret files deploy/compose_secrets.py makes, as compose mounts them) against a
private PostgreSQL server whose TCP connections need a password (scram-sha-256, as in the image); the
apps then connect over TCP as their roles, with the database URLs from the same secret files.
"""

from __future__ import annotations

import asyncio
import subprocess
from urllib.parse import urlsplit

import asyncpg
import pytest

from deploy import compose_secrets
from tests.catalog.helpers import BANK, PRODUCT, SHOP
from tests.events.stack import ORDER
from tests.support.databases import APPS, require
from tests.support.fullstack import full_stack
from tests.support.postgres import PrivatePostgres, unavailable
from tests.support.servers import ROOT

INIT_SCRIPT = ROOT / "deploy" / "postgres" / "initdb" / "01-databases.sh"
PASSWORDS: dict[str, str] = {}
URLS: dict[str, str] = {}  # the secret files' database URLs, as compose gives them to the apps


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require(unavailable() is None, unavailable() or "")
    secrets = tmp_path_factory.mktemp("secrets")
    compose_secrets.make(secrets)
    PASSWORDS.update({app: (secrets / f"{app.upper()}_DB_PASSWORD").read_text().strip() for app in APPS})
    URLS.update({app: (secrets / f"{app.upper()}_DATABASE_URL").read_text().strip() for app in APPS})
    pg = PrivatePostgres()
    try:
        pg.init()
        # As the postgres image configures it: the socket is trusted, TCP needs a password.
        (pg.data / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n")
        pg.start()
        env = {"PATH": "/usr/bin:/bin", "POSTGRES_USER": "postgres", "PGHOST": str(pg.folder),
               "PGPORT": str(pg.port), "SECRETS_DIR": str(secrets)}
        done = subprocess.run(["bash", str(INIT_SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        yield pg
    finally:
        pg.remove()


def test_the_init_script_refuses_a_missing_password(tmp_path) -> None:
    env = {"PATH": "/usr/bin:/bin", "SECRETS_DIR": str(tmp_path)}
    done = subprocess.run(["bash", str(INIT_SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "GATEWAY_DB_PASSWORD is neither a variable nor a file" in done.stderr


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
    # The compose service's host, postgres:5432, is this private server here.
    urls = {app: URLS[app].replace(f"@{urlsplit(URLS[app]).netloc.split('@')[1]}/", f"@127.0.0.1:{server.port}/")
            for app in APPS}
    assert all(f"{app}:{PASSWORDS[app]}@127.0.0.1:{server.port}/{app}" in urls[app] for app in APPS), urls
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
