"""Anonymous history merges into the user on identify: signals a device collected before the
visitor signed in count for the user's sequences, the device's profile becomes an alias, and
later anonymous batches from that device reach the user."""

import asyncio
from pathlib import Path

from harness import (
    BatchBuilder,
    eventually,
    ingest_client,
    rows,
    server,
    settings_for,
    write_sequences,
)

from server.clock import ManualClock

T0 = 1_800_000_000_000
INTERESTED_CART = """
    id: interested-cart
    entry:
      event: cart_add
      if:
        - event: product_view
          within: 1h
          at_least: 2
    steps: [{send: {template: cart-reminder}}]
"""




def test_anonymous_signals_count_after_identify_and_the_device_forwards(tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = settings_for(tmp_path, write_sequences(tmp_path / "seq", INTERESTED_CART))
        clock = ManualClock(T0)
        async with server(settings, clock) as app, ingest_client(app) as client:
            device = BatchBuilder("phone-1")
            for minute in (1, 2):
                at = T0 + minute * 60_000
                await client.Send(device.batch(at, [(at, "product_view", {"sku": "s1"})]))
            assert [r[0] for r in await rows(app, "SELECT key FROM users")] == ["d:phone-1"]
            at = T0 + 3 * 60_000
            await client.Send(device.batch(at, [(at, "cart_add", {"cart_id": "c1"})],
                                           email="ann@example.com"))
            await eventually(lambda: rows(app, "SELECT 1 FROM outbox"))
            assert [r[0] for r in await rows(app, "SELECT key FROM users")] == [
                "e:ann@example.com"]
            assert await rows(app, "SELECT alias, key FROM aliases") == [
                ("d:phone-1", "e:ann@example.com")]
            at = T0 + 4 * 60_000
            await client.Send(device.batch(at, [(at, "page_view", {"path": "/later"})]))
            assert [r[0] for r in await rows(app, "SELECT key FROM users")] == [
                "e:ann@example.com"]

    asyncio.run(scenario())


def test_without_the_anonymous_history_the_condition_does_not_hold(tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = settings_for(tmp_path, write_sequences(tmp_path / "seq", INTERESTED_CART))
        async with server(settings, ManualClock(T0)) as app, ingest_client(app) as client:
            at = T0 + 3 * 60_000
            await client.Send(BatchBuilder("phone-2").batch(
                at, [(at, "cart_add", {"cart_id": "c1"})], email="bob@example.com"))
            await asyncio.sleep(0.2)
            assert await rows(app, "SELECT 1 FROM outbox") == []

    asyncio.run(scenario())
