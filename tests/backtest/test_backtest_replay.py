"""Replaying under a simulated clock: timers run on past the last event, --until stops the clock,
sets that re-arm forever are stopped a year on, and each user's events are replayed in time
order (file order breaking ties) however the file is ordered."""

from pathlib import Path

import pytest
from backtest_cases import Run, backtest, sends_file, write_csv, write_sequence

HEADER = ("user_id", "event", "timestamp", "cart_id")
T0_ISO = "2024-03-04T10:00:00Z"

Row = tuple[str, str, str, str]
SendRow = tuple[str, str, str, str, str | None]  # user, template, at, status, reason


def _replay(tmp_path: Path, capsys: pytest.CaptureFixture[str], rows: list[Row],
            *extra: str) -> tuple[list[SendRow], Run]:
    events = write_csv(tmp_path / "h.csv", HEADER, rows)
    out = tmp_path / "sends.jsonl"
    run = backtest(capsys, events, "--sends", str(out), *extra)
    assert run.code == 0
    sends = [(s["user"], s["template"], s["at"], s["status"], s["reason"])
             for s in sends_file(out)]
    return sends, run


def _sends(tmp_path: Path, capsys: pytest.CaptureFixture[str], rows: list[Row],
           *extra: str) -> list[SendRow]:
    return _replay(tmp_path, capsys, rows, *extra)[0]


# ---- the clock --------------------------------------------------------------------------------

CASES: dict[str, tuple[list[Row], list[SendRow]]] = {
    "a cart_add alone: the reminder 60 minutes later": (
        [("u1", "cart_add", T0_ISO, "c1")],
        [("u1", "cart-reminder", "2024-03-04T11:00:00Z", "sent", None)],
    ),
    "a purchase within the hour: nothing": (
        [("u1", "cart_add", T0_ISO, "c1"), ("u1", "purchase", "2024-03-04T10:59:59Z", "c1")],
        [],
    ),
    "a product_view alone: the browse reminder 30 minutes later": (
        [("u1", "product_view", T0_ISO, "")],
        [("u1", "browse-reminder", "2024-03-04T10:30:00Z", "sent", None)],
    ),
    "users are replayed apart, whatever the interleaving": (
        [("u2", "cart_add", T0_ISO, "c2"), ("u1", "cart_add", "2024-03-04T10:00:00.500Z", "c1"),
         ("u2", "purchase", "2024-03-04T10:10:00Z", "c2")],
        [("u1", "cart-reminder", "2024-03-04T11:00:00.500Z", "sent", None)],
    ),
    "a third recovery email in a week is capped": (
        [("u1", "cart_add", "2024-03-04T10:00:00Z", "c1"),
         ("u1", "cart_add", "2024-03-05T10:00:00Z", "c2"),
         ("u1", "cart_add", "2024-03-06T10:00:00Z", "c3")],
        [("u1", "cart-reminder", "2024-03-04T11:00:00Z", "sent", None),
         ("u1", "cart-reminder", "2024-03-05T11:00:00Z", "sent", None),
         ("u1", "cart-reminder", "2024-03-06T11:00:00Z", "suppressed", "cap")],
    ),
}


@pytest.mark.parametrize(("rows", "expected"), CASES.values(), ids=CASES.keys())
def test_replay(tmp_path: Path, capsys: pytest.CaptureFixture[str], rows: list[Row],
                expected: list[SendRow]) -> None:
    assert _sends(tmp_path, capsys, rows) == expected


UNTIL = [
    ("2024-03-04T10:30:00Z", [], 1),
    ("2024-03-04T10:59:59.999Z", [], 1),
    ("2024-03-04T11:00:00Z", [("u1", "cart-reminder", "2024-03-04T11:00:00Z", "sent", None)], 0),
    (str(1_709_550_000_000), [("u1", "cart-reminder", "2024-03-04T11:00:00Z", "sent", None)], 0),
]


@pytest.mark.parametrize(("until", "expected", "pending"), UNTIL)
def test_until_stops_the_clock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], until: str, expected: list[SendRow],
    pending: int
) -> None:
    sends, run = _replay(tmp_path, capsys, [("u1", "cart_add", T0_ISO, "c1")], "--until", until)
    assert sends == expected
    assert ("1 users with timers pending" in run.err) == bool(pending)


def test_events_after_until_are_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = write_csv(tmp_path / "h.csv", HEADER, [
        ("u1", "cart_add", T0_ISO, "c1"),
        ("u1", "purchase", "2024-03-04T12:00:00Z", "c1"),
        ("u2", "cart_add", "2024-03-04T12:00:00Z", "c2"),
    ])
    run = backtest(capsys, events, "--until", "2024-03-04T11:30:00Z")
    assert run.summary["events"] == 1
    assert run.summary["users"] == 1
    assert run.summary["sequences"]["cart-recovery"]["sent"] == 1
    assert "2 events after --until left out" in run.err


@pytest.mark.parametrize("until", ["tomorrow", "2024-03-04T25:00:00Z"])
def test_until_must_be_a_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], until: str
) -> None:
    events = write_csv(tmp_path / "h.csv", HEADER, [])
    with pytest.raises(SystemExit) as exit_:
        backtest(capsys, events, "--until", until)
    assert exit_.value.code == 2


WELCOME = """\
id: welcome
entry:
  event: signup
steps:
  - send:
      template: welcome
"""
# Every send starts the inactivity clock again, and no cooldown holds re-entry: this set mails
# the user daily for ever, unless something stops the clock.
NAG = """\
id: nag
entry:
  inactive:
    event: email_open
    for: 1d
    since: email_sent
steps:
  - send:
      template: nag
"""


def test_a_set_that_re_arms_for_ever_stops_a_year_after_the_last_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "seq"
    write_sequence(folder, "welcome.yaml", WELCOME)
    write_sequence(folder, "nag.yaml", NAG)
    events = write_csv(tmp_path / "h.csv", HEADER, [("u1", "signup", T0_ISO, "")])
    out = tmp_path / "sends.jsonl"
    run = backtest(capsys, events, "--sends", str(out), sequences=[folder])
    nags = [s["at"] for s in sends_file(out) if s["template"] == "nag"]
    assert len(nags) == 366  # one a day, up to and including the last event + 366 days
    assert nags[0] == "2024-03-05T10:00:00Z"
    assert nags[-1] == "2025-03-05T10:00:00Z"
    assert "1 users with timers pending at the end" in run.err


# ---- order ------------------------------------------------------------------------------------


def test_events_at_the_same_instant_keep_their_file_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bought_then_added = [("u1", "purchase", T0_ISO, "c0"), ("u1", "cart_add", T0_ISO, "c1")]
    added_then_bought = list(reversed(bought_then_added))
    assert _sends(tmp_path, capsys, added_then_bought) == []  # exit_on ends it at once
    assert [s[1] for s in _sends(tmp_path, capsys, bought_then_added)] == ["cart-reminder"]


def test_a_history_out_of_time_order_replays_as_if_sorted_per_user(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    in_order: list[Row] = [
        ("u1", "product_view", "2024-03-04T09:00:00Z", ""),
        ("u2", "cart_add", "2024-03-04T09:30:00Z", "c2"),
        ("u1", "purchase", T0_ISO, "c0"),  # ties with the cart_add below: file order holds
        ("u1", "cart_add", T0_ISO, "c1"),
        ("u2", "purchase", "2024-03-04T10:15:00Z", "c2"),
        ("u1", "cart_add", "2024-03-05T10:00:00Z", "c3"),
        ("u1", "purchase", "2024-03-05T10:20:00Z", "c3"),
    ]
    shuffled = [in_order[i] for i in (5, 2, 4, 6, 0, 3, 1)]
    expected = _sends(tmp_path, capsys, in_order)
    assert expected  # the case is not empty
    assert _sends(tmp_path, capsys, shuffled) == expected
    events = write_csv(tmp_path / "shuffled.csv", HEADER, shuffled)
    assert "sorted in memory" in backtest(capsys, events).err
