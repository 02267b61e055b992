"""A synthetic shop history for benchmarks and demos: `generate(path, events, users, seed)`.

Users visit in sessions spread over SPAN_DAYS, more often in their local afternoon and evening,
and some users far more often than others (Pareto activity). A session lands on a page, looks at
a few products (product_view, page_view, scroll, sometimes dwell and hover), with noise events
(click, search, hover on navigation) in between, at gaps of seconds to a couple of minutes. Some
sessions add to cart; a cart is then bought quickly (checkout_start, purchase within the hour),
bought late (after the 60-minute reminder would go out), left at checkout, or abandoned. So the
example sequences (cart-recovery, browse-abandonment, ...) all have work to do.

The rows are written as CSV in time order, with ISO 8601 timestamps to the millisecond. The
same (events, users, seed) always writes the same bytes.
"""

from __future__ import annotations

import argparse
import csv
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path

__all__ = ["COLUMNS", "START_MS", "generate", "main"]

COLUMNS = ("user_id", "event", "timestamp", "path", "product_id", "cart_id", "value_minor",
           "depth_pct", "engaged_ms", "target", "ms", "query", "timezone")
START_MS = 1_709_510_400_000  # 2024-03-04T00:00:00Z, a Monday
SPAN_DAYS = 7
_DAY_MS = 86_400_000
_MINUTE_MS = 60_000
# Zone and a fixed UTC offset in hours (near enough for when people shop); "" is unknown.
_ZONES = (("America/New_York", -5), ("America/Los_Angeles", -8), ("Europe/London", 0),
          ("Europe/Berlin", 1), ("Asia/Tokyo", 9), ("Australia/Sydney", 11), ("", 0))
# Relative traffic by local hour: quiet at night, busy in the evening.
_HOUR_WEIGHTS = (2, 1, 1, 1, 1, 2, 3, 5, 7, 8, 8, 9, 10, 10, 9, 9, 10, 11, 13, 15, 15, 12, 8, 4)
_LANDING = ("/", "/", "/sale", "/category/laptops", "/category/phones", "/category/audio")
_NOISE = ("click", "click", "search", "hover", "session_ping")
_PRODUCTS = 400
_PREMIUM = "premium-laptop"

_Row = tuple[int, str, str, dict[str, str]]  # (at_ms, user id, event, properties)


@dataclass(frozen=True, slots=True)
class _Shopper:
    user_id: str
    zone: str
    utc_offset_h: int


@dataclass(slots=True)
class _Session:
    """One visit being written: its shopper, its clock, and the rows so far."""

    shopper: _Shopper
    rng: random.Random
    at_ms: int
    rows: list[_Row]

    def emit(self, event: str, **props: str) -> None:
        self.rows.append((self.at_ms, self.shopper.user_id, event, props))

    def pause(self, mean_s: float) -> None:
        self.at_ms += 500 + int(self.rng.expovariate(1 / (mean_s * 1000)))


def generate(path: Path, events: int, users: int, seed: int) -> None:
    """Write exactly `events` rows for `users` shoppers (some may not show up) to `path`."""
    rng = random.Random(seed)
    shoppers = [_shopper(rng, n) for n in range(users)]
    activity = list(accumulate(rng.paretovariate(1.2) for _ in shoppers))
    rows: list[_Row] = []
    while len(rows) < events:
        shopper = rng.choices(shoppers, cum_weights=activity)[0]
        session = _Session(shopper, rng, _session_start(rng, shopper), rows)
        _visit(session)
    rows.sort(key=lambda row: row[0])  # stable: a session's own order survives equal instants
    _write(path, rows[:events])


def _shopper(rng: random.Random, n: int) -> _Shopper:
    zone, offset = rng.choice(_ZONES)
    return _Shopper(f"u{n:07d}", zone, offset)


def _session_start(rng: random.Random, shopper: _Shopper) -> int:
    day = rng.randrange(SPAN_DAYS)
    local_hour = rng.choices(range(24), weights=_HOUR_WEIGHTS)[0]
    utc_hour = (local_hour - shopper.utc_offset_h) % 24
    return START_MS + day * _DAY_MS + utc_hour * 3_600_000 + rng.randrange(3_600_000)


# ---- one visit --------------------------------------------------------------------------------


def _visit(s: _Session) -> None:
    landing = s.rng.choice(_LANDING)
    if s.shopper.zone:
        s.emit("page_view", path=landing, timezone=s.shopper.zone)
    else:
        s.emit("page_view", path=landing)
    for _ in range(1 + min(int(s.rng.expovariate(0.5)), 8)):
        _noise(s)
        product = _product(s.rng)
        _look_at(s, product)
        if s.rng.random() < 0.12:
            _cart(s, product)
            if s.rng.random() < 0.7:
                return


def _noise(s: _Session) -> None:
    while s.rng.random() < 0.45:
        s.pause(15)
        kind = s.rng.choice(_NOISE)
        if kind == "search":
            s.emit("search", query=s.rng.choice(("laptop", "usb c hub", "headphones", "case")))
        elif kind == "hover":
            s.emit("hover", target=f"nav:{s.rng.choice(('menu', 'cart', 'account'))}",
                   ms=str(s.rng.randrange(100, 1500)))
        else:
            s.emit(kind)


def _product(rng: random.Random) -> str:
    return _PREMIUM if rng.random() < 0.05 else f"p{int(rng.paretovariate(1.1)) % _PRODUCTS:04d}"


def _look_at(s: _Session, product: str) -> None:
    path = f"/product/{product}"
    s.pause(20)
    s.emit("product_view", path=path, product_id=product)
    s.pause(1)
    s.emit("page_view", path=path)
    for depth in range(25, 101, 25):
        if s.rng.random() > 0.6:
            break
        s.pause(8)
        s.emit("scroll", path=path, depth_pct=str(depth))
    if s.rng.random() < 0.3:
        s.pause(30)
        s.emit("dwell", path=path, engaged_ms=str(s.rng.randrange(5_000, 300_000)))
    if s.rng.random() < 0.25:
        s.pause(5)
        s.emit("hover", path=path, target=f"product:{product}", ms=str(s.rng.randrange(200, 3000)))


def _cart(s: _Session, product: str) -> None:
    cart = f"c{s.shopper.user_id[1:]}-{s.rng.randrange(1_000_000):06d}"
    value = str(s.rng.randrange(900, 60_000))
    s.pause(10)
    s.emit("cart_add", cart_id=cart, product_id=product, value_minor=value)
    outcome = s.rng.random()
    if outcome < 0.35:  # bought within the hour
        s.at_ms += s.rng.randrange(1, 15) * _MINUTE_MS
        s.emit("checkout_start", cart_id=cart, value_minor=value)
        s.at_ms += s.rng.randrange(1, 30) * _MINUTE_MS
        s.emit("purchase", cart_id=cart, value_minor=value)
    elif outcome < 0.45:  # left at checkout
        s.at_ms += s.rng.randrange(1, 20) * _MINUTE_MS
        s.emit("checkout_start", cart_id=cart, value_minor=value)
    elif outcome < 0.55:  # came back and bought after the reminder would have gone out
        s.at_ms += s.rng.randrange(61, 600) * _MINUTE_MS
        s.emit("checkout_start", cart_id=cart, value_minor=value)
        s.pause(90)
        s.emit("purchase", cart_id=cart, value_minor=value)
    # else: abandoned


# ---- writing ----------------------------------------------------------------------------------


def _write(path: Path, rows: list[_Row]) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(_csv_rows(rows))


def _csv_rows(rows: list[_Row]) -> Iterator[list[str]]:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    property_columns = COLUMNS[3:]
    for at_ms, user, event, props in rows:
        stamp = (epoch + timedelta(milliseconds=at_ms)).isoformat(timespec="milliseconds")
        yield [user, event, stamp.replace("+00:00", "Z"),
               *(props.get(column, "") for column in property_columns)]


def main(argv: list[str] | None = None) -> None:
    """`python -m server.backtest.synthetic OUT.csv --events N --users N --seed N`."""
    parser = argparse.ArgumentParser(description="Write a synthetic shop history as CSV.")
    parser.add_argument("out", type=Path)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    generate(args.out, events=args.events, users=args.users, seed=args.seed)


if __name__ == "__main__":
    main()
