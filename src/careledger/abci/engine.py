"""A CometBFT-backed node for the HTTP API, and the process that runs one consortium node.

:class:`CometbftEngine` implements :class:`careledger.node.engine.Engine` over a :class:`CareLedgerApp`
living in the same process:

* submission is CometBFT's RPC ``broadcast_tx_sync``: the answer is CheckTx's (our own admission
  checks, with their stable codes), so ``admitted`` resolves as soon as CometBFT answers; CometBFT
  then gossips the transaction to the other validators;
* ``committed`` resolves when this node's app commits the block holding the transaction (receipt),
  or when CometBFT's mempool re-check evicts it, or when a decided block holds it but it was invalid
  there (the LedgerError that keeps it out);
* queries read the local store, as under the solo engine;
* a transaction whose nonce is ahead of its signer's next (CheckTx answers ``NONCE_OUT_OF_ORDER``
  after every check before the nonce, the signature among them) waits in this engine's
  :class:`~careledger.node.mempool.NonceQueue`, under the same rules as the solo engine's
  (docs/protocol.md section 5). A releaser thread broadcasts a signer's queued transactions in
  nonce order once the app's next nonce for the signer reaches them (after each commit, each
  broadcast, and every :data:`RELEASE_EVERY_S`), and drops those that waited too long. Only the
  node that received them holds them: CometBFT gossips them once they are broadcast.

The process that serves one consortium node (ABCI server and HTTP API over one app and one store)
is :func:`careledger.api.server.run_cometbft_node`.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import httpx

from careledger.abci.app import CareLedgerApp
from careledger.chain.executor import Chain, check_admission, check_stateless, committed_nonce
from careledger.core.block import BlockEnv, Receipt
from careledger.core.errors import Code, InvalidTx, LedgerError
from careledger.node.engine import CommitListener, Submission
from careledger.node.mempool import QUEUE_TTL_S, QUEUE_WINDOW, NonceQueue, Queued, gap_expired
from careledger.node.store import Head, Store

log = logging.getLogger("careledger.abci.engine")

RPC_ERRORS = {  # CometBFT's JSON-RPC refusals of broadcast_tx_*, by a fragment of their text
    "tx already exists in cache": Code.DUPLICATE_TX,
    "mempool is full": Code.MEMPOOL_FULL,
    "tx too large": Code.OVERSIZED,
}


RELEASE_EVERY_S = 0.2
"""The releaser looks at the queue at least this often (for expiry and gaps filled through other nodes)."""


@dataclass(frozen=True)
class Waiting:
    """A queued transaction: its wire bytes and the future of its outcome."""

    raw: bytes
    committed: Future[object]


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

    def __init__(self, app: CareLedgerApp, rpc_url: str, node_key: str = "", timeout: float = 30.0,
                 queue_window: int = QUEUE_WINDOW, queue_ttl_s: float = QUEUE_TTL_S) -> None:
        if app.store is None or app.chain is None:
            raise LedgerError("the ledger has no genesis yet", Code.NODE_UNAVAILABLE)
        self.app = app
        self.node_key = node_key
        self.rpc_url = rpc_url
        self._http = httpx.Client(base_url=rpc_url, timeout=timeout)
        self._lock = threading.Lock()
        self._waiters: dict[bytes, list[Future[object]]] = {}
        # Transactions whose nonce is ahead, under _wake's lock; the releaser thread broadcasts them.
        self.queue: NonceQueue[Waiting] = NonceQueue(queue_window, queue_ttl_s)
        self._wake = threading.Condition()
        self._stop = threading.Event()
        self._releaser: threading.Thread | None = None
        app.commit_listeners.append(self._on_commit)
        app.evict_listeners.append(self._on_evict)

    def close(self) -> None:
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        if self._releaser is not None:
            self._releaser.join(timeout=10)
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
        admitted: Future[str] = _future()
        committed: Future[object] = _future()
        with self._lock:  # listen before broadcasting: the commit can come before the RPC answer
            self._waiters.setdefault(tx_hash, []).append(committed)
        try:
            res = self.rpc("broadcast_tx_sync", tx=base64.b64encode(raw).decode())
        except LedgerError:
            self._forget(tx_hash, committed)
            raise
        code = int(res.get("code", 0))
        if code == Code.NONCE_OUT_OF_ORDER:
            try:
                self._hold(raw, tx_hash, committed)
                admitted.set_result("queued")
            except LedgerError as exc:
                self._forget(tx_hash, committed)
                admitted.set_exception(exc)
        elif code:
            self._forget(tx_hash, committed)
            admitted.set_exception(LedgerError(str(res.get("log", "")) or "refused by CheckTx", code_of(code)))
        else:
            admitted.set_result("pending")
            if len(self.queue):  # it may fill a queued transaction's gap
                with self._wake:
                    self._wake.notify()
        return Submission(tx_hash, admitted, committed)

    # -- the queue of transactions whose nonce is ahead -------------------------------------------------
    def expected_nonce(self, signer_hex: str) -> int:
        """The nonce the signer's next transaction needs here: committed plus the app's mempool."""
        committed = committed_nonce(self.store.view(), signer_hex)
        pending = self.app.next_nonce(signer_hex)
        return committed + 1 if pending is None else max(pending, committed + 1)

    def _hold(self, raw: bytes, tx_hash: bytes, committed: Future[object]) -> None:
        """Queue a transaction CheckTx found ahead of its signer's next nonce (every earlier check,
        the signature among them, passed there). Raises InvalidTx as :meth:`NonceQueue.check_hold`,
        or NONCE_ALREADY_PENDING when another transaction took the nonce meanwhile, and whatever
        :func:`check_admission` raises for the signer and its authorisation."""
        checked = check_stateless(self.chain, raw, verify_signature=False)
        tx = checked.tx
        expected = self.expected_nonce(tx.signer_hex)
        if tx.nonce < expected:
            raise InvalidTx(f"another transaction of this signer with nonce {tx.nonce} is already pending",
                            Code.NONCE_ALREADY_PENDING)
        with self._wake:
            self.queue.check_hold(tx_hash, tx.signer_hex, tx.nonce, expected)
        # CheckTx stops at the nonce: the signer and its authorisation are checked here, so that only
        # a member's transaction, which would pass once its turn comes, takes room in the queue.
        env = BlockEnv(self.chain.chain_id, self.app.head.height + 1, self.app.head_time_ms, "")
        check_admission(self.chain, self.store.view(), env, checked, tx.nonce)
        with self._wake:
            self.queue.hold(tx_hash, tx.signer_hex, tx.nonce, expected, Waiting(raw, committed), time.monotonic())
            if self._releaser is None:
                self._releaser = threading.Thread(target=self._release_loop, name="nonce-queue", daemon=True)
                self._releaser.start()
            self._wake.notify()

    def _release_loop(self) -> None:
        while not self._stop.is_set():
            with self._wake:
                self._wake.wait(RELEASE_EVERY_S)
            if self._stop.is_set():
                return
            try:
                self.release_queued()
            except Exception:  # the releaser must outlive a bug; the queue's entries still expire
                log.exception("releasing queued transactions failed")

    def release_queued(self, now: float | None = None) -> None:
        """One pass of the releaser: drop what waited ``ttl_s`` by ``now`` (NONCE_GAP_EXPIRED), drop what
        another transaction's nonce overtook (NONCE_ALREADY_PENDING), and broadcast, in nonce order,
        each signer's queued transactions that follow on from its next nonce."""
        when = time.monotonic() if now is None else now
        with self._wake:
            expired = self.queue.expire(when)
            signers = self.queue.signers()
        for entry in expired:
            self._drop(entry, gap_expired(entry, self.queue.ttl_s))
        for signer in signers:
            expected = self.expected_nonce(signer)
            with self._wake:
                stale = self.queue.stale(signer, expected)
                ready = self.queue.release(signer, expected)
            for entry in stale:
                self._drop(entry, InvalidTx(f"another transaction of this signer took nonce {entry.nonce}",
                                            Code.NONCE_ALREADY_PENDING))
            self._broadcast_in_order(ready, expected)

    def _broadcast_in_order(self, ready: list[Queued[Waiting]], expected: int) -> None:
        for i, entry in enumerate(ready):
            try:
                res = self.rpc("broadcast_tx_sync", tx=base64.b64encode(entry.item.raw).decode())
                code = int(res.get("code", 0))
                error = LedgerError(str(res.get("log", "")) or "refused by CheckTx", code_of(code)) if code else None
            except LedgerError as exc:  # CometBFT does not answer: try again on the next pass
                code, error = Code.NONCE_OUT_OF_ORDER, exc
            if code == Code.NONCE_OUT_OF_ORDER:  # not its turn after all: wait again, with the rest
                self._requeue(ready[i:], expected)
                return
            if error is not None:
                self._drop(entry, error)
                self._requeue(ready[i + 1:], expected)  # they wait for the nonce to be filled again
                return
            expected = entry.nonce + 1

    def _requeue(self, entries: list[Queued[Waiting]], expected: int) -> None:
        """Queue again, keeping their arrival time, transactions taken from the queue but not sent."""
        for entry in entries:
            try:
                with self._wake:
                    self.queue.hold(entry.tx_hash, entry.signer, entry.nonce, min(expected, entry.nonce),
                                    entry.item, entry.since)
            except LedgerError as exc:  # the queue filled meanwhile
                self._drop(entry, exc)

    def _drop(self, entry: Queued[Waiting], error: LedgerError) -> None:
        with self._wake:
            self.queue.record_drop(entry.tx_hash, error)
        self._settle(entry.tx_hash, error)

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
        if len(self.queue):  # a commit may fill a queued transaction's gap
            with self._wake:
                self._wake.notify()
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
        return self.app.is_pending(tx_hash) or self.queue.contains(tx_hash)

    def pool_status(self, tx_hash: bytes) -> tuple[str, LedgerError | None] | None:
        if self.app.is_pending(tx_hash):
            return "pending", None
        with self._wake:
            if self.queue.contains(tx_hash):
                return "queued", None
            why = self.queue.dropped(tx_hash)
        return None if why is None else ("dropped", why)

    def nonces(self, pubkey: str) -> tuple[int, int]:
        committed = committed_nonce(self.store.view(), pubkey)
        queued = self.app.next_nonce(pubkey)
        return committed, max(queued, committed + 1) if queued is not None else committed + 1
