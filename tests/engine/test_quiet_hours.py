"""Quiet hours in the user's time zone (Event.tz, else the rule's timezone): a send due inside
the window [start, end) is deferred to the window's end, also when the window wraps midnight
and when a DST change falls inside it."""

import pytest
from engine_tables import HOUR, ms_at, rules_of, run_brief

from server.engine import Event

NY = "America/New_York"


def _quiet(start: str, end: str, timezone: str = "UTC") -> object:
    return rules_of({
        "id": "quiet", "entry": {"event": "go"},
        "steps": [{"send": {"template": "hello"}}],
        "quiet_hours": {"start": start, "end": end, "timezone": timezone},
    })


NIGHT_UTC = _quiet("21:00", "08:00")
NIGHT_BERLIN = _quiet("21:00", "08:00", "Europe/Berlin")
NIGHT_NY = _quiet("21:00", "08:00", NY)
LUNCH = _quiet("12:00", "13:00")


@pytest.mark.parametrize(
    ("rules", "event", "sent_at"),
    [
        pytest.param(NIGHT_UTC, Event("go", ms_at(2024, 6, 3, 20, 59)), ms_at(2024, 6, 3, 20, 59),
                     id="1min-before-start"),
        pytest.param(NIGHT_UTC, Event("go", ms_at(2024, 6, 3, 21)), ms_at(2024, 6, 4, 8),
                     id="exactly-at-start-deferred-past-midnight"),
        pytest.param(NIGHT_UTC, Event("go", ms_at(2024, 6, 4, 3)), ms_at(2024, 6, 4, 8),
                     id="after-midnight-same-day-end"),
        pytest.param(NIGHT_UTC, Event("go", ms_at(2024, 6, 4, 8) - 1), ms_at(2024, 6, 4, 8),
                     id="1ms-before-end"),
        pytest.param(NIGHT_UTC, Event("go", ms_at(2024, 6, 4, 8)), ms_at(2024, 6, 4, 8),
                     id="exactly-at-end-sends"),
        pytest.param(LUNCH, Event("go", ms_at(2024, 6, 3, 12, 30)), ms_at(2024, 6, 3, 13),
                     id="window-not-wrapping"),
        pytest.param(LUNCH, Event("go", ms_at(2024, 6, 3, 23)), ms_at(2024, 6, 3, 23),
                     id="outside-window-not-wrapping"),
        pytest.param(NIGHT_UTC, Event("go", ms_at(2024, 6, 4, 1), tz=NY), ms_at(2024, 6, 4, 12),
                     id="user-zone-21h-in-new-york"),
        pytest.param(NIGHT_UTC, Event("go", ms_at(2024, 6, 3, 22), tz=NY), ms_at(2024, 6, 3, 22),
                     id="user-zone-18h-in-new-york-sends"),
        pytest.param(NIGHT_BERLIN, Event("go", ms_at(2024, 6, 3, 20)), ms_at(2024, 6, 4, 6),
                     id="no-user-zone-falls-back-to-rule-zone"),
        pytest.param(NIGHT_BERLIN, Event("go", ms_at(2024, 6, 3, 20), tz="Nowhere/Atlantis"),
                     ms_at(2024, 6, 4, 6), id="unknown-user-zone-falls-back-to-rule-zone"),
        pytest.param(NIGHT_BERLIN, Event("go", ms_at(2024, 6, 3, 20), tz="America/Los_Angeles"),
                     ms_at(2024, 6, 3, 20), id="user-zone-beats-rule-zone"),
        # US spring forward 2024-03-10 02:00 EST -> 03:00 EDT; fall back 2024-11-03 02:00 EDT.
        pytest.param(NIGHT_NY, Event("go", ms_at(2024, 3, 10, 3)), ms_at(2024, 3, 10, 12),
                     id="spring-forward-inside-window-08-edt"),
        pytest.param(NIGHT_NY, Event("go", ms_at(2024, 11, 3, 2)), ms_at(2024, 11, 3, 13),
                     id="fall-back-inside-window-08-est"),
        pytest.param(_quiet("00:00", "01:30", NY), Event("go", ms_at(2024, 11, 3, 4, 30)),
                     ms_at(2024, 11, 3, 5, 30), id="end-in-repeated-hour-first-occurrence"),
        pytest.param(_quiet("00:00", "01:30", NY), Event("go", ms_at(2024, 11, 3, 6, 10)),
                     ms_at(2024, 11, 3, 6, 30), id="second-pass-of-repeated-hour-deferred"),
        pytest.param(_quiet("01:00", "02:30", NY), Event("go", ms_at(2024, 3, 10, 6, 10)),
                     ms_at(2024, 3, 10, 7), id="end-in-skipped-hour-is-end-of-gap"),
    ],
)
def test_send_inside_quiet_hours_waits_for_the_end(rules, event, sent_at):
    actions = run_brief(rules, [event, event.at_ms + 2 * 24 * HOUR])
    sends = [a[4] for a in actions if a[0] == "send"]
    assert sends == [sent_at]


def test_user_zone_from_an_earlier_event_is_kept():
    rules = rules_of(
        {"id": "quiet", "entry": {"event": "go"}, "steps": [{"send": {"template": "hello"}}],
         "quiet_hours": {"start": "21:00", "end": "08:00"}},
    )
    steps = [Event("page_view", ms_at(2024, 6, 3, 0), tz=NY), Event("go", ms_at(2024, 6, 4, 1)),
             ms_at(2024, 6, 5, 0)]
    actions = run_brief(rules, steps)
    assert [a[4] for a in actions if a[0] == "send"] == [ms_at(2024, 6, 4, 12)]


def test_deferred_send_is_rechecked_against_caps_at_the_window_end():
    rules = rules_of(
        {"id": "quiet", "group": "g", "entry": {"event": "go"},
         "steps": [{"send": {"template": "hello"}}],
         "quiet_hours": {"start": "21:00", "end": "08:00"},
         "caps": [{"group": "g", "max": 1, "per": "1d"}]},
        {"id": "loud", "group": "g", "entry": {"event": "shout"},
         "steps": [{"send": {"template": "loud"}}]},
    )
    steps = [Event("go", ms_at(2024, 6, 3, 22)), Event("shout", ms_at(2024, 6, 3, 23)),
             ms_at(2024, 6, 4, 9)]
    actions = run_brief(rules, steps)
    assert [a for a in actions if a[0] in ("send", "suppress")] == [
        ("send", "loud", "", "loud", ms_at(2024, 6, 3, 23)),
        ("suppress", "quiet", "", "hello", ms_at(2024, 6, 4, 8), "cap"),
    ]
