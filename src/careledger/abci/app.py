"""The CometBFT engine: CareLedger's state machine behind ABCI 2.0 (CometBFT v0.38.x).

:class:`CareLedgerApp` answers CometBFT's requests with the same core the solo engine uses
(:func:`check_stateless`, :func:`check_admission`, :class:`BlockExecution`, :class:`Store`):

* ``InitChain``   parses our genesis from ``app_state_bytes``, initialises an empty store with it (or
                  checks that the store holds the same genesis, so a repeat is harmless) and returns
                  the genesis app hash and the validators (Ed25519 keys with their power);
* ``Info``        reports the last CometBFT height and app hash *persisted* (see below);
* ``CheckTx``     stateless checks, then nonce, signer and authorisation against committed state plus
                  the nonces of transactions this app admitted since the last commit;
* ``PrepareProposal`` simulates the block on a throwaway overlay, dropping invalid transactions and
                  staying within ``max_tx_bytes`` and the genesis ``max_block_txs``;
* ``ProcessProposal`` rejects a block holding any invalid transaction (deterministic); its execution
                  is kept by block hash and reused by FinalizeBlock of the same block;
* ``FinalizeBlock`` executes the decided block and keeps the result in memory: receipts become
                  ``tx_results`` (code = receipt code, data = canonical receipt bytes), validator
                  changes become ``validator_updates`` sorted by key;
* ``Commit``      writes block, receipts and state in one SQLite transaction before returning.

**Ledger heights.** A CometBFT block without a valid transaction is not a ledger block (the solo
engine makes none either) and leaves the app hash unchanged, so ``create_empty_blocks = false``
works and both engines give the same ledger, height for height, for the same transactions. The
app records which CometBFT height it last committed (:mod:`careledger.abci.progress`).

Blocks stored under CometBFT carry an empty signature (CometBFT's commit signs them) and name the
proposer by its CometBFT address (hex of the first 20 bytes of SHA-256 of its public key); the
block time is CometBFT's header time in milliseconds. The app is never ahead of CometBFT: it
persists only in ``Commit``, so after a crash ``Info`` reports the last committed height and
CometBFT replays the rest.

A decided block can only hold an invalid transaction if more than a third of the voting power is
faulty. Such a transaction is then not executed: it gets a ``tx_result`` with its InvalidTx code and
is left out of the stored block.

Signature checks are remembered by transaction hash (a pure function of the bytes), so a
transaction's signature is verified once per node, in CheckTx, and not again in proposals and blocks.

Queries (committed state only, latest height): ``/head``, ``/state/<key>``, ``/tx/<hash hex>``,
``/block/<height>``.

**State sync** (:mod:`careledger.abci.snapshots`): every ``interval`` CometBFT heights (the node's
:class:`~careledger.abci.snapshots.SnapshotPolicy`) a background thread writes a snapshot of the
ledger's history, which ``ListSnapshots`` and ``LoadSnapshotChunk`` serve to joining nodes. A node
joining by state sync accepts in ``OfferSnapshot`` only a snapshot of its own genesis while its ledger
is still at genesis, re-executes every block of it in ``ApplySnapshotChunk`` into a store beside its
ledger, and swaps that store in only when the result has the app hash CometBFT's light client
verified.

**Only CometBFT drives it.** The server (:mod:`careledger.abci.server`) answers consensus requests on
one connection only and tells the app when that connection closes
(:meth:`CareLedgerApp.consensus_connection_lost`): a block finalised there and not committed is
forgotten, so Commit persists only what the same consensus connection finalised, at the next height.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from careledger.abci import abci_pb2 as pb
from careledger.abci.progress import ProgressRecord
from careledger.abci.snapshots import (
    FORMAT,
    SNAPSHOT_DIR,
    BadChunk,
    Manifest,
    Restore,
    SnapshotError,
    SnapshotPolicy,
    SnapshotRejected,
    SnapshotStore,
    install_restored,
)
from careledger.abci.wire import encode_uvarint
from careledger.chain.executor import (
    BlockExecution,
    BlockResult,
    Chain,
    CheckedTx,
    check_admission,
    check_nonce,
    check_stateless,
    committed_nonce,
    read_hints,
)
from careledger.contracts import governance
from careledger.contracts.identity import key_key
from careledger.core import codec
from careledger.core.block import BlockEnv, Receipt
from careledger.core.errors import Code, GenesisError, InvalidTx, LedgerError, NotFound, StoreCorrupted
from careledger.core.genesis import Genesis, parse_genesis
from careledger.node.startup import open_store
from careledger.node.store import Head, Store

log = logging.getLogger("careledger.abci")

APP_VERSION = 1  # the application protocol version CometBFT writes into block headers
SOFTWARE_VERSION = "careledger/0.1.0"
CODESPACE = "careledger"
CHECKED_CACHE = 100_000  # decoded, signature-checked transactions remembered by hash


def time_ms_of(ts: Any) -> int:
    """Milliseconds since the Unix epoch of a ``google.protobuf.Timestamp`` (truncated)."""
    return int(ts.seconds) * 1000 + int(ts.nanos) // 1_000_000


def tx_proto_size(raw: bytes) -> int:
    """The bytes ``raw`` occupies in a block's data, as CometBFT counts it against ``max_tx_bytes``:
    an entry of a repeated ``bytes`` field 1 (one tag byte, the length as a varint, the bytes)."""
    return 1 + len(encode_uvarint(len(raw))) + len(raw)


def attribute_text(value: Any) -> str:
    """An event attribute's value: a string as it is, anything else as canonical JSON."""
    kind = type(value)
    if kind is str:
        return str(value)
    if kind is int:  # the common case, written without the encoder (an int's JSON is its decimal)
        return codec.encode(value).decode() if abs(value) > codec.MAX_SAFE_INT else str(value)
    return codec.encode(value).decode()


def add_event(events: Any, event_type: str, attrs: dict[str, Any]) -> None:
    """Append a receipt event to a repeated ``Event`` field as an indexed ABCI event, its attributes in
    key order; non-string values are canonical JSON. (Built in place: constructing messages and
    handing them over copies them, which costs more than the rest of a transaction's result.)"""
    event = events.add(type=event_type)
    for key, value in sorted(attrs.items()):
        event.attributes.add(key=key, value=attribute_text(value), index=True)


def to_validator_updates(updates: list[dict[str, Any]]) -> list[pb.ValidatorUpdate]:
    """One update per key (the last one in block order wins), sorted by key: CometBFT refuses repeats."""
    latest: dict[str, int] = {}
    for update in updates:
        latest[str(update["pub_key"])] = int(update["power"])
    return [pb.ValidatorUpdate(pub_key=pb.PublicKey(ed25519=bytes.fromhex(key)), power=power)
            for key, power in sorted(latest.items())]


@dataclass
class Execution:
    """A block executed on a staged overlay: its ABCI results and, if any tx was valid, the ledger block."""

    result: BlockResult | None  # None: no valid transaction, so no ledger block
    tx_results: list[pb.ExecTxResult]
    valid: bool  # every transaction was valid (ProcessProposal accepts only such blocks)
    committed: list[tuple[bytes, Receipt]] = field(default_factory=list)
    invalid: list[tuple[bytes, InvalidTx]] = field(default_factory=list)


@dataclass
class _Finalized:
    """A block executed by FinalizeBlock and waiting for Commit."""

    height: int  # CometBFT's height
    proposer: str
    execution: Execution


CommitListener = Callable[[int, list[tuple[bytes, Receipt]], list[tuple[bytes, InvalidTx]]], None]
EvictListener = Callable[[bytes, LedgerError], None]


class CareLedgerApp:
    """One CareLedger node's application, driven by CometBFT over ABCI (one request at a time).

    Listeners (the in-process HTTP API) hear of every commit and of every transaction CometBFT's
    mempool re-check evicts; they run on the ABCI thread and must not block.
    """

    def __init__(self, db_path: Path, check_integrity: bool = True, checked_cache: int = CHECKED_CACHE,
                 snapshot_policy: SnapshotPolicy | None = None) -> None:
        """Open the ledger at ``db_path`` (created by InitChain, or restored by state sync when absent).
        ``snapshot_policy`` defaults to ``<db dir>/statesync.json`` (no snapshots without it).
        Raises StoreCorrupted (see :func:`~careledger.node.startup.open_store`) and SnapshotError."""
        self.db_path = Path(db_path)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.store: Store | None = None
        self.chain: Chain | None = None
        self._head: Head | None = None
        self._head_time_ms = 0
        self.cometbft_height = 0
        self._finalized: _Finalized | None = None
        self._pending_nonces: dict[str, int] = {}
        self._checked: OrderedDict[bytes, CheckedTx] = OrderedDict()
        self._checked_capacity = checked_cache
        self._executions: dict[bytes, Execution] = {}
        self._last_changes: frozenset[str] = frozenset()  # state keys the last committed block wrote
        self.mempool_txs: dict[bytes, None] = {}  # hashes this app admitted (new or re-checked) since the last commit
        self.mempool_txs_before: dict[bytes, None] = {}  # ... and in the round before
        self.commit_listeners: list[CommitListener] = []
        self.evict_listeners: list[EvictListener] = []
        self._progress = ProgressRecord(self.db_path)
        self.snapshot_policy = snapshot_policy or SnapshotPolicy.load(self.db_path.parent)
        self.snapshots = SnapshotStore(self.db_path.parent / SNAPSHOT_DIR)
        self._snapshotting: threading.Thread | None = None
        self._restore: Restore | None = None
        probe = Store(self.db_path)
        try:
            initialised = probe.is_initialised()
        finally:
            probe.close()
        if initialised:
            # allow_behind: a ledger behind its head record is replayed by CometBFT from its block store
            self._attach(*open_store(self.db_path, None, check=check_integrity, allow_behind=True))

    def _attach(self, store: Store, chain: Chain) -> None:
        self.store, self.chain = store, chain
        self._head = store.head()
        self._head_time_ms = (store.block(self._head.height)[0].time_ms if self._head.height
                              else chain.genesis.genesis_time_ms)
        self.cometbft_height = self._progress.recover(self._head.height).cometbft

    def close(self) -> None:
        if self._snapshotting is not None:
            self._snapshotting.join()
        if self._restore is not None:
            self._restore.discard()
            self._restore = None
        if self.store is not None:
            self.store.close()
            self.store = None
        self._progress.close()

    # -- helpers ------------------------------------------------------------------------------------
    @property
    def head(self) -> Head:
        if self._head is None:
            raise LedgerError("the ledger has no genesis yet (InitChain has not run)", Code.NODE_UNAVAILABLE)
        return self._head

    @property
    def head_time_ms(self) -> int:
        return self._head_time_ms

    def _ready(self) -> tuple[Store, Chain, Head]:
        if self.store is None or self.chain is None or self._head is None:
            raise LedgerError("the ledger has no genesis yet (InitChain has not run)", Code.NODE_UNAVAILABLE)
        return self.store, self.chain, self._head

    def _env(self, chain: Chain, head: Head, height: int, time: Any, proposer_address: bytes) -> BlockEnv:
        """The ledger's environment for CometBFT block ``height`` (the ledger's next height)."""
        if height != self.cometbft_height + 1:
            raise LedgerError(f"CometBFT asks about height {height} but the app's next height is "
                              f"{self.cometbft_height + 1}", Code.INTERNAL_ERROR)
        return BlockEnv(chain.chain_id, head.height + 1, time_ms_of(time), proposer_address.hex())

    def check(self, chain: Chain, raw: bytes) -> CheckedTx:
        """:func:`check_stateless`, remembered by transaction hash (a pure function of the bytes, so the
        cache never changes a result; it only saves re-verifying signatures in proposals and blocks)."""
        key = hashlib.sha256(raw).digest()
        checked = self._checked.get(key)
        if checked is None:
            checked = check_stateless(chain, raw)
            if len(self._checked) >= self._checked_capacity:
                for _ in range(self._checked_capacity // 4 or 1):
                    self._checked.popitem(last=False)
            self._checked[key] = checked
        return checked

    def consensus_connection_lost(self) -> None:
        """The server's consensus connection closed: forget what it finalised and did not commit, so a
        Commit on any later connection can only persist a block finalised there."""
        if self._finalized is not None:
            log.warning("the consensus connection closed after FinalizeBlock at height %d and before Commit: "
                        "the finalised block is forgotten (CometBFT replays it when it reconnects)",
                        self._finalized.height)
        self._finalized = None
        self._executions.clear()

    # -- information --------------------------------------------------------------------------------
    def info(self, req: pb.InfoRequest) -> pb.InfoResponse:
        """The last persisted CometBFT height and app hash (0 and empty before genesis)."""
        if self._head is None:
            return pb.InfoResponse(data="careledger", version=SOFTWARE_VERSION, app_version=APP_VERSION)
        log.info("Info: CometBFT %s asks; app is at height %d (ledger height %d)", req.version,
                 self.cometbft_height, self._head.height)
        return pb.InfoResponse(data="careledger", version=SOFTWARE_VERSION, app_version=APP_VERSION,
                               last_block_height=self.cometbft_height, last_block_app_hash=self._head.app_hash)

    def init_chain(self, req: pb.InitChainRequest) -> pb.InitChainResponse:
        """Initialise the ledger from the genesis in ``app_state_bytes``; repeating it is harmless.

        Raises GenesisError when the genesis is invalid, names another chain id than CometBFT's, or
        differs from the one the store already holds; StoreCorrupted when the store is past genesis.
        """
        genesis = genesis_of_app_state(req.app_state_bytes)
        if req.chain_id != genesis.chain_id:
            raise GenesisError(f"CometBFT's chain_id {req.chain_id!r} differs from the CareLedger genesis "
                               f"chain_id {genesis.chain_id!r}")
        if req.initial_height not in (0, 1):
            raise GenesisError(f"initial_height {req.initial_height} is not supported; CareLedger starts at 1")
        if self.store is None:
            self._attach(*open_store(self.db_path, genesis, check=False, create=True))
        store, chain, head = self._ready()
        if chain.genesis.hash != genesis.hash:
            raise GenesisError("the store already holds a different genesis")
        if head.height != 0 or self.cometbft_height != 0:
            raise StoreCorrupted(f"InitChain at a ledger already at height {head.height}: the app is ahead of "
                                 "CometBFT")
        validators = self.validator_set(store)
        requested = sorted((v.pub_key.ed25519.hex(), v.power) for v in req.validators)
        ours = sorted((v.pub_key.ed25519.hex(), v.power) for v in validators)
        if requested and requested != ours:
            log.warning("CometBFT's genesis validators differ from CareLedger's; CareLedger's genesis wins")
        log.info("InitChain: chain %s, %d validators, app hash %s", genesis.chain_id, len(validators),
                 head.app_hash.hex())
        return pb.InitChainResponse(validators=validators, app_hash=head.app_hash)

    @staticmethod
    def validator_set(store: Store) -> list[pb.ValidatorUpdate]:
        """The committed validators as ABCI updates, sorted by key."""
        return to_validator_updates([{"pub_key": pub, "power": v.power}
                                     for pub, v in governance.validators(store.writer_view)])

    # -- mempool ------------------------------------------------------------------------------------
    def prepare_batch(self, requests: list[pb.Request]) -> None:
        """Before the server answers a run of requests read together: check the new transactions among
        them and load the committed state their admission reads in one query (a hint: the answers are
        the same without it)."""
        txs = [r.check_tx.tx for r in requests
               if r.WhichOneof("value") == "check_tx" and r.check_tx.type == pb.CheckTxRequest.NEW]
        if len(txs) >= 2 and self.store is not None and self.chain is not None:
            self._prefetch(self.store, self.chain, txs, admission=True)

    def check_tx(self, req: pb.CheckTxRequest) -> pb.CheckTxResponse:
        """Admit a transaction to CometBFT's mempool, or refuse it with its stable code.

        A re-check (after each commit, for the transactions still in the mempool) that fails tells the
        evict listeners, so a client waiting for the transaction learns it will never commit.
        """
        try:
            checked = self._recheck(req.tx) if req.type == pb.CheckTxRequest.RECHECK else self._admit(req.tx)
        except LedgerError as exc:
            if req.type == pb.CheckTxRequest.RECHECK:
                tx_hash = hashlib.sha256(req.tx).digest()
                self._checked.pop(tx_hash, None)
                for listener in self.evict_listeners:
                    listener(tx_hash, exc)
            return pb.CheckTxResponse(code=int(exc.code), log=exc.message, codespace=CODESPACE)
        except Exception as exc:  # a bug must not take the mempool connection down
            log.exception("CheckTx failed unexpectedly")
            return pb.CheckTxResponse(code=int(Code.INTERNAL_ERROR), log=f"internal error: {type(exc).__name__}",
                                      codespace=CODESPACE)
        self.mempool_txs[checked.tx.hash] = None
        return pb.CheckTxResponse(code=0, data=checked.tx.hash)

    def _admit(self, raw: bytes) -> CheckedTx:
        store, chain, head = self._ready()
        checked = self.check(chain, raw)
        tx = checked.tx
        view = store.writer_view  # CheckTx runs on the ABCI thread, like Commit: the cached committed view
        expected = self._pending_nonces.get(tx.signer_hex)
        if expected is None:
            expected = committed_nonce(view, tx.signer_hex) + 1
        if tx.nonce < expected and store.has_tx(tx.hash):  # a committed tx's nonce is always used
            raise InvalidTx("transaction is already committed", Code.DUPLICATE_TX)
        env = BlockEnv(chain.chain_id, head.height + 1, self._head_time_ms, "")
        check_admission(chain, view, env, checked, expected)
        self._pending_nonces[tx.signer_hex] = tx.nonce + 1
        return checked

    def _recheck(self, raw: bytes) -> CheckedTx:
        """CometBFT's re-check after a commit, of a transaction this app admitted before.

        Only what a block can have made *invalid* is checked again: the nonce (a committed transaction
        has a used nonce, so duplicates fall here too) and, if the last block wrote the signer's
        identity record, the signer's standing and authorisation. Whether the contract will then
        succeed is for execution to say (a failed transaction is still valid in a block). The mempool
        is advisory: PrepareProposal and ProcessProposal re-validate every transaction in order.
        """
        store, chain, head = self._ready()
        checked = self._checked.get(hashlib.sha256(raw).digest())
        if checked is None:
            return self._admit(raw)
        tx = checked.tx
        view = store.writer_view
        expected = self._pending_nonces.get(tx.signer_hex)
        if expected is None:
            expected = committed_nonce(view, tx.signer_hex) + 1
        if key_key(tx.signer_hex) in self._last_changes:
            env = BlockEnv(chain.chain_id, head.height + 1, self._head_time_ms, "")
            check_admission(chain, view, env, checked, expected)
        else:
            check_nonce(expected, tx.nonce)
        self._pending_nonces[tx.signer_hex] = tx.nonce + 1
        return checked

    def next_nonce(self, signer_hex: str) -> int | None:
        """The nonce the signer's next transaction needs, counting this app's mempool (None: none pending)."""
        return self._pending_nonces.get(signer_hex)

    def is_pending(self, tx_hash: bytes) -> bool:
        return tx_hash in self.mempool_txs or tx_hash in self.mempool_txs_before

    # -- proposals ----------------------------------------------------------------------------------
    def prepare_proposal(self, req: pb.PrepareProposalRequest) -> pb.PrepareProposalResponse:
        """The mempool's transactions that would be valid in order, within the block's limits."""
        store, chain, head = self._ready()
        env = self._env(chain, head, req.height, req.time, req.proposer_address)
        run = BlockExecution(chain, store.writer_view, env, head.app_hash)  # never persisted: a throwaway
        limit = chain.genesis.params.max_block_txs
        chosen: list[bytes] = []
        tx_results: list[pb.ExecTxResult] = []
        committed: list[tuple[bytes, Receipt]] = []
        size = 0
        self._prefetch(store, chain, req.txs)
        for raw in req.txs:
            if len(chosen) >= limit:
                break
            raw_size = tx_proto_size(raw)
            if size + raw_size > req.max_tx_bytes:
                continue
            try:
                checked = self.check(chain, raw)
                receipt = run.add(checked)
            except InvalidTx as exc:
                log.debug("PrepareProposal drops a transaction: %s", exc)
                continue
            chosen.append(raw)
            tx_results.append(self._tx_result(checked, receipt))
            committed.append((checked.tx.hash, receipt))
            size += raw_size
        if len(chosen) != len(req.txs):
            log.info("PrepareProposal at height %d: %d of %d transactions", req.height, len(chosen), len(req.txs))
        result = run.finish() if run.txs else None
        self._executions[self._prepared_key(env, chosen)] = Execution(result, tx_results, True, committed)
        return pb.PrepareProposalResponse(txs=chosen)

    @staticmethod
    def _prepared_key(env: BlockEnv, txs: Any) -> bytes:
        digest = hashlib.sha256(f"{env.height}/{env.time_ms}/{env.proposer}/".encode())
        for raw in txs:
            digest.update(hashlib.sha256(raw).digest())
        return b"prepared/" + digest.digest()

    def _prefetch(self, store: Store, chain: Chain, txs: Any, admission: bool = False) -> None:
        """Check ``txs`` and load the committed state they will read (``admission``: only what CheckTx
        reads) in one query; invalid ones are left for the caller to refuse."""
        keys: list[str] = []
        for raw in txs:
            try:
                keys.extend(read_hints(self.check(chain, raw), admission))
            except InvalidTx:
                continue
        store.writer_view.prefetch(keys)

    def _execute(self, store: Store, chain: Chain, head: Head, env: BlockEnv, txs: Any) -> Execution:
        """Execute a proposed or decided block; invalid transactions are reported and skipped."""
        self._prefetch(store, chain, txs)
        run = BlockExecution(chain, store.writer_view, env, head.app_hash)
        tx_results: list[pb.ExecTxResult] = []
        committed: list[tuple[bytes, Receipt]] = []
        invalid: list[tuple[bytes, InvalidTx]] = []
        for i, raw in enumerate(txs):
            try:
                checked = self.check(chain, raw)
                receipt = run.add(checked)
            except InvalidTx as exc:
                log.warning("block at ledger height %d holds invalid tx %d: %s", env.height, i, exc)
                tx_results.append(pb.ExecTxResult(code=int(exc.code), log=f"not executed: {exc.message}",
                                                  codespace=CODESPACE))
                invalid.append((hashlib.sha256(raw).digest(), exc))
                continue
            tx_results.append(self._tx_result(checked, receipt))
            committed.append((checked.tx.hash, receipt))
        result = run.finish() if run.txs else None
        return Execution(result, tx_results, not invalid, committed, invalid)

    def process_proposal(self, req: pb.ProcessProposalRequest) -> pb.ProcessProposalResponse:
        """Accept a proposal only if every transaction in it is valid, in order (deterministic).

        The execution is kept by block hash, so FinalizeBlock of the same block does not repeat it.
        """
        store, chain, head = self._ready()
        env = self._env(chain, head, req.height, req.time, req.proposer_address)
        if len(req.txs) > chain.genesis.params.max_block_txs:
            log.warning("rejecting proposal at height %d: %d transactions exceed max_block_txs", req.height,
                        len(req.txs))
            return pb.ProcessProposalResponse(status=pb.ProcessProposalResponse.REJECT)
        execution = self._executions.get(self._prepared_key(env, req.txs))
        if execution is None:
            execution = self._execute(store, chain, head, env, req.txs)
        if req.hash:
            self._executions[bytes(req.hash)] = execution
        if not execution.valid:
            log.warning("rejecting proposal at height %d: it holds an invalid transaction", req.height)
            return pb.ProcessProposalResponse(status=pb.ProcessProposalResponse.REJECT)
        return pb.ProcessProposalResponse(status=pb.ProcessProposalResponse.ACCEPT)

    def extend_vote(self, req: pb.ExtendVoteRequest) -> pb.ExtendVoteResponse:
        return pb.ExtendVoteResponse(vote_extension=b"")

    def verify_vote_extension(self, req: pb.VerifyVoteExtensionRequest) -> pb.VerifyVoteExtensionResponse:
        """CareLedger uses no vote extensions: only an empty one is valid."""
        ok = not req.vote_extension
        return pb.VerifyVoteExtensionResponse(status=pb.VerifyVoteExtensionResponse.ACCEPT if ok
                                              else pb.VerifyVoteExtensionResponse.REJECT)

    # -- execution and commit -----------------------------------------------------------------------
    def finalize_block(self, req: pb.FinalizeBlockRequest) -> pb.FinalizeBlockResponse:
        """Execute the decided block on a staged overlay (or reuse ProcessProposal's execution of it);
        nothing is persisted until Commit. A block with no valid transaction leaves the ledger as is."""
        store, chain, head = self._ready()
        env = self._env(chain, head, req.height, req.time, req.proposer_address)
        execution = self._executions.get(bytes(req.hash)) if req.hash else None
        if execution is None:
            execution = self._execute(store, chain, head, env, req.txs)
        self._finalized = _Finalized(req.height, env.proposer, execution)
        result = execution.result
        return pb.FinalizeBlockResponse(
            tx_results=execution.tx_results,
            validator_updates=to_validator_updates(result.validator_updates) if result else [],
            app_hash=result.app_hash if result else head.app_hash)

    @staticmethod
    def _tx_result(checked: CheckedTx, receipt: Receipt) -> pb.ExecTxResult:
        tx = checked.tx
        result = pb.ExecTxResult(code=receipt.code, data=receipt.encode(), log=receipt.message,
                                 codespace=CODESPACE if receipt.code else "")
        add_event(result.events, "careledger_tx", {"code": receipt.code, "signer": tx.signer_hex, "type": tx.type})
        for event in receipt.events:
            add_event(result.events, event["type"], event["attrs"])
        return result

    def commit(self, req: pb.CommitRequest) -> pb.CommitResponse:
        """Persist the finalized block atomically (see :mod:`careledger.abci.progress`), then forget the
        mempool's pending nonces (CometBFT re-checks what is left) and tell the listeners."""
        store, _, head = self._ready()
        finalized = self._finalized
        if finalized is None or finalized.height != self.cometbft_height + 1:
            raise LedgerError("Commit without a finalized block for the next height", Code.INTERNAL_ERROR)
        execution = finalized.execution
        result = execution.result
        self._last_changes = frozenset(result.changes) if result is not None else frozenset()
        if result is None:
            self._progress.write(finalized.height, head.height)
        else:
            header = result.header(head.block_hash.hex(), finalized.proposer)
            self._progress.write(finalized.height, header.height)
            self._head = store.commit_block(header, b"", result.txs, result.receipts, result.changes)
            self._head_time_ms = header.time_ms
            log.debug("committed CometBFT height %d as ledger height %d (%d txs) app hash %s", finalized.height,
                      header.height, len(result.txs), header.app_hash)
        self.cometbft_height = finalized.height
        self._finalized = None
        self._executions.clear()
        self._pending_nonces.clear()
        for tx_hash, _ in execution.committed:
            self._checked.pop(tx_hash, None)
        self.mempool_txs_before, self.mempool_txs = self.mempool_txs, {}
        for tx_hash, _ in execution.committed:
            self.mempool_txs_before.pop(tx_hash, None)
        ledger_height = self.head.height
        interval = self.snapshot_policy.interval
        if interval and finalized.height % interval == 0:
            self._take_snapshot(finalized.height, self.head)
        for listener in self.commit_listeners:
            try:
                listener(ledger_height, execution.committed, execution.invalid)
            except Exception:  # a listener's bug must not stop the chain
                log.exception("commit listener failed")
        return pb.CommitResponse(retain_height=0)

    # -- queries ------------------------------------------------------------------------------------
    def query(self, req: pb.QueryRequest) -> pb.QueryResponse:
        """Read committed state at the latest height; errors carry stable codes.

        ``height`` in requests and responses is CometBFT's; ``/head`` reports the ledger's own height."""
        try:
            store, _, head = self._ready()
            if req.height not in (0, self.cometbft_height):
                raise LedgerError(f"only the latest committed height ({self.cometbft_height}) can be queried",
                                  Code.BAD_REQUEST)
            key, value = self._query(store, head, req.path)
        except LedgerError as exc:
            return pb.QueryResponse(code=int(exc.code), log=exc.message, codespace=CODESPACE,
                                    height=self.cometbft_height)
        return pb.QueryResponse(code=0, key=key, value=value, height=self.cometbft_height)

    def _query(self, store: Store, head: Head, path: str) -> tuple[bytes, bytes]:
        if path == "/head":
            return b"head", codec.encode({"app_hash": head.app_hash.hex(), "block_hash": head.block_hash.hex(),
                                          "cometbft_height": self.cometbft_height, "height": head.height,
                                          "time_ms": self._head_time_ms})
        if path.startswith("/state/"):
            key = path[len("/state/"):]
            raw = store.view().get_raw(key)
            if raw is None:
                raise NotFound(f"no state entry {key[:80]!r}")
            return key.encode(), raw
        if path.startswith("/tx/"):
            try:
                tx_hash = bytes.fromhex(path[len("/tx/"):])
            except ValueError:
                raise LedgerError("a transaction hash is 64 hex characters", Code.BAD_REQUEST) from None
            stored = store.tx(tx_hash)
            doc = {"height": stored.height, "index": stored.index, "message": stored.receipt.message,
                   "receipt": stored.receipt.to_json(), "tx": codec.decode_trusted(stored.raw)}
            return tx_hash, codec.encode(doc)
        if path.startswith("/block/"):
            text = path[len("/block/"):]
            if not text.isdigit():
                raise LedgerError("a block height is a decimal integer", Code.BAD_REQUEST)
            header, block_hash, _ = store.block(int(text))
            return block_hash, header.encode()
        raise LedgerError(f"unknown query path {path[:80]!r} (try /head, /state/<key>, /tx/<hash>, /block/<height>)",
                          Code.BAD_REQUEST)

    # -- state sync -----------------------------------------------------------------------------------
    def _take_snapshot(self, cometbft_height: int, head: Head) -> None:
        """Write the snapshot at ``cometbft_height`` in a background thread (skipped while one is written)."""
        if self._snapshotting is not None and self._snapshotting.is_alive():
            log.info("snapshot at height %d skipped: the previous one is still being written", cometbft_height)
            return
        policy = self.snapshot_policy

        def take() -> None:
            try:
                manifest = self.snapshots.take(self.db_path, cometbft_height, head, policy.chunk_bytes)
                self.snapshots.prune(policy.keep)
                log.info("snapshot at CometBFT height %d (ledger height %d): %d chunks", cometbft_height,
                         head.height, len(manifest.chunk_hashes))
            except Exception:  # a failed snapshot must not stop the chain; the next interval tries again
                log.exception("snapshot at CometBFT height %d failed", cometbft_height)

        self._snapshotting = threading.Thread(target=take, name=f"snapshot-{cometbft_height}", daemon=True)
        self._snapshotting.start()

    def wait_for_snapshot(self, timeout: float | None = None) -> None:
        """Wait for a snapshot being written (tests, shutdown)."""
        if self._snapshotting is not None:
            self._snapshotting.join(timeout)

    def list_snapshots(self, req: pb.ListSnapshotsRequest) -> pb.ListSnapshotsResponse:
        """The snapshots this node holds, newest first."""
        return pb.ListSnapshotsResponse(snapshots=[m.to_abci() for m in self.snapshots.manifests()])

    def load_snapshot_chunk(self, req: pb.LoadSnapshotChunkRequest) -> pb.LoadSnapshotChunkResponse:
        return pb.LoadSnapshotChunkResponse(chunk=self.snapshots.chunk(req.height, req.format, req.chunk))

    def offer_snapshot(self, req: pb.OfferSnapshotRequest) -> pb.OfferSnapshotResponse:
        """Accept a snapshot to restore only while this ledger is at genesis (or has none), and only one of
        this node's genesis whose metadata, chunk list and app hash agree with what CometBFT trusts."""
        results = pb.OfferSnapshotResponse
        snapshot = req.snapshot
        if snapshot.format != FORMAT:
            return results(result=results.REJECT_FORMAT)
        if self._head is not None and (self._head.height > 0 or self.cometbft_height > 0):
            log.error("state sync offered a snapshot, but this ledger is at height %d: state sync needs an empty "
                      "node (remove both its data directories first)", self._head.height)
            return results(result=results.ABORT)
        if self._restore is not None:
            self._restore.discard()
            self._restore = None
        try:
            manifest = Manifest.from_abci(snapshot)
            self._restore = Restore(manifest, bytes(req.app_hash), self.db_path,
                                    self.chain.genesis if self.chain is not None else None)
        except SnapshotRejected as exc:
            log.warning("refusing the snapshot at height %d: %s", snapshot.height, exc)
            return results(result=results.REJECT)
        log.info("restoring the snapshot at CometBFT height %d (ledger height %d, %d chunks)",
                 manifest.cometbft_height, manifest.ledger_height, len(manifest.chunk_hashes))
        return results(result=results.ACCEPT)

    def apply_snapshot_chunk(self, req: pb.ApplySnapshotChunkRequest) -> pb.ApplySnapshotChunkResponse:
        """Apply the next chunk; after the last, swap the restored ledger in (Info then reports it)."""
        results = pb.ApplySnapshotChunkResponse
        restore = self._restore
        if restore is None:
            return results(result=results.ABORT)
        try:
            complete = restore.apply(req.index, req.chunk)
        except BadChunk as exc:
            log.warning("snapshot chunk %d from %s is bad: fetching it again elsewhere", exc.index, req.sender)
            return results(result=results.RETRY, refetch_chunks=[exc.index],
                           reject_senders=[req.sender] if req.sender else [])
        except SnapshotError as exc:
            log.warning("rejecting the snapshot at height %d: %s", restore.manifest.cometbft_height, exc)
            restore.discard()
            self._restore = None
            return results(result=results.REJECT_SNAPSHOT)
        if complete:
            self._install(restore)
        return results(result=results.ACCEPT)

    def _install(self, restore: Restore) -> None:
        """Put the restored ledger in place of this one and reopen it."""
        manifest = restore.manifest
        progress = ProgressRecord(restore.restored_path)
        try:
            progress.write(manifest.cometbft_height, manifest.ledger_height)
        finally:
            progress.close()
        if self.store is not None:
            self.store.close()
            self.store = None
        self._progress.close()
        install_restored(restore)
        self._restore = None
        self._progress = ProgressRecord(self.db_path)
        self._attach(*open_store(self.db_path, None))
        self._finalized = None
        self._executions.clear()
        self._pending_nonces.clear()
        self._checked.clear()
        log.info("state sync restored the ledger at CometBFT height %d: ledger height %d, app hash %s (%d blocks "
                 "re-executed)", self.cometbft_height, self.head.height, self.head.app_hash.hex(), restore.blocks)


def genesis_of_app_state(app_state: bytes) -> Genesis:
    """Parse the CareLedger genesis carried as CometBFT's ``app_state``; raises GenesisError."""
    try:
        return parse_genesis(codec.decode_lenient(app_state))
    except GenesisError:
        raise
    except LedgerError as exc:
        raise GenesisError(f"app_state in CometBFT's genesis is not a CareLedger genesis: {exc.message}") \
            from exc
