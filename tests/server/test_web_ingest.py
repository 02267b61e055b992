"""Batches over the HTTP listener: gRPC-Web unary Send, beacons and raw signals, with CORS
limited to each site's origins; plus the page-load stream in the idempotency key."""

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, NamedTuple

from harness import (
    CART_RECOVERY,
    SITE_KEY,
    SITE_SECRET,
    BatchBuilder,
    count,
    server,
    settings_for,
    write_sequences,
)

from collector import grpc_web, sign_email
from collector.gen.pulsewire.v1 import batch_pb2
from server.app import App

ORIGIN = "https://shop.example.com"
T0 = 1_800_000_000_000
BROWSER_UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/131.0.0.0 Safari/537.36")
GRPC_WEB = {"content-type": "application/grpc-web+proto", "x-grpc-web": "1"}


class Answer(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes


def _request(url: str, body: bytes | None, headers: dict[str, str], method: str) -> Answer:
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return Answer(answer.status, {k.lower(): v for k, v in answer.headers.items()},
                          answer.read())
    except urllib.error.HTTPError as err:
        return Answer(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())


async def http(app: App, path: str, body: bytes | None = None, *, method: str = "POST",
               **headers: str) -> Answer:
    url = f"http://127.0.0.1:{app.http_port}{path}"
    named = {k.replace("_", "-"): v for k, v in headers.items()}
    return await asyncio.to_thread(_request, url, body, named, method)


def frame(batch: batch_pb2.Batch) -> bytes:
    return grpc_web.frame(batch.SerializeToString())


def read_frames(body: bytes) -> list[tuple[int, bytes]]:
    return grpc_web.split_frames(body)


def run(tmp: Path, scenario: Callable[[App], Coroutine[Any, Any, None]]) -> None:
    settings = settings_for(
        tmp, write_sequences(tmp / "seq", CART_RECOVERY),
        PULSEWIRE_SITES=f'[{{key="{SITE_KEY}", secret="{SITE_SECRET}", origins=["{ORIGIN}"], '
                        f'signals={{hover_min_ms=300}}}}]')

    async def main() -> None:
        async with server(settings) as app:
            await scenario(app)
    asyncio.run(main())


async def applied(app: App, device: str) -> int:
    return await count(app, "SELECT coalesce(sum(accepted), 0) FROM dedup WHERE device = ?",
                       (device,))


def cart_add(builder: BatchBuilder, **kwargs: Any) -> batch_pb2.Batch:
    return builder.batch(T0, [(T0, "cart_add", {"sku": "lp14", "qty": 1, "price_minor": 1299})],
                         **kwargs)


def test_grpc_web_send_acks_in_a_data_frame_then_ok_trailers(tmp_path: Path) -> None:
    async def scenario(app: App) -> None:
        batch = cart_add(BatchBuilder("web-1"))
        answer = await http(app, "/pulsewire.v1.Ingest/Send", frame(batch), **GRPC_WEB)
        assert answer.status == 200
        assert answer.headers["content-type"] == "application/grpc-web+proto"
        (data_flags, data), (trailer_flags, trailers) = read_frames(answer.body)
        ack = batch_pb2.Ack.FromString(data)
        assert (data_flags, ack.seq, ack.device_id, ack.accepted) == (0, 1, "web-1", 1)
        assert trailer_flags == 0x80 and b"grpc-status: 0\r\n" in trailers
        again = await http(app, "/pulsewire.v1.Ingest/Send", frame(batch), **GRPC_WEB)
        assert batch_pb2.Ack.FromString(read_frames(again.body)[0][1]).duplicate
        assert await applied(app, "web-1") == 1
    run(tmp_path, scenario)


def test_grpc_web_refusals_are_trailers_only_and_name_the_fault(tmp_path: Path) -> None:
    async def scenario(app: App) -> None:
        bad = cart_add(BatchBuilder("web-2"))
        bad.events[0].cart_add.sku = 42  # outside the string table
        answer = await http(app, "/pulsewire.v1.Ingest/Send", frame(bad), **GRPC_WEB)
        assert (answer.status, answer.headers["grpc-status"], answer.body) == (200, "3", b"")
        assert "events[0].cart_add.sku" in urllib.parse.unquote(answer.headers["grpc-message"])
        wrong_key = cart_add(BatchBuilder("web-2", site_key="nope"))
        answer = await http(app, "/pulsewire.v1.Ingest/Send", frame(wrong_key), **GRPC_WEB)
        assert answer.headers["grpc-status"] == "16"
        answer = await http(app, "/pulsewire.v1.Ingest/Send", b"\x00\x00\x00\x00\x09abc",
                            **GRPC_WEB)
        assert answer.headers["grpc-status"] == "3"
        assert "announced" in urllib.parse.unquote(answer.headers["grpc-message"])
        answer = await http(app, "/pulsewire.v1.Ingest/Send", frame(bad),
                            content_type="application/json")
        assert answer.status == 415
        good = cart_add(BatchBuilder("web-2"), seq=5)  # the stream of calls goes on
        answer = await http(app, "/pulsewire.v1.Ingest/Send", frame(good), **GRPC_WEB)
        assert batch_pb2.Ack.FromString(read_frames(answer.body)[0][1]).accepted == 1
    run(tmp_path, scenario)


def test_cors_is_limited_to_the_sites_origins(tmp_path: Path) -> None:
    async def scenario(app: App) -> None:
        preflight = await http(app, "/pulsewire.v1.Ingest/Send", method="OPTIONS",
                               origin=ORIGIN, access_control_request_method="POST",
                               access_control_request_headers="content-type,x-grpc-web")
        assert preflight.status == 204
        assert preflight.headers["access-control-allow-origin"] == ORIGIN
        assert "x-grpc-web" in preflight.headers["access-control-allow-headers"]
        assert "grpc-status" in preflight.headers["access-control-expose-headers"]
        stranger = await http(app, "/pulsewire.v1.Ingest/Send", method="OPTIONS",
                              origin="https://evil.example", access_control_request_method="POST")
        assert stranger.status == 403
        assert "access-control-allow-origin" not in stranger.headers
        batch = cart_add(BatchBuilder("web-3"))
        answer = await http(app, "/pulsewire.v1.Ingest/Send", frame(batch),
                            origin="https://evil.example", **GRPC_WEB)
        assert answer.headers["grpc-status"] == "16"
        assert await applied(app, "web-3") == 0
        answer = await http(app, "/pulsewire.v1.Ingest/Send", frame(batch), origin=ORIGIN,
                            **GRPC_WEB)
        assert answer.headers["access-control-allow-origin"] == ORIGIN
        assert await applied(app, "web-3") == 1
        own = f"http://127.0.0.1:{app.http_port}"  # this server's own pages (the demo shop)
        batch.seq = 2
        answer = await http(app, "/pulsewire.v1.Ingest/Send", frame(batch), origin=own,
                            **GRPC_WEB)
        assert "grpc-status" not in answer.headers
        assert await applied(app, "web-3") == 2
    run(tmp_path, scenario)


def test_a_beacon_carries_framed_batches_as_text_plain(tmp_path: Path) -> None:
    async def scenario(app: App) -> None:
        builder = BatchBuilder("beacon-1")
        first, second = cart_add(builder), cart_add(builder)
        body = frame(first) + frame(second)
        answer = await http(app, "/pw/v1/beacon", body, content_type="text/plain",
                            origin=ORIGIN)
        assert answer.status == 200
        assert json.loads(answer.body) == {"accepted": 2, "refused": []}
        assert await applied(app, "beacon-1") == 2
        again = await http(app, "/pw/v1/beacon", body, content_type="text/plain")
        assert json.loads(again.body)["accepted"] == 0  # resent: deduplicated
        elsewhere = await http(app, "/pw/v1/beacon", frame(cart_add(builder)),
                               content_type="text/plain", origin="https://evil.example")
        assert json.loads(elsewhere.body)["refused"] == ["seq 3: origin not allowed"]
        broken = await http(app, "/pw/v1/beacon", body[:-3], content_type="text/plain")
        assert broken.status == 400 and b"announced" in broken.body
        assert await applied(app, "beacon-1") == 2
    run(tmp_path, scenario)


def test_two_page_loads_of_one_device_never_collide(tmp_path: Path) -> None:
    async def scenario(app: App) -> None:
        tab_a, tab_b = cart_add(BatchBuilder("tabs")), cart_add(BatchBuilder("tabs"))
        tab_a.stream, tab_b.stream = 11, 12  # both seq 1
        for batch in (tab_a, tab_b):
            answer = await http(app, "/pulsewire.v1.Ingest/Send", frame(batch), **GRPC_WEB)
            ack = batch_pb2.Ack.FromString(read_frames(answer.body)[0][1])
            assert (ack.stream, ack.seq, ack.duplicate) == (batch.stream, 1, False)
        assert await applied(app, "tabs") == 2
        tab_a.stream = 2**31
        answer = await http(app, "/pulsewire.v1.Ingest/Send", frame(tab_a), **GRPC_WEB)
        assert "stream" in urllib.parse.unquote(answer.headers["grpc-message"])
    run(tmp_path, scenario)


def raw_payload(chunk: int, signals: list[list[Any]], device: str = "raw-1",
                **extra: Any) -> bytes:
    return json.dumps({"v": 1, "site": SITE_KEY, "device": device, "load": 77, "t0": T0,
                       "n": chunk, "ctx": {"tz": "Europe/Berlin", "cur": "usd"},
                       "s": signals, **extra}).encode()


SESSION = [[0, "p", "/product/lp14", "Laptop", ""], [900, "s", 80], [1000, "e", "card:lp14"],
           [1500, "l", "card:lp14"]]
IDENTIFY = [2000, "i", "", "ann@example.com", sign_email(SITE_SECRET, "ann@example.com"), {}]
CART = [2100, "t", "cart_add", {"sku": "lp14", "qty": 1, "price": 1299}]
AFTER_SESSION = {"h": SESSION, "k": 1500}  # what a chunk after SESSION carries of it


def test_raw_signals_become_the_same_events_and_drive_sequences(tmp_path: Path) -> None:
    async def scenario(app: App) -> None:
        answer = await http(app, "/pw/v1/signals", raw_payload(0, SESSION),
                            content_type="text/plain", user_agent=BROWSER_UA, origin=ORIGIN)
        assert answer.status == 204
        answer = await http(app, "/pw/v1/signals",
                            raw_payload(1, [IDENTIFY, CART, [2200, "x"]], **AFTER_SESSION),
                            content_type="text/plain", user_agent=BROWSER_UA)
        assert answer.status == 204
        assert await count(app, "SELECT count(*) FROM users WHERE email = ?",
                           ("ann@example.com",)) == 1
        # page_view, scroll 25/50/70 and the max 80, hover (300 ms site setting), cart_add,
        # identify, dwell at page end: everything arrived, nothing twice
        first = await applied(app, "raw-1")
        assert first >= 8
        again = await http(app, "/pw/v1/signals",
                           raw_payload(1, [IDENTIFY, CART, [2200, "x"]], **AFTER_SESSION),
                           content_type="text/plain", user_agent=BROWSER_UA)
        assert again.status == 204 and await applied(app, "raw-1") == first
        assert await count(app, "SELECT count(*) FROM outbox") == 0  # reminder waits 60 min
        assert app.collect is not None and app.collect.counts["raw_chunks"] == 3
    run(tmp_path, scenario)


def test_raw_signals_from_bots_bad_payloads_and_strangers_change_nothing(tmp_path: Path) -> None:
    async def scenario(app: App) -> None:
        headless = BROWSER_UA.replace("Chrome/", "HeadlessChrome/")
        answer = await http(app, "/pw/v1/signals", raw_payload(0, SESSION, device="bot-1"),
                            user_agent=headless)
        assert answer.status == 204
        answer = await http(app, "/pw/v1/signals", raw_payload(0, SESSION, device="bot-2"),
                            user_agent="curl/8.5.0")
        assert app.collect is not None
        assert app.collect.dropped_bots() == {"headless browser": 1, "http library": 1}
        bad = raw_payload(0, [*SESSION, [2000, "s", "deep"]], device="bad-1")
        answer = await http(app, "/pw/v1/signals", bad, user_agent=BROWSER_UA)
        assert (answer.status, answer.body) == (400, b"s[4].depth: must be a number")
        answer = await http(app, "/pw/v1/signals", b"{not json", user_agent=BROWSER_UA)
        assert answer.status == 400 and answer.body.startswith(b"payload: not JSON")
        answer = await http(app, "/pw/v1/signals", raw_payload(0, SESSION, device="far-1"),
                            user_agent=BROWSER_UA, origin="https://evil.example")
        assert answer.status == 403
        for device in ("bot-1", "bot-2", "bad-1", "far-1"):
            assert await applied(app, device) == 0
    run(tmp_path, scenario)


def test_site_config_serves_the_collector_settings(tmp_path: Path) -> None:
    async def scenario(app: App) -> None:
        answer = await http(app, f"/pw/v1/config/{SITE_KEY}", method="GET")
        config = json.loads(answer.body)
        assert config["signals"]["hover_min_ms"] == 300
        assert config["signals"]["scroll_thresholds_pct"] == [25, 50, 70, 90]
        assert config["batch_max_age_ms"] == 5_000
        assert (await http(app, "/pw/v1/config/nope", method="GET")).status == 404
    run(tmp_path, scenario)


def test_batches_from_declared_bots_are_acked_counted_and_never_applied(tmp_path: Path) -> None:
    async def scenario(app: App) -> None:
        batch = cart_add(BatchBuilder("robot"), email="ann@example.com")
        batch.context.device_class = batch_pb2.Context.BOT
        answer = await http(app, "/pulsewire.v1.Ingest/Send", frame(batch), **GRPC_WEB)
        ack = batch_pb2.Ack.FromString(read_frames(answer.body)[0][1])
        assert (ack.seq, ack.accepted, ack.rejection.code) == (1, 0, 0)
        assert await applied(app, "robot") == 0
        assert await count(app, "SELECT count(*) FROM users") == 0
        assert app.metrics.bot_events._value.get() == 1
    run(tmp_path, scenario)


def test_resumed_batches_over_grpc_web_keep_the_origin_check(tmp_path: Path) -> None:
    async def scenario(app: App) -> None:
        first = cart_add(BatchBuilder("web-r"))
        first.stream, first.resumable = 4, True
        answer = await http(app, "/pulsewire.v1.Ingest/Send", frame(first), origin=ORIGIN,
                            **GRPC_WEB)
        ack = batch_pb2.Ack.FromString(read_frames(answer.body)[0][1])
        assert ack.resume and ack.strings_kept == len(first.strings) and ack.stream == 4
        later = batch_pb2.Batch(resume=ack.resume, seq=2, strings_from=ack.strings_kept,
                                age_ms=1_000)
        later.events.add(dt_ms=0).cart_add.sku = 1  # "lp14", a kept string
        stranger = await http(app, "/pulsewire.v1.Ingest/Send", frame(later),
                              origin="https://evil.example", **GRPC_WEB)
        assert stranger.headers["grpc-status"] == "16"
        answer = await http(app, "/pulsewire.v1.Ingest/Send", frame(later), origin=ORIGIN,
                            **GRPC_WEB)
        resumed = batch_pb2.Ack.FromString(read_frames(answer.body)[0][1])
        assert (resumed.device_id, resumed.stream, resumed.accepted) == ("web-r", 4, 1)
        assert await applied(app, "web-r") == 2
        later.seq, later.resume = 3, ack.resume ^ 0xFFFF  # a token this server never gave
        unknown = await http(app, "/pulsewire.v1.Ingest/Send", frame(later),
                             origin="https://evil.example", **GRPC_WEB)
        assert unknown.headers["grpc-status"] == "9"  # FAILED_PRECONDITION: send it in full
        assert "in full" in urllib.parse.unquote(unknown.headers["grpc-message"])
        later.resume = ack.resume
        beacon = await http(app, "/pw/v1/beacon", frame(later), origin=ORIGIN,
                            content_type="text/plain")
        assert json.loads(beacon.body) == {"accepted": 1, "refused": []}
        assert await applied(app, "web-r") == 3
    run(tmp_path, scenario)
