"""What a backtest writes: the JSON summary and the --sends lines to the byte, the table for
people, the one-line run summary on stderr, the same bytes on every replay, and sequence
errors located by file and line."""

import re
from pathlib import Path

import pytest
from backtest_cases import EXAMPLES, backtest, write_csv, write_sequence

from server.backtest import format_instant

HEADER = ("user_id", "event", "timestamp", "cart_id")
SHOP: list[tuple[str, str, str, str]] = [
    ("u2", "cart_add", "2024-03-04T10:00:00Z", "c2"),
    ("u1", "cart_add", "2024-03-04T10:00:00Z", "c1"),
    ("u1", "product_view", "2024-03-04T10:30:00.250Z", ""),
    ("u3", "cart_add", "2024-03-04T09:00:00Z", "c3"),
    ("u3", "cart_add", "2024-03-05T09:00:00Z", "c4"),
    ("u3", "product_view", "2024-03-05T12:00:00Z", ""),  # a third recovery email: capped
    ("u3", "cart_add", "2024-03-06T09:00:00Z", "c5"),
    ("u3", "purchase", "2024-03-06T09:30:00Z", "c5"),
]


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "shop.csv", HEADER, SHOP)


def test_the_json_summary_exactly(shop: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = backtest(capsys, shop)
    assert run.out == (
        '{"events": 8, "users": 3, "sequences": {'
        '"browse-abandonment": {"entered": 2, "sent": 1, "suppressed": {"cap": 1}, "exited": 2, '
        '"mailed_users": 1, "emails_per_mailed_user": 1.0, "converted": 1, '
        '"converted_after_email": 0, "lead_time_ms": null, "mailed_never_converted": 1, '
        '"goal_events": 1, "goal_events_after_email": 0, "goal_events_after_email_share": 0.0}, '
        '"cart-recovery": {"entered": 5, "sent": 4, "suppressed": {}, "exited": 5, '
        '"mailed_users": 3, "emails_per_mailed_user": 1.3333333333333333, "converted": 1, '
        # u3's last instance converted before its own email; an earlier one's came first
        '"converted_after_email": 0, "lead_time_ms": null, "mailed_never_converted": 2, '
        '"goal_events": 1, "goal_events_after_email": 1, "goal_events_after_email_share": 1.0}}}'
        '\n'
    )


def test_every_loaded_sequence_is_in_the_summary(
    shop: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = backtest(capsys, shop, sequences=[EXAMPLES / "sequences", EXAMPLES / "segments"])
    tallies = run.summary["sequences"]
    assert sorted(tallies) == sorted(p.stem for p in (EXAMPLES / "sequences").glob("*.yaml"))
    assert {k: tallies["product-interest"][k] for k in ("entered", "sent", "suppressed",
                                                       "exited", "converted")} == {
        "entered": 0, "sent": 0, "suppressed": {}, "exited": 0, "converted": 0}


def test_the_sends_file_exactly(
    shop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sends.jsonl"
    backtest(capsys, shop, "--sends", str(out))
    sent = '"status": "sent", "reason": null}'
    assert out.read_text(encoding="utf-8").splitlines() == [
        '{"user": "u3", "sequence": "cart-recovery", "template": "cart-reminder", '
        f'"at": "2024-03-04T10:00:00Z", {sent}',
        '{"user": "u1", "sequence": "cart-recovery", "template": "cart-reminder", '
        f'"at": "2024-03-04T11:00:00Z", {sent}',
        '{"user": "u2", "sequence": "cart-recovery", "template": "cart-reminder", '
        f'"at": "2024-03-04T11:00:00Z", {sent}',
        '{"user": "u1", "sequence": "browse-abandonment", "template": "browse-reminder", '
        f'"at": "2024-03-04T11:00:00.250Z", {sent}',
        '{"user": "u3", "sequence": "cart-recovery", "template": "cart-reminder", '
        f'"at": "2024-03-05T10:00:00Z", {sent}',
        '{"user": "u3", "sequence": "browse-abandonment", "template": "browse-reminder", '
        '"at": "2024-03-05T12:30:00Z", "status": "suppressed", "reason": "cap"}',
    ]


@pytest.mark.parametrize(("at_ms", "text"), [
    (1_709_546_400_000, "2024-03-04T10:00:00Z"),
    (1_709_546_400_250, "2024-03-04T10:00:00.250Z"),
    (1_709_546_400_001, "2024-03-04T10:00:00.001Z"),
    (0, "1970-01-01T00:00:00Z"),
    (-1, "1969-12-31T23:59:59.999Z"),
])
def test_format_instant(at_ms: int, text: str) -> None:
    assert format_instant(at_ms) == text


def test_the_table_is_aligned_with_totals(
    shop: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = backtest(capsys, shop, json_format=False).out.splitlines()
    # 366 days after the last event (2024-03-06T09:30Z), in a year without a 29 February
    assert lines[0] == "replayed 8 events of 3 users; clock stopped at 2025-03-07T09:30:00Z"
    header, browse, cart, rule, total = lines[2:7]
    assert header.split() == ["sequence", "entered", "sent", "suppressed", "exited"]
    assert browse.split() == ["browse-abandonment", "2", "1", "1", "(cap", "1)", "2"]
    assert cart.split() == ["cart-recovery", "5", "4", "0", "5"]
    assert set(rule) == {"-", " "}
    assert total.split() == ["total", "7", "5", "1", "(cap", "1)", "7"]
    for heading in ("entered", "sent"):  # counts are right-aligned under their heading
        right_edge = header.index(heading) + len(heading)
        assert {line[right_edge - 1] for line in (browse, cart, total)} <= set("0123456789")
        assert {line[right_edge:right_edge + 2] for line in (browse, cart, total)} == {"  "}
    assert lines[8].split()[:2] == ["sequence", "converted"]
    assert lines[10].split() == ["browse-abandonment", "1", "0", "1", "of", "1", "0", "of", "1",
                                 "(0%)"]
    assert lines[11].split() == ["cart-recovery", "1", "0", "2", "of", "3", "1", "of", "1",
                                 "(100%)"]


STDERR_LINE = re.compile(
    r"backtest: 8 events, 3 users, 0 skipped rows, [0-9.]+ s, [0-9,]+ events/s "
    r"\(engine phase [0-9.]+ s, ([0-9,]+|-) events/s\)\n"
)


@pytest.mark.parametrize("json_format", [True, False])
def test_one_line_on_stderr(
    shop: Path, capsys: pytest.CaptureFixture[str], json_format: bool
) -> None:
    err = backtest(capsys, shop, json_format=json_format).err
    assert STDERR_LINE.fullmatch(err), err


def test_replaying_the_same_file_twice_gives_the_same_bytes(
    shop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = []
    for attempt in range(2):
        for json_format in (True, False):
            out = tmp_path / f"sends-{attempt}-{json_format}.jsonl"
            run = backtest(capsys, shop, "--sends", str(out), json_format=json_format,
                           sequences=[EXAMPLES / "sequences", EXAMPLES / "segments"])
            outputs.append((run.out, out.read_bytes()))
    assert outputs[0] == outputs[2]
    assert outputs[1] == outputs[3]
    assert outputs[0][1] == outputs[1][1]


def test_an_empty_history_reports_zeros(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = write_csv(tmp_path / "empty.csv", HEADER, [])
    out = tmp_path / "sends.jsonl"
    run = backtest(capsys, events, "--sends", str(out))
    assert run.summary["events"] == 0
    assert run.summary["sequences"]["cart-recovery"]["entered"] == 0
    assert out.read_bytes() == b""


def test_invalid_sequence_files_exit_1_naming_every_problem_by_file_and_line(
    shop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = write_sequence(tmp_path / "seq", "broken.yaml",
                            "id: broken\nentry:\n  event: cart_add\nsteps:\n"
                            "  - wait_for:\n      event: purchase\n      timeout: 60x\n")
    # examples/sequences without examples/segments: high-intent-offer names a missing segment
    run = backtest(capsys, shop, sequences=[EXAMPLES / "sequences", broken])
    assert run.code == 1
    assert run.out == ""
    assert f"{broken}:7: steps[0].wait_for.timeout: invalid duration '60x'" in run.err
    offer = EXAMPLES / "sequences" / "high-intent-offer.yaml"
    assert f"{offer}:7: entry.segment: no segment is named" in run.err
    assert "invalid: 2 problem(s)" in run.err


def test_an_unwritable_sends_file_exits_2(
    shop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = backtest(capsys, shop, "--sends", str(tmp_path / "no" / "such" / "dir.jsonl"))
    assert run.code == 2
    assert "cannot write" in run.err
