"""Products CSV: import (bad rows reported by line, whole products or nothing), re-import updates,
export round trip, formula escaping, file limits, and the real command line."""

from __future__ import annotations

import codecs
import csv
import io
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from sqlalchemy import select

from common.db import Database
from services.catalog.products.models import Product
from services.catalog.products_csv import format as csvformat
from services.catalog.products_csv.format import COLUMNS, CsvFileError, escape, parse_int, parse_tiers, unescape
from services.catalog.products_csv.service import export_products, group_rows, import_products
from tests.apps import make_app
from tests.catalog.helpers import open_shop
from tests.conftest import asgi_client
from tests.support.auth import auth

GROWER, OTHER = auth("grower-csv"), auth("grower-csv-2")
ROOT = Path(__file__).resolve().parents[2]


def csv_bytes(*rows: list[str], header: tuple[str, ...] = COLUMNS, bom: bool = True, delimiter: str = ",") -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return (codecs.BOM_UTF8 if bom else b"") + buffer.getvalue().encode("utf-8")


def row(name: str = "", label: str = "Củ giống", price: str = "45000", *, description: str = "",
        category: str = "", status: str = "", tiers: str = "", min_order: str = "", stock: str = "",
        low: str = "", weight: str = "") -> list[str]:
    return [name, description, category, status, label, price, tiers, min_order, stock, low, weight]


GOOD = csv_bytes(
    # The name as a Mac writes it (NFD): stored NFC. Prices in the forms growers type.
    row(unicodedata.normalize("NFD", "Súng Thái đỏ"), "Củ giống", "45.000", description="Hoa đỏ thắm,\nnở ngày",
        category="Súng", status="đang bán", tiers="10:38.000;50:32000", min_order="1", stock="120", low="5",
        weight="150"),
    row("", "Chậu 30 cm", "150,000 ₫", tiers="5:130000", stock="25"),  # a blank name continues the product
    row("Sen Quan Âm", "Ngó giống", "120000", description="Sen trắng viền hồng", category="lotus",
        status="draft", min_order="2", stock="30", low="3"),
)


@pytest.fixture
async def catalog(db_urls):
    app = make_app("catalog", db_urls)
    async with asgi_client(app) as client:
        shop = await open_shop(client, GROWER)
        client.shop_id, client.slug = shop["id"], shop["slug"]
        client.db = Database(db_urls["catalog"])  # the app's start-up applied the migrations
        try:
            yield client
        finally:
            await client.db.dispose()


async def do_import(catalog, data: bytes, shop_id: int | None = None, **options):
    async with catalog.db.writer() as session:
        return await import_products(session, shop_id or catalog.shop_id, data, **options)


async def do_export(catalog, shop_id: int | None = None):
    async with catalog.db.sessionmaker() as session:
        return await export_products(session, shop_id or catalog.shop_id)


async def stored(catalog, shop_id: int | None = None, archived: bool = False) -> dict[str, dict]:
    """The shop's products by name, as plain data (ids left out unless asked for)."""
    async with catalog.db.sessionmaker() as session:
        products = (await session.scalars(select(Product).where(Product.shop_id == (shop_id or catalog.shop_id))
                                          .order_by(Product.id))).all()
        return {p.name: {
            "id": p.id, "description": p.description, "category": p.category, "status": p.status,
            "min_price": p.min_price, "in_stock": p.in_stock,
            "variants": {v.label: {"id": v.id, "retail_price": v.retail_price, "wholesale_tiers": v.wholesale_tiers,
                                   "min_order_quantity": v.min_order_quantity, "stock": v.stock,
                                   "low_stock_threshold": v.low_stock_threshold, "weight_grams": v.weight_grams,
                                   "archived": v.archived}
                         for v in p.variants if archived or not v.archived},
        } for p in products}


def without_ids(products: dict[str, dict]) -> dict[str, dict]:
    return {name: {**{k: v for k, v in p.items() if k != "id"},
                   "variants": {label: {k: x for k, x in v.items() if k != "id"} for label, v in p["variants"].items()}}
            for name, p in products.items()}


async def test_a_good_file_with_bom_and_vietnamese_text_imports(catalog) -> None:
    progress: list[tuple[int, int]] = []
    report = await do_import(catalog, GOOD, progress=lambda done, total: progress.append((done, total)))
    assert report.ok and report.stored, report.errors
    assert (report.rows, report.products_created, report.variants_created) == (3, 2, 3)
    assert progress == [(2, 3), (3, 3)]  # rows done, after each product
    products = without_ids(await stored(catalog))
    assert products == {
        "Súng Thái đỏ": {
            "description": "Hoa đỏ thắm,\nnở ngày", "category": "water_lily", "status": "active",
            "min_price": 45000, "in_stock": True, "variants": {
                "Củ giống": {"retail_price": 45000, "min_order_quantity": 1, "stock": 120, "low_stock_threshold": 5,
                             "weight_grams": 150, "archived": False,
                             "wholesale_tiers": [{"min_quantity": 10, "unit_price": 38000},
                                                 {"min_quantity": 50, "unit_price": 32000}]},
                "Chậu 30 cm": {"retail_price": 150000, "min_order_quantity": 1, "stock": 25, "low_stock_threshold": 0,
                               "weight_grams": None, "archived": False,
                               "wholesale_tiers": [{"min_quantity": 5, "unit_price": 130000}]}}},
        "Sen Quan Âm": {
            "description": "Sen trắng viền hồng", "category": "lotus", "status": "draft",
            "min_price": 120000, "in_stock": True, "variants": {
                "Ngó giống": {"retail_price": 120000, "min_order_quantity": 2, "stock": 30, "low_stock_threshold": 3,
                              "weight_grams": None, "archived": False, "wholesale_tiers": []}}},
    }
    # Indexed as the API would: buyers find the active variety without accents; the draft stays hidden.
    found = (await catalog.get("/api/v1/products", params={"q": "sung thai do"})).json()["items"]
    assert [(p["name"], p["min_price"]) for p in found] == [("Súng Thái đỏ", 45000)]
    assert (await catalog.get("/api/v1/products", params={"q": "sen quan am"})).json()["items"] == []


async def test_bad_rows_are_reported_by_line_and_their_products_are_not_stored(catalog) -> None:
    data = csv_bytes(
        row("Súng Thái đỏ", "Củ giống", description="Hai dòng\nmô tả"),              # lines 2–3
        row("", "Chậu 30 cm", "150000"),                                               # line 4
        row("Giá không", price="0"),                                                   # line 5
        row("Bậc sai", tiers="50:30000;10:35000"),                                     # line 6
        row("Tồn kho lớn", stock=str(10**9)),                                          # line 7
        row("Loại lạ", category="weapons"),                                            # line 8
        row("Súng\x00 đen"),                                                           # line 9
        row("x" * 10_000),                                                             # line 10
        ["Thiếu cột", "mô tả", "lotus"],                                               # line 11
        row("Hai biến thể", "Củ giống"),                                               # line 12
        row("Hai biến thể", "Cây con", "45.5"),                                        # line 13
        row("Sen tốt", "Ngó giống", "90000"),                                          # line 14
    )
    report = await do_import(catalog, data)
    got = {(e.line, e.field): e.message for e in report.errors}
    assert set(got) == {(5, "retail_price"), (6, "wholesale_tiers"), (7, "stock"), (8, "category"),
                        (9, "product_name"), (10, "product_name"), (11, None), (13, "retail_price")}, got
    assert "greater than 0" in got[5, "retail_price"]
    assert "must rise" in got[6, "wholesale_tiers"]
    assert "1000000" in got[7, "stock"]
    assert "water_lily" in got[8, "category"]
    assert "control characters" in got[9, "product_name"]
    assert "at most 160 characters" in got[10, "product_name"]
    assert "3 cells, but the header has 11" in got[11, None]
    assert "not a whole number" in got[13, "retail_price"]
    assert str(report.errors[0]) == 'line 5, retail_price: Input should be greater than 0 (cell: "0")'
    assert report.stored and report.products_rejected == 8 and report.products_created == 2
    assert set(await stored(catalog)) == {"Súng Thái đỏ", "Sen tốt"}


async def test_all_or_nothing_and_dry_run_store_nothing(catalog) -> None:
    bad = csv_bytes(row("Sen tốt", "Ngó giống", "90000"), row("Giá không", price="0"))
    report = await do_import(catalog, bad, all_or_nothing=True)
    assert [(e.line, e.field) for e in report.errors] == [(3, "retail_price")]
    assert not report.stored and await stored(catalog) == {}

    report = await do_import(catalog, GOOD, dry_run=True)
    assert report.ok and not report.stored and report.products_created == 2
    assert await stored(catalog) == {}

    report = await do_import(catalog, GOOD, all_or_nothing=True)
    assert report.ok and report.stored and set(await stored(catalog)) == {"Súng Thái đỏ", "Sen Quan Âm"}

    # A dry run checks against what is stored, and reports what would change without changing it.
    before = await stored(catalog, archived=True)
    changed = csv_bytes(row("Súng Thái đỏ", "Củ giống", "20000", tiers=""), row("Sen Quan Âm", "Ngó giống", "0"),
                        row("Bèo Nhật", "Bó", "25000"))
    report = await do_import(catalog, changed, dry_run=True)
    assert [(e.line, e.field) for e in report.errors] == [(3, "retail_price")]
    assert (report.products_created, report.products_updated, report.variants_archived) == (1, 1, 1)
    assert await stored(catalog, archived=True) == before
    async with catalog.db.sessionmaker() as session:
        assert (await session.scalars(select(Product.name))).all() == ["Súng Thái đỏ", "Sen Quan Âm"]


async def test_importing_again_updates_and_never_duplicates(catalog) -> None:
    first = csv_bytes(row("Súng Thái đỏ", "Củ giống", "45000", tiers="10:38000", stock="10"),
                      row("Súng Thái đỏ", "Chậu 30 cm", "150000", stock="5"),
                      row("Sen Quan Âm", "Ngó giống", "120000", stock="30"))
    assert (await do_import(catalog, first)).products_created == 2
    before = await stored(catalog)

    # Another spelling of the same name; a new price and a blank stock (kept); a variant added, one left out.
    second = csv_bytes(row("SÚNG  thái đỏ", "củ giống", "50000", tiers="10:38000"),
                       row("", "Cây con", "30000", stock="7"),
                       row("Sen Quan Âm", "Ngó giống", "120000", stock="30"),
                       row("Bèo Nhật", "Bó 10 cây", "25000"))
    report = await do_import(catalog, second)
    assert report.ok, report.errors
    assert (report.products_created, report.products_updated, report.products_unchanged) == (1, 1, 1)
    assert (report.variants_created, report.variants_updated, report.variants_archived) == (2, 1, 1)
    after = await stored(catalog, archived=True)
    assert set(after) == {"SÚNG  thái đỏ", "Sen Quan Âm", "Bèo Nhật"}
    thai = after["SÚNG  thái đỏ"]
    assert thai["id"] == before["Súng Thái đỏ"]["id"]
    tuber = thai["variants"]["củ giống"]
    assert tuber["id"] == before["Súng Thái đỏ"]["variants"]["Củ giống"]["id"]
    assert (tuber["retail_price"], tuber["stock"]) == (50000, 10)
    assert thai["variants"]["Chậu 30 cm"]["archived"] is True
    assert thai["min_price"] == 30000
    assert after["Sen Quan Âm"] == {**before["Sen Quan Âm"]}

    again = await do_import(catalog, second)
    assert (again.products_created, again.products_updated, again.products_unchanged) == (0, 0, 3)
    assert len(await stored(catalog)) == 3

    # The variant left out comes back (the same one, for past orders) when its row returns.
    back = await do_import(catalog, csv_bytes(row("Súng Thái đỏ", "Củ giống", "50000", tiers="10:38000"),
                                              row("", "Cây con", "30000"), row("", "Chậu 30 cm", "150000")))
    # (Updated: the pot, back from the archive, and the tuber's label, spelled as before again.)
    assert back.ok and back.variants_updated == 2 and back.variants_created == 0
    pots = (await stored(catalog))["Súng Thái đỏ"]["variants"]["Chậu 30 cm"]
    assert pots["id"] == before["Súng Thái đỏ"]["variants"]["Chậu 30 cm"]["id"] and pots["stock"] == 5


async def test_columns_left_out_keep_the_stored_values_and_are_checked_with_them(catalog) -> None:
    assert (await do_import(catalog, GOOD)).ok
    prices_only = ("product_name", "variant_label", "retail_price")
    report = await do_import(catalog, csv_bytes(["Súng Thái đỏ", "Củ giống", "46000"],
                                                ["Súng Thái đỏ", "Chậu 30 cm", "150000"], header=prices_only))
    assert report.ok and report.products_updated == 1
    thai = (await stored(catalog))["Súng Thái đỏ"]
    assert thai["description"] == "Hoa đỏ thắm,\nnở ngày" and thai["status"] == "active"
    assert thai["variants"]["Củ giống"]["wholesale_tiers"][0] == {"min_quantity": 10, "unit_price": 38000}
    assert thai["variants"]["Củ giống"]["stock"] == 120

    # A retail price under the stored wholesale tiers: refused, the message says what was kept.
    report = await do_import(catalog, csv_bytes(["Súng Thái đỏ", "Củ giống", "30000"],
                                                ["Súng Thái đỏ", "Chậu 30 cm", "150000"], header=prices_only))
    assert [(e.line, e.field) for e in report.errors] == [(2, "wholesale_tiers")]
    assert "10:38000;50:32000" in report.errors[0].message
    assert (await stored(catalog))["Súng Thái đỏ"]["variants"]["Củ giống"]["retail_price"] == 46000


async def test_export_then_import_gives_the_same_products(catalog) -> None:
    data = csv_bytes(*[r for r in csv.reader(io.StringIO(GOOD.decode("utf-8-sig")))][1:],
                     row("=HYPERLINK(\"http://x.example\",\"bấm\")", "@khuyến mãi", "60000",
                         description="+84 912 345 678, gọi \"ngay\"", status="archived", weight="0"),
                     row("'=không phải công thức", "-10%", "70000"))
    assert (await do_import(catalog, data)).ok
    first = await do_export(catalog)
    assert first.data.startswith(codecs.BOM_UTF8) and b"\r\n" in first.data
    assert (first.products, first.rows) == (4, 5)

    again = await do_import(catalog, first.data)
    assert again.ok and again.products_unchanged == 4 and again.products_updated == 0

    other = await open_shop(catalog, OTHER, name="Vườn Hai")
    assert (await do_import(catalog, first.data, shop_id=other["id"])).products_created == 4
    assert without_ids(await stored(catalog, other["id"])) == without_ids(await stored(catalog))
    assert (await do_export(catalog, other["id"])).data == first.data


async def test_export_escapes_formulas_and_import_takes_the_escape_away(catalog) -> None:
    names = ["=1+1", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "'=kept apostrophe", "Súng thường"]
    # Written as an export writes them, so that "'=kept apostrophe" keeps its apostrophe.
    assert (await do_import(catalog, csv_bytes(*[row(escape(n), escape(f"{n[:1]}loại")) for n in names]))).ok
    exported = (await do_export(catalog)).data
    cells = list(csv.reader(io.StringIO(exported.decode("utf-8-sig"))))[1:]
    assert [c[0] for c in cells] == ["'=1+1", "'+cmd|' /C calc'!A0", "'-2+3", "'@SUM(A1)", "''=kept apostrophe",
                                     "Súng thường"]
    assert [c[4] for c in cells] == ["'=loại", "'+loại", "'-loại", "'@loại", "'loại", "Sloại"]
    assert not any(cell.startswith(("=", "+", "-", "@")) for line in cells for cell in line)
    assert (await do_import(catalog, exported)).products_unchanged == len(names)
    assert list(await stored(catalog)) == names


async def test_a_semicolon_file_from_vietnamese_excel_imports(catalog) -> None:
    report = await do_import(catalog, csv_bytes(row("Súng Mỹ vàng", "Củ giống", "55.000", tiers="10:47.000"),
                                                delimiter=";", bom=False))
    assert report.ok, report.errors
    tiers = (await stored(catalog))["Súng Mỹ vàng"]["variants"]["Củ giống"]["wholesale_tiers"]
    assert tiers == [{"min_quantity": 10, "unit_price": 47000}]


# ---- the file and its cells, without a database ------------------------------------------------

@pytest.mark.parametrize("cell,value", [
    ("45000", 45000), ("45.000", 45000), ("45,000", 45000), ("45 000", 45000), ("45\u00a0000", 45000),
    ("1.000.000", 1_000_000), ("45.000 ₫", 45000), ("45.000đ", 45000), ("45000 VND", 45000), (" 7 ", 7),
    ("0", 0), ("-5", -5),
])
def test_prices_in_the_forms_growers_type(cell: str, value: int) -> None:
    assert parse_int(cell, money=True) == value


@pytest.mark.parametrize("cell", ["45.5", "45,00", "4.5000", "1.000,000", "45k", "abc", "", "4 5", "45.000,00"])
def test_prices_that_are_not_whole_dong(cell: str) -> None:
    with pytest.raises(ValueError, match="whole number"):
        parse_int(cell, money=True)


def test_wholesale_tiers() -> None:
    assert parse_tiers("10:38000; 50:32.000;") == [{"min_quantity": 10, "unit_price": 38000},
                                                   {"min_quantity": 50, "unit_price": 32000}]
    assert parse_tiers("") == []
    for bad in ("10-38000", "10:38000:1", "mười:38000"):
        with pytest.raises(ValueError):
            parse_tiers(bad)


@pytest.mark.parametrize("text", ["=1", "+1", "-1", "@a", "\tx", "'=1", "''+1", "'plain", "plain", "", "'"])
def test_escape_round_trips(text: str) -> None:
    assert unescape(escape(text)) == text
    assert not escape(text).startswith(("=", "+", "-", "@", "\t"))


def errors_of(data: bytes) -> list[tuple[int, str | None]]:
    products, _ = group_rows(data)
    return sorted((e.line, e.field) for p in products for e in p.errors)


def test_rows_of_one_product_must_agree() -> None:
    assert errors_of(csv_bytes(row("Sen", "Ngó", description="A"), row("Sen", "Chậu", description="B"),
                               row("Sen", "ngó  "), row("", "Hạt", category="sen"), row("", "Củ", category="lotus"))
                     ) == [(3, "description"), (4, "variant_label")]
    assert errors_of(csv_bytes(row("", "Ngó"))) == [(2, "product_name")]
    assert errors_of(csv_bytes(row("Sen", ""))) == [(2, "variant_label")]
    assert errors_of(csv_bytes(row("Sen", price=""))) == [(2, "retail_price")]
    assert errors_of(csv_bytes(*[row("Sen", f"Loại {i}") for i in range(21)])) == [(22, "variant_label")]


@pytest.mark.parametrize("data,line,message", [
    (b"", None, "empty"),
    ("product_name,variant_label,retail_price\nSúng,Củ,45000\n".encode("utf-16"), None, "UTF-16"),
    (b"product_name,variant_label,retail_price\nSen,Ngo,1\nS\xfang,Cu,45000\n", 3, "not UTF-8"),
    (b"product_name,variant_label\nSen,Ngo\n", 1, "missing column retail_price"),
    (b"product_name,variant_label,retail_price,price\n", 1, 'unknown column "price"'),
    (b"product_name,variant_label,retail_price,Stock,stock\n", 1, "appears twice"),
    (b'product_name,variant_label,retail_price\nSen,"Ngo,1\nSen,Cu,2\n', 2, "not valid CSV"),
    (b'product_name,variant_label,retail_price\nSen,Ngo,1\nSen,"Cu"x,2\n', 3, "not valid CSV"),
    (b"x" * (csvformat.MAX_FILE_BYTES + 1), None, "larger than 10 MB"),
])
def test_files_that_cannot_be_read_at_all(data: bytes, line: int | None, message: str) -> None:
    with pytest.raises(CsvFileError) as caught:
        group_rows(data)
    assert caught.value.line == line and message in caught.value.message


def test_row_and_cell_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csvformat, "MAX_ROWS", 3)
    header = b"product_name,variant_label,retail_price\r\n"
    with pytest.raises(CsvFileError, match="more than 3 rows") as caught:
        group_rows(header + b"A,a,1\r\n\r\n,b,1\r\n,c,1\r\n,d,1\r\n")
    assert caught.value.line == 6  # blank lines are not rows, but they are lines
    long_description = "x" * (csvformat.MAX_CELL_CHARS + 1)
    assert errors_of(csv_bytes(row("Sen", description=long_description))) == [(2, "description")]


# ---- the command line -----------------------------------------------------------------------------

def test_the_command_line_reports_bad_rows_by_line_and_exports(tmp_path: Path) -> None:
    env = {**os.environ, "CATALOG_DATABASE_URL": f"sqlite:///{tmp_path / 'catalog.db'}", "LOG_LEVEL": "WARNING"}

    def catalog(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "services.catalog", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)

    assert catalog("seed").returncode == 0  # the demo shop, vuon-sung-co-ut
    bad = tmp_path / "hàng mới.csv"
    bad.write_bytes(csv_bytes(row("Súng Tím", "Củ giống", "60.000"), row("Súng Hồng", "Củ giống", "0"),
                              row("", "Chậu", "abc")))
    result = catalog("import-csv", str(bad), "--shop", "vuon-sung-co-ut")
    assert result.returncode == 1, result.stderr
    assert f"{bad}: line 3, retail_price: Input should be greater than 0" in result.stderr
    assert f'{bad}: line 4, retail_price: not a whole number of đồng: "abc"' in result.stderr
    assert "1 created" in result.stdout and "2 errors in 1 products" in result.stdout

    out = tmp_path / "export.csv"
    result = catalog("export-csv", str(out), "--shop", "vuon-sung-co-ut")
    assert result.returncode == 0, result.stderr
    names = {r[0] for r in csv.reader(io.StringIO(out.read_bytes().decode("utf-8-sig")))}
    assert "Súng Tím" in names and "Súng Hồng" not in names and "Súng Thái đỏ" in names

    result = catalog("import-csv", str(bad), "--shop", "khong-co")
    assert result.returncode == 2 and "no shop" in result.stderr
