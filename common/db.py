"""Async database access for every app: engine, sessions, readiness, migrations.

SQLite (aiosqlite) is the embedded default; PostgreSQL (asyncpg) is the production shape. The same
code runs on both; the URL alone chooses.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import orjson
from fastapi import Depends, FastAPI, Request
from sqlalchemy import (
    CompoundSelect,
    DateTime,
    Executable,
    Row,
    Select,
    Table,
    TypeDecorator,
    bindparam,
    event,
    select,
    text,
    union_all,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session
from starlette.responses import Response

from common.errors import Conflict, NotFound, ServiceUnavailable

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger("db")

M = TypeVar("M")

# ``python -m <app> serve`` applies the migrations in a child process before it starts the server,
# and says so here; an app built any other way (tests, several workers) applies them itself at start.
_migrations_applied = False


def skip_migrations_at_start() -> None:
    global _migrations_applied
    _migrations_applied = True


def normalise_url(url: str) -> str:
    """Pick the async driver for a plain URL: postgresql:// → asyncpg, sqlite:// → aiosqlite."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        u = u.set(drivername="postgresql+asyncpg")
    elif u.drivername == "sqlite":
        u = u.set(drivername="sqlite+aiosqlite")
    return u.render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the driver, decide when a transaction begins (see _sqlite_begin).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    # WAL lets readers run beside the one writer; busy_timeout makes writers queue instead of failing.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    """Writers that read first take the write lock up front (BEGIN IMMEDIATE): a deferred
    transaction that later tries to write fails at once when another writer got in between."""
    immediate = conn.get_execution_options().get("sqlite_immediate", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _unique_statement_name() -> str:
    return f"__cv_{uuid.uuid4().hex}__"


def _json_text(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


# JSON columns (an order's contact and address, the outbox's events, a key's stored reply) written and
# read with orjson rather than the standard library's json: on the order path it was 2 % of the CPU.
_JSON = {"json_serializer": _json_text, "json_deserializer": orjson.loads}


def make_engine(url: str, *, pgbouncer: bool = False, **kwargs: Any) -> AsyncEngine:
    url = normalise_url(url)
    kwargs = _JSON | kwargs
    if is_sqlite(url):
        path = make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    # While the database cannot be reached, a connection attempt gives up after 5 s (asyncpg waits
    # 60 s by default): the caller gets a 503 (DatabaseUnavailable) instead of hanging.
    # 20 kept open by default, none opened beyond them (the settings DB_POOL_SIZE, DB_MAX_OVERFLOW of
    # each app): under 50 concurrent orders, a smaller pool opened and closed a connection for most
    # requests, and an overflow of 5 still opened and closed ≈ 9 a second, each a server process
    # forked and an authentication; a request now waits for a pooled connection instead.
    connect_args: dict[str, Any] = {"timeout": 5}
    if pgbouncer:
        # PgBouncer in transaction mode hands each transaction any server connection: a statement
        # prepared on one is unknown on the next. asyncpg's own cache off, SQLAlchemy's off, and the
        # statements it must still prepare named uniquely, so that two never collide on one server.
        connect_args |= {"statement_cache_size": 0, "prepared_statement_name_func": _unique_statement_name}
        url = make_url(url).update_query_dict({"prepared_statement_cache_size": "0"}).render_as_string(
            hide_password=False)
    opts = {"pool_size": 20, "max_overflow": 0, "pool_recycle": 1800, "connect_args": connect_args}
    opts.update(kwargs)
    engine = create_async_engine(url, **opts)
    _ping_when_idle(engine)
    return engine


IDLE_BEFORE_PING = 10.0  # seconds


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Ping a pooled connection before use only when it has been idle for a while, rather than on
    every checkout (``pool_pre_ping``: a round trip per transaction, 7–13 % of the orders service's
    CPU under load). A connection cut while idle (the database restarted overnight) is replaced before
    a request sees it; one cut while in use fails its request with a 503, and SQLAlchemy then discards
    every connection older than the failure, so the pool recovers by itself either way."""
    dialect = engine.sync_engine.dialect

    @event.listens_for(engine.sync_engine, "checkin")
    def _checked_in(dbapi_connection, record) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _checked_out(dbapi_connection, record, proxy) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < IDLE_BEFORE_PING:
            return
        try:
            alive = dialect.do_ping(dbapi_connection)
        except Exception as exc:  # noqa: BLE001 - any failure means: not this connection
            raise sa_exc.DisconnectionError(str(exc)) from exc
        if alive is False:
            raise sa_exc.DisconnectionError("ping failed")


class Database:
    """An app's engine and session factory, made at start-up and disposed at shutdown."""

    def __init__(self, url: str, migrations: Path | None = None, name: str = "app", *,
                 pool_size: int = 20, max_overflow: int = 0, pgbouncer: bool = False) -> None:
        self.url = normalise_url(url)
        self.name = name
        pool = {} if is_sqlite(self.url) else {"pool_size": pool_size, "max_overflow": max_overflow}
        self.engine = make_engine(self.url, pgbouncer=pgbouncer, **pool)
        # A Session class of this database's own, so that commit hooks see only its sessions.
        self._session_class = type(f"{name.title()}Session", (Session,), {})
        self._commit_hooks: list = []
        event.listen(self._session_class, "after_flush", self._note_added)
        event.listen(self._session_class, "after_commit", self._run_commit_hooks)
        event.listen(self._session_class, "after_rollback", lambda session: session.info.pop("on_commit", None))
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False,
                                               sync_session_class=self._session_class)
        # For transactions that read, then write what they read (stock): on SQLite they begin
        # IMMEDIATE; on PostgreSQL the option means nothing and row locks do the work.
        self.writer = async_sessionmaker(self.engine.execution_options(sqlite_immediate=True),
                                         expire_on_commit=False, sync_session_class=self._session_class)
        # For a single statement that needs no transaction around it (claiming an idempotency key):
        # on PostgreSQL it runs in autocommit, without the BEGIN and COMMIT round trips. SQLite keeps
        # ordinary sessions: its driver's autocommit switch would stay set on the pooled connection.
        self.autocommit = self.sessionmaker if is_sqlite(self.url) else async_sessionmaker(
            self.engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False,
            sync_session_class=self._session_class)
        self.migrations = migrations

    def after_commit(self, hook, *, if_added: type | None = None) -> None:
        """Call ``hook()`` after every commit on this database; with ``if_added``, only after a commit
        whose transaction added a row of that model (the outbox relay wakes up this way, and not for
        the many commits that wrote no event)."""
        self._commit_hooks.append((hook, if_added))

    def _note_added(self, session: Session, _context: Any) -> None:
        for _, model in self._commit_hooks:
            if model is not None and any(isinstance(obj, model) for obj in session.new):
                session.info.setdefault("added_models", set()).add(model)

    def _run_commit_hooks(self, session: Session) -> None:
        added = session.info.pop("added_models", ())
        for hook, model in self._commit_hooks:
            if model is None or model in added:
                hook()
        for hook in session.info.pop("on_commit", ()):
            hook()

    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessionmaker() as session:
            yield session

    @contextlib.asynccontextmanager
    async def unit_of_work(self, *, writer: bool = False) -> AsyncIterator[AsyncSession]:
        """A session committed once when the body ends without an error (unless the body ended its
        transaction itself), rolled back otherwise: the request's ``SessionDep``, a background job's
        round, a web page's writes. ``writer``: a writer session (BEGIN IMMEDIATE on SQLite)."""
        async with (self.writer if writer else self.sessionmaker)() as session:
            yield session
            if session.in_transaction():
                await session.commit()

    async def ping(self, timeout: float = 2.0) -> None:
        async def _ping() -> None:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        await asyncio.wait_for(_ping(), timeout)

    async def migrate(self) -> None:
        """Apply this app's alembic migrations up to head (unless the command line just did)."""
        if self.migrations is None or _migrations_applied:
            return
        async with self.engine.begin() as conn:
            await conn.run_sync(upgrade_to_head, self.migrations)

    @contextlib.asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[None]:
        """Run the body while no other process on this database runs a body of the same ``name``
        (a replica's relay round, its reconciler round). On PostgreSQL: a transaction-scoped advisory
        lock (``pg_advisory_xact_lock``) held by an open transaction on a connection of its own; the
        next replica waits its turn rather than skipping, so a wake is never lost. Transaction-scoped
        so that it holds through PgBouncer's transaction pooling too. On SQLite (one process, the
        embedded shape) the body simply runs."""
        if is_sqlite(self.url):
            yield
            return
        async with self.engine.connect() as conn, conn.begin():
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key(self.name, name)})
            yield

    async def dispose(self) -> None:
        await self.engine.dispose()


def on_commit(session: AsyncSession, hook) -> None:
    """Call ``hook()`` once this session's transaction commits (a worker woken for what it wrote, once
    the request's unit of work made it visible); never if it rolls back."""
    session.sync_session.info.setdefault("on_commit", []).append(hook)


async def read_once(session: AsyncSession, statement: Executable, params: dict[str, Any]) -> list[Row]:
    """The rows of ``statement`` (built once, at module level) with ``params``, read once per session:
    the events of one batch, handled in one transaction, ask the same of the same grower (their
    preferences, push subscriptions, webhook endpoints). Only for reads of what that session does not
    itself change."""
    cache = session.sync_session.info.setdefault("read_once", {})
    key = (statement, tuple(sorted(params.items())))
    if key not in cache:
        cache[key] = (await session.execute(statement, params)).all()
    return cache[key]


def note_added(session: AsyncSession, model: type) -> None:
    """Rows of ``model`` were written by a Core ``INSERT`` rather than ``session.add``: the commit hooks
    registered with ``after_commit(…, if_added=model)`` run after this session's commit all the same."""
    session.sync_session.info.setdefault("added_models", set()).add(model)


async def get_scoped(session: AsyncSession, model: type[M], row_id: Any, missing: str, **scope: Any) -> M:
    """The row ``row_id`` of ``model`` if its columns hold ``scope`` (its owner, its parent: ``account_id=…``);
    else :class:`NotFound` saying ``missing``: anyone else's row is as good as absent (404, not 403)."""
    row = await session.get(model, row_id)
    if row is None or any(getattr(row, column) != value for column, value in scope.items()):
        raise NotFound(missing)
    return row


async def flush_unique(session: AsyncSession, conflict: Conflict) -> None:
    """Flush what the session added; when a unique constraint refuses it, roll back and raise ``conflict`` (409)."""
    try:
        await session.flush()
    except sa_exc.IntegrityError:
        await session.rollback()
        raise conflict from None


def rows_selected(table: Table, prefix: str, columns: tuple[str, ...], count: int) -> Select | CompoundSelect:
    """``count`` rows of ``table``'s ``columns`` as bound parameters (``{prefix}{i}_{column}``, see
    :func:`row_params`), for an ``INSERT … SELECT``: ``SELECT … UNION ALL SELECT …``, in the rows' order
    (their serial ids too). Rather than a multi-row ``VALUES``: SQLAlchemy's compiled cache keeps no
    multi-row ``VALUES``, and compiling one costs milliseconds; this one it keeps, per shape."""
    rows = [select(*(bindparam(f"{prefix}{i}_{column}", type_=table.c[column].type) for column in columns))
            for i in range(count)]
    return rows[0] if count == 1 else union_all(*rows)


def row_params(prefix: str, rows: list[dict]) -> dict:
    """The parameters of :func:`rows_selected` for ``rows`` (dictionaries of the same columns)."""
    return {f"{prefix}{i}_{column}": value for i, row in enumerate(rows) for column, value in row.items()}


def lock_key(*parts: str) -> int:
    """A stable signed 64-bit advisory-lock key for a name (the same in every process)."""
    digest = hashlib.blake2b(":".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def alembic_config(migrations: Path, connection: Any | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade_to_head(connection: Any, migrations: Path) -> None:
    """Up to head, once: on PostgreSQL under an advisory lock held to the end of the transaction the
    migrations run in, so that replicas starting together (or a migration Job beside them) queue, and
    each after the first finds the database at head with nothing to do."""
    from alembic import command

    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                           {"key": lock_key("migrate", migrations.resolve().parent.name)})
    command.upgrade(alembic_config(migrations, connection), "head")


class DatabaseUnavailable(ServiceUnavailable):
    slug, title = "database-unavailable", "Database unavailable"

    def __init__(self, service: str) -> None:
        super().__init__("The database cannot be reached right now; try again shortly.",
                         headers={"Retry-After": "2"}, service=service)


_DRIVER_MODULES = ("sqlalchemy.", "asyncpg.", "aiosqlite.")


def _from_driver(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_globals.get("__name__", "").startswith(_DRIVER_MODULES):
            return True
        tb = tb.tb_next
    return False


def unreachable(exc: BaseException) -> bool:
    """True when ``exc`` says the database cannot be reached — down, restarting, the connection cut,
    the pool or the server's connection slots exhausted — rather than a refused statement or a bug."""
    if isinstance(exc, sa_exc.TimeoutError):  # no pooled connection came free in time
        return True
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        lost: tuple[type[BaseException], ...] = ()
    else:
        lost = (asyncpg.PostgresConnectionError, asyncpg.exceptions.AdminShutdownError,
                asyncpg.exceptions.CrashShutdownError, asyncpg.exceptions.CannotConnectNowError,
                asyncpg.exceptions.TooManyConnectionsError)  # the server's max_connections reached
    link: BaseException | None = exc
    seen: set[int] = set()
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if isinstance(link, lost):
            return True
        # A refused or cut connection surfaces as the socket's own error, sometimes unwrapped.
        if isinstance(link, (ConnectionError, TimeoutError)) and (isinstance(exc, sa_exc.DBAPIError)
                                                                   or _from_driver(link)):
            return True
        link = link.__cause__ or link.__context__
    return False


def install_unavailable_handler(app: FastAPI) -> None:
    """Answer 503 problem+json (``Retry-After``) when a request fails because the database cannot
    be reached; anything else goes on to the 500 handler."""

    async def handler(request: Request, exc: Exception) -> Response:
        if not unreachable(exc):
            raise exc
        db: Database = request.app.state.db
        log.warning("%s: database unreachable: %s: %s", db.name, type(exc).__name__, exc)
        return DatabaseUnavailable(db.name).to_response()

    for cls in (sa_exc.DBAPIError, sa_exc.TimeoutError, ConnectionError, TimeoutError):
        app.add_exception_handler(cls, handler)


async def _request_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: one session, committed once when the endpoint returned without an
    error, rolled back otherwise. The dependency's scope is the endpoint's call (``scope="function"``),
    so the commit runs before the reply is sent: a client never gets a 2xx for a write whose commit
    then failed (that request gets the commit's error instead, a 503 when the database is gone)."""
    db: Database = request.app.state.db
    try:
        async with db.unit_of_work(writer=request.method not in ("GET", "HEAD", "OPTIONS")) as session:
            yield session
    except Exception as exc:
        if unreachable(exc):
            raise DatabaseUnavailable(db.name) from exc
        raise


SessionDep = Annotated[AsyncSession, Depends(_request_session, scope="function")]
"""The request's unit of work on the app's database (``request.app.state.db``): service functions
add, change and flush; this commits once, before the reply. Requests that may write get a writer
session (on SQLite it begins IMMEDIATE, so read-then-write cannot fail half way)."""


class UtcDateTime(TypeDecorator):
    """Timestamps stored and read back as aware UTC datetimes, on SQLite as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: use an aware UTC datetime")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
