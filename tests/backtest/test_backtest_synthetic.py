"""The synthetic shop history: deterministic for a seed, time-ordered, with the events and gaps
the example sequences need; and a replay of it gives the same result read in time order or
sorted in memory from a file in reverse."""

import csv
from collections import Counter
from pathlib import Path

import pytest
from backtest_cases import EXAMPLES, backtest

from server.backtest import parse_timestamp
from server.backtest.synthetic import COLUMNS, generate

HOUR_MS = 3_600_000


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream))


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("synthetic") / "shop.csv"
    generate(path, events=4000, users=60, seed=7)
    return path


def test_the_same_seed_writes_the_same_bytes(history: Path, tmp_path: Path) -> None:
    again, other = tmp_path / "again.csv", tmp_path / "other.csv"
    generate(again, events=4000, users=60, seed=7)
    generate(other, events=4000, users=60, seed=8)
    assert again.read_bytes() == history.read_bytes()
    assert other.read_bytes() != history.read_bytes()


def test_exactly_the_rows_asked_for_in_time_order(history: Path) -> None:
    rows = _rows(history)
    assert len(rows) == 4000
    assert tuple(rows[0]) == COLUMNS
    stamps = [parse_timestamp(r["timestamp"]) for r in rows]
    assert stamps == sorted(stamps)
    assert stamps[-1] - stamps[0] > 3 * 24 * HOUR_MS  # several days
    assert len({r["user_id"] for r in rows}) <= 60


def test_the_events_the_example_sequences_need(history: Path) -> None:
    kinds = Counter(r["event"] for r in _rows(history))
    for kind in ("product_view", "page_view", "scroll", "cart_add", "checkout_start",
                 "purchase", "click"):
        assert kinds[kind] > 0, kind
    assert kinds["page_view"] > kinds["cart_add"] > kinds["purchase"]


def test_some_carts_are_bought_within_the_hour_and_some_abandoned(history: Path) -> None:
    added: dict[str, int] = {}
    bought: dict[str, int] = {}
    for row in _rows(history):
        at = parse_timestamp(row["timestamp"])
        if row["event"] == "cart_add":
            added[row["cart_id"]] = at
        elif row["event"] == "purchase":
            bought[row["cart_id"]] = at
    within = [c for c, at in added.items() if c in bought and bought[c] - at <= HOUR_MS]
    late = [c for c, at in added.items() if c in bought and bought[c] - at > HOUR_MS]
    never = [c for c in added if c not in bought]
    assert within and late and never
    assert len(never) > len(within)


def test_replay_in_file_order_and_sorted_in_memory_agree(
    history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = history.read_text(encoding="utf-8").splitlines(keepends=True)
    per_user_instants = Counter((r["user_id"], r["timestamp"]) for r in _rows(history))
    assert max(per_user_instants.values()) == 1  # no ties, so reversing keeps a single order
    reversed_history = tmp_path / "reversed.csv"
    reversed_history.write_text(lines[0] + "".join(reversed(lines[1:])), encoding="utf-8")
    outputs = []
    for path in (history, reversed_history):
        sends = tmp_path / f"{path.stem}-sends.jsonl"
        run = backtest(capsys, path, "--sends", str(sends),
                       sequences=[EXAMPLES / "sequences", EXAMPLES / "segments"])
        assert run.code == 0
        outputs.append((run.out, sends.read_bytes(), "sorted in memory" in run.err))
    assert outputs[0][:2] == outputs[1][:2]
    assert (outputs[0][2], outputs[1][2]) == (False, True)
    assert outputs[0][1].count(b'"status": "sent"') > 50
