"""Writing a replay's findings: a JSON summary or a table for people, the decided sends as JSON
Lines, and the one-line run summary for stderr.

Everything here is a pure function of the Replay (plus the timings passed in), and every
collection is written in a fixed order, so the same history always gives byte-identical output.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from server.backtest.replay import DecidedSend, Replay, SequenceTally

__all__ = ["format_instant", "run_summary_line", "summary_json", "summary_table", "write_sends"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TABLE_HEADINGS = ("sequence", "entered", "sent", "suppressed", "exited")
_RIGHT_ALIGNED = (False, True, True, False, True)  # counts right, names and reason lists left


def format_instant(at_ms: int) -> str:
    """ISO 8601 in UTC ending in Z, with milliseconds only when they are not zero."""
    moment = _EPOCH + timedelta(milliseconds=at_ms)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    millis = at_ms % 1000
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"


# ---- summary ----------------------------------------------------------------------------------


def summary_json(result: Replay) -> str:
    document = {
        "events": result.events,
        "users": result.users,
        "sequences": {seq_id: _tally_json(t) for seq_id, t in sorted(result.tallies.items())},
    }
    return json.dumps(document)


def _tally_json(tally: SequenceTally) -> dict[str, object]:
    return {
        "entered": tally.entered,
        "sent": tally.sent,
        "suppressed": dict(sorted(tally.suppressed.items())),
        "exited": tally.exited,
    }


def summary_table(result: Replay) -> str:
    rows = [_table_row(seq_id, t) for seq_id, t in sorted(result.tallies.items())]
    rows.append(_table_row("total", _total(result.tallies.values())))
    widths = [max(len(row[i]) for row in [_TABLE_HEADINGS, *rows])
              for i in range(len(_TABLE_HEADINGS))]
    lines = [_aligned(row, widths) for row in [_TABLE_HEADINGS, *rows]]
    lines.insert(len(lines) - 1, "  ".join("-" * w for w in widths))
    return "\n".join([_clock_line(result), "", *lines])


def _table_row(name: str, tally: SequenceTally) -> tuple[str, ...]:
    suppressed = sum(tally.suppressed.values())
    reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(tally.suppressed.items()))
    suppressed_text = f"{suppressed} ({reasons})" if reasons else str(suppressed)
    return (name, str(tally.entered), str(tally.sent), suppressed_text, str(tally.exited))


def _aligned(row: tuple[str, ...], widths: list[int]) -> str:
    cells = (cell.rjust(width) if right else cell.ljust(width)
             for cell, width, right in zip(row, widths, _RIGHT_ALIGNED, strict=True))
    return "  ".join(cells).rstrip()


def _total(tallies: Iterable[SequenceTally]) -> SequenceTally:
    total = SequenceTally()
    for tally in tallies:
        total.entered += tally.entered
        total.sent += tally.sent
        total.suppressed.update(tally.suppressed)
        total.exited += tally.exited
    return total


def _clock_line(result: Replay) -> str:
    line = f"replayed {result.events} events of {result.users} users"
    if result.clock_end_ms is not None:
        line += f"; clock stopped at {format_instant(result.clock_end_ms)}"
    if result.pending_users:
        line += f"; {result.pending_users} users still had timers pending"
    return line


# ---- decided sends ----------------------------------------------------------------------------


def write_sends(sends: Iterable[DecidedSend], path: Path) -> None:
    """One JSON object per line, in the order given (the replay's (at, user, sequence, step))."""
    with path.open("w", encoding="utf-8", newline="\n") as out:
        out.writelines(_send_line(send) for send in sends)


def _send_line(send: DecidedSend) -> str:
    record = {
        "user": send.user,
        "sequence": send.sequence,
        "template": send.template,
        "at": format_instant(send.at_ms),
        "status": "sent" if send.reason is None else "suppressed",
        "reason": send.reason,
    }
    return json.dumps(record) + "\n"


# ---- the run, for stderr ----------------------------------------------------------------------


def run_summary_line(result: Replay, skipped_rows: int, total_s: float) -> str:
    """Events, users, skipped rows, seconds, and throughput of the whole run and of the engine."""
    line = (
        f"backtest: {result.events} events, {result.users} users, {skipped_rows} skipped rows, "
        f"{total_s:.2f} s, {_rate(result.events, total_s)} events/s "
        f"(engine phase {result.engine_s:.2f} s, {_rate(result.events, result.engine_s)} events/s)"
    )
    if result.sorted_by_user:
        line += "; not in time order per user, so read twice and sorted in memory"
    if result.events_after_until:
        line += f"; {result.events_after_until} events after --until left out"
    if result.pending_users:
        line += f"; {result.pending_users} users with timers pending at the end"
    return line


def _rate(events: int, seconds: float) -> str:
    return f"{events / seconds:,.0f}" if seconds > 0 else "-"
