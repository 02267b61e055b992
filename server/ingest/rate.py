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
    """Per peer (a client's address): at most `per_minute` refused keys or tokens a minute, in
    bursts of as many. A peer past it is refused everything until its budget grows back, so
    guessing a key costs a minute per `per_minute` tries and a right guess is not told apart.
    The `peers` most recently refused are remembered."""

    def __init__(self, per_minute: int = 30, peers: int = 100_000) -> None:
        self._per_minute = per_minute
        self._peers = peers
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def allowed(self, peer: str, now_ms: int) -> bool:
        bucket = self._buckets.get(peer)
        return bucket is None or bucket.available(now_ms) >= 1

    def refused(self, peer: str, now_ms: int) -> None:
        """The peer gave a wrong key or token."""
        if not peer:
            return
        bucket = self._buckets.pop(peer, None) or TokenBucket(self._per_minute / 60,
                                                               self._per_minute)
        bucket.take(1, now_ms)
        self._buckets[peer] = bucket
        while len(self._buckets) > self._peers:
            self._buckets.popitem(last=False)
