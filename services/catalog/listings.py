"""Anonymous listings (``GET /api/v1/products``) kept as their JSON body and ETag until the catalog
changes (docs/decisions/0027-catalog-reads.md).

A page of 20 varieties costs the catalog three queries, a few hundred ORM objects and as many
pydantic models; the same page asked again, with nothing changed, costs a dictionary look-up here.

**Fresh at once.** Every entry carries the *generation* it was computed in; any write to the
catalog's database moves the generation on, and an entry of an older one is never served:

- in this process, by engine events (:meth:`ListingCache.watch`): a statement that writes moves it on
  as it runs, and again after the commit (when the connection goes back to the pool or begins its
  next transaction), so that a listing read from a snapshot older than the commit is not kept;
- in the other replicas (PostgreSQL), by ``NOTIFY``: a transaction that wrote sends one on its
  channel as it commits (PostgreSQL delivers it only after the commit), and every replica listens
  on a connection of its own (:class:`ChangeListener`). While that connection is down, nothing is
  cached. Behind PgBouncer in transaction mode, which does not carry ``LISTEN``, nothing is cached.

A listing is stored only if the generation did not move while it was computed (a write meanwhile
may or may not be in it). Replies to a signed-in caller (drafts, ``mine=true``) are never kept.
"""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from starlette.requests import Request
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

from common.auth import bearer_token
from common.http_cache import json_reply
from common.worker import Worker

log = logging.getLogger("catalog.listings")

CHANNEL = "cv_catalog_changed"
MAX_ENTRIES = 512
# First words of the statements that do not write (everything else is taken as a write).
READS = frozenset({"SELECT", "PRAGMA", "BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK", "SHOW", "SET", "EXPLAIN"})


def writes(statement: str) -> bool:
    head = statement.lstrip()[:10].split(None, 1)
    return not head or head[0].upper().rstrip(";") not in READS


PATH = "/api/v1/products"


def listing_key(scope: Scope) -> str:
    """The query string as sent: the endpoint validated a kept listing's parameters from it."""
    return scope["query_string"].decode("latin-1")


class ListingCache:
    def __init__(self, max_entries: int = MAX_ENTRIES, *, enabled: bool = True) -> None:
        self.generation = 0
        self.enabled = enabled
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[int, bytes, str]] = OrderedDict()
        self.hits = self.misses = 0
        self.token = uuid.uuid4().hex  # this process's NOTIFY payload

    def get(self, key: str) -> tuple[bytes, str] | None:
        """The body and ETag kept for ``key``, if it is of the current generation."""
        entry = self._entries.get(key) if self.enabled else None
        if entry is None or entry[0] != self.generation:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[1], entry[2]

    def put(self, key: str, generation: int, body: bytes, etag: str) -> None:
        """Keep a listing computed in ``generation`` (read before its queries), unless that is past."""
        if not self.enabled or generation != self.generation:
            return
        self._entries[key] = (generation, body, etag)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def changed(self, *_: Any) -> None:
        self.generation += 1
        self._entries.clear()

    def notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        """Another replica wrote (this process's own writes moved the generation already)."""
        if payload != self.token:
            self.changed()

    def set_enabled(self, enabled: bool) -> None:
        self.enabled = enabled
        self.changed()

    def watch(self, engine: AsyncEngine) -> None:
        """Move the generation on for every write through ``engine`` (see the module's doc)."""
        sync = engine.sync_engine
        notify = sync.dialect.name == "postgresql"

        def after_execute(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if writes(statement):
                conn.info["listing_wrote"] = True
                self.changed()

        def before_commit(conn: Any) -> None:
            if conn.info.pop("listing_wrote", False):
                if notify:  # delivered at the commit, signed so that this process can tell its own
                    conn.exec_driver_sql(f"SELECT pg_notify('{CHANNEL}', '{self.token}')")
                conn.info["listing_committed"] = True
                self.changed()

        def after_commit(conn_or_dbapi: Any, record: Any = None) -> None:
            info = record.info if record is not None else conn_or_dbapi.info
            if info.pop("listing_committed", False):
                self.changed()

        event.listen(sync, "after_cursor_execute", after_execute)
        event.listen(sync, "commit", before_commit)
        event.listen(sync, "begin", after_commit)
        event.listen(sync.pool, "checkin", after_commit)


class ChangeListener:
    """PostgreSQL: ``LISTEN`` on a connection of its own for the other replicas' writes; a round a
    second checks it and connects again when it was lost (the cache is off meanwhile)."""

    def __init__(self, engine: AsyncEngine, cache: ListingCache) -> None:
        self.engine, self.cache = engine, cache
        self._conn: AsyncConnection | None = None
        self._driver: Any = None
        self.worker = Worker("listing change listener", self._round, interval=1.0)

    async def _round(self) -> None:
        if self._driver is not None and not self._driver.is_closed():
            return
        self.cache.set_enabled(False)
        await self._close()
        self._conn = await self.engine.connect()
        raw = await self._conn.get_raw_connection()
        self._driver = raw.driver_connection
        await self._driver.add_listener(CHANNEL, self.cache.notified)
        self._driver.add_termination_listener(lambda _c: self.cache.set_enabled(False))
        self.cache.set_enabled(True)
        log.info("listening for catalog changes on %s", CHANNEL)

    async def _close(self) -> None:
        conn, self._conn, self._driver = self._conn, None, None
        if conn is not None:
            try:
                await conn.invalidate()
            except Exception:  # noqa: BLE001 - already gone
                log.debug("closing the listener's connection", exc_info=True)

    async def start(self) -> None:
        await self.worker.start()

    async def stop(self) -> None:
        await self.worker.stop()
        self.cache.set_enabled(False)
        await self._close()


class KeptListingRoute(BaseRoute):
    """First of the catalog's routes: an anonymous ``GET /api/v1/products`` whose query string has a
    listing kept is answered here, without the endpoint's parameters and dependencies (most of a kept
    reply's cost); every other request goes on to the app's routes. A listing is kept only after the
    endpoint accepted the same query string, and "anonymous" is the endpoint's own test (no bearer
    token), so both answer alike."""

    path = PATH  # the route's label in metrics and logs, as the endpoint's

    def __init__(self, cache: ListingCache) -> None:
        self.cache = cache

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope["method"] != "GET" or scope["path"] != PATH:
            return Match.NONE, {}
        request = Request(scope)
        if bearer_token(request) is not None:
            return Match.NONE, {}
        kept = self.cache.get(listing_key(scope))
        if kept is None:
            return Match.NONE, {}
        return Match.FULL, {"route": self, "kept_listing": kept}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await json_reply(Request(scope, receive), *scope["kept_listing"], private=False)(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: object):  # pragma: no cover - never reversed
        raise NotImplementedError
