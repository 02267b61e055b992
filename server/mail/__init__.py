"""The mail side of the server: render a send, build its MIME message, deliver it by SMTP.

    tokens.py      signed tokens for click, open and unsubscribe links
    catalog.py     products by sku in a SQLite file, imported from CSV (money.py: prices)
    render.py      Jinja2-sandboxed templates -> subject, HTML (CSS inlined, links tracked,
                   open pixel) and text (links.py, html_text.py)
    message.py     multipart/alternative bytes with RFC 8058 unsubscribe headers, DKIM
    smtp.py        one reused SMTP connection; each send says delivered/transient/permanent
    mailcatcher.py a development SMTP server with a web view (import it from its module: it
                   brings uvicorn and aiosmtpd along)
"""

from server.mail.catalog import Catalog, CatalogError, Product
from server.mail.links import LinkBuilder
from server.mail.message import DkimSigner, InvalidMessage, build_message, message_id_for
from server.mail.money import format_price, parse_price
from server.mail.render import (
    InvalidTemplates,
    RenderedEmail,
    RenderError,
    Templates,
    send_context,
)
from server.mail.smtp import Delivery, DeliveryStatus, SmtpSender
from server.mail.tokens import InvalidToken, LinkSigner

__all__ = [
    "Catalog",
    "CatalogError",
    "Delivery",
    "DeliveryStatus",
    "DkimSigner",
    "InvalidMessage",
    "InvalidTemplates",
    "InvalidToken",
    "LinkBuilder",
    "LinkSigner",
    "Product",
    "RenderError",
    "RenderedEmail",
    "SmtpSender",
    "Templates",
    "build_message",
    "format_price",
    "message_id_for",
    "parse_price",
    "send_context",
]
