"""From an uploaded file to the files we store: recognise, refuse bombs, turn upright, strip, resize.

Everything here is synchronous and CPU-bound; :func:`process` runs in a worker thread (see
``service.py``). The order matters for safety:

1. :func:`sniff` recognises the type from the first bytes (magic numbers), never from a name or a
   declared content type; anything else is a 415.
2. :func:`process` opens the file with only that type's decoder. Pillow reads the header alone at
   this point, so the pixel count is checked before a single pixel is decoded (a 200-megapixel PNG
   of a few kilobytes is refused here). ``Image.MAX_IMAGE_PIXELS`` is set too, as a second fence
   (Pillow is imported with the first photo, or before common.launch forks, :func:`load_pillow`).
3. Only then is it decoded (JPEGs at a reduced scale when the largest output is much smaller),
   turned upright from its EXIF orientation, converted to sRGB, and re-encoded from bare pixels:
   no EXIF (phones put GPS there), XMP or ICC profile survives into the stored files.
"""

from __future__ import annotations

import hashlib
import io
import math
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from common.errors import Problem

if TYPE_CHECKING:
    from PIL import Image

# Photos from today's phones are 12–50 megapixels; 200-megapixel modes exist and are refused.
MAX_PIXELS = 50_000_000

JPEG, PNG, WEBP, HEIC = "jpeg", "png", "webp", "heic"
PIL_FORMAT = {JPEG: "JPEG", PNG: "PNG", WEBP: "WEBP", HEIC: "HEIF"}
SNIFF_BYTES = 32
# ISO-BMFF major brands of HEIC/HEIF stills and sequences (AVIF's "avif" is deliberately absent).
HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})

# WebP widths stored. 560 fits a shop card on a phone (half the screen, ≈ 175 CSS px, at 3×); it came
# after the others, so photos stored before it get it from their 1600 px file (:func:`derive`).
WIDTHS = (320, 560, 800, 1600)
DEFAULT_WIDTH = 800  # the ``url`` of a photo: a good ``src`` where srcset is not understood
# A size is at most this many times as tall as it is wide (a very tall picture is fitted by height).
MAX_HEIGHT_RATIO = 3
OG_SIZE = (1200, 630)  # Open Graph: what Facebook and Zalo show for a shared link
WEBP_QUALITY = 80
JPEG_QUALITY = 85
ORIENTATION_TAG = 0x0112


class UnsupportedPhotoType(Problem):
    status, slug, title = 415, "unsupported-photo-type", "This file is not a photo we can take"


class TooManyPixels(Problem):
    status, slug, title = 422, "too-many-pixels", "The photo has too many pixels"


class UnreadablePhoto(Problem):
    status, slug, title = 422, "unreadable-photo", "The photo could not be read"


def sniff(head: bytes) -> str | None:
    """The photo type from the file's first bytes, or None."""
    if head[:3] == b"\xff\xd8\xff":
        return JPEG
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return PNG
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS:
        return HEIC
    return None


def unsupported() -> UnsupportedPhotoType:
    return UnsupportedPhotoType("Send a JPEG, PNG, WebP or HEIC photo. This file's content is none of "
                                "those; its name and declared type do not count.",
                                accepted=["image/jpeg", "image/png", "image/webp", "image/heic"])


def scaled_size(width: int, height: int, target: int) -> tuple[int, int]:
    """The size stored for ``target`` (one of :data:`WIDTHS`): that wide at most, never enlarged."""
    scale = min(1.0, target / width, MAX_HEIGHT_RATIO * target / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def file_names(content_hash: str) -> dict[str, str]:
    """Size label → stored file name. The names are all a photo needs to be found again."""
    names = {str(w): f"{content_hash}-{w}.webp" for w in WIDTHS}
    names["og"] = f"{content_hash}-og.jpg"
    return names


@dataclass(frozen=True)
class ProcessedPhoto:
    content_hash: str
    width: int  # the upright picture as uploaded
    height: int
    files: dict[str, bytes]  # stored file name → its bytes


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # a broken EXIF block must not make a photo unreadable: treat it as upright
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _needed_scale(width: int, height: int) -> float:
    """How far the largest output shrinks the upright picture (1.0: not at all)."""
    largest = min(1.0, WIDTHS[-1] / width, MAX_HEIGHT_RATIO * WIDTHS[-1] / height)
    cover = max(OG_SIZE[0] / width, OG_SIZE[1] / height)
    return min(1.0, max(largest, cover))


_pillow_lock = threading.Lock()
_pillow_ready = False


def load_pillow() -> None:
    """Pillow and pillow-heif (≈ 11 MB in the process), imported when the first photo comes, not at start."""
    global Image, ImageCms, ImageOps, UnidentifiedImageError, _SRGB, _pillow_ready
    with _pillow_lock:
        if _pillow_ready:
            return
        import pillow_heif
        from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

        pillow_heif.register_heif_opener()
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS
        # Between MAX_PIXELS and twice that Pillow only warns; process() refuses those itself.
        warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
        _SRGB = ImageCms.createProfile("sRGB")
        _pillow_ready = True


def _to_srgb(im: Image.Image) -> Image.Image:
    """RGB or RGBA pixels in sRGB; the ICC profile, if any, is applied and then dropped."""
    alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
    target = "RGBA" if alpha else "RGB"
    icc = im.info.get("icc_profile")
    if icc and im.mode in ("RGB", "RGBA", "CMYK", "L"):
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(im, source, _SRGB, outputMode=target if im.mode != "L" else "RGB")
            if converted is not None:
                im = converted
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            pass  # a broken profile: use the pixels as they are
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        im = im.point(lambda v: v / 256).convert("L") if im.mode != "F" else im.convert("L")
    if im.mode != target:
        im = im.convert(target)
    return im


def _bare(im: Image.Image) -> Image.Image:
    """The same pixels with no metadata at all (info, EXIF) to be carried into an encoder."""
    im.info.clear()
    return im


def _encode_webp(im: Image.Image, size: tuple[int, int]) -> bytes:
    """``im`` at ``size`` as a stored WebP (no metadata)."""
    if size != im.size:
        im = im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    out = io.BytesIO()
    _bare(im).save(out, "WEBP", quality=WEBP_QUALITY, method=4)
    return out.getvalue()


def _encode_og(im: Image.Image) -> bytes:
    cover = ImageOps.fit(im, OG_SIZE, method=Image.Resampling.LANCZOS, centering=(0.5, 0.5))
    if cover.mode == "RGBA":
        flat = Image.new("RGB", OG_SIZE, (255, 255, 255))
        flat.paste(cover, mask=cover.getchannel("A"))
        cover = flat
    out = io.BytesIO()
    _bare(cover).save(out, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True)
    return out.getvalue()


def process(path: Path, kind: str, max_pixels: int = MAX_PIXELS) -> ProcessedPhoto:
    """Open, check, decode and re-encode one upload. Blocking: run it in a worker thread."""
    load_pillow()
    try:
        with Image.open(path, formats=[PIL_FORMAT[kind]]) as im:
            width, height = im.size  # from the header: nothing decoded yet
            if width * height > max_pixels:
                raise too_many_pixels(width, height, max_pixels)
            orientation = _orientation(im)
            upright = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
            scale = _needed_scale(*upright)
            if kind == JPEG and scale < 0.5:
                # Let libjpeg decode at 1/2, 1/4 or 1/8 scale: a 48-megapixel photo needs a fraction
                # of the memory. The result is never smaller than what the outputs need.
                im.draft(None, (math.ceil(width * scale), math.ceil(height * scale)))
            im.load()
            picture = ImageOps.exif_transpose(im)
    except Image.DecompressionBombError:
        # Pillow's own fence (at twice MAX_IMAGE_PIXELS) tripped while reading the header.
        raise too_many_pixels(None, None, max_pixels) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, KeyError, IndexError,
            TypeError, RuntimeError, MemoryError) as exc:
        raise UnreadablePhoto(f"The file looks like {kind.upper()} but could not be decoded "
                              f"({type(exc).__name__}); is it complete?") from None

    picture = _bare(_to_srgb(picture))
    files: dict[str, bytes] = {}
    encoded: list[tuple[str, bytes]] = []
    for target in WIDTHS:
        encoded.append((str(target), _encode_webp(picture, scaled_size(*upright, target))))
    encoded.append(("og", _encode_og(picture)))

    digest = hashlib.sha256()
    for label, data in encoded:
        digest.update(label.encode() + b"\0" + len(data).to_bytes(8, "big") + data)
    content_hash = digest.hexdigest()
    names = file_names(content_hash)
    for label, data in encoded:
        files[names[label]] = data
    return ProcessedPhoto(content_hash=content_hash, width=upright[0], height=upright[1], files=files)


def derive(source: bytes, size: tuple[int, int]) -> bytes:
    """A stored WebP size made from another stored WebP of the same photo (the largest, for a photo
    stored before that size was made): the source is already upright, sRGB and bare. Blocking."""
    load_pillow()
    with Image.open(io.BytesIO(source), formats=["WEBP"]) as im:
        if im.size == size:
            return source  # a small photo: the same picture under another name
        im.load()
        return _encode_webp(_to_srgb(im), size)


def too_many_pixels(width: int | None, height: int | None, limit: int) -> TooManyPixels:
    if width and height:
        what = f"{width}×{height} pixels ({width * height / 1e6:.0f} megapixels)"
    else:
        what = f"More than {2 * MAX_PIXELS / 1e6:.0f} megapixels"  # Pillow's own fence
    return TooManyPixels(f"{what}; at most {limit / 1e6:.0f} megapixels are accepted. Take the photo at a "
                         f"lower resolution, or shrink it, and send it again.", max_pixels=limit)
