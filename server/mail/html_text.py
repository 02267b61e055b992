"""The plain-text part of an email, made from its HTML when the template has no NAME.txt.

A small `html.parser` walk: block elements (div, rows, list items) end a line, paragraphs,
headings, lists and tables stand apart by a blank line, `<br>` breaks a line, list items get
"- ", and a link reads "text (url)" (just the text when it is the url; an image-only link,
having no text, is left out). Entities are decoded by the parser; head, style and script
contents are dropped; runs of spaces collapse as a browser would collapse them.

Block boundaries are collected as "at least N newlines here" and only turned into newlines
in front of the next text, so nested and adjacent blocks never stack up empty lines.
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
_BR = -1  # a hard line break, as opposed to a block boundary (a positive newline count)


def html_to_text(html: str) -> str:
    parser = _TextParser()
    parser.feed(html)
    parser.close()
    return parser.text()


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._out: list[str | int] = []
        self._skip = 0
        self._links: list[tuple[str, int]] = []  # (href, index in _out where its text starts)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skip += 1
        elif tag == "br":
            self._out.append(_BR)
        elif tag in _PARAGRAPH or tag in _LINE:
            self._out.append(2 if tag in _PARAGRAPH else 1)
        if tag == "li":
            self._out.append("- ")
        elif tag == "a":
            self._links.append((dict(attrs).get("href") or "", len(self._out)))

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in _PARAGRAPH or tag in _LINE:
            self._out.append(2 if tag in _PARAGRAPH else 1)
        elif tag == "a" and self._links:
            href, start = self._links.pop()
            words = "".join(s for s in self._out[start:] if isinstance(s, str))
            label = " ".join(words.split())
            shown = href.removeprefix("mailto:")
            if href.startswith(("http://", "https://", "mailto:")) and shown != label:
                del self._out[start:]
                if label:  # an image-only link says nothing in text
                    self._out.append(f"{label} ({href})")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self._out.append(_SPACES.sub(" ", data))

    def text(self) -> str:
        chunks: list[str] = []
        owed = 0  # newlines due before the next text
        for item in self._out:
            if isinstance(item, int):
                owed = min(owed + 1, 2) if item == _BR else max(owed, item)
            elif item.strip():
                if chunks and owed:
                    chunks.append("\n" * owed)
                    item = item.lstrip()
                chunks.append(item)
                owed = 0
            elif not owed:
                chunks.append(item)  # a space between inline elements
        lines = [" ".join(line.split()) for line in "".join(chunks).split("\n")]
        return "\n".join(lines).strip() + "\n"
