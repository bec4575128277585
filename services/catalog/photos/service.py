"""A variety's photos: adding (process, store, record), listing, moving and deleting.

Nothing is ever half stored. An upload is recognised and decoded before anything is written; its
files are written whole (``PhotoStore.save``) before its row is inserted; and if the insert fails,
the files go again — unless another photo row (of any variety) names the same content hash, since
files are shared by content. Deleting works the other way round: the row first, then the files
when no row names them any more. A smaller size missing from a photo's files (one added to
``WIDTHS`` after it was stored) is made from its largest WebP (``make_size``).
"""

from __future__ import annotations

import logging

import anyio
from anyio import CapacityLimiter
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from common.auth import Principal
from common.errors import Conflict, NotFound, ServiceUnavailable, UnprocessableEntity
from services.catalog.photos.models import MAX_PHOTOS_PER_PRODUCT, Photo
from services.catalog.photos.processing import (
    WIDTHS,
    ProcessedPhoto,
    derive,
    file_names,
    process,
    scaled_size,
    sniff,
    unsupported,
)
from services.catalog.photos.storage import PhotoStore, StoredFile
from services.catalog.photos.upload import FIELD, ReceivedFile
from services.catalog.products import service as products
from services.catalog.products.models import Product

log = logging.getLogger("catalog.photos")

_RENUMBER_OFFSET = 1000  # positions are moved out of the way first: (product_id, position) is unique


async def list_photos(session: AsyncSession, product_id: int) -> list[Photo]:
    stmt = select(Photo).where(Photo.product_id == product_id).order_by(Photo.position, Photo.id)
    return list((await session.scalars(stmt)).all())


async def ensure_room(session: AsyncSession, product_id: int) -> None:
    """422 when the variety already has its ten photos (checked before the upload is read, and again
    when its row is inserted)."""
    count = await session.scalar(select(func.count()).select_from(Photo).where(Photo.product_id == product_id))
    if count >= MAX_PHOTOS_PER_PRODUCT:
        raise UnprocessableEntity(
            f"A variety has at most {MAX_PHOTOS_PER_PRODUCT} photos; delete one before adding another.",
            errors=[{"field": f"body.{FIELD}", "message": f"at most {MAX_PHOTOS_PER_PRODUCT} photos",
                     "type": "too_many_photos"}])


async def ready_for_upload(session: AsyncSession, owner: Principal, product_id: int) -> Product:
    """Who, whose variety and whether it has room: settled before a byte of the body is read. The
    transaction is then ended, so that no database connection waits on a slow phone's upload."""
    product = await products.get_owned(session, owner, product_id)
    await ensure_room(session, product.id)
    await session.commit()  # a boundary of its own: no connection held while the upload is read
    return product


async def _lock(session: AsyncSession, product_id: int) -> None:
    """Changes to one variety's photos take turns: on PostgreSQL a row lock on the product (which
    does not hold up orders: they lock variants); on SQLite the writer transaction already does."""
    await session.execute(select(Product.id).where(Product.id == product_id).with_for_update(key_share=True))


async def _by_hash(session: AsyncSession, product_id: int, content_hash: str) -> Photo | None:
    return await session.scalar(select(Photo).where(Photo.product_id == product_id,
                                                    Photo.content_hash == content_hash))


async def add(session: AsyncSession, product: Product, upload: ReceivedFile, *, store: PhotoStore,
              limiter: CapacityLimiter) -> tuple[Photo, bool]:
    """The photo made from ``upload`` and whether it is new. The same picture sent again to the same
    variety (a retry after a dropped connection) answers with the photo already there."""
    kind = sniff(upload.head)
    if kind is None:
        raise unsupported()
    processed: ProcessedPhoto = await anyio.to_thread.run_sync(process, upload.path, kind, limiter=limiter)
    existing = await _by_hash(session, product.id, processed.content_hash)
    if existing is not None:
        return existing, False
    await ensure_room(session, product.id)
    await session.commit()  # no transaction stays open while the files are written

    saved: list[str] = []
    try:
        for name, data in processed.files.items():
            saved.append(name)  # before the write: a failed write may still leave the file
            try:
                await store.save(name, data)
            except OSError as exc:
                log.error("could not store photo file %s: %s", name, exc)
                raise ServiceUnavailable("The photo could not be stored just now; send it again shortly.",
                                         headers={"Retry-After": "5"}) from None
        for _ in range(3):
            # The checks again and the insert, in one transaction, the variety's photos locked.
            await _lock(session, product.id)
            existing = await _by_hash(session, product.id, processed.content_hash)
            if existing is not None:
                return existing, False
            await ensure_room(session, product.id)
            position = await session.scalar(
                select(func.coalesce(func.max(Photo.position) + 1, 0)).where(Photo.product_id == product.id))
            photo = Photo(product_id=product.id, position=position, content_hash=processed.content_hash,
                          width=processed.width, height=processed.height)
            session.add(photo)
            try:
                # Committed here, not by the request's unit of work: the files are written, and a
                # failed commit must reach the clean-up below, which forgets them.
                await session.commit()
            except IntegrityError:  # not expected under the lock; the constraints are the last fence
                await session.rollback()
                continue
            await _restore_missing(store, processed)
            return photo, True
        raise Conflict("Other changes to this variety's photos got in the way; send the photo again.")
    except BaseException:
        with anyio.CancelScope(shield=True):
            await _forget_files(session, store, processed.content_hash, saved)
        raise


async def _restore_missing(store: PhotoStore, processed: ProcessedPhoto) -> None:
    """Files are shared by content: if another variety's photo of the same picture was deleted while
    this one was being recorded, its clean-up may have taken the files this row now names."""
    for name, data in processed.files.items():
        if not await store.exists(name):
            log.warning("photo file %s vanished while its row was recorded; writing it again", name)
            await store.save(name, data)


async def _forget_files(session: AsyncSession, store: PhotoStore, content_hash: str, names: list[str]) -> None:
    """Delete ``names`` unless a photo row still refers to their content hash."""
    if not names:
        return
    try:
        await session.rollback()
        refs = await session.scalar(select(func.count()).select_from(Photo).where(Photo.content_hash == content_hash))
        await session.rollback()
    except Exception:  # the database is what failed: keep the files rather than risk a row without them
        log.exception("could not check whether photo %s is still used; its files are kept", content_hash)
        return
    if refs:
        return
    for name in names:
        try:
            await store.delete(name)
        except OSError:
            log.exception("could not delete photo file %s", name)


async def get(session: AsyncSession, product: Product, photo_id: int) -> Photo:
    photo = await session.get(Photo, photo_id)
    if photo is None or photo.product_id != product.id:
        raise NotFound("No such photo of this variety")
    return photo


async def _renumber(session: AsyncSession, product_id: int, ordered: list[Photo]) -> None:
    """Give ``ordered`` the positions 0, 1, 2… without ever holding two rows at one position."""
    await session.execute(update(Photo).where(Photo.product_id == product_id)
                          .values(position=Photo.position + _RENUMBER_OFFSET))
    for position, photo in enumerate(ordered):
        await session.execute(update(Photo).where(Photo.id == photo.id).values(position=position))


async def move(session: AsyncSession, product: Product, photo_id: int, position: int) -> list[Photo]:
    """Put one photo at ``position`` (0: the cover); the others keep their order around it."""
    await _lock(session, product.id)
    photo = await get(session, product, photo_id)
    photos = [p for p in await list_photos(session, product.id) if p.id != photo.id]
    photos.insert(min(position, len(photos)), photo)
    await _renumber(session, product.id, photos)
    return await list_photos(session, product.id)


async def delete(session: AsyncSession, product: Product, photo_id: int, *, store: PhotoStore) -> None:
    await _lock(session, product.id)
    photo = await get(session, product, photo_id)
    content_hash = photo.content_hash
    await session.delete(photo)
    await session.flush()
    await _renumber(session, product.id, await list_photos(session, product.id))
    await session.commit()  # the row goes first: its files are deleted only once that is committed
    with anyio.CancelScope(shield=True):
        await _forget_files(session, store, content_hash, list(file_names(content_hash).values()))


async def _read(stored: StoredFile) -> bytes:
    if stored.path is not None:
        return await anyio.Path(stored.path).read_bytes()
    return b"".join([chunk async for chunk in stored.chunks or ()])


def smaller_size(name: str) -> tuple[str, int] | None:
    """``{hash}-560.webp`` → (hash, 560): a size that can be made from a photo's largest WebP."""
    content_hash, _, label = name.partition("-")
    label = label.removesuffix(".webp")
    return (content_hash, int(label)) if label in [str(w) for w in WIDTHS[:-1]] else None


async def make_size(store: PhotoStore, limiter: CapacityLimiter, content_hash: str, width: int, height: int,
                    target: int) -> bool:
    """Store the ``target`` px WebP of a photo (``width`` × ``height`` as uploaded) made from its largest
    one: for photos stored before that size was made. False when the largest file is missing or broken
    (nothing to make it from)."""
    names = file_names(content_hash)
    source = await store.open(names[str(WIDTHS[-1])])
    if source is None:
        log.warning("photo %s has no %s px file to make its %s px one from", content_hash, WIDTHS[-1], target)
        return False
    try:
        data = await anyio.to_thread.run_sync(derive, await _read(source), scaled_size(width, height, target),
                                              limiter=limiter)
    except (OSError, ValueError, SyntaxError) as exc:
        log.error("photo file %s could not be read to make its %s px size: %s", source.name, target, exc)
        return False
    try:
        await store.save(names[str(target)], data)
    except OSError as exc:
        log.error("could not store photo file %s: %s", names[str(target)], exc)
        raise ServiceUnavailable("The photo could not be stored just now.", headers={"Retry-After": "5"}) from None
    log.info("photo file %s made from the %s px one", names[str(target)], WIDTHS[-1])
    return True


# The files being made on request, each by one task: a shop page's first visitors ask for the same
# missing files at once, and the others wait for it rather than make them again.
_making: dict[str, anyio.Lock] = {}


async def make_missing(session: AsyncSession, store: PhotoStore, limiter: CapacityLimiter, name: str) -> bool:
    """Make the stored file ``name`` if it is a smaller size of a recorded photo (asked for before
    ``photo-sizes`` made it); False when it is not."""
    wanted = smaller_size(name)
    if wanted is None:
        return False
    content_hash, target = wanted
    row = (await session.execute(select(Photo.width, Photo.height).where(Photo.content_hash == content_hash)
                                 .limit(1))).first()
    if row is None:
        return False
    lock = _making.setdefault(name, anyio.Lock())
    try:
        async with lock:
            return await store.exists(name) or await make_size(store, limiter, content_hash, row.width,
                                                               row.height, target)
    finally:
        if not lock.locked() and not lock.statistics().tasks_waiting:
            _making.pop(name, None)
