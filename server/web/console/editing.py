"""The console's Sequences page: check a pasted or edited definition as `pulsewire validate`
does (with the rest of the set, so duplicate ids and missing segments show too), backtest it
against the history the operator named (`[console] history_file`), save it over its file
(only with `[console] allow_edits = true`, keeping the previous text as NAME.previous), and
reload the running set, all or nothing.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.backtest.history import HistoryFile, MalformedRow, UnreadableHistory
from server.backtest.replay import replay_history
from server.backtest.report import tally_json
from server.engine import Engine, compile_rules
from server.errors import InvalidSequence, PulsewireError
from server.sequences import SequenceSet
from server.sequences.loading import SEQUENCE_SUFFIXES, load_paths

__all__ = ["Checked", "backtest", "check", "file_name_ok", "save", "sequence_files"]

_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,100}\.(yaml|yml|json)$")
MAX_TEXT = 256 * 1024


@dataclass
class Checked:
    """A definition checked: its problems (`file:line: field: message`), or the set it makes."""

    problems: list[str] = field(default_factory=list)
    sequence_set: SequenceSet | None = None


def file_name_ok(name: str) -> bool:
    return bool(_FILE_NAME.match(name)) and not name.endswith(".schema.json")


def check(folder: Path, name: str, text: str) -> Checked:
    """`text` as the file `name` of the sequences folder, with the folder's other files."""
    if not file_name_ok(name):
        return Checked([f"{name!r}: a file name like cart-recovery.yaml (.yaml, .yml, .json)"])
    if len(text.encode()) > MAX_TEXT:
        return Checked([f"{name}: longer than {MAX_TEXT // 1024} KiB"])
    others = [p for p in sequence_files(folder) if p.name != name]
    with tempfile.TemporaryDirectory(prefix="pw-console-") as tmp:
        pasted = Path(tmp) / name
        pasted.write_text(text, encoding="utf-8")
        try:
            sequence_set, _ = load_paths([*others, pasted])
        except InvalidSequence as err:
            return Checked([str(p).replace(str(pasted), name) for p in err.problems])
    return Checked([], sequence_set)


def backtest(sequence_set: SequenceSet, history: Path) -> dict[str, Any]:
    """The backtest summary of the set over the history (run it in a thread: it may take
    seconds on a large file)."""
    engine = Engine(compile_rules(sequence_set), unknown_users_mailable=True)
    try:
        result = replay_history(engine, HistoryFile(history, {}, wanted=engine.rules.plans))
    except (UnreadableHistory, MalformedRow) as err:
        return {"error": str(err)}
    return {"events": result.events, "users": result.users,
            "sequences": {s: tally_json(t) for s, t in sorted(result.tallies.items())}}


def save(folder: Path, name: str, text: str) -> Path:
    """Write `text` over the folder's file `name`, keeping what it held as NAME.previous."""
    if not file_name_ok(name):
        raise PulsewireError(f"{name!r} is not a sequence file name")
    path = folder / name
    if path.exists():
        (folder / f"{name}.previous").write_bytes(path.read_bytes())
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".pw-", suffix=".part")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(tmp, path)
    return path


def sequence_files(folder: Path) -> list[Path]:
    """The files a set loads from `folder` (as `load_paths` expands it)."""
    return sorted(p for p in folder.rglob("*") if p.suffix in SEQUENCE_SUFFIXES
                  and not p.name.endswith(".schema.json") and p.is_file())
