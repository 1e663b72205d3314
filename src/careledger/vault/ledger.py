"""The gateway's view of the ledger, behind a small port so the gateway does not care which engine runs.

:class:`LedgerPort` is what the gateway and the patient-scoped queries need: the chain id and crypto
suite, a committed state reader, transaction submission with a future of the receipt, the next
nonce of a key (counting pending transactions), and the height a committed transaction landed at.
:class:`NodeLedger` implements it over any :class:`careledger.node.engine.Engine`: the embedded
node, or a CometBFT-backed one (whose submission is CometBFT's mempool).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Protocol

from careledger.core.crypto import CryptoSuite
from careledger.core.errors import Code, LedgerError
from careledger.core.state import StateReader
from careledger.node.engine import Engine
from careledger.node.solo import Node, as_engine


class LedgerPort(Protocol):
    @property
    def chain_id(self) -> str: ...

    @property
    def suite(self) -> CryptoSuite: ...

    def view(self) -> StateReader:
        """Committed state, for the calling thread."""
        ...

    def submit(self, raw: bytes) -> Future[object]:
        """Admit a signed transaction (raises LedgerError when refused); the future gives its Receipt
        (or the InvalidTx that kept it out of a block)."""
        ...

    def next_nonce(self, pub: str) -> int: ...

    def tx_height(self, tx_hash: bytes) -> int: ...

    def on_commit(self, listener: Callable[[int, list[dict[str, Any]]], None]) -> None:
        """Call ``listener(height, events)`` after each committed block (events of successful receipts)."""
        ...


class NodeLedger:
    """:class:`LedgerPort` over a running node: the embedded :class:`~careledger.node.node.Node`, or any
    :class:`careledger.node.engine.Engine` (the solo engine or a CometBFT-backed node)."""

    def __init__(self, node: Node | Engine) -> None:
        self.engine: Engine = as_engine(node)

    @property
    def chain_id(self) -> str:
        return self.engine.chain.chain_id

    @property
    def suite(self) -> CryptoSuite:
        return self.engine.chain.suite

    def view(self) -> StateReader:
        return self.engine.store.view()

    def submit(self, raw: bytes, timeout: float = 8.0) -> Future[object]:
        sub = self.engine.submit_async(raw)
        try:
            sub.admitted.result(timeout=timeout)
        except FutureTimeout:
            raise LedgerError("the node did not admit the transaction in time", Code.TIMEOUT) from None
        return sub.committed

    def next_nonce(self, pub: str) -> int:
        return self.engine.nonces(pub)[1]

    def tx_height(self, tx_hash: bytes) -> int:
        return self.engine.store.tx(tx_hash).height

    def on_commit(self, listener: Callable[[int, list[dict[str, Any]]], None]) -> None:
        """Relayed from the engine's commit subscription, under either engine and whichever node
        submitted the block's transactions."""
        store = self.engine.store

        def relay(height: int) -> None:
            events = [e for t in store.block_txs(height) if t.receipt.code == 0 for e in t.receipt.events]
            listener(height, events)

        self.engine.on_commit(relay)
