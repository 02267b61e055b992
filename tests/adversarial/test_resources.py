"""Resources: what one client can make the server hold or do. Oversized bodies are refused as
they arrive (the server's memory stays within a stated bound while many come at once), empty
batches write nothing, guessing site keys or the operator token slows to 30 tries a minute,
and a stream that sends nothing is ended."""

import asyncio
import contextlib
import re
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
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
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()  # else the transport may be collected later, still closing
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
    """Past 30 refused keys a minute, each further wrong site key is answered only after two
    seconds (while the right key from the same address, a proxy's other clients, still goes);
    past 30 refused operator tokens, nothing from the address reaches the Admin service."""
    settings = settings_for(tmp_path, write_sequences(tmp_path / "seq", CART_RECOVERY),
                            PULSEWIRE_SERVER__OPERATOR_TOKEN="the-real-token")

    async def guess(client, n: int) -> tuple[grpc.StatusCode, float]:
        batch = BatchBuilder("guesser", site_key=f"guess-{n}").batch(
            T0, [(T0, "page_view", {"path": "/"})])
        started = time.monotonic()
        try:
            await client.Send(batch)
        except grpc.aio.AioRpcError as err:
            return err.code(), time.monotonic() - started
        raise AssertionError(f"guess-{n} was taken")

    async def scenario() -> None:
        async with server(settings) as app, ingest_client(app) as client:
            answers = [await guess(client, n) for n in range(30)]
            assert all(code == grpc.StatusCode.UNAUTHENTICATED and took < 0.5
                       for code, took in answers)  # the budget: answered at once
            while answers[-1][0] == grpc.StatusCode.UNAUTHENTICATED and len(answers) < 36:
                answers.append(await guess(client, len(answers)))  # what leaked out meanwhile
            over = [await guess(client, len(answers) + n) for n in range(2)]
            for code, took in [answers[-1], *over]:  # and it stays over while guessing goes on
                assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and took >= 2.0
            right = BatchBuilder("neighbour").batch(T0, [(T0, "page_view", {"path": "/"})])
            assert (await client.Send(right)).accepted == 1  # a known key is not held up
            async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
                admin = admin_pb2_grpc.AdminStub(channel)
                admin_codes: list[grpc.StatusCode] = []
                while grpc.StatusCode.RESOURCE_EXHAUSTED not in admin_codes[-1:]:
                    assert len(admin_codes) < 40
                    try:
                        await admin.Stats(admin_pb2.StatsRequest(), metadata=(
                            ("authorization", f"Bearer guess-{len(admin_codes)}"),))
                    except grpc.aio.AioRpcError as err:
                        admin_codes.append(err.code())
                assert len(admin_codes) > 30  # the budget, and what leaked out meanwhile
                assert set(admin_codes[:30]) == {grpc.StatusCode.UNAUTHENTICATED}
                with pytest.raises(grpc.aio.AioRpcError) as right_token:  # not told apart
                    await admin.Stats(admin_pb2.StatsRequest(),
                                      metadata=(("authorization", "Bearer the-real-token"),))
                assert right_token.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
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
