"""The app SDK (sdk_js/app/) makes the same batch bytes as the Python collector for one
scripted visit, sent in full and resumed: the Python side runs the script against a scripted
server and records what it sent and saved; the Node side (same_bytes.test.mjs) replays the
server's answers and compares."""

from __future__ import annotations

import base64
import itertools
import json
import sys
from pathlib import Path
from typing import Any

from collector.batching import BatchContext, Batcher, BatchLimits
from collector.events import Identify, PageView
from collector.gen.pulsewire.v1 import batch_pb2
from collector.track import tracked_event
from server.ingest.resume import ResumedStreams, ResumeUnknown

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from harness import SITE_KEY
from node_tests import run_node_test as _node

T0 = 1_767_225_600_000


# ---- one scripted visit, batched by both clients ----------------------------------------------
# Small limits so that every sealing rule fires: the event count, the byte cap (with strings of
# 1 to 4 UTF-8 bytes a character), the 2^32 ms gap, an event too large for any batch, and the
# queue cap dropping the oldest batches while the app is offline.

SCRIPT: dict[str, Any] = {
    "site_key": SITE_KEY,
    "device_id": "d-app-compare",
    "context": {"timezone": "Europe/Berlin", "locale": "de-DE", "viewport_width": 390,
                "viewport_height": 844, "device_class": "mobile", "currency": "USD",
                "collector": "app-js/0.1.0"},
    "limits": {"max_events": 4, "max_age_ms": 5000, "max_bytes": 340, "max_queued_batches": 3},
    "steps": [
        {"at": T0, "do": "page_view", "path": "/product/laptop", "title": "Laptop Pro 14",
         "referrer": "https://www.example.com/"},
        {"at": T0 + 900, "do": "track", "name": "product_view",
         "props": {"color": "slate", "stock": -3, "rating": 4.5, "gift": True, "note": None}},
        {"at": T0 + 2000, "do": "track", "name": "cart_add",
         "props": {"sku": "sku-123", "price": 19.99, "cart_id": "cart-9f2c"}},
        {"at": T0 + 2000, "do": "track", "name": "cart_add",
         "props": {"sku": "sku-7", "qty": 2, "price_minor": 129900, "cart_id": "cart-9f2c"}},
        {"at": T0 + 2500, "do": "track", "name": "cart_remove", "props": {"sku": "sku-7"}},
        {"at": T0 + 2600, "do": "snapshot"},
        {"at": T0 + 3000, "do": "flush"},
        {"at": T0 + 4000, "do": "page_view", "path": "/café/☕/😀", "title": "", "referrer": ""},
        {"at": T0 + 4100, "do": "identify", "user_id": "u-77", "email": "Ada@Example.com",
         "signature": "ab" * 32, "traits": {"plan": "pro"}},
        {"at": T0 + 4200, "do": "track", "name": "form", "props": {"name": "newsletter",
                                                                   "action": "signup"}},
        {"at": T0 + 4300, "do": "track", "name": "media", "props": {"asset": "intro.mp4",
                                                                    "action": "download"}},
        {"at": T0 + 4400, "do": "track", "name": "checkout_start",
         "props": {"cart_id": "cart-9f2c", "value": 42.5}},
        {"at": T0 + 4500, "do": "track", "name": "purchase",
         "props": {"order_id": "o-1", "value": 1500, "currency": "JPY", "cart_id": "cart-9f2c"}},
        {"at": T0 + 4600, "do": "track", "name": "huge", "props": {"blob": "x" * 500}},
        {"at": T0 + 4700, "do": "track", "name": "review",
         "props": {"text": "Très bien, 很好, 👍👍", "stars": 5}},
        {"at": T0 + 4800, "do": "track", "name": "review",
         "props": {"text": "Ünïcödé ünd möre", "stars": 4}},
        {"at": T0 + 4800 + 2**32 + 1, "do": "track", "name": "comeback", "props": {}},
        {"at": T0 + 2**32 + 9000, "do": "snapshot"},
        {"at": T0 + 2**32 + 9000, "do": "flush"},
        {"at": T0 + 2**32 + 9001, "do": "snapshot"},
    ],
}


# The same visit resumed, then what only resumed batches meet: the server restarted (a resumed
# batch refused with FAILED_PRECONDITION, all sent again in full), the server down (the batch
# stays queued), and the app started again as a sender of its own stream, carrying on from the
# saved token and resending what stream 0 left unacked. Steps "server" change what the Python
# side's server does; the Node side replays the answers it gave.
T1 = T0 + 2**32 + 10_000
RESUMED_SCRIPT: dict[str, Any] = {
    **SCRIPT,
    "resumable": True,
    # Room for the kept strings, which a batch built on them counts in full against the cap.
    "limits": {**SCRIPT["limits"], "max_bytes": 400},
    "steps": [
        *SCRIPT["steps"],
        {"at": T1, "do": "page_view", "path": "/café/☕/😀", "title": "Laptop Pro 14",
         "referrer": "https://www.example.com/"},
        {"at": T1 + 50, "do": "track", "name": "cart_add",
         "props": {"sku": "sku-123", "price": 19.99, "cart_id": "cart-9f2c"}},
        {"at": T1 + 100, "do": "flush"},
        {"at": T1 + 100, "do": "snapshot"},
        {"at": T1 + 200, "do": "server", "now": "restarted"},
        {"at": T1 + 300, "do": "track", "name": "cart_add",
         "props": {"sku": "sku-9", "cart_id": "cart-9f2c"}},
        {"at": T1 + 400, "do": "flush"},
        {"at": T1 + 400, "do": "snapshot"},
        {"at": T1 + 500, "do": "track", "name": "bye", "props": {}},
        {"at": T1 + 550, "do": "server", "now": "down"},
        {"at": T1 + 600, "do": "flush"},
        {"at": T1 + 600, "do": "snapshot"},
        {"at": T1 + 650, "do": "server", "now": "up"},
        {"at": T1 + 700, "do": "start", "stream": 31337},
        {"at": T1 + 800, "do": "page_view", "path": "/cart", "title": "Cart",
         "referrer": "/product/laptop"},
        {"at": T1 + 850, "do": "track", "name": "checkout_start",
         "props": {"cart_id": "cart-9f2c", "value": 42.5}},
        {"at": T1 + 900, "do": "flush"},
        {"at": T1 + 900, "do": "snapshot"},
        {"at": T1 + 1000, "do": "track", "name": "purchase",
         "props": {"order_id": "o-2", "value": 42.5, "cart_id": "cart-9f2c"}},
        {"at": T1 + 1100, "do": "flush"},
        {"at": T1 + 1100, "do": "snapshot"},
    ],
}


class _DictStorage:
    def __init__(self) -> None:
        self.items: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        return self.items.get(key)

    def set(self, key: str, value: str) -> None:
        self.items[key] = value


class _CountedStreams(ResumedStreams):
    """server/ingest/resume.py's kept streams, with tokens from a counter (the same in both runs)
    and never idle (the visit spans 2^32 ms)."""

    def __init__(self, next_token: int) -> None:
        super().__init__(idle_ms=2**62)
        self.next_token = next_token

    def _fresh_token(self) -> int:
        self.next_token += 1
        return self.next_token - 1


class _Ingest:
    """Answers a batch as server/ingest/ingestor.py does, its resume token and kept strings too; a
    restart forgets every kept stream, and a server that is down answers UNAVAILABLE."""

    def __init__(self) -> None:
        self.streams = _CountedStreams(0xFEDC_BA98_7654_3210)  # above 2^63: bigint in JS
        self.up = True

    def restart(self) -> None:
        self.streams = _CountedStreams(self.streams.next_token)

    def answer(self, batch: batch_pb2.Batch, now_ms: int) -> batch_pb2.Ack:
        """The ack; raises ResumeUnknown (FAILED_PRECONDITION) as the server does."""
        full, earlier = self.streams.read(batch, now_ms)
        ack = batch_pb2.Ack(seq=batch.seq, accepted=len(batch.events),
                            device_id=full.device_id, stream=full.stream)
        ack.resume, ack.strings_kept = self.streams.answer(batch, full, earlier, now_ms)
        return ack


def _deliver(batcher: Batcher, batches: list[batch_pb2.Batch], at: int, ingest: _Ingest,
             out: dict[str, Any]) -> None:
    """Send as the app client does: one at a time, oldest first; UNAVAILABLE stops the sends;
    a resumed batch the server does not hold has the token forgotten and every unacked batch
    sent again in full at once."""
    i = 0
    while i < len(batches):
        batch = batches[i]
        out["batches"].append(base64.b64encode(batch.SerializeToString()).decode())
        if not ingest.up:
            out["answers"].append({"code": 14, "message": "connection refused"})
            return
        try:
            ack = ingest.answer(batch, at)
        except ResumeUnknown as err:
            out["answers"].append({"code": 9, "message": str(err)})
            assert batch.resume and batcher.resume is not None
            batcher.resume.forget()
            batches, i = batcher.resend(at), 0
            continue
        out["answers"].append({"ack": {
            "seq": ack.seq, "stream": ack.stream, "device_id": ack.device_id,
            "accepted": ack.accepted, "resume": str(ack.resume),
            "strings_kept": ack.strings_kept}})
        batcher.ack(ack.seq, ack.stream, resume=ack.resume, strings_kept=ack.strings_kept)
        i += 1


def _python_run(script: dict[str, Any]) -> dict[str, Any]:
    """What the Python collector's batcher makes of the script, steps as the app client takes
    them: a page view sets the path, identify is an event of its own, a flush sends what is
    unacked; "start" is the app started again (a new batcher on the same storage)."""
    storage = _DictStorage()
    context = BatchContext(**script["context"])
    ingest = _Ingest()

    def started(stream: int) -> Batcher:
        return Batcher(script["site_key"], script["device_id"], stream=stream, context=context,
                       storage=storage, limits=BatchLimits(**script["limits"]),
                       resumable=script.get("resumable", False))

    batcher = started(0)
    runs = [batcher]
    path = ""
    out: dict[str, Any] = {"batches": [], "answers": [], "pending": [], "snapshots": []}
    for step in script["steps"]:
        at, action = step["at"], step["do"]
        if action == "page_view":
            path = step["path"]
            batcher.add(PageView(at, path, step["title"], step["referrer"]), path)
        elif action == "track":
            batcher.add(tracked_event(step["name"], step["props"], at, context.currency), path)
        elif action == "identify":
            batcher.add(Identify(at, step["user_id"], step["email"], step["signature"],
                                 tuple(step["traits"].items())), path)
        elif action == "flush":
            _deliver(batcher, batcher.flush(at), at, ingest, out)
            out["pending"].append(len(batcher.queue))
        elif action == "snapshot":
            out["snapshots"].append(dict(sorted(storage.items.items())))
        elif action == "server":
            if step["now"] == "restarted":
                ingest.restart()
            ingest.up = step["now"] != "down"
        elif action == "start":
            batcher, path = started(step["stream"]), ""
            runs.append(batcher)
    out["oversize_events"] = sum(b.oversize_events for b in runs)
    out["dropped_batches"] = sum(b.queue.dropped_batches for b in runs)
    return out


def _compare_with_node(script: dict[str, Any], expected: dict[str, Any], tmp_path: Path) -> None:
    """The Node side replays the answers the Python side's server gave, in order."""
    (tmp_path / "script.json").write_text(json.dumps({**script, "answers": expected["answers"]}))
    (tmp_path / "python.json").write_text(json.dumps(expected))
    _node("same_bytes.test.mjs", {"PWTEST_COMPARE_DIR": str(tmp_path)})


def test_the_app_sdk_makes_the_same_bytes_as_the_python_collector(tmp_path: Path) -> None:
    expected = _python_run(SCRIPT)
    # The script exercises what it means to: both caps, a drop, an oversize event.
    assert expected["oversize_events"] == 1 and expected["dropped_batches"] == 1
    assert len(expected["batches"]) == 5 and expected["pending"] == [0, 0]
    _compare_with_node(SCRIPT, expected, tmp_path)


def test_resumed_batches_are_the_same_bytes_as_the_python_collectors(tmp_path: Path) -> None:
    expected = _python_run(RESUMED_SCRIPT)
    sent = [batch_pb2.Batch.FromString(base64.b64decode(b)) for b in expected["batches"]]
    codes = [a.get("code", 0) for a in expected["answers"]]
    # The script exercises what it means to: batches in full then resumed, kept strings
    # growing, a token the server lost, the server down, a carry-on under a stream of its own
    # and a stream-0 batch left unacked resent by it.
    assert sent[0].resumable and not sent[0].resume and sent[0].site_key
    resumed = [b for b in sent if b.resume]
    assert len(resumed) >= 5 and all(not b.site_key and not b.device_id for b in resumed)
    assert sorted(set(codes)) == [0, 9, 14] and codes.count(9) == 1
    refused = codes.index(9)
    assert sent[refused].resume and not sent[refused + 1].resume
    assert sent[refused + 1].seq == sent[refused].seq and sent[refused + 1].site_key
    assert [(b.stream, bool(b.resume)) for b in sent[-3:]] == [(0, True), (31337, True),
                                                               (0, True)]
    assert sent[-2].resume != sent[-1].resume  # the new stream's own token
    assert [a["ack"]["stream"] for a in expected["answers"][-3:]] == [0, 31337, 31337]
    kept = [json.loads(s["pulsewire.d-app-compare.resume"])
            for s in expected["snapshots"] if "pulsewire.d-app-compare.resume" in s]
    assert [k["stream"] for k in kept][-3:] == [0, 31337, 31337]
    assert len({k["token"] for k in kept}) >= 3
    assert any(a["token"] == b["token"] and len(a["kept"]) < len(b["kept"])
               for a, b in itertools.pairwise(kept))  # kept strings grew under a token
    assert "/café/☕/😀" in kept[-1]["kept"]  # saved as \u escapes, as json.dumps writes
    assert expected["oversize_events"] >= 1 and expected["dropped_batches"] >= 1
    _compare_with_node(RESUMED_SCRIPT, expected, tmp_path)
