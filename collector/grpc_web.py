"""gRPC-Web framing, the one codec for both ends: the browser host frames its batches and reads
the server's answer; the server reads batches and beacons and frames its acks.

A frame is 1 flag byte (0x80: trailers, 0x01: compressed), a 4-byte big-endian length and the
message.
"""

from __future__ import annotations

import struct

__all__ = ["COMPRESSED_FLAG", "TRAILER_FLAG", "InvalidFrame", "frame", "split_frames"]

TRAILER_FLAG = 0x80
COMPRESSED_FLAG = 0x01
_HEADER = struct.Struct(">BI")


class InvalidFrame(ValueError):
    """A body that is not a whole run of frames; the message says at which byte."""


def frame(message: bytes, flags: int = 0) -> bytes:
    return _HEADER.pack(flags, len(message)) + message


def split_frames(body: bytes) -> list[tuple[int, bytes]]:
    """Every (flags, message) of `body`, in order."""
    out: list[tuple[int, bytes]] = []
    at = 0
    while at < len(body):
        if len(body) - at < _HEADER.size:
            raise InvalidFrame(f"frame at byte {at}: truncated header")
        flags, length = _HEADER.unpack_from(body, at)
        start = at + _HEADER.size
        if len(body) - start < length:
            raise InvalidFrame(f"frame at byte {at}: {length} bytes announced, "
                               f"{len(body) - start} present")
        out.append((flags, body[start:start + length]))
        at = start + length
    return out
