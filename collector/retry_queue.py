"""The unacked batches of one device and its batch counter, kept across reloads.

How this works: every sealed batch takes the next `seq` and waits here until the server acks it;
`pending()` is what to (re)send. A queue belongs to one sender of the device: stream 0, the
device's only sender (an app, a backend), numbers its batches from 1 with a counter kept in
storage; a page load has a random stream of its own and numbers from 1 in memory, so two tabs
never hand out the same (stream, seq). Batches a closed page left unacked are read back from
storage by the next page load of the device and resent under their own stream and seq. The queue
holds at most `cap` batches: on overflow the oldest is dropped and counted, so a visitor who is
offline for a week cannot fill the browser's storage. Storage is a two-method protocol (`get`,
`set`) that localStorage satisfies; the queue is saved as base64 of each batch's bytes, one a
line, newest kept first when the saved text would pass `max_saved_chars`. Storage may be absent,
refuse reads, or be full (`set` raises): the queue then keeps working in memory and counts the
failure. Two tabs save the same key, the later write winning (localStorage has no compare-and-
set): a batch the other tab still holds in memory may then miss the saved copy.
"""

from __future__ import annotations

import base64
import binascii
from collections import OrderedDict
from typing import Protocol

from google.protobuf.message import DecodeError

from collector.gen.pulsewire.v1 import batch_pb2

MAX_BATCHES = 50
MAX_SAVED_CHARS = 1_000_000  # localStorage quotas are ~5 M UTF-16 units per origin


class Storage(Protocol):
    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str) -> None: ...


class RetryQueue:
    def __init__(
        self,
        device_id: str,
        storage: Storage | None = None,
        *,
        stream: int = 0,
        cap: int = MAX_BATCHES,
        max_saved_chars: int = MAX_SAVED_CHARS,
    ) -> None:
        self.cap = cap
        self.stream = stream
        self.dropped_batches = 0
        self.storage_failures = 0
        self._storage = storage
        self._max_saved_chars = max_saved_chars
        self._seq_key = f"pulsewire.{device_id}.seq"
        self._queue_key = f"pulsewire.{device_id}.queue"
        self._batches: OrderedDict[tuple[int, int], batch_pb2.Batch] = OrderedDict()
        self._last_seq = 0
        self._load()

    @property
    def last_seq(self) -> int:
        return self._last_seq

    def next_seq(self) -> int:
        """A fresh seq; stream 0 saves it before it is used so a reload never reuses it."""
        if self.stream:
            self._last_seq += 1
            return self._last_seq
        self._last_seq = max(self._last_seq, self._stored_seq()) + 1
        self._save(self._seq_key, str(self._last_seq))
        return self._last_seq

    def skip_to(self, seq: int) -> None:
        """Hand out no seq below `seq` from now on."""
        self._last_seq = max(self._last_seq, seq - 1)

    def push(self, batch: batch_pb2.Batch) -> None:
        self._batches[(batch.stream, batch.seq)] = batch
        while len(self._batches) > self.cap:
            self._batches.popitem(last=False)
            self.dropped_batches += 1
        self._save_queue()

    def ack(self, seq: int, stream: int | None = None) -> bool:
        """Forget an acked batch (of this queue's stream unless `stream` says another)."""
        key = (self.stream if stream is None else stream, seq)
        if self._batches.pop(key, None) is None:
            return False
        self._save_queue()
        return True

    def get(self, seq: int) -> batch_pb2.Batch | None:
        return self._batches.get((self.stream, seq))

    def pending(self) -> list[batch_pb2.Batch]:
        """The unacked batches, oldest first (the queue's own objects: do not modify)."""
        return list(self._batches.values())

    def __len__(self) -> int:
        return len(self._batches)

    def _load(self) -> None:
        self._last_seq = 0 if self.stream else self._stored_seq()
        text = self._read(self._queue_key) or ""
        for line in text.split("\n"):
            if not line:
                continue
            try:
                batch = batch_pb2.Batch.FromString(base64.b64decode(line, validate=True))
            except (binascii.Error, DecodeError, ValueError):
                self.storage_failures += 1
                continue
            self._batches[(batch.stream, batch.seq)] = batch
            if batch.stream == self.stream:
                self._last_seq = max(self._last_seq, batch.seq)
        while len(self._batches) > self.cap:
            self._batches.popitem(last=False)
            self.dropped_batches += 1

    def _stored_seq(self) -> int:
        text = self._read(self._seq_key)
        try:
            return int(text) if text else 0
        except ValueError:
            self.storage_failures += 1
            return 0

    def _save_queue(self) -> None:
        if self._storage is None:
            return
        lines: list[str] = []
        used = 0
        for batch in reversed(self._batches.values()):
            line = base64.b64encode(batch.SerializeToString()).decode("ascii")
            used += len(line) + 1
            if used > self._max_saved_chars:
                break
            lines.append(line)
        self._save(self._queue_key, "\n".join(reversed(lines)))

    def _read(self, key: str) -> str | None:
        if self._storage is None:
            return None
        try:
            return self._storage.get(key)
        except Exception:  # a browser may refuse storage altogether (SecurityError)
            self.storage_failures += 1
            return None

    def _save(self, key: str, value: str) -> None:
        if self._storage is None:
            return
        try:
            self._storage.set(key, value)
        except Exception:  # quota exceeded, storage disabled: keep going in memory
            self.storage_failures += 1
