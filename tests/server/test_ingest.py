"""Ingest over real gRPC: acks after commit, exactly-once by (device, seq), clear statuses for
bad batches, and a stream that carries on past them."""

import asyncio
from pathlib import Path

import grpc
import pytest
from harness import (
    CART_RECOVERY,
    BatchBuilder,
    ingest_client,
    server,
    settings_for,
    stat,
    write_sequences,
)

T0 = 1_800_000_000_000


def _settings(tmp_path: Path, **env: str):
    return settings_for(tmp_path, write_sequences(tmp_path / "seq", CART_RECOVERY), **env)




def test_the_same_batch_sent_three_times_is_applied_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with server(_settings(tmp_path)) as app, ingest_client(app) as client:
            batch = BatchBuilder().batch(T0, [(T0, "cart_add", {"sku": "s1", "cart_id": "c1"})],
                                         email="ann@example.com")
            acks = [await client.Send(batch) for _ in range(3)]
            assert [(a.seq, a.accepted, a.duplicate) for a in acks] == [
                (1, 1, False), (1, 0, True), (1, 0, True)]
            assert await stat(app, "entered") == 1

    asyncio.run(scenario())


def test_wrong_site_key_is_unauthenticated(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with server(_settings(tmp_path)) as app, ingest_client(app) as client:
            batch = BatchBuilder(site_key="nope").batch(T0, [(T0, "page_view", {"path": "/"})])
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await client.Send(batch)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "site key" in (err.value.details() or "")

    asyncio.run(scenario())


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda b: b.events[0].scroll.__setattr__("path", 9), "string index 9 is outside"),
    (lambda b: b.events[0].scroll.__setattr__("depth_pct", 140), "depth_pct: 140 is over 100"),
    (lambda b: b.__setattr__("device_id", ""), "device_id"),
    (lambda b: b.__setattr__("seq", 0), "seq"),
    (lambda b: b.events.add(), "events[1]: no payload is set"),
])
def test_malformed_batches_are_invalid_argument_saying_what(tmp_path: Path, mutate,
                                                             expected: str) -> None:
    async def scenario() -> None:
        async with server(_settings(tmp_path)) as app, ingest_client(app) as client:
            batch = BatchBuilder().batch(T0, [(T0, "scroll", {"path": "/p", "depth_pct": 50})])
            mutate(batch)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await client.Send(batch)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert expected in (err.value.details() or "")

    asyncio.run(scenario())


def test_an_oversized_batch_is_resource_exhausted(tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = _settings(tmp_path, PULSEWIRE_INGEST__MAX_BATCH_BYTES="2000")
        async with server(settings) as app, ingest_client(app) as client:
            events = [(T0 + i, "page_view", {"path": f"/p/{i}"}) for i in range(300)]
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await client.Send(BatchBuilder().batch(T0, events))
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    asyncio.run(scenario())


def test_a_stream_answers_every_batch_and_goes_on_past_bad_ones(tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = _settings(tmp_path, PULSEWIRE_INGEST__MAX_BATCH_BYTES="4000")
        async with server(settings) as app, ingest_client(app) as client:
            good = BatchBuilder("dev-good")
            batches = [good.batch(T0, [(T0, "page_view", {"path": "/a"})])]
            wrong_key = BatchBuilder("dev-x", site_key="nope").batch(T0, [(T0, "page_view", {})])
            malformed = BatchBuilder("dev-y").batch(T0, [(T0, "scroll", {"path": "/p"})])
            malformed.events[0].scroll.path = 7
            oversized = BatchBuilder("dev-z").batch(
                T0, [(T0 + i, "page_view", {"path": f"/p/{i}"}) for i in range(400)])
            batches += [wrong_key, malformed, oversized,
                        good.batch(T0 + 5, [(T0 + 5, "page_view", {"path": "/b"})])]

            async def requests():
                for batch in batches:
                    yield batch

            acks = [ack async for ack in client.Stream(requests())]
            assert len(acks) == 5
            codes = sorted(a.rejection.code for a in acks)
            assert codes == [0, 0, grpc.StatusCode.INVALID_ARGUMENT.value[0],
                             grpc.StatusCode.RESOURCE_EXHAUSTED.value[0],
                             grpc.StatusCode.UNAUTHENTICATED.value[0]]
            accepted = [a for a in acks if a.rejection.code == 0]
            assert sorted((a.device_id, a.seq, a.accepted) for a in accepted) == [
                ("dev-good", 1, 1), ("dev-good", 2, 1)]
            assert {a.device_id for a in acks} == {"dev-good", "dev-x", "dev-y", "dev-z"}

    asyncio.run(scenario())


def test_acked_events_are_in_the_shard_files_after_a_restart(tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = _settings(tmp_path)
        builder = BatchBuilder()
        async with server(settings) as app, ingest_client(app) as client:
            for i in range(20):
                await client.Send(builder.batch(T0 + i, [(T0 + i, "cart_add", {"cart_id": "c"})],
                                                email=f"u{i}@example.com"))
        async with server(settings) as app:
            users = sum([(await s.read("SELECT count(*) FROM users"))[0][0] for s in app.shards])
            dedup = sum([(await s.read("SELECT count(*) FROM dedup"))[0][0] for s in app.shards])
            assert (users, dedup) == (20, 20)

    asyncio.run(scenario())

