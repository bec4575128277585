"""The command line every app shares: ``python -m <app> serve | migrate | makemigration MSG``.

Apps add their own commands (the catalog's ``seed`` and ``import-csv``) through ``extra``.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import db as database
from common.db import Database, alembic_config
from common.logging import configure_logging
from common.settings import AppSettings, SharedSettings

# The apps never use httpx's own command line, whose module imports rich and pygments (~7 MB in each
# process) whenever a development tool has installed them; httpx falls back when it cannot import it.
# Every app's ``__main__`` imports this module before anything imports httpx.
sys.modules.setdefault("httpx._main", None)

Command = Callable[[argparse.Namespace, AppSettings], Any]


def _makemigration(db: Database, message: str) -> None:
    from alembic import command

    def run(connection: Any) -> None:
        cfg = alembic_config(db.migrations, connection)
        command.revision(cfg, message=message, autogenerate=True)

    async def go() -> None:
        await db.migrate()
        async with db.engine.begin() as conn:
            await conn.run_sync(run)
        await db.dispose()

    asyncio.run(go())


def return_freed_memory() -> None:
    """Tune glibc's allocator for a long-lived server (Linux; elsewhere nothing happens).

    After the first large block is freed (argon2's 19 MiB, a photo being resized) glibc raises its
    mmap threshold, and blocks that size are then carved from per-thread arenas and kept for good. A
    fixed threshold keeps large blocks mmapped, so they go back to the system once freed; two arenas
    instead of eight per core keep the threads' free memory from scattering."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(-3, 256 * 1024)  # M_MMAP_THRESHOLD
    libc.mallopt(-8, 2)  # M_ARENA_MAX


TRIM_EVERY = 10.0  # seconds between two hand-backs of the heap's free pages (see trim_freed_memory)


def trim_freed_memory(every: float = TRIM_EVERY) -> None:
    """Hand the heap's free pages back to the system every ``every`` seconds (glibc's ``malloc_trim``,
    in a daemon thread; Linux only).

    glibc gives memory back on its own only from the top of a heap; what is freed below a block still
    in use stays resident, and a server's heap is all such holes after a burst (a photo decoded, a
    round of sign-ups, a spike of requests): 10–15 MB across the four apps under bench/load.py.
    ``malloc_trim(0)`` returns the free pages anywhere in the heap; it takes a few milliseconds,
    without the GIL, and a page used again costs one page fault."""
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return

    def loop() -> None:
        while True:
            time.sleep(every)
            trim(0)

    threading.Thread(target=loop, name="malloc-trim", daemon=True).start()


def _migrate_in_child(prog: str) -> None:
    """Apply the migrations in a child process, so that the server never imports alembic (~10 MB)."""
    done = subprocess.run([sys.executable, "-m", prog, "migrate"], check=False)
    if done.returncode != 0:
        sys.exit(f"{prog}: migrations failed (exit {done.returncode}); not starting")
    database.skip_migrations_at_start()


def _listening(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run_cli(prog: str, app_factory: str, settings_cls: type[AppSettings], migrations: Path,
            extra: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Command]] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {prog}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP service (migrations are applied at start)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--shared-port", type=int,
                       help="also listen on this port, shared with the app's other replicas on this machine "
                            "(SO_REUSEPORT: the kernel spreads the connections over them)")
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

        return_freed_memory()
        if args.workers == 1:
            _migrate_in_child(prog)
            trim_freed_memory()  # (uvicorn's worker processes, with --workers, start without it)

        if args.workers > 1:
            # Each worker is a process of its own with its own metrics: they keep their samples in files
            # here, added up by every scrape (common/observability.py, metrics_registry).
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix=f"cv-metrics-{settings.service_name}-")
        host, port = args.host or settings.host, args.port or settings.port
        options = {"factory": True, "host": host, "port": port, "workers": args.workers, "log_config": None,
                   "access_log": False, "proxy_headers": False, "timeout_graceful_shutdown": 10}
        if args.shared_port:
            if args.workers != 1:
                sys.exit("--shared-port is for one worker per process")
            sockets = [_listening(host, port), _listening(host, args.shared_port, reuse_port=True)]
            uvicorn.Server(uvicorn.Config(app_factory, **options)).run(sockets=sockets)
        else:
            uvicorn.run(app_factory, **options)
    elif args.command == "migrate":
        db = Database(settings.database_url, migrations, **settings.pool())

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
