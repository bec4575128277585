"""Photos from a phone: recognised by content, bombs refused before decoding, upright and stripped,
stored as WebP sizes and a link-preview JPEG named by content hash, served with a year-long cache.
Every refusal leaves nothing behind: no row, no file in the media folder, no temporary upload."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import httpx
import pillow_heif
import pytest
from PIL import Image
from sqlalchemy import event

from services.catalog.photos.processing import file_names, process
from services.catalog.photos.storage import LocalPhotoStore
from tests.apps import make_app
from tests.catalog.helpers import PRODUCT, SHOP, add_product, open_shop
from tests.conftest import asgi_client
from tests.support.auth import auth
from tests.support.servers import free_port, serve_in_thread

GROWER = auth("grower-1")
OTHER = auth("grower-2")
PROBLEM = "application/problem+json"
IMMUTABLE = "public, max-age=31536000, immutable"
SECRET_TEXT = "Cho-Vuon-Test-Phone"  # written into EXIF and XMP: must not reach a stored file

pillow_heif.register_heif_opener()
# Pillow warns between its limit and twice that; the catalog refuses those itself (a 422).
pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")


# --- images, built in memory ---------------------------------------------------------------------


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **kw)
    return out.getvalue()


def two_tone(size: tuple[int, int], left=(220, 20, 20), right=(20, 20, 220), mode="RGB") -> Image.Image:
    """Left half one colour, right half another: which way up it is stored shows at a glance."""
    im = Image.new(mode, size, right if mode == "RGB" else (*right, 255))
    im.paste(left if mode == "RGB" else (*left, 255), (0, 0, size[0] // 2, size[1]))
    return im


def phone_jpeg() -> bytes:
    """A 1000×500 sensor image that the phone says to turn 90° clockwise (EXIF orientation 6),
    with GPS coordinates, a camera name and XMP, as phones write them."""
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° CW to display
    exif[0x010F] = SECRET_TEXT  # Make
    exif[0x8825] = {1: "N", 2: (10.0, 2.0, 3.0), 3: "E", 4: (105.0, 46.0, 12.0)}  # GPS IFD
    xmp = f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description>{SECRET_TEXT}</rdf:Description></x:xmpmeta>'
    return encode(two_tone((1000, 500)), "JPEG", exif=exif.tobytes(), xmp=xmp.encode(), quality=92)


def png_bytes(size=(640, 480), colour=(30, 160, 60)) -> bytes:
    return encode(Image.new("RGBA", size, (*colour, 200)), "PNG")


def webp_bytes() -> bytes:
    return encode(two_tone((900, 600)), "WEBP", quality=90)


def heic_bytes(orientation: int | None = None) -> bytes:
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    return encode(two_tone((1200, 800)), "HEIF", quality=80, exif=exif.tobytes())


def png_claiming(width: int, height: int) -> bytes:
    """A few-byte PNG whose header claims ``width``×``height``: patched IHDR with a valid CRC, so only
    the pixel count gives it away (nothing close to that many pixels is ever allocated here)."""
    data = bytearray(encode(Image.new("RGB", (8, 8), (1, 2, 3)), "PNG"))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


PDF = (b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
       b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")


# --- fixtures and helpers -------------------------------------------------------------------------


def leftover_uploads() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("cho-vuon-photo-*")}


@pytest.fixture
async def catalog(db_urls, tmp_path, monkeypatch):
    # Uploads spool into a temporary folder of this test's own, so that another run on the machine
    # (sharing /tmp) can neither hide a leftover file nor be taken for one.
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    app = make_app("catalog", db_urls, media_dir=str(tmp_path / "media"), public_base_url="https://chovuon.test")
    async with asgi_client(app) as client:
        client.app = app
        client.media = LocalPhotoStore(tmp_path / "media")
        await open_shop(client, GROWER)
        client.product = await add_product(client, GROWER)
        before = leftover_uploads()
        yield client
        assert leftover_uploads() <= before, "temporary upload files are removed"


async def upload(client, product_id: int, data: bytes, filename="photo.jpg", content_type="image/jpeg",
                 headers=GROWER) -> httpx.Response:
    return await client.post(f"/api/v1/products/{product_id}/photos", headers=headers,
                             files={"file": (filename, data, content_type)})


async def photos(client, product_id: int, headers=None) -> list[dict]:
    resp = await client.get(f"/api/v1/products/{product_id}/photos", headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()["items"]


def name_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


async def fetch(client, url: str) -> httpx.Response:
    assert url.startswith("https://chovuon.test/media/")
    return await client.get(url.removeprefix("https://chovuon.test"))


async def assert_nothing_stored(client, product_id: int) -> None:
    assert await photos(client, product_id, headers=GROWER) == []
    assert client.media.files() == [], "no file (nor temporary file) is left in the media folder"


def assert_problem(resp: httpx.Response, status: int, slug: str) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == PROBLEM
    body = resp.json()
    assert body["type"].endswith(f"/problems/{slug}") and body["status"] == status and body["detail"]
    return body


# --- accepted -------------------------------------------------------------------------------------


async def test_phone_jpeg_is_stored_upright_without_exif_or_gps(catalog) -> None:
    pid = catalog.product["id"]
    resp = await upload(catalog, pid, phone_jpeg(), filename="IMG_0042.JPG")
    assert resp.status_code == 201, resp.text
    photo = resp.json()
    # Upright: the 1000×500 sensor image turned a quarter clockwise is 500 wide, 1000 tall.
    assert (photo["width"], photo["height"]) == (500, 1000)
    assert [(s["width"], s["height"]) for s in photo["sizes"]] == [(320, 640), (500, 1000), (500, 1000),
                                                                   (500, 1000)]
    urls = [s["url"] for s in photo["sizes"]]
    assert [name_of(u).split("-", 1)[1] for u in urls] == ["320.webp", "560.webp", "800.webp", "1600.webp"]
    assert photo["url"] == urls[2]
    # Never enlarged: 560, 800 and 1600 are the same 500 px picture, listed once in srcset.
    assert photo["srcset"] == f"{urls[0]} 320w, {urls[1]} 500w"
    assert photo["og_image"]["width"] == 1200 and photo["og_image"]["height"] == 630
    assert name_of(photo["og_image"]["url"]).endswith("-og.jpg")

    stored = {}
    for url in [*urls, photo["og_image"]["url"]]:
        served = await fetch(catalog, url)
        assert served.status_code == 200
        assert SECRET_TEXT.encode() not in served.content and b"Exif" not in served.content
        im = Image.open(io.BytesIO(served.content))
        assert not im.getexif(), "no EXIF at all (GPS, camera, orientation)"
        assert not {"exif", "xmp", "XML:com.adobe.xmp", "icc_profile"} & set(im.info)
        stored[name_of(url).split("-", 1)[1]] = im.convert("RGB")
    small = stored["320.webp"]
    assert small.size == (320, 640)
    # The sensor's left half (red) is on top once turned clockwise; its right half (blue) below.
    top, bottom = small.getpixel((160, 80)), small.getpixel((160, 560))
    assert top[0] > 180 and top[2] < 80, top
    assert bottom[2] > 180 and bottom[0] < 80, bottom
    assert stored["og.jpg"].size == (1200, 630)


@pytest.mark.parametrize("make,filename,declared,size", [
    (png_bytes, "la-sen.png", "image/png", (640, 480)),
    (webp_bytes, "hoa.webp", "image/webp", (900, 600)),
    (heic_bytes, "IMG_0001.HEIC", "image/heic", (1200, 800)),
    (lambda: heic_bytes(orientation=6), "IMG_0002.HEIC", "image/heif", (800, 1200)),  # an iPhone held upright
    # Recognised by content: a name or a declared type that lie do not matter.
    (lambda: png_bytes((300, 200)), "photo.jpg", "application/octet-stream", (300, 200)),
], ids=["png", "webp", "heic", "heic-rotated", "png-named-jpg"])
async def test_png_webp_and_heic_are_accepted(catalog, make, filename: str, declared: str,
                                              size: tuple[int, int]) -> None:
    pid = catalog.product["id"]
    resp = await upload(catalog, pid, make(), filename=filename, content_type=declared)
    assert resp.status_code == 201, resp.text
    photo = resp.json()
    assert (photo["width"], photo["height"]) == size
    for s in photo["sizes"]:
        served = await fetch(catalog, s["url"])
        assert served.status_code == 200 and served.headers["content-type"] == "image/webp"
        im = Image.open(io.BytesIO(served.content))
        assert im.format == "WEBP" and im.size == (s["width"], s["height"])
    assert len(catalog.media.files()) == 5
    assert [p["id"] for p in await photos(catalog, pid)] == [photo["id"]]


def test_a_big_jpeg_is_decoded_at_reduced_scale_into_exact_sizes(tmp_path) -> None:
    """12.5 megapixels whose largest output is 1600 px: libjpeg decodes it at half scale (draft),
    and every size still comes out exact."""
    path = tmp_path / "big.jpg"
    path.write_bytes(encode(two_tone((5000, 2500)), "JPEG", quality=85))
    done = process(path, "jpeg")
    assert (done.width, done.height) == (5000, 2500)
    sizes = {name.split("-", 1)[1]: Image.open(io.BytesIO(data)).size for name, data in done.files.items()}
    assert sizes == {"320.webp": (320, 160), "560.webp": (560, 280), "800.webp": (800, 400),
                     "1600.webp": (1600, 800), "og.jpg": (1200, 630)}
    large = Image.open(io.BytesIO(done.files[file_names(done.content_hash)["1600"]])).convert("RGB")
    assert large.getpixel((100, 400))[0] > 180 and large.getpixel((1500, 400))[2] > 180


async def test_files_are_served_immutable_with_their_type(catalog) -> None:
    photo = (await upload(catalog, catalog.product["id"], webp_bytes(), filename="x.webp")).json()
    webp = await fetch(catalog, photo["sizes"][3]["url"])
    assert webp.status_code == 200
    assert webp.headers["cache-control"] == IMMUTABLE
    assert webp.headers["content-type"] == "image/webp"
    assert webp.headers["x-content-type-options"] == "nosniff"
    og = await fetch(catalog, photo["og_image"]["url"])
    assert og.headers["content-type"] == "image/jpeg" and og.headers["cache-control"] == IMMUTABLE
    head = await catalog.head(photo["og_image"]["url"].removeprefix("https://chovuon.test"))
    assert head.status_code == 200 and head.headers["content-length"] == str(len(og.content))
    # The name is the content's hash: the same picture, sent again, is the same files.
    assert photo["sizes"][0]["url"].split("/")[-1][:64] == photo["og_image"]["url"].split("/")[-1][:64]


async def test_a_size_added_after_a_photo_was_stored_is_made_on_its_first_request(catalog, caplog) -> None:
    """Photos stored before the 560 px size existed have no such file: its first request makes it from
    the 1600 px one, at the size the replies give, and stores it for the next."""
    photo = (await upload(catalog, catalog.product["id"], encode(two_tone((2000, 1500)), "JPEG"))).json()
    small = photo["sizes"][1]
    assert (small["width"], small["height"]) == (560, 420) and f"{small['url']} 560w" in photo["srcset"]
    path = catalog.media.path(name_of(small["url"]))
    path.unlink()  # as a photo stored before the size was made
    served = await fetch(catalog, small["url"])
    assert served.status_code == 200 and served.headers["cache-control"] == IMMUTABLE
    assert served.headers["content-type"] == "image/webp"
    im = Image.open(io.BytesIO(served.content))
    assert im.format == "WEBP" and im.size == (560, 420) and not im.getexif()
    left, right = im.convert("RGB").getpixel((100, 210)), im.convert("RGB").getpixel((460, 210))
    assert left[0] > 180 and left[2] < 80 and right[2] > 180 and right[0] < 80, (left, right)
    assert path.read_bytes() == served.content  # stored: the next request is served from the file
    # A page's first visitors ask at once: one of them makes it, the others wait and are served the file.
    path.unlink()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="catalog.photos"):
        together = await asyncio.gather(*(fetch(catalog, small["url"]) for _ in range(4)))
    assert [r.status_code for r in together] == [200] * 4
    assert all(r.content == served.content for r in together)
    assert sum("made from the 1600 px one" in r.getMessage() for r in caplog.records) == 1, caplog.records
    # Without its largest file there is nothing to make it from: 404, nothing stored.
    path.unlink()
    catalog.media.path(name_of(photo["sizes"][-1]["url"])).unlink()
    assert (await fetch(catalog, small["url"])).status_code == 404
    assert not path.exists()


async def test_photo_sizes_command_makes_the_missing_sizes(catalog, db_urls, tmp_path) -> None:
    pid = catalog.product["id"]
    big = (await upload(catalog, pid, encode(two_tone((1200, 900)), "JPEG"))).json()
    tiny = (await upload(catalog, pid, png_bytes((300, 200)))).json()
    made = {}
    for photo in (big, tiny):
        path = catalog.media.path(name_of(photo["sizes"][1]["url"]))
        made[path] = path.read_bytes()
        path.unlink()
    env = {**os.environ, "CATALOG_DATABASE_URL": db_urls["catalog"], "CATALOG_MEDIA_DIR": str(tmp_path / "media"),
           "LOG_LEVEL": "WARNING"}

    def photo_sizes(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "services.catalog", "photo-sizes", *args], env=env,
                              cwd=Path(__file__).parents[2], capture_output=True, text=True, timeout=120)

    dry = photo_sizes("--dry-run")
    assert dry.returncode == 1 and "2 photos, 2 files missing" in dry.stdout, dry.stdout + dry.stderr
    assert not any(path.exists() for path in made)
    done = photo_sizes()
    assert done.returncode == 0 and "2 photos, 2 files made" in done.stdout, done.stdout + done.stderr
    for path, uploaded in made.items():
        im, was = Image.open(path), Image.open(io.BytesIO(uploaded))
        assert im.format == "WEBP" and im.size == was.size
    assert Image.open(catalog.media.path(name_of(tiny["sizes"][1]["url"]))).size == (300, 200)
    again = photo_sizes("--dry-run")
    assert again.returncode == 0 and "0 files missing" in again.stdout


@pytest.mark.parametrize("path", [
    "/media/..%2f..%2fetc%2fpasswd",
    "/media/../../etc/passwd",
    "/media/%2e%2e%2fcatalog.db",
    "/media/" + "0" * 64 + "-800.webp",  # well-formed, not stored
    "/media/" + "0" * 64 + "-560.webp",  # a size made when missing, but of no photo
    "/media/" + "0" * 64 + "-800.png",
    "/media/" + "A" * 64 + "-800.webp",
    "/media/.tmp-x",
    "/media/",
])
async def test_media_names_are_strict(catalog, path: str) -> None:
    resp = await catalog.get(path)
    assert resp.status_code == 404, resp.text
    assert resp.headers["content-type"] == PROBLEM


async def test_product_replies_carry_photos_cover_first(catalog) -> None:
    pid = catalog.product["id"]
    first = (await upload(catalog, pid, png_bytes(colour=(10, 10, 10)))).json()
    second = (await upload(catalog, pid, png_bytes(colour=(200, 200, 200)))).json()
    third = (await upload(catalog, pid, png_bytes(colour=(90, 30, 150)))).json()
    product = (await catalog.get(f"/api/v1/products/{pid}")).json()
    assert [p["id"] for p in product["photos"]] == [first["id"], second["id"], third["id"]]
    assert product["photos"][0]["og_image"]["url"] == first["og_image"]["url"]
    listed = (await catalog.get("/api/v1/products")).json()["items"]
    assert [p["id"] for p in listed[0]["photos"]] == [first["id"], second["id"], third["id"]]

    # Make the third the cover; the others keep their order.
    moved = await catalog.patch(f"/api/v1/products/{pid}/photos/{third['id']}", json={"position": 0},
                                headers=GROWER)
    assert moved.status_code == 200, moved.text
    assert [(p["id"], p["position"]) for p in moved.json()["items"]] == [
        (third["id"], 0), (first["id"], 1), (second["id"], 2)]
    assert [p["id"] for p in (await catalog.get(f"/api/v1/products/{pid}")).json()["photos"]] == [
        third["id"], first["id"], second["id"]]

    # Deleting closes the gap and removes the files.
    gone = await catalog.delete(f"/api/v1/products/{pid}/photos/{first['id']}", headers=GROWER)
    assert gone.status_code == 204
    assert [(p["id"], p["position"]) for p in await photos(catalog, pid)] == [(third["id"], 0), (second["id"], 1)]
    assert (await fetch(catalog, first["sizes"][0]["url"])).status_code == 404
    assert (await fetch(catalog, first["sizes"][1]["url"])).status_code == 404  # not made again: no row
    assert len(catalog.media.files()) == 10


async def test_a_retried_upload_answers_with_the_photo_already_there(catalog) -> None:
    pid = catalog.product["id"]
    first = await upload(catalog, pid, phone_jpeg())
    again = await upload(catalog, pid, phone_jpeg())
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert len(await photos(catalog, pid)) == 1


async def test_files_shared_by_two_varieties_stay_until_neither_uses_them(catalog) -> None:
    one = catalog.product["id"]
    two = (await add_product(catalog, GROWER, name="Súng Thái đỏ — chậu"))["id"]
    a = (await upload(catalog, one, webp_bytes())).json()
    b = (await upload(catalog, two, webp_bytes())).json()
    assert a["sizes"] == b["sizes"] and len(catalog.media.files()) == 5
    assert (await catalog.delete(f"/api/v1/products/{one}/photos/{a['id']}", headers=GROWER)).status_code == 204
    assert (await fetch(catalog, b["sizes"][1]["url"])).status_code == 200
    assert (await catalog.delete(f"/api/v1/products/{two}/photos/{b['id']}", headers=GROWER)).status_code == 204
    assert catalog.media.files() == []


# --- who may ----------------------------------------------------------------------------------------


async def test_only_the_owner_adds_moves_and_deletes(catalog) -> None:
    pid = catalog.product["id"]
    await open_shop(catalog, OTHER, name="Vườn Hai")
    assert_problem(await upload(catalog, pid, png_bytes(), headers=OTHER), 404, "not-found")
    assert_problem(await upload(catalog, pid, png_bytes(), headers=auth(role="buyer")), 403, "forbidden")
    assert_problem(await upload(catalog, pid, png_bytes(), headers={}), 401, "unauthorized")
    key = auth("grower-1", kind="api_key", scopes=["catalog:read"])
    assert_problem(await upload(catalog, pid, png_bytes(), headers=key), 403, "forbidden")
    assert_problem(await upload(catalog, 999_999, png_bytes()), 404, "not-found")
    await assert_nothing_stored(catalog, pid)

    photo = (await upload(catalog, pid, png_bytes())).json()
    url = f"/api/v1/products/{pid}/photos/{photo['id']}"
    assert (await catalog.delete(url, headers=OTHER)).status_code == 404
    assert (await catalog.patch(url, json={"position": 0}, headers=OTHER)).status_code == 404
    # A photo id of another variety is not found through this one.
    theirs = (await add_product(catalog, OTHER))["id"]
    assert (await catalog.delete(f"/api/v1/products/{theirs}/photos/{photo['id']}", headers=OTHER)).status_code == 404
    assert len(await photos(catalog, pid)) == 1


async def test_photos_of_drafts_are_seen_by_their_owner_only(catalog) -> None:
    draft = (await add_product(catalog, GROWER, status="draft"))["id"]
    assert (await upload(catalog, draft, png_bytes())).status_code == 201
    assert (await catalog.get(f"/api/v1/products/{draft}/photos")).status_code == 404
    assert (await catalog.get(f"/api/v1/products/{draft}/photos", headers=OTHER)).status_code == 404
    assert len(await photos(catalog, draft, headers=GROWER)) == 1


# --- refused, and nothing half stored ---------------------------------------------------------------


async def test_a_pdf_named_jpg_is_415(catalog) -> None:
    pid = catalog.product["id"]
    body = assert_problem(await upload(catalog, pid, PDF, filename="photo.jpg", content_type="image/jpeg"),
                          415, "unsupported-photo-type")
    assert "JPEG, PNG, WebP or HEIC" in body["detail"]
    # AVIF, GIF and a text file dressed as an image are refused the same way.
    avif = encode(Image.new("RGB", (64, 64)), "AVIF")
    gif = encode(Image.new("RGB", (64, 64)), "GIF")
    for data in (avif, gif, b"hello, I am an image"):
        assert_problem(await upload(catalog, pid, data), 415, "unsupported-photo-type")
    await assert_nothing_stored(catalog, pid)


@pytest.mark.parametrize("width,height", [(20_000, 10_000), (10_000, 6_000)])
async def test_too_many_pixels_is_refused_before_decoding(catalog, width: int, height: int) -> None:
    """200 megapixels trips Pillow's own fence, 60 megapixels ours; both read the header alone. Were the
    file decoded, its eight-by-eight pixel data would fail as truncated, with another problem type."""
    pid = catalog.product["id"]
    data = png_claiming(width, height)
    assert len(data) < 200
    body = assert_problem(await upload(catalog, pid, data, filename="big.png"), 422, "too-many-pixels")
    assert body["max_pixels"] == 50_000_000 and "megapixels" in body["detail"]
    await assert_nothing_stored(catalog, pid)


async def test_a_truncated_photo_is_unreadable(catalog) -> None:
    pid = catalog.product["id"]
    data = phone_jpeg()
    assert_problem(await upload(catalog, pid, data[: len(data) // 3]), 422, "unreadable-photo")
    await assert_nothing_stored(catalog, pid)


async def test_bad_forms_are_refused(catalog) -> None:
    pid = catalog.product["id"]
    url = f"/api/v1/products/{pid}/photos"
    no_file = await catalog.post(url, headers=GROWER, files={"photo": ("a.png", png_bytes(), "image/png")})
    assert assert_problem(no_file, 422, "validation-error")["errors"][0]["field"] == "body.file"
    two = await catalog.post(url, headers=GROWER, files=[("file", ("a.png", png_bytes(), "image/png")),
                                                         ("file", ("b.png", webp_bytes(), "image/webp"))])
    assert_problem(two, 422, "validation-error")
    empty = await catalog.post(url, headers=GROWER, files={"file": ("a.jpg", b"", "image/jpeg")})
    assert_problem(empty, 422, "validation-error")
    as_json = await catalog.post(url, headers=GROWER, json={"file": "aGVsbG8="})
    assert_problem(as_json, 415, "unsupported-media-type")
    await assert_nothing_stored(catalog, pid)
    # The bare image as the body is accepted too.
    bare = await catalog.post(url, headers={**GROWER, "Content-Type": "image/png"}, content=png_bytes())
    assert bare.status_code == 201, bare.text


async def test_an_eleventh_photo_is_422(catalog) -> None:
    pid = catalog.product["id"]
    for i in range(10):
        resp = await upload(catalog, pid, png_bytes((64, 48), colour=(i * 20, 100, 50)))
        assert resp.status_code == 201, resp.text
    files = catalog.media.files()
    assert len(files) == 50
    body = assert_problem(await upload(catalog, pid, png_bytes((64, 48), colour=(1, 2, 3))), 422,
                          "validation-error")
    assert "at most 10" in body["detail"]
    assert len(await photos(catalog, pid)) == 10 and catalog.media.files() == files


async def test_racing_uploads_keep_the_limit_and_store_one_copy(catalog) -> None:
    pid = catalog.product["id"]
    # The same picture twice at once (a phone retrying): one photo, both told about it.
    same = await asyncio.gather(*(upload(catalog, pid, webp_bytes()) for _ in range(2)))
    assert sorted(r.status_code for r in same) == [200, 201]
    assert same[0].json()["id"] == same[1].json()["id"]
    for i in range(8):
        assert (await upload(catalog, pid, png_bytes((64, 48), colour=(i * 25, 10, 10)))).status_code == 201
    # Two different pictures racing for the last place: one gets it, the other is told, and leaves nothing.
    last = await asyncio.gather(*(upload(catalog, pid, png_bytes((64, 48), colour=(1, i, 200))) for i in (1, 2)))
    assert sorted(r.status_code for r in last) == [201, 422], [r.text for r in last]
    assert [p["position"] for p in await photos(catalog, pid)] == list(range(10))
    assert len(catalog.media.files()) == 50


async def test_over_the_size_limit_is_413(db_urls, tmp_path) -> None:
    app = make_app("catalog", db_urls, media_dir=str(tmp_path / "media"), max_photo_bytes=50_000)
    async with asgi_client(app) as client:
        await open_shop(client, GROWER)
        pid = (await add_product(client, GROWER))["id"]
        big = encode(Image.effect_noise((400, 400), 80).convert("RGB"), "PNG")
        assert len(big) > 50_000
        body = assert_problem(await upload(client, pid, big, filename="big.png"), 413, "payload-too-large")
        assert body["limit"] == 50_000
        assert (await upload(client, pid, png_bytes((64, 64)))).status_code == 201


def multipart_stream(boundary: str, head: bytes, chunk: bytes, count: int, consumed: list[int]):
    """A multipart body sent chunk by chunk; ``consumed`` counts how many chunks were taken."""
    async def body():
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.jpg\"\r\n"
               f"Content-Type: image/jpeg\r\n\r\n").encode() + head
        for _ in range(count):
            consumed.append(1)
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()
    return body()


async def test_the_default_limit_cuts_a_streamed_upload_off_at_15_mb(catalog) -> None:
    pid = catalog.product["id"]
    mib, consumed = 1_048_576, []
    stream = multipart_stream("b0undary", b"\xff\xd8\xff\xe0", b"\0" * mib, 64, consumed)
    resp = await catalog.post(f"/api/v1/products/{pid}/photos", content=stream,
                              headers={**GROWER, "Content-Type": "multipart/form-data; boundary=b0undary"})
    body = assert_problem(resp, 413, "payload-too-large")
    assert body["limit"] == 15 * mib
    assert 15 <= len(consumed) <= 17, f"refused as soon as 15 MB was passed, not after {len(consumed)} MB"
    await assert_nothing_stored(catalog, pid)

    # A declared Content-Length over the limit is refused before a byte of the body is read.
    consumed.clear()
    stream = multipart_stream("b0undary", b"\xff\xd8\xff\xe0", b"\0" * mib, 64, consumed)
    resp = await catalog.post(f"/api/v1/products/{pid}/photos", content=stream, headers={
        **GROWER, "Content-Type": "multipart/form-data; boundary=b0undary", "Content-Length": str(64 * mib)})
    assert_problem(resp, 413, "payload-too-large")
    assert consumed == []


class BrokenDisk(LocalPhotoStore):
    """A store whose disk fills up on the third file of a photo."""

    def __init__(self, root) -> None:
        super().__init__(root)
        self.writes = 0

    async def save(self, name: str, data: bytes) -> None:
        self.writes += 1
        if self.writes == 3:
            raise OSError(28, "No space left on device")
        await super().save(name, data)


async def test_a_store_failure_leaves_no_files_and_no_row(catalog, tmp_path) -> None:
    catalog.app.state.photo_store = BrokenDisk(tmp_path / "media")
    pid = catalog.product["id"]
    assert_problem(await upload(catalog, pid, phone_jpeg()), 503, "service-unavailable")
    await assert_nothing_stored(catalog, pid)


async def test_a_database_failure_leaves_no_files(catalog) -> None:
    """The insert fails at the database driver, after every file was written: the files go again."""
    engine = catalog.app.state.db.engine.sync_engine

    def refuse(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO PHOTOS"):
            raise RuntimeError("the database went away")

    event.listen(engine, "before_cursor_execute", refuse)
    try:
        resp = await upload(catalog, catalog.product["id"], heic_bytes(), filename="IMG_0002.HEIC")
    finally:
        event.remove(engine, "before_cursor_execute", refuse)
    assert_problem(resp, 500, "internal-error")
    await assert_nothing_stored(catalog, catalog.product["id"])


# --- through the gateway ----------------------------------------------------------------------------


def test_upload_and_fetch_through_the_gateway(db_urls, tmp_path) -> None:
    gateway_port = free_port()
    public = f"http://127.0.0.1:{gateway_port}"
    catalog = make_app("catalog", db_urls, media_dir=str(tmp_path / "media"), public_base_url=public)
    with serve_in_thread(catalog) as catalog_url:
        gateway = make_app("gateway", {"gateway": f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"},
                           catalog_url=catalog_url, orders_url=catalog_url, notify_url=catalog_url)
        with serve_in_thread(gateway, port=gateway_port) as gw, httpx.Client(base_url=gw, timeout=30) as http:
            assert http.post("/api/v1/shops", json=SHOP, headers=GROWER).status_code == 201
            pid = http.post("/api/v1/products", json=PRODUCT, headers=GROWER).json()["id"]
            resp = http.post(f"/api/v1/products/{pid}/photos", headers=GROWER,
                             files={"file": ("IMG_0042.JPG", phone_jpeg(), "image/jpeg")})
            assert resp.status_code == 201, resp.text
            photo = resp.json()
            assert photo["og_image"]["url"].startswith(f"{public}/media/")
            for url in (photo["sizes"][-1]["url"], photo["og_image"]["url"]):
                served = http.get(url)
                assert served.status_code == 200
                assert served.headers["cache-control"] == IMMUTABLE
                assert served.headers["content-type"] in ("image/webp", "image/jpeg")
                Image.open(io.BytesIO(served.content)).verify()
            refused = http.post(f"/api/v1/products/{pid}/photos", headers=GROWER,
                                files={"file": ("photo.jpg", PDF, "image/jpeg")})
            assert refused.status_code == 415 and refused.headers["content-type"] == PROBLEM
            assert http.get("/media/..%2f..%2fetc%2fpasswd").status_code == 404
            assert http.get(f"/api/v1/products/{pid}").json()["photos"][0]["id"] == photo["id"]
