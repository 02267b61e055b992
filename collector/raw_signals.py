"""Raw signals: what the page loader records before (or instead of) running the collector.

How this works: the loader (`sdk_js/pw.js`) records what happens on the page from its first
moment as a compact list, with no interpretation. Three places replay that list into a
`Collector`, so a signal means the same thing wherever it ends up:
- the browser host, when Pyodide has booted, for what happened before;
- the edge worker (Pyodide in a worker runtime), for pages in `edge` mode, which never load
  Pyodide;
- the server (CPython), for a page that closed before Pyodide booted (a raw beacon).

A payload is one JSON object (at most MAX_PAYLOAD_BYTES as UTF-8):

    {"v": 1, "site": "demo", "device": "k3Jx9Q...", "load": 1838201,
     "t0": 1764288000000, "n": 0, "sent": 9500,
     "ctx": {"tz": "Europe/Berlin", "locale": "de-DE", "vw": 1440, "vh": 900, "cur": "EUR"},
     "s": [[0, "p", "/product/lp14", "Laptop Pro 14", "https://google.com/"],
           [812, "s", 34], [2317, "a"], [4102, "e", "card:lp14"], [5900, "l", "card:lp14"],
           [7000, "t", "cart_add", {"sku": "lp14", "qty": 1, "price": 1299}],
           [8000, "i", "u_42", "ann@example.com", "9f2c...", {}],
           [9000, "v", 0], [9400, "x"]]}

- `load`: the page load's stream (1 to 2^31-1), `t0`: the loader's clock at its start (ms since
  the epoch), `n`: the chunk number of this payload within the page load (0, 1, 2 ...; each
  chunk holds only what is new since the one before), `f`: the page load's first raw chunk
  number (0, or 1 when the browser host handed the page back at its end), `sent`: ms since t0
  when the chunk was sent (the batches' sent_at, by which the server corrects the page's clock;
  the last signal's time when absent).
- `h`: the chunk's history: the page view's signals before this chunk (from its `p` on, without
  `t` and `i`, which change no state), and `k`: ms since t0 up to which the page load's engaged
  time was counted before this chunk (the previous chunk's `sent`, or the browser host's
  clock). A receiver replays the history muted, then counts up to `k`, then replays `s`: the
  chunk's events come out exactly as if every chunk had been replayed in order by one
  collector, whatever order the chunks arrive in and whoever kept (or lost) the state between
  them. `h` and `k` are absent on a page load's first chunk.
- each signal is `[ms since t0, kind, ...args]`, in time order:
  `p` page view (path, title, referrer), `s` scroll (the page's depth %, 0-100), `v` visibility
  (1 shown, 0 hidden), `f` focus (1/0), `a` activity (a key, pointer or touch), `e`/`l` pointer
  entered/left a `data-pw-hover` element (its attribute value), `t` track (event name, props),
  `i` identify (user id, email, signature, traits), `x` page end (pagehide).

Chunk n of a page load numbers its batches from n << 16 (`first_seq`), so the same chunk always
makes the same batches under the same seqs, and the server's dedup by (device, stream, seq)
applies a chunk sent twice once.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from collector.session import Collector
from collector.track import InvalidTrack

__all__ = [
    "MAX_HISTORY",
    "MAX_PAYLOAD_BYTES",
    "MAX_SIGNALS",
    "InvalidSignals",
    "RawPayload",
    "parse_payload",
    "rebuild",
    "replay",
]

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_SIGNALS = 2_000
MAX_HISTORY = 8_000
_MAX_TEXT = 2_048
_MAX_ID = 64
_STREAM_MAX = 2**31 - 1
_CHUNK_MAX = 2**15


class InvalidSignals(ValueError):
    """A raw payload that cannot be replayed; the message names the field at fault."""


@dataclass(frozen=True, slots=True)
class RawPayload:
    site: str
    device: str
    load: int
    t0: int
    chunk: int
    context: dict[str, Any]
    signals: list[list[Any]]
    sent_ms: int
    history: list[list[Any]] = field(default_factory=list)
    counted_ms: int | None = None  # absolute; None: up to the history's last signal
    first_chunk: int = 0

    @property
    def first_seq(self) -> int:
        return self.chunk << 16


def _text(value: Any, where: str, limit: int = _MAX_TEXT) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidSignals(f"{where}: must be a string of at most {limit} characters")
    return value


def _int(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidSignals(f"{where}: must be a number")
    number = int(value)
    if not low <= number <= high:
        raise InvalidSignals(f"{where}: must be from {low} to {high}")
    return number


def parse_payload(body: bytes | str) -> RawPayload:
    """The payload in `body`, checked; raises InvalidSignals naming the field at fault."""
    raw = body.encode() if isinstance(body, str) else body
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise InvalidSignals(f"payload: {len(raw)} bytes, at most {MAX_PAYLOAD_BYTES}")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as err:
        raise InvalidSignals(f"payload: not JSON ({err})") from None
    except RecursionError:
        raise InvalidSignals("payload: nested too deeply") from None
    if not isinstance(data, dict):
        raise InvalidSignals("payload: must be a JSON object")
    if data.get("v") != 1:
        raise InvalidSignals("v: must be 1")
    context = data.get("ctx", {})
    if not isinstance(context, dict):
        raise InvalidSignals("ctx: must be an object")
    signals = _signals(data.get("s"), "s", MAX_SIGNALS)
    history = _signals(data.get("h", []), "h", MAX_HISTORY)
    device = _text(data.get("device"), "device", _MAX_ID)
    if not device:
        raise InvalidSignals("device: must not be empty")
    t0 = _int(data.get("t0"), "t0", 0, 2**53)
    last = signals[-1][0] if signals and isinstance(signals[-1][0], int) else 0
    sent = _int(data.get("sent", max(last, 0)), "sent", 0, 2**40)
    chunk = _int(data.get("n", 0), "n", 0, _CHUNK_MAX - 1)
    counted = data.get("k")
    return RawPayload(
        site=_text(data.get("site"), "site", _MAX_ID),
        device=device,
        load=_int(data.get("load"), "load", 1, _STREAM_MAX),
        t0=t0,
        chunk=chunk,
        context=context,
        signals=signals,
        sent_ms=t0 + sent,
        history=history,
        counted_ms=None if counted is None else t0 + _int(counted, "k", 0, 2**40),
        first_chunk=_int(data.get("f", 0), "f", 0, chunk),
    )


def _signals(value: Any, where: str, most: int) -> list[list[Any]]:
    if not isinstance(value, list) or len(value) > most:
        raise InvalidSignals(f"{where}: must be a list of at most {most} signals")
    for i, signal in enumerate(value):
        if not isinstance(signal, list) or len(signal) < 2 or not isinstance(signal[1], str):
            raise InvalidSignals(f"{where}[{i}]: must be [ms, kind, ...]")
    return value


def _flag(value: Any, where: str) -> bool:
    return bool(_int(value, where, 0, 1))


def _props(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidSignals(f"{where}: must be an object")
    return value


def _traits(value: Any, where: str) -> dict[str, str]:
    return {_text(k, where): _text(v, f"{where}.{k}") for k, v in _props(value, where).items()}


def replay(collector: Collector, payload: RawPayload) -> int:
    """Feed the payload's signals to `collector`; returns how many were replayed.

    Raises InvalidSignals for the first signal that cannot be replayed, naming it; the signals
    before it have been replayed by then (a host that wants all or nothing checks first with a
    throwaway collector)."""
    return _replay(collector, payload.t0, payload.signals, "s")


def rebuild(collector: Collector, payload: RawPayload) -> None:
    """Bring a fresh `collector` to the page load's state before this chunk: the history
    replayed muted, then engaged time counted up to `k`. Raises InvalidSignals like `replay`."""
    with collector.muted():
        _replay(collector, payload.t0, payload.history, "h")
        if payload.counted_ms is not None:
            collector.advance_to(payload.counted_ms)


def _replay(collector: Collector, t0: int, signals: list[list[Any]], name: str) -> int:
    for i, signal in enumerate(signals):
        where = f"{name}[{i}]"
        at = t0 + _int(signal[0], f"{where}[0]", 0, 2**40)
        kind, args = signal[1], signal[2:]
        try:
            _one(collector, kind, args, at, where)
        except (IndexError, KeyError):
            raise InvalidSignals(f"{where}: too few arguments for {kind!r}") from None
        except InvalidTrack as err:
            raise InvalidSignals(f"{where}: {err}") from None
    return len(signals)


def _one(c: Collector, kind: str, args: list[Any], at: int, where: str) -> None:
    if kind == "p":
        c.page_view(_text(args[0], f"{where}.path"), _text(args[1], f"{where}.title"),
                    _text(args[2], f"{where}.referrer"), at)
    elif kind == "s":
        c.scroll_to(float(_int(args[0], f"{where}.depth", 0, 100)), at)
    elif kind == "v":
        c.visibility(_flag(args[0], f"{where}.visible"), at)
    elif kind == "f":
        c.focus(_flag(args[0], f"{where}.focused"), at)
    elif kind == "a":
        c.activity(at)
    elif kind == "e":
        c.pointer_enter(_text(args[0], f"{where}.target", 256), at)
    elif kind == "l":
        c.pointer_leave(_text(args[0], f"{where}.target", 256), at)
    elif kind == "t":
        c.track(_text(args[0], f"{where}.name", 64), _props(args[1], f"{where}.props"), at)
    elif kind == "i":
        traits = _traits(args[3], f"{where}.traits") if len(args) > 3 else {}
        c.identify(_text(args[0], f"{where}.user_id", 256), _text(args[1], f"{where}.email", 320),
                   _text(args[2], f"{where}.signature", 128), at, traits)
    elif kind == "x":
        c.page_end(at)
    else:
        raise InvalidSignals(f"{where}: unknown kind {kind!r}")
