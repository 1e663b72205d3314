"""Node status, blocks and account nonces."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse

from careledger.api import schemas
from careledger.api.common import HEX32_PATTERN, node_of, not_found
from careledger.api.errors import LedgerRoute, code_name
from careledger.core.errors import NotFound
from careledger.node.engine import Engine

router = APIRouter(prefix="/v1", route_class=LedgerRoute)


@router.get("/status", tags=["node"], summary="Node status", response_model=None,
            responses={200: {"model": schemas.StatusView, "description": "Chain, head and mempool"}})
def get_status(request: Request) -> JSONResponse:
    """The chain id, engine, committed height with its app and block hashes, the node's key, the
    number of pending transactions, the genesis hash and the crypto suite."""
    return JSONResponse(node_of(request).status())


def _block(node: Engine, height: int) -> dict[str, Any]:
    try:
        header, block_hash, signature = node.store.block(height)
    except NotFound:
        raise not_found(f"block {height}") from None
    txs = node.store.block_txs(height)
    return {"height": height, "hash": block_hash.hex(), "header": header.to_json(), "signature": signature.hex(),
            "txs": [t.hash.hex() for t in txs],
            "receipts": [{"tx": t.hash.hex(), "index": t.index, "code": t.receipt.code,
                          "name": code_name(t.receipt.code)} for t in txs]}


BLOCK_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": schemas.BlockView, "description": "Header, hash, signature, transactions and receipt codes"},
    **schemas.errors(400, 404),
}


@router.get("/blocks/latest", tags=["blocks"], summary="The latest committed block", response_model=None,
            responses=BLOCK_RESPONSES)
def get_latest_block(request: Request) -> JSONResponse:
    """The block at the committed head; 404 NOT_FOUND while no block has been committed."""
    node = node_of(request)
    height = node.head.height
    if height == 0:
        raise not_found("a committed block (the chain is at genesis)")
    return JSONResponse(_block(node, height))


@router.get("/blocks/{height}", tags=["blocks"], summary="A block by height", response_model=None,
            responses=BLOCK_RESPONSES)
def get_block(request: Request, height: Annotated[int, Path(ge=1, le=2**53 - 1, description="Block height")],
              ) -> JSONResponse:
    """The block at `height`: header, block hash, proposer signature, transaction hashes and receipt codes."""
    return JSONResponse(_block(node_of(request), height))


@router.get("/accounts/{pubkey}/nonce", tags=["accounts"], summary="An account's nonces", response_model=None,
            responses={200: {"model": schemas.NonceView, "description": "Committed and next nonce"},
                       **schemas.errors(400)})
def get_nonce(request: Request,
              pubkey: Annotated[str, Path(pattern=HEX32_PATTERN, description="Ed25519 public key, hex")],
              ) -> JSONResponse:
    """The nonce of the account's last committed transaction and the one its next transaction must
    carry, counting the transactions it has waiting in this node's mempool."""
    committed, next_nonce = node_of(request).nonces(pubkey)
    return JSONResponse({"account": pubkey, "committed": committed, "pending": next_nonce - committed - 1,
                         "next": next_nonce})
