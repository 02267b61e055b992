"""The settings of the features with a table of their own in the config (`[console]`,
`[segment]`, `[webhooks]`, `[holdout]`, `[scoring]`): their dataclasses and the parsers of the
tables whose shape the generic reader (server/config.py) cannot check. Every fault is a
ConfigError naming the key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from server.errors import ConfigError
from server.sequences.scoring import Scoring
from server.webhooks.endpoints import Endpoint, parse_endpoints

__all__ = ["ConsoleSettings", "HoldoutSettings", "SegmentSettings", "WebhookSettings",
           "accounts_table", "holdout_table", "names_table", "scoring_table", "webhooks_table"]


@dataclass(frozen=True)
class ConsoleSettings:
    """The web console at /console/ (server/web/console/): off unless enabled.

    Login with the operator token, or as one of `accounts` (`[console.accounts] name =
    "scrypt$..."`, hashes from `pulsewire console-password`). `listen` gives the console an
    address of its own (empty: the server's HTTP listener). `allow_edits` lets the Sequences
    page save files (keeping the previous one); `history_file` is the history it backtests."""

    enabled: bool = False
    listen: str = ""
    allow_edits: bool = False
    history_file: str = ""
    session_hours: float = 12.0
    accounts: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class SegmentSettings:
    """The Segment-spec HTTP source (/v1/track, /v1/batch, ...): on unless disabled.
    `events` maps Segment event names to pulsewire's (`[segment.events] "Product Added" =
    "cart_add"`); empty: server/ingest/segment.py's DEFAULT_EVENTS."""

    enabled: bool = True
    events: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class WebhookSettings:
    """`[webhooks]`: the hosts receivers may be on (`allow_hosts`, `*.example.com` for
    subdomains), those of them allowed on private or loopback addresses (`allow_private`), and
    the receivers (`[[webhooks.endpoints]]`: name, url, secret or secrets, events), checked at
    load (server/webhooks/endpoints.py)."""

    allow_hosts: tuple[str, ...] = ()
    allow_private: tuple[str, ...] = ()
    endpoints: tuple[Endpoint, ...] = ()


@dataclass(frozen=True)
class HoldoutSettings:
    """`[holdout] global = "5%"` (or 0.05): the share of users the site keeps out of every
    sequence's email, drawn stably per user, to measure the programme as a whole."""

    global_fraction: float = 0.0


def webhooks_table(values: Mapping[str, Any]) -> WebhookSettings:
    unknown = set(values) - {"allow_hosts", "allow_private", "endpoints"}
    if unknown:
        raise ConfigError(f"unknown key webhooks.{sorted(unknown)[0]}")
    hosts = {k: values.get(k, []) for k in ("allow_hosts", "allow_private")}
    for key, listed in hosts.items():
        if not isinstance(listed, list) or not all(isinstance(h, str) and h for h in listed):
            raise ConfigError(f"webhooks.{key}: a list of host names")
    try:
        endpoints = parse_endpoints(values.get("endpoints", []), hosts["allow_hosts"],
                                    hosts["allow_private"])
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return WebhookSettings(tuple(hosts["allow_hosts"]), tuple(hosts["allow_private"]),
                           endpoints)


def scoring_table(values: Mapping[str, Any]) -> Scoring:
    try:
        return Scoring.model_validate(values)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"scoring.{where}: {first['msg']}") from None


def names_table(where: str, raw: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, Mapping) or not all(
            isinstance(v, str) and v for v in raw.values()):
        raise ConfigError(f"{where}: must be a table of \"Their Name\" = \"our_name\"")
    return tuple((str(k), str(v)) for k, v in raw.items())


def accounts_table(raw: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, Mapping):
        raise ConfigError("console.accounts: must be a table of name = \"scrypt$...\"")
    accounts = []
    for name, hashed in raw.items():
        if not isinstance(hashed, str) or not hashed.startswith("scrypt$"):
            raise ConfigError(f"console.accounts.{name}: expected a password hash from "
                              "`pulsewire console-password`, never the password itself")
        accounts.append((str(name), hashed))
    return tuple(accounts)


def holdout_table(values: Mapping[str, Any]) -> HoldoutSettings:
    unknown = set(values) - {"global"}
    if unknown:
        raise ConfigError(f"unknown key holdout.{sorted(unknown)[0]}")
    raw = values.get("global", 0.0)
    try:
        if isinstance(raw, str) and raw.strip().endswith("%"):
            fraction = float(raw.strip()[:-1]) / 100
        elif isinstance(raw, int | float) and not isinstance(raw, bool):
            fraction = float(raw)
        else:
            raise ValueError
    except ValueError:
        raise ConfigError(f"holdout.global: expected a share like \"5%\" or 0.05, got "
                          f"{raw!r}") from None
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"holdout.global: must be at least 0% and below 100%, got {raw!r}")
    return HoldoutSettings(fraction)
