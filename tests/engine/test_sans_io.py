"""The engine core stays sans-I/O: no module under server/engine imports an I/O or clock module.

Time comes in as `now`; storage and the network belong to the callers. A transitive import by
the standard library (datetime uses time) is not the engine's doing, so the check reads the
engine's own import statements.
"""

import ast
from pathlib import Path

import pytest

FORBIDDEN = {"asyncio", "grpc", "sqlite3", "aiosqlite", "time", "socket", "threading", "uvloop",
             "os", "subprocess", "random"}
ENGINE_FILES = sorted((Path(__file__).parents[2] / "server" / "engine").glob("*.py"))


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_engine_files_are_found():
    assert len(ENGINE_FILES) >= 5


@pytest.mark.parametrize("path", ENGINE_FILES, ids=lambda p: p.name)
def test_engine_module_imports_no_io_or_clock(path):
    assert _imported_roots(path) & FORBIDDEN == set()
