"""The product catalog that templates look up by sku: name, link, image, price, stock.

Products live in one SQLite file and are read whole into memory when it is opened: catalogs
are small, and rendering must not wait on disk. `import_csv` reads and checks every row of a
CSV file first and writes them all in one transaction only when none is bad, so a bad file
changes nothing; rows upsert by sku, and products missing from the file are kept.

    sku,name,url,image_url,price,currency,stock
    premium-laptop,Premium Laptop,https://shop.example/p/premium-laptop,https://...,1899.00,USD,3

`price` is decimal text in the currency's major unit; `stock` is a whole number, or empty when
the shop does not track it.
"""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import astuple, dataclass
from pathlib import Path

from server.errors import CatalogError
from server.mail.money import parse_price

__all__ = ["CSV_COLUMNS", "Catalog", "CatalogError", "Product"]

CSV_COLUMNS = ("sku", "name", "url", "image_url", "price", "currency", "stock")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    sku TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    url TEXT NOT NULL,
    image_url TEXT NOT NULL,
    price_minor INTEGER NOT NULL,
    currency TEXT NOT NULL,
    stock INTEGER
)
"""


@dataclass(frozen=True, slots=True)
class Product:
    sku: str
    name: str
    url: str
    image_url: str
    price_minor: int
    currency: str
    stock: int | None  # None: not tracked

    @property
    def low_stock(self) -> bool:
        """Few enough left to say so ("Only 3 left")."""
        return self.stock is not None and 0 < self.stock <= 5


class Catalog:
    """Products by sku, backed by a SQLite file. Open with `Catalog.open(path)`."""

    def __init__(self, path: Path, products: Mapping[str, Product]) -> None:
        self._path = path
        self._products = dict(products)

    @classmethod
    def open(cls, path: Path | str) -> Catalog:
        """Reads the catalog file at `path`, creating an empty one if there is none."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with _connect(path) as db:
            db.execute(_SCHEMA)
            rows = db.execute(
                "SELECT sku, name, url, image_url, price_minor, currency, stock FROM products"
            ).fetchall()
        return cls(path, {row[0]: Product(*row) for row in rows})

    def get(self, sku: str) -> Product | None:
        return self._products.get(sku)

    def __len__(self) -> int:
        return len(self._products)

    def skus(self) -> list[str]:
        return sorted(self._products)

    def import_csv(self, path: Path | str) -> int:
        """Upserts every product of a CSV file; returns how many. A bad row imports nothing."""
        products = _read_csv(Path(path))
        with _connect(self._path) as db:
            db.executemany(
                "INSERT OR REPLACE INTO products"
                " (sku, name, url, image_url, price_minor, currency, stock)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [astuple(p) for p in products],
            )
        self._products.update((p.sku, p) for p in products)
        return len(products)


@contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    try:
        with closing(sqlite3.connect(path)) as db, db:  # `with db`: one transaction
            yield db
    except sqlite3.Error as err:
        raise CatalogError(f"{path}: {err}") from None


def _read_csv(path: Path) -> list[Product]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, strict=True)
            header = [h.strip() for h in next(reader, [])]
            _check_header(path, header)
            products: list[Product] = []
            seen: dict[str, int] = {}
            start = reader.line_num + 1
            for row in reader:
                line, start = start, reader.line_num + 1
                if not any(cell.strip() for cell in row):
                    continue  # blank lines carry nothing
                product = _row_product(path, line, dict(zip(header, row, strict=False)), row)
                if product.sku in seen:
                    raise CatalogError(f"{path}:{line}: sku: {product.sku!r} repeats line "
                                       f"{seen[product.sku]}")
                seen[product.sku] = line
                products.append(product)
    except OSError as err:
        raise CatalogError(f"{path}: cannot read: {err.strerror}") from None
    except (csv.Error, UnicodeDecodeError) as err:
        raise CatalogError(f"{path}: not a readable CSV file: {err}") from None
    return products


def _check_header(path: Path, header: list[str]) -> None:
    missing = [c for c in CSV_COLUMNS if c not in header]
    unknown = [c for c in header if c not in CSV_COLUMNS]
    if missing or unknown:
        raise CatalogError(f"{path}:1: header must be {','.join(CSV_COLUMNS)}"
                           + (f"; missing {', '.join(missing)}" if missing else "")
                           + (f"; unknown {', '.join(unknown)}" if unknown else ""))


def _row_product(path: Path, line: int, cells: Mapping[str, str], row: list[str]) -> Product:
    def fail(column: str, message: str) -> CatalogError:
        return CatalogError(f"{path}:{line}: {column}: {message}")

    if len(row) != len(CSV_COLUMNS):
        raise fail("row", f"has {len(row)} cells, the header {len(CSV_COLUMNS)}")
    value = {k: v.strip() for k, v in cells.items()}
    for column in ("sku", "name", "url", "currency"):
        if not value[column]:
            raise fail(column, "is empty")
    for column in ("url", "image_url"):
        if value[column] and not value[column].startswith(("https://", "http://")):
            raise fail(column, f"{value[column]!r} is not an http(s) URL")
    currency = value["currency"].upper()
    if len(currency) != 3 or not currency.isascii() or not currency.isalpha():
        raise fail("currency", f"{value['currency']!r} is not a 3-letter currency code")
    try:
        price_minor = parse_price(value["price"], currency)
    except ValueError as err:
        raise fail("price", str(err)) from None
    stock: int | None = None
    if value["stock"]:
        if not (value["stock"].isascii() and value["stock"].isdigit()):
            raise fail("stock", f"{value['stock']!r} is not a whole number")
        stock = int(value["stock"])
    return Product(value["sku"], value["name"], value["url"], value["image_url"],
                   price_minor, currency, stock)
