"""The JavaScript code generated from proto/ (sdk_js/gen/, by scripts/gen_sdk_js) is fresh:
regenerating it into a temporary directory gives the committed files, byte for byte."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GENERATED = "sdk_js/gen"


def _files_under(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted((root / GENERATED).rglob("*"))
        if path.is_file()
    }


def test_committed_js_code_matches_a_fresh_generation(tmp_path: Path) -> None:
    if not (REPO / "sdk_js" / "node_modules" / ".bin" / "protoc-gen-es").exists():
        pytest.fail("protoc-gen-es is not installed: run scripts/setup (or npm ci --prefix sdk_js)")
    subprocess.run([REPO / "scripts" / "gen_sdk_js", "--out", tmp_path], check=True)
    fresh, committed = _files_under(tmp_path), _files_under(REPO)

    assert fresh, "scripts/gen_sdk_js generated nothing"
    missing = sorted(fresh.keys() - committed.keys())
    extra = sorted(committed.keys() - fresh.keys())
    changed = sorted(name for name in fresh.keys() & committed.keys()
                     if fresh[name] != committed[name])
    assert not (missing or extra or changed), (
        f"sdk_js/gen is stale (missing: {missing}, extra: {extra}, changed: {changed}); "
        "run ./scripts/gen_sdk_js"
    )
