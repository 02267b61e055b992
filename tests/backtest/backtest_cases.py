"""Building blocks for backtest tests: history files written into tmp_path from plain rows, and
`pulsewire backtest` run through the real CLI entry point with its output captured.

Times are written as ISO text in the rows; T0 is Monday 2024-03-04 10:00 UTC, far from quiet
hours and DST changes.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from server.cli import main

__all__ = [
    "CART_AND_BROWSE",
    "EXAMPLES",
    "Run",
    "backtest",
    "sends_file",
    "write_csv",
    "write_jsonl",
    "write_sequence",
]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CART_AND_BROWSE = (
    EXAMPLES / "sequences" / "cart-recovery.yaml",
    EXAMPLES / "sequences" / "browse-abandonment.yaml",
)


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    @property
    def summary(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.out)
        return document


def backtest(capsys: pytest.CaptureFixture[str], events: Path, *extra: str,
             sequences: Iterable[Path] = CART_AND_BROWSE, json_format: bool = True) -> Run:
    """Run `pulsewire backtest` in-process and capture what it printed."""
    argv = ["backtest", "--events", str(events)]
    for path in sequences:
        argv += ["--sequences", str(path)]
    if json_format:
        argv += ["--format", "json"]
    capsys.readouterr()  # drop anything printed before
    code = main([*argv, *extra])
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err)


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, records: Iterable[Mapping[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def write_sequence(folder: Path, name: str, text: str) -> Path:
    """A sequence (or segment) file in its own folder, so it loads on its own."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def sends_file(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
