"""MIME messages: headers, parts, line endings, deterministic Message-ID, DKIM."""

import base64
import shutil
import subprocess
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path

import dkim
import pytest
from mail_fixtures import cart_context, example_templates, links

from server.mail.message import (
    MAX_URL,
    DkimSigner,
    InvalidMessage,
    build_message,
    envelope_address,
    message_id_for,
)
from server.mail.render import RenderedEmail

SENDER = "Voltline <shop@shop.example.com>"
NOW_MS = 1_790_000_000_123
UNSUBSCRIBE = "https://mail.shop.example.com/u/" + "A" * 90  # longer than a folded line


def rendered(subject: str = "Your cart is waiting") -> RenderedEmail:
    html = "<html><body><p>" + "Très bien " * 30 + "</p>\n<p>line\r\ntwo\rthree</p></body></html>"
    return RenderedEmail(subject, html, "Très bien\nsecond line\r\nthird\n" + "x" * 200)


def build(**overrides: object) -> bytes:
    options: dict[str, object] = {"sender": SENDER, "to": "Ann <ann@example.org>",
                                  "message_key": "cart-recovery/user-1/1/0",
                                  "unsubscribe_url": UNSUBSCRIBE, "now_ms": NOW_MS}
    options.update(overrides)
    email = options.pop("rendered", rendered())
    assert isinstance(email, RenderedEmail)
    return build_message(email, **options)  # type: ignore[arg-type]


def parse(data: bytes) -> EmailMessage:
    msg = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(msg, EmailMessage)
    return msg


def test_headers_and_parts() -> None:
    msg = parse(build())
    assert msg["From"] == SENDER and msg["To"] == "Ann <ann@example.org>"
    assert msg["Subject"] == "Your cart is waiting"
    assert parsedate_to_datetime(msg["Date"]) == datetime(2026, 9, 21, 14, 13, 20, tzinfo=UTC)
    assert msg["MIME-Version"] == "1.0"
    assert msg["Message-ID"] == message_id_for("cart-recovery/user-1/1/0", SENDER)
    assert msg["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    text = parts[0].get_content().replace("\r\n", "\n")
    assert text == "Très bien\nsecond line\nthird\n" + "x" * 200 + "\n"
    assert "Très bien Très bien" in parts[1].get_content()
    assert not msg.defects and not any(p.defects for p in parts)


def test_lines_end_in_crlf_and_stay_short() -> None:
    data = build()
    assert b"\n" not in data.replace(b"\r\n", b"") and b"\r" not in data.replace(b"\r\n", b"")
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    assert data.isascii()


def test_message_id_is_deterministic() -> None:
    one = message_id_for("k-1", SENDER)
    assert one == message_id_for("k-1", "other <x@shop.example.com>")
    assert one != message_id_for("k-2", SENDER)
    assert one.startswith("<") and one.endswith("@shop.example.com>") and len(one) == 32 + 19
    assert message_id_for("k-1", SENDER, "mail.example.net").endswith("@mail.example.net>")
    assert parse(build(message_key="k-1"))["Message-ID"] == one
    assert parse(build(message_key="k-1", domain="mail.example.net"))["Message-ID"] == \
        message_id_for("k-1", SENDER, "mail.example.net")


def test_non_ascii_subject_is_encoded_words() -> None:
    data = build(rendered=rendered("Ihr Warenkorb wartet, Zoë 🛒"))
    raw_subject = next(line for line in data.split(b"\r\n") if line.startswith(b"Subject:"))
    assert b"=?utf-8?" in raw_subject
    assert parse(data)["Subject"] == "Ihr Warenkorb wartet, Zoë 🛒"


@pytest.mark.parametrize("to", ["not-an-address", "ann@example.org\r\nBcc: x@evil.example",
                                "", "@example.org"])
def test_bad_recipient_is_refused(to: str) -> None:
    with pytest.raises(InvalidMessage):
        build(to=to)


# ---- addresses: what goes on the envelope is the address given, or nothing ------------------

@pytest.mark.parametrize(("address", "mailbox"), [
    ("ann@example.org", "ann@example.org"),
    ("Ann <ann@example.org>", "ann@example.org"),
    ("<ann@example.org>", "ann@example.org"),
    ("o'neil+tag@mail.example.co.uk", "o'neil+tag@mail.example.co.uk"),
    ('"ann smith"@example.org', '"ann smith"@example.org'),
    ("ann@[192.0.2.1]", "ann@[192.0.2.1]"),
    ("ann@exämple.org", "ann@exämple.org"),
    ("用户@例子.广告", "用户@例子.广告"),
    ("x" * 64 + "@example.org", "x" * 64 + "@example.org"),
])
def test_a_mailbox_is_its_own_envelope_address(address: str, mailbox: str) -> None:
    assert envelope_address(address) == mailbox


@pytest.mark.parametrize(("address", "why"), [
    ("ann\u2028@example.org", "control or line-break"),  # a Unicode line separator
    ("ann\x85@example.org", "control or line-break"),  # NEL
    ("ann\x00@example.org", "control or line-break"),
    ("ann\u202e@example.org", "control or line-break"),  # a bidi override
    ("ann@example.org\tx", "control or line-break"),
    ('a"b@example.org', "not one email address"),
    ("a(b)@example.org", "not one email address"),  # parseaddr would drop "(b)"
    ("a,b@example.org", "not one email address"),
    ("ann@example.org>", "not one email address"),
    ("a..b@example.org", "not an email address"),
    (".ann@example.org", "not an email address"),
    ("ann@example.org.", "no valid domain"),
    ("ann@-example.org", "no valid domain"),
    ("x" * 65 + "@example.org", "local part over 64"),
    ("ann@" + "d" * 64 + ".org", "label over 63"),
    ("ann@" + ".".join(["d" * 60] * 5), "domain over 255"),
    ("x" * 64 + "@" + ".".join(["d" * 63] * 3) + ".org", "over 254"),
])
def test_an_address_that_is_not_a_mailbox_is_refused_with_why(address: str, why: str) -> None:
    with pytest.raises(InvalidMessage, match=why):
        envelope_address(address)
    with pytest.raises(InvalidMessage, match=why):
        build(to=address)


def test_a_non_ascii_address_is_written_in_utf8() -> None:
    data = build(to="用户@例子.广告", rendered=rendered("Hello 用户"))
    assert "To: 用户@例子.广告\r\n".encode() in data
    msg = parse(data)
    assert msg["To"] == "用户@例子.广告" and msg["Subject"] == "Hello 用户"
    head = data.split(b"\r\n\r\n")[0]
    assert head.replace("用户@例子.广告".encode(), b"").isascii()  # the address alone is 8-bit


# ---- folding: 78 where there is a space, never a line over 998 ------------------------------

SHORT_URL = "https://u.example/u/t"  # real ones are one word longer than 78: tested apart


def header_lines(data: bytes) -> list[bytes]:
    return data.split(b"\r\n\r\n")[0].split(b"\r\n")


def test_long_headers_fold_at_78_and_read_back_whole() -> None:
    subject = "Your cart misses you " * 12
    name = "Voltline Premium Electronics Outlet, Customer Care Team of the Very Long Name"
    data = build(rendered=rendered(subject), sender=f'"{name}" <shop@shop.example.com>',
                 to="Zoë Ünal-Öztürk de la Montagne-Fernández <zoe@example.org>",
                 unsubscribe_url=SHORT_URL)
    assert all(len(line) <= 78 for line in header_lines(data)), header_lines(data)
    msg = parse(data)
    assert msg["Subject"] == " ".join(subject.split())
    assert msg["From"].addresses[0].display_name == name
    assert msg["From"].addresses[0].addr_spec == "shop@shop.example.com"
    assert msg["To"].addresses[0].addr_spec == "zoe@example.org"
    assert not msg.defects


@pytest.mark.parametrize("subject", ["x" * 1500, "Zoë " + "ü" * 800, "a\x00b\x1bc " * 3,
                                     "=?utf-8?q?not_an_encoded_word?="])
def test_a_subject_that_cannot_fold_as_text_becomes_encoded_words(subject: str) -> None:
    data = build(rendered=rendered(subject), unsubscribe_url=SHORT_URL)
    assert all(len(line) <= 78 for line in header_lines(data))
    assert parse(data)["Subject"] == " ".join(subject.split())


def test_a_long_unsubscribe_url_stays_whole_until_it_cannot_fit_a_line() -> None:
    fits = "https://mail.shop.example.com/u/" + "A" * 900
    data = build(unsubscribe_url=fits)
    assert f"List-Unsubscribe: <{fits}>\r\n".encode() in data
    long = "https://mail.shop.example.com/u/" + "B" * 3000  # a very long user id's token
    data = build(unsubscribe_url=long)
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    assert all(len(line) <= 78 for line in header_lines(data))
    folded = parse(data)["List-Unsubscribe"]
    assert "".join(folded.split()) == f"<{long}>"  # RFC 2369: whitespace in <> is ignored


def test_an_unsubscribe_url_no_web_server_takes_is_refused() -> None:
    with pytest.raises(InvalidMessage, match="unsubscribe URL"):
        build(unsubscribe_url="https://mail.shop.example.com/u/" + "A" * MAX_URL)


def test_example_template_builds_a_clean_message(tmp_path: Path) -> None:
    email = example_templates(tmp_path).render("cart-reminder", cart_context(), links())
    msg = parse(build(rendered=email, unsubscribe_url=links().unsubscribe()))
    assert msg["Subject"] == "Still thinking about the Aero Pro 14 Laptop?"
    html = msg.get_body(preferencelist=("html",))
    assert html is not None and "Only 3 left" in html.get_content()


@pytest.fixture(scope="module")
def rsa_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A fresh RSA key file and its DNS TXT record (`v=DKIM1; k=rsa; p=...`)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is not installed: run ./scripts/setup (it installs it)")
    key = tmp_path_factory.mktemp("dkim") / "private.pem"
    subprocess.run([openssl, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", str(key)], check=True, capture_output=True)
    public = subprocess.run([openssl, "pkey", "-in", str(key), "-pubout", "-outform", "DER"],
                            check=True, capture_output=True).stdout
    return key, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def dns(record: bytes, name: str = "pw2026._domainkey.shop.example.com."):
    def lookup(qname: bytes, timeout: int = 5) -> bytes | None:
        return record if qname.decode() == name else None
    return lookup


def test_dkim_signature_verifies(rsa_key: tuple[Path, bytes]) -> None:
    key_file, record = rsa_key
    signer = DkimSigner.from_files("pw2026", key_file, SENDER)
    data = build(dkim=signer)
    assert data.startswith(b"DKIM-Signature: ")
    assert dkim.verify(data, dnsfunc=dns(record))
    signed = parse(data)["DKIM-Signature"]
    assert "a=rsa-sha256" in signed and "c=relaxed/relaxed" in signed
    assert "d=shop.example.com" in signed and "s=pw2026" in signed
    covered = signed.split("h=")[1].split(";")[0].replace(" ", "").lower().split(":")
    for header in ("from", "to", "subject", "date", "message-id", "mime-version", "content-type",
                   "list-unsubscribe", "list-unsubscribe-post"):
        assert header in covered


def test_dkim_signs_folded_and_utf8_headers(rsa_key: tuple[Path, bytes]) -> None:
    key_file, record = rsa_key
    data = build(dkim=DkimSigner.from_files("pw2026", key_file, SENDER), to="用户@例子.广告",
                 unsubscribe_url="https://mail.shop.example.com/u/" + "C" * 2000,
                 rendered=rendered("word " * 40))
    assert dkim.verify(data, dnsfunc=dns(record))


def test_dkim_detects_tampering(rsa_key: tuple[Path, bytes]) -> None:
    key_file, record = rsa_key
    data = build(dkim=DkimSigner.from_files("pw2026", key_file, SENDER))
    assert not dkim.verify(data.replace(b"Your cart is waiting", b"Your cart is WAITING"),
                           dnsfunc=dns(record))
    assert not dkim.verify(data.replace(b"second line", b"second LINE"), dnsfunc=dns(record))


def test_dkim_key_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidMessage, match="not a PEM RSA private key"):
        DkimSigner("s", "shop.example.com", b"-----BEGIN PRIVATE KEY-----\nnope\n-----END")
    with pytest.raises(InvalidMessage, match="cannot read DKIM key"):
        DkimSigner.from_files("s", tmp_path / "missing.pem", SENDER)
