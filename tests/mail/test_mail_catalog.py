"""The catalog: CSV import with located errors, SQLite persistence, and prices."""

from pathlib import Path

import pytest

from server.errors import PulsewireError
from server.mail.catalog import Catalog, CatalogError, Product
from server.mail.money import format_price, parse_price

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "catalog.csv"
HEADER = "sku,name,url,image_url,price,currency,stock\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_example_catalog_imports_and_persists(tmp_path: Path) -> None:
    catalog = Catalog.open(tmp_path / "catalog.db")
    assert catalog.import_csv(EXAMPLE) == 10
    laptop = catalog.get("premium-laptop")
    assert laptop == Product("premium-laptop", "Aero Pro 14 Laptop",
                             "https://shop.example.com/product/premium-laptop",
                             "https://shop.example.com/img/premium-laptop.jpg", 189900, "USD", 3)
    assert laptop.low_stock
    earbuds = catalog.get("wireless-earbuds")
    assert earbuds is not None and earbuds.stock is None and not earbuds.low_stock
    assert catalog.get("nope") is None

    reopened = Catalog.open(tmp_path / "catalog.db")
    assert len(reopened) == 10 and reopened.get("premium-laptop") == laptop
    assert reopened.skus() == sorted(catalog.skus())


def test_import_upserts_by_sku(tmp_path: Path) -> None:
    catalog = Catalog.open(tmp_path / "c.db")
    catalog.import_csv(EXAMPLE)
    update = write(tmp_path / "u.csv", HEADER + "premium-laptop,Aero Pro 14,https://s.example/p,"
                   ",1799.50,usd,1\n")
    assert catalog.import_csv(update) == 1
    laptop = Catalog.open(tmp_path / "c.db").get("premium-laptop")
    assert laptop is not None
    assert (laptop.price_minor, laptop.currency, laptop.stock, laptop.image_url) == \
        (179950, "USD", 1, "")
    assert len(catalog) == 10


@pytest.mark.parametrize(("rows", "where"), [
    ("a,A,https://x.example/a,,1.00,USD,1\nb,B,https://x.example/b,,abc,USD,1\n",
     ":3: price: 'abc' is not a decimal amount"),
    ("a,A,https://x.example/a,,1.005,USD,\n", ":2: price: '1.005' has more decimals than USD"),
    ("a,A,https://x.example/a,,-1,USD,\n", ":2: price:"),
    ("a,A,https://x.example/a,,1,USD,-2\n", ":2: stock: '-2' is not a whole number"),
    ("a,A,https://x.example/a,,1,US,\n", ":2: currency:"),
    ("a,A,ftp://x.example/a,,1,USD,\n", ":2: url:"),
    ("a,,https://x.example/a,,1,USD,\n", ":2: name: is empty"),
    ("a,A,https://x.example/a,,1,USD\n", ":2: row: has 6 cells"),
    ("a,A,https://x.example/a,,1,USD,\n\na,B,https://x.example/b,,2,USD,\n",
     ":4: sku: 'a' repeats line 2"),
    ('a,"A\nlong name",https://x.example/a,,1,USD,\nb,B,https://x.example/b,,x,USD,\n',
     ":4: price:"),
])
def test_bad_row_names_its_line_and_imports_nothing(tmp_path: Path, rows: str,
                                                    where: str) -> None:
    catalog = Catalog.open(tmp_path / "c.db")
    with pytest.raises(CatalogError) as caught:
        catalog.import_csv(write(tmp_path / "bad.csv", HEADER + rows))
    assert where in str(caught.value) and "bad.csv" in str(caught.value)
    assert len(catalog) == 0 and len(Catalog.open(tmp_path / "c.db")) == 0


def test_bad_header_is_refused(tmp_path: Path) -> None:
    catalog = Catalog.open(tmp_path / "c.db")
    with pytest.raises(CatalogError, match=r":1: header .* missing stock; unknown qty"):
        catalog.import_csv(write(tmp_path / "h.csv", "sku,name,url,image_url,price,currency,qty\n"))
    with pytest.raises(CatalogError, match="cannot read"):
        catalog.import_csv(tmp_path / "missing.csv")
    assert issubclass(CatalogError, PulsewireError)


@pytest.mark.parametrize(("text", "currency", "minor"), [
    ("19.99", "USD", 1999), ("19.9", "EUR", 1990), ("1899", "USD", 189900),
    ("1999", "JPY", 1999), ("1.234", "KWD", 1234), ("0", "USD", 0), (" 5.00 ", "GBP", 500),
])
def test_parse_price(text: str, currency: str, minor: int) -> None:
    assert parse_price(text, currency) == minor


@pytest.mark.parametrize(("text", "currency"), [
    ("19.999", "USD"), ("1.5", "JPY"), ("-1", "USD"), ("NaN", "USD"), ("Infinity", "USD"),
    ("", "USD"), ("1,99", "EUR"),
])
def test_parse_price_refuses(text: str, currency: str) -> None:
    with pytest.raises(ValueError):
        parse_price(text, currency)


@pytest.mark.parametrize(("minor", "currency", "text"), [
    (189900, "USD", "$1,899.00"), (1999, "EUR", "€19.99"), (5, "GBP", "£0.05"),
    (500, "JPY", "¥500"), (1999, "CHF", "19.99 CHF"), (-250, "USD", "-$2.50"),
    ("25900", "USD", "$259.00"), ("abc", "USD", ""), (1234, "KWD", "1.234 KWD"),
])
def test_format_price(minor: int | str, currency: str, text: str) -> None:
    assert format_price(minor, currency) == text
