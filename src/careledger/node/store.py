"""The block and state store: one SQLite file in WAL mode, written only at commit.

Tables::

    meta    (key, value)                       schema version, genesis bytes, head {height, app_hash,
                                               block_hash}, state commitment {height, count, digest}
    blocks  (height, hash, header, signature)  canonical header bytes; hash = SHA-256(header)
    txs     (hash, height, idx, raw, receipt, message, chk)  chk = SHA-256(SHA-256(raw) receipt 0x00 message)[:8]
    state   (key, value, chk)                  canonical JSON values; chk = row hash[:8]

A block, its transactions and receipts, its state changes, the new head and the new state
commitment are written in one SQLite transaction. ``synchronous=FULL`` (the default, see
docs/architecture.md section 4) flushes the write-ahead log to disk before the commit returns, so
an acknowledged block survives a power loss; ``normal`` survives a crash of the process but may
lose the last commits on power loss. After the SQLite commit the head record outside SQLite is
written and flushed (:mod:`careledger.node.headrecord`), and only then is the block acknowledged.

**State commitment.** ``row hash = SHA-256(key 0x00 value)``; the commitment is the number of state
rows and the sum of their row hashes (as 256-bit big-endian integers) modulo 2^256, updated at
every commit from the rows a block changes. It binds the state table to a height without re-hashing
every row at start-up; :meth:`Store.check_integrity` (and ``careledger verify``) recompute it.

**Checks.** :func:`careledger.node.integrity.check_startup` runs in time independent of the ledger's size: the head,
the last block (hash, transactions, roots), the state commitment's height and row count, and the
head record. :meth:`Store.check_integrity` checks everything: SQLite's ``integrity_check``, every
row's checksum, every hash link, the commitment over every row, and the head record.

**Schema.** ``meta.schema`` is the store's schema version (:data:`SCHEMA_VERSION`). A store of the
previous version (:data:`MIN_SCHEMA_VERSION`..) is migrated in place when a node opens it
(:meth:`Store.migrate`); a newer one is refused with ``STORE_SCHEMA_UNSUPPORTED``.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from careledger.core import codec
from careledger.core.block import Header, Receipt
from careledger.core.errors import Code, NotFound, StoreCorrupted
from careledger.core.genesis import parse_genesis
from careledger.core.proofs import build_proof
from careledger.core.state import prefix_end
from careledger.node.headrecord import HeadFile, HeadRecord, head_path_of

log = logging.getLogger("careledger.node")

SCHEMA_VERSION = 3
"""Version 3 adds the state commitment (meta ``state_commitment``) and the head record file."""
MIN_SCHEMA_VERSION = 2
"""The oldest schema this release migrates (the one every earlier release wrote)."""
SYNC_MODES = ("full", "normal")
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blocks (height INTEGER PRIMARY KEY, hash BLOB NOT NULL, header BLOB NOT NULL,
                                   signature BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS txs (hash BLOB NOT NULL UNIQUE, height INTEGER NOT NULL, idx INTEGER NOT NULL,
                                raw BLOB NOT NULL, receipt BLOB NOT NULL, message TEXT NOT NULL,
                                chk BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS txs_position ON txs (height, idx);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value BLOB NOT NULL, chk BLOB NOT NULL) WITHOUT ROWID;
"""
_MOD = 1 << 256


def row_hash(key: str, value: bytes) -> bytes:
    """SHA-256(key 0x00 value): the hash a state row contributes to the commitment (its chk is the first 8 bytes)."""
    return hashlib.sha256(key.encode() + b"\x00" + value).digest()


def state_chk(key: str, value: bytes) -> bytes:
    return row_hash(key, value)[:8]


def tx_chk(raw: bytes, receipt: bytes, message: str) -> bytes:
    """Checksum of a stored transaction row: its bytes, its receipt and the receipt's human message."""
    return hashlib.sha256(hashlib.sha256(raw).digest() + receipt + b"\x00" + message.encode()).digest()[:8]


@dataclass(frozen=True)
class Head:
    height: int
    app_hash: bytes
    block_hash: bytes


@dataclass(frozen=True)
class StateCommitment:
    """The state table at ``height``: how many rows, and the sum of their row hashes mod 2^256."""

    height: int
    count: int
    digest: bytes

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "digest": self.digest.hex(), "height": self.height}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> StateCommitment:
        return cls(int(doc["height"]), int(doc["count"]), bytes.fromhex(doc["digest"]))

    def moved(self, height: int, count_delta: int, digest_delta: int) -> StateCommitment:
        value = (int.from_bytes(self.digest, "big") + digest_delta) % _MOD
        return StateCommitment(height, self.count + count_delta, value.to_bytes(32, "big"))


EMPTY_COMMITMENT = StateCommitment(0, 0, bytes(32))


def commitment_of(rows: Iterator[tuple[str, bytes]], height: int) -> StateCommitment:
    """The commitment of the given state rows (a full scan: migration, verify, tests)."""
    count, total = 0, 0
    for key, value in rows:
        count += 1
        total += int.from_bytes(row_hash(key, value), "big")
    return StateCommitment(height, count, (total % _MOD).to_bytes(32, "big"))


@dataclass(frozen=True)
class StoredTx:
    hash: bytes
    height: int
    index: int
    raw: bytes
    receipt: Receipt


def _tune(conn: sqlite3.Connection) -> None:
    """A page cache and memory map large enough that reads seldom reach the file system."""
    conn.execute("PRAGMA cache_size=-65536")  # 64 MiB per connection
    conn.execute("PRAGMA mmap_size=1073741824")  # map up to 1 GiB of the database file
    conn.execute("PRAGMA temp_store=MEMORY")


def _connect(path: Path, sync: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'FULL' if sync == 'full' else 'NORMAL'}")
    conn.execute("PRAGMA foreign_keys=OFF")
    _tune(conn)
    return conn


class StateView:
    """Committed state read through one connection (implements core.state.StateReader)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @property
    def connection(self) -> sqlite3.Connection:
        return self._conn

    def get_raw(self, key: str) -> bytes | None:
        row = self._conn.execute("SELECT value, chk FROM state WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        value, chk = row
        if state_chk(key, value) != chk:
            raise StoreCorrupted(f"state entry {key[:40]!r} fails its checksum")
        return bytes(value)

    def get_many(self, keys: list[str]) -> dict[str, bytes | None]:
        """Read many keys in few queries (each SQLite call releases the interpreter lock, so batch them)."""
        found: dict[str, bytes | None] = dict.fromkeys(keys)
        unique = list(found)
        for i in range(0, len(unique), 500):
            chunk = unique[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for key, value, chk in self._conn.execute(
                    f"SELECT key, value, chk FROM state WHERE key IN ({marks})", chunk).fetchall():
                if state_chk(key, value) != chk:
                    raise StoreCorrupted(f"state entry {key[:40]!r} fails its checksum")
                found[key] = bytes(value)
        return found

    def scan_raw(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        rows = self._conn.execute("SELECT key, value, chk FROM state WHERE key >= ? AND key < ? ORDER BY key",
                                  (prefix, prefix_end(prefix))).fetchall()
        for key, value, chk in rows:
            if state_chk(key, value) != chk:
                raise StoreCorrupted(f"state entry {key[:40]!r} fails its checksum")
            yield key, bytes(value)

    def get(self, key: str) -> Any:
        raw = self.get_raw(key)
        return None if raw is None else codec.decode_trusted(raw)

    def scan(self, prefix: str) -> Iterator[tuple[str, Any]]:
        for key, raw in self.scan_raw(prefix):
            yield key, codec.decode_trusted(raw)


class PrefetchedView(StateView):
    """A view over a fixed snapshot of some keys, falling back to the connection for the rest."""

    def __init__(self, conn: sqlite3.Connection, values: dict[str, bytes | None]) -> None:
        super().__init__(conn)
        self._values = values

    def get_raw(self, key: str) -> bytes | None:
        if key in self._values:
            return self._values[key]
        return super().get_raw(key)


_UNCACHED = object()


class CachedStateView(StateView):
    """The engine's view of committed state, with a read cache kept exact by :meth:`Store.commit_block`.

    Only the engine writes, and it writes through the store, so the cache is never stale. Its size
    is bounded; a miss reads SQLite. Cache hits and misses return the same bytes, so results never
    depend on it.
    """

    def __init__(self, conn: sqlite3.Connection, capacity: int = 200_000) -> None:
        super().__init__(conn)
        self._cache: dict[str, bytes | None] = {}
        self._capacity = capacity

    def get_raw(self, key: str) -> bytes | None:
        value = self._cache.get(key, _UNCACHED)
        if value is not _UNCACHED:
            return value  # type: ignore[return-value]
        value = super().get_raw(key)
        if len(self._cache) >= self._capacity:
            self._cache.clear()
        self._cache[key] = value
        return value

    def prefetch(self, keys: list[str]) -> None:
        """Load ``keys`` (present or absent) into the cache with as few queries as possible."""
        missing = [k for k in keys if k not in self._cache]
        if not missing:
            return
        if len(self._cache) + len(missing) >= self._capacity:
            self._cache.clear()
        self._cache.update(self.get_many(missing))

    def committed_values(self, keys: Iterator[str] | list[str]) -> dict[str, bytes | None]:
        """The committed values of ``keys`` (cache first, the rest in few queries); fills no cache."""
        out: dict[str, bytes | None] = {}
        missing = []
        for key in keys:
            value = self._cache.get(key, _UNCACHED)
            if value is _UNCACHED:
                missing.append(key)
            else:
                out[key] = value  # type: ignore[assignment]
        if missing:
            out.update(self.get_many(missing))
        return out

    def apply(self, changes: dict[str, bytes | None]) -> None:
        for key, value in changes.items():
            if key in self._cache:
                self._cache[key] = value

    def clear(self) -> None:
        self._cache.clear()


class Store:
    """One ledger database. The writer connection belongs to the engine; readers get their own.

    ``sync`` is SQLite's synchronous mode for commits: ``full`` (durable across power loss, the
    default) or ``normal`` (durable across a crash of the process only).
    """

    def __init__(self, path: Path, create: bool = True, sync: str = "full") -> None:
        """Open the ledger at ``path``; with ``create=False`` a missing or empty file is refused."""
        self.path = Path(path)
        if sync not in SYNC_MODES:
            raise ValueError(f"sync must be one of {SYNC_MODES}, not {sync!r}")
        self.sync = sync
        if not create and (not self.path.exists() or self.path.stat().st_size == 0):
            raise StoreCorrupted(f"ledger store {path} is missing or empty (was it deleted or truncated?)")
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self.head_file = HeadFile(head_path_of(self.path))
        self._commitment: StateCommitment | None = None
        self._genesis_hash_cache: bytes | None = None
        try:
            self._conn = _connect(self.path, sync)
            if create:
                self._conn.executescript(SCHEMA)
            else:  # never write to an existing store: a table missing from a damaged one is not re-created
                names = {row[0] for row in self._conn.execute("SELECT name FROM sqlite_master")}
                missing = sorted({"meta", "blocks", "txs", "state", "txs_position"} - names)
                if missing:
                    self._conn.close()
                    raise StoreCorrupted(f"ledger store {path} lacks its {', '.join(missing)} table(s)")
        except sqlite3.DatabaseError as exc:
            raise StoreCorrupted(f"ledger store {path} cannot be opened: {exc}") from exc
        self.writer_view = CachedStateView(self._conn)

    # -- connections --------------------------------------------------------------------------------
    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            conn.execute("PRAGMA query_only=ON")
            _tune(conn)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def view(self) -> StateView:
        """A read-only view of committed state for the calling thread."""
        return StateView(self._reader())

    def forget_cached(self) -> None:
        """Drop what the writer keeps in memory (read cache, commitment); the next commit re-reads it
        from the file. For resuming after a failed commit."""
        self.writer_view.clear()
        self._commitment = None

    def close(self) -> None:
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        self._local = threading.local()
        self.head_file.close()
        try:
            self._conn.close()  # checkpoints the write-ahead log into the database file
        except sqlite3.Error as exc:  # a failing disk: what is committed is in the log, SQLite recovers it
            log.warning("closing the ledger store failed: %s", exc)

    # -- meta ---------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> bytes | None:
        row = self._reader().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def is_initialised(self) -> bool:
        return self.get_meta("genesis") is not None

    def schema_version(self) -> int:
        """The store's schema version (meta ``schema``); StoreCorrupted when unreadable."""
        raw = self.get_meta("schema")
        try:
            return int(raw) if raw is not None else 0
        except ValueError as exc:
            raise StoreCorrupted("the store's schema version is unreadable") from exc

    def head(self) -> Head:
        raw = self.get_meta("head")
        if raw is None:
            raise StoreCorrupted("store has no head record")
        try:  # the meta rows carry no checksum: a damaged head is refused, never half-read
            doc = codec.decode_trusted(raw)
            return Head(doc["height"], bytes.fromhex(doc["app_hash"]), bytes.fromhex(doc["block_hash"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreCorrupted("the store's head record is unreadable") from exc

    def commitment(self) -> StateCommitment:
        """The state commitment stored with the head (StoreCorrupted when absent or unreadable)."""
        raw = self.get_meta("state_commitment")
        if raw is None:
            raise StoreCorrupted("the store has no state commitment (a store of an older release that was "
                                 "not migrated)")
        try:
            return StateCommitment.from_json(codec.decode_trusted(raw))
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreCorrupted("the store's state commitment is unreadable") from exc

    def genesis_hash(self) -> bytes:
        """The genesis hash the store was initialised with (the block hash of height 0)."""
        raw = self.get_meta("genesis")
        if raw is None:
            raise StoreCorrupted("store has no genesis")
        try:
            return parse_genesis(codec.decode_trusted(raw)).hash
        except Exception as exc:  # the meta rows carry no checksum
            raise StoreCorrupted("the store's genesis record is unreadable") from exc

    def head_record(self) -> HeadRecord:
        """The head record this store's current head would have (what a commit writes)."""
        head, commitment = self.head(), self.commitment()
        return HeadRecord(head.height, head.app_hash, head.block_hash, self.genesis_hash(), commitment.count,
                          commitment.digest)

    # -- writes -------------------------------------------------------------------------------------
    def put_meta(self, rows: Mapping[str, bytes]) -> None:
        """Write meta rows in one transaction (schema migrations; never the head, which commits write)."""
        with self._tx():
            for key, value in rows.items():
                self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def init_genesis(self, genesis_bytes: bytes, genesis_hash: bytes, changes: dict[str, bytes | None],
                     app_hash: bytes) -> None:
        if self.is_initialised():
            raise StoreCorrupted("store is already initialised", Code.ALREADY_EXISTS)
        head = codec.encode({"app_hash": app_hash.hex(), "block_hash": genesis_hash.hex(), "height": 0})
        hashes = {k: row_hash(k, v) for k, v in changes.items() if v is not None}
        count_delta, digest_delta = len(hashes), sum(int.from_bytes(h, "big") for h in hashes.values())
        commitment = EMPTY_COMMITMENT.moved(0, count_delta, digest_delta)
        with self._tx():
            self._conn.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION).encode(),))
            self._conn.execute("INSERT INTO meta VALUES ('genesis', ?)", (genesis_bytes,))
            self._conn.execute("INSERT INTO meta VALUES ('genesis_app_hash', ?)", (app_hash,))
            self._write_state(changes, hashes)
            self._conn.execute("INSERT INTO meta VALUES ('head', ?)", (head,))
            self._conn.execute("INSERT INTO meta VALUES ('state_commitment', ?)", (codec.encode(commitment.to_json()),))
        self._commitment = commitment
        self.head_file.write(HeadRecord(0, app_hash, genesis_hash, genesis_hash, commitment.count, commitment.digest))

    def commit_block(self, header: Header, signature: bytes, txs: list[bytes], receipts: list[Receipt],
                     changes: dict[str, bytes | None]) -> Head:
        """Write a block, its transactions, receipts, state changes, the new head and state commitment
        atomically; then write and flush the head record. Only then may the block be acknowledged.

        Raises sqlite3.Error (the store is unchanged) or OSError (the head record could not be
        written: the store is one block ahead of it, which the next start-up accepts).
        """
        header_bytes = header.encode()
        block_hash = hashlib.sha256(header_bytes).digest()
        head = codec.encode({"app_hash": header.app_hash, "block_hash": block_hash.hex(), "height": header.height})
        rows = []
        for raw, receipt in zip(txs, receipts, strict=True):
            rb = receipt.encode()
            rows.append((bytes.fromhex(receipt.tx), header.height, receipt.index, raw, rb, receipt.message,
                         tx_chk(raw, rb, receipt.message)))
        hashes = {k: row_hash(k, v) for k, v in changes.items() if v is not None}
        commitment = self._moved_commitment(header.height, changes, hashes)
        with self._tx():
            self._conn.execute("INSERT INTO blocks VALUES (?, ?, ?, ?)",
                               (header.height, block_hash, header_bytes, signature))
            self._conn.executemany("INSERT INTO txs (hash, height, idx, raw, receipt, message, chk) "
                                   "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            self._write_state(changes, hashes)
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('head', ?)", (head,))
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('state_commitment', ?)",
                               (codec.encode(commitment.to_json()),))
        self._commitment = commitment
        self.writer_view.apply(changes)
        app_hash = bytes.fromhex(header.app_hash)
        self.head_file.write(HeadRecord(header.height, app_hash, block_hash, self._genesis_hash(), commitment.count,
                                        commitment.digest))
        return Head(header.height, app_hash, block_hash)

    def _genesis_hash(self) -> bytes:
        if self._genesis_hash_cache is None:
            self._genesis_hash_cache = self.genesis_hash()
        return self._genesis_hash_cache

    def _moved_commitment(self, height: int, changes: Mapping[str, bytes | None],
                          hashes: Mapping[str, bytes]) -> StateCommitment:
        """The commitment after ``changes``: each changed row's old hash out, its new hash in."""
        if self._commitment is None:
            self._commitment = self.commitment()
        old = self.writer_view.committed_values(list(changes))
        count_delta, total = 0, 0
        for key, value in old.items():
            if value is not None:
                count_delta -= 1
                total -= int.from_bytes(row_hash(key, value), "big")
        for digest in hashes.values():
            total += int.from_bytes(digest, "big")
        return self._commitment.moved(height, count_delta + len(hashes), total)

    def _write_state(self, changes: Mapping[str, bytes | None], hashes: Mapping[str, bytes]) -> None:
        # Written in key order: B-tree inserts in order touch each page once (about 3x faster for
        # scattered keys such as pack serials).
        puts = sorted((k, v, hashes[k][:8]) for k, v in changes.items() if v is not None)
        dels = sorted((k,) for k, v in changes.items() if v is None)
        if puts:
            self._conn.executemany("INSERT OR REPLACE INTO state VALUES (?, ?, ?)", puts)
        if dels:
            self._conn.executemany("DELETE FROM state WHERE key = ?", dels)

    class _Tx:
        def __init__(self, conn: sqlite3.Connection) -> None:
            self.conn = conn

        def __enter__(self) -> None:
            self.conn.execute("BEGIN IMMEDIATE")

        def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
            if exc_type is None:
                try:
                    self.conn.execute("COMMIT")
                except BaseException:
                    if self.conn.in_transaction:
                        self.conn.execute("ROLLBACK")
                    raise
            elif self.conn.in_transaction:  # SQLite rolls some failures (a full disk) back by itself
                self.conn.execute("ROLLBACK")

    def _tx(self) -> Store._Tx:
        return Store._Tx(self._conn)

    # -- reads --------------------------------------------------------------------------------------
    def block(self, height: int) -> tuple[Header, bytes, bytes]:
        """(header, block hash, signature) at ``height``; raises NotFound."""
        row = self._reader().execute("SELECT hash, header, signature FROM blocks WHERE height = ?",
                                     (height,)).fetchone()
        if row is None:
            raise NotFound(f"no block at height {height}")
        block_hash, header_bytes, signature = (bytes(x) for x in row)
        if hashlib.sha256(header_bytes).digest() != block_hash:
            raise StoreCorrupted(f"block {height} header does not match its hash")
        return Header.from_json(codec.decode_trusted(header_bytes)), block_hash, signature

    def block_txs(self, height: int) -> list[StoredTx]:
        rows = self._reader().execute(
            "SELECT hash, height, idx, raw, receipt, message, chk FROM txs WHERE height = ? ORDER BY idx",
            (height,)).fetchall()
        return [self._stored_tx(r) for r in rows]

    def tx(self, tx_hash: bytes) -> StoredTx:
        row = self._reader().execute(
            "SELECT hash, height, idx, raw, receipt, message, chk FROM txs WHERE hash = ?", (tx_hash,)).fetchone()
        if row is None:
            raise NotFound(f"no committed transaction {tx_hash.hex()}")
        return self._stored_tx(row)

    def has_tx(self, tx_hash: bytes) -> bool:
        return self._reader().execute("SELECT 1 FROM txs WHERE hash = ?", (tx_hash,)).fetchone() is not None

    @staticmethod
    def _stored_tx(row: tuple[Any, ...]) -> StoredTx:
        h, height, idx, raw, receipt, message, chk = row
        raw, receipt = bytes(raw), bytes(receipt)
        if tx_chk(raw, receipt, message) != bytes(chk) or hashlib.sha256(raw).digest() != bytes(h):
            raise StoreCorrupted(f"transaction at height {height} index {idx} fails its checksum")
        return StoredTx(bytes(h), height, idx, raw, Receipt.from_json(codec.decode_trusted(receipt), message))

    def iter_blocks(self) -> Iterator[tuple[int, bytes, bytes, bytes]]:
        """(height, hash, header bytes, signature) in height order, for verification."""
        cur = self._reader().execute("SELECT height, hash, header, signature FROM blocks ORDER BY height")
        for height, h, header, sig in cur:
            yield height, bytes(h), bytes(header), bytes(sig)

    def iter_block_txs(self) -> Iterator[tuple[int, int, bytes, bytes, bytes, bytes, str]]:
        """(height, idx, hash, raw, receipt, chk, message) in block order."""
        cur = self._reader().execute("SELECT height, idx, hash, raw, receipt, chk, message FROM txs "
                                     "ORDER BY height, idx")
        for height, idx, h, raw, receipt, chk, message in cur:
            yield height, idx, bytes(h), bytes(raw), bytes(receipt), bytes(chk), message

    def iter_state(self) -> Iterator[tuple[str, bytes, bytes]]:
        cur = self._reader().execute("SELECT key, value, chk FROM state ORDER BY key")
        for key, value, chk in cur:
            yield key, bytes(value), bytes(chk)

    # -- integrity (careledger.node.integrity) ------------------------------------------------------------
    def check_integrity(self) -> Head:
        """Everything: SQLite's integrity check, every row, every link, the commitment, the head record."""
        from careledger.node.integrity import check_integrity

        return check_integrity(self)


def tx_proof(store: Store, tx_hash: bytes) -> dict[str, Any]:
    """The inclusion proof bundle of a committed transaction (see careledger.core.proofs)."""
    stored = store.tx(tx_hash)
    header, _, signature = store.block(stored.height)
    txs = store.block_txs(stored.height)
    return build_proof(header, signature, [t.raw for t in txs], [t.receipt for t in txs], stored.index)
