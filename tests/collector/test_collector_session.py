"""The Collector facade end to end: signals in, batches out, decoded back; and wire size."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from collector import (
    BatchContext,
    BatchLimits,
    CartAdd,
    Collector,
    Custom,
    Dwell,
    Event,
    Form,
    Hover,
    Identify,
    PageView,
    Scroll,
    decode_batch,
)
from collector.gen.pulsewire.v1 import batch_pb2

CONTEXT = BatchContext("Europe/Berlin", "de-DE", 1440, 900, "desktop", "EUR")
DEVICE = "k3Jx9QvT2mWb7LpZ4nRc1A"  # 22 chars: 128 random bits in base64url


def _events(batches: list[batch_pb2.Batch]) -> list[Event]:
    return [e for b in batches for e in decode_batch(b)]


def test_page_lifecycle() -> None:
    c = Collector("site", "dev", context=CONTEXT)
    c.page_view("/a", "A", "", 1_000)
    c.scroll_to(30, 2_000)
    c.pointer_enter("product:1", 3_000)
    c.pointer_leave("product:1", 4_000)
    c.visibility(False, 5_000)  # hidden: hover closed, scroll and dwell so far sent
    c.visibility(True, 60_000)
    c.page_view("/b", "B", "/a", 61_000)
    c.track("cart_add", {"sku": "s", "price": 2.5}, 62_000)
    c.page_end(63_000)
    assert _events(c.flush(64_000)) == [
        PageView(1_000, "/a", "A", ""),
        Scroll(2_000, "/a", 25),
        Hover(4_000, "/a", "product:1", 1_000),
        Scroll(5_000, "/a", 30),
        Dwell(5_000, "/a", 4_000),
        Dwell(61_000, "/a", 5_000),  # visible again at 60 s counted as activity
        PageView(61_000, "/b", "B", "/a"),
        CartAdd(62_000, "s", 1, 250, ""),
        Dwell(63_000, "/b", 2_000),
    ]


def test_signals_without_a_page_view_are_ignored_but_track_works() -> None:
    c = Collector("site", "dev")
    c.scroll_to(80, 1)
    c.pointer_enter("x", 2)
    c.pointer_leave("x", 5_000)
    c.page_end(6_000)
    c.track("signup_click", {}, 7_000)
    assert _events(c.flush(8_000)) == [Custom(7_000, "signup_click", ())]


def test_tick_hands_out_due_batches_and_ack_clears() -> None:
    c = Collector("site", "dev")
    c.page_view("/a", "", "", 0)
    assert c.next_deadline_ms() == 5_000
    assert c.tick(4_999) == []
    [batch] = c.tick(5_000)
    assert c.ack(batch.seq)
    assert c.pending() == []


def test_identify_travels_as_its_event() -> None:
    c = Collector("site", "dev")
    c.page_view("/a", "", "", 0)
    c.identify("u1", "a@example.com", "sig", 10, {"plan": "pro"})
    [batch] = c.flush(20)
    assert not batch.HasField("identity")  # the server remembers who the device became
    assert decode_batch(batch)[1] == Identify(10, "u1", "a@example.com", "sig", (("plan", "pro"),))


# A random stream of signals, times non-decreasing.
_PATHS = st.sampled_from(["/", "/a", "/product/laptop", "/ü"])
_TARGETS = st.sampled_from(["product:1", "product:2", "banner"])
_VALUES = st.one_of(
    st.integers(-(2**63), 2**63 - 1), st.booleans(), st.floats(allow_nan=False), st.text(max_size=4)
)
_SIGNAL = st.one_of(
    st.tuples(st.just("page_view"), _PATHS, st.text(max_size=5), st.text(max_size=5)),
    st.tuples(st.just("scroll_to"), st.integers(-10, 120)),
    st.tuples(st.just("visibility"), st.booleans()),
    st.tuples(st.just("focus"), st.booleans()),
    st.tuples(st.just("activity")),
    st.tuples(st.just("pointer_enter"), _TARGETS),
    st.tuples(st.just("pointer_leave"), _TARGETS),
    st.tuples(st.just("track"), st.sampled_from(["view", "cart_add", "form"]),
              st.text(min_size=1, max_size=6), _VALUES),
    st.tuples(st.just("page_end")),
    st.tuples(st.just("tick")),
    st.tuples(st.just("ack")),
)
Stream = list[tuple[int, tuple[object, ...]]]
_STREAM = st.lists(st.tuples(st.integers(0, 20_000), _SIGNAL), max_size=120)


class _Run:
    """Replays a stream into a Collector, keeping what a test needs to check it."""

    def __init__(self, c: Collector) -> None:
        self.c = c
        self.added: list[Event] = []  # every event the collector handed to its batcher
        self.tracked: list[Event] = []  # what the test's track calls should become
        self.sent: list[batch_pb2.Batch] = []
        self.acked = 0
        add = c.batcher.add

        def recording_add(event: Event, page_path: str) -> None:
            self.added.append(event)
            add(event, page_path)

        c.batcher.add = recording_add  # type: ignore[method-assign]

    def play(self, stream: Stream, now: int = 1_700_000_000_000) -> None:
        for gap, (kind, *args) in stream:
            now += gap
            self._signal(str(kind), args, now)
            assert len(self.c.pending()) <= self.c.batcher.limits.max_queued_batches
        self.sent += self.c.flush(now + 1)

    def _signal(self, kind: str, args: list[object], now: int) -> None:
        c = self.c
        if kind == "page_view":
            c.page_view(str(args[0]), str(args[1]), str(args[2]), now)
        elif kind == "track":
            self._track(str(args[0]), str(args[1]), args[2], now)
        elif kind in ("page_end", "activity"):
            getattr(c, kind)(now)
        elif kind == "tick":
            self.sent += c.tick(now)
        elif kind == "ack":
            sent = {b.seq for b in self.sent}
            unacked = [b.seq for b in c.pending() if b.seq in sent]
            if unacked and c.ack(unacked[0]):  # the host acks only what it sent
                self.acked += 1
        else:
            getattr(c, kind)(args[0], now)

    def _track(self, name: str, key: str, value: object, now: int) -> None:
        if name == "cart_add":
            self.c.track(name, {"sku": key, "qty": 2}, now)
            self.tracked.append(CartAdd(now, key, 2, 0, ""))
        elif name == "form":
            self.c.track(name, {"name": key}, now)
            self.tracked.append(Form(now, key, "submit"))
        else:
            self.c.track(name, {key: value}, now)  # type: ignore[dict-item]
            self.tracked.append(Custom(now, name, ((key, value),)))  # type: ignore[arg-type]


def _first_sends(sent: list[batch_pb2.Batch]) -> list[batch_pb2.Batch]:
    by_seq: dict[int, batch_pb2.Batch] = {}
    for b in sent:
        by_seq.setdefault(b.seq, b)
    return [by_seq[s] for s in sorted(by_seq)]


@settings(max_examples=200, deadline=None)
@given(_STREAM, st.integers(1, 8))
def test_random_streams_round_trip(stream: Stream, max_events: int) -> None:
    c = Collector("site", "dev", context=CONTEXT, limits=BatchLimits(max_events=max_events,
                                                                      max_queued_batches=10**6))
    run = _Run(c)
    run.play(stream)
    batches = _first_sends(run.sent)
    assert [b.seq for b in batches] == list(range(1, len(batches) + 1))
    decoded = [e for b in batches for e in decode_batch(b)]
    assert decoded == run.added
    assert [e.at_ms for e in decoded] == sorted(e.at_ms for e in decoded)
    assert [e for e in decoded if isinstance(e, CartAdd | Form | Custom)] == run.tracked
    assert all(b.sent_at_ms >= b.base_time_ms for b in run.sent)


@settings(max_examples=200, deadline=None)
@given(_STREAM, st.integers(1, 4))
def test_retry_queue_never_passes_its_cap(stream: Stream, cap: int) -> None:
    c = Collector("site", "dev", limits=BatchLimits(max_events=1, max_queued_batches=cap))
    run = _Run(c)
    run.play(stream)
    sealed = c.batcher.queue.last_seq
    assert len(c.pending()) <= cap
    assert c.batcher.queue.dropped_batches + run.acked + len(c.pending()) == sealed
    first_hand_outs = list(dict.fromkeys(b.seq for b in run.sent))
    assert first_hand_outs == sorted(first_hand_outs)  # a new batch always has a higher seq


def test_last_words_are_what_a_page_end_would_send_and_change_nothing() -> None:
    c = Collector("site", "dev", stream=3, limits=BatchLimits(max_age_ms=60_000))
    c.page_view("/p", "P", "", 0)
    c.scroll_to(64, 1_000)
    c.pointer_enter("card:a", 2_000)
    words = c.last_words(12_000, 65_535)
    assert words is not None and (words.stream, words.seq, words.sent_at_ms) == (3, 65_535, 12_000)
    twin = Collector("site", "dev", stream=3, limits=BatchLimits(max_age_ms=60_000))
    twin.page_view("/p", "P", "", 0)
    twin.scroll_to(64, 1_000)
    twin.pointer_enter("card:a", 2_000)
    twin.page_end(12_000)
    [ended] = twin.flush(12_000)
    assert decode_batch(words) == decode_batch(ended)
    assert c.pending() == [] and c.last_words(12_000, 65_535) == words  # nothing changed
    c.pointer_leave("card:a", 12_500)  # the hover was still open: reported once, for real
    assert [type(e).__name__ for e in decode_batch(c.flush(13_000)[0])][-1] == "Hover"
