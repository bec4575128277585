"""Anonymous listings (``GET /api/v1/products``) and product pages (``GET /api/v1/products/{id}``)
kept as their JSON body and ETag until what they show changes (docs/decisions/0027-catalog-reads.md,
docs/decisions/0029-stock-changes-drop-what-shows-them.md).

A page of 20 varieties costs the catalog three queries, a few hundred ORM objects and as many
pydantic models; the same page asked again, with nothing changed, costs a dictionary look-up here.

**Fresh at once.** Every entry carries the *generation* it was computed in, and the products it
shows. A write to the catalog's database moves the generation on, and an entry of an older one is
never served; with two exceptions:

- a statement that only changes the stock of some products' variants (the reservations' ``UPDATE
  variants SET stock …``, marked with :func:`stock_of`) drops the pages of those products and moves
  the *tick* on instead: the stock of a variant is shown by the pages that show its product and
  decides nothing else (which products a page holds and in what order depends on the product rows:
  ``in_stock`` and ``min_price``, which the reservations rewrite, as a write of the generation's kind,
  when they change). So a listing is kept as its products and their JSON apart (each item is its
  product's page, byte for byte): the listings that show those products become *stale*, and are put
  together again once their items are kept again (the endpoint reads only the missing ones);
- writes to the tables no kept reply reads (:data:`UNREAD`: reservations, their lines, the outbox)
  change nothing here.

Both move on the moments the write is known:

- in this process, by engine events (:meth:`ListingCache.watch`): a statement that writes moves it on
  as it runs, and again after the commit (when the connection goes back to the pool or begins its
  next transaction), so that a reply read from a snapshot older than the commit is not kept;
- in the other replicas (PostgreSQL), by ``NOTIFY``: a transaction that wrote sends one on its
  channel as it commits (PostgreSQL delivers it only after the commit), naming the products when it
  changed only their stock; every replica listens on a connection of its own
  (:class:`ChangeListener`). While that connection is down, nothing is cached. Behind PgBouncer in
  transaction mode, which does not carry ``LISTEN``, nothing is cached.

A reply is stored only if, while it was computed, the generation did not move and no product it
shows had its stock changed (a write meanwhile may or may not be in it). Replies to a signed-in
caller (drafts, ``mine=true``, an owner's draft page) are never kept.
"""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import orjson
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import UpdateBase
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

from common.auth import bearer_token
from common.http_cache import PUBLIC_MAX_AGE, etag_matches, json_reply, weak_etag
from common.worker import Worker

log = logging.getLogger("catalog.listings")

CHANNEL = "cv_catalog_changed"
MAX_ENTRIES = 512
RECENT_STOCK_CHANGES = 1024  # how far back a reply being computed can be checked against stock changes
MAX_PAYLOAD = 7000  # NOTIFY takes 8,000 bytes; more products than fit: the generation's kind
# First words of the statements that do not write (everything else is taken as a write).
READS = frozenset({"SELECT", "PRAGMA", "BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK", "SHOW", "SET", "EXPLAIN"})
# Tables that no kept reply reads: writes to them (an order's reservation, its commit, the outbox)
# leave every kept reply as it is. Known only for statements built with SQLAlchemy (plain SQL: a write).
UNREAD = frozenset({"reservations", "reservation_lines", "outbox_events"})
ALL = "all"  # a write that may change any kept reply
WROTE, SENT = "listing_wrote", "listing_sent"  # a connection's info: what its transaction wrote; what it notified of
STOCK_OF = "listing_stock_of"  # the execution option of a statement that changes these products' stock only


def writes(statement: str) -> bool:
    head = statement.lstrip()[:10].split(None, 1)
    return not head or head[0].upper().rstrip(";") not in READS


LATER = ()  # stock_of(LATER): the products are named once the statement's rows are read (ListingCache.took_stock)


def stock_of(product_ids: Iterable[int]) -> dict[str, tuple[int, ...]]:
    """Execution options for a statement that changes only the stock of these products' variants
    (nothing else of any row): it drops only the kept replies that show them. A statement that finds
    its variants itself (``UPDATE … RETURNING`` their products) is marked ``stock_of(LATER)``, and
    the caller hands the products to :meth:`ListingCache.took_stock` as soon as it has read them."""
    return {STOCK_OF: tuple(product_ids)}


def _wrote(info: dict, key: str, scope: str | frozenset[int]) -> None:
    """Add ``scope`` to what the connection's transaction wrote, under ``key``."""
    wrote = info.get(key)
    info[key] = ALL if scope == ALL or wrote == ALL else (scope | wrote if wrote else scope)


def write_scope(statement: str, context: Any) -> str | frozenset[int] | None:
    """What a statement may change in the kept replies: nothing (``None``), these products' stock, or
    anything (:data:`ALL`)."""
    if not writes(statement):
        return None
    products = context.execution_options.get(STOCK_OF) if context is not None else None
    if products is not None:
        return frozenset(products)
    compiled = getattr(context, "compiled", None)
    dml = getattr(compiled, "statement", None)
    if isinstance(dml, UpdateBase) and getattr(dml.table, "name", None) in UNREAD:
        return None
    return ALL


PATH = "/api/v1/products"
# A kept reply's headers after its ETag: json_reply's for a public reply.
KEPT_HEADERS = ((b"cache-control", f"public, max-age={PUBLIC_MAX_AGE}".encode()), (b"vary", b"Authorization"))
SHOPS_PATH = "/api/v1/shops"


def listing_key(scope: Scope) -> str:
    """The query string as sent: the endpoint validated a kept listing's parameters from it (``?``
    first, so that no listing's key is a product page's)."""
    return "?" + scope["query_string"].decode("latin-1")


def shops_key(scope: Scope) -> str:
    """The shops' listing: its query string as sent, after a prefix of its own."""
    return "shops?" + scope["query_string"].decode("latin-1")


def product_key(scope: Scope) -> str | None:
    """A product page's key, :func:`item_key` of its id however the path spells it (its query string
    changes nothing); ``None`` for other paths."""
    path = scope["path"]
    digits = path[len(PATH) + 1:] if path.startswith(PATH + "/") else ""
    return item_key(int(digits)) if digits.isdigit() and len(digits) <= 19 else None


class Token(NamedTuple):
    """Where the cache stood when a reply began to be computed."""

    generation: int
    tick: int


class Entry(NamedTuple):
    generation: int
    products: frozenset[int]
    body: bytes | None  # None: a listing whose items' stock changed since, to be put together again
    etag: str
    items: tuple[int, ...] | None = None  # a listing's products, in its order (None: not a listing)
    tail: bytes = b""  # a listing's JSON after its items: ``],"next_cursor":…}``


LISTING_HEAD = b'{"items":['


def item_key(product_id: int) -> str:
    """The key of a product's page, which is also the JSON of that product as an item of a listing."""
    return f"{PATH}/{product_id}"


class ListingCache:
    def __init__(self, max_entries: int = MAX_ENTRIES, *, enabled: bool = True) -> None:
        self.generation = 0  # moves on for every write that may change any kept reply
        self.tick = 0  # moves on for every write that changes only some products' stock
        self.enabled = enabled
        self.max_entries = max_entries
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._showing: dict[int, set[str]] = {}  # product id → the keys of the entries that show it
        self._recent: deque[tuple[int, frozenset[int]]] = deque(maxlen=RECENT_STOCK_CHANGES)  # (tick, products)
        self.hits = self.misses = 0
        self.token = uuid.uuid4().hex  # this process's NOTIFY payload

    def now(self) -> Token:
        """To be read before a reply's queries, and handed to :meth:`put` with it."""
        return Token(self.generation, self.tick)

    def get(self, key: str) -> tuple[bytes, str] | None:
        """The body and ETag kept for ``key``, if it is of the current generation (a listing whose
        items' stock changed is put together again from its items' kept JSON, when all are kept)."""
        entry = self._entries.get(key) if self.enabled else None
        if entry is None or entry.generation != self.generation:
            self.misses += 1
            return None
        if entry.body is None:
            items = self.items(entry)
            if items is None:
                self.misses += 1
                return None
            entry = self._assemble(key, entry, items)
        self._entries.move_to_end(key)
        self.hits += 1
        return entry.body, entry.etag

    def stale(self, key: str) -> Entry | None:
        """A kept listing whose items' stock changed since (its products and their order did not)."""
        entry = self._entries.get(key) if self.enabled else None
        return entry if entry is not None and entry.body is None and entry.generation == self.generation else None

    def items(self, entry: Entry, fresh: dict[int, bytes] | None = None) -> list[bytes] | None:
        """The JSON of a listing's items: kept (or in ``fresh``), in its order; ``None`` if one is not."""
        parts = []
        for product_id in entry.items or ():
            part = fresh.get(product_id) if fresh else None
            if part is None:
                kept = self._entries.get(item_key(product_id))
                if kept is None or kept.body is None:
                    return None
                part = kept.body
            parts.append(part)
        return parts

    def missing(self, entry: Entry) -> list[int]:
        """The products of a listing whose JSON is not kept."""
        return [product_id for product_id in entry.items or ()
                if (kept := self._entries.get(item_key(product_id))) is None or kept.body is None]

    def _assemble(self, key: str, entry: Entry, items: list[bytes]) -> Entry:
        body = listing_body(items, entry.tail)
        entry = entry._replace(body=body, etag=weak_etag(body))
        self._entries[key] = entry
        return entry

    def put(self, key: str, since: Token, products: Iterable[int], body: bytes, etag: str,
            items: tuple[int, ...] | None = None, tail: bytes = b"") -> bool:
        """Keep a reply computed since ``since`` that shows ``products``, unless something it shows
        may have changed meanwhile (then ``False``). A listing gives its ``items`` and ``tail`` too."""
        products = frozenset(products)
        if not self.enabled or since.generation != self.generation:
            return False
        if since.tick != self.tick and not self._untouched_since(since.tick, products):
            return False
        self._discard(key)
        self._entries[key] = Entry(since.generation, products, body, etag, items, tail)
        for product_id in products:
            self._showing.setdefault(product_id, set()).add(key)
        while len(self._entries) > self.max_entries:
            self._discard(next(iter(self._entries)))
        return True

    def put_listing(self, key: str, since: Token, items: dict[int, bytes], tail: bytes) -> tuple[bytes, str]:
        """A listing's body from its items' JSON (``items``: product id → JSON, in the listing's
        order) and ``tail``; each item is kept as its product's page, and the listing as the list of
        them, so that a stock change re-reads only the products it changed."""
        for product_id, part in items.items():
            self.put(item_key(product_id), since, (product_id,), part, weak_etag(part))
        body = listing_body(list(items.values()), tail)
        etag = weak_etag(body)
        self.put(key, since, items, body, etag, tuple(items), tail)
        return body, etag

    def _untouched_since(self, tick: int, products: frozenset[int]) -> bool:
        if not self._recent or self._recent[0][0] > tick + 1:
            return False  # the changes since then are no longer known
        for changed_at, changed in reversed(self._recent):
            if changed_at <= tick:
                return True
            if not changed.isdisjoint(products):
                return False
        return True

    def _discard(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        for product_id in entry.products:
            keys = self._showing.get(product_id)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._showing[product_id]

    def changed(self, *_: Any) -> None:
        self.generation += 1
        self._entries.clear()
        self._showing.clear()

    def stock_changed(self, product_ids: Iterable[int]) -> None:
        """The stock of these products' variants changed, nothing else: drop their pages; the
        listings that show them keep their products and order (the stock decides neither), and are
        put together again from their items once those are read again."""
        product_ids = frozenset(product_ids)
        if not product_ids:  # a statement marked stock_of(LATER), before it names its products
            return
        self.tick += 1
        self._recent.append((self.tick, product_ids))
        for product_id in product_ids:
            for key in list(self._showing.get(product_id, ())):
                entry = self._entries[key]
                if entry.items is None:
                    self._discard(key)
                elif entry.body is not None:
                    self._entries[key] = entry._replace(body=None, etag="")

    def apply(self, scope: str | frozenset[int]) -> None:
        if scope == ALL:
            self.changed()
        else:
            self.stock_changed(scope)

    def payload(self, scope: str | frozenset[int]) -> str:
        """The NOTIFY payload of a commit: this process's token, then the products if only their stock changed."""
        if scope == ALL:
            return self.token
        payload = f"{self.token} {','.join(map(str, sorted(scope)))}"
        return payload if len(payload) <= MAX_PAYLOAD else self.token

    def notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        """Another replica wrote (this process's own writes moved the generation or tick already)."""
        token, _, products = payload.partition(" ")
        if token == self.token:
            return
        try:
            scope: str | frozenset[int] = frozenset(int(p) for p in products.split(",")) if products else ALL
        except ValueError:
            scope = ALL
        self.apply(scope)

    def took_stock(self, info: dict, product_ids: Iterable[int]) -> None:
        """A statement marked ``stock_of(LATER)`` changed the stock of these products' variants, on the
        connection whose ``info`` this is: as if it had named them (call it before anything else awaits)."""
        scope = frozenset(product_ids)
        _wrote(info, WROTE, scope)
        self.apply(scope)

    def notify_along(self, info: dict) -> tuple[str, str] | None:
        """PostgreSQL: the ``NOTIFY`` (channel, payload) of what the connection's transaction wrote so
        far, for its next statement to send with ``pg_notify``; the commit then sends none for it
        (a round trip less). ``None`` when it wrote nothing the kept replies show."""
        scope = info.pop(WROTE, None)
        if not scope:
            return None
        _wrote(info, SENT, scope)
        return CHANNEL, self.payload(scope)

    def set_enabled(self, enabled: bool) -> None:
        self.enabled = enabled
        self.changed()

    def watch(self, engine: AsyncEngine) -> None:
        """Move the generation or the tick on for every write through ``engine`` (see the module's doc)."""
        sync = engine.sync_engine
        notify = sync.dialect.name == "postgresql"

        def after_execute(conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, *_: Any) -> None:
            scope = write_scope(statement, context)
            if scope is None:
                return
            _wrote(conn.info, WROTE, scope)
            self.apply(scope)

        def before_commit(conn: Any) -> None:
            unsent = conn.info.pop(WROTE, None)
            if unsent is not None:
                if unsent and notify:  # delivered at the commit, signed so that this process can tell its own
                    conn.exec_driver_sql(f"SELECT pg_notify('{CHANNEL}', '{self.payload(unsent)}')")
                _wrote(conn.info, SENT, unsent)
            scope = conn.info.pop(SENT, None)  # all it wrote, notified along the way (notify_along) or now
            if scope is not None:
                conn.info["listing_committed"] = scope
                self.apply(scope)

        def after_commit(conn_or_dbapi: Any, record: Any = None) -> None:
            info = record.info if record is not None else conn_or_dbapi.info
            scope = info.pop("listing_committed", None)
            if scope is not None:
                self.apply(scope)

        def rolled_back(conn: Any) -> None:  # nothing it wrote is to be notified
            conn.info.pop(WROTE, None)
            conn.info.pop(SENT, None)

        event.listen(sync, "after_cursor_execute", after_execute)
        event.listen(sync, "commit", before_commit)
        event.listen(sync, "rollback", rolled_back)
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


class KeptReplyRoute(BaseRoute):
    """First of the catalog's routes: an anonymous ``GET`` with a reply kept under its ``key`` (a
    listing's query string, a product page's path) is answered here, without the endpoint's parameters
    and dependencies (most of a kept reply's cost); every other request goes on to the app's routes. A
    reply is kept only after the endpoint accepted the same request, and "anonymous" is the endpoint's
    own test (no bearer token), so both answer alike."""

    def __init__(self, cache: ListingCache, path: str, key: Callable[[Scope], str | None]) -> None:
        self.cache, self.key = cache, key
        self.path = path  # the route's label in metrics and logs, as the endpoint's

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope["method"] != "GET":
            return Match.NONE, {}
        key = self.key(scope)
        if key is None or bearer_token(Request(scope)) is not None:
            return Match.NONE, {}
        kept = self.cache.get(key)
        if kept is None:
            return Match.NONE, {}
        return Match.FULL, {"route": self, "kept_reply": kept}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """What :func:`common.http_cache.json_reply` answers (public), sent as it is."""
        body, etag = scope["kept_reply"]
        headers = [(b"etag", etag.encode("latin-1")), *KEPT_HEADERS]
        if_none_match = next((v for k, v in scope["headers"] if k == b"if-none-match"), None)
        if etag_matches(if_none_match.decode("latin-1") if if_none_match is not None else None, etag):
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        headers += [(b"content-length", str(len(body)).encode("latin-1")), (b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def url_path_for(self, name: str, /, **path_params: object):  # pragma: no cover - never reversed
        raise NotImplementedError


def listing_body(items: list[bytes], tail: bytes) -> bytes:
    """``Page[…]`` as JSON from its items' JSON and what follows them (:func:`listing_tail`)."""
    return LISTING_HEAD + b",".join(items) + tail


def listing_tail(next_cursor: str | None) -> bytes:
    return b'],"next_cursor":' + orjson.dumps(next_cursor) + b"}"


def kept_routes(cache: ListingCache) -> list[KeptReplyRoute]:
    """The listing's, the product page's and the shops', to go before the app's own routes."""
    def listing(scope: Scope) -> str | None:
        return listing_key(scope) if scope["path"] == PATH else None

    def shops(scope: Scope) -> str | None:
        return shops_key(scope) if scope["path"] == SHOPS_PATH else None

    return [KeptReplyRoute(cache, PATH, listing), KeptReplyRoute(cache, PATH + "/{product_id}", product_key),
            KeptReplyRoute(cache, SHOPS_PATH, shops)]


def since(request: Request, viewer: object | None = None) -> Token | None:
    """Where the cache stands, for a reply that may be kept (an anonymous caller's); read it before
    the reply's queries and hand it to :func:`reply`."""
    return request.app.state.listings.now() if viewer is None else None


def reply(request: Request, since: Token | None, key: str, products: Iterable[int], body: bytes) -> Response:
    """``body`` with its ETag (304 on a match), kept under ``key`` when ``since`` came with it; a
    reply that may not be kept is private."""
    etag = weak_etag(body)
    if since is not None:
        request.app.state.listings.put(key, since, products, body, etag)
    return json_reply(request, body, etag, private=since is None)


def stale(request: Request, key: str) -> Entry | None:
    """A kept listing (``key``) whose items' stock changed since: its products and order still hold."""
    return request.app.state.listings.stale(key)


def missing(request: Request, entry: Entry) -> list[int]:
    return request.app.state.listings.missing(entry)


def items_of(request: Request, entry: Entry, fresh: dict[int, bytes]) -> dict[int, bytes] | None:
    """A kept listing's items' JSON in its order, those read again from ``fresh``; ``None`` if one is
    in neither (it is no longer active: read the listing again)."""
    parts = request.app.state.listings.items(entry, fresh)
    return None if parts is None else dict(zip(entry.items or (), parts, strict=True))


def reply_listing(request: Request, since: Token | None, key: str, items: dict[int, bytes], tail: bytes) -> Response:
    """A listing from its items' JSON (product id → JSON, in order) and tail, as :func:`reply`: kept
    (items apart, as their products' pages) when ``since`` came with it."""
    if since is None:
        body = listing_body(list(items.values()), tail)
        return json_reply(request, body, weak_etag(body), private=True)
    return json_reply(request, *request.app.state.listings.put_listing(key, since, items, tail), private=False)
