"""The [cluster] section is checked at load, naming the key at fault; log entries survive their
encoding; a shard table answers only for the shards held."""

from __future__ import annotations

import pytest

from server.cluster import ShardTable
from server.cluster.entries import CLAIM, USER, InvalidEntry, LogEntry
from server.config import ConfigError, load_settings
from server.engine import Event
from server.errors import ShardClosed

BASE = {"PULSEWIRE_CLUSTER__ENABLED": "true", "PULSEWIRE_CLUSTER__NODE": "a",
        "PULSEWIRE_SERVER__SHARDS": "4"}


def test_a_cluster_map_gives_each_shard_to_one_node() -> None:
    owners = "{a = [0, 1], b = [2, 3]}"
    settings = load_settings(None, {**BASE, "PULSEWIRE_CLUSTER__OWNERS": owners})
    assert settings.cluster.owners == (("a", (0, 1)), ("b", (2, 3)))
    assert settings.cluster.preferred(2) == "b"


@pytest.mark.parametrize(("owners", "fault"), [
    ("{a = [0, 1], b = [2]}", "cluster.owners: must give each of the 4 shards"),
    ("{a = [0, 1, 2], b = [2, 3]}", "cluster.owners: must give each of the 4 shards"),
    ("{b = [0, 1, 2, 3]}", "cluster.node: 'a' is not a node"),
    ("{a = [0, 1], b = ['2', 3]}", "cluster.owners.b: expected a list of shard numbers"),
    ("[0, 1]", "cluster.owners: must be a table"),
])
def test_a_bad_cluster_map_is_refused_naming_the_key(owners: str, fault: str) -> None:
    with pytest.raises(ConfigError, match=fault.replace("(", r"\(").replace("[", r"\[")):
        load_settings(None, {**BASE, "PULSEWIRE_CLUSTER__OWNERS": owners})


def test_the_embedded_default_needs_no_cluster_map() -> None:
    assert not load_settings(None, {}).cluster.enabled


def test_log_entries_round_trip() -> None:
    entry = LogEntry(CLAIM, "u:42", 1_700_000_000_123, "dev-1", 7 << 32 | 3, b"\x0a\x01x",
                     (Event("email_open", 5, {"message": "m", "n": 2, "ok": True}, "UTC"),),
                     b"state")
    assert LogEntry.decode(entry.encode()) == entry
    passed = entry.passed_on("u:43", None)
    assert (passed.kind, passed.key, passed.merge, passed.batch) == (USER, "u:43", None,
                                                                     entry.batch)
    assert entry.msg_id("b") == f"b.dev-1.{7 << 32 | 3}"


def test_a_foreign_message_is_not_an_entry() -> None:
    with pytest.raises(InvalidEntry):
        LogEntry.decode(b"\x93\x01\x02")


def test_a_shard_table_answers_only_for_shards_held() -> None:
    table = ShardTable(8)
    assert len(table) == 8 and list(table) == [] and 3 not in table
    with pytest.raises(ShardClosed, match="shard 3 is not held by this node"):
        table[3]
