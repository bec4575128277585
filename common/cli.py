"""The command line every app shares: ``python -m <app> serve | migrate | makemigration MSG``.

Apps add their own commands (the catalog's ``seed`` and ``import-csv``) through ``extra``.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command

from common.db import Database, alembic_config
from common.logging import configure_logging
from common.settings import AppSettings, SharedSettings

Command = Callable[[argparse.Namespace, AppSettings], Any]


def _makemigration(db: Database, message: str) -> None:
    def run(connection: Any) -> None:
        cfg = alembic_config(db.migrations, connection)
        command.revision(cfg, message=message, autogenerate=True)

    async def go() -> None:
        await db.migrate()
        async with db.engine.begin() as conn:
            await conn.run_sync(run)
        await db.dispose()

    asyncio.run(go())


def run_cli(prog: str, app_factory: str, settings_cls: type[AppSettings], migrations: Path,
            extra: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Command]] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {prog}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP service (migrations are applied at start)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, default=1)
    sub.add_parser("migrate", help="apply migrations up to head")
    mk = sub.add_parser("makemigration", help="write a new migration from the models (autogenerate)")
    mk.add_argument("message")
    for name, (configure, _) in (extra or {}).items():
        configure(sub.add_parser(name))
    args = parser.parse_args()
    settings = settings_cls()
    shared = SharedSettings()
    configure_logging(settings.service_name, shared.log_format, shared.log_level)

    if args.command == "serve":
        import uvicorn

        uvicorn.run(app_factory, factory=True, host=args.host or settings.host, port=args.port or settings.port,
                    workers=args.workers, log_config=None, access_log=False, proxy_headers=False,
                    timeout_graceful_shutdown=10)
    elif args.command == "migrate":
        db = Database(settings.database_url, migrations)

        async def go() -> None:
            await db.migrate()
            await db.dispose()

        asyncio.run(go())
        print(f"{settings.service_name}: migrations applied")
    elif args.command == "makemigration":
        _makemigration(Database(settings.database_url, migrations), args.message)
    else:
        _, handler = (extra or {})[args.command]
        handler(args, settings)
