"""A CometBFT-backed node for the HTTP API, and the process that runs one consortium node.

:class:`CometbftEngine` implements :class:`careledger.node.engine.Engine` over a :class:`CareLedgerApp`
living in the same process:

* submission is CometBFT's RPC ``broadcast_tx_sync``: the answer is CheckTx's (our own admission
  checks, with their stable codes), so ``admitted`` resolves as soon as CometBFT answers; CometBFT
  then gossips the transaction to the other validators;
* ``committed`` resolves when this node's app commits the block holding the transaction (receipt),
  or when CometBFT's mempool re-check evicts it, or when a decided block holds it but it was invalid
  there (the LedgerError that keeps it out);
* queries read the local store, as under the solo engine.

The process that serves one consortium node (ABCI server and HTTP API over one app and one store)
is :func:`careledger.api.server.run_cometbft_node`.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
from concurrent.futures import Future
from typing import Any

import httpx

from careledger.abci.app import CareLedgerApp
from careledger.chain.executor import Chain, committed_nonce
from careledger.core.block import Receipt
from careledger.core.errors import Code, InvalidTx, LedgerError
from careledger.node.engine import CommitListener, Submission
from careledger.node.store import Head, Store

log = logging.getLogger("careledger.abci.engine")

RPC_ERRORS = {  # CometBFT's JSON-RPC refusals of broadcast_tx_*, by a fragment of their text
    "tx already exists in cache": Code.DUPLICATE_TX,
    "mempool is full": Code.MEMPOOL_FULL,
    "tx too large": Code.OVERSIZED,
}


def _future() -> Future[Any]:
    fut: Future[Any] = Future()
    fut.set_running_or_notify_cancel()  # nobody may cancel it under us
    return fut


def code_of(value: int) -> Code:
    try:
        return Code(value)
    except ValueError:
        return Code.INTERNAL_ERROR


class CometbftEngine:
    """One consortium node as the API sees it: the local app and store, CometBFT's RPC for submission."""

    def __init__(self, app: CareLedgerApp, rpc_url: str, node_key: str = "", timeout: float = 30.0) -> None:
        if app.store is None or app.chain is None:
            raise LedgerError("the ledger has no genesis yet", Code.NODE_UNAVAILABLE)
        self.app = app
        self.node_key = node_key
        self.rpc_url = rpc_url
        self._http = httpx.Client(base_url=rpc_url, timeout=timeout)
        self._lock = threading.Lock()
        self._waiters: dict[bytes, list[Future[object]]] = {}
        app.commit_listeners.append(self._on_commit)
        app.evict_listeners.append(self._on_evict)

    def close(self) -> None:
        self._http.close()

    # -- Engine ---------------------------------------------------------------------------------------
    @property
    def chain(self) -> Chain:
        assert self.app.chain is not None
        return self.app.chain

    @property
    def store(self) -> Store:
        assert self.app.store is not None
        return self.app.store

    @property
    def head(self) -> Head:
        return self.app.head

    def rpc(self, method: str, **params: Any) -> Any:
        """One JSON-RPC call to this node's CometBFT; raises LedgerError (NODE_UNAVAILABLE or the mapped code)."""
        try:
            res = self._http.post("/", json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
            doc = res.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise LedgerError(f"CometBFT's RPC at {self.rpc_url} does not answer: {type(exc).__name__}",
                              Code.NODE_UNAVAILABLE) from exc
        if "error" in doc:
            text = f"{doc['error'].get('message', '')} {doc['error'].get('data', '')}".strip()
            code = next((c for fragment, c in RPC_ERRORS.items() if fragment in text), Code.NODE_UNAVAILABLE)
            raise LedgerError(f"CometBFT refused {method}: {text[:200]}", code)
        return doc["result"]

    def submit_async(self, raw: bytes) -> Submission:
        tx_hash = hashlib.sha256(raw).digest()
        admitted: Future[None] = _future()
        committed: Future[object] = _future()
        with self._lock:  # listen before broadcasting: the commit can come before the RPC answer
            self._waiters.setdefault(tx_hash, []).append(committed)
        try:
            res = self.rpc("broadcast_tx_sync", tx=base64.b64encode(raw).decode())
        except LedgerError:
            self._forget(tx_hash, committed)
            raise
        code = int(res.get("code", 0))
        if code:
            self._forget(tx_hash, committed)
            admitted.set_exception(LedgerError(str(res.get("log", "")) or "refused by CheckTx", code_of(code)))
        else:
            admitted.set_result(None)
        return Submission(tx_hash, admitted, committed)

    def _forget(self, tx_hash: bytes, fut: Future[object]) -> None:
        with self._lock:
            waiting = self._waiters.get(tx_hash, [])
            if fut in waiting:
                waiting.remove(fut)
            if not waiting:
                self._waiters.pop(tx_hash, None)

    def _settle(self, tx_hash: bytes, outcome: object) -> None:
        with self._lock:
            waiting = self._waiters.pop(tx_hash, [])
        for fut in waiting:
            if not fut.done():
                fut.set_result(outcome)

    def _on_commit(self, height: int, committed: list[tuple[bytes, Receipt]],
                   invalid: list[tuple[bytes, InvalidTx]]) -> None:
        if not self._waiters:
            return
        for tx_hash, receipt in committed:
            self._settle(tx_hash, receipt)
        for tx_hash, error in invalid:
            self._settle(tx_hash, error)

    def _on_evict(self, tx_hash: bytes, error: LedgerError) -> None:
        if tx_hash in self._waiters:
            self._settle(tx_hash, error)

    def on_commit(self, listener: CommitListener) -> None:
        """Relay the app's commits that made a ledger block (a CometBFT block without a valid
        transaction adds none) to ``listener(height)``."""
        last = [self.app.head.height]

        def relay(height: int, committed: list[tuple[bytes, Receipt]], invalid: list[tuple[bytes, InvalidTx]]) -> None:
            if height > last[0]:
                last[0] = height
                listener(height)

        self.app.commit_listeners.append(relay)

    def status(self) -> dict[str, Any]:
        app, head = self.app, self.app.head
        return {
            "chain_id": self.chain.chain_id, "engine": "cometbft", "height": head.height,
            "cometbft_height": app.cometbft_height, "app_hash": head.app_hash.hex(),
            "block_hash": head.block_hash.hex(), "latest_block_time_ms": app.head_time_ms,
            "node_key": self.node_key, "mempool": len(app.mempool_txs),
            "genesis_hash": self.chain.genesis.hash.hex(), "crypto_suite": self.chain.genesis.crypto_suite,
            "health": self.health(),
        }

    def health(self) -> dict[str, Any]:
        """Ready while this node's CometBFT answers its RPC and is not catching up (one RPC, 2 s at most)."""
        halt: dict[str, Any] | None = None
        try:
            doc = self._http.post("/", json={"jsonrpc": "2.0", "id": 1, "method": "status", "params": {}},
                                  timeout=2.0).json()
            catching_up = bool(doc["result"]["sync_info"]["catching_up"])
            engine = "catching_up" if catching_up else "producing"
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            engine = "halted"
            halt = {"action": "retry", "height": self.app.head.height, "kind": "cometbft_unreachable",
                    "reason": f"CometBFT's RPC at {self.rpc_url} does not answer ({type(exc).__name__})"}
        return {"ready": engine == "producing", "engine": engine, "height": self.app.head.height,
                "cometbft_height": self.app.cometbft_height, "halt": halt}

    def is_pending(self, tx_hash: bytes) -> bool:
        return self.app.is_pending(tx_hash)

    def nonces(self, pubkey: str) -> tuple[int, int]:
        committed = committed_nonce(self.store.view(), pubkey)
        queued = self.app.next_nonce(pubkey)
        return committed, max(queued, committed + 1) if queued is not None else committed + 1
