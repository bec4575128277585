"""The products CSV file as growers' spreadsheets write it: columns, cells, numbers, escaping.

Pure functions, no database: ``read_rows`` turns the file's bytes into rows with their physical line
numbers (the header is line 1; a quoted cell may span lines, a row is numbered by its first line),
and ``write_rows`` makes the bytes of an export. See docs/operations.md, "Products CSV".
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from common.text import fold

MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_ROWS = 20_000
MAX_CELL_CHARS = 10_000

COLUMNS = ("product_name", "description", "category", "status", "variant_label", "retail_price",
           "wholesale_tiers", "min_order_quantity", "stock", "low_stock_threshold", "weight_grams")
REQUIRED_COLUMNS = ("product_name", "variant_label", "retail_price")

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection): an export
# puts an apostrophe before it, and an import takes that apostrophe away again.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

# The category and status cells take the API's values ("water_lily", "water lily") or Vietnamese
# words, compared without accents or case ("Súng", "sung", "SÚNG").
CATEGORY_WORDS = {
    "water_lily": ("sung", "hoa sung"), "lotus": ("sen", "hoa sen"),
    "aquatic": ("thuy sinh", "cay thuy sinh"), "seedling": ("cay con", "cay giong"),
    "supplies": ("vat tu", "dung cu"), "other": ("khac",),
}
STATUS_WORDS = {"draft": ("nhap", "ban nhap"), "active": ("dang ban",), "archived": ("ngung ban", "luu tru")}


class CsvFileError(Exception):
    """The file as a whole cannot be read (size, encoding, header, quoting): nothing is stored."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


@dataclass(frozen=True)
class RowError:
    """A bad row: its physical line in the file (header = 1), the column, and why."""

    line: int
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", {self.field}" if self.field else "")
        return f"{where}: {self.message}"


@dataclass
class Row:
    line: int
    cells: dict[str, str]
    """The columns the header has, each cell trimmed and un-escaped ("" when blank)."""
    errors: list[RowError] = field(default_factory=list)


def shown(value: object, limit: int = 40) -> str:
    """A cell as an error message quotes it: short, control characters made visible."""
    text = str(value)
    text = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text[:limit + 1])
    return f'"{text[:limit]}…"' if len(text) > limit else f'"{text}"'


def escape(cell: str) -> str:
    """Keep a spreadsheet from running a cell as a formula: ``=1+1`` → ``'=1+1``."""
    return "'" + cell if _needs_escape(cell) else cell


def unescape(cell: str) -> str:
    """The inverse of ``escape``: ``'=1+1`` → ``=1+1``; any other cell is left as it is."""
    return cell[1:] if cell.startswith("'") and _needs_escape(cell[1:]) else cell


def _needs_escape(cell: str) -> bool:
    # An apostrophe already in front of a formula start is escaped too, so that unescape(escape(x)) == x.
    return cell.startswith(FORMULA_STARTS) or (cell.startswith("'") and _needs_escape(cell[1:]))


# ---- numbers -----------------------------------------------------------------------------------

_PLAIN = re.compile(r"-?[0-9]+")
# 45.000 / 45,000 / 45 000 (with a normal, no-break or narrow no-break space): one separator throughout.
_GROUPED = re.compile(r"-?[0-9]{1,3}([.,\u00a0\u202f ])[0-9]{3}(?:\1[0-9]{3})*")
_CURRENCY = re.compile(r"\s*(₫|vnđ|vnd|đ)$", re.IGNORECASE)


def parse_int(cell: str, *, money: bool = False) -> int:
    """A whole number as growers type it. Money may carry thousands separators and ``₫``/``đ``/``VND``."""
    text = cell.strip()
    if money:
        text = _CURRENCY.sub("", text)
    if _PLAIN.fullmatch(text):
        return int(text)
    if _GROUPED.fullmatch(text):
        return int(re.sub(r"[^0-9-]", "", text))
    if money:
        raise ValueError(f"not a whole number of đồng: {shown(cell)} (write 45000, 45.000 or 45,000)")
    raise ValueError(f"not a whole number: {shown(cell)}")


def parse_tiers(cell: str) -> list[dict[str, int]]:
    """``10:38000;50:32000`` → [{min_quantity: 10, unit_price: 38000}, {min_quantity: 50, …}]."""
    tiers = []
    for part in cell.split(";"):
        if not part.strip():
            continue
        quantity, sep, price = part.partition(":")
        if not sep or ":" in price:
            raise ValueError(f"write each tier as quantity:unit price, tiers separated by ';' "
                             f"(e.g. 10:38000;50:32000), not {shown(part.strip())}")
        try:
            tiers.append({"min_quantity": parse_int(quantity), "unit_price": parse_int(price, money=True)})
        except ValueError as exc:
            raise ValueError(f"tier {len(tiers) + 1}: {exc}") from None
    return tiers


def format_tiers(tiers: Iterable[dict]) -> str:
    return ";".join(f"{t['min_quantity']}:{t['unit_price']}" for t in tiers)


def choice(cell: str, words: dict[str, tuple[str, ...]]) -> str:
    """An enum cell: the API value, spaced or not, or one of its Vietnamese words; else as typed."""
    folded = fold(cell)
    for value, aliases in words.items():
        if folded.replace(" ", "_") == value or folded in aliases:
            return value
    return cell


# ---- reading -----------------------------------------------------------------------------------

def decode(data: bytes) -> str:
    if len(data) > MAX_FILE_BYTES:
        raise CsvFileError(f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB; split it into several files")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise CsvFileError("the file is UTF-16 text; save it as \"CSV UTF-8 (Comma delimited)\"")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise CsvFileError("not UTF-8 text; in Excel save as \"CSV UTF-8 (Comma delimited)\", in Google Sheets "
                           "use File → Download → CSV", line) from None
    if not text.strip():
        raise CsvFileError("the file is empty")
    return text


def _delimiter(text: str) -> str:
    """Excel with Vietnamese regional settings separates cells with ';'; others use ','; some tabs."""
    header = text.split("\n", 1)[0]
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _column(name: str) -> str:
    return fold(name).replace(" ", "_").replace("-", "_")


def read_rows(data: bytes) -> tuple[list[str], list[Row]]:
    """The header's columns and the data rows. Blank rows are skipped. Raises ``CsvFileError``."""
    text = decode(data)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text), strict=True)
    line = 1
    try:
        header = [_column(h) for h in next(reader)]
        unknown = [h for h in header if h and h not in COLUMNS]
        if unknown:
            raise CsvFileError(f"unknown column {', '.join(map(shown, unknown))}; the columns are "
                               f"{', '.join(COLUMNS)}", 1)
        duplicate = sorted({h for h in header if h and header.count(h) > 1})
        if duplicate:
            raise CsvFileError(f"column {', '.join(duplicate)} appears twice", 1)
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise CsvFileError(f"missing column {', '.join(missing)} (the first line must name the columns: "
                               f"{', '.join(COLUMNS)})", 1)
        rows: list[Row] = []
        while True:
            line = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                break
            if not any(c.strip() for c in cells):
                continue
            if len(rows) == MAX_ROWS:
                raise CsvFileError(f"more than {MAX_ROWS} rows; split the file into several files", line)
            rows.append(_row(line, header, cells))
    except csv.Error as exc:
        raise CsvFileError(f"the file is not valid CSV ({exc}); is a quote (\") not closed?", line) from None
    return [h for h in header if h], rows


def _row(line: int, header: list[str], cells: list[str]) -> Row:
    row = Row(line, {})
    extra = cells[len(header):]
    if len(cells) < len(header) or any(c.strip() for c in extra):
        row.errors.append(RowError(line, None, f"{len(cells)} cells, but the header has {len(header)} columns "
                                               "(a missing or extra separator?)"))
    for name, cell in zip(header, cells, strict=False):
        if not name:
            continue
        if len(cell) > MAX_CELL_CHARS:
            hint = " (a quote that is not closed?)" if "\n" in cell else ""
            row.errors.append(RowError(line, name, f"the cell has {len(cell)} characters, at most "
                                                   f"{MAX_CELL_CHARS}{hint}"))
            cell = ""
        row.cells[name] = unescape(cell.strip())
    for name in header[len(cells):]:
        if name:
            row.cells[name] = ""
    return row


# ---- writing -----------------------------------------------------------------------------------

def write_rows(rows: Iterable[Iterable[object]]) -> bytes:
    """UTF-8 with a byte-order mark (so Excel shows Vietnamese right), CRLF, every cell escaped."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(["" if cell is None else escape(str(cell)) for cell in row])
    return codecs.BOM_UTF8 + buffer.getvalue().encode("utf-8")
