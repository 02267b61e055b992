"""Who may be mailed: a stable per-user holdout fraction, and mailability (verified identify,
unsubscribe, bounce). A blocked send is Suppressed with its reason and the instance moves on."""

import pytest
from engine_tables import MIN, T0, brief, rules_of, run

from server.engine import Engine, Event, UserState

HELLO = {"id": "hello", "entry": {"event": "go"}, "steps": [{"send": {"template": "hello"}}]}


def _outcome(rules, steps, user: str = "u1", *, mailable: bool = False) -> str:
    """"sent" or the suppression reason of the one send decision in the run."""
    actions = brief(run(Engine(rules, unknown_users_mailable=mailable), steps, UserState(user)))
    (decision,) = [a for a in actions if a[0] in ("send", "suppress")]
    assert actions[-1][-1] == "completed"  # a suppressed send moves on like a sent one
    return "sent" if decision[0] == "send" else decision[5]


HOLDOUT_HALF = rules_of({**HELLO, "holdout": 0.5})


def test_holdout_holds_out_a_stable_fraction_of_users():
    users = [f"user-{i}" for i in range(2_000)]
    first = {u: _outcome(HOLDOUT_HALF, [Event("go", T0)], u, mailable=True) for u in users}
    held = sum(1 for o in first.values() if o == "holdout")
    assert 0.45 <= held / len(users) <= 0.55
    assert set(first.values()) == {"sent", "holdout"}
    again = {u: _outcome(HOLDOUT_HALF, [Event("go", T0 + 9 * MIN)], u, mailable=True)
             for u in users[:200]}
    assert again == {u: first[u] for u in users[:200]}


def test_holdout_zero_mails_everyone():
    rules = rules_of(HELLO)
    assert {_outcome(rules, [Event("go", T0)], f"u{i}", mailable=True) for i in range(200)} == {
        "sent"}


def test_held_out_users_still_enter_and_leave():
    held = next(u for u in (f"user-{i}" for i in range(100))
                if _outcome(HOLDOUT_HALF, [Event("go", T0)], u, mailable=True) == "holdout")
    actions = brief(run(Engine(HOLDOUT_HALF, unknown_users_mailable=True), [Event("go", T0)],
                        UserState(held)))
    assert actions == [("enter", "hello", "", T0),
                       ("suppress", "hello", "", "hello", T0, "holdout"),
                       ("exit", "hello", "", T0, "completed")]


def _identify(verified: object, at: int = T0 - 1) -> Event:
    return Event("identify", at, {"verified": verified})


GO = Event("go", T0)


@pytest.mark.parametrize(
    ("history", "mailable", "outcome"),
    [
        pytest.param([], False, "unverified", id="never-identified"),
        pytest.param([], True, "sent", id="never-identified-backtest-mode"),
        pytest.param([_identify(True)], False, "sent", id="verified"),
        pytest.param([_identify("true")], False, "sent", id="verified-as-text"),
        pytest.param([_identify(False)], False, "unverified", id="identify-not-verified"),
        pytest.param([_identify(False)], True, "unverified",
                     id="identify-not-verified-even-in-backtest-mode"),
        pytest.param([_identify(True, T0 - 2), _identify(False)], False, "unverified",
                     id="later-unverified-identify"),
        pytest.param([_identify(True, T0 - 2), Event("unsubscribe", T0 - 1)], False,
                     "unsubscribed", id="unsubscribed"),
        pytest.param([_identify(True, T0 - 2), Event("email_bounce", T0 - 1)], False,
                     "bounced", id="bounced"),
        pytest.param([Event("unsubscribe", T0 - 2), _identify(True)], False,
                     "unsubscribed", id="identify-does-not-undo-unsubscribe"),
        pytest.param([Event("email_bounce", T0 - 2), _identify(True)], True,
                     "bounced", id="identify-does-not-undo-bounce"),
        pytest.param([_identify(True, T0)], False, "sent", id="identify-at-the-same-instant"),
    ],
)
def test_mailability(history, mailable, outcome):
    assert _outcome(rules_of(HELLO), [*history, GO], mailable=mailable) == outcome


def test_unverified_then_verified_sends_the_next_one():
    rules = rules_of(HELLO)
    engine, state = Engine(rules), UserState("u1")
    first = brief(run(engine, [Event("go", T0)], state))
    second = brief(run(engine, [_identify(True, T0 + 1), Event("go", T0 + 2)], state))
    assert first[1] == ("suppress", "hello", "", "hello", T0, "unverified")
    assert second[1] == ("send", "hello", "", "hello", T0 + 2)
