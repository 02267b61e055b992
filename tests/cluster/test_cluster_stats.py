"""Stats in the distributed mode: every node's answer counts every shard, its own read live and
the others' as their holders shared them, and still does while a shard's owner is down; with
NATS out of reach the answer is UNAVAILABLE, not a partial count."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import grpc
from cluster_harness import OPERATOR_TOKEN, Node, cluster, wait_for
from harness import BatchBuilder

from collector.gen.pulsewire.v1 import admin_pb2
from server.rpc.gen.pulsewire.v1 import admin_pb2_grpc, ingest_pb2_grpc
from server.storage.router import shard_of

# Long waits: the counters under test are the entries, and no email goes out meanwhile.
SEQUENCES = ["""
    id: cart-nudge
    entry: {event: cart_add}
    key: user
    steps:
      - wait_for: {event: purchase, timeout: 1h}
        on_event: exit
      - send: {template: cart-reminder}
""", """
    id: pricing-visit
    entry: {event: page_view, where: {path: /pricing}}
    steps:
      - wait_for: {event: purchase, timeout: 1h}
        on_event: exit
      - send: {template: cart-reminder}
"""]
OWNERS = {"node-a": [0, 1, 2, 3], "node-b": [4, 5, 6, 7]}
USERS = 40
SHARDS = 8
LEASE_TTL_S = 3.0


def test_every_node_answers_stats_for_every_shard(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with cluster(tmp_path, SEQUENCES, OWNERS, failover=False,
                           lease_ttl_s=LEASE_TTL_S) as running:
            node_a, node_b = running.nodes
            await running.start(OWNERS)
            expected = await _traffic(running.nodes)
            users_on = {shard_of(f"u:user-{u:03d}", SHARDS) for u in range(USERS)}
            assert users_on & set(OWNERS["node-a"]) and users_on & set(OWNERS["node-b"])
            await wait_for(lambda: _entered_in_files(running.nodes) == expected, 20,
                           f"every entry applied to its shard file: {expected}")
            for node in running.nodes:
                await wait_for(lambda n=node: _entered_by_stats(n) == expected, 10,
                               f"{node.name}'s Stats counts every shard: {expected}")
                assert node.caught_up() == set(OWNERS[node.name])  # it holds only its own

            # node-b stops (failover off: nobody takes its shards); node-a still counts them,
            # as node-b shared them on its way out.
            await asyncio.to_thread(node_b.stop)
            assert _entered_by_stats(node_a) == expected
            await asyncio.sleep(LEASE_TTL_S + 0.5)  # a TTL on the counters would end them now
            assert _entered_by_stats(node_a) == expected
            assert node_a.caught_up() == set(OWNERS["node-a"])

            await asyncio.to_thread(node_b.start)
            await wait_for(lambda: node_b.caught_up() == set(OWNERS["node-b"]), 15,
                           "node-b holds its shards again")
            for node in running.nodes:
                await wait_for(lambda n=node: _entered_by_stats(n) == expected, 10,
                               f"{node.name}'s Stats after node-b's restart: {expected}")

            running.nats.stop()
            await wait_for(lambda: _stats_code(node_a) == grpc.StatusCode.UNAVAILABLE, 15,
                           "Stats is UNAVAILABLE while NATS is away")
            running.nats.start()
            await wait_for(lambda: _stats_code(node_a) == grpc.StatusCode.OK
                           and _entered_by_stats(node_a) == expected, 20,
                           "Stats answers again once NATS is back")

    asyncio.run(scenario())


async def _traffic(nodes: list[Node]) -> dict[str, int]:
    """Each user's signed-in batch (a cart; every third one the pricing page too), to the
    nodes in turn; returns the entries it makes, per sequence."""
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{n.grpc_port}") for n in nodes]
    stubs = [ingest_pb2_grpc.IngestStub(c) for c in channels]
    entered: Counter[str] = Counter()
    try:
        for u in range(USERS):
            now = time.time_ns() // 1_000_000
            events = [(now, "cart_add", {"cart_id": f"c{u}", "sku": f"sku-{u % 5}"})]
            entered["cart-nudge"] += 1
            if u % 3 == 0:
                events.append((now + 1, "page_view", {"path": "/pricing"}))
                entered["pricing-visit"] += 1
            batch = BatchBuilder(f"device-{u:03d}").batch(
                now, events, email=f"user{u:03d}@example.com", user_id=f"user-{u:03d}")
            ack = await stubs[u % len(stubs)].Send(batch, timeout=10)
            assert ack.accepted == len(events) and not ack.duplicate
    finally:
        for channel in channels:
            await channel.close()
    return dict(entered)


def _entered_by_stats(node: Node) -> dict[str, int]:
    """The `entered` count of each sequence in the node's Admin Stats answer."""
    with grpc.insecure_channel(f"127.0.0.1:{node.grpc_port}") as channel:
        answer: admin_pb2.StatsResponse = admin_pb2_grpc.AdminStub(channel).Stats(
            admin_pb2.StatsRequest(), metadata=[("authorization", f"Bearer {OPERATOR_TOKEN}")],
            timeout=10)
    return {seq.sequence: seq.entered for seq in answer.sequences if seq.entered}


def _stats_code(node: Node) -> grpc.StatusCode:
    try:
        _entered_by_stats(node)
    except grpc.RpcError as err:
        return err.code()
    return grpc.StatusCode.OK


def _entered_in_files(nodes: list[Node]) -> dict[str, int]:
    """The `entered` counters of every shard, read from each shard's file on its owner."""
    total: Counter[str] = Counter()
    for node in nodes:
        for shard in OWNERS[node.name]:
            for sequence, n in node.shard_rows(
                    shard, "SELECT sequence, n FROM stats WHERE step = -1"
                           " AND counter = 'entered'"):
                total[sequence] += n
    return dict(total)
