"""Shared pieces of the mail tests: the example templates and catalog, a signer, a context."""

from pathlib import Path
from typing import Any

from server.mail.catalog import Catalog
from server.mail.links import LinkBuilder
from server.mail.render import Templates, send_context
from server.mail.tokens import LinkSigner

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_TEMPLATES = ROOT / "examples" / "templates"
EXAMPLE_CATALOG = ROOT / "examples" / "catalog.csv"
PUBLIC_URL = "https://mail.shop.example.com"
SIGNER = LinkSigner(b"mail-tests-secret-0123456789")
EMAIL = "ann@example.org"
SEQUENCE_TEMPLATES = ["cart-reminder", "browse-reminder", "product-interest", "checkout-reminder",
                      "checkout-reminder-vip", "we-miss-you", "last-call", "premium-offer"]


def links(message_id: str = "msg-1") -> LinkBuilder:
    return LinkBuilder(PUBLIC_URL, SIGNER, "user-1", message_id, EMAIL)


def example_templates(tmp_path: Path) -> Templates:
    catalog = Catalog.open(tmp_path / "catalog.db")
    catalog.import_csv(EXAMPLE_CATALOG)
    return Templates(EXAMPLE_TEMPLATES, catalog)


def cart_context(**extra: Any) -> dict[str, Any]:
    return send_context({"sku": "premium-laptop", "cart_id": "cart-9", "qty": "1",
                         "price_minor": "189900", "discount_code": "SAVE15",
                         "offer_type": "free_warranty", **extra},
                        email=EMAIL, user_id="user-1", traits={"first_name": "Ann"})
