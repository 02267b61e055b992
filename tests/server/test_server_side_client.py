"""The backend client: a shop's server reports a purchase with the site secret; the identity
counts as verified, the purchase ends the user's cart sequence, and a server that is not up
yet is retried with the same batch."""

import asyncio
from pathlib import Path

import grpc
import pytest
from harness import (
    CART_RECOVERY,
    SITE_KEY,
    SITE_SECRET,
    free_port,
    rows,
    server,
    settings_for,
    stat,
    write_sequences,
)

from collector.server_side import ServerSideClient
from server.clock import ManualClock

T0 = 1_800_000_000_000


def test_a_backend_purchase_ends_the_cart_sequence(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = ManualClock(T0)
        settings = settings_for(tmp_path, write_sequences(tmp_path / "seq", CART_RECOVERY))
        async with server(settings, clock) as app:
            client = ServerSideClient(f"127.0.0.1:{app.grpc_port}", SITE_KEY, SITE_SECRET,
                                      now_ms=clock.now_ms)
            acks = await client.send("u-42", "ann@example.com", [
                ("cart_add", {"sku": "premium-laptop", "price": 1899.0, "cart_id": "c1"})])
            assert [a.accepted for a in acks] == [2]  # the identify and the cart_add
            assert await rows(app, "SELECT key, email_verified FROM users") == [("u:u-42", 1)]
            clock.advance(10 * 60_000)
            await client.send("u-42", "ann@example.com", [
                ("purchase", {"order_id": "o-1", "value": 1899.0, "cart_id": "c1"})])
            assert await stat(app, "exited") == 1
            clock.advance(60 * 60_000)
            await asyncio.sleep(0.2)
            assert await stat(app, "sent") == 0

    asyncio.run(scenario())


def test_a_server_not_up_yet_is_retried_with_the_same_batch(tmp_path: Path) -> None:
    async def scenario() -> None:
        port = free_port()
        settings = settings_for(tmp_path, write_sequences(tmp_path / "seq", CART_RECOVERY),
                                PULSEWIRE_SERVER__GRPC_LISTEN=f"127.0.0.1:{port}")
        client = ServerSideClient(f"127.0.0.1:{port}", SITE_KEY, SITE_SECRET, attempts=8,
                                  backoff_s=0.1)
        sending = asyncio.ensure_future(client.send("u-7", "bo@example.com", [
            ("purchase", {"order_id": "o-9", "value": 5.0})]))
        await asyncio.sleep(0.3)  # the first attempts find nobody listening
        assert not sending.done()
        async with server(settings) as app:
            acks = await sending
            assert [(a.accepted, a.duplicate) for a in acks] == [(2, False)]
            assert len(await rows(app, "SELECT * FROM dedup")) == 1

    asyncio.run(scenario())


def test_a_refusal_a_retry_cannot_fix_is_raised_at_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = settings_for(tmp_path, write_sequences(tmp_path / "seq", CART_RECOVERY))
        async with server(settings) as app:
            client = ServerSideClient(f"127.0.0.1:{app.grpc_port}", "not-a-site", SITE_SECRET)
            assert SITE_SECRET not in repr(client)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await client.send("u-1", "x@example.com", [("purchase", {"order_id": "o"})])
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED

    asyncio.run(scenario())
