"""Framing of the ABCI socket protocol: each message is prefixed with its length as an unsigned varint.

CometBFT v0.38 writes and reads ``Request``/``Response`` messages with ``protoio``'s delimited
writer: ``uvarint(len(message)) || message``. The varint here is only the frame's length prefix;
the message bodies are always encoded and parsed by the ``protobuf`` runtime (:mod:`abci_pb2`).

A frame whose length prefix is malformed (more than 10 bytes, or over 64 bits) or announces more
than ``max_bytes`` raises :class:`FrameError`; the server then drops the connection.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

MAX_VARINT_BYTES = 10
DEFAULT_MAX_MESSAGE_BYTES = 128 * 1024 * 1024  # a FinalizeBlock carries a whole block (CometBFT's max is 100 MiB)


class Message(Protocol):
    """Any protobuf message."""

    def SerializeToString(self) -> bytes: ...  # noqa: N802 (protobuf's name)


class FrameError(Exception):
    """The byte stream is not a sequence of well-formed length-delimited frames."""


class IncompleteFrame(Exception):
    """More bytes are needed to complete the frame (only raised by :func:`decode_uvarint`)."""


def encode_uvarint(value: int) -> bytes:
    """The unsigned LEB128 varint of ``value`` (Go's ``binary.PutUvarint``)."""
    if value < 0 or value >= 1 << 64:
        raise ValueError("uvarint must be in [0, 2**64)")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_uvarint(buf: bytes | bytearray | memoryview, pos: int = 0) -> tuple[int, int]:
    """Decode the varint at ``buf[pos:]``; returns ``(value, next position)``.

    Raises IncompleteFrame when ``buf`` ends inside the varint, FrameError when it is too long.
    """
    value = 0
    for i in range(MAX_VARINT_BYTES):
        if pos + i >= len(buf):
            raise IncompleteFrame
        byte = buf[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if byte < 0x80:
            if value >= 1 << 64:
                raise FrameError("length prefix overflows 64 bits")
            return value, pos + i + 1
    raise FrameError("length prefix is longer than 10 bytes")


def frame(message: Message) -> bytes:
    """``message`` serialised and prefixed with its length."""
    body = bytes(message.SerializeToString())
    return encode_uvarint(len(body)) + body


class FrameBuffer:
    """Bytes received so far on a connection, cut into complete frame bodies as they arrive.

    The server reads whatever the socket holds (many small CheckTx frames at a time under load)
    and takes every complete frame in one go; a frame split across reads waits for its tail. A
    malformed or oversized prefix sets :attr:`error` (the frames before it are still returned, so
    they can be answered before the connection is dropped); nothing is cut after it.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.error: FrameError | None = None
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data``; return the bodies of the frames now complete."""
        if self.error is not None:
            return []
        buf = self._buf
        buf += data
        bodies: list[bytes] = []
        pos, end = 0, len(buf)
        while pos < end:
            try:
                length, start = decode_uvarint(buf, pos)
            except IncompleteFrame:
                break
            except FrameError as exc:
                self.error = exc
                break
            if length > self.max_bytes:
                self.error = FrameError(f"message of {length} bytes exceeds the limit of {self.max_bytes}")
                break
            if start + length > end:
                break
            bodies.append(bytes(buf[start:start + length]))
            pos = start + length
        if pos:
            del buf[:pos]
        return bodies

    @property
    def partial(self) -> bytes:
        """The bytes of an incomplete frame (empty between frames)."""
        return bytes(self._buf)


async def read_frame(reader: asyncio.StreamReader, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> bytes | None:
    """Read one frame body; ``None`` on a clean end of stream between frames.

    Raises FrameError for a malformed or oversized prefix and ``asyncio.IncompleteReadError`` when
    the stream ends inside a frame.
    """
    prefix = bytearray()
    while True:
        byte = await reader.read(1)
        if not byte:
            if prefix:
                raise asyncio.IncompleteReadError(bytes(prefix), None)
            return None
        prefix += byte
        if byte[0] < 0x80:
            break
        if len(prefix) >= MAX_VARINT_BYTES:
            raise FrameError("length prefix is longer than 10 bytes")
    length, _ = decode_uvarint(prefix)
    if length > max_bytes:
        raise FrameError(f"message of {length} bytes exceeds the limit of {max_bytes}")
    return await reader.readexactly(length) if length else b""
