"""The layout tells the architecture, and these checks keep it so:
- SQL against the shard schema lives in server/storage/ alone (the shard offers typed methods);
- layers point one way: the engine and storage know nothing of ingest, rpc, web, cluster or
  dispatch; ingest knows nothing of rpc, web or cluster; web and cluster never import rpc (the
  gRPC servicers and the status table), rpc never imports web or cluster; measuring is pure
  counting over the engine's rules;
- no module past 400 lines but generated code.
"""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVER = ROOT / "server"
SHARD_TABLES = ("users", "aliases", "dedup", "outbox", "send_log", "stats", "suppression",
                "log_position", "migrations")
# A statement that names a shard table where SQL names tables.
SQL = re.compile(r"\b(?:SELECT\b.*?\bFROM|INSERT\s+(?:OR\s+\w+\s+)?INTO|UPDATE|DELETE\s+FROM"
                 r"|REPLACE\s+INTO|JOIN)\s+(" + "|".join(SHARD_TABLES) + r")\b",
                 re.IGNORECASE | re.DOTALL)
LAYERS = {  # package -> what it must not import
    "server.engine": ("server.ingest", "server.rpc", "server.web", "server.cluster",
                      "server.dispatch", "server.storage", "server.app", "server.modes",
                      "server.operator_actions"),
    "server.storage": ("server.ingest", "server.rpc", "server.web", "server.cluster",
                       "server.dispatch", "server.app", "server.modes",
                       "server.operator_actions"),
    "server.ingest": ("server.rpc", "server.web", "server.cluster", "server.dispatch",
                      "server.app", "server.modes"),
    "server.web": ("server.rpc", "server.cluster", "server.app"),
    "server.cluster": ("server.rpc", "server.web", "server.app", "server.dispatch"),
    "server.rpc": ("server.web", "server.cluster", "server.app", "server.dispatch"),
    "server.measure": ("server.ingest", "server.rpc", "server.web", "server.cluster",
                       "server.storage", "server.dispatch", "server.app", "server.modes",
                       "server.operator_actions", "server.mail"),
    "server.webhooks": ("server.ingest", "server.rpc", "server.web", "server.cluster",
                        "server.storage", "server.dispatch", "server.app", "server.engine"),
    "server.mail": ("server.ingest", "server.rpc", "server.web", "server.cluster",
                    "server.storage", "server.dispatch", "server.app"),
}


def _modules(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "gen" not in p.relative_to(root).parts)


def _strings(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):  # an f-string: its literal parts, joined
            text = "".join(v.value for v in node.values
                           if isinstance(v, ast.Constant) and isinstance(v.value, str))
            found.append((node.lineno, text))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.append((node.lineno, node.value))
    return found


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_sql_check_sees_shard_statements() -> None:
    """The pattern catches the statements it must (else the next test proves nothing)."""
    caught = ["SELECT sequence, step FROM outbox WHERE message_key = ?",
              "INSERT OR REPLACE INTO suppression VALUES (?, 'operator', ?)",
              "UPDATE outbox SET status = ?", "DELETE FROM dedup WHERE expires_ms < ?",
              "SELECT key,\n email FROM users WHERE key = ?"]
    passed = ["SELECT sku FROM products WHERE sku = ?", "the users of a shard", "select a stat"]
    assert all(SQL.search(text) for text in caught)
    assert not any(SQL.search(text) for text in passed)


def test_sql_against_shard_files_is_written_in_storage_alone() -> None:
    storage = SERVER / "storage"
    offenders = [f"{path.relative_to(ROOT)}:{line}: {text.strip()[:70]}"
                 for path in _modules(SERVER) if storage not in path.parents
                 for line, text in _strings(path) if SQL.search(text)]
    assert offenders == []


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_layers_point_one_way(package: str) -> None:
    folder = ROOT.joinpath(*package.split("."))
    files = [folder.with_suffix(".py")] if folder.with_suffix(".py").exists() else \
        _modules(folder)
    assert files
    offenders = [f"{path.relative_to(ROOT)} imports {name}" for path in files
                 for name in sorted(_imports(path))
                 if any(name == banned or name.startswith(banned + ".")
                        for banned in LAYERS[package])]
    assert offenders == []


def test_no_module_is_past_400_lines_but_generated_code() -> None:
    sources = [*_modules(ROOT / "server"), *_modules(ROOT / "collector"),
               *_modules(ROOT / "scripts"), *_modules(ROOT / "tests"),
               *(p for p in (ROOT / "sdk_js").rglob("*.js") if "node_modules" not in p.parts
                 and "gen" not in p.parts and "test" not in p.parts),
               *(p for p in (ROOT / "sdk_js").rglob("*.mjs") if "node_modules" not in p.parts
                 and "gen" not in p.parts and "test" not in p.parts)]
    long = {str(p.relative_to(ROOT)): n for p in sources
            if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}
