"""Reading an event history file: rows of (user, event name, at_ms, props, tz) in file order.

A history is CSV with a header row, or JSON Lines, chosen by extension (.csv; .jsonl or
.ndjson) and otherwise by its first non-blank character (`{` means JSON Lines). Every row needs
user_id, event and timestamp; the timestamp is ISO 8601 (no offset means UTC) or epoch
milliseconds. A `timezone` column or key sets the event's time zone; every other column or key
becomes an event property, and empty CSV cells and JSON nulls are left out. CSV values stay
text: the engine's matching reads them as numbers where a rule asks for a number.

A JSON Lines row in Segment's format (a `type` of track, identify, page, screen, alias or
group, with a `userId` or `anonymousId`: a Segment or RudderStack export) is read as the
server's Segment source takes it (server/ingest/segment.py, with the `[segment.events]` mapping
given): its user is the userId (else the anonymousId), its event the mapped one with the same
properties the server would apply; an identify or alias adds no row.

A malformed row is skipped and recorded with its 1-based line number in `problems`; in strict
mode the first one raises MalformedRow instead. A file that cannot be read at all (missing,
not UTF-8, a CSV header without the required columns) raises UnreadableHistory.

The CSV path is the hot one: csv.reader with column indexes worked out once from the header,
and no per-row helper calls beyond the timestamp parser. Rows come out one at a time; nothing
is held, so the caller decides what to keep. A caller that only needs some events' properties
passes `wanted` (the event names it reads): other rows are still checked and counted, but come out
with props None, which saves building a dict per row on most of a history.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from server.engine import PropValue
from server.errors import PulsewireError

__all__ = [
    "REQUIRED_COLUMNS",
    "HistoryFile",
    "HistoryRow",
    "MalformedRow",
    "RowProblem",
    "UnreadableHistory",
    "parse_timestamp",
]

REQUIRED_COLUMNS = ("user_id", "event", "timestamp")
# A row with one of these types is a Segment message (server/ingest/segment.py's TYPES; that
# module, and the ingest package with it, is imported only when a history has one).
SEGMENT_TYPES = frozenset({"track", "identify", "page", "screen", "alias", "group"})
TIMEZONE_COLUMN = "timezone"
_JSONL_SUFFIXES = (".jsonl", ".ndjson")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)

# (user id, event name after renaming, epoch ms, properties or None when not wanted, time zone)
HistoryRow = tuple[str, str, int, dict[str, PropValue] | None, str | None]


@dataclass(frozen=True, slots=True)
class RowProblem:
    line: int  # 1-based line of the file where the row starts
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class UnreadableHistory(PulsewireError):
    """The history file cannot be read at all."""


class MalformedRow(PulsewireError):
    """A row of the history is malformed (raised only in strict mode)."""

    def __init__(self, path: Path, problem: RowProblem) -> None:
        self.problem = problem
        super().__init__(f"{path}:{problem.line}: {problem.message}")


def parse_timestamp(value: object) -> int:
    """Epoch milliseconds from ISO 8601 text (UTC unless it has an offset) or epoch-ms digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str):
        raise ValueError(f"timestamp {value!r} is neither ISO 8601 nor epoch milliseconds")
    return _text_timestamp_ms(value)


def _text_timestamp_ms(text: str) -> int:
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"timestamp {text!r} is neither ISO 8601 nor epoch milliseconds") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _ONE_MS


@dataclass
class HistoryFile:
    """One history file. Each iteration reads the file afresh (and its `problems` anew)."""

    path: Path
    rename: Mapping[str, str] = field(default_factory=dict)  # event name in file -> name fed
    strict: bool = False
    wanted: Container[str] | None = None  # names whose properties are read; None: all
    segment_events: Mapping[str, str] | None = None  # [segment.events]; None: the defaults
    problems: list[RowProblem] = field(default_factory=list)  # rows skipped by the last read

    def __iter__(self) -> Iterator[HistoryRow]:
        for block in self.blocks():
            yield from block

    def blocks(self, size: int = 16_384) -> Iterator[list[HistoryRow]]:
        """The rows in file order, `size` at a time (the last block may be shorter)."""
        self.problems.clear()
        try:
            with self.path.open(encoding="utf-8-sig", newline="") as stream:
                if self._is_csv(stream):
                    yield from _csv_blocks(stream, self.rename, self._skip, self.wanted, size)
                else:
                    yield from _jsonl_blocks(stream, self.rename, self._skip,
                                             self.segment_events, size)
        except OSError as err:
            raise UnreadableHistory(f"{self.path}: cannot read: {err.strerror}") from None
        except UnicodeDecodeError:
            raise UnreadableHistory(f"{self.path}: not UTF-8 text") from None
        except _BadHeader as err:
            raise UnreadableHistory(f"{self.path}:1: {err}") from None

    def _skip(self, line: int, message: str) -> None:
        problem = RowProblem(line, message)
        if self.strict:
            raise MalformedRow(self.path, problem)
        self.problems.append(problem)

    def _is_csv(self, stream: IO[str]) -> bool:
        suffix = self.path.suffix.lower()
        if suffix == ".csv":
            return True
        if suffix in _JSONL_SUFFIXES:
            return False
        first = ""
        for chunk in iter(lambda: stream.read(4096), ""):
            first = chunk.lstrip()[:1]
            if first:
                break
        stream.seek(0)
        return first != "{"


class _BadHeader(ValueError):
    pass





# What a reader reports a malformed row to: (line, message). It may raise to stop the read.
_Skip = Callable[[int, str], None]


# ---- CSV ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _CsvLayout:
    """Where each field sits in a row, worked out once from the header."""

    width: int
    user: int
    event: int
    timestamp: int
    timezone: int | None
    properties: tuple[tuple[int, str], ...]  # (column index, property name)

    @classmethod
    def of(cls, header: list[str]) -> _CsvLayout:
        names = [name.strip() for name in header]
        missing = [c for c in REQUIRED_COLUMNS if c not in names]
        if missing:
            raise _BadHeader(f"the header lacks required column(s): {', '.join(missing)}")
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise _BadHeader(f"the header names column(s) twice: {', '.join(duplicated)}")
        special = (*REQUIRED_COLUMNS, TIMEZONE_COLUMN)
        return cls(
            width=len(names),
            user=names.index("user_id"),
            event=names.index("event"),
            timestamp=names.index("timestamp"),
            timezone=names.index(TIMEZONE_COLUMN) if TIMEZONE_COLUMN in names else None,
            properties=tuple((i, n) for i, n in enumerate(names) if n not in special and n),
        )


def _csv_blocks(stream: IO[str], rename: Mapping[str, str], skip: _Skip,
                wanted: Container[str] | None, size: int) -> Iterator[list[HistoryRow]]:
    reader = csv.reader(stream)
    header = next(reader, None)
    if header is None:
        return
    layout = _CsvLayout.of(header)
    width, user_at, event_at = layout.width, layout.user, layout.event
    timestamp_at, timezone_at, properties = layout.timestamp, layout.timezone, layout.properties
    parse, renamed = _text_timestamp_ms, rename.get  # hot loop locals
    # Exports often stamp to the second, so neighbouring rows share a timestamp: parsing each
    # text once halves the timestamp cost there, and costs nothing measurable otherwise.
    last_stamp, last_at_ms = "", 0
    line_end = reader.line_num
    block: list[HistoryRow] = []
    add = block.append
    for row in reader:
        line, line_end = line_end + 1, reader.line_num
        if len(row) != width:
            if row:  # a blank line reads as an empty row
                skip(line, f"has {len(row)} fields, the header has {width}")
            continue
        user, name, stamp = row[user_at], row[event_at], row[timestamp_at]
        if not (user and name and stamp):
            skip(line, _empty_field_message(user, name))
            continue
        if stamp != last_stamp:
            try:
                last_at_ms = parse(stamp)
            except ValueError as err:
                skip(line, str(err))
                continue
            last_stamp = stamp
        name = renamed(name, name)
        tz = None if timezone_at is None else (row[timezone_at] or None)
        if wanted is not None and name not in wanted:
            add((user, name, last_at_ms, None, tz))
        else:
            props: dict[str, PropValue] = {}
            for i, prop in properties:  # a plain loop: cheaper than a comprehension on 3.11
                value = row[i]
                if value:
                    props[prop] = value
            add((user, name, last_at_ms, props, tz))
        if len(block) >= size:
            yield block
            block = []
            add = block.append
    if block:
        yield block


def _empty_field_message(user: str, name: str) -> str:
    empty = "user_id" if not user else "event" if not name else "timestamp"
    return f"{empty} is empty"


# ---- JSON Lines -----------------------------------------------------------------------------


def _jsonl_blocks(stream: IO[str], rename: Mapping[str, str], skip: _Skip,
                  segment_events: Mapping[str, str] | None,
                  size: int) -> Iterator[list[HistoryRow]]:
    block: list[HistoryRow] = []
    for line, text in enumerate(stream, start=1):
        if not text.strip():
            continue
        try:
            block.extend(_jsonl_rows(text, rename, segment_events))
        except ValueError as err:
            skip(line, str(err))
        if len(block) >= size:
            yield block
            block = []
    if block:
        yield block


def _jsonl_rows(text: str, rename: Mapping[str, str],
                segment_events: Mapping[str, str] | None) -> list[HistoryRow]:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"not JSON: {err.msg} at column {err.colno}") from None
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    if record.get("type") in SEGMENT_TYPES and ("userId" in record or "anonymousId" in record):
        return _segment_rows(record, rename, segment_events)
    return [_jsonl_row(record, rename)]


def _segment_rows(record: dict[str, Any], rename: Mapping[str, str],
                  segment_events: Mapping[str, str] | None) -> list[HistoryRow]:
    from server.ingest.segment import DEFAULT_EVENTS, MessageRefused, exported_events

    try:
        user, events = exported_events(record, segment_events or DEFAULT_EVENTS)
    except (MessageRefused, PulsewireError) as err:
        raise ValueError(f"a Segment message the server would refuse: {err}") from None
    return [(user, rename.get(name, name), at_ms, props, None) for name, at_ms, props in events]


def _jsonl_row(record: dict[str, Any], rename: Mapping[str, str]) -> HistoryRow:
    user, name = _required_text(record, "user_id"), _required_text(record, "event")
    if record.get("timestamp") in ("", None):
        raise ValueError("timestamp is missing")
    at_ms = parse_timestamp(record["timestamp"])
    tz = record.get(TIMEZONE_COLUMN)
    if tz is not None and not isinstance(tz, str):
        raise ValueError(f"timezone {tz!r} is not text")
    return user, rename.get(name, name), at_ms, _properties(record.items()), tz or None


def _required_text(record: Mapping[str, Any], key: str) -> str:
    value = record.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # numeric user ids are common in exports
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} is missing" if value in (None, "") else f"{key} is not text")
    return value


def _properties(items: Iterable[tuple[str, Any]]) -> dict[str, PropValue]:
    props: dict[str, PropValue] = {}
    for key, value in items:
        if key in REQUIRED_COLUMNS or key == TIMEZONE_COLUMN or value is None:
            continue
        if isinstance(value, dict | list):
            kind = "an object" if isinstance(value, dict) else "a list"
            raise ValueError(f"property {key!r} is {kind}; properties are flat values")
        props[key] = value
    return props
