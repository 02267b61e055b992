"""Resumed batches on the server: a resumed batch reads exactly as the same batch in full, kept
strings are only appended to, and what the server does not hold is refused so the client can
send in full."""

from __future__ import annotations

import random

import pytest

from collector import BatchContext, Collector, sign_email
from collector.gen.pulsewire.v1 import batch_pb2
from server.config import IngestSettings, SiteSettings
from server.errors import InvalidBatch
from server.ingest.batches import decode_batch
from server.ingest.resume import MAX_STRINGS, OVERHEAD_BYTES, ResumedStreams, ResumeUnknown

SITE = SiteSettings("site", "secret")
LIMITS = IngestSettings()
T0 = 1_800_000_000_000
CONTEXT = BatchContext(timezone="Asia/Tokyo", currency="JPY", device_class="mobile")


class _Storage(dict[str, str]):
    def set(self, key: str, value: str) -> None:
        self[key] = value


def _visit(resumable: bool, rng: random.Random, server: ResumedStreams,
           sent: list[tuple[batch_pb2.Batch, int]]) -> None:
    """A random visit over three page loads of one device (sharing its storage), each batch
    sent at a tick and acked as served."""
    t = T0
    storage = _Storage()
    collector = None
    for page in range(3):
        if collector is not None:
            for batch in collector.flush(t):
                sent.append((batch, t))
                _serve(server, collector, batch, t)
        collector = Collector("site", "dev", stream=9 + page, context=CONTEXT,
                              resumable=resumable, storage=storage)
        path = f"/product/{rng.choice(['a', 'b', 'c'])}-{page}"
        collector.page_view(path, f"Product {page}", "https://ref.example/", t)
        collector.visibility(True, t)
        collector.focus(True, t)
        for _ in range(rng.randint(3, 12)):
            t += rng.randint(200, 4_000)
            action = rng.random()
            if action < 0.4:
                collector.scroll_to(rng.uniform(0, 100), t)
            elif action < 0.6:
                target = f"product:{rng.choice(['x', 'y', 'z'])}"
                collector.pointer_enter(target, t)
                collector.pointer_leave(target, t + rng.randint(100, 2_000))
            elif action < 0.7:
                collector.track("cart_add", {"sku": rng.choice(["x", "y"]), "price": 12.5,
                                             "cart_id": "c1"}, t)
            elif action < 0.75:
                email = "ann@example.com"
                collector.identify("u1", email, sign_email("secret", email), t)
            else:
                collector.activity(t)
            receipt = t + rng.randint(0, 300)
            for batch in collector.tick(t):
                sent.append((batch, receipt))
                _serve(server, collector, batch, receipt)
    for batch in collector.flush(t + 1_000):
        sent.append((batch, t + 1_000))
        _serve(server, collector, batch, t + 1_000)


def _serve(server: ResumedStreams, collector: Collector, batch: batch_pb2.Batch,
           now_ms: int) -> None:
    full, earlier = server.read(batch, now_ms)
    ack = batch_pb2.Ack(seq=batch.seq, stream=full.stream)
    ack.resume, ack.strings_kept = server.answer(batch, full, earlier, now_ms)
    collector.acked(ack)


@pytest.mark.parametrize("seed", range(8))
def test_a_resumed_visit_reads_as_the_same_visit_sent_in_full(seed: int) -> None:
    """The same random visit from a resumable and a plain collector: the server decodes the
    same events, at the same times, from both."""
    resumed_batches: list[tuple[batch_pb2.Batch, int]] = []
    plain_batches: list[tuple[batch_pb2.Batch, int]] = []
    server = ResumedStreams()
    _visit(True, random.Random(seed), server, resumed_batches)
    _visit(False, random.Random(seed), ResumedStreams(), plain_batches)
    assert sum(1 for b, _ in resumed_batches if b.resume) == len(resumed_batches) - 1
    assert sum(1 for b, _ in resumed_batches if b.resume and b.stream) == 2  # carried on
    # Decoded after the whole visit: kept strings are only appended to, so what each batch
    # counted on is still there as it was.
    resumed_decoded, plain_decoded = [], []
    for (batch, receipt), (plain, plain_receipt) in zip(resumed_batches, plain_batches,
                                                        strict=True):
        full, _ = server.read(batch, receipt)
        resumed_decoded.append(decode_batch(full, SITE, LIMITS, receipt))
        plain_decoded.append(decode_batch(plain, SITE, LIMITS, plain_receipt))
    resumed_events = [e for d in resumed_decoded for e in d.events]
    assert [(e.name, e.at_ms, e.props) for e in resumed_events] == [
        (e.name, e.at_ms, e.props) for d in plain_decoded for e in d.events]
    assert [d.seq for d in resumed_decoded] == [d.seq for d in plain_decoded]  # stream<<32|seq
    assert {e.tz for e in resumed_events} == {"Asia/Tokyo"}  # kept with the stream


def test_an_unknown_or_idle_token_is_refused() -> None:
    server = ResumedStreams(idle_ms=60_000)
    token, kept = server.keep(batch_pb2.Batch(site_key="site", device_id="dev", stream=3,
                                              strings=["/p", "x"]), T0)
    assert kept == 2
    with pytest.raises(ResumeUnknown):
        server.get(token ^ 1, T0)
    assert server.get(token, T0 + 59_999).device_id == "dev"
    with pytest.raises(ResumeUnknown):
        server.get(token, T0 + 59_999 + 60_000)


def test_the_least_recently_used_streams_go_past_capacity() -> None:
    server = ResumedStreams(capacity=2)
    tokens = [server.keep(batch_pb2.Batch(device_id=f"d{i}"), T0 + i)[0] for i in range(2)]
    server.get(tokens[0], T0 + 5)
    server.keep(batch_pb2.Batch(device_id="d2"), T0 + 6)
    assert server.get(tokens[0], T0 + 7).device_id == "d0"
    with pytest.raises(ResumeUnknown):
        server.get(tokens[1], T0 + 7)
    assert len(server) == 2


def test_strings_are_appended_only_by_a_batch_that_counted_on_all_of_them() -> None:
    server = ResumedStreams()
    token, _ = server.keep(batch_pb2.Batch(device_id="d", strings=["/p"]), T0)
    kept = server.get(token, T0)
    assert server.extend(kept, batch_pb2.Batch(strings_from=1, strings=["a", "b"])) == 3
    assert server.extend(kept, batch_pb2.Batch(strings_from=1, strings=["c"])) == 0
    assert server.extend(kept, batch_pb2.Batch(strings_from=1, strings=["a", "b"])) == 3  # again
    assert kept.strings == ["/p", "a", "b"]
    assert kept.table(batch_pb2.Batch(strings_from=1, strings=["c"])) == ["/p", "c"]
    too_many = batch_pb2.Batch(strings_from=3, strings=[f"s{i}" for i in range(MAX_STRINGS)])
    assert server.extend(kept, too_many) == 0 and len(kept.strings) == 3
    with pytest.raises(ResumeUnknown, match="strings_from 4 is past the 3 strings kept"):
        kept.table(batch_pb2.Batch(strings_from=4))


def test_kept_strings_over_all_streams_stay_within_the_budget() -> None:
    server = ResumedStreams(budget_bytes=3 * (OVERHEAD_BYTES + 4_000))
    tokens = [server.keep(batch_pb2.Batch(device_id=f"d{i}", strings=["x" * 4_000]), T0 + i)[0]
              for i in range(5)]
    assert len(server) == 3 and server.kept_bytes <= 3 * (OVERHEAD_BYTES + 4_000)
    with pytest.raises(ResumeUnknown):
        server.get(tokens[1], T0 + 5)  # the least recently used went first
    kept = server.get(tokens[4], T0 + 5)
    server.extend(kept, batch_pb2.Batch(strings_from=1, strings=["y" * 3_000]))
    server.keep(batch_pb2.Batch(device_id="d5"), T0 + 6)  # over the budget: d2 goes
    assert server.kept_bytes <= 3 * (OVERHEAD_BYTES + 4_000) and len(server) == 3
    with pytest.raises(ResumeUnknown):
        server.get(tokens[2], T0 + 7)
    assert server.get(tokens[4], T0 + 7).strings == ["x" * 4_000, "y" * 3_000]


def test_a_table_too_big_to_keep_is_not_kept() -> None:
    server = ResumedStreams()
    _, kept = server.keep(batch_pb2.Batch(strings=["x" * 9_000, "y" * 9_000]), T0)
    assert kept == 0


def test_a_resumed_batch_must_leave_out_what_the_token_stands_for() -> None:
    server = ResumedStreams()
    token, _ = server.keep(batch_pb2.Batch(site_key="site", device_id="dev", stream=3,
                                           strings=["/p"]), T0)
    batch = batch_pb2.Batch(resume=token, seq=2, device_id="other", strings_from=1)
    batch.events.add(dt_ms=0).scroll.depth_pct = 50
    with pytest.raises(InvalidBatch, match="resume: a resumed batch leaves out"):
        server.read(batch, T0)
    batch.ClearField("device_id")
    full, _ = server.read(batch, T0)
    decoded = decode_batch(full, SITE, LIMITS, T0)
    assert (decoded.device, decoded.seq, decoded.events[0].props["path"]) == ("dev",
                                                                              3 << 32 | 2, "/p")
