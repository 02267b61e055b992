"""Rendering: the sandbox holds, variables are escaped, links tracked, CSS inlined, text made."""

from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from jinja2.exceptions import SecurityError
from mail_fixtures import (
    PUBLIC_URL,
    SEQUENCE_TEMPLATES,
    SIGNER,
    cart_context,
    example_templates,
    links,
)

from server.mail.html_text import html_to_text
from server.mail.render import InvalidTemplates, RenderError, Templates, send_context


def make(tmp_path: Path, files: dict[str, str]) -> Templates:
    folder = tmp_path / "templates"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return Templates(folder)


def one(tmp_path: Path, html: str, subject: str = "Hello") -> Templates:
    return make(tmp_path, {"t.subject.txt": subject, "t.html": html})


class Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.images: list[str] = []
        self.tags: list[str] = []
        self.attributes: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.tags.append(tag)
        self.attributes += values
        if tag == "a" and values.get("href"):
            self.hrefs.append(values["href"] or "")
        if tag == "img":
            self.images.append(values.get("src") or "")


def parse(html: str) -> Anchors:
    found = Anchors()
    found.feed(html)
    return found


@pytest.mark.parametrize("attack", [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ user.__class__ }}",
    "{{ product.__self__ }}",
    "{{ format_price.__globals__ }}",
    "{{ range.__init__.__globals__ }}",
    "{{ user.traits.update({'admin': '1'}) }}",
    "{% set x = user.traits.pop('first_name') %}",
    "{{ '{0.__class__}'.format(user) }}",
])
def test_sandbox_escapes_raise_security_error(tmp_path: Path, attack: str) -> None:
    templates = one(tmp_path, attack)
    with pytest.raises(RenderError) as caught:
        templates.render("t", cart_context(), links())
    assert isinstance(caught.value.__cause__, SecurityError)
    assert "t.html:1" in str(caught.value)


@pytest.mark.parametrize("attack", [
    "{{ cycler.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'] }}",
    "{{ joiner.__init__.__globals__.os }}",
    "{{ self.__init__.__globals__ }}",
])
def test_unknown_globals_render_nothing_dangerous(tmp_path: Path, attack: str) -> None:
    templates = one(tmp_path, f"<p>[{attack}]</p>")
    try:
        html = templates.render("t", cart_context(), links()).html
    except RenderError as err:
        assert isinstance(err.__cause__, SecurityError)
        return
    assert "[]" in html and "function" not in html and "module" not in html


def test_event_properties_are_escaped_in_html_not_in_subject(tmp_path: Path) -> None:
    templates = one(tmp_path, '<p title="{{ name }}">{{ sku }} &amp; {{ name }}</p>',
                    subject="About {{ sku }} & {{ name }}")
    context = cart_context(sku="<script>alert(1)</script>",
                           name='"><img src=x onerror=alert(1)>')
    email = templates.render("t", context, links())
    found = parse(email.html)
    assert "script" not in found.tags and found.tags.count("img") == 1  # the open pixel
    assert "onerror" not in found.attributes and found.attributes.count("src") == 1
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in email.html
    assert '&amp; "&gt;&lt;img src=x onerror=alert(1)&gt;</p>' in email.html
    assert 'title="&quot;><img src=x onerror=alert(1)>"' in email.html  # one attribute value
    assert email.subject == 'About <script>alert(1)</script> & "><img src=x onerror=alert(1)>'
    assert "<script>alert(1)</script> & \"><img src=x onerror=alert(1)>" in email.text


def test_links_become_click_urls_that_verify_back(tmp_path: Path) -> None:
    html = ('<html><body><a href="https://shop.example.com/p?a=1&amp;b=2">shop</a> '
            "<a href='http://example.org/x' class=\"b\" title='a > b'>other</a> "
            '<a href="mailto:help@example.com">mail</a> <a href="#top">top</a> '
            '<a href="{{ unsubscribe_url }}">unsubscribe</a></body></html>')
    email = one(tmp_path, html).render("t", cart_context(), links())
    hrefs = parse(email.html).hrefs
    clicks = [h for h in hrefs if h.startswith(f"{PUBLIC_URL}/c/")]
    targets = [SIGNER.verify("click", h.rsplit("/", 1)[1]) for h in clicks]
    assert [t["url"] for t in targets] == ["https://shop.example.com/p?a=1&b=2",
                                           "http://example.org/x"]
    assert all(t["user"] == "user-1" and t["message"] == "msg-1" for t in targets)
    assert "mailto:help@example.com" in hrefs and "#top" in hrefs
    assert links().unsubscribe() in hrefs  # the unsubscribe link is never rewritten
    assert 'class="b"' in email.html and 'title="a &gt; b"' in email.html


def test_open_pixel_goes_before_body_end(tmp_path: Path) -> None:
    email = one(tmp_path, "<html><body><p>Hi</p></body></html>").render(
        "t", cart_context(), links())
    pixel = parse(email.html).images[-1]
    assert pixel.startswith(f"{PUBLIC_URL}/o/") and pixel.endswith(".gif")
    assert SIGNER.verify("open", pixel[len(PUBLIC_URL) + 3:-4]) == \
        {"user": "user-1", "message": "msg-1"}
    assert email.html.index(pixel) < email.html.index("</body>")


def test_css_is_inlined_and_media_queries_kept(tmp_path: Path) -> None:
    html = ("<html><head><style>p.note { color: #ff0000; } "
            "@media (max-width: 600px) { p.note { color: blue; } }</style></head>"
            '<body><p class="note">x</p></body></html>')
    email = one(tmp_path, html).render("t", cart_context(), links())
    assert '<p class="note" style="color: #ff0000;">' in email.html
    assert "@media (max-width: 600px)" in email.html


def test_remote_stylesheets_are_never_fetched(tmp_path: Path) -> None:
    html = ('<html><head><link rel="stylesheet" href="http://127.0.0.1:9/x.css"></head>'
            "<body><p>x</p></body></html>")
    email = one(tmp_path, html).render("t", cart_context(), links())
    assert "<p>x</p>" in email.html


def test_text_part_is_made_from_html(tmp_path: Path) -> None:
    html = ("<html><head><title>T</title><style>p{color:red}</style></head><body>"
            "<h1>Big   news</h1><p>Caf&eacute; &amp; more<br>second line</p>"
            '<ul><li>one</li><li>two</li></ul><p>See <a href="https://x.example/a">the shop'
            '</a> or <a href="https://x.example/b"><img src="i.png"></a>.</p>'
            '<p><a href="https://x.example/c">https://x.example/c</a></p></body></html>')
    email = one(tmp_path, html).render("t", cart_context(), links())
    assert email.text == ("Big news\n\nCafé & more\nsecond line\n\n- one\n- two\n\n"
                          "See the shop (https://x.example/a) or .\n\nhttps://x.example/c\n")


def test_text_file_wins_over_generated_text(tmp_path: Path) -> None:
    templates = make(tmp_path, {"t.subject.txt": "S", "t.html": "<p>html</p>",
                                "t.txt": "Plain & {{ sku }} {{ unsubscribe_url }}"})
    email = templates.render("t", cart_context(sku="<b>"), links())
    assert email.text == f"Plain & <b> {links().unsubscribe()}"


def test_subject_is_one_trimmed_line(tmp_path: Path) -> None:
    templates = one(tmp_path, "<p>x</p>", subject="\n  Hello\n  {{ user.traits.first_name }}\r\n")
    assert templates.render("t", cart_context(), links()).subject == "Hello Ann"


def test_undefined_renders_empty(tmp_path: Path) -> None:
    templates = one(tmp_path, "<p>[{{ nope }}][{{ user.traits.nick.deeper }}]</p>")
    assert "<p>[][]</p>" in templates.render("t", cart_context(), links()).html


def test_product_lookup_and_price(tmp_path: Path) -> None:
    templates = example_templates(tmp_path)
    email = templates.render("cart-reminder", cart_context(), links())
    assert email.subject == "Still thinking about the Aero Pro 14 Laptop?"
    for text in ("Aero Pro 14 Laptop", "$1,899.00", "Only 3 left", "SAVE15",
                 "free 2-year warranty", "https://shop.example.com/img/premium-laptop.jpg"):
        assert text in email.html
    assert "Only 3 left" in email.text and "SAVE15" in email.text


def test_unknown_product_renders_without_card(tmp_path: Path) -> None:
    email = example_templates(tmp_path).render("cart-reminder", cart_context(sku="gone"),
                                               links())
    assert email.subject == "You left something in your cart"
    assert "Only" not in email.html


@pytest.mark.parametrize("name", SEQUENCE_TEMPLATES)
def test_every_example_template_renders(tmp_path: Path, name: str) -> None:
    context: dict[str, Any] = send_context(
        {"cart_id": "c-1", "value_minor": "25900", "path": "/product/webcam-1080p"},
        email="bo@example.org", user_id="u-2")
    email = example_templates(tmp_path).render(name, context, links())
    assert email.subject and "\n" not in email.subject
    assert links().unsubscribe() in email.html and links().unsubscribe() in email.text
    assert f"{PUBLIC_URL}/o/" in email.html and f"{PUBLIC_URL}/c/" in email.html
    assert "<" not in email.text and "&amp;" not in email.text


def test_example_templates_cover_the_example_sequences(tmp_path: Path) -> None:
    templates = example_templates(tmp_path)
    templates.load()
    assert templates.names() == sorted(SEQUENCE_TEMPLATES)


def test_load_reports_every_fault_with_file_and_line(tmp_path: Path) -> None:
    templates = make(tmp_path, {
        "a.subject.txt": "ok", "a.html": "<p>\n\n{{ x + }}</p>",
        "b.html": "<p>{{ x }}</p>",  # no subject
        "c.subject.txt": "ok", "c.html": "{% include '_missing.html' %}",
        "d.subject.txt": "{{ x ", "d.html": "<p></p>",
    })
    with pytest.raises(InvalidTemplates) as caught:
        templates.load()
    text = str(caught.value)
    assert "a.html:3:" in text
    assert "b.subject.txt: template 'b' needs this file" in text
    assert "c.html: refers to '_missing.html'" in text
    assert "d.subject.txt:1:" in text
    assert len(caught.value.problems) == 4


def test_missing_template_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="no template 'nope'"):
        one(tmp_path, "<p></p>").render("nope", cart_context(), links())


def test_runtime_error_names_file_and_line(tmp_path: Path) -> None:
    templates = one(tmp_path, "<p>\n\n{{ 1 // 0 }}</p>")
    with pytest.raises(RenderError, match=r"t\.html:3: ZeroDivisionError"):
        templates.render("t", cart_context(), links())


def test_empty_subject_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="subject renders empty"):
        one(tmp_path, "<p></p>", subject="{{ nothing }}").render("t", cart_context(), links())


def test_html_to_text_keeps_structure() -> None:
    assert html_to_text("<div>a</div><div>b</div><table><tr><td>c</td><td>d</td></tr></table>"
                        "<script>x()</script>") == "a\nb\n\ncd\n"


def test_load_again_reads_changed_files(tmp_path: Path) -> None:
    templates = one(tmp_path, "<p>first</p>")
    assert "first" in templates.render("t", cart_context(), links()).html
    (tmp_path / "templates" / "t.html").write_text("<p>second</p>", encoding="utf-8")
    templates.load()
    assert "second" in templates.render("t", cart_context(), links()).html
