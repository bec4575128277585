"""Pictures for the demo nursery, drawn by Pillow when it is seeded (nothing is downloaded): a flower
or a clump of leaves in the variety's colours, so that a new user sees a shop as it will look."""

from __future__ import annotations

import io
import math
import random

from PIL import Image, ImageDraw, ImageFilter

SIZE = 1200
# (petals, leaves/water behind) per kind of picture
PALETTES = {
    "red": ((196, 30, 58), (240, 120, 140)),
    "yellow": ((240, 200, 40), (250, 235, 140)),
    "purple": ((140, 90, 190), (200, 170, 230)),
    "pink": ((230, 120, 160), (250, 200, 215)),
    "white": ((250, 246, 240), (240, 170, 190)),
}
WATER, LEAF, LEAF_DARK = (40, 110, 120), (60, 140, 70), (30, 90, 45)


def _pads(draw: ImageDraw.ImageDraw, rnd: random.Random) -> None:
    for _ in range(5):
        x, y, r = rnd.randint(0, SIZE), rnd.randint(0, SIZE), rnd.randint(140, 260)
        start = rnd.randint(0, 360)
        draw.pieslice((x - r, y - r, x + r, y + r), start + 20, start + 360, fill=LEAF)
        draw.line((x, y, x + r * math.cos(math.radians(start + 10)), y + r * math.sin(math.radians(start + 10))),
                  fill=LEAF_DARK, width=6)


def flower(colour: str, seed: int) -> bytes:
    """A water lily or a lotus seen from above, on a pond with its pads: a JPEG of SIZE × SIZE."""
    rnd = random.Random(seed)
    petal, light = PALETTES[colour]
    im = Image.new("RGB", (SIZE, SIZE), WATER)
    draw = ImageDraw.Draw(im)
    _pads(draw, rnd)
    cx, cy = SIZE // 2 + rnd.randint(-60, 60), SIZE // 2 + rnd.randint(-60, 60)
    for ring, (count, length, width, shade) in enumerate(((12, 330, 120, light), (10, 250, 100, petal),
                                                          (8, 160, 80, petal))):
        for i in range(count):
            angle = 2 * math.pi * i / count + ring * 0.3
            petal_im = Image.new("RGBA", (length * 2, length * 2), (0, 0, 0, 0))
            ImageDraw.Draw(petal_im).ellipse((length, length - width // 2, length * 2, length + width // 2),
                                             fill=(*shade, 255), outline=(*petal, 255), width=4)
            rotated = petal_im.rotate(-math.degrees(angle), resample=Image.BICUBIC)
            im.paste(rotated, (cx - length, cy - length), rotated)
    draw = ImageDraw.Draw(im)
    draw.ellipse((cx - 70, cy - 70, cx + 70, cy + 70), fill=(245, 200, 50))
    for _ in range(40):
        a, r = rnd.uniform(0, 2 * math.pi), rnd.uniform(0, 60)
        x, y = cx + r * math.cos(a), cy + r * math.sin(a)
        draw.ellipse((x - 6, y - 6, x + 6, y + 6), fill=(220, 150, 30))
    return _jpeg(im.filter(ImageFilter.SMOOTH))


def plants(seed: int) -> bytes:
    """Floating or underwater plants: green rosettes on water."""
    rnd = random.Random(seed)
    im = Image.new("RGB", (SIZE, SIZE), WATER)
    draw = ImageDraw.Draw(im)
    for _ in range(14):
        cx, cy, r = rnd.randint(80, SIZE - 80), rnd.randint(80, SIZE - 80), rnd.randint(70, 150)
        for i in range(7):
            a = 2 * math.pi * i / 7 + rnd.uniform(0, 0.4)
            x, y = cx + r * 0.6 * math.cos(a), cy + r * 0.6 * math.sin(a)
            draw.ellipse((x - r * 0.45, y - r * 0.3, x + r * 0.45, y + r * 0.3),
                         fill=(rnd.randint(50, 90), rnd.randint(130, 180), rnd.randint(50, 80)))
        draw.ellipse((cx - 14, cy - 14, cx + 14, cy + 14), fill=(150, 110, 200))
    return _jpeg(im.filter(ImageFilter.SMOOTH))


def _jpeg(im: Image.Image) -> bytes:
    out = io.BytesIO()
    im.save(out, "JPEG", quality=82)
    return out.getvalue()
