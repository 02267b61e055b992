"""The plain-text part of an email, made from its HTML when the template has no NAME.txt.

A small `html.parser` walk: block elements (p, div, headings, rows, list items) end lines,
`<br>` breaks one, paragraphs and headings are separated by a blank line, list items get
"- ", and a link reads "text (url)" (just the text when it is the url; an image-only link,
having no text, is left out).
Entities are decoded by the parser; head, style and script contents are dropped; runs of
spaces collapse as a browser would collapse them.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

__all__ = ["html_to_text"]

_SKIP = frozenset({"head", "style", "script", "title", "template"})
_PARAGRAPH = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table", "ul",
                        "ol", "pre", "hr"})
_LINE = frozenset({"div", "tr", "li", "section", "article", "header", "footer", "center",
                   "dd", "dt", "address", "figure", "figcaption", "main", "nav"})
_SPACES = re.compile(r"[ \t\r\n\f\v]+")


def html_to_text(html: str) -> str:
    parser = _TextParser()
    parser.feed(html)
    parser.close()
    return parser.text()


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._out: list[str] = []
        self._skip = 0
        self._links: list[tuple[str, int]] = []  # (href, index in _out where its text starts)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skip += 1
        elif tag == "br":
            self._out.append("\n")
        elif tag in _PARAGRAPH:
            self._out.append("\n\n")
        elif tag in _LINE:
            self._out.append("\n")
        if tag == "li":
            self._out.append("- ")
        elif tag == "a":
            self._links.append((dict(attrs).get("href") or "", len(self._out)))

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in _PARAGRAPH:
            self._out.append("\n\n")
        elif tag in _LINE:
            self._out.append("\n")
        elif tag == "a" and self._links:
            href, start = self._links.pop()
            label = _SPACES.sub(" ", "".join(self._out[start:])).strip()
            shown = href.removeprefix("mailto:")
            if href.startswith(("http://", "https://", "mailto:")) and shown != label:
                del self._out[start:]
                if label:  # an image-only link says nothing in text
                    self._out.append(f"{label} ({href})")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self._out.append(_SPACES.sub(" ", data))

    def text(self) -> str:
        lines = [" ".join(line.split()) for line in "".join(self._out).split("\n")]
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"
