"""Checking a ledger store: at start-up (fast), in full (``careledger verify``), and migrating old ones.

**Start-up** (:func:`check_startup`) reads a bounded number of rows whatever the ledger's size:

* the head (meta) and the state commitment, which must name the same height;
* the last block: its header hashes to its stored hash, links to the block before it, carries the
  head's app hash, and its stored transactions are all there, pass their checksums and give the
  header's ``txs_root`` and ``receipts_root``; nothing is stored above it;
* with ``count_rows`` (off at start-up: it is the one step that grows with the ledger), the number of
  state rows equals the commitment's count (one ``count(*)``: about 0.09 s per million rows when
  cached, 0.6 s from disk); the solo engine runs it (:func:`check_row_count`) before its first block
  instead, while the API already serves;
* the head record (:mod:`careledger.node.headrecord`): the store must not be behind it
  (``STORE_ROLLED_BACK``) and must hold the very block it names (``HEAD_RECORD_MISMATCH``).

**In full** (:func:`check_integrity`): SQLite's ``PRAGMA integrity_check`` (every page, every index
entry), every row's checksum, every hash link and transaction count, the state commitment
recomputed over every row, and the head record. ``careledger verify`` adds a replay of every
transaction on top (:mod:`careledger.node.verify`).

What each catches is tabled in docs/architecture.md section 4.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import Callable, Iterator

from careledger.core import codec
from careledger.core.block import Header, txs_root
from careledger.core.errors import Code, StoreCorrupted
from careledger.core.merkle import merkle_root
from careledger.node.headrecord import HeadRecord
from careledger.node.store import (
    MIN_SCHEMA_VERSION,
    SCHEMA_VERSION,
    Head,
    StateCommitment,
    Store,
    commitment_of,
    state_chk,
    tx_chk,
)

log = logging.getLogger("careledger.node")

RESET_HINT = ("if the store is intact and you accept its height as the last one this node acknowledged, run "
              "`careledger verify --home HOME --reset-head`; otherwise restore a backup (`careledger restore`)")


def _damaged(exc: sqlite3.DatabaseError) -> StoreCorrupted:
    return StoreCorrupted(f"database file is damaged: {exc}")


# -- the head record ----------------------------------------------------------------------------------------

def compare_head_record(store: Store, record: HeadRecord | None, head: Head, commitment: StateCommitment,
                        allow_behind: bool = False) -> str:
    """How the store stands against the head record: ``"same"`` (the record names the store's head),
    ``"ahead"`` (the store holds the record's block and more: a crash between a commit and its record,
    so the record should be rewritten) or, with ``allow_behind``, ``"behind"``.

    ``allow_behind`` is for the CometBFT engine, whose own block store is the record of what was
    decided: CometBFT replays the missing blocks through FinalizeBlock and Commit and halts unless
    each gives the app hash it recorded. Raises StoreCorrupted: STORE_ROLLED_BACK when the store is
    behind the record (blocks this node acknowledged are gone) and that is not allowed;
    HEAD_RECORD_MISMATCH when the record is missing, belongs to another chain, or names a block the
    store does not hold.
    """
    if record is None:
        raise StoreCorrupted(f"the head record {store.head_file.path.name} is missing, so the node cannot tell "
                             f"whether this store lost blocks it acknowledged; {RESET_HINT}", Code.HEAD_RECORD_MISMATCH)
    if record.genesis_hash != store.genesis_hash():
        raise StoreCorrupted("the head record belongs to another chain", Code.HEAD_RECORD_MISMATCH)
    if head.height < record.height:
        if allow_behind:
            return "behind"
        raise StoreCorrupted(
            f"the store is at height {head.height} but this node committed and acknowledged height "
            f"{record.height}: blocks {head.height + 1}..{record.height} are gone (was the write-ahead log "
            f"deleted or truncated, or an old copy of the ledger put back?); restore a backup "
            f"(`careledger restore`) or, to accept the loss, `careledger verify --home HOME --reset-head`",
            Code.STORE_ROLLED_BACK)
    if head.height == record.height:
        if (record.block_hash, record.app_hash) != (head.block_hash, head.app_hash) or \
                (record.state_count, record.state_digest) != (commitment.count, commitment.digest):
            raise StoreCorrupted(f"the store's block {head.height} or its state is not the one this node committed "
                                 f"(head record differs); {RESET_HINT}", Code.HEAD_RECORD_MISMATCH)
        return "same"
    if record.height == 0:
        same = record.block_hash == store.genesis_hash()
    else:
        row = store.view().connection.execute("SELECT hash, header FROM blocks WHERE height = ?",
                                              (record.height,)).fetchone()
        same = row is not None and bytes(row[0]) == record.block_hash and \
            codec.decode_trusted(bytes(row[1])).get("app_hash") == record.app_hash.hex()
    if not same:
        raise StoreCorrupted(f"the store does not hold the block {record.height} this node committed "
                             f"(head record differs); {RESET_HINT}", Code.HEAD_RECORD_MISMATCH)
    return "ahead"


def reset_head_record(store: Store) -> HeadRecord:
    """Write the head record from the store's own head (after a full verify, by the operator's choice)."""
    return store.head_file.write(store.head_record())


# -- start-up -----------------------------------------------------------------------------------------------

def check_startup(store: Store, repair_head: bool = False, count_rows: bool = False,
                  allow_behind: bool = False) -> Head:
    """The start-up check (module docstring); returns the head. With ``repair_head``, a head record
    behind the store (a crash between commit and record) is brought up to date; ``allow_behind`` is
    :func:`compare_head_record`'s.

    Raises StoreCorrupted (STORE_CORRUPTED for damage, STORE_ROLLED_BACK, HEAD_RECORD_MISMATCH).
    """
    try:
        head = store.head()
        commitment = store.commitment()
        if commitment.height != head.height:
            raise StoreCorrupted(f"the state commitment is for height {commitment.height}, the head is at "
                                 f"{head.height}")
        _check_last_block(store, head)
        if count_rows:
            check_row_count(store)
        standing = compare_head_record(store, store.head_file.read(), head, commitment, allow_behind)
    except sqlite3.DatabaseError as exc:
        raise _damaged(exc) from exc
    if standing == "ahead" and repair_head:
        reset_head_record(store)
    elif standing == "behind":
        log.warning("the ledger is at height %d, behind its head record: CometBFT must replay the rest",
                    head.height)
    return head


def check_row_count(store: Store) -> int:
    """Refuse (StoreCorrupted) a state table whose number of rows is not the commitment's, both read in
    one snapshot (a node may be committing meanwhile); returns the count. Catches rows deleted or
    added outside the node without reading them."""
    conn = store.view().connection
    conn.execute("BEGIN")
    try:
        commitment = store.commitment()  # the same thread's connection: the same snapshot
        (rows,) = conn.execute("SELECT count(*) FROM state").fetchone()
    finally:
        conn.execute("COMMIT")
    if rows != commitment.count:
        raise StoreCorrupted(f"the state table holds {rows} entries; the commitment at height {commitment.height} "
                             f"says {commitment.count} (entries deleted or added outside the node?)")
    return int(rows)


def _check_last_block(store: Store, head: Head) -> None:
    conn = store.view().connection
    last = conn.execute("SELECT height, hash, header FROM blocks ORDER BY height DESC LIMIT 1").fetchone()
    above = conn.execute("SELECT height FROM txs WHERE height > ? ORDER BY height LIMIT 1", (head.height,)).fetchone()
    if above is not None:
        raise StoreCorrupted(f"transactions are stored at height {above[0]}, above the head {head.height}")
    if head.height == 0:
        if last is not None:
            raise StoreCorrupted(f"head says height 0 but block {last[0]} is stored")
        if head.block_hash != store.genesis_hash():
            raise StoreCorrupted("head at height 0 does not name the genesis")
        return
    if last is None or last[0] != head.height:
        raise StoreCorrupted(f"head says height {head.height} but the last stored block is "
                             f"{0 if last is None else last[0]}")
    height, block_hash, header_bytes = last[0], bytes(last[1]), bytes(last[2])
    if hashlib.sha256(header_bytes).digest() != block_hash:
        raise StoreCorrupted(f"block {height} header does not match its hash")
    header = Header.from_json(codec.decode_trusted(header_bytes))
    if header.app_hash != head.app_hash.hex() or block_hash != head.block_hash:
        raise StoreCorrupted("head does not match the last stored block")
    if height > 1:
        prev = conn.execute("SELECT hash FROM blocks WHERE height = ?", (height - 1,)).fetchone()
        if prev is None or bytes(prev[0]).hex() != header.prev_hash:
            raise StoreCorrupted(f"block {height} does not link to block {height - 1}")
    elif header.prev_hash != store.genesis_hash().hex():
        raise StoreCorrupted("block 1 does not link to the genesis")
    rows = conn.execute("SELECT hash, idx, raw, receipt, message, chk FROM txs WHERE height = ? ORDER BY idx",
                        (height,)).fetchall()
    if len(rows) != header.tx_count:
        raise StoreCorrupted(f"block {height} has {len(rows)} stored transactions, its header says {header.tx_count}")
    raws, receipts = [], []
    for i, (h, idx, raw_cell, receipt_cell, message, chk) in enumerate(rows):
        raw, receipt = bytes(raw_cell), bytes(receipt_cell)
        if idx != i or tx_chk(raw, receipt, message) != bytes(chk) or hashlib.sha256(raw).digest() != bytes(h):
            raise StoreCorrupted(f"transaction at height {height} index {idx} fails its checksum")
        raws.append(raw)
        receipts.append(receipt)
    if txs_root(raws).hex() != header.txs_root or merkle_root(receipts).hex() != header.receipts_root:
        raise StoreCorrupted(f"block {height}'s transactions do not give its header's roots")


# -- in full ------------------------------------------------------------------------------------------------

def sqlite_integrity(store: Store) -> str | None:
    """SQLite's own ``integrity_check`` (every page and index entry): None when sound, else its first finding."""
    try:
        result = store.view().connection.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    return None if result == [("ok",)] else str(result[0][0])[:200]


def check_integrity(store: Store) -> Head:
    """Refuse (StoreCorrupted, or the head record's codes) unless SQLite's structure, every row checksum,
    every link, the state commitment and the head record agree."""
    problem = sqlite_integrity(store)
    if problem is not None:
        raise StoreCorrupted(f"database file is damaged: {problem}")
    try:
        head = _check_rows(store)
        commitment = store.commitment()
        actual = commitment_of(((k, v) for k, v, _ in store.iter_state()), head.height)
        if commitment != actual:
            raise StoreCorrupted(f"the state table ({actual.count} entries) does not match its commitment at height "
                                 f"{commitment.height} ({commitment.count} entries)")
        record = store.head_file.read()
        if record is not None:  # a copy of the ledger file alone has none
            compare_head_record(store, record, head, commitment)
    except sqlite3.DatabaseError as exc:
        raise _damaged(exc) from exc
    return head


def _check_rows(store: Store) -> Head:
    head = store.head()
    for key, value, chk in store.iter_state():
        if state_chk(key, value) != chk:
            raise StoreCorrupted(f"state entry {key[:40]!r} fails its checksum")
    counts: dict[int, int] = {}
    for height, idx, h, raw, receipt, chk, message in store.iter_block_txs():
        if tx_chk(raw, receipt, message) != chk or hashlib.sha256(raw).digest() != h:
            raise StoreCorrupted(f"transaction at height {height} index {idx} fails its checksum")
        counts[height] = counts.get(height, 0) + 1
    expected = 1
    last_hash, last_header = None, None
    for height, h, header, _sig in store.iter_blocks():
        if height != expected:
            raise StoreCorrupted(f"block {expected} is missing")
        if hashlib.sha256(header).digest() != h:
            raise StoreCorrupted(f"block {height} header does not match its hash")
        doc = codec.decode_trusted(header)
        if last_hash is not None and doc["prev_hash"] != last_hash.hex():
            raise StoreCorrupted(f"block {height} does not link to block {height - 1}")
        if doc["tx_count"] != counts.get(height, 0):
            raise StoreCorrupted(f"block {height} has {counts.get(height, 0)} stored transactions, "
                                 f"its header says {doc['tx_count']}")
        last_hash, last_header, expected = h, doc, expected + 1
    orphans = sorted(h for h in counts if not 1 <= h < expected)
    if orphans:
        raise StoreCorrupted(f"transactions are stored at height {orphans[0]}, which has no block")
    if head.height != expected - 1:
        raise StoreCorrupted(f"head says height {head.height} but the last stored block is {expected - 1}")
    if last_header is not None and (last_header["app_hash"] != head.app_hash.hex() or last_hash != head.block_hash):
        raise StoreCorrupted("head does not match the last stored block")
    return head


# -- schema migration ---------------------------------------------------------------------------------------

def _checked_rows(store: Store) -> Iterator[tuple[str, bytes]]:
    for key, value, chk in store.iter_state():
        if state_chk(key, value) != chk:
            raise StoreCorrupted(f"state entry {key[:40]!r} fails its checksum")
        yield key, value


def _migrate_2_to_3(store: Store) -> None:
    """Schema 3 adds the state commitment and the head record. The commitment is computed once over
    every row (checking each row's checksum); the head record is written *first*, so a crash between
    the two leaves a version-2 store with a matching record, and the migration simply runs again."""
    head = store.head()
    commitment = commitment_of(_checked_rows(store), head.height)
    existing = store.head_file.read()
    if existing is not None:
        compare_head_record(store, existing, head, commitment)
    store.head_file.write(HeadRecord(head.height, head.app_hash, head.block_hash, store.genesis_hash(),
                                     commitment.count, commitment.digest))
    store.put_meta({"state_commitment": codec.encode(commitment.to_json()), "schema": b"3"})


MIGRATIONS: dict[int, Callable[[Store], None]] = {2: _migrate_2_to_3}
"""Migration from schema version N to N + 1, by N."""


def migrate(store: Store) -> list[int]:
    """Bring the store to :data:`SCHEMA_VERSION`; returns the versions migrated from (empty: none needed).

    Raises StoreCorrupted with STORE_SCHEMA_UNSUPPORTED for a store newer than this release or older
    than :data:`MIN_SCHEMA_VERSION`.
    """
    version = store.schema_version()
    if version > SCHEMA_VERSION:
        raise StoreCorrupted(f"the store has schema version {version}, written by a newer release; this release "
                             f"reads versions {MIN_SCHEMA_VERSION} to {SCHEMA_VERSION}", Code.STORE_SCHEMA_UNSUPPORTED)
    if version < MIN_SCHEMA_VERSION:
        raise StoreCorrupted(f"the store has schema version {version}; this release migrates versions "
                             f"{MIN_SCHEMA_VERSION} to {SCHEMA_VERSION} only", Code.STORE_SCHEMA_UNSUPPORTED)
    done = []
    try:
        while version < SCHEMA_VERSION:
            MIGRATIONS[version](store)
            done.append(version)
            version = store.schema_version()
    except sqlite3.DatabaseError as exc:
        raise _damaged(exc) from exc
    return done
