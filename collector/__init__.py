"""The pulsewire collector: the same pure-Python package in the browser (Pyodide), in an edge
worker (Pyodide) and in CPython. It turns what a visitor does into compact protobuf batches.

`collector.gen` holds the wire contract's generated messages (`./scripts/gen_protos`).
"""

from collector.batching import COLLECTOR_NAME, BatchContext, Batcher, BatchLimits, decode_batch
from collector.events import (
    CartAdd,
    CartRemove,
    CheckoutStart,
    Custom,
    Dwell,
    Event,
    Form,
    Hover,
    Identify,
    Media,
    PageView,
    Purchase,
    Scroll,
    StringTable,
    decode_event,
    encode_event,
)
from collector.identity import sign_email, sign_identity, vouched
from collector.retry_queue import RetryQueue, Storage
from collector.session import Collector, SignalSettings
from collector.track import InvalidTrack, minor_units, tracked_event

__all__ = [
    "COLLECTOR_NAME",
    "BatchContext",
    "BatchLimits",
    "Batcher",
    "CartAdd",
    "CartRemove",
    "CheckoutStart",
    "Collector",
    "Custom",
    "Dwell",
    "Event",
    "Form",
    "Hover",
    "Identify",
    "InvalidTrack",
    "Media",
    "PageView",
    "Purchase",
    "RetryQueue",
    "Scroll",
    "SignalSettings",
    "Storage",
    "StringTable",
    "decode_batch",
    "decode_event",
    "encode_event",
    "minor_units",
    "sign_email",
    "sign_identity",
    "tracked_event",
    "vouched",
]
