"""Operations: gRPC health checking and reflection answer, /metrics counts what happened (and
opens to this host or the operator only), and a graceful stop answers everything already
queued."""

import asyncio
import contextlib
import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from harness import (
    CART_RECOVERY,
    BatchBuilder,
    ingest_client,
    server,
    settings_for,
    write_sequences,
)
from starlette.requests import Request

from server.clock import ManualClock
from server.rpc.gen.pulsewire.v1 import ingest_pb2_grpc
from server.web.tracking import _may_read_metrics

T0 = 1_800_000_000_000


def _settings(tmp_path: Path):
    return settings_for(tmp_path, write_sequences(tmp_path / "seq", CART_RECOVERY))


def test_health_and_reflection_answer(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with (server(_settings(tmp_path)) as app,
                    grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel):
            health = health_pb2_grpc.HealthStub(channel)
            for service in ("", "pulsewire.v1.Ingest"):
                reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            replies = [r async for r in stub.ServerReflectionInfo(iter([request]))]
            names = {s.name for s in replies[0].list_services_response.service}
            assert {"pulsewire.v1.Ingest", "pulsewire.v1.Admin"} <= names

    asyncio.run(scenario())


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def test_metrics_count_events_rejections_commits_and_timer_lateness(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = ManualClock(T0)
        async with server(_settings(tmp_path), clock) as app, ingest_client(app) as client:
            batch = BatchBuilder().batch(T0, [
                (T0, "cart_add", {"cart_id": "c"}), (T0, "page_view", {"path": "/"})],
                email="ann@example.com")
            batch.resumable = True
            await client.Send(batch)
            with contextlib.suppress(grpc.aio.AioRpcError):
                await client.Send(BatchBuilder(site_key="wrong").batch(T0, []))
            clock.advance(60 * 60_000 + 250)  # the timer fires 250 ms late on this clock
            for _ in range(200):
                text = await asyncio.to_thread(_metrics, app.http_port)
                if "pulsewire_timer_lateness_ms_count 1.0" in text:
                    break
                await asyncio.sleep(0.02)
            assert "pulsewire_events_in_total 2.0" in text
            assert 'pulsewire_batches_rejected_total{reason="Unauthenticated"} 1.0' in text
            assert "pulsewire_timer_lateness_ms_count 1.0" in text
            assert 'pulsewire_timer_lateness_ms_bucket{le="250.0"} 1.0' in text
            assert 'pulsewire_timer_lateness_ms_bucket{le="100.0"} 0.0' in text
            assert "pulsewire_commit_ms_count" in text
            assert 'pulsewire_shard_queue_depth{shard="0"}' in text
            assert "pulsewire_resumed_streams 1.0" in text

    asyncio.run(scenario())


def test_a_graceful_stop_answers_every_batch_already_queued(tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = _settings(tmp_path)
        async with server(settings) as app:
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}")
            client = ingest_pb2_grpc.IngestStub(channel)
            sends = [asyncio.ensure_future(client.Send(BatchBuilder(f"d{i}").batch(
                T0, [(T0, "page_view", {"path": "/"})]))) for i in range(300)]
            await asyncio.sleep(0.05)  # calls in flight; now stop the server under them
        answers = await asyncio.gather(*sends, return_exceptions=True)
        await channel.close()
        acked = [a for a in answers if not isinstance(a, BaseException)]
        refused = [a for a in answers if isinstance(a, grpc.aio.AioRpcError)]
        assert len(acked) + len(refused) == len(sends) and acked
        assert {e.code() for e in refused} <= {grpc.StatusCode.UNAVAILABLE,
                                               grpc.StatusCode.CANCELLED}  # not yet taken in
        async with server(settings) as app:
            rows = [await s.read("SELECT count(*) FROM dedup") for s in app.shards]
            assert sum(r[0][0] for r in rows) >= len(acked)

    asyncio.run(scenario())


def _request(host: str, authorization: str = "") -> Request:
    headers = [(b"authorization", authorization.encode())] if authorization else []
    return Request({"type": "http", "client": (host, 40000), "headers": headers})


def test_metrics_are_for_this_host_or_the_operator() -> None:
    assert _may_read_metrics(_request("127.0.0.1"), "")
    assert _may_read_metrics(_request("::1"), "tok")
    assert not _may_read_metrics(_request("10.1.2.3"), "")
    assert not _may_read_metrics(_request("10.1.2.3", "Bearer tok"), "")
    assert not _may_read_metrics(_request("10.1.2.3", "Bearer nope"), "tok")
    assert _may_read_metrics(_request("10.1.2.3", "Bearer tok"), "tok")
