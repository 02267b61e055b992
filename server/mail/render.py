"""Rendering an email from its templates: subject, HTML with tracking, and a text part.

A template NAME is up to three files in one directory: NAME.subject.txt, NAME.html and,
optionally, NAME.txt. Files whose name starts with "_" are partials (layouts, blocks) that
templates may `{% extends %}` or `{% include %}`; they are not templates of their own.
`Templates.load()` compiles every file and reports every fault at once, each with its file
and line, so a broken set is refused before anything is sent.

Templates run in Jinja2's immutable sandbox: no attribute starting with "_", no mutation of
what they are given, no I/O. Reaching for an unsafe attribute raises `SecurityError` at once
(instead of rendering an empty string), so a template author sees the fault. HTML files are
autoescaped; subjects and text files are not (they are not HTML). An undefined variable
renders empty, and so does any attribute of one, so `{{ user.traits.first_name }}` is safe to
write for users without traits.

What a template sees: the send's vars (entry event properties, segment content rules, step
vars), `user` (email, user_id, traits), and from here `product(sku)` (a catalog Product or
None), `format_price(minor, currency)` and `unsubscribe_url`; these three win over vars of the
same name. After rendering, the HTML has its CSS inlined (remote stylesheets are never
fetched; @media rules stay in a <style> tag), its links sent through signed click URLs
(except the unsubscribe link), and an open pixel before </body>. Without NAME.txt, the text
part is made from the HTML, with the real link targets.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import css_inline
import jinja2
from jinja2 import meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from server.errors import InvalidTemplates, Problem, RenderError
from server.mail.catalog import Catalog, Product
from server.mail.html_text import html_to_text
from server.mail.links import LinkBuilder, add_open_pixel, track_links
from server.mail.money import format_price

__all__ = [
    "InvalidTemplates",
    "LinkBuilder",
    "RenderError",
    "RenderedEmail",
    "Templates",
    "send_context",
]

_SUBJECT, _HTML, _TEXT = ".subject.txt", ".html", ".txt"
_GLOBALS_KEPT = ("range", "dict", "namespace")


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


def send_context(vars: Mapping[str, Any], *, email: str, user_id: str,
                 traits: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The context `Templates.render` takes for one send: its vars plus `user`."""
    user = {"email": email, "user_id": user_id, "traits": dict(traits or {})}
    return {**vars, "user": user}


class _Sandbox(ImmutableSandboxedEnvironment):
    def unsafe_undefined(self, obj: Any, attribute: str) -> NoReturn:
        raise SecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe"
        )


class Templates:
    """The email templates of one directory, with an optional catalog for `product(sku)`."""

    def __init__(self, directory: Path | str, catalog: Catalog | None = None) -> None:
        self._dir = Path(directory)
        self._catalog = catalog
        self._env = _Sandbox(
            loader=jinja2.FileSystemLoader(self._dir),
            autoescape=jinja2.select_autoescape(enabled_extensions=("html",),
                                                default_for_string=False, default=False),
            undefined=jinja2.ChainableUndefined,
            auto_reload=False,
        )
        self._env.globals = {k: self._env.globals[k] for k in _GLOBALS_KEPT}
        # Globals, not context: macros imported from partials see globals only.
        self._env.globals.update(product=self._product, format_price=format_price)
        self._inliner = css_inline.CSSInliner(load_remote_stylesheets=False, keep_at_rules=True,
                                              keep_link_tags=False)
        self._names: dict[str, bool] | None = None  # name -> has its own NAME.txt

    def load(self) -> None:
        """Compiles every template file; raises `InvalidTemplates` naming each fault."""
        if not self._dir.is_dir():
            raise InvalidTemplates([Problem(str(self._dir), 0, "", "not a directory")])
        if self._env.cache is not None:
            self._env.cache.clear()  # load() again reads the files again
        files = sorted(p.name for p in self._dir.iterdir() if p.is_file()
                       and p.name.endswith((_HTML, _TEXT)))
        problems = [p for f in files for p in self._check_file(f, set(files))]
        names: dict[str, bool] = {}
        for stem in sorted({_stem(f) for f in files if not f.startswith("_")}):
            for needed in (_SUBJECT, _HTML):
                if stem + needed not in files:
                    problems.append(Problem(str(self._dir / (stem + needed)), 0, "",
                                            f"template {stem!r} needs this file"))
            names[stem] = stem + _TEXT in files
        if problems:
            raise InvalidTemplates(problems)
        self._names = names

    def names(self) -> list[str]:
        return sorted(self._loaded())

    def render(self, name: str, context: Mapping[str, Any], links: LinkBuilder) -> RenderedEmail:
        has_text = self._loaded().get(name)
        if has_text is None:
            raise RenderError(f"no template {name!r} in {self._dir}")
        values = {**context, "product": self._product, "format_price": format_price,
                  "unsubscribe_url": links.unsubscribe()}  # these win over vars of their names
        subject = " ".join(self._render_file(name + _SUBJECT, values).split())
        if not subject:
            raise RenderError(f"{self._dir / (name + _SUBJECT)}: the subject renders empty")
        page = self._render_file(name + _HTML, values)
        text = self._render_file(name + _TEXT, values) if has_text else html_to_text(page)
        try:
            page = self._inliner.inline(page)
        except ValueError as err:  # css_inline.InlineError: CSS it cannot use
            raise RenderError(f"{self._dir / (name + _HTML)}: cannot inline CSS: {err}") from err
        page = add_open_pixel(track_links(page, links), links.open())
        return RenderedEmail(subject=subject, html=page, text=text)

    def _loaded(self) -> dict[str, bool]:
        if self._names is None:
            self.load()
        assert self._names is not None
        return self._names

    def _product(self, sku: object) -> Product | None:
        if self._catalog is None or not sku:
            return None
        return self._catalog.get(str(sku))

    def _check_file(self, file: str, files: set[str]) -> list[Problem]:
        path = str(self._dir / file)
        try:
            source = (self._dir / file).read_text(encoding="utf-8")
            references = meta.find_referenced_templates(self._env.parse(source, file, path))
            self._env.get_template(file)
        except jinja2.TemplateSyntaxError as err:
            return [Problem(path, err.lineno, "", err.message or "syntax error")]
        except (OSError, UnicodeDecodeError) as err:
            return [Problem(path, 0, "", f"cannot read: {err}")]
        return [Problem(path, 0, "", f"refers to {ref!r}, which is not in {self._dir}")
                for ref in references if ref is not None and ref not in files]

    def _render_file(self, file: str, values: Mapping[str, Any]) -> str:
        try:
            return self._env.get_template(file).render(values)
        except Exception as err:
            raise RenderError(f"{self._where(file, err)}: {type(err).__name__}: {err}") from err

    def _where(self, file: str, err: BaseException) -> str:
        frames = [f for f in traceback.extract_tb(err.__traceback__)
                  if Path(f.filename).parent == self._dir]
        if frames:
            return f"{frames[-1].filename}:{frames[-1].lineno}"
        return str(self._dir / file)


def _stem(file: str) -> str:
    for suffix in (_SUBJECT, _HTML, _TEXT):
        if file.endswith(suffix):
            return file[: -len(suffix)]
    return file
