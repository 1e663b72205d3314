"""A signature-checking worker process: ``python -m careledger.node.sigworker SUITE CHAIN_ID``.

Protocol on stdin/stdout, all integers big-endian u32:

* request: ``count`` then ``count`` items of ``pubkey(32) || sig(64) || len(body) || body``;
* reply: ``count`` then ``count`` bytes, 1 for a valid signature (domain ``tx``), 0 otherwise.

It reads until stdin closes. It sees only public keys, signatures and signed bytes.
"""

from __future__ import annotations

import struct
import sys
from typing import IO, BinaryIO

from careledger.core.crypto import SUITES
from careledger.core.errors import AuthError

U32 = struct.Struct(">I")


def read_exact(stream: IO[bytes], n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = stream.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def encode_request(items: list[tuple[bytes, bytes, bytes]]) -> bytes:
    parts = [U32.pack(len(items))]
    for pub, sig, body in items:
        if len(pub) != 32 or len(sig) != 64:  # framing depends on it; decode_tx guarantees it
            raise ValueError("public key must be 32 bytes and signature 64")
        parts += [pub, sig, U32.pack(len(body)), body]
    return b"".join(parts)


def serve(suite_name: str, chain_id: str, inp: BinaryIO, out: BinaryIO) -> None:
    suite = SUITES[suite_name]
    while True:
        head = read_exact(inp, 4)
        if head is None:
            return
        (count,) = U32.unpack(head)
        # Read the whole batch before verifying any of it, so the sender's write never waits on us.
        items = []
        for _ in range(count):
            fixed = read_exact(inp, 100)
            if fixed is None:
                return
            size = U32.unpack(fixed[96:100])[0]
            body = read_exact(inp, size) if size else b""
            if body is None:
                return
            items.append((fixed[:32], fixed[32:96], body))
        verdicts = bytearray()
        for pub, sig, body in items:
            try:
                suite.verify(pub, "tx", chain_id, body, sig)
                verdicts.append(1)
            except AuthError:
                verdicts.append(0)
        out.write(U32.pack(count) + bytes(verdicts))
        out.flush()


def main() -> None:
    serve(sys.argv[1], sys.argv[2], sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    main()
