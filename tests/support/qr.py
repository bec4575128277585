"""Reading back a QR code drawn as SVG by segno (the packing slips' tracking link): the modules its path
paints, compared with the matrix segno makes for the text expected. A QR code is its matrix: the same
matrix is the same text, and a slip's QR for another link (or a damaged one) differs."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import segno

SVG = "{http://www.w3.org/2000/svg}"


def modules(svg: str) -> list[list[bool]]:
    """The dark modules of segno's SVG (one stroked path of horizontal runs, `scale` in a transform)."""
    root = ET.fromstring(svg)
    size = None
    path = None
    for el in root.iter():
        if el.tag == f"{SVG}path" and el.get("stroke"):
            path = el.get("d")
        if el.tag == f"{SVG}path" and el.get("fill") and not el.get("stroke"):
            size = int(re.match(r"M0 0h(\d+)", el.get("d")).group(1))  # the light background: the whole symbol
    assert path and size, "not a segno QR code"
    grid = [[False] * size for _ in range(size)]
    x = y = 0.0
    for cmd, args in re.findall(r"([MmHhVvZz])([^MmHhVvZz]*)", path):
        nums = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", args)]
        if cmd == "M":
            x, y = nums
        elif cmd == "m":
            x, y = x + nums[0], y + nums[1]
        elif cmd in "hH":
            end = x + nums[0] if cmd == "h" else nums[0]
            for col in range(int(x), int(end)):
                grid[int(y - 0.5)][col] = True
            x = end
    return grid


def matrix_of(text: str, border: int = 4) -> list[list[bool]]:
    """The matrix segno makes for ``text`` (error correction M, as the slips use), quiet zone included."""
    qr = segno.make(text, error="m", micro=False)
    return [[bool(v) for v in row] for row in qr.matrix_iter(scale=1, border=border)]


def encodes(svg: str, text: str) -> bool:
    return modules(svg) == matrix_of(text)
