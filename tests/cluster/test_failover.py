"""kill -9 of a shard owner under load, and a restart of the NATS server: the survivor takes the
dead node's shards within the lease TTL, no acked batch is lost, no email goes out twice, and
the taken shards' timers still fire; nodes ride out a NATS restart the same way."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from cluster_harness import Node, cart_nudge, cluster, wait_for
from harness import BatchBuilder

from collector.gen.pulsewire.v1 import batch_pb2
from server.mail.mailcatcher import MailCatcher
from server.rpc.gen.pulsewire.v1 import ingest_pb2_grpc
from server.storage.router import shard_of

OWNERS = {"node-a": [0, 1, 2, 3], "node-b": [4, 5, 6, 7]}
LEASE_TTL_S = 3.0
USERS = 160


def _batches(user: int) -> list[batch_pb2.Batch]:
    """A signed-in cart, then (for every third user) a purchase from the same device."""
    builder, now = BatchBuilder(f"device-{user:03d}"), time.time_ns() // 1_000_000
    out = [builder.batch(now, [(now, "cart_add", {"cart_id": f"c{user}"})],
                         email=f"user{user:03d}@example.com", user_id=f"user-{user:03d}")]
    if user % 3 == 0:
        out.append(builder.batch(now + 300, [(now + 300, "purchase", {
            "order_id": f"o{user}", "value_minor": 2500, "currency": "EUR"})]))
    return out


async def _send(stub: ingest_pb2_grpc.IngestStub, batch: batch_pb2.Batch) -> None:
    """Send until acked: UNAVAILABLE (the log out of reach) is retried, as a collector does."""
    while True:
        try:
            ack = await stub.Send(batch, timeout=10)
        except grpc.aio.AioRpcError as err:
            if err.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise
            await asyncio.sleep(0.2)
            continue
        assert ack.rejection.code == 0, ack
        return


async def _traffic(ports: list[int], acked: set[tuple[str, int]],
                   during: Callable[[int], object]) -> None:
    """Every user's batches, spread over `ports`; `during(i)` runs before user i's batches."""
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{p}") for p in ports]
    stubs = [ingest_pb2_grpc.IngestStub(c) for c in channels]
    try:
        for user in range(USERS):
            await asyncio.to_thread(during, user)
            first, *rest = _batches(user)
            stub = stubs[user % len(stubs)]
            await _send(stub, first)
            acked.add((first.device_id, first.seq))
            for batch in rest:  # after its cart: the purchase must not overtake it
                await _send(stub, batch)
                acked.add((batch.device_id, batch.seq))
            await asyncio.sleep(0.02)
    finally:
        for channel in channels:
            await channel.close()


def _applied(nodes: list[Node], held: dict[str, list[int]]) -> set[tuple[str, int]]:
    """(device, seq) of every batch applied, from the files of each shard's holder now."""
    found = set()
    for node in nodes:
        for shard in held.get(node.name, []):
            found |= {(d, s & 0xFFFFFFFF) for d, s in node.shard_rows(
                shard, "SELECT device, seq FROM dedup")}
    return found


def _check_mail(catcher: MailCatcher) -> None:
    expected = USERS - len(range(0, USERS, 3))
    recipients = [m.envelope_to for m in catcher.messages]
    assert len(recipients) == expected, len(recipients)
    assert len(set(recipients)) == expected  # nobody twice
    assert len({dict(m.headers).get("Message-ID") for m in catcher.messages}) == expected
    assert not any(f"user{u:03d}@" in str(r) for r in recipients for u in range(0, USERS, 3))


def test_kill_9_of_an_owner_fails_over_without_loss_or_double_send(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with cluster(tmp_path, [cart_nudge("2s")], OWNERS, lease_ttl_s=LEASE_TTL_S,
                           snapshot_every_s=1.0) as running:
            catcher, nodes = running.catcher, running.nodes
            survivor, victim = nodes
            killed_at: list[float] = []
            await running.start(OWNERS)

            def kill_midway(user: int) -> None:
                if user == USERS // 3:
                    victim.kill()
                    killed_at.append(time.monotonic())

            acked: set[tuple[str, int]] = set()
            await _traffic([survivor.grpc_port], acked, kill_midway)
            await wait_for(lambda: survivor.caught_up() == set(range(8)),
                           LEASE_TTL_S + 10, "the survivor holds all 8 shards")
            failover_s = time.monotonic() - killed_at[0]
            print(f"failover: all 8 shards caught up on the survivor {failover_s:.2f} s"
                  " after the kill")
            await catcher.wait_for(USERS - len(range(0, USERS, 3)), timeout_s=40)
            await asyncio.sleep(1.5)  # a second send would have come by now
            _check_mail(catcher)
            assert _applied([survivor], {"node-a": list(range(8))}) >= acked
            # The victim's shards' timers fired on the survivor after the kill.
            kill_ms = time.time_ns() // 1_000_000 - int(
                (time.monotonic() - killed_at[0]) * 1000)
            late = [row for shard in OWNERS["node-b"] for row in survivor.shard_rows(
                shard, "SELECT at_ms FROM send_log WHERE status = 'sent' AND at_ms > ?",
                (kill_ms,))]
            assert late, "no timer of a taken shard fired on the survivor"

            victim.start()  # back: its shards are handed back to it
            await wait_for(lambda: victim.caught_up() == set(OWNERS["node-b"])
                           and survivor.caught_up() == set(OWNERS["node-a"]), 20,
                           "the shards are handed back")
            assert _applied(nodes, OWNERS) >= acked
        assert failover_s <= LEASE_TTL_S + 1.5, failover_s

    asyncio.run(scenario())


def test_a_nats_restart_loses_no_acked_batch(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with cluster(tmp_path, [cart_nudge("2s")], OWNERS,
                           lease_ttl_s=LEASE_TTL_S) as running:
            catcher, nodes, nats = running.catcher, running.nodes, running.nats
            await running.start(OWNERS)

            def restart_midway(user: int) -> None:
                if user == USERS // 2:
                    nats.stop()
                    time.sleep(1.0)
                    nats.start()

            acked: set[tuple[str, int]] = set()
            await _traffic([n.grpc_port for n in nodes], acked, restart_midway)
            assert len(acked) == USERS + len(range(0, USERS, 3))
            await catcher.wait_for(USERS - len(range(0, USERS, 3)), timeout_s=40)
            await asyncio.sleep(1.5)
            _check_mail(catcher)
            await wait_for(lambda: all(n.caught_up() == set(OWNERS[n.name])
                                       for n in nodes), 20, "both nodes carry on")
            assert _applied(nodes, OWNERS) >= acked
            assert {shard_of(f"u:user-{u:03d}", 8) for u in range(USERS)} == set(range(8))

    asyncio.run(scenario())
