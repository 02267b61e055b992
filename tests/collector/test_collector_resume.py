"""A resumable batcher: after an ack gives a token, batches leave out what the server keeps;
every batch stays whole in the queue, so a lost token only means sending in full again."""

from __future__ import annotations

import json

from collector.batching import BatchContext, Batcher, decode_batch
from collector.events import Hover, PageView, Scroll
from collector.gen.pulsewire.v1 import batch_pb2
from collector.resume import FRESH_MS

CONTEXT = BatchContext(timezone="Europe/Berlin", locale="de-DE", device_class="desktop")
TOKEN = 0x1234_5678_9ABC_DEF0


def _batcher(stream: int = 7) -> Batcher:
    return Batcher("site", "dev", stream=stream, context=CONTEXT, resumable=True)


def _first(b: Batcher, kept: int | None = None) -> batch_pb2.Batch:
    """The page load's first batch, sent in full and acked with TOKEN."""
    b.add(PageView(1_000, "/p", "Title", "https://ref.example/"), "/p")
    [batch] = b.flush(1_500)
    strings = len(batch.strings) if kept is None else kept
    b.ack(batch.seq, batch.stream, resume=TOKEN, strings_kept=strings)
    return batch


def test_the_first_batch_goes_in_full_asking_to_be_kept_and_timed_by_its_age() -> None:
    b = _batcher()
    b.add(PageView(1_000, "/p", "Title", ""), "/p")
    [batch] = b.flush(1_750)
    assert (batch.site_key, batch.device_id, batch.stream) == ("site", "dev", 7)
    assert batch.resumable and not batch.resume and batch.strings_from == 0
    assert batch.context.timezone == "Europe/Berlin"
    assert (batch.base_time_ms, batch.sent_at_ms, batch.age_ms) == (0, 0, 750)


def test_after_the_ack_batches_go_resumed_counting_on_the_kept_strings() -> None:
    b = _batcher()
    first = _first(b)
    b.add(Scroll(3_000, "/p", 50), "/p")
    b.add(Hover(3_400, "/p", "product:sku-1", 900), "/p")
    [batch] = b.flush(4_000)
    assert batch.resume == TOKEN
    assert not (batch.site_key or batch.device_id or batch.stream or batch.resumable)
    assert not batch.HasField("context")
    assert batch.strings_from == len(first.strings)
    assert list(batch.strings) == ["product:sku-1"]  # "/p" is kept: index 0 costs nothing
    assert batch.age_ms == 1_000
    whole = b.pending()[0]  # the queue keeps it whole
    assert list(whole.strings) == [*first.strings, "product:sku-1"]
    assert [e.at_ms for e in decode_batch(whole)] == [3_000, 3_400]
    assert batch.ByteSize() < whole.ByteSize() - 30


def test_kept_strings_grow_only_when_an_ack_says_this_batch_was_kept() -> None:
    b = _batcher()
    first = _first(b)
    kept = len(first.strings)
    b.add(Hover(3_000, "/p", "product:sku-1", 900), "/p")
    [second] = b.flush(3_500)
    b.ack(second.seq, resume=TOKEN, strings_kept=0)  # not kept: the view stays
    b.add(Hover(4_000, "/p", "product:sku-1", 900), "/p")
    [third] = b.flush(4_500)
    assert third.strings_from == kept and list(third.strings) == ["product:sku-1"]
    b.ack(third.seq, resume=TOKEN, strings_kept=kept + 1)
    b.add(Hover(5_000, "/p", "product:sku-1", 900), "/p")
    [fourth] = b.flush(5_500)
    assert fourth.strings_from == kept + 1 and list(fourth.strings) == []


def test_a_lost_token_sends_everything_in_full_again() -> None:
    b = _batcher()
    first = _first(b)
    b.add(Scroll(3_000, "/p", 50), "/p")
    [resumed] = b.flush(3_500)
    assert resumed.resume == TOKEN
    assert b.resume is not None
    b.resume.forget()  # the server answered FAILED_PRECONDITION
    [again] = b.resend(4_000)
    assert not again.resume and again.strings_from == 0
    assert (again.site_key, again.device_id, again.stream) == ("site", "dev", 7)
    assert list(again.strings) == list(first.strings)  # the whole table: nothing counted on
    assert again.age_ms == 1_000


def test_tokens_of_other_streams_and_later_tokens_are_not_taken() -> None:
    b = _batcher()
    _first(b)
    b.add(Scroll(3_000, "/q", 50), "/q")
    [batch] = b.flush(3_500)
    b.ack(batch.seq, batch.stream, resume=TOKEN + 1, strings_kept=9)  # another token
    assert b.resume is not None and b.resume.token == TOKEN
    other = _batcher(stream=8)
    other.add(Scroll(3_000, "/q", 50), "/q")
    [theirs] = other.flush(3_500)
    b.ack(theirs.seq, 8, resume=TOKEN + 2, strings_kept=1)  # a batch this queue never had
    assert b.resume.token == TOKEN


def test_a_batch_of_an_earlier_page_load_goes_in_full() -> None:
    earlier = batch_pb2.Batch(site_key="site", device_id="dev", seq=3, stream=5,
                              base_time_ms=900, strings=["/old"], resumable=True,
                              strings_from=1)
    earlier.events.add(dt_ms=0).scroll.depth_pct = 25
    b = _batcher()
    _first(b)
    b.queue.push(earlier)  # read back from storage by this page load
    [resent] = b.resend(2_000)
    assert resent.stream == 5 and not resent.resume and resent.strings_from == 0
    assert list(resent.strings) == ["/old"] and resent.age_ms == 1_100


def test_a_plain_batcher_is_unchanged() -> None:
    b = Batcher("site", "dev", stream=7, context=CONTEXT)
    b.add(PageView(1_000, "/p", "Title", ""), "/p")
    [batch] = b.flush(1_750)
    b.ack(batch.seq, resume=TOKEN, strings_kept=3)
    b.add(Scroll(3_000, "/p", 50), "/p")
    [later] = b.flush(3_500)
    assert not (batch.resumable or later.resume or later.age_ms)
    assert (later.base_time_ms, later.sent_at_ms, later.device_id) == (3_000, 3_500, "dev")


class _Storage(dict[str, str]):
    def set(self, key: str, value: str) -> None:
        self[key] = value


def test_the_next_page_load_carries_on_from_the_saved_state() -> None:
    storage = _Storage()
    first_load = Batcher("site", "dev", stream=7, context=CONTEXT, storage=storage,
                         resumable=True)
    first = _first(first_load)
    assert json.loads(storage["pulsewire.dev.resume"])["kept"] == list(first.strings)
    load = Batcher("site", "dev", stream=8, context=CONTEXT, storage=storage, resumable=True)
    load.add(PageView(60_000, "/q", "Q", "/p"), "/q")
    [carried] = load.flush(60_500)
    assert (carried.resume, carried.stream) == (TOKEN, 8)  # the earlier token, its own stream
    assert not (carried.site_key or carried.device_id or carried.HasField("context"))
    assert carried.strings_from == len(first.strings)
    assert list(carried.strings) == ["/q", "Q"]  # the referrer "/p" was kept
    whole = load.pending()[0]
    load.ack(whole.seq, 8, resume=TOKEN + 5, strings_kept=len(whole.strings))
    load.add(Scroll(61_000, "/q", 50), "/q")
    [later] = load.flush(61_500)
    assert (later.resume, later.stream, later.strings_from) == (TOKEN + 5, 0, 5)
    assert json.loads(storage["pulsewire.dev.resume"])["token"] == f"{TOKEN + 5:x}"


def test_a_stale_or_unreadable_saved_state_is_not_used() -> None:
    storage = _Storage()
    first_load = Batcher("site", "dev", stream=7, context=CONTEXT, storage=storage,
                         resumable=True)
    _first(first_load)
    late = Batcher("site", "dev", stream=8, context=CONTEXT, storage=storage, resumable=True)
    late.add(PageView(1_000 + FRESH_MS + 1, "/q", "Q", ""), "/q")
    [batch] = late.flush(1_000 + FRESH_MS + 2)
    assert not batch.resume and batch.device_id == "dev" and batch.strings_from == 0
    assert list(batch.strings) == ["/q", "Q", ""]  # "": no referrer
    for text in ("{", '{"token":"zz","stream":1,"at":0,"kept":[]}', "[]"):
        storage["pulsewire.dev.resume"] = text
        fresh = Batcher("site", "dev", stream=9, storage=storage, resumable=True)
        assert fresh.resume is not None and fresh.resume.token == 0


def test_a_devices_only_sender_carries_on_only_from_its_own_stream() -> None:
    """Stream 0 cannot be named on the wire: its batches go in full under another stream's
    saved token, while that stream's own leftover batch still goes resumed."""
    storage = _Storage()
    _first(Batcher("site", "dev", stream=5, context=CONTEXT, storage=storage, resumable=True))
    app = Batcher("site", "dev", stream=0, context=CONTEXT, storage=storage, resumable=True)
    leftover = batch_pb2.Batch(site_key="site", device_id="dev", seq=9, stream=5,
                               base_time_ms=1_000, strings=["/p"], resumable=True,
                               strings_from=1)
    leftover.events.add(dt_ms=0).scroll.depth_pct = 25
    app.queue.push(leftover)
    app.add(Scroll(2_000, "/p", 50), "/p")
    theirs, mine = app.flush(2_500)
    assert theirs.resume == TOKEN and not theirs.stream and app.queued_stream(theirs) == 5
    assert not mine.resume and mine.device_id == "dev" and app.queued_stream(mine) == 0
    app.ack(theirs.seq, 5)
    app.ack(mine.seq, 0, resume=TOKEN + 1, strings_kept=len(mine.strings))
    app.add(Scroll(3_000, "/p", 70), "/p")
    [later] = app.flush(3_500)
    assert later.resume == TOKEN + 1 and not later.stream  # its own token from now on


def test_a_state_idle_past_fresh_ms_is_forgotten_on_any_stream() -> None:
    b = _batcher()
    _first(b)
    b.add(Scroll(1_000 + FRESH_MS + 1, "/p", 50), "/p")
    [batch] = b.flush(1_000 + FRESH_MS + 2)
    assert not batch.resume and batch.device_id == "dev"


def test_saved_text_is_read_only_in_the_form_it_is_written() -> None:
    storage = _Storage()
    _first(Batcher("site", "dev", stream=5, storage=storage, resumable=True))
    good = storage["pulsewire.dev.resume"]
    assert Batcher("site", "dev", stream=6, storage=storage, resumable=True).resume.token
    for text in ('{"token":"0x1f","stream":1,"at":0,"kept":[]}',
                 '{"token":"1_f","stream":1,"at":0,"kept":[]}',
                 '{"token":"1f","stream":1.5,"at":0,"kept":[]}',
                 '{"token":"1f","stream":true,"at":0,"kept":[]}',
                 '{"token":"1f","stream":1,"at":0,"kept":"ab"}',
                 '{"token":"1f","stream":1,"at":0,"kept":[1]}',
                 '{"token":"0","stream":1,"at":0,"kept":[]}',
                 '{"token":"1f","stream":2147483648,"at":0,"kept":[]}',
                 good.replace('"stream":5', '"stream":-1')):
        storage["pulsewire.dev.resume"] = text
        loaded = Batcher("site", "dev", stream=6, storage=storage, resumable=True).resume
        assert loaded is not None and loaded.token == 0, text


def test_a_batch_sent_later_than_handed_out_is_restamped_for_the_wait() -> None:
    b = _batcher()
    b.add(Scroll(1_000, "/p", 50), "/p")
    [batch] = b.flush(1_500)
    b.restamp(batch, 1_500, 1_900)  # queued behind other sends for 400 ms
    assert batch.age_ms == 900 and not batch.sent_at_ms
    plain = Batcher("site", "dev", stream=7)
    plain.add(Scroll(1_000, "/p", 50), "/p")
    [sent] = plain.flush(1_500)
    plain.restamp(sent, 1_500, 1_900)
    assert sent.sent_at_ms == 1_900 and not sent.age_ms
