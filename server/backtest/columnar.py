"""The fast path for a well-formed CSV history: Apache Arrow reads, checks and filters it in C++,
and only the rows the engine must see are ever Python objects.

How this works: the row reader (history.py) turns every row into a tuple and the replay looks
at each one, most of them only to skip it (scrolls and page views no rule names). Here the file
is read as columns, every check the row reader makes is made on whole columns (field counts,
empty required fields, timestamps), and the rows to feed are picked by the same rule as the
row replay: the events the engine reads, plus any row that is news about the user's time zone.
Those are fed in file order through the row replay's own `_feed`, so the decisions are the same
by construction; what is left (distinct users, events after `until`, the latest time) comes
from the columns.

Anything this path does not handle exactly as the row reader would (a malformed row, a
timestamp in another form than ISO 8601 UTC or epoch milliseconds, a user whose events go back
in time, a header the row reader would refuse) makes `replay_columnar` return None, and the
caller replays the file row by row, with its line-numbered problems and its sorting.
"""

from __future__ import annotations

import csv
import multiprocessing
import time
from collections.abc import Container, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import csv as arrow_csv

from server.backtest.history import REQUIRED_COLUMNS, TIMEZONE_COLUMN, HistoryRow
from server.backtest.replay import (
    MAX_RUN_ON_MS,
    Replay,
    SequenceTally,
    _Clock,
    _feed,
    _Follower,
    _OutOfOrder,
    _run_clocks_on,
)
from server.engine import Engine, PropValue

__all__ = ["replay_columnar"]

_ISO_UTC = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z?$"
_DIGITS = r"^\d+$"
_FEED_BLOCK = 16_384
MIN_ROWS_PER_WORKER = 100_000  # below this a fork costs more than it saves


def _header(path: Path) -> list[str] | None:
    try:
        with path.open(encoding="utf-8-sig", newline="") as stream:
            header = next(csv.reader(stream), None)
    except (OSError, UnicodeDecodeError, csv.Error):
        return None  # the row reader reports it
    if header is None:
        return None
    names = [name.strip() for name in header]
    if names != header or len(set(names)) != len(names) or "" in names:
        return None  # the row reader strips and refuses these: leave them to it
    if any(column not in names for column in REQUIRED_COLUMNS):
        return None
    return names


def _read(path: Path, names: list[str]) -> pa.Table | None:
    try:
        return arrow_csv.read_csv(
            path,
            read_options=arrow_csv.ReadOptions(encoding="utf-8"),
            parse_options=arrow_csv.ParseOptions(newlines_in_values=True),
            convert_options=arrow_csv.ConvertOptions(
                column_types={name: pa.string() for name in names},
                strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None  # a row with the wrong field count, or worse: the row reader says where


def _times_ms(column: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """Epoch milliseconds, floored, when every timestamp is ISO 8601 UTC (or all are digits)."""
    if pc.all(pc.match_substring_regex(column, _ISO_UTC)).as_py():
        text = pc.replace_substring_regex(column, r"Z$", "")
        try:
            moments = text.cast(pa.timestamp("us"))  # ISO 8601 without an offset: UTC
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
        micros = moments.cast(pa.int64())
        if pc.any(pc.less(micros, 0)).as_py():
            return None  # before 1970: integer division would not floor as the row reader does
        return pc.divide(micros, 1000)
    if pc.all(pc.match_substring_regex(column, _DIGITS)).as_py():
        try:
            return column.cast(pa.int64())
        except pa.ArrowInvalid:
            return None
    return None


def _tz_news(users: list[str], zones: list[str], wanted: list[bool]) -> list[bool]:
    """Rows the row replay feeds although the engine does not read them: a time zone that
    differs from the user's latest one."""
    latest: dict[str, str] = {}
    news = []
    for user, zone, read in zip(users, zones, wanted, strict=True):
        if zone and latest.get(user) != zone:
            latest[user] = zone
            news.append(not read)
        else:
            news.append(False)
    return news


def replay_columnar(engine: Engine, path: Path, rename: Mapping[str, str],
                    wanted: Container[str], until_ms: int | None,
                    workers: int = 1) -> Replay | None:
    """The replay of a CSV history, or None when only the row path would be exact.

    `workers` > 1 splits the users over that many forked processes (users are independent:
    each one's events stay in one process, in file order), each replaying its part from the
    table it inherited; their tallies and sends are added up. The same decisions either way."""
    names = _header(path)
    table = _read(path, names) if names is not None else None
    if table is None or table.num_rows == 0:
        return None
    users, events, stamps = (table.column(c) for c in REQUIRED_COLUMNS)
    if any(pc.any(pc.equal(c, "")).as_py() for c in (users, events, stamps)):
        return None
    at_ms = _times_ms(stamps)
    if at_ms is None:
        return None
    if rename:
        events = pa.chunked_array([pa.array([rename.get(n, n) for n in events.to_pylist()],
                                            pa.string())])
    started = time.perf_counter()
    read = pc.is_in(events, value_set=pa.array([n for n in _names(events) if n in wanted],
                                               pa.string()))
    if until_ms is not None:
        in_time = pc.less_equal(at_ms, until_ms)
        read = pc.and_(read, in_time)
    zones = None
    if TIMEZONE_COLUMN in table.column_names:
        zones = table.column(TIMEZONE_COLUMN)
        if until_ms is not None:
            zones = pc.if_else(in_time, zones, "")
    end_ms = until_ms if until_ms is not None else pc.max(at_ms).as_py() + MAX_RUN_ON_MS
    part = _Part(engine, table, users, events, at_ms, read, zones, names or [], until_ms,
                 end_ms)
    read_rows = pc.sum(read).as_py() or 0
    workers = max(1, min(workers, read_rows // MIN_ROWS_PER_WORKER))
    result = _replay_parts(part, users, workers) if workers > 1 else part.replay(None)
    if result is None:
        return None
    after = pc.sum(pc.greater(at_ms, until_ms)).as_py() or 0 if until_ms is not None else 0
    result.events = table.num_rows - after
    result.events_after_until = after
    result.clock_end_ms = end_ms
    result.users = pc.count_distinct(users if until_ms is None else users.filter(in_time)).as_py()
    result.sends.sort(key=attrgetter("at_ms", "user", "sequence", "step"))  # as replay does
    result.engine_s = time.perf_counter() - started
    return result


@dataclass(frozen=True)
class _Part:
    """Everything one replay process needs; a forked worker inherits it."""

    engine: Engine
    table: pa.Table
    users: pa.ChunkedArray
    events: pa.ChunkedArray
    at_ms: pa.ChunkedArray
    read: pa.ChunkedArray  # rows the engine reads
    zones: pa.ChunkedArray | None  # the time zone column, if any ("" after `until`)
    names: list[str]
    until_ms: int | None
    end_ms: int

    def fed(self, mine: pa.ChunkedArray | None) -> pa.Array:
        """The rows to feed, of the users `mine` marks: those the engine reads, and those
        that bring news of the user's time zone (found here, so each worker finds its own)."""
        read = self.read if mine is None else pc.and_(self.read, mine)
        if self.zones is None:
            return pc.indices_nonzero(read)
        rows = None if mine is None else pc.indices_nonzero(mine)
        if rows is None:
            users, zones, reads = self.users, self.zones, self.read
        else:
            users, zones, reads = (c.take(rows) for c in (self.users, self.zones, self.read))
        news = pa.array(_tz_news(users.to_pylist(), zones.to_pylist(), reads.to_pylist()),
                        pa.bool_())
        picked = pc.or_(reads, news)
        if rows is None:
            return pc.indices_nonzero(picked)
        return rows.filter(pa.chunked_array([picked]).combine_chunks()
                           if isinstance(picked, pa.Array) else picked.combine_chunks())

    def replay(self, mine: pa.ChunkedArray | None) -> Replay | None:
        """Replay the fed rows (of the users `mine` marks); None: a user went back in time."""
        engine = self.engine
        result = Replay({seq_id: SequenceTally() for seq_id in sorted(engine.rules.sequences)})
        rows = _rows(self.table, self.fed(mine), self.events, self.at_ms, self.read,
                     self.names, self.zones is not None)
        followers: dict[str, _Follower] = {}
        clock = _Clock()
        try:
            for at in range(0, len(rows), _FEED_BLOCK):
                _feed(engine, rows[at:at + _FEED_BLOCK], followers, self.until_ms, result,
                      clock)
        except _OutOfOrder:
            return None
        _run_clocks_on(engine, followers, self.end_ms, result)
        return result


_FORKED: tuple[_Part, pa.Array, int] | None = None  # what the workers inherit


def _replay_parts(part: _Part, users: pa.ChunkedArray, workers: int) -> Replay | None:
    """The users split over `workers` forked processes by their place in the file's list of
    users; the parts' results added up, the sends in the order one replay gives them."""
    global _FORKED
    codes = pc.dictionary_encode(users).combine_chunks().indices
    share = pc.subtract(codes, pc.multiply(pc.divide(codes, workers), workers))
    _FORKED = (part, share, workers)
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            parts = list(pool.map(_replay_share, range(workers)))
    finally:
        _FORKED = None
    if any(p is None for p in parts):
        return None
    total = parts[0]
    assert total is not None
    for other in parts[1:]:
        assert other is not None
        for seq_id, tally in other.tallies.items():
            mine = total.tallies[seq_id]
            mine.entered += tally.entered
            mine.sent += tally.sent
            mine.exited += tally.exited
            mine.suppressed.update(tally.suppressed)
        total.sends += other.sends
        total.pending_users += other.pending_users
    total.sends.sort(key=attrgetter("at_ms", "user", "sequence", "step"))
    return total


def _replay_share(index: int) -> Replay | None:
    assert _FORKED is not None
    part, share, _workers = _FORKED
    return part.replay(pa.chunked_array([pc.equal(share, index)]))


def _names(events: pa.ChunkedArray) -> list[str]:
    return [n for n in pc.unique(events).to_pylist() if n is not None]


def _rows(table: pa.Table, indices: pa.Array, events: pa.ChunkedArray, at_ms: pa.ChunkedArray,
          read: pa.ChunkedArray, names: list[str], has_zone: bool) -> list[HistoryRow]:
    """The rows to feed, as the row reader makes them (props only where the engine reads)."""
    special = (*REQUIRED_COLUMNS, TIMEZONE_COLUMN)
    picked = table.take(indices)
    users = picked.column("user_id").to_pylist()
    names_fed = events.take(indices).to_pylist()
    times = at_ms.take(indices).to_pylist()
    reads = read.take(indices).to_pylist()
    zones = picked.column(TIMEZONE_COLUMN).to_pylist() if has_zone else [None] * len(users)
    columns = [(name, picked.column(name).to_pylist()) for name in names
               if name not in special]
    rows: list[HistoryRow] = []
    for i, (user, name, at, wanted_row, zone) in enumerate(
            zip(users, names_fed, times, reads, zones, strict=True)):
        props: dict[str, PropValue] | None = None
        if wanted_row:
            props = {}
            for prop, values in columns:
                value = values[i]
                if value:
                    props[prop] = value
        rows.append((user, name, at, props, zone or None))
    return rows
