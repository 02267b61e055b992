"""Poison: batches built to make the server raise. One client streams them while others send
ordinary batches: every ordinary batch commits, every poison batch gets a status that says
why (never INTERNAL), and a user whose pass raised half way keeps no part of it."""

import asyncio
import re
from pathlib import Path

import grpc
from harness import (
    CART_RECOVERY,
    BatchBuilder,
    count,
    ingest_client,
    server,
    settings_for,
    write_sequences,
)
from test_email_flow import T0

from collector.gen.pulsewire.v1 import batch_pb2
from server.engine import Event
from server.engine.state import decode_state

GOOD_CLIENTS, GOOD_BATCHES = 4, 25


def _poison(n: int) -> batch_pb2.Batch:
    """The n-th poison batch: each breaks one rule of the wire in a way that used to raise."""
    batch = BatchBuilder(f"poison-{n % 7}").batch(T0, [(T0, "cart_add", {"cart_id": "p"})],
                                                  seq=n + 1)
    kind = n % 7
    if kind == 0:  # event times at the end of the 64-bit range, running past it
        batch.base_time_ms = -(2**63)
        batch.events[0].dt_ms = 2**32 - 1
    elif kind == 1:  # a send time that drags every event before year 1
        batch.sent_at_ms = 2**63 - 1
    elif kind == 2:  # a time zone that names a directory of the zone database
        batch.context.timezone = "America"
    elif kind == 3:  # a time zone longer than the operating system takes as a file name
        batch.context.timezone = "Europe/" + "B" * 5000
    elif kind == 4:  # a path out of the zone database
        batch.context.timezone = "../../../../etc/passwd"
    elif kind == 5:  # a user id as long as a message allows
        batch.identity.user_id = "u" * 100_000
    else:  # an address that breaks an email header
        batch.identity.email = "ann@example.com\r\nBcc: all@example.com"
    return batch


def test_poison_batches_are_refused_clearly_while_everyone_else_commits(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, write_sequences(tmp_path / "seq", CART_RECOVERY))

    async def scenario() -> None:
        async with server(settings) as app, ingest_client(app) as client:
            async def good(c: int) -> list[int]:
                builder = BatchBuilder(f"good-{c}")
                acks = [await client.Send(builder.batch(T0 + i, [(T0 + i, "page_view", {
                    "path": f"/p/{i}"})])) for i in range(GOOD_BATCHES)]
                return [a.accepted for a in acks]

            async def poison() -> list[str]:
                answers = []
                for n in range(70):
                    try:
                        await client.Send(_poison(n))
                        answers.append("accepted")
                    except grpc.aio.AioRpcError as err:
                        answers.append(f"{err.code().name}: {err.details()}")
                return answers

            *goods, refused = await asyncio.gather(*(good(c) for c in range(GOOD_CLIENTS)),
                                                   poison())
            assert all(accepted == [1] * GOOD_BATCHES for accepted in goods)
            # a folder of the zone database is well formed: taken, without a zone
            assert [a for n, a in enumerate(refused) if n % 7 == 2] == ["accepted"] * 10
            refused = [a for n, a in enumerate(refused) if n % 7 != 2]
            assert all(a.startswith("INVALID_ARGUMENT: ") for a in refused), set(refused)
            reasons = {re.sub(r"\d+", "N", a.split(": ", 1)[1]) for a in refused}
            assert len(reasons) >= 4  # each says what was wrong
            applied = await count(app, "SELECT coalesce(sum(accepted), 0) FROM dedup"
                                       " WHERE device LIKE 'good-%'")
            assert applied == GOOD_CLIENTS * GOOD_BATCHES
            assert await count(app, "SELECT count(*) FROM users WHERE key LIKE 'd:poison%'"
                                    " AND key != 'd:poison-2'") == 0
            assert await count(app, "SELECT count(*) FROM users WHERE key = 'd:poison-2'"
                                    " AND timezone IS NULL") == 1
            metrics = app.metrics.render().decode()
            assert 'pulsewire_batches_rejected_total{reason="InvalidBatch"} 60.0' in metrics
            assert "pulsewire_shard_items_failed_total" not in metrics.replace(
                "# HELP pulsewire_shard_items_failed_total", "").replace(
                "# TYPE pulsewire_shard_items_failed_total", "")
    asyncio.run(scenario())


def test_an_item_that_raises_fails_alone_and_leaves_no_half_applied_state(
        tmp_path: Path) -> None:
    """Past the edge's checks (an event the server itself made, a rule a reload let in), the
    shard is the last line: a group with a raising item commits the others, and the user
    whose pass raised half way is read back as committed."""
    settings = settings_for(tmp_path, write_sequences(tmp_path / "seq", CART_RECOVERY),
                            PULSEWIRE_SERVER__SHARDS="1")

    async def scenario() -> None:
        async with server(settings) as app:
            [shard] = app.shards
            before = await shard.ingest("u:victim", [Event("page_view", T0, {"path": "/"})])
            assert before.accepted == 1
            # A cart at an instant whose timer (an hour later) no 64-bit column can hold: the
            # cart enters the sequence in memory, then the group's write raises.
            poison = Event("cart_add", 2**63 - 1_000, {"cart_id": "c"})
            results = await asyncio.gather(
                *(shard.ingest(f"u:good-{i}", [Event("page_view", T0, {"path": "/"})])
                  for i in range(20)),
                shard.ingest("u:victim", [Event("cart_add", T0, {"cart_id": "ok"}), poison]),
                *(shard.ingest(f"u:late-{i}", [Event("page_view", T0, {"path": "/"})])
                  for i in range(20)),
                return_exceptions=True)
            failed = [r for r in results if isinstance(r, BaseException)]
            assert len(failed) == 1 and isinstance(failed[0], OverflowError)
            assert all(r.accepted == 1 for r in results if not isinstance(r, BaseException))
            [(blob,)] = await shard.read("SELECT state FROM users WHERE key = 'u:victim'")
            assert decode_state("u:victim", blob).instances == []  # nothing of the failed pass
            after = await shard.ingest("u:victim", [Event("page_view", T0 + 1, {"path": "/x"})])
            assert after.accepted == 1
            [(blob,)] = await shard.read("SELECT state FROM users WHERE key = 'u:victim'")
            assert decode_state("u:victim", blob).instances == []
            assert 'pulsewire_shard_items_failed_total{reason="OverflowError"} 1.0' in \
                app.metrics.render().decode()
    asyncio.run(scenario())
