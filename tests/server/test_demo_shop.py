"""The demo shop over a real socket: pages, the loader tag, sign-in signatures, images."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import html
import queue
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path

import pytest
from starlette.applications import Starlette

from collector.identity import sign_identity
from server.web.demo_shop import demo_shop_routes
from server.web.serving import serve_http

CATALOG = Path(__file__).resolve().parents[2] / "examples" / "catalog.csv"
SITE_KEY, SITE_SECRET = "demo-site", "shop-secret-do-not-leak"
LOADER_ATTRS = {"data-mode": "edge", "data-endpoint": 'http://127.0.0.1:8080/?a=1&b="2"'}
MAILCATCHER = "http://127.0.0.1:8025"
Answer = tuple[int, dict[str, str], str]


Started = tuple[int, asyncio.AbstractEventLoop, asyncio.Event] | BaseException


def _serve_forever(app: Starlette, ready: queue.Queue[Started]) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        async with serve_http(app, "127.0.0.1:0") as port:
            ready.put((port, asyncio.get_running_loop(), stop))
            await stop.wait()

    try:
        asyncio.run(main())
    except BaseException as err:
        ready.put(err)


@contextmanager
def serving(loader_attrs: Mapping[str, str] = LOADER_ATTRS,
            mailcatcher_url: str | None = MAILCATCHER) -> Iterator[str]:
    """The shop on a free port, served from a thread while the block runs; yields its URL."""
    app = Starlette(routes=demo_shop_routes(
        catalog_csv=CATALOG, site_key=SITE_KEY, site_secret=SITE_SECRET,
        loader_attrs=loader_attrs, mailcatcher_url=mailcatcher_url))
    ready: queue.Queue[Started] = queue.Queue()
    thread = threading.Thread(target=_serve_forever, args=(app, ready), daemon=True)
    thread.start()
    started = ready.get(timeout=10)
    if isinstance(started, BaseException):
        raise started
    port, loop, stop = started
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


@pytest.fixture(scope="module")
def shop() -> Iterator[str]:
    with serving() as url:
        yield url


def fetch(url: str, form: dict[str, str] | None = None) -> Answer:
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    try:
        with urllib.request.urlopen(url, data=data, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read().decode()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, dict(err.headers), err.read().decode()


def products() -> list[dict[str, str]]:
    with CATALOG.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


class HeadScripts(HTMLParser):
    """The <script> tags of a page's <head>, in order, as (attributes, inline text)."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._in_head = self._in_script = False
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_head |= tag == "head"
        if tag == "script" and self._in_head:
            self.scripts.append((dict(attrs), ""))
            self._in_script = True

    def handle_endtag(self, tag: str) -> None:
        self._in_head &= tag != "head"
        self._in_script &= tag != "script"

    def handle_data(self, data: str) -> None:
        if self._in_script:
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)


def test_catalog_lists_every_product_as_a_hover_card(shop: str) -> None:
    status, headers, body = fetch(f"{shop}/demo/")
    assert status == 200 and headers["cache-control"] == "no-cache"
    assert len(products()) >= 5
    for product in products():
        sku = product["sku"]
        assert f'<a class="card" data-pw-hover="card:{sku}" href="/demo/product/{sku}">' in body
        assert html.escape(product["name"]) in body
    assert "Pulse Shop" in body and MAILCATCHER in body


def test_every_page_loads_the_loader_then_the_queue_stub(shop: str) -> None:
    stub = "window.pw=window.pw||function(){(pw.q=pw.q||[]).push(arguments)};"
    for path in ("/demo/", "/demo/product/premium-laptop", "/demo/cart", "/demo/checkout",
                 "/demo/signin", "/demo/thanks?order=o_1"):
        status, _, body = fetch(shop + path)
        assert status == 200, path
        (loader, _), (_, queue_stub) = HeadScripts(body).scripts[:2]
        assert loader == {"async": None, "src": "/pw.js", "data-site": SITE_KEY, **LOADER_ATTRS}
        assert queue_stub == stub, path
        assert '"2"' not in body.split("</head>")[0], "attribute values are escaped"


def test_product_page_shows_name_price_stock_and_add_to_cart(shop: str) -> None:
    status, _, body = fetch(f"{shop}/demo/product/premium-laptop")
    assert status == 200
    assert "Aero Pro 14 Laptop" in body and "$1,899.00" in body and "Only 3 left" in body
    assert 'id="add-to-cart"' in body and 'data-pw-hover="cta:add-to-cart"' in body
    assert 'data-price="1899.00"' in body
    assert "Related products" in body and 'data-pw-hover="card:ultrabook-13"' in body
    _, _, plenty = fetch(f"{shop}/demo/product/mechanical-keyboard")
    assert "Only" not in plenty and "In stock" in plenty


def test_unknown_product_is_not_found(shop: str) -> None:
    assert fetch(f"{shop}/demo/product/no-such-sku")[0] == 404
    assert fetch(f"{shop}/demo/static/img/no-such-sku.svg")[0] == 404
    assert fetch(f"{shop}/demo/static/nothing.css")[0] == 404


def test_sign_in_answers_with_the_signed_identity(shop: str) -> None:
    assert fetch(f"{shop}/demo/signin")[0] == 200
    status, _, body = fetch(f"{shop}/demo/signin", {"email": " Ann@Example.com ", "name": "Ann"})
    assert status == 200
    user_id = "u_" + hashlib.sha256(b"ann@example.com").hexdigest()[:12]
    signature = sign_identity(SITE_SECRET, user_id, "ann@example.com")  # binds the two
    assert (f'pw(\'identify\', {{"email": "ann@example.com", "signature": "{signature}", '
            f'"traits": {{"name": "Ann"}}, "user_id": "{user_id}"}});') in body
    assert "localStorage.setItem('demo_email', \"ann@example.com\")" in body
    assert "Signed in as" in body


@pytest.mark.parametrize("email", ["", "ann", "ann@", "@example.com", "a b@example.com",
                                   "<script>@example.com", "ann@example", "x" * 250 + "@ex.com"])
def test_sign_in_refuses_a_bad_email(shop: str, email: str) -> None:
    status, headers, body = fetch(f"{shop}/demo/signin", {"email": email, "name": "Ann"})
    assert status == 400 and headers["cache-control"] == "no-cache"
    assert "identify" not in body and "<script>@" not in body


def test_site_secret_never_appears(shop: str) -> None:
    paths = ["/demo/", "/demo/cart", "/demo/checkout", "/demo/signin", "/demo/thanks",
             "/demo/product/nope", "/demo/static/shop.js", "/demo/static/shop.css",
             *(f"/demo/product/{p['sku']}" for p in products())]
    answers = [fetch(shop + path) for path in paths]
    answers.append(fetch(f"{shop}/demo/signin", {"email": "bo@example.com"}))
    for _, headers, body in answers:
        assert SITE_SECRET not in body and SITE_SECRET not in str(headers)


def test_product_images_are_local_svg_cards(shop: str) -> None:
    status, headers, body = fetch(f"{shop}/demo/static/img/premium-laptop.svg")
    assert status == 200 and headers["content-type"] == "image/svg+xml"
    assert headers["cache-control"] == "public, max-age=3600"
    assert body.startswith("<svg") and "Aero Pro 14" in body
    assert body == fetch(f"{shop}/demo/static/img/premium-laptop.svg")[2]
    assert "hsl(" in body and body != fetch(f"{shop}/demo/static/img/smartwatch.svg")[2]


def test_static_files_are_cached_and_nothing_is_remote(shop: str) -> None:
    for name, kind in (("shop.css", "text/css"), ("shop.js", "text/javascript")):
        status, headers, body = fetch(f"{shop}/demo/static/{name}")
        assert status == 200 and headers["content-type"].startswith(kind)
        assert headers["cache-control"] == "public, max-age=3600"
        assert "https://" not in body and "@import" not in body and "url(" not in body
    _, _, page = fetch(f"{shop}/demo/product/premium-laptop")
    assert "https://" not in page and "//fonts." not in page


def test_mail_catcher_note_is_left_out_without_a_url() -> None:
    with serving(mailcatcher_url=None, loader_attrs={}) as url:
        status, _, body = fetch(f"{url}/demo/")
    assert status == 200 and "mail catcher" not in body and "Pulse Shop" in body
    (loader, _), *_ = HeadScripts(body).scripts
    assert loader == {"async": None, "src": "/pw.js", "data-site": SITE_KEY}


@pytest.mark.parametrize("name", ["src", "data-site", "onload x", 'a"b', ""])
def test_loader_attributes_must_be_plain_names(name: str) -> None:
    with pytest.raises(ValueError, match="loader attribute"):
        demo_shop_routes(catalog_csv=CATALOG, site_key=SITE_KEY, site_secret=SITE_SECRET,
                         loader_attrs={name: "x"})


def test_a_demo_catalog_out_of_reach_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    """The demo config run from another directory: its relative catalog path is not there."""
    examples = CATALOG.parent
    config = tmp_path / "demo.toml"
    config.write_text(f"""
[server]
grpc_listen = "127.0.0.1:0"
http_listen = "127.0.0.1:0"
data_dir = "{tmp_path / 'data'}"
shards = 1
[sequences]
dir = "{examples}"
[templates]
dir = "{examples / 'templates'}"
[web]
demo_shop = true
[[sites]]
key = "demo"
secret = "s"
""")
    pulsewire = Path(sys.executable).with_name("pulsewire")
    done = subprocess.run([str(pulsewire), "serve", "--config", str(config)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    [line] = [line for line in done.stderr.splitlines() if "demo_catalog" in line]
    assert line.startswith("serve: web.demo_catalog: cannot read examples/catalog.csv")
