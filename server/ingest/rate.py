"""A token bucket per site: `rate_per_s` events a second on average, bursts up to `burst`."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TokenBucket"]


@dataclass(slots=True)
class TokenBucket:
    rate_per_s: float
    burst: float
    tokens: float = -1.0
    updated_ms: int = 0

    def take(self, amount: int, now_ms: int) -> bool:
        """Take `amount` tokens if there are enough; False (taking none) if not."""
        if self.tokens < 0:
            self.tokens, self.updated_ms = self.burst, now_ms
        elapsed_s = max(0, now_ms - self.updated_ms) / 1000
        self.tokens = min(self.burst, self.tokens + elapsed_s * self.rate_per_s)
        self.updated_ms = now_ms
        if amount > self.tokens:
            return False
        self.tokens -= amount
        return True
