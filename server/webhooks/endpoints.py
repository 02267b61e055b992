"""The receivers a config names (`[[webhooks.endpoints]]`), checked when the config loads so a
sequence file can never make the server call somewhere it should not (server-side request
forgery):

- the URL is http(s) with a host, no user info;
- the host is in `[webhooks] allow_hosts` (exact names; `*.example.com` for its subdomains);
- every address the host resolves to is public, unless the host itself is listed in
  `allow_private` (a receiver on the same machine or network, named on purpose): loopback,
  private, link-local (cloud metadata), multicast, reserved and unspecified addresses are
  refused. Delivery resolves again and checks again, so a name that later points inside is
  refused then too.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlsplit

from server.webhooks.signing import parse_secret

__all__ = ["EVENT_TYPES", "Endpoint", "Resolve", "check_endpoint", "parse_endpoints"]

EVENT_TYPES = frozenset({
    "email.sent", "email.delivered", "email.opened", "email.clicked", "email.bounced",
    "email.unsubscribed", "sequence.entered", "sequence.exited", "sequence.converted",
    "user.identified", "score.changed"})
Resolve = Callable[[str], list[str]]  # host -> its addresses


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    url: str
    keys: tuple[bytes, ...] = field(repr=False)
    events: frozenset[str]


def system_resolve(host: str) -> list[str]:
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, None)})


def check_endpoint(url: str, allow_hosts: Sequence[str], allow_private: Sequence[str],
                   resolve: Resolve = system_resolve) -> str:
    """Why `url` may not be called (empty: it may)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r}: an http or https URL with a host"
    if parts.username or parts.password:
        return f"{url!r}: no user or password in the URL (the signature authenticates)"
    host = parts.hostname.lower()
    if not any(fnmatchcase(host, allowed.lower()) for allowed in allow_hosts):
        return f"{host}: not in [webhooks] allow_hosts"
    if host in (h.lower() for h in allow_private):
        return ""
    try:
        addresses = [host] if _is_address(host) else resolve(host)
    except OSError as err:
        return f"{host}: does not resolve ({err})"
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if not ip.is_global or ip.is_multicast:
            return (f"{host}: {address} is a private, loopback or reserved address "
                    "(list the host in [webhooks] allow_private to allow it)")
    return ""


def parse_endpoints(raw: Any, allow_hosts: Sequence[str], allow_private: Sequence[str],
                    resolve: Resolve = system_resolve) -> tuple[Endpoint, ...]:
    """The `[[webhooks.endpoints]]` tables; ValueError naming the endpoint and the field."""
    if not isinstance(raw, list):
        raise ValueError("webhooks.endpoints: a list of tables")
    found: dict[str, Endpoint] = {}
    for i, table in enumerate(raw):
        where = f"webhooks.endpoints[{i}]"
        if not isinstance(table, Mapping):
            raise ValueError(f"{where}: a table")
        unknown = set(table) - {"name", "url", "secret", "secrets", "events"}
        if unknown:
            raise ValueError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        name, url = str(table.get("name", "")), str(table.get("url", ""))
        if not name or name in found:
            raise ValueError(f"{where}.name: a name of its own")
        problem = check_endpoint(url, allow_hosts, allow_private, resolve)
        if problem:
            raise ValueError(f"{where}.url: {problem}")
        texts = table.get("secrets", [table["secret"]] if "secret" in table else [])
        try:
            keys = tuple(parse_secret(str(text)) for text in texts)
        except ValueError as err:
            raise ValueError(f"{where}.secret: {err}") from None
        if not keys:
            raise ValueError(f"{where}.secret: a whsec_ secret (or secrets, to rotate)")
        events = table.get("events", [])
        if not isinstance(events, list) or not events or not set(events) <= EVENT_TYPES:
            raise ValueError(f"{where}.events: some of {', '.join(sorted(EVENT_TYPES))}")
        found[name] = Endpoint(name, url, keys, frozenset(events))
    return tuple(found.values())


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
