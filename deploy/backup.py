"""Back up and restore every app's database and the catalog's photos, in either shape.

    .venv/bin/python deploy/backup.py create BACKUP_DIR     # while the apps run
    .venv/bin/python deploy/backup.py restore BACKUP_DIR    # with the apps stopped

Each app's database is found as the app finds it (its settings: <PREFIX>DATABASE_URL, the
environment, .env, SECRETS_DIR), so run it with the same environment as the apps.

- PostgreSQL: ``pg_dump --format=custom`` per database (a consistent snapshot, the apps may go on
  writing), without owners or grants; restored with ``pg_restore --clean --if-exists`` connecting as
  the app's own role, which therefore owns everything again.
- SQLite (the embedded default): SQLite's online backup API, a consistent copy of a live database.
- Photos (CATALOG_MEDIA_DIR): the files, named by their content's hash and never changed, copied
  after the catalog's database, so that every photo row in the backup has its files.

``manifest.json`` lists what was saved, with the SHA-256 of every file. docs/operations.md, Backups.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.settings import GatewaySettings  # noqa: E402
from services.catalog.settings import CatalogSettings  # noqa: E402
from services.notify.settings import NotifySettings  # noqa: E402
from services.orders.settings import OrdersSettings  # noqa: E402

APPS = {"gateway": GatewaySettings, "catalog": CatalogSettings, "orders": OrdersSettings, "notify": NotifySettings}


def _libpq_url(url: str) -> str:
    """``postgresql+asyncpg://…`` → ``postgresql://…`` (what pg_dump and pg_restore take)."""
    parts = urlsplit(url)
    return urlunsplit(("postgresql", *parts[1:]))


def _sqlite_path(url: str) -> Path:
    return Path(url.split(":///", 1)[1])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _run(*args: str) -> None:
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()}")


def create(target: Path) -> dict:
    target.mkdir(parents=True, exist_ok=False)
    manifest: dict = {"made": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "databases": {}}
    for app, cls in APPS.items():
        url = cls().database_url
        if url.startswith("postgresql"):
            out = target / f"{app}.dump"
            _run("pg_dump", "--format=custom", "--no-owner", "--no-privileges", f"--file={out}", _libpq_url(url))
            kind = "postgresql"
        elif url.startswith("sqlite"):
            out = target / f"{app}.db"
            source = sqlite3.connect(f"file:{_sqlite_path(url)}?mode=ro", uri=True)
            copy = sqlite3.connect(out)
            try:
                source.backup(copy)
            finally:
                copy.close()
                source.close()
            kind = "sqlite"
        else:
            sys.exit(f"{app}: cannot back up {url.split(':', 1)[0]} databases")
        manifest["databases"][app] = {"kind": kind, "file": out.name, "sha256": _sha256(out)}
    media = Path(CatalogSettings().media_dir)
    saved = target / "media"
    shutil.copytree(media, saved) if media.is_dir() else saved.mkdir()
    manifest["media"] = {str(p.relative_to(saved)): _sha256(p) for p in sorted(saved.rglob("*")) if p.is_file()}
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest


def restore(source: Path) -> dict:
    manifest = json.loads((source / "manifest.json").read_text())
    for name, entry in [*manifest["databases"].items(), *manifest["media"].items()]:
        path = source / (entry["file"] if isinstance(entry, dict) else f"media/{name}")
        expected = entry["sha256"] if isinstance(entry, dict) else entry
        if _sha256(path) != expected:
            sys.exit(f"{path}: damaged (its SHA-256 is not the one in manifest.json); nothing restored")
    for app, entry in manifest["databases"].items():
        url = APPS[app]().database_url
        path = source / entry["file"]
        if entry["kind"] == "postgresql":
            if not url.startswith("postgresql"):
                sys.exit(f"{app}: the backup is of PostgreSQL, {APPS[app].env_name('database_url')} is not")
            _run("pg_restore", "--clean", "--if-exists", "--no-owner", "--no-privileges", "--exit-on-error",
                 f"--dbname={_libpq_url(url)}", str(path))
        else:
            if not url.startswith("sqlite"):
                sys.exit(f"{app}: the backup is of SQLite, {APPS[app].env_name('database_url')} is not")
            dest = _sqlite_path(url)
            dest.parent.mkdir(parents=True, exist_ok=True)
            for leftover in (dest.with_name(dest.name + "-wal"), dest.with_name(dest.name + "-shm")):
                leftover.unlink(missing_ok=True)
            shutil.copyfile(path, dest)
    media = Path(CatalogSettings().media_dir)
    media.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source / "media", media, dirs_exist_ok=True)
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(prog="deploy/backup.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["create", "restore"])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()
    manifest = create(args.folder) if args.command == "create" else restore(args.folder)
    print(f"{args.command}: {', '.join(manifest['databases'])} and {len(manifest['media'])} photo files "
          f"({args.folder})")


if __name__ == "__main__":
    main()
