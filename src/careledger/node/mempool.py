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
from typing import Any, Generic, TypeVar

from careledger.chain.executor import CheckedTx
from careledger.core.errors import Code, InvalidTx, LedgerError

T = TypeVar("T")


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

    def add(self, pending: Pending, over_capacity: bool = False) -> None:
        """Queue an already-checked transaction (lock held by the caller); ``over_capacity`` for one
        that comes from the nonce queue, where it held its room already."""
        tx = pending.checked.tx
        if tx.hash in self._queue:
            raise InvalidTx("transaction is already pending", Code.DUPLICATE_TX)
        if len(self._queue) >= self.capacity and not over_capacity:
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


QUEUE_WINDOW = 64
"""How far ahead a nonce may be and still wait: the signer's next nonce ``n`` and the 63 after it
(``n + 1`` … ``n + 63``) are inside; ``n + 64`` and beyond are refused ``NONCE_OUT_OF_ORDER``."""
QUEUE_TTL_S = 60.0
"""How long a transaction waits for the nonces before it; then it is dropped ``NONCE_GAP_EXPIRED``."""
DROPS_REMEMBERED = 10_000
"""How many dropped transactions' outcomes the node keeps (in memory) for ``GET /v1/txs/{hash}``."""


@dataclass
class Queued(Generic[T]):
    """A transaction waiting for its signer's earlier nonces; ``item`` is the engine's own record."""

    tx_hash: bytes
    signer: str
    nonce: int
    since: float
    item: T


class NonceQueue(Generic[T]):
    """Transactions whose nonce is ahead of their signer's next one, waiting for the gap to fill.

    The rules (docs/protocol.md section 5): a nonce up to ``window - 1`` ahead of the signer's next
    nonce waits; one further ahead is refused; a second transaction for a nonce already waiting is
    refused ``NONCE_ALREADY_PENDING`` (the same bytes: ``DUPLICATE_TX``); a transaction that has
    waited ``ttl_s`` is dropped ``NONCE_GAP_EXPIRED``. Dropped transactions' outcomes are remembered
    (the last :data:`DROPS_REMEMBERED`) for the status route. Everything is in memory: a restart
    forgets queued transactions and their drops alike.

    Not thread-safe: the engine that owns it holds its own lock around every call. Time is passed in
    (``now``, any monotonic clock), so the queue itself reads no clock.
    """

    def __init__(self, window: int = QUEUE_WINDOW, ttl_s: float = QUEUE_TTL_S, capacity: int = 50_000,
                 remember: int = DROPS_REMEMBERED) -> None:
        self.window = window
        self.ttl_s = ttl_s
        self.capacity = capacity
        self.remember = remember
        self._by_hash: OrderedDict[bytes, Queued[T]] = OrderedDict()  # in arrival order: oldest expire first
        self._by_signer: dict[str, dict[int, Queued[T]]] = {}
        self._dropped: OrderedDict[bytes, LedgerError] = OrderedDict()
        self._unordered = False  # an entry was queued again out of arrival order (see expire)

    def __len__(self) -> int:
        return len(self._by_hash)

    def contains(self, tx_hash: bytes) -> bool:
        return tx_hash in self._by_hash

    def signers(self) -> list[str]:
        """The signers with transactions waiting, sorted."""
        return sorted(self._by_signer)

    def held_nonce(self, signer: str, nonce: int) -> bytes | None:
        """The hash of the transaction waiting with this signer and nonce, if any."""
        entry = self._by_signer.get(signer, {}).get(nonce)
        return None if entry is None else entry.tx_hash

    def check_hold(self, tx_hash: bytes, signer: str, nonce: int, expected: int) -> None:
        """Raise why a transaction with ``nonce`` (ahead of ``expected``) may not wait, if it may not.

        Raises InvalidTx: ``DUPLICATE_TX`` (the same bytes wait already), ``NONCE_ALREADY_PENDING``
        (another transaction waits with this nonce), ``NONCE_OUT_OF_ORDER`` (``window`` or more ahead);
        ``MEMPOOL_FULL`` when ``capacity`` transactions wait.
        """
        if tx_hash in self._by_hash:
            raise InvalidTx("transaction is already queued", Code.DUPLICATE_TX)
        if nonce in self._by_signer.get(signer, {}):
            raise InvalidTx(f"another transaction of this signer with nonce {nonce} is already queued",
                            Code.NONCE_ALREADY_PENDING)
        if nonce - expected >= self.window:
            raise InvalidTx(f"nonce {nonce} is {nonce - expected} ahead of the next expected nonce {expected}; "
                            f"at most {self.window - 1} ahead may wait", Code.NONCE_OUT_OF_ORDER)
        if len(self._by_hash) >= self.capacity:
            raise InvalidTx("the queue of out-of-order transactions is full; retry later", Code.MEMPOOL_FULL)

    def hold(self, tx_hash: bytes, signer: str, nonce: int, expected: int, item: T, now: float) -> None:
        """Queue a transaction whose nonce is ahead of ``expected``; raises as :meth:`check_hold`."""
        self.check_hold(tx_hash, signer, nonce, expected)
        entry = Queued(tx_hash, signer, nonce, now, item)
        if self._by_hash and now < next(reversed(self._by_hash.values())).since:
            self._unordered = True  # queued again with its first arrival time: expire() scans everything
        self._by_hash[tx_hash] = entry
        self._by_signer.setdefault(signer, {})[nonce] = entry
        self._dropped.pop(tx_hash, None)

    def release(self, signer: str, expected: int) -> list[Queued[T]]:
        """Take the signer's waiting transactions that now follow on in order: ``expected``,
        ``expected + 1`` … up to the first gap."""
        held = self._by_signer.get(signer)
        out: list[Queued[T]] = []
        while held and expected in held:
            entry = held.pop(expected)
            del self._by_hash[entry.tx_hash]
            out.append(entry)
            expected += 1
        if held is not None and not held:
            del self._by_signer[signer]
        return out

    def stale(self, signer: str, expected: int) -> list[Queued[T]]:
        """Take the signer's waiting transactions whose nonce is below ``expected`` (another transaction
        took the nonce); the caller drops them."""
        held = self._by_signer.get(signer, {})
        return [self._take(held[n]) for n in sorted(held) if n < expected]

    def expire(self, now: float) -> list[Queued[T]]:
        """Take every transaction that has waited ``ttl_s`` or longer by ``now`` (the caller drops them)."""
        out: list[Queued[T]]
        if self._unordered:
            out = [self._take(e) for e in list(self._by_hash.values()) if now - e.since >= self.ttl_s]
            self._unordered = bool(self._by_hash)
            return out
        out = []
        while self._by_hash:  # in arrival order: the first that may stay ends the search
            entry = next(iter(self._by_hash.values()))
            if now - entry.since < self.ttl_s:
                break
            out.append(self._take(entry))
        return out

    def take_all(self) -> list[Queued[T]]:
        """Take every waiting transaction (the engine is stopping)."""
        return [self._take(entry) for entry in list(self._by_hash.values())]

    def _take(self, entry: Queued[T]) -> Queued[T]:
        del self._by_hash[entry.tx_hash]
        held = self._by_signer[entry.signer]
        del held[entry.nonce]
        if not held:
            del self._by_signer[entry.signer]
        return entry

    def record_drop(self, tx_hash: bytes, error: LedgerError) -> None:
        """Remember why a transaction was dropped, for :meth:`dropped` (the oldest is forgotten first)."""
        self._dropped[tx_hash] = error
        self._dropped.move_to_end(tx_hash)
        while len(self._dropped) > self.remember:
            self._dropped.popitem(last=False)

    def dropped(self, tx_hash: bytes) -> LedgerError | None:
        """Why the transaction was dropped, if this node dropped it since it started (and remembers)."""
        return self._dropped.get(tx_hash)


def gap_expired(entry: Queued[Any], ttl_s: float) -> InvalidTx:
    """The error a transaction dropped by :meth:`NonceQueue.expire` settles to."""
    return InvalidTx(f"nonce {entry.nonce} waited {ttl_s:g}s for the signer's earlier nonces, which did not arrive; "
                     "it was dropped", Code.NONCE_GAP_EXPIRED)
