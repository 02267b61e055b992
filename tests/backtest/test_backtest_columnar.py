"""The columnar fast path decides exactly what the row replay decides, and hands every file it
cannot read exactly back to the row path."""

from pathlib import Path

import pytest

from server.backtest import columnar
from server.backtest.columnar import replay_columnar
from server.backtest.history import HistoryFile
from server.backtest.replay import Replay, replay_history
from server.backtest.synthetic import generate
from server.engine import Engine, compile_rules
from server.sequences import load_paths

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "sequences"
HEADER = "user_id,event,timestamp,cart_id,timezone\n"


def _engine() -> Engine:
    sequences, _ = load_paths([EXAMPLES / "cart-recovery.yaml",
                               EXAMPLES / "browse-abandonment.yaml"])
    return Engine(compile_rules(sequences), unknown_users_mailable=True)


def _both(path: Path, until_ms: int | None = None,
          rename: dict[str, str] | None = None) -> tuple[Replay | None, Replay]:
    fast_engine, row_engine = _engine(), _engine()
    fast = replay_columnar(fast_engine, path, rename or {}, fast_engine.rules.plans, until_ms)
    rows = replay_history(row_engine, HistoryFile(path, rename or {},
                                                  wanted=row_engine.rules.plans), until_ms)
    return fast, rows


def _same(fast: Replay | None, rows: Replay) -> None:
    assert fast is not None
    assert fast.sends == rows.sends
    assert fast.tallies == rows.tallies
    assert (fast.events, fast.users, fast.clock_end_ms, fast.pending_users,
            fast.events_after_until) == (rows.events, rows.users, rows.clock_end_ms,
                                         rows.pending_users, rows.events_after_until)


@pytest.mark.parametrize("seed", [1, 2])
def test_a_synthetic_shop_history_replays_the_same_both_ways(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "history.csv"
    generate(path, events=20_000, users=300, seed=seed)
    fast, rows = _both(path)
    _same(fast, rows)
    assert rows.sends  # the history does trigger the sequences


def test_until_and_renames_are_applied_the_same(tmp_path: Path) -> None:
    path = tmp_path / "history.csv"
    generate(path, events=10_000, users=150, seed=3)
    text = path.read_text().replace(",cart_add,", ",basket_add,")
    path.write_text(text)
    cut = 1_709_600_000_000  # within the generated days
    fast, rows = _both(path, until_ms=cut, rename={"basket_add": "cart_add"})
    _same(fast, rows)
    assert rows.events_after_until > 0 and rows.sends


def test_time_zone_news_in_rows_the_engine_does_not_read_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "history.csv"
    path.write_text(HEADER
                    + "u1,page_view,2024-03-04T21:00:00Z,,Asia/Tokyo\n"
                    + "u1,cart_add,2024-03-04T21:30:00Z,c1,\n"
                    + "u2,cart_add,2024-03-04T21:30:00.250Z,c2,\n"
                    + "u2,scroll,2024-03-04T21:31:00Z,,Europe/Berlin\n")
    fast, rows = _both(path)
    _same(fast, rows)


QUIET_NUDGE = """
id: quiet-nudge
entry:
  event: cart_add
key: user
steps:
  - wait: 10m
  - send:
      template: nudge
quiet_hours:
  start: "22:00"
  end: "07:30"
"""


def test_time_zones_changing_back_and_forth_are_followed(tmp_path: Path) -> None:
    """A user's zone, learnt from rows the engine does not read, decides whether a send at
    13:40 UTC falls in quiet hours (22:40 in Tokyo) or not (14:40 in Berlin)."""
    (tmp_path / "quiet-nudge.yaml").write_text(QUIET_NUDGE)
    zones = ["Asia/Tokyo", "", "Europe/Berlin", "Asia/Tokyo", "Europe/Berlin", "Europe/Berlin"]
    rows = []
    for day in range(4, 4 + len(zones)):
        for user, shift in (("u1", 0), ("u2", 1), ("u3", 3)):
            their_zone = zones[(day - 4 + shift) % len(zones)]
            rows.append(f"{user},scroll,2024-03-{day:02}T13:00:00Z,,{their_zone}\n")
            rows.append(f"{user},cart_add,2024-03-{day:02}T13:30:00Z,c{day},\n")
    path = tmp_path / "history.csv"
    path.write_text(HEADER + "".join(rows))
    engines = [Engine(compile_rules(load_paths([tmp_path / "quiet-nudge.yaml"])[0]),
                      unknown_users_mailable=True) for _ in range(2)]
    fast = replay_columnar(engines[0], path, {}, engines[0].rules.plans, None)
    _same(fast, replay_history(engines[1], HistoryFile(path, {}, wanted=engines[1].rules.plans)))
    assert fast is not None
    hours = {(s.at_ms // 3_600_000) % 24 for s in fast.sends}
    assert 13 in hours  # sent at once in Berlin...
    assert hours - {13}  # ...and held for the morning in Tokyo


@pytest.mark.parametrize("body", [
    "u1,cart_add,2024-03-04T10:00:00Z,c1,\nu2,cart_add,2024-03-04T10:00:00.125,c2,\n"
    "u2,purchase,2024-03-04T10:20:00.500Z,c2,\n",  # with and without Z: both UTC
    "u1,cart_add,2024-03-04T10:00:00+02:00,c1,\nu2,cart_add,2024-03-04T10:00:00.5-0530,c2,\n"
    "u2,purchase,2024-03-04 15:45:00Z,c2,\n",  # offsets, and a space for the T
])
def test_timestamps_are_read_as_the_row_reader_reads_them(tmp_path: Path, body: str) -> None:
    path = tmp_path / "history.csv"
    path.write_text(HEADER + body)
    fast, rows = _both(path)
    _same(fast, rows)
    assert [s.user for s in rows.sends if s.reason is None] == ["u1"]  # u2 bought in time


def test_a_byte_order_mark_is_read_like_the_row_reader_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "history.csv"
    path.write_text("\ufeff" + HEADER + "u1,cart_add,2024-03-04T10:00:00Z,c1,\n")
    fast, rows = _both(path)
    _same(fast, rows)


@pytest.mark.parametrize("body", [
    "u1,cart_add,2024-03-04T10:00:00Z,c1\n",  # a field short: the row reader names the line
    ",cart_add,2024-03-04T10:00:00Z,c1,\n",  # empty user
    "u1,cart_add,2024-03-04T10:00:00.1234567Z,c1,\n",  # nanoseconds: only Python reads them
    "u1,cart_add,1709546400000,c1,\nu1,purchase,2024-03-04T10:00:00Z,c1,\n",  # mixed forms
    "u1,cart_add,2024-03-04T10:00:00Z,c1,\nu1,purchase,2024-03-04T09:00:00Z,c1,\n",  # back in time
])
def test_what_only_the_row_path_reads_exactly_goes_back_to_it(tmp_path: Path, body: str) -> None:
    path = tmp_path / "history.csv"
    path.write_text(HEADER + body)
    engine = _engine()
    assert replay_columnar(engine, path, {}, engine.rules.plans, None) is None


def test_a_header_the_row_reader_would_refuse_goes_back_to_it(tmp_path: Path) -> None:
    path = tmp_path / "history.csv"
    path.write_text("user_id, event ,timestamp\nu1,cart_add,2024-03-04T10:00:00Z\n")
    engine = _engine()
    assert replay_columnar(engine, path, {}, engine.rules.plans, None) is None


@pytest.mark.parametrize("workers", [2, 3])
def test_users_split_over_processes_replay_the_same(tmp_path: Path, workers: int,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(columnar, "MIN_ROWS_PER_WORKER", 1_000)  # split even a small history
    path = tmp_path / "history.csv"
    generate(path, events=20_000, users=300, seed=4)
    engine = _engine()
    split = replay_columnar(engine, path, {}, engine.rules.plans, None, workers=workers)
    _same(split, replay_history(_engine(), HistoryFile(path, {}, wanted=engine.rules.plans)))
    assert split is not None and split.sends
