"""Email previews: every template rendered as the dispatcher would, for a sample user, the first
product of the catalog and the vars of the sequences that send it, with warnings a person
should see before mail goes out: a template that fails to render, a product the catalog does
not have or one with empty fields, a link left as it is (not a tracked http(s) link), and a
variable that neither the sequences sending the template nor any segment's content rules give.

Links are signed with a key made for the preview alone, so clicking one inside a preview never
counts as a click of anyone's.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from jinja2 import Environment, meta, nodes

from server.engine import Rules
from server.engine.rules import SendRule
from server.errors import RenderError
from server.mail.catalog import Catalog, Product
from server.mail.links import LinkBuilder
from server.mail.render import RenderedEmail, Templates, send_context
from server.mail.tokens import LinkSigner

__all__ = ["Preview", "frame_headers", "preview_all"]

SAMPLE_EMAIL, SAMPLE_USER_ID = "sam.sample@example.com", "sample-user"
SAMPLE_TRAITS = {"first_name": "Sam"}
_PRODUCT_FIELDS = ("name", "url", "image_url")
# What an entry event of each kind carries (server/ingest/batches.py), for the sample send.
_ENTRY_PROPS = {
    "cart_add": ("sku", "qty", "price_minor", "cart_id", "currency"),
    "cart_remove": ("sku", "qty", "price_minor", "cart_id", "currency"),
    "checkout_start": ("cart_id", "value_minor", "currency"),
    "purchase": ("order_id", "value_minor", "currency", "cart_id"),
    "page_view": ("path", "title", "referrer"),
    "product_view": ("sku", "product_id", "path"),
}
_KNOWN = {"user", "product", "format_price", "unsubscribe_url", "range", "dict", "namespace"}


@dataclass
class Preview:
    name: str
    sequences: list[str]
    email: RenderedEmail | None = None
    warnings: list[str] = field(default_factory=list)


def preview_all(templates: Templates, template_dir: Path, catalog: Catalog | None,
                rules: Rules, public_url: str, only: str | None = None) -> list[Preview]:
    """Every template's preview (or the one named `only`)."""
    senders = _senders(rules)
    sample = _sample_product(catalog)
    links = LinkBuilder(public_url, LinkSigner(secrets.token_bytes(32)), "preview",
                        "preview-message", SAMPLE_EMAIL)
    out = []
    for name in templates.names():
        if only is not None and name != only:
            continue
        uses = senders.get(name, [])
        preview = Preview(name, sorted({seq for seq, _, _ in uses}))
        entry, step_vars = (uses[0][1], uses[0][2]) if uses else ("", {})
        given = {**_sample_props(entry, sample), **step_vars}
        known = set(given).union(*(set(v) | set(_ENTRY_PROPS.get(e, ())) for _, e, v in uses),
                                 *(set(seg.vars) for seg in rules.segments.values()))
        context = send_context(given, email=SAMPLE_EMAIL, user_id=SAMPLE_USER_ID,
                               traits=SAMPLE_TRAITS)
        try:
            preview.email = templates.render(name, context, links)
        except RenderError as err:
            preview.warnings.append(f"does not render: {err}")
        else:
            preview.warnings += _link_warnings(preview.email.html, public_url)
        preview.warnings += _product_warnings(sample, catalog)
        preview.warnings += _missing_vars(template_dir, name, known)
        out.append(preview)
    return out


def _senders(rules: Rules) -> dict[str, list[tuple[str, str, dict[str, Any]]]]:
    """template -> (sequence, its entry event, the step's vars) of every step sending it."""
    found: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for seq_id, seq in sorted(rules.sequences.items()):
        for step in seq.steps:
            if isinstance(step, SendRule):
                found.setdefault(step.template, []).append(
                    (seq_id, seq.entry_event or "", dict(step.vars)))
    return found


def _sample_props(entry: str, product: Product | None) -> dict[str, Any]:
    """What the entry event would carry, with the sample product in it."""
    sku = product.sku if product else "sample-sku"
    price = product.price_minor if product else 4900
    currency = product.currency if product else "EUR"
    values: dict[str, Any] = {
        "sku": sku, "product_id": sku, "qty": 1, "price_minor": price, "cart_id": "cart-sample",
        "currency": currency, "value_minor": price, "order_id": "order-sample",
        "path": f"/product/{sku}", "title": product.name if product else "", "referrer": ""}
    keys = _ENTRY_PROPS.get(entry, ("sku", "product_id", "cart_id"))
    return {k: values[k] for k in keys}


def _sample_product(catalog: Catalog | None) -> Product | None:
    if catalog is None:
        return None
    skus = catalog.skus()
    return catalog.get(skus[0]) if skus else None


def _product_warnings(sample: Product | None, catalog: Catalog | None) -> list[str]:
    if catalog is None or sample is None:
        return ["the catalog is empty: product(sku) renders nothing "
                "(pulsewire catalog import products.csv)"]
    empty = [f for f in _PRODUCT_FIELDS if not getattr(sample, f)]
    return [f"the sample product {sample.sku!r} has no {', '.join(empty)}"] if empty else []


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs += [v or "" for k, v in attrs if k == "href"]


def _link_warnings(page: str, public_url: str) -> list[str]:
    finder = _Links()
    finder.feed(page)
    base = public_url.rstrip("/")
    tracked = (f"{base}/c/", f"{base}/u/")
    return [f"link not tracked: {href!r} (only http and https links are)"
            for href in finder.hrefs if not href.startswith(tracked)]


def _missing_vars(template_dir: Path, name: str, given: set[str]) -> list[str]:
    names: set[str] = set()
    for suffix in (".subject.txt", ".html", ".txt"):
        path = template_dir / f"{name}{suffix}"
        if path.exists():
            names |= _variables(str(path), path.stat().st_mtime_ns)
    missing = sorted(names - given - _KNOWN)
    return [f"uses {{{{ {v} }}}}, which none of the sequences sending it gives (renders empty "
            "unless the entry event or a segment has it)" for v in missing]


@lru_cache(maxsize=512)
def _variables(path: str, _mtime_ns: int) -> frozenset[str]:
    """The variables a template file reads (parsed once per version of the file)."""
    tree = Environment(autoescape=False).parse(Path(path).read_text(encoding="utf-8"))
    return frozenset(meta.find_undeclared_variables(tree) - _imported(tree))


def _imported(tree: nodes.Template) -> set[str]:
    """Names a template brings in itself: imported macros and modules, its own macros."""
    found = {m.name for m in tree.find_all(nodes.Macro)}
    found |= {i.target for i in tree.find_all(nodes.Import)}
    for imported in tree.find_all(nodes.FromImport):
        found |= {n[1] if isinstance(n, tuple) else n for n in imported.names}
    return found


def frame_headers() -> dict[str, str]:
    """A preview's HTML is someone's template: it runs sandboxed, with nothing of the page."""
    return {"Content-Security-Policy": "sandbox; default-src 'none'; img-src http: https: data:;"
            " style-src 'unsafe-inline'; font-src http: https: data:",
            "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}

