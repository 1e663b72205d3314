"""What the HTTP API needs from a node, whichever engine orders its transactions.

:class:`Engine` is the interface; two implementations exist:

* :class:`SoloEngine` wraps the embedded :class:`~careledger.node.node.Node` (solo engine): submission
  goes into its mempool, and "pending" and nonces read that mempool under its lock;
* :class:`careledger.abci.engine.CometbftEngine` serves a CometBFT node: submission is CometBFT's
  ``broadcast_tx_sync`` (CheckTx decides admission), commits are heard from the in-process ABCI app.

Both read committed data from the node's own :class:`~careledger.node.store.Store`; queries never
leave the node.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from careledger.core.executor import Chain, committed_nonce
from careledger.node.node import Node, Submission
from careledger.node.store import Head, Store


@runtime_checkable
class Engine(Protocol):
    """A running node as the API sees it."""

    @property
    def chain(self) -> Chain: ...

    @property
    def store(self) -> Store: ...

    @property
    def head(self) -> Head: ...

    def submit_async(self, raw: bytes) -> Submission:
        """Start admitting ``raw``: ``admitted`` resolves (or raises LedgerError) on admission, ``committed``
        to the receipt, or to the LedgerError that keeps it out of every block. May raise LedgerError."""
        ...

    def status(self) -> dict[str, Any]: ...

    def is_pending(self, tx_hash: bytes) -> bool:
        """Whether the transaction waits in this node's mempool."""
        ...

    def nonces(self, pubkey: str) -> tuple[int, int]:
        """``(committed, next)``: the account's last committed nonce and the one its next transaction
        needs, counting its transactions in this node's mempool."""
        ...


class SoloEngine:
    """The embedded node behind the API (the solo engine)."""

    def __init__(self, node: Node) -> None:
        self.node = node

    @property
    def chain(self) -> Chain:
        return self.node.chain

    @property
    def store(self) -> Store:
        return self.node.store

    @property
    def head(self) -> Head:
        return self.node.head

    def submit_async(self, raw: bytes) -> Submission:
        return self.node.submit_async(raw)

    def status(self) -> dict[str, Any]:
        return self.node.status()

    def is_pending(self, tx_hash: bytes) -> bool:
        with self.node.mempool.lock:  # a transaction leaves the mempool only after its block is stored
            return self.node.mempool.contains(tx_hash)

    def nonces(self, pubkey: str) -> tuple[int, int]:
        view = self.node.store.view()
        with self.node.mempool.lock:  # a signer leaves the mempool only after its block is stored
            queued_next = self.node.mempool.next_nonce(pubkey)
            committed = committed_nonce(view, pubkey)
        return committed, queued_next if queued_next is not None else committed + 1


def as_engine(node: Node | Engine) -> Engine:
    """``node`` itself if it is an engine, else the embedded node wrapped as one."""
    if isinstance(node, Node):
        return SoloEngine(node)
    return node
