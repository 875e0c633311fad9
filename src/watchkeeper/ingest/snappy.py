"""Snappy block-format bodies (what remote_write and Loki push send), with a size limit checked
before anything is decompressed."""

from __future__ import annotations

import cramjam


class SnappyError(ValueError):
    pass


def uncompressed_length(data: bytes) -> int:
    """The length a snappy block declares in its varint preamble."""
    result = shift = 0
    for position, byte in enumerate(data[:10]):
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            if position >= 5 or result >= 1 << 32:
                break
            return result
        shift += 7
    raise SnappyError("snappy: corrupt input: bad length preamble")


def decompress(data: bytes, max_bytes: int, limit_name: str) -> bytes:
    if not data:
        raise SnappyError("snappy: corrupt input: empty body")
    declared = uncompressed_length(data)
    if declared > max_bytes:
        raise SnappyError(
            f"limit {limit_name} ({max_bytes}) exceeded: body decompresses to {declared} bytes"
        )
    try:
        return bytes(cramjam.snappy.decompress_raw(data))
    except cramjam.DecompressionError as err:
        raise SnappyError(f"snappy: {err}") from None
