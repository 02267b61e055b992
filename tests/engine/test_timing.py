"""When things happen: event-time order, wait_for timeouts at their exact instant, awaited
events at the deadline, and timers due together firing in sequence-id order."""

import pytest
from engine_tables import HOUR, MIN, T0, rules_of, run, run_brief

from server.engine import Engine, Event, UserState


def _waits_for_done(**extra: object) -> dict[str, object]:
    return {
        "id": "watch",
        "entry": {"event": "go"},
        "steps": [
            {"wait_for": {"event": "done", "timeout": "60m"}, "on_event": "exit"},
            {"send": {"template": "late"}},
        ],
        **extra,
    }


WATCH = rules_of(_waits_for_done())
ENTERED = ("enter", "watch", "", T0)
TIMED_OUT = [ENTERED, ("send", "watch", "", "late", T0 + HOUR),
             ("exit", "watch", "", T0 + HOUR, "completed")]


def answered_at(t: int) -> list[tuple[object, ...]]:
    return [ENTERED, ("exit", "watch", "", t, "exit")]


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        pytest.param([Event("go", T0)], [ENTERED], id="nothing-due-yet"),
        pytest.param([Event("go", T0), T0 + HOUR - 1], [ENTERED], id="advance-1ms-before"),
        pytest.param([Event("go", T0), T0 + HOUR], TIMED_OUT, id="advance-to-deadline-fires"),
        pytest.param([Event("go", T0), Event("done", T0 + 30 * MIN)], answered_at(T0 + 30 * MIN),
                     id="answered-early"),
        pytest.param([Event("go", T0), Event("done", T0 + HOUR)], answered_at(T0 + HOUR),
                     id="answered-exactly-at-deadline-counts"),
        pytest.param([Event("go", T0), Event("done", T0 + HOUR + 1)],
                     TIMED_OUT, id="answered-1ms-late-times-out-first"),
        pytest.param([Event("go", T0), Event("other", T0 + HOUR)], [ENTERED],
                     id="unrelated-event-at-deadline-fires-nothing"),
        pytest.param([Event("go", T0), Event("other", T0 + HOUR + 1)], TIMED_OUT,
                     id="unrelated-event-after-deadline-fires-timer"),
    ],
)
def test_wait_for_times_out_at_exactly_start_plus_timeout(steps, expected):
    assert run_brief(WATCH, steps) == expected


def test_next_deadline_is_start_plus_timeout_and_clears_when_answered():
    engine, state = Engine(WATCH, unknown_users_mailable=True), UserState("u1")
    assert engine.next_deadline(state) is None
    engine.receive(state, Event("go", T0))
    assert engine.next_deadline(state) == T0 + HOUR
    engine.receive(state, Event("done", T0 + HOUR))
    assert engine.next_deadline(state) is None


def _waiting(ident: str, wait: str, template: str) -> dict[str, object]:
    return {"id": ident, "entry": {"event": "go"},
            "steps": [{"wait": wait}, {"send": {"template": template}}]}


@pytest.mark.parametrize(
    ("sequences", "steps", "expected_sends"),
    [
        pytest.param(
            [_waiting("slow", "30m", "slow"), _waiting("quick", "10m", "quick")],
            [Event("go", T0), T0 + HOUR],
            [("quick", T0 + 10 * MIN), ("slow", T0 + 30 * MIN)],
            id="timers-fire-in-due-order",
        ),
        pytest.param(
            [_waiting("c", "10m", "c"), _waiting("a", "10m", "a"), _waiting("b", "10m", "b")],
            [Event("go", T0), T0 + 10 * MIN],
            [("a", T0 + 10 * MIN), ("b", T0 + 10 * MIN), ("c", T0 + 10 * MIN)],
            id="same-instant-in-sequence-id-order",
        ),
        pytest.param(
            [_waiting("c", "10m", "c"), _waiting("a", "10m", "a"), _waiting("b", "10m", "b")],
            [Event("go", T0), Event("noise", T0 + 11 * MIN)],
            [("a", T0 + 10 * MIN), ("b", T0 + 10 * MIN), ("c", T0 + 10 * MIN)],
            id="same-instant-in-sequence-id-order-on-receive",
        ),
    ],
)
def test_timers_fire_in_time_then_sequence_id_order(sequences, steps, expected_sends):
    actions = run_brief(rules_of(*sequences), steps)
    assert [(a[3], a[4]) for a in actions if a[0] == "send"] == expected_sends


def test_events_after_a_due_timer_see_its_effects_first():
    """An event at t is applied after every timer due before t, so a purchase that comes after
    the timeout does not cancel the reminder, and its own entry is listed after the timer's."""
    rules = rules_of(
        _waits_for_done(),
        {"id": "thanks", "entry": {"event": "done"}, "steps": [{"send": {"template": "thanks"}}]},
    )
    actions = run_brief(rules, [Event("go", T0), Event("done", T0 + 2 * HOUR)])
    assert actions == [
        *TIMED_OUT,
        ("enter", "thanks", "", T0 + 2 * HOUR),
        ("send", "thanks", "", "thanks", T0 + 2 * HOUR),
        ("exit", "thanks", "", T0 + 2 * HOUR, "completed"),
    ]


def test_advance_is_idempotent_for_the_same_instant():
    engine, state = Engine(WATCH, unknown_users_mailable=True), UserState("u1")
    first = run(engine, [Event("go", T0), T0 + HOUR], state)
    assert len(first) == 3
    assert engine.advance(state, T0 + HOUR) == []
    assert engine.advance(state, T0 + 5 * HOUR) == []


def test_instance_and_inactivity_timers_at_one_instant_fire_in_sequence_id_order():
    rules = rules_of(
        {"id": "welcome", "entry": {"event": "signup"}, "steps": [{"send": {"template": "hi"}}]},
        {"id": "c-wait", "entry": {"event": "signup"}, "steps": [{"wait": "1h"}, "exit"]},
        {"id": "a-wait", "entry": {"event": "signup"}, "steps": [{"wait": "1h"}, "exit"]},
        {"id": "b-inactive", "entry": {"inactive": {"for": "1h"}},
         "steps": [{"send": {"template": "miss-you"}}], "cooldown": "1d"},
    )
    engine, state = Engine(rules, unknown_users_mailable=True), UserState("u1")
    run(engine, [Event("signup", T0)], state)
    assert engine.next_deadline(state) == T0 + HOUR
    fired = engine.advance(state, T0 + HOUR)
    assert [(type(a).__name__, a.sequence) for a in fired] == [
        ("Exited", "a-wait"),
        ("Entered", "b-inactive"), ("Send", "b-inactive"), ("Exited", "b-inactive"),
        ("Exited", "c-wait"),
    ]
