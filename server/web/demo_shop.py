"""The demo shop served at /demo/ in demo mode: a catalog, product pages, a cart, a checkout and a
sign-in that make the pw() calls a real shop makes, so a site owner can watch pulsewire react
and browser tests can drive a realistic site.

Everything is local: Jinja2 templates, one CSS and one JS file under demo_shop_pages/, and an
SVG card per product drawn here. The cart lives in the browser (localStorage); the server holds
only the catalog and the site secret. The secret signs the email of a visitor who signs in, the
one step a shop must take on its backend, and never appears in a page.
"""

from __future__ import annotations

import csv
import hashlib
import re
import textwrap
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from collector.identity import sign_identity
from server.config import ConfigError
from server.mail.catalog import Product
from server.mail.money import format_price, minor_digits, parse_price

__all__ = ["demo_shop_routes"]

_FILES = Path(__file__).parent / "demo_shop_pages"
_HTML_HEADERS = {"Cache-Control": "no-cache"}
_STATIC_HEADERS = {"Cache-Control": "public, max-age=3600"}
_STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
_EMAIL = re.compile(r"[^@\s<>\"'(),;:\\]+@[^@\s<>\"'(),;:\\]+\.[A-Za-z0-9-]{2,}")
_EMAIL_MAX_CHARS, _NAME_MAX_CHARS, _FORM_MAX_BYTES = 254, 100, 4096
_ATTR_NAME = re.compile(r"[a-z][a-z0-9-]*")
_TAG_OWN_ATTRS = frozenset({"async", "src", "data-site"})
_RELATED_COUNT = 4


def demo_shop_routes(*, catalog_csv: Path, site_key: str, site_secret: str,
                     loader_attrs: Mapping[str, str],
                     mailcatcher_url: str | None = None) -> list[BaseRoute]:
    """The shop's routes, all under /demo. `loader_attrs` become extra attributes of the
    script tag that loads /pw.js; the mail catcher note is left out when its URL is None."""
    _check_attr_names(loader_attrs)
    products = _read_catalog(catalog_csv)
    currencies = {p.currency for p in products.values()}
    pages = _environment()
    pages.globals.update(site_key=site_key, loader_attrs=dict(loader_attrs),
                         mailcatcher_url=mailcatcher_url,
                         currency=currencies.pop() if len(currencies) == 1 else "USD")
    return [*_page_routes(pages, products, site_secret), *_static_routes(pages, products)]


def _check_attr_names(attrs: Mapping[str, str]) -> None:
    for name in attrs:
        if not _ATTR_NAME.fullmatch(name) or name in _TAG_OWN_ATTRS:
            raise ValueError(f"loader attribute {name!r}: want a lowercase name like "
                             "data-mode, other than async, src and data-site")


def _read_catalog(path: Path) -> dict[str, Product]:
    """Products by sku, in file order, from a CSV file with the catalog's columns."""
    products: dict[str, Product] = {}
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            for row in csv.DictReader(handle):
                try:
                    product = _product(row)
                except (KeyError, ValueError, AttributeError) as err:
                    raise ConfigError(f"web.demo_catalog: {path}: product "
                                      f"{row.get('sku')!r}: {err}") from None
                products[product.sku] = product
    except OSError as err:
        raise ConfigError(f"web.demo_catalog: cannot read {path} ({err.strerror}; a relative "
                          f"path is taken from the directory the server runs in)") from None
    return products


def _product(row: Mapping[str, str]) -> Product:
    currency = row["currency"].strip().upper()
    stock = row["stock"].strip()
    return Product(row["sku"].strip(), row["name"].strip(), row["url"].strip(),
                   row["image_url"].strip(), parse_price(row["price"], currency), currency,
                   int(stock) if stock else None)


def _environment() -> jinja2.Environment:
    pages = jinja2.Environment(loader=jinja2.FileSystemLoader(_FILES / "templates"),
                               autoescape=True, undefined=jinja2.StrictUndefined)
    pages.filters["money"] = lambda p: format_price(p.price_minor, p.currency)
    pages.filters["major"] = _major_units
    return pages


def _major_units(product: Product) -> str:
    """189900 USD -> '1899.00': the price as pw() events carry it (a number in major units)."""
    return str(Decimal(product.price_minor).scaleb(-minor_digits(product.currency)))


def _render(pages: jinja2.Environment, template: str, /, status: int = 200,
            **context: Any) -> HTMLResponse:
    return HTMLResponse(pages.get_template(template).render(context), status,
                        headers=_HTML_HEADERS)


def _page_routes(pages: jinja2.Environment, products: dict[str, Product],
                 site_secret: str) -> list[BaseRoute]:
    listed = list(products.values())

    async def catalog(_request: Request) -> Response:
        return _render(pages, "catalog.html", products=listed)

    async def product(request: Request) -> Response:
        found = products.get(request.path_params["sku"])
        if found is None:
            return _not_found(pages)
        return _render(pages, "product.html", product=found, related=_related(listed, found))

    async def cart(_request: Request) -> Response:
        return _render(pages, "cart.html")

    async def checkout(_request: Request) -> Response:
        return _render(pages, "checkout.html")

    async def signin(request: Request) -> Response:
        if request.method == "POST":
            return await _sign_in(pages, site_secret, request)
        return _render(pages, "signin.html", email="", name="", error="")

    async def thanks(request: Request) -> Response:
        return _render(pages, "thanks.html", order=request.query_params.get("order", "")[:40])

    return [
        Route("/demo/", catalog),
        Route("/demo/product/{sku}", product),
        Route("/demo/cart", cart),
        Route("/demo/checkout", checkout),
        Route("/demo/signin", signin, methods=["GET", "POST"]),
        Route("/demo/thanks", thanks),
    ]


def _related(listed: list[Product], product: Product) -> list[Product]:
    """The next few products after this one in catalog order, wrapping around."""
    at = listed.index(product)
    count = min(_RELATED_COUNT, len(listed) - 1)
    return [listed[(at + step) % len(listed)] for step in range(1, count + 1)]


def _not_found(pages: jinja2.Environment) -> Response:
    return _render(pages, "error.html", 404, title="Not found",
                   message="There is no such product in this shop.")


async def _sign_in(pages: jinja2.Environment, site_secret: str, request: Request) -> Response:
    form = await _read_form(request)
    if form is None:
        return _render(pages, "error.html", 400, title="Bad request",
                       message="The sign-in form could not be read.")
    email = form.get("email", "").strip().lower()
    name = form.get("name", "").strip()[:_NAME_MAX_CHARS]
    if len(email) > _EMAIL_MAX_CHARS or not _EMAIL.fullmatch(email):
        return _render(pages, "signin.html", 400, email=email, name=name,
                       error="Enter an email address like ann@example.com.")
    user_id = _user_id_for(email)
    identity = {"user_id": user_id, "email": email,
                "signature": sign_identity(site_secret, user_id, email),
                "traits": {"name": name} if name else {}}
    return _render(pages, "signed_in.html", identity=identity)


def _user_id_for(email: str) -> str:
    """The shop's own user id for an email: stable, and not the email itself."""
    return "u_" + hashlib.sha256(email.strip().lower().encode()).hexdigest()[:12]


async def _read_form(request: Request) -> dict[str, str] | None:
    """An urlencoded form body's first value per field; None when too big or unreadable."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _FORM_MAX_BYTES:
            return None
    try:
        fields = parse_qs(body.decode(), max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return None
    return {key: values[0] for key, values in fields.items()}


def _static_routes(pages: jinja2.Environment, products: dict[str, Product]) -> list[BaseRoute]:
    files = {path.name: path.read_bytes() for path in (_FILES / "static").iterdir()
             if path.suffix in _STATIC_TYPES}
    card = pages.get_template("product.svg")

    async def image(request: Request) -> Response:
        found = products.get(request.path_params["sku"])
        if found is None:
            return _not_found(pages)
        return Response(card.render(_card_look(found)), media_type="image/svg+xml",
                        headers=_STATIC_HEADERS)

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in files:
            return _render(pages, "error.html", 404, title="Not found", message="No such file.")
        return Response(files[name], media_type=_STATIC_TYPES[Path(name).suffix],
                        headers=_STATIC_HEADERS)

    return [Route("/demo/static/img/{sku}.svg", image), Route("/demo/static/{name}", static)]


def _card_look(product: Product) -> dict[str, Any]:
    """A product card's colors and text lines; the hue comes from the sku, so it never moves."""
    hue = int.from_bytes(hashlib.sha256(product.sku.encode()).digest()[:2], "big") % 360
    return {"product": product, "hue": hue, "accent": (hue + 40) % 360,
            "lines": textwrap.wrap(product.name, 18)[:3]}
