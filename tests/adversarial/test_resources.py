"""Resources: what one client can make the server hold or do. Oversized bodies are refused as
they arrive (the server's memory stays within a stated bound while many come at once), empty
batches write nothing, guessing site keys or the operator token slows to 30 tries a minute,
and a stream that sends nothing is ended."""

import asyncio
import re
import subprocess
import sys
import time
from pathlib import Path

import grpc
from harness import (
    CART_RECOVERY,
    BatchBuilder,
    count,
    ingest_client,
    server,
    settings_for,
    write_config,
    write_sequences,
)
from test_email_flow import T0

from collector.gen.pulsewire.v1 import admin_pb2
from server.rpc.gen.pulsewire.v1 import admin_pb2_grpc, ingest_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
BODIES, BODY_MB = 24, 48  # 1.1 GB offered at once, were it read whole
PEAK_BOUND_MB = 400  # the server's whole resident memory at its peak, with everything loaded
GROWTH_BOUND_MB = 64  # what the flood may add to the peak it had before


def _peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


async def _post_huge(port: int, path: str, content_type: str) -> int:
    """POST BODY_MB megabytes as fast as the socket takes them; the server's status code."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    size = BODY_MB * 1024 * 1024
    writer.write(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
                 f"Transfer-Encoding: chunked\r\n\r\n".encode())
    chunk = b"{" * (1 << 20)
    try:
        for _ in range(size // len(chunk)):
            writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
    except ConnectionError:
        pass  # refused mid-body: the server stopped reading, as it should
    try:
        line = await asyncio.wait_for(reader.readline(), 30)
    except (ConnectionError, TimeoutError):
        line = b""
    writer.close()
    return int(line.split()[1]) if line.startswith(b"HTTP/1.1") else 0


def test_concurrent_oversized_bodies_keep_the_server_within_its_memory_bound(
        tmp_path: Path) -> None:
    config = write_config(tmp_path, write_sequences(tmp_path / "seq", CART_RECOVERY))
    process = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--config",
                                str(config), "--log-level", "error"], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert process.stdout is not None
        process.stdout.readline()
        port = int(process.stdout.readline().rsplit(b":", 1)[1])
        before = _peak_rss_mb(process.pid)
        paths = [("/pw/v1/signals", "text/plain"), ("/pw/v1/beacon", "text/plain"),
                 ("/pulsewire.v1.Ingest/Send", "application/grpc-web+proto")]
        started = time.monotonic()

        async def flood() -> list[int]:
            return await asyncio.gather(*(_post_huge(port, *paths[i % 3])
                                          for i in range(BODIES)))
        statuses = asyncio.run(flood())
        peak = _peak_rss_mb(process.pid)
        print(f"\n{BODIES} bodies of {BODY_MB} MB at once in {time.monotonic() - started:.1f} s:"
              f" server peak {peak:.0f} MB (before {before:.0f} MB), statuses {set(statuses)}")
        assert set(statuses) <= {413, 200, 0}  # refused (gRPC-Web answers 200 + a status)
        assert peak < PEAK_BOUND_MB and peak - before < GROWTH_BOUND_MB
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def test_a_batch_that_carries_nothing_writes_no_row(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, write_sequences(tmp_path / "seq", CART_RECOVERY))

    async def scenario() -> None:
        async with server(settings) as app, ingest_client(app) as client:
            for n in range(200):
                ack = await client.Send(BatchBuilder(f"empty-{n}").batch(T0, []))
                assert ack.accepted == 0
            unsigned = BatchBuilder("claim").batch(T0, [], email="eve@example.com", signed=False)
            assert (await client.Send(unsigned)).accepted == 0
            assert await count(app, "SELECT count(*) FROM users") == 0
            assert await count(app, "SELECT count(*) FROM dedup") == 0
            signed = BatchBuilder("app").batch(T0, [], email="ann@example.com", user_id="ann")
            await client.Send(signed)  # an app that names its signed-in user: kept
            assert await count(app, "SELECT count(*) FROM users WHERE key = 'u:ann'") == 1
    asyncio.run(scenario())


def test_guessing_site_keys_and_the_operator_token_slows_to_a_crawl(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, write_sequences(tmp_path / "seq", CART_RECOVERY),
                            PULSEWIRE_SERVER__OPERATOR_TOKEN="the-real-token")

    async def scenario() -> None:
        async with server(settings) as app, ingest_client(app) as client:
            codes = []
            for n in range(40):
                batch = BatchBuilder("guesser", site_key=f"guess-{n}").batch(
                    T0, [(T0, "page_view", {"path": "/"})])
                try:
                    await client.Send(batch)
                except grpc.aio.AioRpcError as err:
                    codes.append(err.code())
            assert codes[:30] == [grpc.StatusCode.UNAUTHENTICATED] * 30
            assert set(codes[30:]) == {grpc.StatusCode.RESOURCE_EXHAUSTED}
            right = BatchBuilder("guesser").batch(T0, [(T0, "page_view", {"path": "/"})])
            try:  # a right guess now is not told apart
                await client.Send(right)
                raise AssertionError("a right key got through while the peer waits")
            except grpc.aio.AioRpcError as err:
                assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
                admin = admin_pb2_grpc.AdminStub(channel)
                admin_codes = []
                for n in range(35):
                    try:
                        await admin.Stats(admin_pb2.StatsRequest(),
                                          metadata=(("authorization", f"Bearer guess-{n}"),))
                    except grpc.aio.AioRpcError as err:
                        admin_codes.append(err.code())
                assert admin_codes[:30] == [grpc.StatusCode.UNAUTHENTICATED] * 30
                assert set(admin_codes[30:]) == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    asyncio.run(scenario())


def test_a_stream_that_sends_nothing_is_ended(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, write_sequences(tmp_path / "seq", CART_RECOVERY),
                            PULSEWIRE_INGEST__STREAM_IDLE_S="1")

    async def scenario() -> None:
        async with server(settings) as app, \
                grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
            stub = ingest_pb2_grpc.IngestStub(channel)
            quiet = asyncio.Event()

            async def nothing():  # opens the stream, then never sends a batch
                await quiet.wait()
                yield  # pragma: no cover
            started = time.monotonic()
            call = stub.Stream(nothing())
            try:
                async for _ in call:
                    pass
                raise AssertionError("the stream was not ended")
            except grpc.aio.AioRpcError as err:
                assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert time.monotonic() - started < 5
    asyncio.run(scenario())
