"""Static files under content-hashed names (``app.3f9c2a1b.css``): cached a year, never stale.

Each file is read, hashed and gzipped once at import; ``url("app.css")`` gives its current name.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, Request
from starlette.responses import Response

from common.errors import NotFound

STATIC_DIR = Path(__file__).parent / "static"
IMMUTABLE = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class Asset:
    name: str  # the hashed name
    media_type: str
    body: bytes
    gzipped: bytes


def _load() -> tuple[dict[str, Asset], dict[str, str]]:
    by_hashed, hashed_of = {}, {}
    for path in sorted(STATIC_DIR.iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        body = path.read_bytes()
        digest = hashlib.blake2b(body, digest_size=5).hexdigest()
        hashed = f"{path.stem}.{digest}{path.suffix}"
        media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if media_type.startswith("text/") or media_type.endswith("javascript"):
            media_type += "; charset=utf-8"
        by_hashed[hashed] = Asset(hashed, media_type, body, gzip.compress(body, 9, mtime=0))
        hashed_of[path.name] = hashed
    return by_hashed, hashed_of


ASSETS, HASHED = _load()


def url(name: str) -> str:
    return f"/static/{HASHED[name]}"


# The public pages carry the stylesheet inline (docs/decisions/0027-catalog-reads.md): they paint with the
# page's first round trip instead of waiting for a second one for app.css (≈ 3 KB gzipped, inside each
# page's own gzip). The CSP allows exactly that text by its hash (core.CSP); nothing else inline.
INLINE_STYLE = "app.css"


def text(name: str) -> str:
    return ASSETS[HASHED[name]].body.decode()


def style_hash(name: str) -> str:
    """The CSP source allowing ``<style>`` with exactly this file's text: ``'sha256-…'``."""
    return f"'sha256-{base64.b64encode(hashlib.sha256(ASSETS[HASHED[name]].body).digest()).decode()}'"


def accepts_gzip(request: Request) -> bool:
    return "gzip" in request.headers.get("accept-encoding", "").lower()


router = APIRouter(include_in_schema=False)


@router.get("/static/{name}")
async def static_file(request: Request, name: str) -> Response:
    asset = ASSETS.get(name)
    if asset is None:
        raise NotFound("No such file")
    headers = {"Cache-Control": IMMUTABLE, "Vary": "Accept-Encoding", "X-Content-Type-Options": "nosniff"}
    if accepts_gzip(request):
        headers["Content-Encoding"] = "gzip"
        return Response(asset.gzipped, media_type=asset.media_type, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)
