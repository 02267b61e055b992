"""Batching: flush rules, seq, identity and context, the bounded retry queue, storage."""

from __future__ import annotations

import base64

from collector.batching import BatchContext, Batcher, BatchLimits, decode_batch
from collector.events import Custom, Identify, Scroll
from collector.gen.pulsewire.v1 import batch_pb2
from collector.retry_queue import RetryQueue


class MemoryStorage:
    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        return self.data.get(key)

    def set(self, key: str, value: str) -> None:
        self.data[key] = value


class FullStorage(MemoryStorage):
    def set(self, key: str, value: str) -> None:
        raise RuntimeError("QuotaExceededError")


class RefusingStorage(FullStorage):
    def get(self, key: str) -> str | None:
        raise RuntimeError("SecurityError")


def _batcher(storage: MemoryStorage | None = None, **limits: int) -> Batcher:
    return Batcher("site", "dev", storage=storage, limits=BatchLimits(**limits))


def test_max_age_seals_at_tick() -> None:
    b = _batcher()
    b.add(Scroll(1_000, "/p", 25), "/p")
    b.add(Scroll(3_000, "/p", 50), "/p")
    assert b.next_deadline_ms() == 6_000
    assert b.tick(5_999) == []
    [batch] = b.tick(6_000)
    assert (batch.seq, batch.base_time_ms, batch.sent_at_ms) == (1, 1_000, 6_000)
    assert [e.dt_ms for e in batch.events] == [0, 2_000]
    assert list(batch.strings) == ["/p"]
    assert b.tick(7_000) == []  # handed out once; it stays pending until acked
    assert [p.seq for p in b.pending()] == [1]
    assert b.next_deadline_ms() is None


def test_max_events_seals_and_seq_increases() -> None:
    b = _batcher(max_events=3)
    for i in range(7):
        b.add(Scroll(i, "/p", i), "/p")
    batches = b.tick(10)
    assert [(x.seq, len(x.events)) for x in batches] == [(1, 3), (2, 3)]
    assert [(x.seq, len(x.events)) for x in b.flush(11)] == [(1, 3), (2, 3), (3, 1)]


def test_byte_cap_is_never_passed() -> None:
    b = _batcher(max_bytes=2_000)
    for i in range(200):
        b.add(Custom(i, f"event-{i:04d}", (("k", "v" * 30),)), "/p")
    batches = b.flush(500)
    assert len(batches) > 1
    assert all(x.ByteSize() <= 2_000 for x in batches)
    assert all(x.ByteSize() > 1_500 for x in batches[:-1])  # filled, not cut early
    assert [e.at_ms for x in batches for e in decode_batch(x)] == list(range(200))


def test_event_too_big_for_any_batch_is_dropped_and_counted() -> None:
    b = _batcher(max_bytes=300)
    b.add(Custom(0, "x" * 400), "/p")
    b.add(Scroll(1, "/p", 25), "/p")
    [batch] = b.flush(2)
    assert len(batch.events) == 1 and b.oversize_events == 1


def test_clock_going_back_keeps_order_with_zero_delta() -> None:
    b = _batcher()
    b.add(Scroll(5_000, "/p", 25), "/p")
    b.add(Scroll(4_000, "/p", 50), "/p")
    [batch] = b.flush(6_000)
    assert [e.dt_ms for e in batch.events] == [0, 0]


def test_context_goes_once_and_the_identity_only_with_identify() -> None:
    ctx = BatchContext("Europe/Berlin", "de-DE", 1280, 720, "desktop", "EUR")
    b = Batcher("site", "dev", context=ctx)
    b.add(Scroll(0, "/p", 25), "/p")
    [first] = b.flush(1)
    b.ack(first.seq)
    b.add(Identify(2, "u1", "a@example.com", "sig"), "/p")
    [second] = b.flush(3)
    b.ack(second.seq)
    b.add(Scroll(4, "/p", 50), "/p")
    [third] = b.flush(5)
    assert first.context.timezone == "Europe/Berlin"
    assert first.context.collector == "python/0.1.0"
    assert second.context == third.context == batch_pb2.Context(
        device_class=batch_pb2.Context.DESKTOP)  # a bot must still say so in every batch
    assert not any(x.HasField("identity") for x in (first, second, third))
    assert decode_batch(second)[0] == Identify(2, "u1", "a@example.com", "sig")
    assert (first.site_key, first.device_id) == ("site", "dev")
    anonymous = Batcher("site", "dev2")
    anonymous.add(Scroll(0, "/p", 25), "/p")
    anonymous.flush(1)
    anonymous.add(Scroll(2, "/p", 50), "/p")
    assert not anonymous.flush(3)[-1].HasField("context")


def test_retry_resends_same_seq_with_new_sent_at() -> None:
    b = _batcher()
    b.add(Scroll(0, "/p", 25), "/p")
    [sent] = b.flush(100)
    [again] = b.resend(900)
    assert (again.seq, again.sent_at_ms, sent.sent_at_ms) == (1, 900, 100)
    assert b.ack(1) and not b.ack(1)
    assert b.resend(1_000) == []


def test_queue_cap_drops_oldest_and_counts() -> None:
    b = _batcher(max_events=1, max_queued_batches=3)
    for i in range(5):
        b.add(Scroll(i, "/p", i), "/p")
    assert [x.seq for x in b.pending()] == [3, 4, 5]
    assert b.queue.dropped_batches == 2


def test_queue_and_seq_survive_a_reload() -> None:
    storage = MemoryStorage()
    b = _batcher(storage)
    for i in range(3):
        b.add(Scroll(i, "/p", i), "/p")
        b.flush(i)
    b.ack(2)
    line = storage.data["pulsewire.dev.queue"].split("\n")[0]
    assert batch_pb2.Batch.FromString(base64.b64decode(line)).seq == 1
    reloaded = _batcher(storage)
    assert [x.seq for x in reloaded.pending()] == [1, 3]
    reloaded.add(Scroll(9, "/p", 9), "/p")
    assert [x.seq for x in reloaded.flush(10)] == [1, 3, 4]


def test_acked_seq_is_never_reused_after_reload() -> None:
    storage = MemoryStorage()
    b = _batcher(storage)
    b.add(Scroll(0, "/p", 1), "/p")
    b.flush(1)
    b.ack(1)
    reloaded = _batcher(storage)
    reloaded.add(Scroll(2, "/p", 1), "/p")
    assert [x.seq for x in reloaded.flush(3)] == [2]


def test_full_or_refusing_storage_keeps_working_in_memory() -> None:
    for storage in (FullStorage(), RefusingStorage()):
        b = _batcher(storage)
        b.add(Scroll(0, "/p", 1), "/p")
        b.add(Scroll(1, "/p", 2), "/p")
        assert [x.seq for x in b.flush(2)] == [1]
        b.add(Scroll(3, "/p", 3), "/p")
        assert [x.seq for x in b.flush(4)] == [1, 2]
        assert b.queue.storage_failures > 0


def test_unreadable_saved_entries_are_skipped() -> None:
    storage = MemoryStorage()
    good = batch_pb2.Batch(seq=7, device_id="dev")
    storage.data["pulsewire.dev.queue"] = "!!notbase64\n" + base64.b64encode(
        good.SerializeToString()
    ).decode()
    storage.data["pulsewire.dev.seq"] = "garbage"
    b = _batcher(storage)
    assert [x.seq for x in b.pending()] == [7]
    assert b.queue.storage_failures == 2
    assert b.queue.next_seq() == 8


def test_saved_queue_is_bounded_in_characters() -> None:
    storage = MemoryStorage()
    queue = RetryQueue("dev", storage, max_saved_chars=500)
    for _ in range(40):
        queue.push(batch_pb2.Batch(seq=queue.next_seq(), strings=["e" * 50]))
    saved = storage.data["pulsewire.dev.queue"]
    assert len(saved) <= 500
    last = batch_pb2.Batch.FromString(base64.b64decode(saved.split("\n")[-1]))
    assert last.seq == 40  # the newest are the ones kept
