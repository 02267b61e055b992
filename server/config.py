"""Settings: frozen dataclasses built from a TOML file plus environment overrides.

Every key can be overridden from the environment as PULSEWIRE_<SECTION>__<KEY> (two
underscores between section and key), e.g. PULSEWIRE_SERVER__GRPC_LISTEN=0.0.0.0:50051 or
PULSEWIRE_SMTP__PORT=2525. Values are parsed as TOML values when they can be (numbers, booleans,
arrays), else taken as strings. Sites are a list, so they come from the file, or as a whole from
PULSEWIRE_SITES as a TOML array of inline tables. The environment is passed in (tests pass a
dict); nothing here reads os.environ by itself. Secrets never appear in `repr`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from collector.session import SignalSettings
from server.config_tables import (
    ConsoleSettings,
    HoldoutSettings,
    SegmentSettings,
    WebhookSettings,
    accounts_table,
    holdout_table,
    names_table,
    scoring_table,
    webhooks_table,
)
from server.errors import ConfigError
from server.sequences.scoring import Scoring

__all__ = [
    "ClusterSettings",
    "ConfigError",
    "ConsoleSettings",
    "DispatchSettings",
    "HoldoutSettings",
    "IngestSettings",
    "SegmentSettings",
    "ServerSettings",
    "Settings",
    "SiteSettings",
    "SmtpSettings",
    "WebSettings",
    "WebhookSettings",
    "load_settings",
]

ENV_PREFIX = "PULSEWIRE_"


@dataclass(frozen=True)
class ServerSettings:
    grpc_listen: str = "127.0.0.1:50051"
    http_listen: str = "127.0.0.1:8080"
    public_url: str = "http://127.0.0.1:8080"  # base of tracking and unsubscribe links
    data_dir: str = "./data"
    shards: int = 8
    operator_token: str = field(default="", repr=False)  # admin calls; empty: admin refused
    link_secret: str = field(default="", repr=False)  # signs links; empty: one per data dir


@dataclass(frozen=True)
class SequenceSettings:
    dir: str = "./sequences"


@dataclass(frozen=True)
class TemplateSettings:
    dir: str = "./templates"


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "127.0.0.1"
    port: int = 1025
    sender: str = "Shop <shop@example.com>"
    username: str = ""
    password: str = field(default="", repr=False)
    starttls: bool = False
    timeout_s: float = 10.0
    dkim_selector: str = ""
    dkim_key_file: str = ""  # PEM private key; DKIM signing is on when both are set


@dataclass(frozen=True)
class IngestSettings:
    max_batch_bytes: int = 256 * 1024
    max_events_per_batch: int = 1000
    site_events_per_s: float = 50_000.0  # per-site rate, token bucket
    site_burst_events: int = 100_000
    site_batches_per_s: float = 20_000.0  # per-site rate of batches, whatever they carry
    site_burst_batches: int = 40_000
    refused_keys_per_minute: int = 30  # per peer: wrong site keys or tokens, then a wait
    stream_idle_s: float = 300.0  # a Stream with no batch for this long is ended
    dedup_ttl_s: int = 7 * 86_400


@dataclass(frozen=True)
class DispatchSettings:
    max_attempts: int = 8  # then the email is dead-lettered
    backoff_first_s: float = 1.0
    backoff_max_s: float = 300.0


@dataclass(frozen=True)
class SiteSettings:
    key: str
    secret: str = field(repr=False)
    server_key: str = field(default="", repr=False)  # the Segment source's backend write key
    origins: tuple[str, ...] = ()
    # [sites.signals]: the collector's thresholds and idle time for this site's pages
    signals: SignalSettings = field(default_factory=SignalSettings)
    batch_max_age_ms: int = 5_000  # how long the page's collector holds a batch open


@dataclass(frozen=True)
class WebSettings:
    assets_dir: str = "./build/web"  # scripts/build_web's output: the loader, Pyodide, wheels
    demo_shop: bool = False  # serve the demo shop at /demo/
    demo_catalog: str = "./examples/catalog.csv"
    demo_loader_mode: str = "browser"  # the demo shop's script tag: browser or edge
    demo_loader_endpoint: str = ""  # where edge mode sends raw signals; empty: this server
    mailcatcher_url: str = ""  # shown by the demo shop


@dataclass(frozen=True)
class ClusterSettings:
    """Distributed mode (off by default): shards across processes on NATS JetStream.

    `owners` is the static map, node id -> the shards it owns; with `failover`, a node also
    takes the shards of a node whose leases lapsed, and gives them back when it returns."""

    enabled: bool = False
    node: str = ""  # this process's node id; must be a key of `owners`
    nats_url: str = "nats://127.0.0.1:4222"
    stream: str = "PULSEWIRE"  # JetStream stream of every shard's subject
    replicas: int = 1  # stream and bucket replicas (1 to 5; at most the NATS cluster's size)
    failover: bool = True
    lease_ttl_s: float = 6.0
    snapshot_every_s: float = 60.0
    log_keep_s: float = 7 * 86_400.0  # entries older than this leave the stream
    owners: tuple[tuple[str, tuple[int, ...]], ...] = ()

    def preferred(self, shard: int) -> str:
        """The node the static map gives `shard` to."""
        return next((node for node, shards in self.owners if shard in shards), "")


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = ServerSettings()
    sequences: SequenceSettings = SequenceSettings()
    templates: TemplateSettings = TemplateSettings()
    smtp: SmtpSettings = SmtpSettings()
    ingest: IngestSettings = IngestSettings()
    dispatch: DispatchSettings = DispatchSettings()
    web: WebSettings = WebSettings()
    cluster: ClusterSettings = ClusterSettings()
    holdout: HoldoutSettings = field(default_factory=HoldoutSettings)
    console: ConsoleSettings = field(default_factory=ConsoleSettings)
    segment: SegmentSettings = field(default_factory=SegmentSettings)
    scoring: Scoring | None = None  # [scoring]: the lead score (server/sequences/scoring.py)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    sites: tuple[SiteSettings, ...] = ()

    def site(self, key: str) -> SiteSettings | None:
        return next((s for s in self.sites if s.key == key), None)


def load_settings(path: Path | None, environ: Mapping[str, str]) -> Settings:
    """Settings from `path` (None: defaults only), then overrides from `environ`."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as err:
            raise ConfigError(f"{path}: cannot read: {err.strerror}") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: {err}") from None
    for name, value in environ.items():
        if name == f"{ENV_PREFIX}SITES":
            raw["sites"] = _toml_value(name, value)
        elif name.startswith(ENV_PREFIX) and "__" in name:
            section, key = name[len(ENV_PREFIX):].lower().split("__", 1)
            raw.setdefault(section, {})[key] = _toml_value(name, value)
    return _build(raw)


def _toml_value(name: str, text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        if name == f"{ENV_PREFIX}SITES":
            raise ConfigError(f"{name}: not a TOML array of tables") from None
        return text


def _build(raw: Mapping[str, Any]) -> Settings:
    settings = Settings()
    known = {f.name for f in fields(Settings)}
    for section, values in raw.items():
        if section not in known:
            raise ConfigError(f"unknown section [{section}]")
        if section == "sites":
            settings = replace(settings, sites=tuple(_site(i, s) for i, s in enumerate(values)))
            continue
        if not isinstance(values, Mapping):
            raise ConfigError(f"[{section}] must be a table")
        if section == "holdout":
            settings = replace(settings, holdout=holdout_table(values))
            continue
        if section == "scoring":
            settings = replace(settings, scoring=scoring_table(values))
            continue
        if section == "webhooks":
            settings = replace(settings, webhooks=webhooks_table(values))
            continue
        if section == "cluster" and "owners" in values:
            values = dict(values)
            settings = replace(settings, cluster=replace(
                settings.cluster, owners=_owners(values.pop("owners"))))
        if section == "segment" and "events" in values:
            values = dict(values)
            settings = replace(settings, segment=replace(
                settings.segment, events=names_table("segment.events", values.pop("events"))))
        if section == "console" and "accounts" in values:
            values = dict(values)
            settings = replace(settings, console=replace(
                settings.console, accounts=accounts_table(values.pop("accounts"))))
        current = getattr(settings, section)
        settings = replace(settings, **{section: _section(section, current, values)})
    if settings.server.shards < 1:
        raise ConfigError("server.shards must be at least 1")
    _check_cluster(settings.cluster, settings.server.shards)
    if settings.server.link_secret and len(settings.server.link_secret.encode()) < 16:
        raise ConfigError("server.link_secret must be at least 16 bytes")
    return settings


def _owners(raw: Any) -> tuple[tuple[str, tuple[int, ...]], ...]:
    if not isinstance(raw, Mapping):
        raise ConfigError("cluster.owners: must be a table of node = [shard, ...]")
    owners = []
    for node, shards in raw.items():
        if not isinstance(shards, list) or not all(
                isinstance(s, int) and not isinstance(s, bool) for s in shards):
            raise ConfigError(f"cluster.owners.{node}: expected a list of shard numbers")
        owners.append((str(node), tuple(shards)))
    return tuple(owners)


def _check_cluster(cluster: ClusterSettings, shards: int) -> None:
    if not cluster.enabled:
        return
    listed = sorted(s for _, owned in cluster.owners for s in owned)
    if listed != list(range(shards)):
        raise ConfigError(f"cluster.owners: must give each of the {shards} shards"
                          f" (0 to {shards - 1}) to exactly one node, gives {listed}")
    if cluster.node not in {node for node, _ in cluster.owners}:
        raise ConfigError(f"cluster.node: {cluster.node!r} is not a node of cluster.owners")
    if not 1 <= cluster.replicas <= 5:
        raise ConfigError("cluster.replicas: must be 1 to 5")
    if cluster.lease_ttl_s < 1:
        raise ConfigError("cluster.lease_ttl_s: must be at least 1")
    if cluster.log_keep_s < 10 * cluster.snapshot_every_s:
        raise ConfigError("cluster.log_keep_s: must be at least 10 snapshot periods, so a"
                          " snapshot's position is always still in the stream")


def _section(name: str, current: Any, values: Mapping[str, Any]) -> Any:
    assert is_dataclass(current) and not isinstance(current, type)
    types = {f.name: f.type for f in fields(current)}
    changes = {}
    for key, value in values.items():
        if key not in types:
            raise ConfigError(f"unknown key {name}.{key}")
        changes[key] = _coerce(f"{name}.{key}", types[key], value)
    return replace(current, **changes)


def _coerce(where: str, kind: Any, value: Any) -> Any:
    kind = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == "float" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind == "str":
        return str(value)
    raise ConfigError(f"{where}: expected {kind}, got {value!r}")


def _site(index: int, raw: Any) -> SiteSettings:
    if not isinstance(raw, Mapping) or not raw.get("key") or not raw.get("secret"):
        raise ConfigError(f"sites[{index}]: needs key and secret")
    unknown = set(raw) - {"key", "secret", "origins", "signals", "batch_max_age_ms",
                          "server_key"}
    if unknown:
        raise ConfigError(f"sites[{index}]: unknown key(s) {sorted(unknown)}")
    periods = {}
    for name in ("batch_max_age_ms",):
        if name in raw:
            if not isinstance(raw[name], int) or raw[name] < 1:
                raise ConfigError(f"sites[{index}].{name}: expected a positive int")
            periods[name] = raw[name]
    server_key = str(raw.get("server_key", ""))
    if server_key and (len(server_key) < 16 or server_key == str(raw["key"])):
        raise ConfigError(f"sites[{index}].server_key: a secret of at least 16 characters, "
                          "not the public key")
    return SiteSettings(str(raw["key"]), str(raw["secret"]), server_key,
                        tuple(str(o) for o in raw.get("origins", ())),
                        _signals(f"sites[{index}].signals", raw.get("signals", {})), **periods)


def _signals(where: str, raw: Any) -> SignalSettings:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: must be a table")
    settings = SignalSettings()
    for key, value in raw.items():
        if key not in {f.name for f in fields(SignalSettings)}:
            raise ConfigError(f"unknown key {where}.{key}")
        current = getattr(settings, key)
        if isinstance(current, tuple):
            if not isinstance(value, list) or not all(isinstance(v, int) for v in value):
                raise ConfigError(f"{where}.{key}: expected a list of ints")
            value = tuple(value)
        elif not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{where}.{key}: expected a non-negative int")
        settings = replace(settings, **{key: value})
    return settings
