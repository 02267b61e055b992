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
    _Clock,
    _feed,
    _Follower,
    _OutOfOrder,
    _run_clocks_on,
    new_replay,
)
from server.engine import Engine, PropValue

__all__ = ["replay_columnar"]

_ISO_UTC = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z?$"
_DIGITS = r"^\d+$"
_FEED_BLOCK = 16_384
_BLOCK_BYTES = 16 << 20  # few, large chunks: taking rows from 67 chunks of 1 MB was 5x slower
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
            read_options=arrow_csv.ReadOptions(encoding="utf-8", block_size=_BLOCK_BYTES),
            parse_options=arrow_csv.ParseOptions(newlines_in_values=True),
            convert_options=arrow_csv.ConvertOptions(
                column_types={name: pa.string() for name in names},
                strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None  # a row with the wrong field count, or worse: the row reader says where


def _times_ms(column: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """Epoch milliseconds, floored, when every timestamp is ISO 8601 (each with Z or an offset,
    or none without one: UTC) or all are digits. Arrow reads a subset of what the row reader's
    `datetime.fromisoformat` reads, to the same instants; the rest goes to the row reader."""
    try:
        moments = column.cast(pa.timestamp("us", tz="UTC"))  # each has Z or an offset
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        moments = _naive_as_utc(column)
    if moments is not None:
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


def _naive_as_utc(column: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """Timestamps of which some have no Z: when every one is date and time with at most a Z,
    read them all without it, as UTC."""
    if not pc.all(pc.match_substring_regex(column, _ISO_UTC)).as_py():
        return None
    text = pc.replace_substring_regex(column, r"Z$", "")
    try:
        return text.cast(pa.timestamp("us"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _zone_changes(user_codes: pa.Array, zones: pa.ChunkedArray, zoned: pa.Array) -> pa.Array:
    """The rows (of those `zoned` marks) where the row replay learns of a time zone: each
    user's first row with one, and every row whose zone differs from the user's zone before."""
    rows = pc.indices_nonzero(zoned)
    count = len(rows)
    if count == 0:
        return rows
    by_user = pa.table({"user": user_codes.take(rows), "row": rows})
    order = pc.sort_indices(by_user, sort_keys=[("user", "ascending"), ("row", "ascending")])
    users = by_user.column("user").take(order)
    their_zones = zones.take(rows).take(order)
    later = pc.or_(pc.not_equal(users.slice(1), users.slice(0, count - 1)),
                   pc.not_equal(their_zones.slice(1), their_zones.slice(0, count - 1)))
    changed = pa.concat_arrays([pa.array([True]), later.combine_chunks()])
    return rows.take(order).filter(changed)


def _sorted_union(first: pa.Array, second: pa.Array) -> pa.Array:
    both = pc.unique(pa.concat_arrays([first, second]))
    return both.take(pc.sort_indices(both))


def replay_columnar(engine: Engine, path: Path, rename: Mapping[str, str],
                    wanted: Container[str], until_ms: int | None,
                    workers: int = 1) -> Replay | None:
    """The replay of a CSV history, or None when only the row path would be exact.

    `workers` > 1 splits the users over that many processes, this one and forked ones (users
    are independent: each one's events stay in one process, in file order), each replaying
    its part from the table it has; their tallies and sends are added up. The same decisions
    either way."""
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
    encoded_users = pc.dictionary_encode(users).combine_chunks()
    user_codes = encoded_users.indices
    part = _Part(engine, table, user_codes, events, at_ms, read, zones, names or [], until_ms,
                 end_ms)
    read_rows = pc.sum(read).as_py() or 0
    workers = max(1, min(workers, read_rows // MIN_ROWS_PER_WORKER))
    result = _replay_parts(part, workers) if workers > 1 else part.replay(None)
    if result is None:
        return None
    after = pc.sum(pc.greater(at_ms, until_ms)).as_py() or 0 if until_ms is not None else 0
    result.events = table.num_rows - after
    result.events_after_until = after
    result.clock_end_ms = end_ms
    result.users = (len(encoded_users.dictionary) if until_ms is None else
                    pc.count_distinct(user_codes.filter(in_time.combine_chunks())).as_py())
    result.sends.sort(key=attrgetter("at_ms", "user", "sequence", "step"))  # as replay does
    result.engine_s = time.perf_counter() - started
    return result


@dataclass(frozen=True)
class _Part:
    """Everything one replay process needs; a forked worker inherits it."""

    engine: Engine
    table: pa.Table
    user_codes: pa.Array  # each row's user as its place in the file's list of users
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
        read_rows = pc.indices_nonzero(read)
        if self.zones is None:
            return read_rows
        zoned = pc.not_equal(self.zones, "")
        if mine is not None:
            zoned = pc.and_(zoned, mine)
        changes = _zone_changes(self.user_codes, self.zones, zoned.combine_chunks())
        return _sorted_union(read_rows, changes)

    def replay(self, mine: pa.ChunkedArray | None) -> Replay | None:
        """Replay the fed rows (of the users `mine` marks); None: a user went back in time."""
        engine = self.engine
        result = new_replay(engine)
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
        _run_clocks_on(engine, followers, self.end_ms, result, self.until_ms
                       if self.until_ms is not None else self.end_ms - MAX_RUN_ON_MS)
        result.done_feeding()
        return result


_FORKED: tuple[_Part, pa.Array, int] | None = None  # what the workers inherit


def _replay_parts(part: _Part, workers: int) -> Replay | None:
    """The users split into `workers` shares by their place in the file's list of users, all
    but the first replayed in forked processes; the parts' results added up (the caller puts
    the sends in the order one replay gives them)."""
    global _FORKED
    codes = part.user_codes
    share = pc.subtract(codes, pc.multiply(pc.divide(codes, workers), workers))
    _FORKED = (part, share, workers)
    try:  # the other shares in forked processes, the first here meanwhile
        with ProcessPoolExecutor(workers - 1,
                                 mp_context=multiprocessing.get_context("fork")) as pool:
            others = pool.map(_replay_share, range(1, workers))
            parts = [_replay_share(0), *others]
    finally:
        _FORKED = None
    if any(p is None for p in parts):
        return None
    total = parts[0]
    assert total is not None
    for other in parts[1:]:
        assert other is not None
        for seq_id, tally in other.tallies.items():
            total.tallies[seq_id].add(tally)
        total.sends += other.sends
        total.pending_users += other.pending_users
        total.band_changes.update(other.band_changes)
        total.scores = sorted(total.scores + other.scores)
    return total


def _replay_share(index: int) -> Replay | None:
    assert _FORKED is not None
    part, share, _workers = _FORKED
    return part.replay(pa.chunked_array([pc.equal(share, index)]))


def _names(events: pa.ChunkedArray) -> list[str]:
    return [n for n in pc.unique(events).to_pylist() if n is not None]


def _rows(table: pa.Table, indices: pa.Array, events: pa.ChunkedArray, at_ms: pa.ChunkedArray,
          read: pa.ChunkedArray, names: list[str], has_zone: bool) -> list[HistoryRow]:
    """The rows to feed, as the row reader makes them (props only where the engine reads):
    each property column adds its non-empty values, found by Arrow, to the rows it has them."""
    special = (*REQUIRED_COLUMNS, TIMEZONE_COLUMN)
    kept = [name for name in names if name not in ("event", "timestamp")]  # taken apart
    picked = table.select(kept).take(indices)
    reads = read.take(indices)
    props: list[dict[str, PropValue] | None] = [{} if r else None for r in reads.to_pylist()]
    for name in names:
        if name in special:
            continue
        column = picked.column(name)
        present = pc.and_(pc.not_equal(column, ""), reads)
        for i, value in zip(pc.indices_nonzero(present).to_pylist(),
                            column.filter(present).to_pylist(), strict=True):
            props[i][name] = value
    if has_zone:
        zone_column = picked.column(TIMEZONE_COLUMN)
        zones = pc.if_else(pc.equal(zone_column, ""), None, zone_column).to_pylist()
    else:
        zones = [None] * len(props)
    return list(zip(picked.column("user_id").to_pylist(), events.take(indices).to_pylist(),
                    at_ms.take(indices).to_pylist(), props, zones, strict=True))
