"""Link tokens: round trips, and every kind of tampering refused."""

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.errors import PulsewireError
from server.mail.tokens import InvalidToken, LinkSigner

SECRET = b"test-secret-0123456789abcdef"
SIGNER = LinkSigner(SECRET)
CLICK = {"user": "u-42", "message": "m-7", "url": "https://shop.example.com/p?a=1&b=2"}


@pytest.mark.parametrize(("kind", "payload"), [
    ("open", {"user": "u-42", "message": "m-7"}),
    ("click", CLICK),
    ("unsub", {"user": "u-42", "email": "zoë@example.org", "message": "m-7"}),
    ("open", {}),
])
def test_round_trip(kind: str, payload: dict[str, str]) -> None:
    token = SIGNER.sign(kind, payload)
    assert token.isascii() and all(c.isalnum() or c in "-_" for c in token)
    assert SIGNER.verify(kind, token) == payload


def test_tokens_are_stable_and_keys_order_free() -> None:
    reordered = dict(reversed(list(CLICK.items())))
    assert SIGNER.sign("click", CLICK) == SIGNER.sign("click", reordered)


def test_token_is_payload_plus_128_bit_tag_and_no_secret() -> None:
    token = SIGNER.sign("click", CLICK)
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    encoded = sum(1 + len(k) + 1 + len(v.encode()) for k, v in CLICK.items())
    assert len(raw) == 1 + encoded + 16  # version byte, payload, tag: nothing else
    assert SECRET not in raw and CLICK["url"].encode() in raw


def test_wrong_kind_is_refused() -> None:
    token = SIGNER.sign("open", {"user": "u", "message": "m"})
    with pytest.raises(InvalidToken):
        SIGNER.verify("click", token)
    with pytest.raises(InvalidToken):
        SIGNER.verify("unsub", token)


def test_other_secret_is_refused() -> None:
    token = SIGNER.sign("open", {"user": "u", "message": "m"})
    with pytest.raises(InvalidToken):
        LinkSigner(b"another-secret-0123456789").verify("open", token)


@pytest.mark.parametrize("garbage", [
    "", "a", "ab", "!!!!", "AAAA", "A" * 200, "AQ==", "é" * 30, "abc def", "a.b.c",
    SIGNER.sign("open", {"user": "u", "message": "m"}) + "=",
    " " + SIGNER.sign("open", {"user": "u", "message": "m"}),
])
def test_garbage_is_refused(garbage: str) -> None:
    with pytest.raises(InvalidToken):
        SIGNER.verify("open", garbage)


def test_invalid_token_is_a_pulsewire_error() -> None:
    assert issubclass(InvalidToken, PulsewireError)


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        LinkSigner(b"short")
    assert "short" not in repr(LinkSigner(b"0123456789abcdef-secret"))


@given(st.data())
def test_any_one_character_change_fails(data: st.DataObject) -> None:
    payload = data.draw(st.dictionaries(st.sampled_from(["user", "message", "url", "email"]),
                                        st.text(max_size=40), max_size=4))
    token = SIGNER.sign("click", payload)
    at = data.draw(st.integers(0, len(token) - 1))
    new = data.draw(st.characters().filter(lambda c: c != token[at]))
    with pytest.raises(InvalidToken):
        SIGNER.verify("click", token[:at] + new + token[at + 1:])


@given(st.data())
def test_any_one_byte_change_fails(data: st.DataObject) -> None:
    token = SIGNER.sign("click", CLICK).encode("ascii")
    at = data.draw(st.integers(0, len(token) - 1))
    new = data.draw(st.integers(0, 255).filter(lambda b: b != token[at]))
    changed = token[:at] + bytes([new]) + token[at + 1:]
    with pytest.raises(InvalidToken):
        SIGNER.verify("click", changed.decode("latin-1"))


@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
               max_size=120))
def test_random_base64url_text_is_refused(text: str) -> None:
    with pytest.raises(InvalidToken):
        SIGNER.verify("click", text)


def test_truncated_or_extended_tokens_fail() -> None:
    token = SIGNER.sign("click", CLICK)
    for bad in (token[:-1], token[1:], token + "A", token[:-4]):
        with pytest.raises(InvalidToken):
            SIGNER.verify("click", bad)
