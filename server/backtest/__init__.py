"""Backtests: replay an event history through the engine under a simulated clock and report
what would have been sent, suppressed (and why), and how instances entered and exited.

    engine = Engine(rules, unknown_users_mailable=True)
    result = replay_history(engine, HistoryFile(Path("events.csv")), until_ms=None)
    print(summary_json(result))
"""

from server.backtest.history import (
    HistoryFile,
    HistoryRow,
    MalformedRow,
    RowProblem,
    UnreadableHistory,
    parse_timestamp,
)
from server.backtest.replay import DecidedSend, Replay, SequenceTally, replay_history
from server.backtest.report import format_instant, summary_json, summary_table, write_sends

__all__ = [
    "DecidedSend",
    "HistoryFile",
    "HistoryRow",
    "MalformedRow",
    "Replay",
    "RowProblem",
    "SequenceTally",
    "UnreadableHistory",
    "format_instant",
    "parse_timestamp",
    "replay_history",
    "summary_json",
    "summary_table",
    "write_sends",
]
