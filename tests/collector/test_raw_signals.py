"""Raw signals (what the loader records) replayed into the collector, and the page loads an edge
worker keeps: the same events as live signals, bots dropped, chunks all or nothing."""

import itertools
import json
from typing import Any

import pytest
from raw_chunks import chunk_payloads, encoded

from collector import BatchLimits, Collector, decode_batch
from collector.edge import EdgeSettings, PageLoads, bot_reason, device_class
from collector.events import Identify
from collector.gen.pulsewire.v1 import batch_pb2
from collector.raw_signals import InvalidSignals, parse_payload, replay
from collector.retry_queue import RetryQueue
from collector.session import SignalSettings

T0 = 1_800_000_000_000
CHROME = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/131.0.0.0 Safari/537.36")
SIGNALS: list[list[Any]] = [
    [0, "p", "/product/lp14", "Laptop", "https://example.com/"],
    [400, "s", 30], [900, "s", 72], [1000, "a"], [1100, "e", "card:lp14"],
    [2300, "l", "card:lp14"], [2400, "f", 0], [2600, "f", 1],
    [3000, "t", "cart_add", {"sku": "lp14", "qty": 1, "price": 1299.5, "cart_id": "c1"}],
    [3100, "i", "u1", "ann@example.com", "ab12", {"plan": "pro"}],
    [4000, "v", 0], [4500, "x"],
]


def payload(signals: list[list[Any]] = SIGNALS, chunk: int = 0, **extra: Any) -> bytes:
    return json.dumps({"v": 1, "site": "demo", "device": "dev-1", "load": 5, "t0": T0,
                       "n": chunk, "ctx": {"tz": "Europe/Berlin", "cur": "usd", "vw": 1280},
                       "s": signals, **extra}).encode()


def live(collector: Collector) -> None:
    """The same page as SIGNALS, driven by direct calls."""
    collector.page_view("/product/lp14", "Laptop", "https://example.com/", T0)
    collector.scroll_to(30, T0 + 400)
    collector.scroll_to(72, T0 + 900)
    collector.activity(T0 + 1000)
    collector.pointer_enter("card:lp14", T0 + 1100)
    collector.pointer_leave("card:lp14", T0 + 2300)
    collector.focus(False, T0 + 2400)
    collector.focus(True, T0 + 2600)
    collector.track("cart_add", {"sku": "lp14", "qty": 1, "price": 1299.5, "cart_id": "c1"},
                    T0 + 3000)
    collector.identify("u1", "ann@example.com", "ab12", T0 + 3100, {"plan": "pro"})
    collector.visibility(False, T0 + 4000)
    collector.page_end(T0 + 4500)


def test_replayed_signals_give_the_events_of_the_live_calls() -> None:
    replayed, direct = Collector("demo", "dev-1"), Collector("demo", "dev-1")
    assert replay(replayed, parse_payload(payload())) == len(SIGNALS)
    live(direct)
    assert replayed.flush(T0 + 5000) == direct.flush(T0 + 5000)


def test_payload_faults_are_named() -> None:
    cases = [
        (b"[1]", "payload: must be a JSON object"),
        (payload(v=2), "v: must be 1"),
        (payload(load=0), "load: must be from 1 to 2147483647"),
        (payload(device=""), "device: must not be empty"),
        (payload(s="x"), "s: must be a list of at most 2000 signals"),
        (payload([[1]]), "s[0]: must be [ms, kind, ...]"),
        (b"x" * 70_000, "payload: 70000 bytes, at most 65536"),
    ]
    for body, message in cases:
        with pytest.raises(InvalidSignals) as err:
            parse_payload(body)
        assert str(err.value) == message
    for signals, message in [
        ([[0, "q"]], "s[0]: unknown kind 'q'"),
        ([[0, "s"]], "s[0]: too few arguments for 's'"),
        ([[0, "s", 140]], "s[0].depth: must be from 0 to 100"),
        ([[-5, "a"]], "s[0][0]: must be from 0 to 1099511627776"),
        ([[0, "t", "cart_add", {"qty": 1}]], "s[0]: 'sku' is required"),
    ]:
        with pytest.raises(InvalidSignals) as err:
            replay(Collector("demo", "dev-1"), parse_payload(payload(signals)))
        assert str(err.value) == message


def test_page_loads_turn_chunks_into_batches_and_forget_acked_ones() -> None:
    loads = PageLoads(EdgeSettings(signals=SignalSettings(hover_min_ms=500)))
    first = loads.accept(parse_payload(payload(SIGNALS[:6])), user_agent=CHROME,
                         now_ms=T0 + 1, accept_language="de-DE,de;q=0.9").batches
    assert [b.stream for b in first] == [5] and first[0].seq == 1
    assert first[0].context.locale == "de-DE"
    assert first[0].context.device_class == batch_pb2.Context.DESKTOP
    assert first[0].context.currency == "USD"
    names = [type(e).__name__ for e in decode_batch(first[0])]
    assert names == ["PageView", "Scroll", "Scroll", "Scroll", "Hover"]
    resent = loads.accept(parse_payload(payload(SIGNALS[:6])), user_agent=CHROME,
                          now_ms=T0 + 2).batches
    assert resent == first and loads.resent_chunks == 1  # the same batch, not a new one
    loads.ack(batch_pb2.Ack(seq=1, stream=5, device_id="dev-1"), "demo")
    second = loads.accept(parse_payload(payload(SIGNALS[6:], chunk=1, h=SIGNALS[:6])),
                          user_agent=CHROME, now_ms=T0 + 3).batches
    assert [b.seq for b in second] == [1 << 16]  # chunk 1 numbers its batches from 1 << 16
    assert any(isinstance(e, Identify) and e.email == "ann@example.com"
               for e in decode_batch(second[0]))


def test_a_bad_chunk_changes_nothing_and_a_lost_state_never_reuses_a_seq() -> None:
    loads = PageLoads()
    loads.accept(parse_payload(payload(SIGNALS[:2])), user_agent=CHROME, now_ms=T0)
    with pytest.raises(InvalidSignals):
        loads.accept(parse_payload(payload([[500, "s", 90], [600, "zz"]], chunk=1)),
                     user_agent=CHROME, now_ms=T0)
    later = loads.accept(parse_payload(payload([[700, "s", 40]], chunk=1, h=SIGNALS[:2])),
                         user_agent=CHROME, now_ms=T0).batches
    scrolls = [e for b in later for e in decode_batch(b) if type(e).__name__ == "Scroll"]
    assert [e.depth_pct for e in scrolls] == [25]  # 90 was never applied; 40 crosses nothing
    fresh = PageLoads()  # a restarted worker meets chunk 3 of a page load
    held = fresh.accept(parse_payload(payload([[900, "t", "signup_seen", {}]], chunk=3)),
                        user_agent=CHROME, now_ms=T0)
    assert (held.outcome, held.batches, fresh.next_deadline_ms()) == ("held", [], T0 + 2_000)
    assert fresh.due(T0 + 1_999) == []
    [batch] = fresh.due(T0 + 2_000)  # chunks 0-2 went elsewhere: it waited long enough
    assert batch.seq == 3 << 16 and fresh.next_deadline_ms() is None


def test_bots_are_dropped_and_counted() -> None:
    loads = PageLoads()
    for agent in ["", "Googlebot/2.1 (+http://www.google.com/bot.html)",
                  CHROME.replace("Chrome/", "HeadlessChrome/"), "python-requests/2.32"]:
        taken = loads.accept(parse_payload(payload()), user_agent=agent, now_ms=T0)
        assert (taken.outcome, taken.batches) == ("bot", [])
    assert loads.dropped == {"empty user agent": 1, "crawler": 1, "headless browser": 1,
                             "http library": 1}
    assert len(loads) == 0
    assert bot_reason(CHROME) is None
    assert device_class("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Mobile/15E148") == "mobile"
    assert device_class("Mozilla/5.0 (iPad; CPU OS 17_0)") == "tablet"


def test_page_loads_expire_when_idle_or_too_many() -> None:
    loads = PageLoads(EdgeSettings(idle_ms=1_000, max_loads=2, limits=BatchLimits()))
    for load in (1, 2, 3):
        body = json.loads(payload([[0, "a"]]))
        loads.accept(parse_payload(json.dumps({**body, "load": load})), user_agent=CHROME,
                     now_ms=T0)
    assert len(loads) == 3  # expiry runs before a chunk is taken
    loads.accept(parse_payload(payload([[0, "a"]])), user_agent=CHROME, now_ms=T0 + 5_000)
    assert len(loads) == 1


def test_two_tabs_have_their_own_streams_and_the_next_load_resends_both() -> None:
    storage: dict[str, str] = {}

    class Shared:
        def get(self, key: str) -> str | None:
            return storage.get(key)

        def set(self, key: str, value: str) -> None:
            storage[key] = value

    tab = Collector("demo", "dev", stream=7, storage=Shared())
    tab.track("custom_a", {}, T0)
    [sent] = tab.flush(T0)
    assert (sent.stream, sent.seq) == (7, 1)
    later = Collector("demo", "dev", stream=9, storage=Shared())
    later.track("custom_b", {}, T0 + 1)
    pending = later.flush(T0 + 2)
    assert [(b.stream, b.seq) for b in pending] == [(7, 1), (9, 1)]
    assert later.ack(1, stream=7) and later.ack(1)
    assert later.pending() == []
    queue = RetryQueue("dev", Shared(), stream=9)
    assert len(queue) == 0


# Two page views; engaged time, a hover and the scroll depth run across chunk boundaries.
VISIT: list[list[Any]] = [
    [0, "p", "/", "Home", ""], [300, "s", 40], [800, "a"], [1500, "e", "card:a"],
    [2600, "a"], [3200, "l", "card:a"], [3300, "s", 80], [4100, "a"],
    [5000, "p", "/product/lp14", "Laptop", "/"], [5200, "i", "u1", "ann@example.com", "ab", {}],
    [5400, "e", "card:lp14"], [6200, "a"], [6900, "l", "card:lp14"], [7000, "f", 0],
    [8000, "f", 1], [8100, "s", 95], [9000, "a"],
    [9100, "t", "cart_add", {"sku": "lp14", "qty": 1, "price": 1299, "cart_id": "c1"}],
    [11_500, "a"], [12_000, "v", 0], [12_100, "x"],
]
CUTS = [3, 10, 16]  # four chunks, cut inside a hover rest and inside engaged time
SETTINGS = SignalSettings(idle_after_ms=3_000, dwell_thresholds_ms=(1_000, 2_000, 4_000),
                          hover_min_ms=500)


def in_order_events() -> list[Any]:
    """What one collector makes of the chunks taken in order (the chunks' own sends)."""
    collector = Collector("demo", "dev-1", stream=5, settings=SETTINGS)
    batches = {}
    for body in chunk_payloads(VISIT, CUTS, t0=T0):
        replay(collector, parse_payload(encoded(body)))
        batches.update((b.seq, b) for b in collector.flush(T0 + body["sent"]))
    return [e for b in batches.values() for e in decode_batch(b)]


def test_chunks_in_every_order_and_twice_make_the_same_events_once() -> None:
    expected = sorted(in_order_events(), key=repr)
    assert len(expected) > 15
    bodies = chunk_payloads(VISIT, CUTS, t0=T0)
    for hold_ms in (0, 2_000):
        for order in itertools.permutations(range(len(bodies))):
            loads = PageLoads(EdgeSettings(signals=SETTINGS, hold_ms=hold_ms))
            forwarded: dict[int, batch_pb2.Batch] = {}
            first_sight: list[Any] = []
            arrivals = [[*loads.accept(parse_payload(encoded(bodies[n])), user_agent=CHROME,
                                       now_ms=T0).batches, *loads.due(T0)]
                        for n in [*order, *reversed(order)]]  # each chunk twice
            for batch in [b for arrival in arrivals for b in arrival]:
                assert forwarded.setdefault(batch.seq, batch) == batch  # same seq: same batch
                if batch.seq not in {b for b, _ in first_sight}:
                    first_sight.append((batch.seq, decode_batch(batch)))
            assert loads.due(T0 + 10_000) == []  # nothing was left held
            events = [e for _, batch_events in first_sight for e in batch_events]
            assert sorted(events, key=repr) == expected, (hold_ms, order)
            if hold_ms:  # held until the chunk before came: the engine sees the page's order
                assert [e.at_ms for e in events] == sorted(e.at_ms for e in events), order
