"""Two server processes, eight shards, one nats-server: traffic to either node reaches the
shard's owner, and the same event stream gives exactly the sends `pulsewire backtest` decides
(holdout and split arms drawn alike)."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import grpc
from cluster_harness import OPERATOR_TOKEN, Node, cart_nudge, cluster, wait_for
from harness import BatchBuilder

from collector.gen.pulsewire.v1 import admin_pb2
from server.backtest.replay import replay_history
from server.engine import Engine, compile_rules
from server.rpc.gen.pulsewire.v1 import admin_pb2_grpc, ingest_pb2_grpc
from server.sequences import load_paths
from server.storage.router import shard_of

PRICING = """
    id: pricing-visit
    entry: {event: page_view, where: {path: /pricing}}
    holdout: 0.3
    steps:
      - split:
          arms:
            - {name: plain, weight: 1, steps: [{send: {template: cart-reminder}}]}
            - name: coded
              weight: 1
              steps: [{send: {template: cart-reminder, vars: {discount_code: B}}}]
"""
OWNERS = {"node-a": [0, 1, 2, 3], "node-b": [4, 5, 6, 7]}
USERS = 48


def _stream(rng: random.Random, start_ms: int) -> list[tuple[int, str, int, list]]:
    """(send at, user, batch number, events): an identified first batch (the device's claim),
    then an anonymous one a second later that routes through the device's alias."""
    plan = []
    for u in range(USERS):
        at = start_ms + rng.randrange(0, 1500)
        first = [(at, "page_view", {"path": rng.choice(["/", "/pricing", "/shoes"])}),
                 (at + 5, "cart_add", {"cart_id": f"c{u}", "sku": f"sku-{u % 7}"})]
        second_at = at + 1000
        second = [(second_at, "scroll", {"path": "/cart", "depth_pct": 80})]
        if u % 3 == 0:
            second.append((second_at + 1, "purchase", {"order_id": f"o{u}", "value_minor": 5000,
                                                       "currency": "EUR"}))
        plan += [(at, u, 1, first), (second_at + 1, u, 2, second)]
    return sorted(plan, key=lambda p: p[0])


def test_two_nodes_route_to_owners_and_match_the_backtest(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with cluster(tmp_path, [cart_nudge("3s"), PRICING], OWNERS) as running:
            catcher, nodes = running.catcher, running.nodes
            await running.start(OWNERS)
            history = await _drive(nodes, _stream(random.Random(7), _now_ms() + 300))
            settled_ms = max(row[2] for row in history) + 4_000  # every 3 s wait is over
            await asyncio.sleep(max(0.0, (settled_ms - _now_ms()) / 1000))
            expected, held = _backtest(tmp_path / "seq", history, settled_ms)
            assert 20 < len(expected) < 2 * USERS  # the stream exercises both sequences
            pricing_steps = {step for _, seq, step in expected if seq == "pricing-visit"}
            assert len(pricing_steps) == 2 and held  # both arms and the holdout drawn
            await catcher.wait_for(len(expected), timeout_s=30)
            await asyncio.sleep(1.0)  # nothing more may come
            sent = set()
            for node, (_, owned) in zip(nodes, OWNERS.items(), strict=True):
                for shard in range(8):
                    users = node.shard_rows(shard, "SELECT key FROM users")
                    logged = node.shard_rows(
                        shard, "SELECT user_key, sequence, step FROM send_log"
                        " WHERE status = 'sent'")
                    if shard not in owned:
                        assert users == [] and logged == [], (node.name, shard)
                        continue
                    assert all(shard_of(key, 8) == shard for (key,) in users)
                    sent |= set(logged)
            assert sent == expected
            recipients = sorted(m.envelope_to for m in catcher.messages)
            assert len(recipients) == len(expected)
            ids = {dict(m.headers).get("Message-ID") for m in catcher.messages}
            assert len(ids) == len(expected)
            await _erase_everywhere(nodes)

    asyncio.run(scenario())


async def _erase_everywhere(nodes: list[Node]) -> None:
    """An erase by address, asked of the node that does not hold the user, reaches the user's
    shard, and the device's alias on the device's shard."""
    user, device = "u:user-005", "d:device-005"
    user_node = next(n for n in nodes if shard_of(user, 8) in OWNERS[n.name])
    device_node = next(n for n in nodes if shard_of(device, 8) in OWNERS[n.name])
    asked = next(n for n in nodes if n is not user_node)
    assert user_node.shard_rows(shard_of(user, 8), "SELECT key FROM users"
                                           " WHERE key = ?", (user,))
    assert device_node.shard_rows(shard_of(device, 8), "SELECT alias FROM aliases"
                                  " WHERE alias = ?", (device,))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{asked.grpc_port}") as channel:
        await admin_pb2_grpc.AdminStub(channel).EraseUser(
            admin_pb2.EraseUserRequest(user="user005@example.com"),
            metadata=[("authorization", f"Bearer {OPERATOR_TOKEN}")], timeout=10)

    def gone() -> bool:
        return not any(user_node.shard_rows(shard_of(user, 8), query, (user,)) for query in (
            "SELECT key FROM users WHERE key = ?", "SELECT id FROM outbox WHERE user_key = ?",
            "SELECT id FROM send_log WHERE user_key = ?")) and not device_node.shard_rows(
            shard_of(device, 8), "SELECT alias FROM aliases WHERE key = ?", (user,))

    await wait_for(gone, 10, "the erased user's rows are gone from every shard")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def _drive(nodes: list[Node], plan: list) -> list[tuple[str, str, int, dict, None]]:
    """Send each batch at its time to a node picked at random; returns the history the
    backtest reads (user, event, at, props)."""
    rng = random.Random(11)
    builders = {u: BatchBuilder(f"device-{u:03d}") for u in range(USERS)}
    history = []
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{n.grpc_port}") for n in nodes]
    stubs = [ingest_pb2_grpc.IngestStub(c) for c in channels]
    try:
        for at, u, number, events in plan:
            await asyncio.sleep(max(0.0, (at - _now_ms()) / 1000))
            identity = {"email": f"user{u:03d}@example.com", "user_id": f"user-{u:03d}"}
            batch = builders[u].batch(events[0][0], events, **(identity if number == 1 else {}))
            ack = await rng.choice(stubs).Send(batch, timeout=10)
            assert ack.accepted == len(events) and not ack.duplicate
            history += [(f"u:user-{u:03d}", name, t, props, None) for t, name, props in events]
    finally:
        for channel in channels:
            await channel.close()
    return history


def _backtest(sequences: Path, history: list,
              until_ms: int) -> tuple[set[tuple[str, str, int]], int]:
    """The sends the backtest decides, and how many it held out."""
    sequence_set, _ = load_paths([sequences])
    engine = Engine(compile_rules(sequence_set), unknown_users_mailable=True)
    result = replay_history(engine, sorted(history, key=lambda row: row[2]),
                            until_ms=until_ms)
    return ({(s.user, s.sequence, s.step) for s in result.sends if s.reason is None},
            sum(s.reason == "holdout" for s in result.sends))
