"""``careledger verify``: re-check a whole ledger store from genesis.

For every block, in order: the header hashes to the stored block hash, links to its predecessor,
names this chain and the next height, is signed by a validator of the consortium as it stood before
the block, and its ``txs_root`` matches the stored transactions. Then every transaction is replayed
from genesis in memory (signatures re-verified on all cores) and the receipts, ``receipts_root`` and
``app_hash`` must equal the stored ones byte for byte. Finally the stored state table must equal the
replayed state exactly. The first discrepancy is reported with its height.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from careledger.contracts import default_registry, governance
from careledger.core import codec
from careledger.core.block import BlockEnv, Header
from careledger.core.errors import LedgerError
from careledger.core.executor import Chain, CheckedTx, check_stateless, execute_block, genesis_app_hash, genesis_state
from careledger.core.genesis import parse_genesis
from careledger.core.state import MemoryState
from careledger.node.store import Store, state_chk, tx_chk


@dataclass
class VerifyReport:
    ok: bool
    height: int = 0
    txs: int = 0
    blocks: int = 0
    bad_height: int | None = None
    problem: str = ""
    seconds: float = 0.0
    details: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {"ok": self.ok, "height": self.height, "blocks": self.blocks, "txs": self.txs,
                "bad_height": self.bad_height, "problem": self.problem, "seconds": round(self.seconds, 3),
                "tx_per_s": round(self.txs / self.seconds, 1) if self.seconds else None}


class _Bad(Exception):
    def __init__(self, height: int, problem: str) -> None:
        super().__init__(problem)
        self.height = height
        self.problem = problem


def _verify_signatures(chain: Chain, raws: list[bytes], pool: ThreadPoolExecutor) -> list[CheckedTx | LedgerError]:
    def one(raw: bytes) -> CheckedTx | LedgerError:
        try:
            return check_stateless(chain, raw)
        except LedgerError as exc:
            return exc

    if len(raws) < 64:
        return [one(r) for r in raws]
    return list(pool.map(one, raws, chunksize=64))


def verify_store(store: Store, progress: Callable[[int, int], None] | None = None) -> VerifyReport:
    """Verify everything in ``store``; never raises for a bad ledger, returns a report naming the first bad height."""
    import time

    started = time.perf_counter()
    report = VerifyReport(ok=True)
    try:
        _verify(store, report, progress)
    except _Bad as bad:
        report.ok, report.bad_height, report.problem = False, bad.height, bad.problem
    except sqlite3.DatabaseError as exc:
        report.ok, report.problem = False, f"database file is damaged: {exc}"
    report.seconds = time.perf_counter() - started
    return report


def _verify(store: Store, report: VerifyReport, progress: Callable[[int, int], None] | None) -> None:
    raw_genesis = store.get_meta("genesis")
    if raw_genesis is None:
        raise _Bad(0, "store has no genesis")
    try:
        genesis = parse_genesis(codec.decode(raw_genesis))
    except LedgerError as exc:
        raise _Bad(0, f"stored genesis is invalid: {exc.message}") from exc
    chain = Chain(genesis, default_registry())
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
    pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2)
    txs_by_height: dict[int, list[tuple[int, bytes, bytes, bytes, bytes, str]]] = {}
    tx_iter = store.iter_block_txs()
    pending_tx = next(tx_iter, None)
    expected = 1
    try:
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
            if header.height != height or header.chain_id != chain.chain_id:
                raise _Bad(height, "header names the wrong height or chain")
            if header.prev_hash != prev_hash.hex():
                raise _Bad(height, "header does not link to the previous block")
            validator_keys = {v["pub_key"] for v in governance.validators(state)}
            if header.proposer not in validator_keys:
                raise _Bad(height, "block proposer is not a validator")
            try:
                chain.suite.verify(bytes.fromhex(header.proposer), "block", chain.chain_id, block_hash, signature)
            except LedgerError as exc:
                raise _Bad(height, "block signature does not verify") from exc
            rows = []
            while pending_tx is not None and pending_tx[0] == height:
                rows.append(pending_tx)
                pending_tx = next(tx_iter, None)
            if pending_tx is not None and pending_tx[0] < height:
                raise _Bad(pending_tx[0], "transaction stored at a height with no block")
            if len(rows) != header.tx_count:
                raise _Bad(height, f"{len(rows)} transactions stored, header says {header.tx_count}")
            raws = []
            for i, (_, idx, h, raw, receipt, chk, _msg) in enumerate(rows):
                if idx != i or hashlib.sha256(raw).digest() != h or tx_chk(raw, receipt) != chk:
                    raise _Bad(height, f"transaction {i} fails its checksum")
                raws.append(raw)
            checked = _verify_signatures(chain, raws, pool)
            by_raw = {c.tx.raw: c for c in checked if isinstance(c, CheckedTx)}
            for i, c in enumerate(checked):
                if isinstance(c, LedgerError):
                    raise _Bad(height, f"transaction {i} is invalid: {c}")
            env = BlockEnv(chain.chain_id, height, header.time_ms, header.proposer)
            try:
                result = execute_block(chain, state, env, app_hash, raws, checker=by_raw.__getitem__)
            except LedgerError as exc:
                raise _Bad(height, f"replay refused the block: {exc}") from exc
            for i, (receipt, row) in enumerate(zip(result.receipts, rows, strict=True)):
                if receipt.encode() != row[4]:
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
            app_hash, prev_hash = result.app_hash, block_hash
            report.blocks += 1
            report.txs += len(raws)
            report.height = height
            if progress is not None:
                progress(height, total)
    finally:
        pool.shutdown()
    if pending_tx is not None:
        raise _Bad(pending_tx[0], "transaction stored beyond the last block")
    if head.height != report.height or head.app_hash != app_hash or head.block_hash != prev_hash:
        raise _Bad(report.height, "head record does not match the last block")
    _compare_state(store, state, written_at, report.height)
    txs_by_height.clear()


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
