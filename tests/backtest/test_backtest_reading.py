"""Reading histories: required columns, properties from the other columns, CSV and JSON Lines
alike, every timestamp form, --rename, custom events, and malformed rows named by line."""

from pathlib import Path

import pytest
from backtest_cases import EXAMPLES, backtest, sends_file, write_csv, write_jsonl, write_sequence

from server.backtest import parse_timestamp

HEADER = ("user_id", "event", "timestamp", "cart_id")
T0_ISO = "2024-03-04T10:00:00Z"
T0_MS = 1_709_546_400_000
REMINDER_AT = "2024-03-04T11:00:00Z"


def _reminder_sends(path: Path) -> list[tuple[str, str, str]]:
    return [(s["user"], s["template"], s["at"]) for s in sends_file(path)]


# ---- required columns -------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["user_id", "event", "timestamp"])
def test_a_header_without_a_required_column_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], missing: str
) -> None:
    header = [c for c in HEADER if c != missing]
    events = write_csv(tmp_path / "h.csv", header, [["u1", "cart_add", "c1"]])
    run = backtest(capsys, events)
    assert run.code == 2
    assert f"{events}:1: the header lacks required column(s): {missing}" in run.err
    assert run.out == ""


def test_required_columns_may_come_in_any_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = write_csv(tmp_path / "h.csv", ("cart_id", "timestamp", "event", "user_id"),
                       [("c1", T0_ISO, "cart_add", "u1")])
    sends = tmp_path / "sends.jsonl"
    assert backtest(capsys, events, "--sends", str(sends)).code == 0
    assert _reminder_sends(sends) == [("u1", "cart-reminder", REMINDER_AT)]


# ---- properties and time zones ----------------------------------------------------------------

PRO_WELCOME = """\
id: pro-welcome
entry:
  event: signup
  where:
    plan: pro
    coupon: {exists: false}
    timezone: {exists: false}
steps:
  - send:
      template: pro-welcome
"""


def test_extra_columns_become_properties_and_empty_cells_are_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sequence = write_sequence(tmp_path / "seq", "pro-welcome.yaml", PRO_WELCOME)
    events = write_csv(tmp_path / "h.csv", ("user_id", "event", "timestamp", "plan", "coupon",
                                            "timezone"), [
        ("u1", "signup", T0_ISO, "pro", "", "Europe/Paris"),  # timezone is no property
        ("u2", "signup", T0_ISO, "free", "", ""),
        ("u3", "signup", T0_ISO, "pro", "SAVE15", ""),
    ])
    sends = tmp_path / "sends.jsonl"
    run = backtest(capsys, events, "--sends", str(sends), sequences=[sequence])
    assert run.summary["sequences"]["pro-welcome"]["entered"] == 1
    assert [s["user"] for s in sends_file(sends)] == ["u1"]


QUIET_NIGHTS = """\
id: hello
entry:
  event: signup
steps:
  - send:
      template: hello
quiet_hours:
  start: "22:00"
  end: "07:30"
"""


def test_the_timezone_column_sets_the_users_zone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sequence = write_sequence(tmp_path / "seq", "hello.yaml", QUIET_NIGHTS)
    events = write_csv(tmp_path / "h.csv", ("user_id", "event", "timestamp", "timezone"), [
        ("sydney", "signup", "2024-03-04T12:00:00Z", "Australia/Sydney"),  # 23:00 local
        ("nowhere", "signup", "2024-03-04T12:00:00Z", ""),  # noon in UTC
    ])
    sends = tmp_path / "sends.jsonl"
    backtest(capsys, events, "--sends", str(sends), sequences=[sequence])
    assert [(s["user"], s["at"]) for s in sends_file(sends)] == [
        ("nowhere", "2024-03-04T12:00:00Z"),
        ("sydney", "2024-03-04T20:30:00Z"),  # 07:30 the next morning in Sydney (UTC+11)
    ]


# ---- CSV and JSON Lines -----------------------------------------------------------------------

SHOP_ROWS: list[dict[str, object]] = [
    {"user_id": "u1", "event": "product_view", "timestamp": "2024-03-04T09:00:00Z",
     "path": "/product/premium-laptop"},
    {"user_id": "u1", "event": "cart_add", "timestamp": "2024-03-04T09:05:00Z", "cart_id": "c1",
     "value_minor": 25000},
    {"user_id": "u1", "event": "checkout_start", "timestamp": "2024-03-04T09:06:00Z",
     "cart_id": "c1", "value_minor": 25000, "timezone": "Europe/Berlin"},
    {"user_id": "u2", "event": "cart_add", "timestamp": "2024-03-04T09:10:00.250Z",
     "cart_id": "c2", "value_minor": 900},
    {"user_id": "u2", "event": "purchase", "timestamp": "2024-03-04T09:20:00Z", "cart_id": "c2"},
    {"user_id": "u3", "event": "checkout_start", "timestamp": "2024-03-04T09:30:00Z",
     "cart_id": "c3", "value_minor": 1200},
]


def _as_csv(path: Path, records: list[dict[str, object]]) -> Path:
    header = list(dict.fromkeys(key for record in records for key in record))
    return write_csv(path, header, [[r.get(k, "") for k in header] for r in records])


def test_csv_and_json_lines_give_the_same_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = []
    for history in (_as_csv(tmp_path / "h.csv", SHOP_ROWS),
                    write_jsonl(tmp_path / "h.jsonl", SHOP_ROWS)):
        sends = tmp_path / f"{history.suffix[1:]}-sends.jsonl"
        run = backtest(capsys, history, "--sends", str(sends),
                       sequences=[EXAMPLES / "sequences", EXAMPLES / "segments"])
        assert run.code == 0
        outputs.append((run.out, sends.read_bytes()))
    assert outputs[0] == outputs[1]
    assert b"checkout-reminder-vip" in outputs[0][1]  # value_minor read as a number from CSV


@pytest.mark.parametrize(("name", "text"), [
    ("jsonl-by-sniffing.txt", '\n{"user_id": "u1", "event": "cart_add", '
                              f'"timestamp": "{T0_ISO}"}}\n'),
    ("csv-by-sniffing.log", f"user_id,event,timestamp\n\nu1,cart_add,{T0_ISO}\n"),
    ("events.ndjson", f'{{"user_id": "u1", "event": "cart_add", "timestamp": {T0_MS}}}\n'),
])
def test_the_format_comes_from_the_extension_or_the_first_character(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str
) -> None:
    events = tmp_path / name
    events.write_text(text, encoding="utf-8")
    sends = tmp_path / "sends.jsonl"
    run = backtest(capsys, events, "--sends", str(sends))
    assert run.summary["events"] == 1
    assert _reminder_sends(sends) == [("u1", "cart-reminder", REMINDER_AT)]


# ---- timestamps -------------------------------------------------------------------------------

SAME_INSTANT = [
    "2024-03-04T10:00:00Z",
    "2024-03-04T10:00:00",  # no offset: UTC
    "2024-03-04T10:00:00.000+00:00",
    "2024-03-04T12:00:00+02:00",
    "2024-03-04T05:00:00-05:00",
    str(T0_MS),  # epoch milliseconds
]


@pytest.mark.parametrize("stamp", SAME_INSTANT)
@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_every_timestamp_form_reads_as_the_same_instant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], stamp: str, kind: str
) -> None:
    if kind == "csv":
        events = write_csv(tmp_path / "h.csv", HEADER, [("u1", "cart_add", stamp, "c1")])
    else:
        value: object = int(stamp) if stamp.isdigit() else stamp  # JSON epoch ms: a number
        events = write_jsonl(tmp_path / "h.jsonl",
                             [{"user_id": "u1", "event": "cart_add", "timestamp": value}])
    sends = tmp_path / "sends.jsonl"
    backtest(capsys, events, "--sends", str(sends))
    assert _reminder_sends(sends) == [("u1", "cart-reminder", REMINDER_AT)]


@pytest.mark.parametrize(("value", "expected_ms"), [
    ("2024-03-04T10:00:00Z", T0_MS),
    ("2024-03-04T10:00:00.250Z", T0_MS + 250),
    ("2024-03-04T10:00:00.250999Z", T0_MS + 250),  # below a millisecond: dropped
    ("2024-03-04", T0_MS - 10 * 3_600_000),
    ("1969-12-31T23:59:59.999Z", -1),
    ("0", 0),
    (T0_MS, T0_MS),
])
def test_parse_timestamp(value: object, expected_ms: int) -> None:
    assert parse_timestamp(value) == expected_ms


@pytest.mark.parametrize("value", ["", "yesterday", "2024-13-01T00:00:00Z", "-5", "1.5e12",
                                   1.5, True, None])
def test_parse_timestamp_refuses(value: object) -> None:
    with pytest.raises(ValueError, match="neither ISO 8601 nor epoch milliseconds"):
        parse_timestamp(value)


# ---- event names ------------------------------------------------------------------------------


def test_rename_maps_event_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = write_csv(tmp_path / "h.csv", HEADER, [("u1", "add_to_cart", T0_ISO, "c1")])
    plain = backtest(capsys, events)
    assert plain.summary["sequences"]["cart-recovery"]["entered"] == 0
    renamed = backtest(capsys, events, "--rename", "add_to_cart=cart_add",
                       "--rename", "view_item=product_view")
    assert {k: renamed.summary["sequences"]["cart-recovery"][k]
            for k in ("entered", "sent", "suppressed", "exited")} == {
        "entered": 1, "sent": 1, "suppressed": {}, "exited": 1,
    }


@pytest.mark.parametrize("pair", ["add_to_cart", "=cart_add", "add_to_cart="])
def test_rename_needs_old_and_new(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pair: str
) -> None:
    events = write_csv(tmp_path / "h.csv", HEADER, [])
    with pytest.raises(SystemExit) as exit_:
        backtest(capsys, events, "--rename", pair)
    assert exit_.value.code == 2
    assert "is not OLD=NEW" in capsys.readouterr().err


WEBINAR = """\
id: webinar-followup
entry:
  event: webinar_signup
  where: {topic: pricing}
steps:
  - wait: 1d
  - send:
      template: webinar-recording
"""


def test_unknown_event_names_are_custom_events_that_can_drive_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sequence = write_sequence(tmp_path / "seq", "webinar.yaml", WEBINAR)
    events = write_csv(tmp_path / "h.csv", ("user_id", "event", "timestamp", "topic"), [
        ("u1", "webinar_signup", T0_ISO, "pricing"),
        ("u2", "webinar_signup", T0_ISO, "onboarding"),
        ("u3", "never_heard_of_it", T0_ISO, "pricing"),
    ])
    sends = tmp_path / "sends.jsonl"
    run = backtest(capsys, events, "--sends", str(sends), sequences=[sequence])
    (tally,) = run.summary["sequences"].values()
    assert (run.summary["events"], run.summary["users"], list(run.summary["sequences"])) == (
        3, 3, ["webinar-followup"])
    assert {k: tally[k] for k in ("entered", "sent", "suppressed", "exited")} == {
        "entered": 1, "sent": 1, "suppressed": {}, "exited": 1}
    assert _reminder_sends(sends) == [("u1", "webinar-recording", "2024-03-05T10:00:00Z")]


# ---- malformed rows ---------------------------------------------------------------------------

GOOD_CSV_ROW = f"u1,cart_add,{T0_ISO},c1"
MALFORMED_CSV = [
    (f",cart_add,{T0_ISO},c1", "user_id is empty"),
    (f"u2,,{T0_ISO},c1", "event is empty"),
    ("u2,cart_add,,c1", "timestamp is empty"),
    ("u2,cart_add,yesterday,c1", "timestamp 'yesterday' is neither ISO 8601 nor epoch"),
    ("u2,cart_add", "has 2 fields, the header has 4"),
    (f"u2,cart_add,{T0_ISO},c1,extra", "has 5 fields, the header has 4"),
]
GOOD_JSON_ROW = f'{{"user_id": "u1", "event": "cart_add", "timestamp": "{T0_ISO}"}}'
MALFORMED_JSONL = [
    ('{"user_id": "u2", "event": "cart_add"', "not JSON"),
    ("[1, 2]", "not a JSON object"),
    (f'{{"event": "cart_add", "timestamp": "{T0_ISO}"}}', "user_id is missing"),
    (f'{{"user_id": true, "event": "cart_add", "timestamp": "{T0_ISO}"}}', "user_id is not text"),
    (f'{{"user_id": "u2", "event": "", "timestamp": "{T0_ISO}"}}', "event is missing"),
    ('{"user_id": "u2", "event": "cart_add"}', "timestamp is missing"),
    ('{"user_id": "u2", "event": "cart_add", "timestamp": 1.7e12}', "neither ISO 8601"),
    (f'{{"user_id": "u2", "event": "cart_add", "timestamp": "{T0_ISO}", "cart": {{"id": 1}}}}',
     "property 'cart' is an object"),
    (f'{{"user_id": "u2", "event": "cart_add", "timestamp": "{T0_ISO}", "tags": [1]}}',
     "property 'tags' is a list"),
    (f'{{"user_id": "u2", "event": "cart_add", "timestamp": "{T0_ISO}", "timezone": 1}}',
     "timezone 1 is not text"),
]


def _history_with_bad_third_line(tmp_path: Path, kind: str, bad: str) -> Path:
    if kind == "csv":
        lines = [",".join(HEADER), GOOD_CSV_ROW, bad, GOOD_CSV_ROW.replace("u1", "u3")]
    else:
        lines = [GOOD_JSON_ROW, GOOD_JSON_ROW.replace("u1", "u4"), bad,
                 GOOD_JSON_ROW.replace("u1", "u3")]
    path = tmp_path / f"h.{kind}"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


MALFORMED = [("csv", *case) for case in MALFORMED_CSV] + [
    ("jsonl", *case) for case in MALFORMED_JSONL
]


@pytest.mark.parametrize(("kind", "bad", "message"), MALFORMED)
def test_a_malformed_row_is_named_by_line_skipped_and_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, bad: str, message: str
) -> None:
    events = _history_with_bad_third_line(tmp_path, kind, bad)
    run = backtest(capsys, events)
    assert run.code == 0
    assert f"backtest: skipped {events}:3: " in run.err
    assert message in run.err
    assert ", 1 skipped rows, " in run.err
    assert run.summary["events"] == (2 if kind == "csv" else 3)


@pytest.mark.parametrize(("kind", "bad", "message"), MALFORMED)
def test_a_malformed_row_is_fatal_under_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, bad: str, message: str
) -> None:
    events = _history_with_bad_third_line(tmp_path, kind, bad)
    run = backtest(capsys, events, "--strict")
    assert run.code == 2
    assert run.out == ""
    assert f"backtest: {events}:3: " in run.err
    assert message in run.err


def test_a_row_with_a_quoted_newline_keeps_later_line_numbers_right(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "h.csv"
    events.write_text(f'user_id,event,timestamp,note\nu1,cart_add,{T0_ISO},"two\nlines"\n'
                      "u2,cart_add,soon,x\n", encoding="utf-8")
    run = backtest(capsys, events)
    assert f"skipped {events}:4: timestamp 'soon'" in run.err


def test_many_malformed_rows_are_counted_and_only_the_first_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = write_csv(tmp_path / "h.csv", HEADER, [("u1", "cart_add", "soon", "c1")] * 25)
    run = backtest(capsys, events)
    assert run.err.count("backtest: skipped ") == 20
    assert "... and 5 more skipped rows" in run.err
    assert ", 25 skipped rows, " in run.err


def test_a_missing_history_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = backtest(capsys, tmp_path / "nope.csv")
    assert run.code == 2
    assert f"{tmp_path / 'nope.csv'}: cannot read" in run.err


def test_a_history_that_is_not_utf8_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "h.csv"
    events.write_bytes(b"user_id,event,timestamp\nu1,caf\xe9,2024-03-04T10:00:00Z\n")
    run = backtest(capsys, events)
    assert run.code == 2
    assert f"{events}: not UTF-8 text" in run.err
