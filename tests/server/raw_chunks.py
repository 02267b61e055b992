"""A page load's raw signals cut into chunks the way the loader (sdk_js/pw.js) cuts them: each
chunk with its history (the page view's signals before it, from its `p` on, without `t` and
`i`) and `k` (the previous chunk's send time), so each can be replayed on its own."""

from __future__ import annotations

import itertools
import json
from typing import Any

STATELESS = frozenset("ti")


def chunk_payloads(signals: list[list[Any]], cuts: list[int], *, site: str = "demo",
                   device: str = "dev-1", load: int = 5, t0: int,
                   ctx: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Chunks of `signals` cut before each index in `cuts`, each sent 50 ms after its last
    signal."""
    payloads, history, previous_sent = [], [], None
    bounds = [0, *cuts, len(signals)]
    for n, (start, end) in enumerate(itertools.pairwise(bounds)):
        part = signals[start:end]
        sent = part[-1][0] + 50
        body: dict[str, Any] = {"v": 1, "site": site, "device": device, "load": load, "t0": t0,
                                "n": n, "sent": sent, "ctx": ctx or {"tz": "Europe/Berlin"},
                                "s": part}
        if history:
            body["h"] = list(history)
        if previous_sent is not None:
            body["k"] = previous_sent
        payloads.append(body)
        for signal in part:
            if signal[1] == "p":
                history = [signal]
            elif signal[1] not in STATELESS:
                history.append(signal)
        previous_sent = sent
    return payloads


def encoded(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()
