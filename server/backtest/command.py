"""`pulsewire backtest`: load the sequences, read the history, replay it, report.

With --variant and --vary (variants.py) each variant is replayed alone over the same history
and the summaries are printed side by side (report_variants.py).

Exit codes: 0 when the replay ran (skipped rows are warnings, listed on stderr); 1 when the
sequence files (or a variant) are invalid (every problem is printed as file:line: field:
message); 2 when the history cannot be read, or, with --strict, at its first malformed row.
argparse uses 2 for bad arguments too.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from server.backtest.columnar import replay_columnar
from server.backtest.history import (
    HistoryFile,
    MalformedRow,
    RowProblem,
    UnreadableHistory,
    parse_timestamp,
)
from server.backtest.replay import Replay, replay_history
from server.backtest.report import run_summary_line, summary_json, summary_table, write_sends
from server.backtest.report_variants import variants_json, variants_table
from server.backtest.variants import (
    InvalidVariant,
    Vary,
    build_variants,
    parse_variant,
    parse_vary,
)
from server.config import ConfigError, load_settings
from server.engine import Engine, compile_rules
from server.errors import InvalidSequence
from server.sequences import SequenceSet
from server.sequences.loading import load_paths
from server.sequences.scoring import Scoring

__all__ = ["add_backtest_arguments", "run_backtest_command"]

SKIPPED_ROWS_SHOWN = 20  # more than this many malformed rows are counted, not listed


def add_backtest_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sequences", action="append", default=[], type=Path, metavar="PATH",
                        help="a sequence/segment file or a directory of them (repeatable)")
    parser.add_argument("--variant", action="append", default=[], type=_variant,
                        metavar="NAME=PATH", help="replay this set alone too, and print the "
                        "variants side by side (repeatable)")
    parser.add_argument("--vary", action="append", default=[], type=_vary,
                        metavar="SEQUENCE:FIELD=V1,V2", help="replay the --sequences set once "
                        "per value of one field, e.g. cart-recovery:steps[0].wait_for.timeout"
                        "=30m,1h,2h (repeatable)")
    parser.add_argument("--global-holdout", type=_share, default=0.0, metavar="SHARE",
                        help="the site's holdout, as the server's [holdout] global (\"5%%\")")
    parser.add_argument("--events", required=True, type=Path, metavar="FILE",
                        help="the history: CSV with a header, or JSON Lines")
    parser.add_argument("--config", type=Path, default=None, metavar="FILE",
                        help="the server's TOML settings: a Segment export's events are "
                        "named by its [segment.events]")
    parser.add_argument("--rename", action="append", default=[], type=_rename_pair,
                        metavar="OLD=NEW", help="read event OLD as NEW (repeatable)")
    parser.add_argument("--format", choices=("table", "json"), default="table",
                        help="how to print the per-sequence summary (default: table)")
    parser.add_argument("--sends", type=Path, metavar="OUT.jsonl",
                        help="write every decided send (sent or suppressed) as JSON Lines")
    parser.add_argument("--until", type=_instant, metavar="TIME",
                        help="stop the clock here (ISO 8601 or epoch ms); later events are "
                        "left out")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, metavar="N",
                        help="processes to replay a large CSV history in, the users split"
                        " between them (default: one per core)")
    parser.add_argument("--strict", action="store_true",
                        help="stop at the first malformed row instead of skipping it")


def run_backtest_command(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    try:
        args.segment_events, args.scoring = _from_config(args)
    except ConfigError as err:
        print(f"backtest: {err}", file=sys.stderr)
        return 2
    if args.variant or args.vary:
        return _run_variants(args, started)
    if not args.sequences:
        print("backtest: give --sequences (or --variant)", file=sys.stderr)
        return 2
    try:
        sequence_set, _origin = load_paths(args.sequences)
    except InvalidSequence as err:
        for problem in err.problems:
            print(problem, file=sys.stderr)
        print(f"invalid: {len(err.problems)} problem(s)", file=sys.stderr)
        return 1
    try:
        result, history = _replay(args, sequence_set)
    except (UnreadableHistory, MalformedRow) as err:
        print(f"backtest: {err}", file=sys.stderr)
        return 2
    _warn_skipped(args.events, history.problems)
    print(summary_json(result) if args.format == "json" else summary_table(result))
    if args.sends is not None:
        try:
            write_sends(result.sends, args.sends)
        except OSError as err:
            print(f"backtest: cannot write {args.sends}: {err.strerror}", file=sys.stderr)
            return 2
    elapsed_s = time.perf_counter() - started
    print(run_summary_line(result, len(history.problems), elapsed_s), file=sys.stderr)
    return 0


def _replay(args: argparse.Namespace, sequence_set: SequenceSet) -> tuple[Replay, HistoryFile]:
    engine = Engine(compile_rules(sequence_set, args.scoring), unknown_users_mailable=True,
                    global_holdout=args.global_holdout)
    history = HistoryFile(args.events, dict(args.rename), strict=args.strict,
                          wanted=engine.rules.plans, segment_events=args.segment_events)
    with _cyclic_gc_paused():
        result = _fast_replay(engine, history, args.until, args.workers) or replay_history(
            engine, history, args.until)
    return result, history


def _from_config(args: argparse.Namespace) -> tuple[dict[str, str] | None, Scoring | None]:
    """What the server's config says that a backtest must do alike: the Segment mapping and
    the lead score's rules."""
    if args.config is None:
        return None, None
    settings = load_settings(args.config, os.environ)
    return dict(settings.segment.events) or None, settings.scoring


def _run_variants(args: argparse.Namespace, started: float) -> int:
    if args.vary and not args.sequences:
        print("backtest: --vary changes the --sequences set: give it", file=sys.stderr)
        return 2
    try:
        variants = build_variants(args.sequences, args.variant, args.vary)
    except InvalidVariant as err:
        print(f"backtest: {err}", file=sys.stderr)
        return 1
    results = []
    for variant in variants:
        try:
            result, history = _replay(args, variant.sequence_set)
        except (UnreadableHistory, MalformedRow) as err:
            print(f"backtest: {err}", file=sys.stderr)
            return 2
        results.append((variant.name, result))
    _warn_skipped(args.events, history.problems)
    print(variants_json(results) if args.format == "json" else variants_table(results))
    elapsed_s = time.perf_counter() - started
    print(f"backtest: {len(results)} variants, {elapsed_s:.2f} s", file=sys.stderr)
    return 0


def _fast_replay(engine: Engine, history: HistoryFile, until_ms: int | None,
                 workers: int) -> Replay | None:
    """The columnar replay of a well-formed CSV history; None: replay it row by row."""
    if history.path.suffix.lower() != ".csv" or not history.path.is_file():
        return None
    return replay_columnar(engine, history.path, history.rename, engine.rules.plans, until_ms,
                           max(1, workers))


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Hold off the cyclic garbage collector while millions of events are built and replayed:
    they form no cycles, and the blocks of rows in flight, promoted to the oldest generation,
    would have it walk them over and over (a third of the run's time on 1M events).
    Reference counting still frees everything."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _warn_skipped(path: Path, problems: list[RowProblem]) -> None:
    for problem in problems[:SKIPPED_ROWS_SHOWN]:
        print(f"backtest: skipped {path}:{problem.line}: {problem.message}", file=sys.stderr)
    if len(problems) > SKIPPED_ROWS_SHOWN:
        rest = len(problems) - SKIPPED_ROWS_SHOWN
        print(f"backtest: ... and {rest} more skipped rows", file=sys.stderr)


def _variant(text: str) -> tuple[str, Path]:
    try:
        return parse_variant(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _vary(text: str) -> Vary:
    try:
        return parse_vary(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _share(text: str) -> float:
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share like 5% or 0.05") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{text!r}: a share is at least 0% and below 100%")
    return value


def _rename_pair(text: str) -> tuple[str, str]:
    old, sep, new = text.partition("=")
    if not sep or not old or not new:
        raise argparse.ArgumentTypeError(f"{text!r} is not OLD=NEW")
    return old, new


def _instant(text: str) -> int:
    try:
        return parse_timestamp(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
