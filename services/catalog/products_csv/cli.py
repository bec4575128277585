"""``python -m services.catalog import-csv FILE --shop SLUG`` and ``export-csv FILE --shop SLUG``.

Exit status: 0 all rows stored (or checked, with --dry-run); 1 some rows were bad (each is printed
on stderr with its line number; their products were not stored); 2 the file or the shop could not
be used at all (nothing stored).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

from common.db import Database
from common.errors import NotFound
from services.catalog.app import MIGRATIONS
from services.catalog.products_csv.format import MAX_FILE_BYTES, CsvFileError
from services.catalog.products_csv.service import ExportResult, ImportReport, export_products, import_products
from services.catalog.settings import CatalogSettings
from services.catalog.shops import service as shops


def _fail(message: str) -> int:
    print(f"catalog: {message}", file=sys.stderr)
    return 2


def _read(path: Path) -> bytes:
    """At most one byte over the limit, so that a huge file is refused without reading it all."""
    with path.open("rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise CsvFileError(f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB; split it into several files")
    return data


def import_file(args: argparse.Namespace, settings: CatalogSettings) -> int:
    path = Path(args.file)
    try:
        data = _read(path)
    except OSError as exc:
        return _fail(f"cannot read {path}: {exc.strerror or exc}")
    except CsvFileError as exc:
        return _fail(f"{path}: {exc}; nothing was imported")
    return asyncio.run(_import(args, settings, path, data))


async def _import(args: argparse.Namespace, settings: CatalogSettings, path: Path, data: bytes) -> int:
    from tqdm import tqdm  # here: the server imports this module for its commands, never draws a bar

    db = Database(settings.database_url, MIGRATIONS, **settings.pool())
    bar: tqdm | None = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            # On a terminal only (disable=None): logs and pipes get the summary alone.
            bar = tqdm(total=total, unit="row", desc="import", file=sys.stderr, disable=None, leave=False)
        bar.update(done - bar.n)

    try:
        await db.migrate()
        # The writer session: on SQLite each product's transaction takes the write lock up front, so
        # it and the running service's writers queue behind each other instead of failing. A dry run
        # writes nothing and needs no lock.
        async with (db.sessionmaker if args.dry_run else db.writer)() as session:
            try:
                shop_id = (await shops.get_by_slug(session, args.shop)).id
            except NotFound:
                return _fail(f"no shop with the address (slug) {args.shop!r}")
            await session.rollback()  # hold nothing while the file is read and checked
            report = await import_products(session, shop_id, data, all_or_nothing=args.all_or_nothing,
                                           dry_run=args.dry_run, progress=progress)
    except CsvFileError as exc:
        return _fail(f"{path}: {exc}; nothing was imported")
    finally:
        if bar is not None:
            bar.close()
        await db.dispose()
    for error in report.errors:
        print(f"{path}: {error}", file=sys.stderr)
    print(_summary(path, args.shop, report, args))
    return 1 if report.errors else 0


def _summary(path: Path, slug: str, report: ImportReport, args: argparse.Namespace) -> str:
    lines = [f"catalog: {path} → shop {slug}: {report.rows} rows"]
    if report.stored or args.dry_run:
        would = " (dry run: would be)" if args.dry_run else ""
        lines.append(f"  products{would}: {report.products_created} created, {report.products_updated} updated, "
                     f"{report.products_unchanged} unchanged")
        lines.append(f"  variants{would}: {report.variants_created} created, {report.variants_updated} updated, "
                     f"{report.variants_archived} archived")
    if report.errors and args.all_or_nothing:
        lines.append(f"  {len(report.errors)} errors: nothing was stored (--all-or-nothing)")
    elif report.errors:
        lines.append(f"  {len(report.errors)} errors in {report.products_rejected} products: those products "
                     f"{'would not be' if args.dry_run else 'were not'} stored. Fix the rows and import the file "
                     "again: products already stored are updated, not duplicated")
    if args.dry_run:
        lines.append("  dry run: nothing was stored")
    return "\n".join(lines)


def export_file(args: argparse.Namespace, settings: CatalogSettings) -> int:
    path = Path(args.file)
    result = asyncio.run(_export(args, settings))
    if isinstance(result, int):
        return result
    # Written beside the target and renamed over it: a failed export leaves no half file behind.
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(result.data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        return _fail(f"cannot write {path}: {exc.strerror or exc}")
    for warning in result.warnings:
        print(f"catalog: {warning}", file=sys.stderr)
    print(f"catalog: shop {args.shop} → {path}: {result.products} products, {result.rows} rows")
    return 0


async def _export(args: argparse.Namespace, settings: CatalogSettings) -> ExportResult | int:
    db = Database(settings.database_url, MIGRATIONS, **settings.pool())
    try:
        await db.migrate()
        async with db.sessionmaker() as session:
            try:
                shop = await shops.get_by_slug(session, args.shop)
            except NotFound:
                return _fail(f"no shop with the address (slug) {args.shop!r}")
            return await export_products(session, shop.id)
    finally:
        await db.dispose()


def add_csv_commands():
    def configure_import(parser: argparse.ArgumentParser) -> None:
        parser.description = ("Import a shop's products from a CSV file (one row per variant). Products are "
                              "matched by name and updated; bad rows are reported with their line numbers.")
        parser.add_argument("file", help="the CSV file (UTF-8, with or without BOM; ',' or ';' separated)")
        parser.add_argument("--shop", required=True, metavar="SLUG", help="the shop's address, as in /s/SLUG")
        parser.add_argument("--all-or-nothing", action="store_true",
                            help="store nothing unless every row is good (default: store the good products)")
        parser.add_argument("--dry-run", action="store_true", help="check the file, store nothing")

    def configure_export(parser: argparse.ArgumentParser) -> None:
        parser.description = "Export a shop's products to a CSV file that import-csv reads back."
        parser.add_argument("file", help="where to write (UTF-8 with BOM, for Excel)")
        parser.add_argument("--shop", required=True, metavar="SLUG", help="the shop's address, as in /s/SLUG")

    def run_import(args: argparse.Namespace, settings: CatalogSettings) -> None:
        sys.exit(import_file(args, settings))

    def run_export(args: argparse.Namespace, settings: CatalogSettings) -> None:
        sys.exit(export_file(args, settings))

    return {"import-csv": (configure_import, run_import), "export-csv": (configure_export, run_export)}
