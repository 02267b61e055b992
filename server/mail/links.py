"""Tracking and unsubscribe links of one email, and putting them into its HTML.

`LinkBuilder` makes the three URLs an email carries, each with a signed token (tokens.py):
`{public_url}/c/{token}` redirects a click to its URL, `{public_url}/o/{token}.gif` is the
open pixel, `{public_url}/u/{token}` unsubscribes (RFC 8058 one-click POST, or a page on GET).

`track_links` rewrites every `<a href="http(s)://...">` of the finished HTML to its click URL,
except the unsubscribe link, which must stay as it is. Tags are found with `html.parser`, so
a `>` inside a quoted attribute cannot fool it, and a rewritten tag is written back whole from
its parsed attributes. `add_open_pixel` puts a 1x1 image before `</body>`.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

from server.mail.tokens import KIND_CLICK, KIND_OPEN, KIND_UNSUBSCRIBE, LinkSigner

__all__ = ["LinkBuilder", "add_open_pixel", "track_links"]

_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


class LinkBuilder:
    """The tracking and unsubscribe URLs for one message to one user."""

    __slots__ = ("_base", "_email", "_message", "_signer", "_user")

    def __init__(self, public_url: str, signer: LinkSigner, user: str, message_id: str,
                 email: str) -> None:
        self._base = public_url.rstrip("/")
        self._signer = signer
        self._user = user
        self._message = message_id
        self._email = email

    def click(self, url: str) -> str:
        token = self._signer.sign(KIND_CLICK,
                                  {"user": self._user, "message": self._message, "url": url})
        return f"{self._base}/c/{token}"

    def open(self) -> str:
        token = self._signer.sign(KIND_OPEN, {"user": self._user, "message": self._message})
        return f"{self._base}/o/{token}.gif"

    def unsubscribe(self) -> str:
        token = self._signer.sign(
            KIND_UNSUBSCRIBE, {"user": self._user, "email": self._email, "message": self._message}
        )
        return f"{self._base}/u/{token}"


def track_links(html_text: str, links: LinkBuilder) -> str:
    """`html_text` with each http(s) link but the unsubscribe one sent through `links.click`."""
    keep = links.unsubscribe()
    finder = _AnchorFinder()
    finder.feed(html_text)
    finder.close()
    starts = _line_starts(html_text)
    out: list[str] = []
    done = 0
    for (line, col), tag_text, attrs in finder.anchors:
        href = next((v for k, v in attrs if k == "href"), None)
        url = (href or "").strip()
        if not url.lower().startswith(("http://", "https://")) or url == keep:
            continue
        start = starts[line - 1] + col
        new_attrs = [(k, links.click(url) if k == "href" else v) for k, v in attrs]
        out += [html_text[done:start], _start_tag("a", new_attrs)]
        done = start + len(tag_text)
    out.append(html_text[done:])
    return "".join(out)


def add_open_pixel(html_text: str, pixel_url: str) -> str:
    pixel = (f'<img src="{html.escape(pixel_url)}" width="1" height="1" alt="" '
             'style="display:block;width:1px;height:1px;border:0">')
    ends = list(_BODY_END.finditer(html_text))
    if not ends:
        return html_text + pixel
    at = ends[-1].start()
    return html_text[:at] + pixel + html_text[at:]


class _AnchorFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[tuple[tuple[int, int], str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        text = self.get_starttag_text()
        if tag == "a" and text is not None:
            self.anchors.append((self.getpos(), text, attrs))


def _line_starts(text: str) -> list[int]:
    starts = [0]
    starts += [m.end() for m in re.finditer("\n", text)]
    return starts


def _start_tag(tag: str, attrs: list[tuple[str, str | None]]) -> str:
    parts = [f" {k}" if v is None else f' {k}="{html.escape(v, quote=True)}"' for k, v in attrs]
    return f"<{tag}{''.join(parts)}>"
