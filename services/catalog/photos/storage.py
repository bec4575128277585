"""Where photo files live: an interface, and the local folder that fills it by default.

Files are immutable and named by content hash (``{sha256}-800.webp``), so a store needs no update,
listing or metadata: put a file whole, read it, delete it. An S3-compatible store fills the same
interface (``put_object`` is atomic; ``get_object`` streams; ``delete_object`` is idempotent) and is
chosen by setting ``app.state.photo_store`` at start-up. Public URLs do not depend on the store: they
are always ``{public_base_url}/media/{name}``, served by the catalog (``endpoints.py``) with a
year-long cache lifetime, so a CDN in front of the gateway holds them.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from starlette.concurrency import run_in_threadpool

from services.catalog.photos.processing import WIDTHS

# The only names a store accepts: what processing.file_names() makes. Nothing else can be read,
# written or deleted, whatever a path parameter holds (no dots, slashes or other tricks).
NAME = re.compile(rf"^[0-9a-f]{{64}}-(?:(?:{'|'.join(map(str, WIDTHS))})\.webp|og\.jpg)$")
CONTENT_TYPES = {".webp": "image/webp", ".jpg": "image/jpeg"}
CHUNK = 64 * 1024


def valid_name(name: str) -> bool:
    return NAME.fullmatch(name) is not None


def content_type(name: str) -> str:
    return CONTENT_TYPES[name[name.rindex("."):]]


@dataclass(frozen=True)
class StoredFile:
    """A file opened for reading. ``path`` is set when it is a local file (served with sendfile)."""

    name: str
    size: int
    content_type: str
    chunks: AsyncIterator[bytes] | None = None
    path: Path | None = None


class PhotoStore(Protocol):
    async def save(self, name: str, data: bytes) -> None:
        """Store ``data`` under ``name``: readers see the whole file or none of it."""

    async def open(self, name: str) -> StoredFile | None:
        """The stored file, or None when there is none (or the name is not one a store holds)."""

    async def exists(self, name: str) -> bool: ...

    async def delete(self, name: str) -> None:
        """Remove ``name``; a missing file is not an error."""


class LocalPhotoStore:
    """Files in a local folder, two levels deep by hash prefix (``ab/abcdef…-800.webp``).

    Writes go to a temporary name in the same folder, are flushed to disk, then renamed over the
    final name: a crash leaves either the whole file or a ``.tmp-`` leftover, never a torn file.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, name: str) -> Path:
        if not valid_name(name):
            raise ValueError(f"not a photo file name: {name!r}")
        return self.root / name[:2] / name

    async def save(self, name: str, data: bytes) -> None:
        await run_in_threadpool(self._save, self.path(name), data)

    @staticmethod
    def _save(final: Path, data: bytes) -> None:
        final.parent.mkdir(parents=True, exist_ok=True)
        temp = final.parent / f".tmp-{uuid.uuid4().hex}-{final.name}"
        try:
            with open(temp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, final)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    async def open(self, name: str) -> StoredFile | None:
        if not valid_name(name):
            return None
        path = self.path(name)
        try:
            size = (await run_in_threadpool(path.stat)).st_size
        except FileNotFoundError:
            return None
        return StoredFile(name=name, size=size, content_type=content_type(name), path=path)

    async def exists(self, name: str) -> bool:
        return valid_name(name) and await run_in_threadpool(self.path(name).is_file)

    async def delete(self, name: str) -> None:
        await run_in_threadpool(self.path(name).unlink, True)

    def files(self) -> list[Path]:
        """Every file under the root, temporary leftovers included (for tests and operators)."""
        return sorted(p for p in self.root.rglob("*") if p.is_file()) if self.root.exists() else []
