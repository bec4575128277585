"""Small charts drawn on the server as SVG: nothing for a phone to download or run. Each chart is an
image with a title and a description (``role="img"``, ``aria-labelledby``), and the page shows the
same numbers as text beside it; labels and values come already formatted for the page's language."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 340
INK, GREEN, PALE, GREY = "#1c1c1c", "#1d5e2a", "#7fb48a", "#c9d1cb"
_ids = itertools.count(1)


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    shown: str  # the value as the page writes it


def _frame(title: str, desc: str, height: int, body: str) -> Markup:
    n = next(_ids)
    return Markup(
        f'<svg class="chart" role="img" aria-labelledby="ch{n}t ch{n}d" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="ch{n}t">{escape(title)}</title><desc id="ch{n}d">{escape(desc)}</desc>{body}</svg>')


def bars(title: str, desc: str, items: list[Bar], colours: tuple[str, ...] = (GREEN,)) -> Markup:
    """Horizontal bars, one row each: the label above its bar, the value at the bar's end."""
    top = max((b.value for b in items), default=0) or 1
    row, parts = 40, []
    for i, b in enumerate(items):
        y = i * row
        length = round((WIDTH - 110) * b.value / top) if b.value > 0 else 0
        parts.append(f'<text x="0" y="{y + 13}" font-size="13" fill="{INK}">{escape(b.label)}</text>'
                     f'<rect x="0" y="{y + 18}" width="{max(length, 2)}" height="14" rx="2" '
                     f'fill="{colours[i % len(colours)]}"/>'
                     f'<text x="{max(length, 2) + 6}" y="{y + 30}" font-size="13" fill="{INK}">{escape(b.shown)}'
                     f'</text>')
    return _frame(title, desc, max(row * len(items), row), "".join(parts))


def columns(title: str, desc: str, values: list[int], ticks: dict[int, str]) -> Markup:
    """A column per day; ``ticks`` labels some columns (index → text) under the axis."""
    height, base, top = 150, 125, max(values, default=0) or 1
    step = WIDTH / max(len(values), 1)
    parts = [f'<line x1="0" y1="{base}" x2="{WIDTH}" y2="{base}" stroke="{GREY}"/>']
    for i, v in enumerate(values):
        h = round((base - 10) * v / top) if v > 0 else 0
        if h:
            parts.append(f'<rect x="{i * step + 1:.1f}" y="{base - h}" width="{max(step - 2, 1):.1f}" '
                         f'height="{h}" fill="{GREEN}"/>')
    for i, text in ticks.items():
        x = min(max(i * step + step / 2, 8), WIDTH - 8)
        parts.append(f'<text x="{x:.1f}" y="{base + 18}" font-size="12" text-anchor="middle" fill="{INK}">'
                     f'{escape(text)}</text>')
    return _frame(title, desc, height, "".join(parts))


def split(title: str, desc: str, rows: list[tuple[str, int, int]], legend: tuple[str, str]) -> Markup:
    """For each row (label, first, second): one bar split in two shares, with a legend."""
    row, parts = 44, []
    for i, (label, first, second) in enumerate(rows):
        y, whole = i * row, (first + second) or 1
        a = round(WIDTH * first / whole) if first + second else 0
        parts.append(f'<text x="0" y="{y + 13}" font-size="13" fill="{INK}">{escape(label)}</text>')
        if first + second:
            parts.append(f'<rect x="0" y="{y + 18}" width="{a}" height="18" fill="{GREEN}"/>'
                         f'<rect x="{a}" y="{y + 18}" width="{WIDTH - a}" height="18" fill="{PALE}"/>')
        else:
            parts.append(f'<rect x="0" y="{y + 18}" width="{WIDTH}" height="18" fill="none" stroke="{GREY}"/>')
    y = row * len(rows) + 6
    parts.append(f'<rect x="0" y="{y}" width="12" height="12" fill="{GREEN}"/>'
                 f'<text x="18" y="{y + 11}" font-size="13" fill="{INK}">{escape(legend[0])}</text>'
                 f'<rect x="{WIDTH // 2}" y="{y}" width="12" height="12" fill="{PALE}"/>'
                 f'<text x="{WIDTH // 2 + 18}" y="{y + 11}" font-size="13" fill="{INK}">{escape(legend[1])}</text>')
    return _frame(title, desc, y + 18, "".join(parts))
