"""Fuzzing, bounded in time, of what anyone with the public site key can send: the batch
decoder and the raw-signal parser (with the replay that turns a chunk into batches). Nothing
may come out but the documented errors: InvalidBatch, InvalidSignals."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.edge import EdgeSettings, PageLoads
from collector.gen.pulsewire.v1 import batch_pb2, events_pb2
from collector.raw_signals import InvalidSignals, parse_payload
from server.config import IngestSettings, SiteSettings
from server.errors import InvalidBatch
from server.ingest.batches import decode_batch

SITE = SiteSettings(key="demo", secret="s")
RECEIPT_MS = 1_800_000_000_000
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CHROME = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/131.0.0.0 Safari/537.36")

int64 = st.integers(-(2**63), 2**63 - 1)
uint32 = st.integers(0, 2**32 - 1)
texts = st.text(max_size=40) | st.sampled_from(["", "Europe/Berlin", "America", "../x",
                                                "ann@example.com", "a" * 300])
KINDS = ["page_view", "scroll", "dwell", "hover", "cart_add", "cart_remove", "checkout_start",
         "purchase", "form", "media", "identify", "custom", "email_open"]


@st.composite
def wire_batches(draw: st.DrawFn) -> batch_pb2.Batch:
    strings = draw(st.lists(texts, max_size=6))
    batch = batch_pb2.Batch(site_key="demo", device_id=draw(texts), seq=draw(uint32),
                            stream=draw(uint32), base_time_ms=draw(int64),
                            sent_at_ms=draw(int64), age_ms=draw(uint32), strings=strings)
    batch.context.timezone = draw(texts)
    batch.context.currency = draw(texts)
    if draw(st.booleans()):
        batch.identity.user_id, batch.identity.email = draw(texts), draw(texts)
        batch.identity.signature = draw(texts)
    for _ in range(draw(st.integers(0, 6))):
        event = batch.events.add(dt_ms=draw(uint32))
        kind = draw(st.sampled_from(KINDS))
        payload = getattr(event, kind)
        payload.SetInParent()
        for field in payload.DESCRIPTOR.fields:
            if field.type == field.TYPE_STRING and not getattr(field, "is_repeated", False):
                setattr(payload, field.name, draw(texts))
            elif field.type in (field.TYPE_UINT32, field.TYPE_UINT64):
                setattr(payload, field.name, draw(st.integers(0, 2**32 - 1)))
            elif field.type in (field.TYPE_INT64, field.TYPE_SINT64):
                setattr(payload, field.name, draw(int64))
            elif field.type in (field.TYPE_INT32, field.TYPE_ENUM):
                setattr(payload, field.name, draw(st.integers(0, 5)))
    return batch


@FUZZ
@given(wire_batches())
def test_the_batch_decoder_raises_only_invalid_batch(batch: batch_pb2.Batch) -> None:
    try:
        decoded = decode_batch(batch, SITE, IngestSettings(), RECEIPT_MS)
    except InvalidBatch:
        return
    for event in decoded.events:  # whatever passes is within the stated bounds
        assert 946_684_800_000 <= event.at_ms <= RECEIPT_MS
        assert event.tz is None or len(event.tz) <= 64


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=20)
signal = st.one_of(
    st.tuples(st.integers(-5, 2**41), st.sampled_from([*list("pesvfaltix"), "q"]))
    .flatmap(lambda head: st.lists(json_values, max_size=5).map(lambda rest: [*head, *rest])),
    json_values)


@st.composite
def raw_payloads(draw: st.DrawFn) -> str:
    body: dict[str, Any] = {"v": draw(st.sampled_from([1, 1, 1, 2, "1"])), "site": "demo",
                            "device": draw(texts), "load": draw(st.integers(-1, 2**32)),
                            "t0": draw(st.integers(-1, 2**60)), "n": draw(st.integers(-1, 40)),
                            "s": draw(st.lists(signal, max_size=8))}
    for key in ("f", "k", "sent", "h", "ctx"):
        if draw(st.booleans()):
            body[key] = draw(st.lists(signal, max_size=4) if key == "h" else json_values)
    return json.dumps(body)


@FUZZ
@given(raw_payloads())
def test_the_raw_signal_parser_and_replay_raise_only_invalid_signals(body: str) -> None:
    loads = PageLoads(EdgeSettings())
    try:
        taken = loads.accept(parse_payload(body), user_agent=CHROME, now_ms=RECEIPT_MS)
    except InvalidSignals:
        return
    for batch in taken.batches:  # what it makes is a batch the wire carries
        batch_pb2.Batch.FromString(batch.SerializeToString())


def test_deep_nesting_and_huge_numbers_are_invalid_signals() -> None:
    for body in ['{"v": 1, "s": ' + "[" * 30_000 + "]" * 30_000 + "}",  # within 64 KB
                 json.dumps({"v": 1, "site": "demo", "device": "d", "load": 1, "t0": 1e300,
                             "s": []}),
                 json.dumps({"v": 1, "site": "demo", "device": "d", "load": 1,
                             "t0": 1_800_000_000_000, "s": [[0, "t", "cart_add", {
                                 "sku": "x", "price": 1e308, "qty": 10**30}]]})]:
        try:
            loads = PageLoads(EdgeSettings())
            loads.accept(parse_payload(body), user_agent=CHROME, now_ms=RECEIPT_MS)
        except InvalidSignals:
            continue
        raise AssertionError(f"accepted: {body[:80]}")


_ = events_pb2  # the payload kinds above are events_pb2.Event's oneof
