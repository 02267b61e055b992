"""The server and the backtest draw the same: 400 users through a sequence with a holdout and a
split, under a site-wide holdout, on a real server; replaying the same events with
`pulsewire backtest`'s engine decides, user by user, the same arm, the same holdouts and the
same sends. (The cluster's nodes run the same engine; tests/cluster compares their sends with
the backtest's too.)"""

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

from server.backtest.replay import replay_history
from server.clock import ManualClock
from server.engine import Engine, compile_rules
from server.sequences import load_paths

T0 = 1_800_000_000_000
USERS = 400
SPLIT = """
    id: ab-offer
    entry: {event: cart_add}
    holdout: 0.2
    steps:
      - split:
          arms:
            - {name: plain, weight: 70, steps: [{send: {template: cart-reminder}}]}
            - name: discount
              weight: 30
              steps:
                - send: {template: cart-reminder, vars: {discount_code: SAVE15}}
"""


def test_arms_and_holdouts_are_the_same_in_the_server_and_the_backtest(tmp_path: Path) -> None:
    sequences = write_sequences(tmp_path / "seq", SPLIT)
    settings = settings_for(tmp_path, sequences, PULSEWIRE_HOLDOUT__GLOBAL='"10%"')
    assert settings.holdout.global_fraction == 0.1

    async def scenario() -> list[tuple]:
        async with server(settings, ManualClock(T0)) as app, ingest_client(app) as client:
            for i in range(USERS):
                await client.Send(BatchBuilder(device=f"d{i}").batch(
                    T0, [(T0, "cart_add", {"cart_id": f"c{i}"})], user_id=f"user-{i}",
                    email=f"user-{i}@example.com"))

            async def decided():
                found = await rows(app, "SELECT user_key, step, status, reason FROM send_log")
                return found if len(found) == USERS else None
            return await eventually(decided, timeout_s=30)

    logged = asyncio.run(scenario())
    server_sends = sorted((key.removeprefix("u:"), step, reason or "")
                          for key, step, _status, reason in logged)
    sequence_set, _ = load_paths([sequences])
    engine = Engine(compile_rules(sequence_set), unknown_users_mailable=True,
                    global_holdout=0.1)
    replay = replay_history(engine, [(f"user-{i}", "cart_add", T0, {"cart_id": f"c{i}"}, None)
                                     for i in range(USERS)])
    backtest_sends = sorted((s.user, s.step, s.reason or "") for s in replay.sends)
    assert server_sends == backtest_sends
    reasons = {reason for _, _, reason in server_sends}
    steps = {step for _, step, _ in server_sends}
    assert reasons == {"", "holdout", "global_holdout"} and len(steps) == 2  # all kinds drawn
