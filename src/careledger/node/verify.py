"""``careledger verify``: re-check a whole ledger store from genesis.

First SQLite's own ``integrity_check`` (every page and index entry: a damaged page anywhere is
reported even if no row read below would touch it).
For every block, in order: the header hashes to the stored block hash, links to its predecessor,
names this chain and the next height, is signed by a validator of the consortium as it stood before
the block, and its ``txs_root`` matches the stored transactions. Then every transaction is replayed
from genesis in memory (signatures re-verified on all cores) and the receipts, ``receipts_root`` and
``app_hash`` must equal the stored ones byte for byte. Finally the stored state table must equal the
replayed state exactly, and the state commitment the store maintains at commit must be that of its
rows. Last, the head record (:mod:`careledger.node.headrecord`): a store behind the height its node
acknowledged is reported as ``STORE_ROLLED_BACK``, one that does not hold the block the record names
as ``HEAD_RECORD_MISMATCH`` (a ledger file without a head record beside it, such as a copy, is
reported as such but is not a failure). The first discrepancy is reported with its height and code.

A store written under CometBFT (the node's configuration says so; the store must then hold the ABCI
app's ``abci_progress`` table, and a solo store must not) has blocks without
a CareLedger signature: CometBFT's commit certifies them and lives in CometBFT's block store. For
such a store the signature check becomes: the signature is empty and the proposer is the CometBFT
address (first 20 bytes of SHA-256 of the key) of a validator in the state before this ledger
block or the one before it (CometBFT applies a validator change two of its heights later). Every
other check (hash links, roots, replay, receipts, app hash, final state) is the same; CometBFT's
precommit signatures are not re-checked here.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from careledger.chain.executor import BlockExecution, Chain, CheckedTx, check_stateless, genesis_app_hash, genesis_state
from careledger.chain.registry import default_registry
from careledger.contracts import governance
from careledger.core import codec
from careledger.core.block import BlockEnv, Header
from careledger.core.errors import Code, LedgerError
from careledger.core.genesis import parse_genesis
from careledger.core.state import MemoryState
from careledger.core.tx import signed_body
from careledger.node.integrity import compare_head_record, migrate, reset_head_record, sqlite_integrity
from careledger.node.sigcheck import SignaturePipe
from careledger.node.store import SCHEMA_VERSION, Store, commitment_of, state_chk, tx_chk


@dataclass
class VerifyReport:
    ok: bool
    height: int = 0
    txs: int = 0
    blocks: int = 0
    bad_height: int | None = None
    problem: str = ""
    app_hash: str = ""
    seconds: float = 0.0
    code: str = ""  # the failure's code name: STORE_CORRUPTED, STORE_ROLLED_BACK, HEAD_RECORD_MISMATCH
    head_record: str = ""  # "same", "ahead", "behind", "missing", "reset" or "" (not reached)
    details: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {"ok": self.ok, "height": self.height, "app_hash": self.app_hash, "blocks": self.blocks, "txs": self.txs,
                "bad_height": self.bad_height, "problem": self.problem, "code": self.code or None,
                "head_record": self.head_record or None, "seconds": round(self.seconds, 3),
                "tx_per_s": round(self.txs / self.seconds, 1) if self.seconds else None}


class _Bad(Exception):
    def __init__(self, height: int, problem: str, code: Code = Code.STORE_CORRUPTED) -> None:
        super().__init__(problem)
        self.height = height
        self.problem = problem
        self.code = code


def verify_file(path: Path, progress: Callable[[int, int], None] | None = None,
                engine: str = "solo", reset_head: bool = False) -> VerifyReport:
    """Open the ledger file at ``path``, verify it as written by ``engine`` and close it.

    With ``reset_head``, the head record is not compared; if everything else verifies, it is
    rewritten from the store's head (the operator accepts the store's height: see ``--reset-head``).
    """
    try:
        store = Store(path, create=False)
    except LedgerError as exc:
        return VerifyReport(ok=False, problem=exc.message, code=exc.code.name)
    try:
        report = verify_store(store, progress, engine, check_head=not reset_head)
        if reset_head and report.ok:
            if store.schema_version() < SCHEMA_VERSION:
                migrate(store)  # a store of the previous release: give it its commitment first
            reset_head_record(store)
            report.head_record = "reset"
        return report
    finally:
        store.close()


def verify_store(store: Store, progress: Callable[[int, int], None] | None = None,
                 engine: str = "solo", check_head: bool = True) -> VerifyReport:
    """Verify everything in ``store``; never raises for a bad ledger, returns a report naming the first bad height.

    ``engine`` comes from the node's configuration, never from the data being verified: under
    ``solo`` every block must carry its proposer's signature; under ``cometbft`` blocks are certified
    by CometBFT's commits instead (not re-checked here) and the proposer must be a validator's address
    (and a store behind its head record is reported, not failed: CometBFT replays what it lacks).
    """
    import time

    started = time.perf_counter()
    report = VerifyReport(ok=True)
    problem = sqlite_integrity(store)
    if problem is not None:
        report.ok, report.problem, report.code = False, f"database file is damaged: {problem}", "STORE_CORRUPTED"
        report.seconds = time.perf_counter() - started
        return report
    snapshot = store.view().connection
    snapshot.execute("BEGIN")  # one consistent snapshot even if a node is committing meanwhile
    try:
        _verify(store, report, progress, engine, check_head)
    except _Bad as bad:
        report.ok, report.bad_height, report.problem, report.code = False, bad.height, bad.problem, bad.code.name
    except sqlite3.DatabaseError as exc:
        report.ok, report.problem, report.code = False, f"database file is damaged: {exc}", "STORE_CORRUPTED"
    finally:
        snapshot.execute("COMMIT")
    report.seconds = time.perf_counter() - started
    return report


def _verify(store: Store, report: VerifyReport, progress: Callable[[int, int], None] | None,
            engine: str, check_head: bool) -> None:
    if engine not in ("solo", "cometbft"):
        raise _Bad(0, f"unknown engine {engine!r}")
    if _written_under_cometbft(store) != (engine == "cometbft"):
        raise _Bad(0, f"the store was not written by the {engine} engine its configuration names")
    raw_genesis = store.get_meta("genesis")
    if raw_genesis is None:
        raise _Bad(0, "store has no genesis")
    try:
        genesis = parse_genesis(codec.decode(raw_genesis))
    except LedgerError as exc:
        raise _Bad(0, f"stored genesis is invalid: {exc.message}") from exc
    chain = Chain(genesis, default_registry())
    cometbft = CometbftProposers() if engine == "cometbft" else None
    changes = genesis_state(genesis)
    state = MemoryState()
    state.apply(changes)
    written_at = dict.fromkeys(changes, 0)
    app_hash = genesis_app_hash(genesis, changes)
    if store.get_meta("genesis_app_hash") != app_hash:
        raise _Bad(0, "genesis app hash does not match the genesis")
    prev_hash = genesis.hash
    head = None
    try:
        head = store.head()
    except LedgerError as exc:
        raise _Bad(0, exc.message) from exc
    total = head.height
    pipe = SignaturePipe(chain.genesis.crypto_suite, chain.chain_id, workers=max(1, (os.cpu_count() or 2) - 1))
    inflight: deque[tuple[_Block, int]] = deque()
    inflight_txs = 0
    try:
        for block in _read_blocks(store, chain):
            items = [(c.tx.signer, c.tx.signature, signed_body(c.tx.raw)) for c in block.checked]
            inflight.append((block, pipe.send(items) if items else -1))
            inflight_txs += len(items)
            while inflight and (inflight_txs > 4000 or len(inflight) > 64):
                done, ticket = inflight.popleft()
                inflight_txs -= len(done.checked)
                state_app = _replay(chain, state, done, ticket, pipe, app_hash, prev_hash, written_at, report, total,
                                    progress, cometbft)
                app_hash, prev_hash = state_app
        while inflight:
            done, ticket = inflight.popleft()
            app_hash, prev_hash = _replay(chain, state, done, ticket, pipe, app_hash, prev_hash, written_at, report,
                                          total, progress, cometbft)
    finally:
        pipe.close()
    if head.height != report.height or head.app_hash != app_hash or head.block_hash != prev_hash:
        raise _Bad(report.height, "head record does not match the last block")
    _compare_state(store, state, written_at, report.height)
    report.app_hash = app_hash.hex()
    if store.schema_version() < SCHEMA_VERSION:  # the previous release's store: no commitment, no head record
        report.head_record = "missing"
        return
    try:
        commitment = store.commitment()
    except LedgerError as exc:
        raise _Bad(report.height, exc.message) from exc
    actual = commitment_of(iter(state.items.items()), head.height)
    if commitment != actual:
        raise _Bad(report.height, f"the state commitment at height {commitment.height} ({commitment.count} entries) "
                                  f"is not that of the state ({actual.count} entries)")
    if not check_head:
        return
    try:
        record = store.head_file.read()
        if record is None:
            report.head_record = "missing"
            return
        report.head_record = compare_head_record(store, record, head, commitment, allow_behind=engine == "cometbft")
    except LedgerError as exc:
        raise _Bad(report.height, exc.message, exc.code) from exc


class CometbftProposers:
    """CometBFT addresses that may propose the next ledger block: validators now and one block ago."""

    def __init__(self) -> None:
        self._previous: set[str] = set()

    def next(self, validator_keys: set[str]) -> set[str]:
        current = {_cometbft_address(k) for k in validator_keys}
        allowed = current | self._previous
        self._previous = current
        return allowed


@dataclass
class _Block:
    height: int
    hash: bytes
    header: Header
    signature: bytes
    checked: list[CheckedTx]
    receipts: list[bytes]


def _read_blocks(store: Store, chain: Chain) -> Iterator[_Block]:
    """Stored blocks in order, with the checks that need no state: hashes, checksums, decoding."""
    tx_iter = store.iter_block_txs()
    pending_tx = next(tx_iter, None)
    expected = 1
    for height, block_hash, header_bytes, signature in store.iter_blocks():
        if height != expected:
            raise _Bad(expected, f"block {expected} is missing")
        expected += 1
        if hashlib.sha256(header_bytes).digest() != block_hash:
            raise _Bad(height, "header bytes do not hash to the stored block hash")
        try:
            header = Header.from_json(codec.decode(header_bytes))
        except (LedgerError, KeyError, TypeError) as exc:
            raise _Bad(height, "header is not a canonical header") from exc
        rows = []
        while pending_tx is not None and pending_tx[0] == height:
            rows.append(pending_tx)
            pending_tx = next(tx_iter, None)
        if pending_tx is not None and pending_tx[0] < height:
            raise _Bad(pending_tx[0], "transaction stored at a height with no block")
        if len(rows) != header.tx_count:
            raise _Bad(height, f"{len(rows)} transactions stored, header says {header.tx_count}")
        checked = []
        for i, (_, idx, h, raw, receipt, chk, message) in enumerate(rows):
            if idx != i or hashlib.sha256(raw).digest() != h or tx_chk(raw, receipt, message) != chk:
                raise _Bad(height, f"transaction {i} fails its checksum")
            try:
                checked.append(check_stateless(chain, raw, verify_signature=False))
            except LedgerError as exc:
                raise _Bad(height, f"transaction {i} is invalid: {exc}") from exc
        yield _Block(height, block_hash, header, signature, checked, [r[4] for r in rows])
    if pending_tx is not None:
        raise _Bad(pending_tx[0], "transaction stored beyond the last block")


def _written_under_cometbft(store: Store) -> bool:
    row = store.view().connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'abci_progress'").fetchone()
    return row is not None


def _cometbft_address(pub_hex: str) -> str:
    return hashlib.sha256(bytes.fromhex(pub_hex)).digest()[:20].hex()


def _replay(chain: Chain, state: MemoryState, block: _Block, ticket: int, pipe: SignaturePipe, app_hash: bytes,
            prev_hash: bytes, written_at: dict[str, int], report: VerifyReport, total: int,
            progress: Callable[[int, int], None] | None,
            cometbft: CometbftProposers | None = None) -> tuple[bytes, bytes]:
    height, header = block.height, block.header
    if header.height != height or header.chain_id != chain.chain_id:
        raise _Bad(height, "header names the wrong height or chain")
    if header.prev_hash != prev_hash.hex():
        raise _Bad(height, "header does not link to the previous block")
    validator_keys = {pub for pub, _ in governance.validators(state)}
    if cometbft is not None:
        addresses = cometbft.next(validator_keys)
        if block.signature or header.proposer not in addresses:
            raise _Bad(height, "block proposer is not the CometBFT address of a validator")
    elif header.proposer not in validator_keys:
        raise _Bad(height, "block proposer is not a validator")
    else:
        try:
            chain.suite.verify(bytes.fromhex(header.proposer), "block", chain.chain_id, block.hash,
                               block.signature)
        except LedgerError as exc:
            raise _Bad(height, "block signature does not verify") from exc
    if ticket >= 0:
        verdicts = pipe.verdicts(ticket)
        for i, ok in enumerate(verdicts):
            if ok != 1:
                raise _Bad(height, f"transaction {i} has a bad signature")
    env = BlockEnv(chain.chain_id, height, header.time_ms, header.proposer)
    try:
        run = BlockExecution(chain, state, env, app_hash)
    except LedgerError as exc:  # UPGRADE_REQUIRED: rules this release does not implement
        raise _Bad(height, exc.message, exc.code) from exc
    for i, checked in enumerate(block.checked):
        try:
            run.add(checked)
        except LedgerError as exc:
            raise _Bad(height, f"replay refused transaction {i}: {exc}") from exc
    result = run.finish()
    for i, (receipt, stored) in enumerate(zip(result.receipts, block.receipts, strict=True)):
        if receipt.encode() != stored:
            raise _Bad(height, f"receipt of transaction {i} differs from replay")
    fields = result.header_fields
    if fields["txs_root"] != header.txs_root:
        raise _Bad(height, "txs_root does not match the transactions")
    if fields["receipts_root"] != header.receipts_root:
        raise _Bad(height, "receipts_root does not match the receipts")
    if result.app_hash.hex() != header.app_hash:
        raise _Bad(height, "app hash differs from replay")
    state.apply(result.changes)
    for key in result.changes:
        written_at[key] = height
    report.blocks += 1
    report.txs += len(block.checked)
    report.height = height
    if progress is not None:
        progress(height, total)
    return result.app_hash, block.hash


def _compare_state(store: Store, state: MemoryState, written_at: dict[str, int], head: int) -> None:
    expected = state.items
    seen = 0
    for key, value, chk in store.iter_state():
        want = expected.get(key)
        if want is None:
            raise _Bad(head, f"state holds an entry replay never wrote ({key[:40]!r})")
        if value != want or state_chk(key, value) != chk:
            raise _Bad(written_at.get(key, head), f"state entry {key[:40]!r} differs from replay")
        seen += 1
    if seen != len(expected):
        missing = sorted(set(expected) - {k for k, _, _ in store.iter_state()})
        raise _Bad(written_at.get(missing[0], head) if missing else head,
                   f"state is missing {len(expected) - seen} entries replay wrote")
