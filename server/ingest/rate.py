"""Rates: a token bucket per site (`rate_per_s` on average, bursts up to `burst`), for its
events and for its batches; and a limit per peer on refused keys and tokens, so guessing them
costs time."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["FailureLimit", "TokenBucket"]


@dataclass(slots=True)
class TokenBucket:
    rate_per_s: float
    burst: float
    tokens: float = -1.0
    updated_ms: int = 0

    def take(self, amount: int, now_ms: int) -> bool:
        """Take `amount` tokens if there are enough; False (taking none) if not."""
        if amount > self.available(now_ms):
            return False
        self.tokens -= amount
        return True

    def available(self, now_ms: int) -> float:
        if self.tokens < 0:
            self.tokens, self.updated_ms = self.burst, now_ms
        elapsed_s = max(0, now_ms - self.updated_ms) / 1000
        self.tokens = min(self.burst, self.tokens + elapsed_s * self.rate_per_s)
        self.updated_ms = now_ms
        return self.tokens


class FailureLimit:
    """Per peer (a client's address): refused keys or tokens fill a bucket that leaks
    `per_minute` a minute; a peer whose bucket holds `per_minute` is over its budget, and every
    refusal while over adds to it too, so a guesser that keeps going stays over. The `peers`
    most recently refused are remembered."""

    def __init__(self, per_minute: int = 30, peers: int = 100_000) -> None:
        self._per_minute = per_minute
        self._peers = peers
        self._filled: OrderedDict[str, tuple[float, int]] = OrderedDict()  # (level, at_ms)

    def _level(self, peer: str, now_ms: int) -> float:
        level, at_ms = self._filled.get(peer, (0.0, now_ms))
        return max(0.0, level - max(0, now_ms - at_ms) / 60_000 * self._per_minute)

    def allowed(self, peer: str, now_ms: int) -> bool:
        return not peer or self._level(peer, now_ms) < self._per_minute

    def refused(self, peer: str, now_ms: int) -> None:
        """The peer gave a wrong key or token."""
        if not peer:
            return
        level = min(self._level(peer, now_ms) + 1, 2 * self._per_minute)
        self._filled.pop(peer, None)
        self._filled[peer] = (level, now_ms)
        while len(self._filled) > self._peers:
            self._filled.popitem(last=False)
