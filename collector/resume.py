"""What the server keeps of this device's stream, so that later batches need not repeat it.

How this works: a resumable collector marks its batches `resumable`; the server keeps the first
such batch's site, device, context and strings and acks it with a `resume` token and how many
strings it kept. From then on a batch goes resumed: the token instead of site key, device id,
stream and context, and without its first `strings_from` strings, which are the kept ones (each
batch is built on the kept strings known when it was opened, and records how many it counts on
in `strings_from`). The server only ever appends to a stream's kept strings, and says so in an
ack (`strings_kept` past what was known), so what is known here is always a prefix of what the
server holds. A server that lost the token (restarted, or another node answered) refuses the
batch with FAILED_PRECONDITION: the host calls `forget`, and the batch goes again in full, as
every batch is kept in full and made resumed only when it is sent.

Page loads carry on from each other: the state is saved in the device's storage, and the next
page load's batches name the earlier stream's token together with their own `stream`, counting
on its kept strings (the referring page's path, the product names seen). The server starts the
new stream from the earlier one's, and its first ack gives the new stream a token of its own.
(A device's only sender, stream 0, cannot name a stream of its own, so it carries on only from
its own earlier state.) A state not confirmed for FRESH_MS is not used: the server forgets idle
streams.
"""

from __future__ import annotations

import json
import re
from typing import TypeGuard

from collector.gen.pulsewire.v1 import batch_pb2

__all__ = ["FRESH_MS", "ResumeState"]

FRESH_MS = 20 * 60_000  # the server keeps an idle stream for 30 minutes
_UINT32_MAX = 2**32 - 1
_HEX = re.compile(r"[0-9a-fA-F]+")
_SAFE_INTEGER = 2**53 - 1


class ResumeState:
    """The token of a stream of this device and the strings the server keeps under it."""

    def __init__(self, own_stream: int) -> None:
        self.own_stream = own_stream
        self.token = 0
        self.stream = 0  # the stream the token belongs to: own, or an earlier page load's
        self.kept: list[str] = []
        self.learned_ms = 0  # the time of the batch whose ack last named the token

    def learn(self, token: int, batch: batch_pb2.Batch, kept: int) -> bool:
        """An ack of this page load's `batch` (in full) named `token` and `kept` strings;
        True when what is known changed (and is worth saving for the next page load)."""
        if not token:
            return False
        strings = list(batch.strings)
        if not self.token or self.stream != self.own_stream:
            self.token, self.stream, self.kept = token, self.own_stream, strings[:kept]
        elif token != self.token:
            return False  # a second token for this stream: the first serves as well
        elif kept > len(self.kept) and strings[:len(self.kept)] == self.kept:
            self.kept = strings[:kept]
        elif batch.base_time_ms - self.learned_ms < 60_000:
            return False
        self.learned_ms = max(self.learned_ms, batch.base_time_ms)
        return True

    def forget(self) -> None:
        """The server no longer holds the token: send in full until an ack gives another."""
        self.token, self.stream, self.kept = 0, 0, []

    def expire(self, now_ms: int) -> None:
        """Forget a state that the server has likely forgotten by now (idle too long)."""
        if self.token and now_ms - self.learned_ms > FRESH_MS:
            self.forget()

    def queued_stream(self, wire: batch_pb2.Batch) -> int:
        """The stream of the queued batch that `wire` was just made from (a resumed batch
        leaves out the stream the token stands for)."""
        return wire.stream or (self.stream if wire.resume else 0)

    def wire(self, batch: batch_pb2.Batch, now_ms: int) -> batch_pb2.Batch:
        """The batch as it goes out now: timed by its age, and resumed when the server holds
        what it leaves out (a batch of the token's stream, or of this page load carrying on
        from it, whose counted-on strings are kept)."""
        out = batch_pb2.Batch()
        out.CopyFrom(batch)
        out.age_ms = min(max(0, now_ms - batch.base_time_ms), _UINT32_MAX)
        out.base_time_ms = out.sent_at_ms = 0
        self.expire(now_ms)
        counted = batch.strings_from
        carries_on = batch.stream == self.own_stream != 0  # stream 0 cannot be named
        if (self.token and (batch.stream == self.stream or carries_on)
                and counted <= len(self.kept) and batch.strings[:counted] == self.kept[:counted]):
            out.resume = self.token
            for name in ("site_key", "device_id", "context", "resumable"):
                out.ClearField(name)
            if batch.stream == self.stream:
                out.ClearField("stream")  # else it carries on from the token's stream
            del out.strings[:counted]
        else:
            out.strings_from = 0
        return out

    def to_text(self) -> str:
        return json.dumps({"token": f"{self.token:x}", "stream": self.stream,
                           "at": self.learned_ms, "kept": self.kept}, separators=(",", ":"))

    def load(self, text: str | None) -> None:
        """What an earlier page load saved; anything else is ignored."""
        try:
            saved = json.loads(text or "")
        except ValueError:
            return
        if not isinstance(saved, dict):
            return
        token, stream, at, kept = (saved.get(k) for k in ("token", "stream", "at", "kept"))
        if (not isinstance(token, str) or not _HEX.fullmatch(token) or not _whole(stream)
                or not _whole(at) or not isinstance(kept, list)
                or not all(isinstance(s, str) for s in kept)):
            return
        value = int(token, 16)
        if 0 < value < 2**64 and 0 <= stream < 2**31:
            self.token, self.stream, self.learned_ms, self.kept = value, int(stream), int(at), kept


def _whole(value: object) -> TypeGuard[int | float]:
    """A whole number as JSON gives it (3 or 3.0), within what a double holds exactly."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return float(value).is_integer() and abs(value) <= _SAFE_INTEGER
