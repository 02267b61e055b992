"""Erase is final: after an operator erases a user, nothing brings them back: not the next
batch of their device (which the server had cached as theirs), not a replay of their old
batches (whose dedup keys went with them), not a restart. And a batch retried after its
device identified, now routed to the user's shard, is applied once."""

import asyncio
from pathlib import Path

from harness import (
    CART_RECOVERY,
    BatchBuilder,
    count,
    ingest_client,
    server,
    settings_for,
    write_sequences,
)
from test_email_flow import MINUTE, T0

from collector.gen.pulsewire.v1 import admin_pb2
from server.rpc.gen.pulsewire.v1 import admin_pb2_grpc
from server.storage.router import shard_of

TOKEN = "operator-token-for-erase"
AUTH = (("authorization", f"Bearer {TOKEN}"),)


async def _traces(app, device: str) -> int:
    """Rows anywhere that name the user or the device."""
    return sum([await count(app, "SELECT count(*) FROM users WHERE email = 'ann@example.com'"
                                 " OR key IN ('u:ann', ?) OR user_id = 'ann'", (f"d:{device}",)),
                await count(app, "SELECT count(*) FROM dedup WHERE device = ?"
                                 " OR user_key = 'u:ann'", (device,)),
                await count(app, "SELECT count(*) FROM outbox WHERE user_key = 'u:ann'")])


def test_an_erased_user_stays_erased_after_new_batches_replays_and_restarts(
        tmp_path: Path) -> None:
    settings = settings_for(tmp_path, write_sequences(tmp_path / "seq", CART_RECOVERY),
                            PULSEWIRE_SERVER__OPERATOR_TOKEN=TOKEN)
    phone = BatchBuilder("ann-phone")
    old = [phone.batch(T0, [(T0, "page_view", {"path": "/lamp"})]),
           phone.batch(T0 + MINUTE, [(T0 + MINUTE, "cart_add", {"sku": "lamp", "cart_id": "c"})],
                       email="ann@example.com", user_id="ann")]

    async def erase_then_attack() -> None:
        async with server(settings) as app, ingest_client(app) as client, \
                grpc_channel(app) as admin:
            for batch in old:
                assert (await client.Send(batch)).accepted == 1
            assert await _traces(app, "ann-phone") > 0
            await admin.EraseUser(admin_pb2.EraseUserRequest(user="ann"), metadata=AUTH)
            assert await _traces(app, "ann-phone") == 0
            # the device's next batch (the server had cached the device as Ann's)
            later = phone.batch(T0 + 2 * MINUTE, [(T0 + 2 * MINUTE, "page_view", {"path": "/"})])
            assert (await client.Send(later)).accepted == 0
            for batch in old:  # a replay of everything Ann's device ever sent
                assert (await client.Send(batch)).accepted == 0
            assert await _traces(app, "ann-phone") == 0
            assert "pulsewire_erased_dropped_total 3.0" in app.metrics.render().decode()

    async def after_restart() -> None:
        async with server(settings) as app, ingest_client(app) as client:
            for batch in old:
                assert (await client.Send(batch)).accepted == 0
            assert await _traces(app, "ann-phone") == 0
            # someone new on a new device is welcome, Ann again too, if the site signs her in
            fresh = BatchBuilder("new-laptop").batch(T0 + 3 * MINUTE, [
                (T0 + 3 * MINUTE, "page_view", {"path": "/"})], email="ann@example.com",
                user_id="ann")
            assert (await client.Send(fresh)).accepted == 1

    asyncio.run(erase_then_attack())
    asyncio.run(after_restart())


def test_a_batch_retried_after_its_device_identified_applies_once(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, write_sequences(tmp_path / "seq", CART_RECOVERY))

    async def scenario() -> None:
        async with server(settings) as app, ingest_client(app) as client:
            # the device's profile and Bob live on different shards: dedup is per shard
            assert shard_of("d:bob-tablet", 4) != shard_of("u:bob", 4)
            phone = BatchBuilder("bob-tablet")
            anonymous = phone.batch(T0, [(T0, "cart_add", {"sku": "lamp", "cart_id": "c1"})])
            assert (await client.Send(anonymous)).accepted == 1
            signed = phone.batch(T0 + 1, [(T0 + 1, "page_view", {"path": "/"})],
                                 email="bob@example.com", user_id="bob")
            assert (await client.Send(signed)).accepted == 1  # the history moves to u:bob
            again = await client.Send(anonymous)  # its ack was lost: the same seq, again
            assert (again.accepted, again.duplicate) == (0, True)
            assert await count(app, "SELECT count(*) FROM dedup WHERE device = 'bob-tablet'"
                                    " AND user_key = 'u:bob'") == 2  # carried to his shard
    asyncio.run(scenario())


class grpc_channel:  # used as a context manager, like the harness's clients
    def __init__(self, app) -> None:
        import grpc
        self._channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}")

    async def __aenter__(self) -> admin_pb2_grpc.AdminStub:
        return admin_pb2_grpc.AdminStub(self._channel)

    async def __aexit__(self, *exc: object) -> None:
        await self._channel.close()
