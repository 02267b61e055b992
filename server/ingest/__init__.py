"""The transport-neutral ingest core: accepting a batch, decoding it, resumed streams, the rate
limit and identity routing. The gRPC servicers (server/rpc/), the HTTP listener (server/web/)
and the distributed mode (server/cluster/) build on it."""

from server.ingest.batches import DecodedBatch, decode_batch, sign_email
from server.ingest.ingestor import Delivery, Ingestor, ShardDelivery, ack_of
from server.ingest.resume import ResumedStreams, ResumeUnknown
from server.ingest.routing import Route, link_kind, route

__all__ = [
    "DecodedBatch",
    "Delivery",
    "Ingestor",
    "ResumeUnknown",
    "ResumedStreams",
    "Route",
    "ShardDelivery",
    "ack_of",
    "decode_batch",
    "link_kind",
    "route",
    "sign_email",
]
