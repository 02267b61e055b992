"""Webhook signatures verify with the Standard Webhooks reference library (`standardwebhooks`),
with every secret of an endpoint during a rotation; endpoints outside the allowlist or on
private, loopback or link-local addresses are refused when the config loads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from server.config import ConfigError, load_settings
from server.webhooks import check_endpoint, new_secret, parse_secret, signed_headers

BODY = json.dumps({"type": "email.sent", "timestamp": "2026-12-08T10:00:00Z",
                   "data": {"user": {"id": "u1"}}}).encode()


def test_the_reference_library_verifies_every_secret_of_a_rotation() -> None:
    old, new = new_secret(), new_secret()
    now = int(datetime.now(UTC).timestamp())
    headers = signed_headers([parse_secret(old), parse_secret(new)], "msg_1", now, BODY)
    for secret in (old, new):
        assert Webhook(secret).verify(BODY, headers.as_dict()) == json.loads(BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers.as_dict())
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(BODY + b" ", headers.as_dict())
    assert headers.signature.count("v1,") == 2


def test_the_signature_is_the_library_s_own() -> None:
    secret = new_secret()
    moment = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)
    ours = signed_headers([parse_secret(secret)], "msg_2", int(moment.timestamp()), BODY)
    assert ours.signature == Webhook(secret).sign("msg_2", moment, BODY)


@pytest.mark.parametrize(("text", "says"), [
    ("secret", "starts with 'whsec_'"), ("whsec_!!!", "base64"), ("whsec_AAAA", "24 to 64"),
])
def test_a_bad_secret_is_refused_without_showing_it(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says) as err:
        parse_secret(text)
    assert text not in str(err.value) or text == "secret"


def _resolving(address: str):
    return lambda _host: [address]


@pytest.mark.parametrize(("url", "address", "problem"), [
    ("https://hooks.example.com/in", "93.184.216.34", ""),
    ("https://crm.example.com/in", "93.184.216.34", ""),  # *.example.com
    ("https://evil.test/in", "93.184.216.34", "not in [webhooks] allow_hosts"),
    ("https://hooks.example.com/in", "127.0.0.1", "private, loopback or reserved"),
    ("https://hooks.example.com/in", "10.0.0.7", "private, loopback or reserved"),
    ("https://hooks.example.com/in", "169.254.169.254", "private, loopback or reserved"),
    ("https://hooks.example.com/in", "::1", "private, loopback or reserved"),
    ("http://localhost:9000/in", "127.0.0.1", ""),  # listed in allow_private
    ("ftp://hooks.example.com/in", "93.184.216.34", "http or https"),
    ("https://user:pw@hooks.example.com/in", "93.184.216.34", "no user or password"),
])
def test_endpoints_are_checked_against_the_allowlist_and_the_address(url: str, address: str,
                                                                      problem: str) -> None:
    found = check_endpoint(url, ["hooks.example.com", "*.example.com", "localhost"],
                           ["localhost"], _resolving(address))
    assert (problem in found) if problem else found == ""


def test_a_config_naming_a_private_receiver_is_refused_at_load(tmp_path: Path) -> None:
    secret = new_secret()
    config = tmp_path / "server.toml"
    config.write_text(f"""
[webhooks]
allow_hosts = ["127.0.0.1"]
[[webhooks.endpoints]]
name = "crm"
url = "http://127.0.0.1:9000/hooks"
secret = "{secret}"
events = ["email.sent"]
""")
    with pytest.raises(ConfigError, match=r"webhooks\.endpoints\[0\]\.url: .*private") as err:
        load_settings(config, {})
    assert secret not in str(err.value)
    config.write_text(config.read_text().replace(
        'allow_hosts = ["127.0.0.1"]',
        'allow_hosts = ["127.0.0.1"]\nallow_private = ["127.0.0.1"]'))
    (endpoint,) = load_settings(config, {}).webhooks.endpoints
    assert (endpoint.name, endpoint.events) == ("crm", frozenset({"email.sent"}))
    assert secret not in repr(endpoint)
