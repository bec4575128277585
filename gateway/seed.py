"""The demo nursery's grower account, so that `make run` can be signed into. Fictional."""

from __future__ import annotations

import argparse
import asyncio

from common.db import Database
from gateway.app import MIGRATIONS
from gateway.identity.models import Account
from gateway.identity.passwords import hash_password
from gateway.settings import GatewaySettings

# The catalog's seed gives the demo shop to this account id.
DEMO_GROWER_ID = "00000000-0000-4000-8000-000000000001"
DEMO_PHONE = "+84912000111"
DEMO_PASSWORD = "sen-sung-cantho-2025"


async def seed(settings: GatewaySettings) -> str:
    db = Database(settings.database_url, MIGRATIONS, **settings.pool())
    await db.migrate()
    try:
        async with db.sessionmaker() as session:
            if await session.get(Account, DEMO_GROWER_ID) is None:
                session.add(Account(id=DEMO_GROWER_ID, role="grower", name="Cô Út (demo)", phone=DEMO_PHONE,
                                    password_hash=await hash_password(DEMO_PASSWORD)))
                await session.commit()
        return f"gateway: demo grower — login 0912 000 111, password {DEMO_PASSWORD}"
    finally:
        await db.dispose()


def seed_command():
    def configure(_: argparse.ArgumentParser) -> None:
        pass

    def run(_: argparse.Namespace, settings: GatewaySettings) -> None:
        print(asyncio.run(seed(settings)))

    return configure, run
