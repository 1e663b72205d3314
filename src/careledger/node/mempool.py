"""The mempool: admitted transactions waiting for a block, in arrival order.

Admission runs every stateless check (with the signature), refuses duplicates, and checks the nonce
against the signer's committed nonce plus the ones already pending, so one signer's transactions
queue in order. Each admitted transaction carries a future that resolves to its receipt once it is
committed, or to the :class:`InvalidTx` that kept it out of a block.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, field

from careledger.chain.executor import CheckedTx
from careledger.core.errors import Code, InvalidTx


@dataclass
class Pending:
    checked: CheckedTx
    future: Future[object] = field(default_factory=Future)
    submitted_at: float = 0.0


class Mempool:
    def __init__(self, capacity: int = 50_000, wake_every: int = 256) -> None:
        self.capacity = capacity
        self.wake_every = wake_every
        self.lock = threading.Lock()
        self.not_empty = threading.Condition(self.lock)
        self._queue: OrderedDict[bytes, Pending] = OrderedDict()
        self._next_nonce: dict[str, int] = {}
        self._pending_count: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._queue)

    def contains(self, tx_hash: bytes) -> bool:
        return tx_hash in self._queue

    def next_nonce(self, signer: str) -> int | None:
        """The nonce the signer's next transaction must carry, if they have some pending (lock held)."""
        return self._next_nonce.get(signer)

    def add(self, pending: Pending) -> None:
        """Queue an already-checked transaction (lock held by the caller)."""
        tx = pending.checked.tx
        if tx.hash in self._queue:
            raise InvalidTx("transaction is already pending", Code.DUPLICATE_TX)
        if len(self._queue) >= self.capacity:
            raise InvalidTx("mempool is full; retry later", Code.MEMPOOL_FULL)
        self._queue[tx.hash] = pending
        self._next_nonce[tx.signer_hex] = tx.nonce + 1
        self._pending_count[tx.signer_hex] = self._pending_count.get(tx.signer_hex, 0) + 1
        if len(self._queue) == 1 or len(self._queue) % self.wake_every == 0:
            self.not_empty.notify()  # not on every arrival: each wake-up of the engine costs a context switch

    def take(self, limit: int) -> list[Pending]:
        """Up to ``limit`` oldest transactions, still pending until :meth:`remove` (lock held)."""
        out = []
        for pending in self._queue.values():
            out.append(pending)
            if len(out) >= limit:
                break
        return out

    def remove(self, hashes: list[bytes]) -> None:
        """Forget transactions that were committed or dropped (lock held)."""
        for h in hashes:
            pending = self._queue.pop(h, None)
            if pending is None:
                continue
            signer = pending.checked.tx.signer_hex
            left = self._pending_count[signer] - 1
            if left:
                self._pending_count[signer] = left
            else:
                del self._pending_count[signer]
                del self._next_nonce[signer]

    def drop_signer_after(self, signer: str, nonce: int) -> list[Pending]:
        """Evict the signer's pending transactions with nonces above ``nonce`` (they can no longer apply)."""
        doomed = [p for p in self._queue.values()
                  if p.checked.tx.signer_hex == signer and p.checked.tx.nonce > nonce]
        self.remove([p.checked.tx.hash for p in doomed])
        return doomed
