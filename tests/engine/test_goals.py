"""Goals: a conversion is the goal event within the window after entry, counted once per
instance, for held-out users as for mailed ones, and credited to the instance's last email sent
before it (and, apart, to the last one clicked). `exit_on_goal` ends the instance there."""

import pytest
from engine_tables import DAY, HOUR, MIN, T0, brief, rules_of, run

from server.engine import Converted, Engine, Event, UserState, decode_state, encode_state
from server.engine.assignment import cohort_of
from server.engine.state import GoalWatch

DRIP = {"id": "drip", "entry": {"event": "go"}, "steps": [
    {"send": {"template": "first"}}, {"wait": "1h"},
    {"send": {"template": "second"}}, {"wait": "1d"},
    {"send": {"template": "third"}}]}
SENT = {"first": T0, "second": T0 + HOUR, "third": T0 + HOUR + DAY}
GO = Event("go", T0)


def _conversions(rules, steps, user: str = "u1", **engine_args) -> list[Converted]:
    engine = Engine(rules, unknown_users_mailable=True, **engine_args)
    return [a for a in run(engine, steps, UserState(user)) if isinstance(a, Converted)]


@pytest.mark.parametrize(("after_ms", "counted"), [
    pytest.param(0, True, id="at-entry-instant"),
    pytest.param(7 * DAY, True, id="last-instant-of-the-window"),
    pytest.param(7 * DAY + 1, False, id="just-past-the-window"),
])
def test_the_default_goal_is_a_purchase_within_7_days_both_ends_included(after_ms, counted):
    found = _conversions(rules_of(DRIP), [GO, Event("purchase", T0 + after_ms)])
    assert [c.at_ms for c in found] == ([T0 + after_ms] if counted else [])


def test_a_conversion_counts_once_per_instance():
    found = _conversions(rules_of(DRIP), [GO, Event("purchase", T0 + 2 * HOUR),
                                          Event("purchase", T0 + 3 * HOUR)])
    assert len(found) == 1


def test_the_event_that_enters_is_not_its_own_conversion():
    rules = rules_of({"id": "thanks", "entry": {"event": "purchase"},
                      "steps": [{"send": {"template": "thanks"}}]})
    assert _conversions(rules, [Event("purchase", T0)]) == []
    assert len(_conversions(rules, [Event("purchase", T0), Event("purchase", T0 + MIN)])) == 1


@pytest.mark.parametrize(("purchase_at", "credited"), [
    pytest.param(T0 + 30 * MIN, "first", id="after-the-first"),
    # an event comes before the timers due at its instant: the second is not sent yet
    pytest.param(T0 + HOUR, "first", id="at-the-second-instant"),
    pytest.param(T0 + HOUR + 1, "second", id="after-the-second"),
    pytest.param(T0 + 2 * DAY, "third", id="after-the-last"),
])
def test_the_conversion_is_credited_to_the_last_email_sent_before_it(purchase_at, credited):
    (conv,) = _conversions(rules_of(DRIP), [GO, Event("purchase", purchase_at)])
    step = {"first": 0, "second": 2, "third": 4}[credited]
    assert conv.sent == (step, credited, SENT[credited])
    assert conv.first_sent_ms == T0
    assert conv.cohort == "treated" and conv.clicked is None


def test_the_last_clicked_email_is_credited_apart():
    click = Event("email_click", T0 + HOUR + 5 * MIN,
                  {"sequence": "drip", "step": 0, "message": "u1/drip//1/0"})
    (conv,) = _conversions(rules_of(DRIP), [GO, click, Event("purchase", T0 + 2 * DAY)])
    assert conv.clicked == (0, "first", T0 + HOUR + 5 * MIN)
    assert conv.sent == (4, "third", SENT["third"])


def test_a_click_on_another_sequences_email_credits_nothing_here():
    click = Event("email_click", T0 + MIN, {"sequence": "other", "step": 0})
    (conv,) = _conversions(rules_of(DRIP), [GO, click, Event("purchase", T0 + HOUR)])
    assert conv.clicked is None


def test_held_out_users_convert_too_with_no_email_to_credit():
    rules = rules_of({**DRIP, "holdout": 0.5})
    held = next(u for u in (f"user-{i}" for i in range(200))
                if cohort_of(rules.sequences["drip"], u, 0.0) == "holdout")
    (conv,) = _conversions(rules, [GO, Event("purchase", T0 + 2 * HOUR)], held)
    assert (conv.cohort, conv.sent, conv.first_sent_ms) == ("holdout", None, None)


def test_the_site_holdout_keeps_the_same_users_out_of_every_sequence():
    other = {**DRIP, "id": "other"}
    rules = rules_of(DRIP, other)
    engine = Engine(rules, unknown_users_mailable=True, global_holdout=0.2)
    kept = 0
    for i in range(1_000):
        actions = brief(run(engine, [GO], UserState(f"u:user-{i}")))
        reasons = {a[1]: (a[5] if a[0] == "suppress" else "sent") for a in actions
                   if a[0] in ("send", "suppress")}
        assert reasons["drip"] == reasons["other"]
        kept += reasons["drip"] == "global_holdout"
    assert 150 <= kept <= 250


def test_a_goal_with_a_filter_and_another_event():
    rules = rules_of({**DRIP, "goal": {"event": "signup", "where": {"plan": "pro"},
                                       "within": "1d"}})
    steps = [GO, Event("purchase", T0 + MIN), Event("signup", T0 + 2 * MIN, {"plan": "free"}),
             Event("signup", T0 + 3 * MIN, {"plan": "pro"})]
    assert [c.at_ms for c in _conversions(rules, steps)] == [T0 + 3 * MIN]


def test_the_goal_outlives_the_instance():
    rules = rules_of({"id": "once", "entry": {"event": "go"},
                      "steps": [{"send": {"template": "hello"}}]})
    actions = brief(run(Engine(rules, unknown_users_mailable=True),
                        [GO, Event("purchase", T0 + 3 * DAY)]))
    assert actions[-1] == ("exit", "once", "", T0, "completed")
    assert len(_conversions(rules, [GO, Event("purchase", T0 + 3 * DAY)])) == 1


@pytest.mark.parametrize("exit_on_goal", [True, False])
def test_exit_on_goal_ends_the_instance_at_the_conversion(exit_on_goal):
    rules = rules_of({**DRIP, "exit_on_goal": exit_on_goal})
    actions = brief(run(Engine(rules, unknown_users_mailable=True),
                        [GO, Event("purchase", T0 + 30 * MIN), T0 + 3 * DAY]))
    sends = [a[3] for a in actions if a[0] == "send"]
    if exit_on_goal:
        assert ("exit", "drip", "", T0 + 30 * MIN, "goal") in actions
        assert sends == ["first"]
    else:
        assert sends == ["first", "second", "third"]


def test_a_new_instance_takes_over_the_goal_of_the_last():
    rules = rules_of({**DRIP, "steps": [{"send": {"template": "first"}}]})
    steps = [GO, Event("go", T0 + DAY), Event("purchase", T0 + DAY + MIN)]
    (conv,) = _conversions(rules, steps)
    assert conv.entered_ms == T0 + DAY


def test_keyed_goals_match_the_key_when_asked():
    carts = {"id": "carts", "entry": {"event": "cart_add"}, "key": "cart_id",
             "steps": [{"send": {"template": "cart"}}],
             "goal": {"event": "purchase", "match_key": True}}
    steps = [Event("cart_add", T0, {"cart_id": "a"}), Event("cart_add", T0, {"cart_id": "b"}),
             Event("purchase", T0 + HOUR, {"cart_id": "b"})]
    assert [c.key for c in _conversions(rules_of(carts), steps)] == ["b"]
    carts["goal"] = {"event": "purchase"}
    assert sorted(c.key for c in _conversions(rules_of(carts), steps)) == ["a", "b"]


def test_open_goals_survive_the_state_bytes_and_expire():
    engine = Engine(rules_of(DRIP), unknown_users_mailable=True)
    state = UserState("u1")
    run(engine, [GO, T0 + 2 * HOUR], state)
    again = decode_state("u1", encode_state(state))
    assert again.goals == state.goals == [
        GoalWatch("drip", "", T0, T0 + 7 * DAY, "treated", "", T0, (2, "second", T0 + HOUR))]
    assert [c.sent for c in run(engine, [Event("purchase", T0 + 3 * HOUR)], again)
            if isinstance(c, Converted)] == [(2, "second", T0 + HOUR)]
    engine.advance(state, T0 + 8 * DAY)
    assert state.goals == []


def test_state_of_the_first_format_still_reads():
    import msgpack
    old = msgpack.packb([1, [["drip", "", 2, T0, T0 + HOUR, {}]], {}, [], {}, {}, None, ""])
    state = decode_state("u1", old)
    assert (state.instances[0].cohort, state.instances[0].arm, state.goals) == ("", "", [])
    actions = brief(run(Engine(rules_of(DRIP), unknown_users_mailable=True), [T0 + HOUR],
                        state))
    assert actions == [("send", "drip", "", "second", T0 + HOUR)]
    assert state.instances[0].cohort == "treated"
