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

__all__ = ["format_instant", "goal_cells", "goals_table", "run_summary_line", "summary_json",
           "summary_table", "tally_json", "write_sends"]

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
    document: dict[str, object] = {
        "events": result.events,
        "users": result.users,
        "sequences": {seq_id: tally_json(t) for seq_id, t in sorted(result.tallies.items())},
    }
    if result.scores or result.band_changes:
        document["scores"] = scores_json(result)
    return json.dumps(document)


def scores_json(result: Replay) -> dict[str, object]:
    """The lead scores at the history's end: of the users with one, the spread, and how often
    each band was entered over the replay, the clock's run-on after the history included
    ("none": below every band)."""
    scores = result.scores  # ascending

    def at(share: float) -> float | None:
        return round(scores[min(len(scores) - 1, int(share * len(scores)))], 3) if scores else None

    return {"users": len(scores), "min": at(0.0), "p50": at(0.5), "p90": at(0.9),
            "p99": at(0.99), "max": round(scores[-1], 3) if scores else None,
            "band_entries": {band or "none": n for band, n
                             in sorted(result.band_changes.items())}}


def tally_json(tally: SequenceTally) -> dict[str, object]:
    return {
        "entered": tally.entered,
        "sent": tally.sent,
        "suppressed": dict(sorted(tally.suppressed.items())),
        "exited": tally.exited,
        "mailed_users": len(tally.mailed),
        "emails_per_mailed_user": tally.sent / len(tally.mailed) if tally.mailed else None,
        "converted": tally.converted,
        "converted_after_email": tally.converted_after_email,
        "lead_time_ms": _lead_times(tally.lead_ms),
        "mailed_never_converted": len(tally.mailed - tally.goal_users),
        "goal_events": tally.goal_events,
        "goal_events_after_email": tally.goal_events_after_email,
        "goal_events_after_email_share": (tally.goal_events_after_email / tally.goal_events
                                          if tally.goal_events else None),
    }


def _lead_times(lead_ms: list[int]) -> dict[str, int] | None:
    """The median and 90th percentile (nearest rank) of ascending lead times."""
    if not lead_ms:
        return None
    return {"p50": lead_ms[(len(lead_ms) - 1) // 2],
            "p90": lead_ms[max(0, -(-9 * len(lead_ms) // 10) - 1)]}


def summary_table(result: Replay) -> str:
    rows = [_table_row(seq_id, t) for seq_id, t in sorted(result.tallies.items())]
    rows.append(_table_row("total", _total(result.tallies.values())))
    widths = [max(len(row[i]) for row in [_TABLE_HEADINGS, *rows])
              for i in range(len(_TABLE_HEADINGS))]
    lines = [_aligned(row, widths) for row in [_TABLE_HEADINGS, *rows]]
    lines.insert(len(lines) - 1, "  ".join("-" * w for w in widths))
    return "\n".join([_clock_line(result), "", *lines, "", *goals_table(result)])


_GOAL_HEADINGS = ("sequence", "converted", "after an email (median lead)",
                  "mailed, never converted", "goal events after an email")


def goals_table(result: Replay) -> list[str]:
    """What history says of each sequence's goal, one row a sequence."""
    rows: list[tuple[str, ...]] = [_GOAL_HEADINGS]
    for seq_id, tally in sorted(result.tallies.items()):
        rows.append(goal_cells(seq_id, tally))
    widths = [max(len(row[i]) for row in rows) for i in range(len(_GOAL_HEADINGS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def goal_cells(name: str, tally: SequenceTally) -> tuple[str, ...]:
    lead = _lead_times(tally.lead_ms)
    after = str(tally.converted_after_email)
    if lead is not None:
        after += f" ({_duration(lead['p50'])})"
    share = (f"{tally.goal_events_after_email} of {tally.goal_events} "
             f"({tally.goal_events_after_email / tally.goal_events:.0%})"
             if tally.goal_events else "0 of 0")
    return (name, str(tally.converted), after,
            f"{len(tally.mailed - tally.goal_users)} of {len(tally.mailed)}", share)


def _duration(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if ms >= size:
            return f"{ms / size:.1f}{unit}"
    return f"{ms}ms"


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
