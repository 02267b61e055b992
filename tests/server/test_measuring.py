"""Measuring a sequence end to end: 2,000 users through a real server with a 50% holdout; the
test decides who converts (0.30 for a user it saw mailed at the mail catcher, 0.15 for one it
did not), and the Admin stats call (and `pulsewire admin stats --format json`) report exactly
what the test counted, with the true uplift of 0.15 inside the reported interval."""

import asyncio
import json
import random
from pathlib import Path

import grpc
from harness import BatchBuilder, eventually, ingest_client, server, settings_for, write_sequences

from collector.gen.pulsewire.v1 import admin_pb2
from server.clock import ManualClock
from server.mail.mailcatcher import MailCatcher
from server.rpc.gen.pulsewire.v1 import admin_pb2_grpc, ingest_pb2_grpc

T0 = 1_800_000_000_000
DAY = 86_400_000
TOKEN = "operator-token-for-tests"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
USERS = 2_000
OFFER = """
    id: offer
    entry: {event: cart_add}
    holdout: 0.5
    steps:
      - send: {template: cart-reminder, vars: {discount_code: SAVE15}}
"""


async def _send_all(client: ingest_pb2_grpc.IngestStub, batches: list) -> None:
    pending = iter(batches)

    async def worker() -> None:
        for batch in pending:
            await client.Send(batch)
    await asyncio.gather(*(worker() for _ in range(16)))


def test_the_uplift_of_a_half_held_out_sequence_is_reported_as_counted(tmp_path: Path,
                                                                        capsys) -> None:
    from server.cli import main
    rng = random.Random(20261208)
    emails = [f"user{i}@example.com" for i in range(USERS)]

    async def scenario() -> dict:
        clock = ManualClock(T0)
        async with MailCatcher(tmp_path / "mail", smtp_port=0, http_port=0) as catcher:
            settings = settings_for(tmp_path, write_sequences(tmp_path / "seq", OFFER),
                                    PULSEWIRE_SERVER__OPERATOR_TOKEN=TOKEN,
                                    PULSEWIRE_SMTP__PORT=str(catcher.smtp_port))
            async with server(settings, clock) as app, ingest_client(app) as client:
                builders = [BatchBuilder(device=f"device-{i}") for i in range(USERS)]
                await _send_all(client, [
                    b.batch(T0, [(T0, "cart_add", {"cart_id": f"c{i}"})], email=emails[i])
                    for i, b in enumerate(builders)])
                channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}")
                admin = admin_pb2_grpc.AdminStub(channel)

                async def all_decided():
                    stats = await admin.Stats(admin_pb2.StatsRequest(), metadata=AUTH)
                    (seq,) = stats.sequences
                    return seq if seq.entered == USERS else None
                seq = await eventually(all_decided, timeout_s=60)
                sent = seq.steps[0].sent
                await catcher.wait_for(sent, timeout_s=120)
                mailed = {to for m in catcher.messages for to in m.envelope_to}
                assert len(mailed) == sent and 0.45 < sent / USERS < 0.55

                at = T0 + DAY
                clock.set(at)
                converted = {e for e in emails
                             if rng.random() < (0.30 if e in mailed else 0.15)}
                await _send_all(client, [
                    b.batch(at, [(at, "purchase", {"order_id": f"o{i}"})], email=emails[i])
                    for i, b in enumerate(builders) if emails[i] in converted])

                async def all_converted():
                    stats = await admin.Stats(admin_pb2.StatsRequest(), metadata=AUTH)
                    return stats if stats.sequences[0].converted == len(converted) else None
                await eventually(all_converted, timeout_s=60)
                code = await asyncio.to_thread(main, [
                    "admin", "--grpc", f"127.0.0.1:{app.grpc_port}", "--token", TOKEN,
                    "stats", "--format", "json"])
                assert code == 0
                await channel.close()
                return {"mailed": mailed, "converted": converted}

    counted = asyncio.run(scenario())
    report = json.loads(capsys.readouterr().out)
    (seq,) = report["sequences"]
    mailed, converted = counted["mailed"], counted["converted"]
    treated_converted = len(converted & mailed)
    held_converted = len(converted - mailed)
    assert seq["treated"]["entered"] == len(mailed)
    assert seq["holdout"]["entered"] == USERS - len(mailed)
    assert seq["treated"]["converted"] == treated_converted
    assert seq["holdout"]["converted"] == held_converted
    assert seq["converted"] == len(converted) and seq["entered"] == USERS
    for cohort, n, k in ((seq["treated"], len(mailed), treated_converted),
                         (seq["holdout"], USERS - len(mailed), held_converted)):
        assert cohort["rate"] == k / n
        low, high = cohort["ci95"]
        assert low < cohort["rate"] < high
    uplift = seq["uplift"]
    assert uplift["absolute"] == treated_converted / len(mailed) - held_converted / (
        USERS - len(mailed))
    low, high = uplift["ci95"]
    assert low < 0.15 < high
    assert low < uplift["absolute"] < high
    assert uplift["p_value"] < 0.001
    assert isinstance(seq["entered"], int) and isinstance(uplift["p_value"], float)
    (step,) = seq["steps"]
    assert (step["sent"], step["converted"]) == (len(mailed), treated_converted)
    assert step["suppressed"] == {"holdout": USERS - len(mailed)}


def test_counters_and_open_goals_survive_a_restart(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, write_sequences(tmp_path / "seq", OFFER),
                            PULSEWIRE_SERVER__OPERATOR_TOKEN=TOKEN,
                            PULSEWIRE_SMTP__PORT="1")  # nothing listens: sends wait, no matter
    users = 60
    builders = [BatchBuilder(device=f"device-{i}") for i in range(users)]

    async def stats_of(app) -> admin_pb2.StatsResponse:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
            return await admin_pb2_grpc.AdminStub(channel).Stats(admin_pb2.StatsRequest(),
                                                                 metadata=AUTH)

    async def first_run() -> admin_pb2.StatsResponse:
        async with server(settings, ManualClock(T0)) as app, ingest_client(app) as client:
            await _send_all(client, [
                b.batch(T0, [(T0, "cart_add", {"cart_id": f"c{i}"})],
                        email=f"user{i}@example.com") for i, b in enumerate(builders)])
            return await eventually(lambda: _entered(stats_of(app), users), timeout_s=30)

    async def second_run() -> tuple[admin_pb2.StatsResponse, admin_pb2.StatsResponse]:
        at = T0 + 3 * DAY
        async with server(settings, ManualClock(at)) as app, ingest_client(app) as client:
            again = await stats_of(app)
            await _send_all(client, [
                b.batch(at, [(at, "purchase", {"order_id": f"o{i}"})],
                        email=f"user{i}@example.com") for i, b in enumerate(builders)])

            async def converted():
                stats = await stats_of(app)
                return stats if stats.sequences[0].converted == users else None
            return again, await eventually(converted, timeout_s=30)

    before = asyncio.run(first_run())
    again, after = asyncio.run(second_run())
    assert again == before  # every counter, as the files kept them
    (seq,) = after.sequences
    assert seq.treated.entered + seq.holdout.entered == users
    assert (seq.treated.converted, seq.holdout.converted) == (seq.treated.entered,
                                                              seq.holdout.entered)


async def _entered(stats, users: int):
    stats = await stats
    return stats if stats.sequences and stats.sequences[0].entered == users else None
