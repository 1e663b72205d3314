"""The embedded node: store, executor, mempool and the solo engine in one process.

The solo engine is the single-validator default. It produces a block as soon as transactions are
pending, waiting at most ``block_interval_ms`` to gather more (or until ``max_block_txs`` are
pending). Signatures are checked in worker processes (:mod:`careledger.node.sigcheck`) so that
admission uses every core despite the interpreter lock; transactions are admitted in submission
order in batches, reading the state they need in one query.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from careledger.chain.executor import (
    BlockExecution,
    Chain,
    CheckedTx,
    check_admission,
    check_stateless,
    committed_nonce,
    read_hints,
)
from careledger.contracts import governance, identity
from careledger.core.block import BlockEnv, Header, Receipt
from careledger.core.crypto import SigningKey
from careledger.core.errors import AuthError, Code, InvalidTx, LedgerError, StoreCorrupted
from careledger.core.tx import signed_body
from careledger.node.engine import CommitListener, Engine, Submission
from careledger.node.halt import Halt, classify, free_bytes
from careledger.node.integrity import check_row_count
from careledger.node.mempool import QUEUE_TTL_S, QUEUE_WINDOW, Mempool, NonceQueue, Pending, gap_expired
from careledger.node.store import Head, PrefetchedView, StateView, Store, StoredTx

log = logging.getLogger("careledger.node")


@dataclass(frozen=True)
class EngineConfig:
    block_interval_ms: int = 25
    max_block_txs: int = 2_000
    mempool_capacity: int = 50_000
    sig_workers: int = 1  # worker processes verifying signatures; 0 verifies in the submitting thread
    disk_reserve_bytes: int = 16 * 2**20  # free space needed before a node halted by a full disk resumes
    retry_max_s: float = 30.0  # longest wait between two attempts to resume (it starts at 1 s and doubles)
    queue_window: int = QUEUE_WINDOW  # a nonce up to this many - 1 ahead of the signer's next waits in the queue
    queue_ttl_s: float = QUEUE_TTL_S  # ... for at most this long (docs/protocol.md section 5)


def _uncancellable() -> Future[Any]:
    """A future no waiter can cancel (a cancelled one would make the engine's set_result raise)."""
    fut: Future[Any] = Future()
    fut.set_running_or_notify_cancel()
    return fut




class Node:
    """One CareLedger node running the solo engine."""

    def __init__(self, store: Store, chain: Chain, node_key: SigningKey, config: EngineConfig | None = None) -> None:
        self.store = store
        self.chain = chain
        self.node_key = node_key
        self.config = config or EngineConfig()
        self.mempool = Mempool(self.config.mempool_capacity)
        # Transactions whose nonce is ahead of their signer's next, under the mempool's lock.
        self.queue: NonceQueue[Pending] = NonceQueue(self.config.queue_window, self.config.queue_ttl_s,
                                                     self.config.mempool_capacity)
        self._head = store.head()
        self._head_time_ms = (store.block(self._head.height)[0].time_ms if self._head.height
                              else chain.genesis.genesis_time_ms)  # block times never precede genesis
        self._max_block_txs = min(self.config.max_block_txs, chain.genesis.params.max_block_txs)
        self._stop = threading.Event()
        # Held while the engine executes and writes a block. SQLite releases the interpreter lock on
        # every row it reads or writes; threads that would grab it meanwhile (decoding, admission)
        # wait here instead, so the block is not stretched by lock hand-offs.
        self._quiet = threading.Lock()
        self._sigcheck: Any = None
        self._thread: threading.Thread | None = None
        self._commit_listeners: list[Any] = []
        self.commit_cond = threading.Condition()
        self._halt: Halt | None = None
        self._halt_listeners: list[Callable[[Halt], None]] = []
        self._retry_s = 1.0
        self._just_resumed = False
        self._audited = False  # the engine thread counts the state rows before its first block
        validators = {pub for pub, _ in governance.validators(store.writer_view)}
        if node_key.public_hex not in validators:
            raise LedgerError("this node's key is not a validator of the consortium; the solo engine "
                              "cannot sign blocks with it", Code.UNAUTHORISED)

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        if self.config.sig_workers > 0 and self._sigcheck is None:
            from careledger.node.sigcheck import SignatureChecker

            self._sigcheck = SignatureChecker(self.chain.genesis.crypto_suite, self.chain.chain_id,
                                              self._on_verdicts, workers=self.config.sig_workers)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="solo-engine", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._sigcheck is not None:
            self._sigcheck.close()
            self._sigcheck = None
        self._stop.set()
        with self.mempool.lock:
            self.mempool.not_empty.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def close(self) -> None:
        self.stop()
        self.store.close()

    @property
    def head(self) -> Head:
        return self._head

    @property
    def halt(self) -> Halt | None:
        """Why block production is stopped (None while the engine produces blocks)."""
        return self._halt

    def on_halt(self, listener: Callable[[Halt], None]) -> None:
        """Call ``listener(halt)`` from the engine thread when block production stops (after every waiter
        was answered). ``careledger node start`` exits non-zero on an ``exit`` halt."""
        self._halt_listeners.append(listener)

    def health(self) -> dict[str, Any]:
        """Whether this node can take transactions now: ``ready`` is true while the engine thread runs and
        is not halted. ``engine`` is ``starting`` (counting the state rows before its first block),
        ``producing``, ``halted`` (with ``halt`` saying why and what the node does about it) or
        ``stopped`` (not started, or shut down)."""
        halt = self._halt
        running = self._thread is not None and self._thread.is_alive() and not self._stop.is_set()
        engine = "halted" if halt is not None else "stopped" if not running else \
            "producing" if self._audited else "starting"
        return {"ready": engine == "producing", "engine": engine, "height": self._head.height,
                "halt": None if halt is None else halt.to_json()}

    def _refuse_if_halted(self) -> None:
        halt = self._halt
        if halt is not None:
            raise LedgerError(f"the node is not producing blocks: {halt.reason}", Code.NODE_UNAVAILABLE)

    # -- admission ----------------------------------------------------------------------------------
    def check(self, raw: bytes) -> CheckedTx:
        """Stateless checks including the signature; safe to call from many threads at once."""
        return check_stateless(self.chain, raw)

    def submit_async(self, raw: bytes) -> Submission:
        """Start admitting a transaction without waiting for its signature check.

        Raises LedgerError at once for problems visible without the signature (size, encoding,
        envelope, chain id, type, payload) and NODE_UNAVAILABLE while block production is halted.
        Everything else arrives through the returned futures.
        """
        self._refuse_if_halted()
        if self._sigcheck is None:
            checked = self.check(raw)
            view = self.store.view()
            with self.mempool.lock:
                pending, queued = self._admit_locked(checked, view, None)
            admitted: Future[str] = _uncancellable()
            admitted.set_result("queued" if queued else "pending")
            return Submission(checked.tx.hash, admitted, pending.future)
        with self._quiet:
            checked = check_stateless(self.chain, raw, verify_signature=False)
        tx = checked.tx
        sub = Submission(tx.hash, _uncancellable(), _uncancellable())
        self._sigcheck.submit((tx.signer, tx.signature, signed_body(raw)), (checked, sub))
        return sub

    def _on_verdicts(self, verdicts: list[tuple[tuple[CheckedTx, Submission], bool]]) -> None:
        """Admit a batch whose signatures were checked, in order, reading the state it needs at once."""
        with self._quiet:
            self._admit_batch(verdicts)

    def _admit_batch(self, verdicts: list[tuple[tuple[CheckedTx, Submission], bool]]) -> None:
        good = [(checked, sub) for (checked, sub), ok in verdicts if ok]
        for (_, sub), ok in verdicts:
            if not ok:
                sub.admitted.set_exception(AuthError("signature does not verify", Code.BAD_SIGNATURE))
        if not good:
            return
        batch = [checked for checked, _ in good]
        seen_height = self._head.height
        view = self._prefetched_view(batch)
        outcomes: list[tuple[Submission, LedgerError | str]] = []
        with self.mempool.lock:
            # A block committed since the prefetch may already have left the mempool: its nonces
            # are then only in the store, so read again (a commit after this point cannot leave
            # the mempool before we release the lock).
            if self._head.height != seen_height:
                view = self._prefetched_view(batch)
            env = self._admission_env()
            for checked, sub in good:
                try:
                    _, queued = self._admit_locked(checked, view, sub.committed, env)
                    outcomes.append((sub, "queued" if queued else "pending"))
                except LedgerError as exc:
                    outcomes.append((sub, exc))
        for sub, outcome in outcomes:
            if isinstance(outcome, str):
                sub.admitted.set_result(outcome)
            else:
                sub.admitted.set_exception(outcome)

    def _prefetched_view(self, batch: list[CheckedTx]) -> StateView:
        reader = self.store.view()
        keys = [k for checked in batch for k in read_hints(checked, admission=True)]
        values = reader.get_many(keys)
        orgs = set()
        for checked in batch:  # the signer's organisation: resolve_signer reads it next
            raw = values.get(identity.key_key(checked.tx.signer_hex))
            if raw is not None and (org := identity.decode_key_record(raw).org) is not None:
                orgs.add(identity.org_key(org))
        values.update(reader.get_many(sorted(orgs)))
        return PrefetchedView(reader.connection, values)

    def submit(self, raw: bytes, timeout: float = 30.0) -> Future[object]:
        """Admit a transaction to the mempool; returns a future of its receipt. Raises LedgerError."""
        sub = self.submit_async(raw)
        sub.admitted.result(timeout=timeout)
        return sub.committed

    def admit(self, checked: CheckedTx, committed: Future[object] | None = None) -> Future[object]:
        """Admit a signature-checked transaction: duplicates, nonce, signer and authorisation."""
        view = self.store.view()  # committed state through this thread's own read connection
        with self.mempool.lock:
            return self._admit_locked(checked, view, committed)[0].future

    def _admission_env(self) -> BlockEnv:
        """The environment admission checks run in: the next block, as far as is known now."""
        return BlockEnv(self.chain.chain_id, self._head.height + 1, self._head_time_ms, self.node_key.public_hex)

    def _admit_locked(self, checked: CheckedTx, view: StateView, committed: Future[object] | None,
                      env: BlockEnv | None = None) -> tuple[Pending, bool]:
        """Admit ``checked`` to the mempool, or to the queue if its nonce is ahead (mempool lock held).

        Returns the pending entry and whether it was queued. A transaction whose nonce is the signer's
        next joins the mempool, followed by the signer's queued transactions that now follow on.
        Raises InvalidTx: DUPLICATE_TX (pending, queued or committed), NONCE_ALREADY_PENDING (another
        transaction of the signer holds this nonce in the mempool or the queue), NONCE_REPLAYED,
        NONCE_OUT_OF_ORDER (beyond the queue's window), MEMPOOL_FULL; and whatever
        :func:`check_admission` raises; LedgerError(NODE_UNAVAILABLE) while halted.
        """
        tx = checked.tx
        self._refuse_if_halted()  # under the mempool lock: a halt empties the mempool under it too
        if self.mempool.contains(tx.hash) or self.queue.contains(tx.hash):
            raise InvalidTx("transaction is already pending", Code.DUPLICATE_TX)
        pending_next = self.mempool.next_nonce(tx.signer_hex)
        expected = committed_nonce(view, tx.signer_hex) + 1 if pending_next is None else pending_next
        if tx.nonce < expected:
            if self.store.has_tx(tx.hash):
                raise InvalidTx("transaction is already committed", Code.DUPLICATE_TX)
            if pending_next is not None and tx.nonce > committed_nonce(view, tx.signer_hex):
                raise InvalidTx(f"another transaction of this signer with nonce {tx.nonce} is already pending",
                                Code.NONCE_ALREADY_PENDING)
        env = env or self._admission_env()
        pending = Pending(checked, committed or _uncancellable(), time.perf_counter())
        if tx.nonce > expected:
            self.queue.check_hold(tx.hash, tx.signer_hex, tx.nonce, expected)
            check_admission(self.chain, view, env, checked, tx.nonce)  # every check but the gap
            self.queue.hold(tx.hash, tx.signer_hex, tx.nonce, expected, pending, time.monotonic())
            return pending, True
        check_admission(self.chain, view, env, checked, expected)
        self.mempool.add(pending)
        for follower in self.queue.release(tx.signer_hex, tx.nonce + 1):
            self.mempool.add(follower.item, over_capacity=True)  # it held its room in the queue already
        return pending, False

    def expire_queued(self, now: float | None = None) -> int:
        """Drop the queued transactions that have waited ``queue_ttl_s`` by ``now`` (default: the
        monotonic clock), settling each to NONCE_GAP_EXPIRED; returns how many were dropped."""
        when = time.monotonic() if now is None else now
        with self.mempool.lock:
            expired = self.queue.expire(when)
            errors = [gap_expired(entry, self.queue.ttl_s) for entry in expired]
            for entry, error in zip(expired, errors, strict=True):
                self.queue.record_drop(entry.tx_hash, error)
        for entry, error in zip(expired, errors, strict=True):
            if not entry.item.future.done():
                entry.item.future.set_result(error)
        return len(expired)

    def pool_status(self, tx_hash: bytes) -> tuple[str, LedgerError | None] | None:
        """``("pending", None)`` in the mempool, ``("queued", None)`` waiting for earlier nonces,
        ``("dropped", why)`` dropped since this node started; None when this node knows nothing of it."""
        with self.mempool.lock:
            if self.mempool.contains(tx_hash):
                return "pending", None
            if self.queue.contains(tx_hash):
                return "queued", None
            why = self.queue.dropped(tx_hash)
        return None if why is None else ("dropped", why)

    def submit_and_wait(self, raw: bytes, timeout: float = 30.0) -> Receipt:
        fut = self.submit(raw)
        result = fut.result(timeout=timeout)
        if isinstance(result, LedgerError):
            raise result
        assert isinstance(result, Receipt)
        return result

    # -- block production -----------------------------------------------------------------------------
    def _run(self) -> None:
        try:  # the start-up check's one step that grows with the ledger, while the API already serves
            check_row_count(self.store)
        except Exception as exc:
            self._enter_halt(exc)
        self._audited = True
        interval = self.config.block_interval_ms / 1000
        last_start = 0.0
        while not self._stop.is_set():
            halt = self._halt
            if halt is not None:
                if halt.action != "retry" or self._stop.wait(self._retry_s):
                    return
                self._try_resume()
                continue
            try:  # the next block's rules: an un-upgraded node stops where the consortium switches
                self.chain.block_params(self.store.writer_view, self._head.height + 1)
            except Exception as exc:
                self._enter_halt(exc)
                continue
            if len(self.queue):
                self.expire_queued()
            with self.mempool.lock:
                if not len(self.mempool) and not self._stop.is_set():
                    self.mempool.not_empty.wait(timeout=0.5)
                if self._stop.is_set():
                    return
                if not len(self.mempool):
                    continue  # idle: look at the halt, the rules and the queue's expiry again
                # Blocks start at most every `interval`; a busy engine does not wait again.
                deadline = max(last_start + interval, time.monotonic() + 0.002)
                while len(self.mempool) < self._max_block_txs and not self._stop.is_set():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self.mempool.not_empty.wait(timeout=remaining)
                batch = self.mempool.take(self._max_block_txs)
            last_start = time.monotonic()
            try:
                self.produce_block(batch)
                self._just_resumed = False
            except Exception as exc:  # never let the engine stop silently: halt, answer, report
                self._enter_halt(exc)

    def _enter_halt(self, exc: Exception) -> None:
        """Stop producing blocks: answer every waiting transaction NODE_UNAVAILABLE, refuse new ones,
        tell the halt listeners (module :mod:`careledger.node.halt` says what follows)."""
        halt = classify(exc, self._head.height, int(time.time() * 1000))
        if halt.action == "exit" and not isinstance(exc, LedgerError):
            log.error("block production stopped (%s)", halt.kind, exc_info=exc)
        else:
            log.error("block production stopped (%s): %s", halt.kind, halt.reason)
        with self.mempool.lock:
            self._halt = halt
            stranded = self.mempool.take(len(self.mempool))
            self.mempool.remove([p.checked.tx.hash for p in stranded])
            stranded += [entry.item for entry in self.queue.take_all()]
        for pending in stranded:
            if not pending.future.done():
                pending.future.set_result(InvalidTx(
                    f"the node stopped producing blocks ({halt.kind}); this transaction was not acknowledged; "
                    f"once the node runs again, look it up at /v1/txs/{pending.checked.tx.hash_hex} before "
                    f"resubmitting it", Code.NODE_UNAVAILABLE))
        if halt.action == "retry":  # failing again straight after resuming: wait longer before the next try
            self._retry_s = min(self._retry_s * 2, self.config.retry_max_s) if self._just_resumed else 1.0
        for listener in list(self._halt_listeners):
            try:
                listener(halt)
            except Exception:
                log.exception("halt listener failed")

    def _try_resume(self) -> None:
        """After a full disk: resume once there is room again, from what the store holds.

        A block whose SQLite commit went through but whose head record could not be written is taken
        as committed (it was never acknowledged, but it is in the store and its record is written now).
        Anything else the store says (a head that moved otherwise, an unreadable store) makes the halt
        an ``exit`` one.
        """
        if free_bytes(self.store.path.parent) < self.config.disk_reserve_bytes:
            return  # still full: look again after the same wait
        try:
            self.store.forget_cached()
            stored = self.store.head()
            if stored.height == self._head.height + 1:
                header = self.store.block(stored.height)[0]
                self.store.head_file.write(self.store.head_record())
                self._head, self._head_time_ms = stored, header.time_ms
            elif stored != self._head:
                raise StoreCorrupted(f"the store's head moved to {stored.height} while the engine was halted at "
                                     f"{self._head.height}")
        except Exception as exc:
            self._enter_halt(exc)
            return
        log.warning("block production resumes at height %d", self._head.height)
        self._just_resumed = True
        with self.mempool.lock:
            self._halt = None

    def produce_block(self, batch: list[Pending]) -> Header | None:
        """Execute ``batch`` as the next block, commit it, and settle every future.

        Raises LedgerError(UNAUTHORISED) when governance has removed this node's key from the
        validators: a block it signed would no longer be valid, so the solo engine stops.
        """
        if not self._is_validator():
            raise LedgerError("this node's key is no longer a validator; the solo engine stops producing blocks",
                              Code.UNAUTHORISED)
        height = self._head.height + 1
        now_ms = int(time.time() * 1000)
        env = BlockEnv(self.chain.chain_id, height, max(now_ms, self._head_time_ms + 1), self.node_key.public_hex)
        included: list[tuple[Pending, Receipt]] = []
        dropped: list[tuple[Pending, InvalidTx]] = []
        header = None
        # Execution runs alone rather than trading the interpreter lock with admission; the commit
        # (SQLite's and the head record's syncs to disk, the longest part under the durable mode) does
        # not: admission goes on meanwhile, so the next block finds more transactions waiting.
        with self._quiet:
            self.store.writer_view.prefetch([k for p in batch for k in read_hints(p.checked)])
            run = BlockExecution(self.chain, self.store.writer_view, env, self._head.app_hash)
            for pending in batch:
                try:
                    included.append((pending, run.add(pending.checked)))
                except InvalidTx as exc:
                    dropped.append((pending, exc))
            if included:
                result = run.finish()
                header = result.header(self._head.block_hash.hex(), self.node_key.public_hex)
                signature = self.node_key.sign("block", self.chain.chain_id, header.hash)
        if header is not None:
            self._head = self.store.commit_block(header, signature, result.txs, result.receipts, result.changes)
            self._head_time_ms = header.time_ms
        with self.mempool.lock:
            self.mempool.remove([p.checked.tx.hash for p, _ in included] + [p.checked.tx.hash for p, _ in dropped])
            for pending, _ in dropped:  # later nonces of the same signer can never apply now
                tx = pending.checked.tx
                for doomed in self.mempool.drop_signer_after(tx.signer_hex, tx.nonce):
                    dropped.append((doomed, InvalidTx("an earlier transaction of this signer was dropped",
                                                      Code.NONCE_OUT_OF_ORDER)))
            for pending, why in dropped:  # queued ones of the signer wait on: the gap may fill again
                self.queue.record_drop(pending.checked.tx.hash, why)
        for pending, receipt in included:
            pending.future.set_result(receipt)
        for pending, why in dropped:
            if not pending.future.done():
                pending.future.set_result(why)
        if header is not None:
            with self.commit_cond:
                self.commit_cond.notify_all()
            for listener in list(self._commit_listeners):
                try:
                    listener(header)
                except Exception:  # a listener's bug must not stop block production
                    log.exception("commit listener failed")
        return header

    def _is_validator(self) -> bool:
        return self.store.writer_view.get_raw(governance.validator_key(self.node_key.public_hex)) is not None

    def on_commit(self, listener: Any) -> None:
        self._commit_listeners.append(listener)

    # -- queries --------------------------------------------------------------------------------------
    def get_tx(self, tx_hash: bytes) -> StoredTx:
        return self.store.tx(tx_hash)

    def wait_for_height(self, height: int, timeout: float) -> bool:
        end = time.monotonic() + timeout
        with self.commit_cond:
            while self._head.height < height:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self.commit_cond.wait(left)
        return True

    def status(self) -> dict[str, Any]:
        head = self._head
        latest_time = self._head_time_ms
        return {
            "chain_id": self.chain.chain_id, "engine": "solo", "height": head.height,
            "app_hash": head.app_hash.hex(), "block_hash": head.block_hash.hex(), "latest_block_time_ms": latest_time,
            "node_key": self.node_key.public_hex, "mempool": len(self.mempool),
            "genesis_hash": self.chain.genesis.hash.hex(), "crypto_suite": self.chain.genesis.crypto_suite,
            "health": self.health(),
        }


class SoloEngine:
    """The embedded node behind the API (the solo engine), as an :class:`~careledger.node.engine.Engine`."""

    quick_submit = True
    """submit_async decodes and queues (signatures are checked elsewhere): the API's admitter thread
    may call it for many submissions in a row (:class:`careledger.api.txs.Admitter`)."""

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

    def health(self) -> dict[str, Any]:
        return self.node.health()

    def is_pending(self, tx_hash: bytes) -> bool:
        with self.node.mempool.lock:  # a transaction leaves the mempool only after its block is stored
            return self.node.mempool.contains(tx_hash) or self.node.queue.contains(tx_hash)

    def pool_status(self, tx_hash: bytes) -> tuple[str, LedgerError | None] | None:
        return self.node.pool_status(tx_hash)

    def nonces(self, pubkey: str) -> tuple[int, int]:
        view = self.node.store.view()
        with self.node.mempool.lock:  # a signer leaves the mempool only after its block is stored
            queued_next = self.node.mempool.next_nonce(pubkey)
            committed = committed_nonce(view, pubkey)
        return committed, queued_next if queued_next is not None else committed + 1

    def on_commit(self, listener: CommitListener) -> None:
        self.node.on_commit(lambda header: listener(header.height))


def as_engine(node: Node | Engine) -> Engine:
    """``node`` itself if it is an engine, else the embedded node wrapped as one."""
    if isinstance(node, Node):
        return SoloEngine(node)
    return node
