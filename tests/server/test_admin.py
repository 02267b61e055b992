"""Admin over real gRPC: the operator token, reloads that are all or nothing, user views,
suppression, erasure across every shard, and stats."""

import asyncio
from pathlib import Path

import grpc
import pytest
from harness import (
    CART_RECOVERY,
    BatchBuilder,
    count,
    eventually,
    ingest_client,
    server,
    settings_for,
    write_sequences,
)

from collector.gen.pulsewire.v1 import admin_pb2
from server.clock import ManualClock
from server.rpc.gen.pulsewire.v1 import admin_pb2_grpc

T0 = 1_800_000_000_000
TOKEN = "operator-token-for-tests"
AUTH = (("authorization", f"Bearer {TOKEN}"),)


def _settings(tmp_path: Path):
    return settings_for(tmp_path, write_sequences(tmp_path / "seq", CART_RECOVERY),
                        PULSEWIRE_SERVER__OPERATOR_TOKEN=TOKEN)


async def _admin(app):
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}")
    return channel, admin_pb2_grpc.AdminStub(channel)


def test_admin_calls_need_the_operator_token(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with server(_settings(tmp_path)) as app:
            channel, admin = await _admin(app)
            async with channel:
                for metadata in ((), (("authorization", "Bearer wrong"),)):
                    with pytest.raises(grpc.aio.AioRpcError) as err:
                        await admin.Stats(admin_pb2.StatsRequest(), metadata=metadata)
                    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
                assert await admin.Stats(admin_pb2.StatsRequest(), metadata=AUTH) is not None

    asyncio.run(scenario())


def test_a_reload_with_one_bad_file_is_refused_and_the_old_set_keeps_running(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = _settings(tmp_path)
        clock = ManualClock(T0)
        async with server(settings, clock) as app, ingest_client(app) as client:
            channel, admin = await _admin(app)
            async with channel:
                bad = tmp_path / "seq" / "broken.yaml"
                bad.write_text("id: broken\nentry: {event: x}\nsteps:\n"
                               "  - wait_for: {event: y, timeout: 5x}\n")
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await admin.ReloadSequences(admin_pb2.ReloadSequencesRequest(),
                                                metadata=AUTH)
                assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
                assert f"{bad}:4: steps[0].wait_for.timeout: invalid duration" in (
                    err.value.details() or "")
                await client.Send(BatchBuilder().batch(T0, [(T0, "cart_add", {"cart_id": "c"})],
                                                       email="ann@example.com"))
                stats = await admin.Stats(admin_pb2.StatsRequest(), metadata=AUTH)
                assert [(s.sequence, s.entered) for s in stats.sequences] == [
                    ("cart-recovery", 1)]
                bad.write_text("id: second\nentry: {event: x}\nsteps:\n  - send: {template: t}\n")
                reply = await admin.ReloadSequences(admin_pb2.ReloadSequencesRequest(),
                                                    metadata=AUTH)
                assert list(reply.sequences) == ["cart-recovery", "second"]

    asyncio.run(scenario())


def test_erase_leaves_nothing_of_the_user_in_any_shard(tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = _settings(tmp_path)
        clock = ManualClock(T0)
        async with server(settings, clock) as app, ingest_client(app) as client:
            channel, admin = await _admin(app)
            async with channel:
                for who in ("ann@example.com", "bob@example.com"):
                    await client.Send(BatchBuilder(f"dev-{who}").batch(
                        T0, [(T0, "cart_add", {"cart_id": "c1", "sku": "s"})], email=who))
                clock.advance(61 * 60_000)
                await eventually(lambda: _outbox_rows_are(app, 2))
                view = await admin.GetUser(admin_pb2.GetUserRequest(user="ann@example.com"),
                                           metadata=AUTH)
                assert (view.email, view.email_verified) == ("ann@example.com", True)
                assert [s.template for s in view.sends] == ["cart-reminder"]
                erased = await admin.EraseUser(admin_pb2.EraseUserRequest(user="ann@example.com"),
                                               metadata=AUTH)
                assert erased.rows_removed >= 4
                for shard in app.shards:
                    for table in ("users", "outbox", "send_log", "suppression", "dedup",
                                  "aliases"):
                        rows = await shard.read(f"SELECT * FROM {table}")
                        assert not any("ann@example.com" in repr(r) or "dev-ann" in repr(r)
                                       for r in rows), (table, rows)
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await admin.GetUser(admin_pb2.GetUserRequest(user="ann@example.com"),
                                        metadata=AUTH)
                assert err.value.code() == grpc.StatusCode.NOT_FOUND
                bob = await admin.GetUser(admin_pb2.GetUserRequest(user="bob@example.com"),
                                          metadata=AUTH)
                assert bob.email == "bob@example.com"

    asyncio.run(scenario())


def test_suppress_stops_mail_and_unsuppress_allows_it_again(tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = _settings(tmp_path)
        clock = ManualClock(T0)
        async with server(settings, clock) as app, ingest_client(app) as client:
            channel, admin = await _admin(app)
            async with channel:
                builder = BatchBuilder()
                await client.Send(builder.batch(T0, [(T0, "page_view", {"path": "/"})],
                                                email="ann@example.com"))
                await admin.Suppress(admin_pb2.SuppressRequest(email="Ann@Example.com",
                                                               suppressed=True), metadata=AUTH)
                await client.Send(builder.batch(T0, [(T0, "cart_add", {"cart_id": "c"})],
                                                email="ann@example.com"))
                clock.advance(61 * 60_000)
                await eventually(lambda: _counted(
                    app, "SELECT count(*) FROM stats WHERE counter = 'suppressed:unsubscribed'", 1))
                await admin.Suppress(admin_pb2.SuppressRequest(email="ann@example.com",
                                                               suppressed=False), metadata=AUTH)
                view = await admin.GetUser(admin_pb2.GetUserRequest(user="ann@example.com"),
                                           metadata=AUTH)
                assert not view.suppressed
                await client.Send(builder.batch(clock.now_ms(), [
                    (clock.now_ms(), "cart_add", {"cart_id": "c2"})], email="ann@example.com"))
                clock.advance(61 * 60_000)
                await eventually(lambda: _outbox_rows_are(app, 1))

    asyncio.run(scenario())


async def _counted(app, query: str, expected: int) -> bool:
    return await count(app, query) == expected


async def _outbox_rows_are(app, expected: int) -> bool:
    return await _counted(app, "SELECT count(*) FROM outbox", expected)


def test_the_admin_command_line_talks_to_a_running_server(tmp_path: Path, capsys) -> None:
    from server.cli import main

    async def scenario() -> None:
        async with server(_settings(tmp_path)) as app, ingest_client(app) as client:
            await client.Send(BatchBuilder().batch(T0, [(T0, "cart_add", {"cart_id": "c"})],
                                                   email="ann@example.com"))
            target = f"127.0.0.1:{app.grpc_port}"
            codes = [await asyncio.to_thread(main, ["admin", "--grpc", target, "--token", TOKEN,
                                                    *args])
                     for args in (["stats", "--format", "json"], ["user", "ann@example.com"],
                                  ["stats"])]
            codes.append(await asyncio.to_thread(main, ["admin", "--grpc", target, "--token",
                                                        "wrong", "stats"]))
            assert codes == [0, 0, 0, 1]

    asyncio.run(scenario())
    out, err = capsys.readouterr()
    assert '"sequence": "cart-recovery"' in out and '"entered": 1,' in out  # a JSON number
    assert "cart-recovery: entered 1, exited 0, converted 0" in out  # the table
    assert '"email": "ann@example.com"' in out
    assert "UNAUTHENTICATED" in err and TOKEN not in out + err


def test_the_user_view_shows_the_aggregates_conditions_read(tmp_path: Path) -> None:
    deep_reader = """
        id: deep-reader
        entry:
          event: cart_add
          if: [{event: scroll, where: {depth_pct: {gte: 70}}, within: 30m, at_least: 2}]
        steps: [{send: {template: cart-reminder}}]
    """

    async def scenario() -> None:
        settings = settings_for(tmp_path, write_sequences(tmp_path / "seq", deep_reader),
                                PULSEWIRE_SERVER__OPERATOR_TOKEN=TOKEN)
        async with server(settings, ManualClock(T0 + 10)) as app, ingest_client(app) as client:
            await client.Send(BatchBuilder().batch(T0, [
                (T0, "scroll", {"path": "/p", "depth_pct": 50}),
                (T0 + 1, "scroll", {"path": "/p", "depth_pct": 75}),
                (T0 + 2, "scroll", {"path": "/p", "depth_pct": 90})], email="ann@example.com"))
            channel, admin = await _admin(app)
            async with channel:
                view = await admin.GetUser(admin_pb2.GetUserRequest(user="ann@example.com"),
                                           metadata=AUTH)
            assert [(a.signal, list(a.at_ms)) for a in view.aggregates] == [
                ('scroll where {"depth_pct": {"gte": 70.0}}', [T0 + 1, T0 + 2])]

    asyncio.run(scenario())
