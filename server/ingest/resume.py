"""Resumed batches: what the server keeps of a stream so that its later batches need not say it.

How this works: a `resumable` batch, once accepted, leaves a `ResumedStream` here under a fresh
token of 64 random bits: its site, device, stream, context and string table (when the table is
within MAX_STRINGS and MAX_STRING_BYTES; else none of it). A resumed batch names the token; its
string indexes below `strings_from` are the kept strings, and when `strings_from` equals the
count kept, its own strings are appended to them (within the same bounds). Kept strings are only
ever appended to, never changed, so a client's view of them, a prefix, stays true. Streams are
forgotten least recently used first past `capacity` streams or `budget_bytes` of kept strings
(so memory stays bounded whatever clients send), and once idle for `idle_ms`; a resumed batch
whose token is not held here is refused with FAILED_PRECONDITION (`ResumeUnknown`), and the
client sends it in full. A resumed batch that names a stream of its own (a device's next page
load) carries on from the token's stream: a new stream is kept for it, with the same site,
device and context and the strings its table counted on, under a token of its own. The state
is this process's own: another node, or this one after a restart, answers a resumed batch that
way too.

A token stands for a device in one site's stream, so it is as secret as the device id it hides:
64 random bits from `secrets`, never logged.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass

from collector.gen.pulsewire.v1 import batch_pb2
from server.errors import InvalidBatch, ResumeUnknown

__all__ = ["MAX_STRINGS", "ResumeUnknown", "ResumedStream", "ResumedStreams"]

MAX_STRINGS = 256
MAX_STRING_BYTES = 16_384
CAPACITY = 100_000
BUDGET_BYTES = 64 * 1024 * 1024  # kept strings over all streams, each counted with OVERHEAD
OVERHEAD_BYTES = 512  # what a kept stream costs beside its strings (objects, context)
IDLE_MS = 30 * 60_000


@dataclass(slots=True)
class ResumedStream:
    site_key: str
    device_id: str
    stream: int
    context: batch_pb2.Context
    strings: list[str]
    string_bytes: int
    used_ms: int

    def table(self, batch: batch_pb2.Batch) -> list[str]:
        """The string table of a resumed batch: the kept strings it counts on, then its own."""
        if batch.strings_from > len(self.strings):
            raise ResumeUnknown(f"resume: strings_from {batch.strings_from} is past the "
                                f"{len(self.strings)} strings kept; send the batch in full")
        return self.strings[:batch.strings_from] + list(batch.strings)

    def in_full(self, batch: batch_pb2.Batch) -> batch_pb2.Batch:
        """The resumed batch as the client would have sent it in full: the same batch to
        decode, and to log in the distributed mode, whose owners hold no resumed streams."""
        if batch.site_key or batch.device_id or batch.HasField("context"):
            raise InvalidBatch("resume: a resumed batch leaves out site_key, device_id and "
                               "context")
        full = batch_pb2.Batch()
        full.CopyFrom(batch)
        full.ClearField("resume")
        full.strings_from = 0
        full.site_key, full.device_id = self.site_key, self.device_id
        full.stream = batch.stream or self.stream
        full.context.CopyFrom(self.context)
        del full.strings[:]
        full.strings.extend(self.table(batch))
        return full


class ResumedStreams:
    def __init__(self, capacity: int = CAPACITY, idle_ms: int = IDLE_MS,
                 budget_bytes: int = BUDGET_BYTES) -> None:
        self._streams: OrderedDict[int, ResumedStream] = OrderedDict()
        self._capacity = capacity
        self._idle_ms = idle_ms
        self._budget_bytes = budget_bytes
        self.kept_bytes = 0  # of every stream held: its strings plus OVERHEAD_BYTES

    def __len__(self) -> int:
        return len(self._streams)

    def read(self, batch: batch_pb2.Batch,
             now_ms: int) -> tuple[batch_pb2.Batch, ResumedStream | None]:
        """The batch in full, and the stream it resumed (None: it came in full)."""
        if not batch.resume:
            return batch, None
        earlier = self.get(batch.resume, now_ms)
        return earlier.in_full(batch), earlier

    def answer(self, batch: batch_pb2.Batch, full: batch_pb2.Batch,
               earlier: ResumedStream | None, now_ms: int) -> tuple[int, int]:
        """What the ack of an accepted batch says of its stream (`full` and `earlier` as
        `read` gave them): the resume token, and how many strings are kept under it."""
        if earlier is None:
            return self.keep(batch, now_ms) if batch.resumable else (0, 0)
        if full.stream != earlier.stream:  # a stream of its own, carried on from `earlier`
            return self.keep(full, now_ms)
        return batch.resume, self.extend(earlier, batch)

    def get(self, token: int, now_ms: int) -> ResumedStream:
        kept = self._streams.get(token)
        if kept is None or now_ms - kept.used_ms >= self._idle_ms:
            raise ResumeUnknown("resume: this server holds no such stream; send the batch "
                                "in full")
        kept.used_ms = now_ms
        self._streams.move_to_end(token)
        return kept

    def keep(self, batch: batch_pb2.Batch, now_ms: int) -> tuple[int, int]:
        """Keep what a resumable batch said; its token and how many strings were kept."""
        strings = list(batch.strings)
        size = sum(len(s.encode()) for s in strings)
        if len(strings) > MAX_STRINGS or size > MAX_STRING_BYTES:
            strings, size = [], 0
        context = batch_pb2.Context()
        context.CopyFrom(batch.context)
        token = self._fresh_token()
        self._streams[token] = ResumedStream(batch.site_key, batch.device_id, batch.stream,
                                             context, strings, size, now_ms)
        self.kept_bytes += size + OVERHEAD_BYTES
        self._expire(now_ms)
        return token, len(strings)

    def extend(self, kept: ResumedStream, batch: batch_pb2.Batch) -> int:
        """Append a resumed batch's strings when it counted on all the kept ones and they fit:
        the count kept now, or 0 when its strings were not kept."""
        start, end = batch.strings_from, batch.strings_from + len(batch.strings)
        if start != len(kept.strings):  # kept already by this batch sent before, or not kept
            return end if kept.strings[start:end] == list(batch.strings) else 0
        size = sum(len(s.encode()) for s in batch.strings)
        if (len(kept.strings) + len(batch.strings) > MAX_STRINGS
                or kept.string_bytes + size > MAX_STRING_BYTES):
            return 0
        kept.strings.extend(batch.strings)
        kept.string_bytes += size
        self.kept_bytes += size
        return len(kept.strings)

    def _fresh_token(self) -> int:
        while True:
            token = secrets.randbits(64)
            if token and token not in self._streams:
                return token

    def _expire(self, now_ms: int) -> None:
        while self._streams:
            token, oldest = next(iter(self._streams.items()))
            if (len(self._streams) <= self._capacity and self.kept_bytes <= self._budget_bytes
                    and now_ms - oldest.used_ms < self._idle_ms):
                break
            del self._streams[token]
            self.kept_bytes -= oldest.string_bytes + OVERHEAD_BYTES
