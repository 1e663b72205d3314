"""Helpers shared by the route modules: the node of a request, bounded body reads, JSON views."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from careledger.api.errors import code_name
from careledger.core.block import Receipt
from careledger.core.errors import Code, EncodingError, LedgerError
from careledger.node.engine import Engine

HEX32_PATTERN = r"^[0-9a-f]{64}$"


def node_of(request: Request) -> Engine:
    """The engine serving this request (the solo node, or a CometBFT-backed node)."""
    node: Engine = request.app.state.node
    return node


async def read_body(request: Request, limit: int) -> bytes:
    """The raw request body, refused with OVERSIZED once it exceeds ``limit`` bytes.

    A declared ``Content-Length`` above the limit is refused before any of the body is read; a body
    without one (chunked) is read only until it passes the limit.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise LedgerError("Content-Length is not an integer", Code.BAD_REQUEST) from None
        if size > limit:
            raise EncodingError(f"request body is {size} bytes; the limit is {limit}", Code.OVERSIZED)
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise EncodingError(f"request body exceeds the limit of {limit} bytes", Code.OVERSIZED)
        chunks.append(chunk)
    return b"".join(chunks)


def receipt_json(receipt: Receipt) -> dict[str, Any]:
    """A receipt as the API shows it: the hashed fields plus the code's name and the human message."""
    return {"code": receipt.code, "name": code_name(receipt.code), "result": receipt.result,
            "events": list(receipt.events), "index": receipt.index, "message": receipt.message}


def not_found(what: str) -> LedgerError:
    return LedgerError(f"{what} does not exist", Code.NOT_FOUND)
