"""``python -m services.catalog photo-sizes``: every smaller WebP size of every photo, made where missing.

A size added after photos were stored (560 px) is made from each photo's largest WebP; the media
endpoint makes a missing one on its first request anyway, this makes them all ahead. Exit status:
0 every photo has every size (``--dry-run``: none is missing); 1 some could not be made (their
largest file is gone or broken; logged) or, with ``--dry-run``, some are missing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from anyio import CapacityLimiter
from sqlalchemy import select

from common.db import Database
from services.catalog.app import MIGRATIONS
from services.catalog.photos.models import Photo
from services.catalog.photos.processing import WIDTHS, file_names
from services.catalog.photos.service import make_size
from services.catalog.photos.storage import LocalPhotoStore
from services.catalog.settings import CatalogSettings


async def fill_sizes(db: Database, store: LocalPhotoStore, limiter: CapacityLimiter, *,
                     dry_run: bool = False) -> tuple[int, int, int]:
    """(photos looked at, files made or, with ``dry_run``, missing, files that could not be made)."""
    async with db.sessionmaker() as session:
        rows = (await session.execute(select(Photo.content_hash, Photo.width, Photo.height)
                                      .distinct().order_by(Photo.content_hash))).all()
    made = failed = 0
    for content_hash, width, height in rows:
        names = file_names(content_hash)
        for target in WIDTHS[:-1]:
            if await store.exists(names[str(target)]):
                continue
            if dry_run:
                made += 1
            elif await make_size(store, limiter, content_hash, width, height, target):
                made += 1
            else:
                failed += 1
    return len(rows), made, failed


def add_photo_sizes_command():
    def configure(p: argparse.ArgumentParser) -> None:
        p.add_argument("--dry-run", action="store_true", help="only count the files missing")

    def run(args: argparse.Namespace, settings: CatalogSettings) -> None:
        async def go() -> tuple[int, int, int]:
            db = Database(settings.database_url, MIGRATIONS, **settings.pool())
            try:
                await db.migrate()
                return await fill_sizes(db, LocalPhotoStore(Path(settings.media_dir)),
                                        CapacityLimiter(settings.photo_decode_workers), dry_run=args.dry_run)
            finally:
                await db.dispose()

        photos, made, failed = asyncio.run(go())
        verb = "missing" if args.dry_run else "made"
        print(f"catalog photo-sizes: {photos} photos, {made} files {verb}"
              + (f", {failed} could not be made (see the log)" if failed else ""))
        sys.exit(1 if failed or (args.dry_run and made) else 0)

    return configure, run
