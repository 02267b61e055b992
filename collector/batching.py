"""Turning collector events into wire Batches.

How this works: events are encoded as they arrive into the one open batch: its string table
starts with the page path the host was on when the batch opened (index 0 costs nothing on the
wire), its `base_time_ms` is the first event's time and each event's `dt_ms` is the delta from
the one before (a clock that went back gives 0: events stay in arrival order). The open batch
is sealed when it holds `max_events`, when the next event would push it past `max_bytes` (the
64 KB fetch keepalive limit, counted exactly from field sizes), when its oldest event is
`max_age_ms` old at a `tick`, or at `flush`. Sealing takes the next seq and the context, and
puts the batch into the retry queue, where it stays until acked. `tick` hands out the batches
sealed since the last hand-out; `flush` and `resend` hand out everything unacked. Every batch
handed out gets `sent_at_ms` set to that moment.

What is not repeated, since every batch is paid for in bytes: the whole context goes in the
first batch this batcher seals (a page load's first), later ones carry only the device class
when there is one (the server must see a bot in every batch). The identity goes only where the
identify event is (or, given by `set_identity`, in the next batch): the server remembers which
user a device became and routes its later batches there, so repeating the email and its
signature (about 100 bytes) would buy nothing.

A resumable batcher (`resumable=True`, for hosts that read the server's acks) goes further: see
collector/resume.py. Its batches count on the strings the server keeps for the stream, record how
many in `strings_from`, and go out timed by their age, resumed once an ack gave a token.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

from collector.events import Event, StringTable, decode_event, encode_event
from collector.gen.pulsewire.v1 import batch_pb2, events_pb2
from collector.resume import ResumeState
from collector.retry_queue import MAX_BATCHES, RetryQueue, Storage

COLLECTOR_NAME = "python/0.1.0"
MAX_EVENTS = 100
MAX_AGE_MS = 5_000
MAX_BYTES = 64 * 1024
_UINT32_MAX = 2**32 - 1
_INT_FIELD_MAX_BYTES = 11  # tag + a 10-byte varint: the most seq, base_time or sent_at take
_INT_FIELDS = 4  # seq, base_time_ms, sent_at_ms, stream (resumable: seq, stream, age_ms)
_FLAG_FIELD_BYTES = 2  # resumable

DeviceClass = Literal["", "desktop", "mobile", "tablet", "bot"]
_DEVICE_CLASSES: dict[str, int] = {"": 0, "desktop": 1, "mobile": 2, "tablet": 3, "bot": 4}


@dataclass(frozen=True, slots=True)
class BatchContext:
    """Facts about the device that hold for every batch."""

    timezone: str = ""
    locale: str = ""
    viewport_width: int = 0
    viewport_height: int = 0
    device_class: DeviceClass = ""
    currency: str = ""
    collector: str = COLLECTOR_NAME

    def to_wire(self) -> batch_pb2.Context:
        return batch_pb2.Context(
            timezone=self.timezone,
            locale=self.locale,
            viewport_width=self.viewport_width,
            viewport_height=self.viewport_height,
            device_class=_DEVICE_CLASSES[self.device_class],  # type: ignore[arg-type]
            currency=self.currency,
            collector=self.collector,
        )


@dataclass(frozen=True, slots=True)
class BatchLimits:
    max_events: int = MAX_EVENTS
    max_age_ms: int = MAX_AGE_MS
    max_bytes: int = MAX_BYTES
    max_queued_batches: int = MAX_BATCHES


def _varint_len(n: int) -> int:
    return max(1, (n.bit_length() + 6) // 7)


def _field_len(payload_bytes: int) -> int:
    """Bytes of a length-delimited field numbered 1-15 whose payload is `payload_bytes`."""
    return 1 + _varint_len(payload_bytes) + payload_bytes


class _OpenBatch:
    def __init__(self, page_path: str, at_ms: int, kept: list[str]) -> None:
        """`kept`: the strings the server keeps for the stream, which this batch counts on."""
        self.strings = StringTable.carrying(kept, page_path)
        self.kept = len(kept)
        self.events: list[events_pb2.Event] = []
        self.base_time_ms = at_ms
        self.last_ms = at_ms
        self.body_bytes = sum(_field_len(len(s.encode())) for s in self.strings.strings)


class Batcher:
    def __init__(
        self,
        site_key: str,
        device_id: str,
        *,
        stream: int = 0,
        context: BatchContext | None = None,
        storage: Storage | None = None,
        limits: BatchLimits | None = None,
        resumable: bool = False,
    ) -> None:
        self.limits = limits or BatchLimits()
        self.queue = RetryQueue(
            device_id, storage, stream=stream, cap=self.limits.max_queued_batches
        )
        self.resume = ResumeState(stream) if resumable else None
        self._storage = storage
        self._resume_key = f"pulsewire.{device_id}.resume"
        if self.resume is not None and storage is not None:
            self.resume.load(_read(storage, self._resume_key))
        self.oversize_events = 0
        self._site_key = site_key
        self._device_id = device_id
        self._context = (context or BatchContext()).to_wire()
        self._context_later = batch_pb2.Context(device_class=self._context.device_class)
        self._context_sent = False
        self._identity: batch_pb2.Identity | None = None
        self._open: _OpenBatch | None = None
        self._unsent: list[int] = []

    def set_identity(self, user_id: str, email: str, signature: str) -> None:
        """Who the visitor is, for a host that knows it without an identify event (an app
        started by a signed-in user): it goes in the next batch sealed, once."""
        self._identity = batch_pb2.Identity(user_id=user_id, email=email, signature=signature)

    def add(self, event: Event, page_path: str) -> None:
        if self._open is not None and event.at_ms - self._open.last_ms > _UINT32_MAX:
            self._seal()
        if self._open is None:
            self._open = self._opened(page_path, event.at_ms)
        if not self._append(self._open, event):
            self._seal()
            self._open = self._opened(page_path, event.at_ms)
            if not self._append(self._open, event):
                self._open = None
                self.oversize_events += 1
                return
        if len(self._open.events) >= self.limits.max_events:
            self._seal()

    def next_deadline_ms(self) -> int | None:
        """When the open batch becomes due; None when nothing is buffered."""
        if self._open is None:
            return None
        return self._open.base_time_ms + self.limits.max_age_ms

    def tick(self, now_ms: int) -> list[batch_pb2.Batch]:
        deadline = self.next_deadline_ms()
        if deadline is not None and now_ms >= deadline:
            self._seal()
        batches = [b for seq in self._unsent if (b := self.queue.get(seq)) is not None]
        self._unsent.clear()
        return [self._stamped(b, now_ms) for b in batches]

    def flush(self, now_ms: int) -> list[batch_pb2.Batch]:
        self._seal()
        return self.resend(now_ms)

    def resend(self, now_ms: int) -> list[batch_pb2.Batch]:
        self._unsent.clear()
        return [self._stamped(b, now_ms) for b in self.queue.pending()]

    def ack(self, seq: int, stream: int | None = None, *, resume: int = 0,
            strings_kept: int = 0) -> bool:
        """Forget an acked batch; what the ack says the server keeps is learnt first."""
        if resume and self.resume is not None and stream in (None, self.queue.stream):
            acked = self.queue.get(seq)
            if acked is not None and self.resume.learn(resume, acked, strings_kept):
                self._save_resume()
        return self.queue.ack(seq, stream)

    def restamp(self, wire: batch_pb2.Batch, handed_ms: int, now_ms: int) -> None:
        """Stamp a batch handed out at `handed_ms` with the moment it leaves: its sent_at_ms,
        or, timed by its age, that age grown by the wait since."""
        if self.resume is None:
            wire.sent_at_ms = now_ms
        else:
            wire.age_ms = min(wire.age_ms + max(0, now_ms - handed_ms), _UINT32_MAX)

    def queued_stream(self, wire: batch_pb2.Batch) -> int:
        """The stream of the queued batch that `wire`, just handed out, was made from."""
        return self.resume.queued_stream(wire) if self.resume is not None else wire.stream

    def _save_resume(self) -> None:
        if self._storage is not None and self.resume is not None:
            try:
                self._storage.set(self._resume_key, self.resume.to_text())
            except Exception:  # full or refused: the next page load starts in full
                self.queue.storage_failures += 1

    def pending(self) -> list[batch_pb2.Batch]:
        return self.queue.pending()

    def _append(self, batch: _OpenBatch, event: Event) -> bool:
        """Encode `event` into `batch` unless that would pass the byte cap."""
        strings_before = len(batch.strings)
        wire = encode_event(event, batch.strings)
        wire.dt_ms = max(0, event.at_ms - batch.last_ms)
        added = _field_len(wire.ByteSize()) + sum(
            _field_len(len(s.encode())) for s in batch.strings.strings[strings_before:]
        )
        if self._header_bytes() + batch.body_bytes + added > self.limits.max_bytes:
            batch.strings.truncate(strings_before)
            return False
        batch.events.append(wire)
        batch.body_bytes += added
        batch.last_ms = max(batch.last_ms, event.at_ms)
        return True

    def _header_bytes(self) -> int:
        head = batch_pb2.Batch(
            site_key=self._site_key,
            device_id=self._device_id,
            identity=self._identity,
            context=self._context,
        )
        flag = _FLAG_FIELD_BYTES if self.resume is not None else 0
        return int(head.ByteSize()) + _INT_FIELDS * _INT_FIELD_MAX_BYTES + flag

    def sealed_apart(
        self, extra: list[Event], page_path: str, seq: int, now_ms: int
    ) -> batch_pb2.Batch | None:
        """The open batch plus `extra`, sealed under `seq` without touching the open batch, the
        queue or the counter: what a host that may vanish without notice keeps ready to send."""
        draft = copy.deepcopy(self._open)
        for event in extra:
            if draft is None:
                draft = self._opened(page_path, event.at_ms)
            if not self._append(draft, event):
                break
        if draft is None or not draft.events:
            return None
        return self._stamped(self._sealed(draft, seq), now_ms)

    def _sealed(self, batch: _OpenBatch, seq: int) -> batch_pb2.Batch:
        sealed = batch_pb2.Batch(
            site_key=self._site_key,
            device_id=self._device_id,
            seq=seq,
            stream=self.queue.stream,
            base_time_ms=batch.base_time_ms,
            strings=batch.strings.strings,
            events=batch.events,
        )
        if self.resume is not None:
            sealed.resumable = True
            sealed.strings_from = batch.kept
        context = self._context_later if self._context_sent else self._context
        if context.ByteSize():
            sealed.context.CopyFrom(context)
        return sealed

    def _seal(self) -> None:
        batch, self._open = self._open, None
        if batch is None or not batch.events:
            return
        sealed = self._sealed(batch, self.queue.next_seq())
        if self._identity is not None:
            sealed.identity.CopyFrom(self._identity)
            self._identity = None
        self._context_sent = True
        self.queue.push(sealed)
        self._unsent.append(sealed.seq)

    def _opened(self, page_path: str, at_ms: int) -> _OpenBatch:
        if self.resume is None:
            return _OpenBatch(page_path, at_ms, [])
        self.resume.expire(at_ms)
        return _OpenBatch(page_path, at_ms, self.resume.kept)

    def _stamped(self, batch: batch_pb2.Batch, now_ms: int) -> batch_pb2.Batch:
        """The batch as it goes out at `now_ms` (a copy: the queue keeps its own)."""
        if self.resume is not None:
            return self.resume.wire(batch, now_ms)
        batch.sent_at_ms = now_ms
        out = batch_pb2.Batch()
        out.CopyFrom(batch)
        return out


def _read(storage: Storage, key: str) -> str | None:
    try:
        return storage.get(key)
    except Exception:  # storage refused: as if nothing were saved
        return None


def decode_batch(batch: batch_pb2.Batch) -> list[Event]:
    """The collector events a batch carries, with absolute times (the inverse of batching)."""
    strings = list(batch.strings)
    at_ms = int(batch.base_time_ms)
    out: list[Event] = []
    for wire in batch.events:
        at_ms += wire.dt_ms
        out.append(decode_event(wire, strings, at_ms))
    return out
