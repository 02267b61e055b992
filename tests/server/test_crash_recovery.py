"""kill -9 of the server while a client streams batches: after a restart every acked batch is
in the shard files, retried batches are applied once, timers that came due while the server was
down fire at once, and no email goes out twice."""

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
from harness import BatchBuilder, write_config, write_sequences

from server.mail.mailcatcher import MailCatcher
from server.rpc.gen.pulsewire.v1 import ingest_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
QUICK_CART = """
    id: quick-cart
    entry: {event: cart_add}
    exit_on: [{event: purchase}]
    steps:
      - wait_for: {event: purchase, timeout: 4s}
        on_event: exit
      - send: {template: cart-reminder, vars: {discount_code: SAVE15}}
"""
USERS = 120


async def _start(config: Path) -> tuple[subprocess.Popen[bytes], int]:
    process = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--config", str(config),
         "--log-level", "warning"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    line = await asyncio.to_thread(process.stdout.readline)
    assert line.startswith(b"pulsewire: gRPC on "), line
    return process, int(line.rsplit(b":", 1)[1])


async def _send_all(port: int, batches: dict[tuple[str, int], object],
                    acked: set[tuple[str, int]], stop_after: int | None) -> None:
    """Stream every unacked batch; note each ack. Returns when all are acked, or raises when
    the server goes away."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = ingest_pb2_grpc.IngestStub(channel)

        async def requests():
            for key, batch in list(batches.items()):
                if key not in acked:
                    yield batch
                    await asyncio.sleep(0.005)

        async for ack in stub.Stream(requests()):
            assert ack.rejection.code == 0, ack
            assert (ack.device_id, ack.seq) in batches
            acked.add((ack.device_id, ack.seq))
            if stop_after is not None and len(acked) >= stop_after:
                return


def test_kill_9_loses_no_acked_batch_and_sends_no_email_twice(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with MailCatcher(tmp_path / "mail", smtp_port=0, http_port=0) as catcher:
            config = write_config(tmp_path, write_sequences(tmp_path / 'seq', QUICK_CART),
                                  smtp_port=catcher.smtp_port)
            batches = {}
            for i in range(USERS):
                builder = BatchBuilder(f"dev-{i:03d}")
                batch = builder.batch(0, [(0, "cart_add", {"cart_id": f"c{i}"})],
                                      email=f"user{i:03d}@example.com", seq=i + 1)
                batch.base_time_ms = 0  # no client clock: the server places it at receipt
                batches[(batch.device_id, batch.seq)] = batch
            acked: set[tuple[str, int]] = set()
            process, port = await _start(config)
            try:
                await _send_all(port, batches, acked, stop_after=USERS // 2)
                assert catcher.messages == []  # killed before any 4 s timer came due
            finally:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
                process.stdout.close()
            assert USERS // 2 <= len(acked) < USERS
            await asyncio.sleep(5)  # the acked carts' 4 s timers come due while it is down
            process, port = await _start(config)
            try:
                retried = set(acked)
                acked_again: set[tuple[str, int]] = set()
                await _send_all(port, batches, acked_again, stop_after=None)
                assert acked_again | retried == set(batches)
                await catcher.wait_for(USERS, timeout_s=30)
                await asyncio.sleep(0.5)
            finally:
                process.send_signal(signal.SIGTERM)
                await asyncio.to_thread(process.wait, 20)
                process.stdout.close()
            recipients = [m.envelope_to for m in catcher.messages]
            assert len(recipients) == USERS == len(set(recipients))
            ids = [m.headers for m in catcher.messages]
            assert len({dict(h).get("Message-ID") for h in ids}) == USERS

    asyncio.run(scenario())
