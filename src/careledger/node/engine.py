"""What the API, the vault gateway and the supply alert index need from a running node, whichever
engine orders its transactions.

:class:`Engine` is the interface; two implementations exist:

* :class:`careledger.node.solo.SoloEngine` wraps the embedded :class:`~careledger.node.solo.Node`
  (solo engine): submission goes into its mempool, and "pending" and nonces read that mempool under
  its lock;
* :class:`careledger.abci.engine.CometbftEngine` serves a CometBFT node: submission is CometBFT's
  ``broadcast_tx_sync`` (CheckTx decides admission), commits are heard from the in-process ABCI app.

Both read committed data from the node's own :class:`~careledger.node.store.Store`; queries never
leave the node. Commit-driven duties (the gateway's crypto-shredding of erased records, the supply
alert index) subscribe with :meth:`Engine.on_commit`, which both engines call after every block
they commit, whichever node submitted its transactions.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from careledger.chain.executor import Chain
from careledger.core.errors import LedgerError
from careledger.node.store import Head, Store


@dataclass(frozen=True)
class Submission:
    """A submitted transaction: ``admitted`` resolves when it enters the mempool, to ``"pending"``, or
    to ``"queued"`` when it waits there for its signer's earlier nonces (or raises why not);
    ``committed`` resolves to its :class:`~careledger.core.block.Receipt`, or to the
    :class:`~careledger.core.errors.InvalidTx` that kept it out of a block."""

    tx_hash: bytes
    admitted: Future[str]
    committed: Future[object]


CommitListener = Callable[[int], None]
"""Called with the height of each block the node has just committed (stored, app hash final)."""


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

    def status(self) -> dict[str, Any]:
        """The node's chain, head and mempool, with its :meth:`health` under ``health``."""
        ...

    def health(self) -> dict[str, Any]:
        """Whether the node can take transactions now (what ``/readyz`` answers): ``{"ready": bool,
        "engine": str, "height": int, ...}`` with, when not ready, what stopped it. Cheap: no I/O
        beyond the node's own process, except the CometBFT engine's one RPC call to its CometBFT."""
        ...

    def is_pending(self, tx_hash: bytes) -> bool:
        """Whether the transaction waits in this node's mempool."""
        ...

    def pool_status(self, tx_hash: bytes) -> tuple[str, LedgerError | None] | None:
        """What this node's mempool knows of the transaction: ``("pending", None)``, ``("queued", None)``
        (waiting for its signer's earlier nonces), ``("dropped", why)`` (dropped since the node started,
        while it remembers), or None."""
        ...

    def nonces(self, pubkey: str) -> tuple[int, int]:
        """``(committed, next)``: the account's last committed nonce and the one its next transaction
        needs, counting its transactions in this node's mempool."""
        ...

    def on_commit(self, listener: CommitListener) -> None:
        """Call ``listener(height)`` after every block this node commits, from the committing thread,
        after the block is durable. Listeners must be quick and must not raise."""
        ...
