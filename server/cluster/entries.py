"""What travels on a shard's subject: one log entry per accepted batch, or per part of one
passed on to the user's shard.

Kinds (`kind`):
  ANON   an anonymous batch, published to its device's shard: that shard's owner knows whether
         the device has become a user's, and passes the batch on if so;
  CLAIM  an identified batch, published to its device's shard: its owner folds the device's
         anonymous history into the user (or notes the device as the user's), then passes the
         batch on to the user's shard with that history;
  USER   a batch or engine events for the user `key`, on that user's shard; `merge` is an
         anonymous device's engine state to fold in first;
  OP     an operator's call for every shard: `key` is erase, suppress or unsuppress, `device`
         its argument (who, or the address). Through the log, a replay after a restore from
         an older snapshot repeats it, so an erased user never comes back.

A batch entry keeps the wire batch as received (`batch`); its owner decodes it again with the
same receipt time `at_ms`, which gives the same events, and applies it as of `at_ms`, so a
replay decides exactly as the first application did. Events that did not come in a batch
(opens, clicks, bounces) travel as engine events (`events`). Encoded with msgpack.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import msgpack

from server.engine import Event
from server.errors import InvalidEntry

__all__ = ["ANON", "CLAIM", "OP", "USER", "InvalidEntry", "LogEntry"]

ANON, CLAIM, USER, OP = "anon", "claim", "user", "op"
_KINDS = {ANON: 0, CLAIM: 1, USER: 2, OP: 3}
_NAMES = {number: name for name, number in _KINDS.items()}


@dataclass(frozen=True, slots=True)
class LogEntry:
    kind: str
    key: str  # the routing key the entry is for (a device's `d:` key for ANON)
    at_ms: int  # when the batch was accepted
    device: str = ""  # the batch's device and dedup number: (device, seq) is applied once
    seq: int = 0
    batch: bytes = b""  # the wire batch, as received
    events: tuple[Event, ...] = ()
    merge: bytes | None = None
    dedup: tuple[tuple[int, int, int], ...] = ()  # with `merge`: the device's dedup keys

    @property
    def device_key(self) -> str:
        return f"d:{self.device}"

    def msg_id(self, hop: str) -> str:
        """JetStream's duplicate-window id: the same batch published twice is stored once
        (the window is the stream's, so an operator's call, sent to every subject, has none)."""
        return f"{hop}.{self.device}.{self.seq}" if self.device and self.kind != OP else ""

    def passed_on(self, key: str, merge: bytes | None,
                  dedup: tuple[tuple[int, int, int], ...] = ()) -> LogEntry:
        """This entry as it goes on to user `key`'s shard."""
        return replace(self, kind=USER, key=key, merge=merge, dedup=dedup)

    def encode(self) -> bytes:
        packed: bytes = msgpack.packb([
            _KINDS[self.kind], self.key, self.at_ms, self.device, self.seq, self.batch,
            [[e.name, e.at_ms, dict(e.props), e.tz] for e in self.events], self.merge,
            [list(d) for d in self.dedup],
        ], use_bin_type=True)
        return packed

    @classmethod
    def decode(cls, data: bytes) -> LogEntry:
        try:
            fields = msgpack.unpackb(data, raw=False)
            kind, key, at_ms, device, seq, batch, events, merge = fields[:8]
            dedup = fields[8] if len(fields) > 8 else []  # entries written before it had none
            return cls(_NAMES[kind], str(key), int(at_ms), str(device), int(seq), bytes(batch),
                       tuple(_event(e) for e in events), None if merge is None else bytes(merge),
                       tuple((int(q), int(n), int(x)) for q, n, x in dedup))
        except (ValueError, TypeError, KeyError, msgpack.UnpackException) as err:
            raise InvalidEntry(f"not a log entry: {err}") from None


def _event(raw: Any) -> Event:
    name, at_ms, props, tz = raw
    return Event(str(name), int(at_ms), dict(props), tz)
