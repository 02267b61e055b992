"""The web console's pages with a million users in the shards: each page's time.

How this works: `storage.fill_users` writes 8 shard files holding a month of `users` signed-in
shoppers (engine states, emails, the send log, counters and counters by day; see there), then
`pulsewire serve` starts on them (server_stack: the example sequences and templates, the
catalog) with the console on, and a client on this machine logs in with the operator token and
asks each page WARMUPS times, then REQUESTS times, one request at a time over one kept-alive
connection. Reported per page: the median and p95 of the request's wall time at the client.
That is the server's time plus the loopback round trip and the client's reading of the
answer: it counts a little more than the server spends, never less. Beside it, the CPU time
the server process (all its threads: the SQLite ones too) used during each request, read from
Linux's /proc/<pid>/task/*/schedstat: what the page costs the server, whatever else runs on
the machine meanwhile (the wall time also counts waiting for a core). The user page looks a
shopper up by email (and, apart, by routing key); the figures of a period read the counters by
day. `console_page_p95_ms` is the worst page's wall p95; the console is held to 100 ms.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from scripts.benchmarks import server_stack, storage
from scripts.benchmarks.latency import quantile
from scripts.benchmarks.server_stack import EXAMPLES

USERS = 1_000_000
WARMUPS, REQUESTS = 2, 20  # the p95 of 20 is the slowest
TOKEN = "bench-console-token"
SEQUENCE = "cart-recovery"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def measure(users: int = USERS) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pw-bench-") as tmp, ExitStack() as stack:
        sequences = Path(tmp) / "fill-sequences"  # the server's: server_stack copies the same
        _copy_examples(sequences)
        filled = storage.fill_users(Path(tmp) / "data", sequences, users)
        figures = {f"console_{key}": value for key, value in filled.items()}
        with _environment({"PULSEWIRE_CONSOLE__ENABLED": "true",
                           "PULSEWIRE_SERVER__OPERATOR_TOKEN": TOKEN}):
            server = server_stack.start(stack, Path(tmp), shards=8)
        client = _Client(server.http_port, server.pid)
        stack.callback(client.close)
        client.log_in()
        key, email = storage.fill_user(users // 2)
        pages = _pages(key, email)
        for page, path in pages.items():
            figures.update(_page(client, page, path, email if page.startswith("users") else ""))
    worst = max(figures[f"console_{page}_p95_ms"] for page in pages)
    print(f"console: worst page p95 {worst} ms with {users:,} users (wall time at a client on "
          f"loopback: a little more than the server's own)", flush=True)
    return {**figures, "console_users": users, "console_requests_per_page": REQUESTS,
            "console_pages": list(pages), "console_page_p95_ms": worst}


def _pages(key: str, email: str) -> dict[str, str]:
    return {
        "overview": "/console/",
        "overview_30d": "/console/?period=30d",
        "sequence": f"/console/sequences/{SEQUENCE}",
        "sequence_30d": f"/console/sequences/{SEQUENCE}?period=30d",
        "users": f"/console/users?who={quote(email, safe='')}",
        "users_by_key": f"/console/users?who={quote(key, safe='')}",
        "live": "/console/live",
        "previews": "/console/previews",
        "edit": "/console/edit",
    }


def _page(client: _Client, page: str, path: str, expect: str) -> dict[str, Any]:
    for _ in range(WARMUPS):
        client.get(path, expect)
    wall, cpu = zip(*(client.get(path, expect) for _ in range(REQUESTS)), strict=True)
    times, used = sorted(wall), sorted(c for c in cpu if c is not None)
    figures = {f"console_{page}_median_ms": quantile(times, 0.50),
               f"console_{page}_p95_ms": quantile(times, 0.95),
               f"console_{page}_cpu_median_ms": quantile(used, 0.50),
               f"console_{page}_cpu_p95_ms": quantile(used, 0.95)}
    values = [f"{v:>7.1f}" if v is not None else "      -" for v in figures.values()]
    print(f"  console {page:<13} median {values[0]} ms, p95 {values[1]} ms; server CPU median "
          f"{values[2]} ms, p95 {values[3]} ms  ({path})", flush=True)
    return figures


class _Client:
    """One kept-alive connection and the console's cookies; `pid` is the server's."""

    def __init__(self, port: int, pid: int) -> None:
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self._cookies: dict[str, str] = {}
        self._pid = pid

    def log_in(self) -> None:
        status, page = self._request("GET", "/console/login")
        found = _CSRF.search(page)
        if status != 200 or found is None:
            raise SystemExit(f"console: GET /console/login answered {status} with no csrf field")
        status, _ = self._request("POST", "/console/login",
                                  urlencode({"csrf": found.group(1), "token": TOKEN}))
        if status != 303 or "pw_console" not in self._cookies:
            raise SystemExit(f"console: login answered {status}, no session cookie")

    def get(self, path: str, expect: str = "") -> tuple[float, float | None]:
        """The request's wall time and the server's CPU time meanwhile, in ms (None: not on
        Linux); the page must be a 200 (holding `expect`)."""
        cpu_before, started = _cpu_ns(self._pid), time.perf_counter()
        status, page = self._request("GET", path)
        elapsed, cpu_after = (time.perf_counter() - started) * 1000, _cpu_ns(self._pid)
        if status != 200 or expect not in page:
            raise SystemExit(f"console: GET {path} answered {status}"
                             + (f" without {expect!r}" if status == 200 else ""))
        if cpu_before is None or cpu_after is None:
            return elapsed, None
        return elapsed, max(0, cpu_after - cpu_before) / 1e6

    def _request(self, method: str, path: str, form: str = "") -> tuple[int, str]:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self._cookies.items())}
        if form:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        for attempt in (1, 2):  # the server closes a connection left idle: open it again
            try:
                self._conn.request(method, path, form or None, headers)
                answer = self._conn.getresponse()
                break
            except (http.client.RemoteDisconnected, ConnectionError):
                self._conn.close()
                if attempt == 2:
                    raise
        text = answer.read().decode("utf-8", "replace")
        for header in answer.headers.get_all("Set-Cookie") or []:
            name, _, value = header.split(";", 1)[0].partition("=")
            if value.strip('"'):
                self._cookies[name.strip()] = value
            else:  # deleted
                self._cookies.pop(name.strip(), None)
        return answer.status, text

    def close(self) -> None:
        self._conn.close()


def _cpu_ns(pid: int) -> int | None:
    """CPU time a process's threads have used so far (ns), or None where /proc has no
    schedstat. The server is idle before and after a request, so the counts are exact then."""
    total, found = 0, False
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            total += int((task / "schedstat").read_text().split()[0])
            found = True
        except (OSError, ValueError, IndexError):  # a thread that ended meanwhile
            continue
    return total if found else None


def _copy_examples(folder: Path) -> None:
    """The example sequences and segments, as server_stack gives the server."""
    shutil.copytree(EXAMPLES / "sequences", folder)
    shutil.copytree(EXAMPLES / "segments", folder / "segments")


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """server_stack starts its processes with this process's environment (plus its own): the
    console's settings go there while it does."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
