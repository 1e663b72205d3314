"""State-sync snapshots: how a new CometBFT node joins from a snapshot instead of replaying every block.

CometBFT's state sync (ABCI ``ListSnapshots``, ``LoadSnapshotChunk`` on the nodes that serve,
``OfferSnapshot`` and ``ApplySnapshotChunk`` on the node that joins) hands the joining app a
snapshot taken by its peers, in chunks, and the app hash its light client verified for that height
(from the header of the next block). The app must rebuild exactly that state, or refuse.

**What a snapshot holds (format 1).** CareLedger's app hash chains every block's changeset
(``app_hash(h) = SHA-256(tag || h || app_hash(h-1) || changes_root(h))``, docs/protocol.md), so
state alone cannot be checked against a trusted app hash: the changesets since genesis are needed.
A snapshot at CometBFT height ``H`` is therefore the ledger's history up to the ledger height ``h``
that ``H`` left: the genesis document, then every block's header, signature and transactions. No
state, receipt or message is sent; the joining app recomputes them. The stream is a sequence of
records (varint length, then canonical JSON), compressed with zlib and cut into chunks of
``chunk_bytes``::

    {"app_hash", "chain_id", "cometbft_height", "format": 1, "genesis": hex, "height"}   first
    {"header": {...}, "signature": hex, "txs": [hex, ...]}                                 per block
    {"blocks": h, "end": true}                                                              last

Blocks are immutable once committed, so a snapshot taken after the commit of ``H`` (in a
background thread, while later blocks commit) is the same on every node: peers advertise identical
snapshots and the joining node fetches chunks from any of them.

**What the joining app checks** (:class:`Restore`): the snapshot's metadata lists every chunk's
SHA-256 and the snapshot hash commits to that list; a chunk that does not match is refetched from
another peer and its sender rejected. Every block is *re-executed* into a fresh store through
:class:`~careledger.chain.executor.BlockExecution` (signatures checked, as in a block proposal) and
its recomputed header must equal the one sent, byte for byte; at the end the app hash must be the
one CometBFT's light client trusts. Any difference rejects the whole snapshot and leaves the node's
ledger untouched: the restored store is built beside it and swapped in only when complete. So a
peer can make state sync fail, never make it succeed with a wrong ledger. The restored node holds
the whole history (proofs, ``careledger verify``) like any other.

**Where.** Snapshots live beside the ledger in ``<data>/snapshots/<H>/`` (``manifest.json`` and
``chunk-NNNNN`` files); :class:`SnapshotPolicy` (``<data>/statesync.json``, written by ``careledger
net init``) says how often to take one (every ``interval`` CometBFT heights; 0: never) and how many
to keep. A restore is built in ``<data>/statesync-restore/``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from careledger.abci import abci_pb2 as pb
from careledger.abci.wire import FrameError, IncompleteFrame, decode_uvarint, encode_uvarint
from careledger.chain.executor import BlockExecution, Chain, check_stateless
from careledger.core import codec
from careledger.core.block import BlockEnv, Header
from careledger.core.errors import InvalidTx, LedgerError
from careledger.core.genesis import Genesis, parse_genesis
from careledger.node.startup import open_store
from careledger.node.store import Head, Store

log = logging.getLogger("careledger.abci.snapshots")

FORMAT = 1
HASH_TAG = b"careledger/snapshot/1\x00"
DEFAULT_CHUNK_BYTES = 1 << 20  # CometBFT accepts chunk messages up to 16 MB
MAX_CHUNKS = 100_000
MAX_RECORD_BYTES = 256 << 20  # one block's record: far above max_block_txs x max_tx_bytes
INFLATE_STEP = 4 << 20  # decompress at most this much at a time (a chunk may inflate a lot)
POLICY_FILE = "statesync.json"
SNAPSHOT_DIR = "snapshots"
RESTORE_DIR = "statesync-restore"


class SnapshotError(Exception):
    """A snapshot cannot be offered, served or restored; ``reason`` says why (logged, never hashed)."""


class SnapshotRejected(SnapshotError):
    """The snapshot's content is wrong (or not for this chain): reject the whole snapshot."""


class BadChunk(SnapshotError):
    """A chunk does not match the hash the snapshot's metadata lists for it: fetch it again elsewhere."""

    def __init__(self, index: int) -> None:
        super().__init__(f"chunk {index} does not match its hash")
        self.index = index


# -- policy ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SnapshotPolicy:
    """How often this node takes snapshots for others to state-sync from."""

    interval: int = 0  # take one after every CometBFT height divisible by this; 0: never
    keep: int = 2  # snapshots kept (the oldest are deleted)
    chunk_bytes: int = DEFAULT_CHUNK_BYTES

    def __post_init__(self) -> None:
        if self.interval < 0 or self.keep < 1 or not 1024 <= self.chunk_bytes <= 8 << 20:
            raise SnapshotError("snapshot policy: interval >= 0, keep >= 1, 1 KiB <= chunk_bytes <= 8 MiB")

    def to_json(self) -> dict[str, int]:
        return {"chunk_bytes": self.chunk_bytes, "interval": self.interval, "keep": self.keep}

    @classmethod
    def load(cls, data_dir: Path) -> SnapshotPolicy:
        """``<data_dir>/statesync.json``, or no snapshots when it is absent; raises SnapshotError."""
        path = data_dir / POLICY_FILE
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            raise SnapshotError(f"{path} is not a snapshot policy: {exc}") from None
        if not isinstance(doc, dict) or set(doc) - {"chunk_bytes", "interval", "keep"}:
            raise SnapshotError(f"{path}: a snapshot policy has only interval, keep and chunk_bytes")
        try:
            return cls(**{k: int(v) for k, v in doc.items()})
        except (TypeError, ValueError) as exc:
            raise SnapshotError(f"{path}: {exc}") from None

    def save(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / POLICY_FILE).write_text(json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n")


# -- the manifest -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Manifest:
    """What a snapshot is: the heights it stands at, its app hash, genesis and chunk hashes."""

    cometbft_height: int
    ledger_height: int
    app_hash: bytes
    genesis_hash: bytes
    chunk_hashes: tuple[bytes, ...]

    @property
    def hash(self) -> bytes:
        """The snapshot's hash: SHA-256 over a tag and every chunk's hash, in order."""
        return hashlib.sha256(HASH_TAG + b"".join(self.chunk_hashes)).digest()

    def metadata(self) -> bytes:
        return codec.encode({"app_hash": self.app_hash.hex(), "chunk_hashes": [h.hex() for h in self.chunk_hashes],
                             "genesis_hash": self.genesis_hash.hex(), "ledger_height": self.ledger_height})

    def to_abci(self) -> pb.Snapshot:
        return pb.Snapshot(height=self.cometbft_height, format=FORMAT, chunks=len(self.chunk_hashes), hash=self.hash,
                           metadata=self.metadata())

    def to_json(self) -> dict[str, Any]:
        return {"app_hash": self.app_hash.hex(), "chunk_hashes": [h.hex() for h in self.chunk_hashes],
                "cometbft_height": self.cometbft_height, "format": FORMAT, "genesis_hash": self.genesis_hash.hex(),
                "ledger_height": self.ledger_height}

    @classmethod
    def from_json(cls, doc: Any) -> Manifest:
        """Raises SnapshotRejected for anything but a well-formed manifest."""
        try:
            hashes = tuple(bytes.fromhex(h) for h in doc["chunk_hashes"])
            manifest = cls(int(doc["cometbft_height"]), int(doc["ledger_height"]), bytes.fromhex(doc["app_hash"]),
                           bytes.fromhex(doc["genesis_hash"]), hashes)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SnapshotRejected(f"malformed snapshot manifest: {type(exc).__name__}") from None
        if (not 1 <= len(hashes) <= MAX_CHUNKS or any(len(h) != 32 for h in hashes) or len(manifest.app_hash) != 32
                or len(manifest.genesis_hash) != 32 or manifest.cometbft_height < 1
                or not 0 <= manifest.ledger_height <= manifest.cometbft_height):
            raise SnapshotRejected("snapshot manifest out of range")
        return manifest

    @classmethod
    def from_abci(cls, snapshot: pb.Snapshot) -> Manifest:
        """The manifest of an offered snapshot; raises SnapshotRejected unless its metadata, chunk count
        and hash agree."""
        try:
            doc = codec.decode(bytes(snapshot.metadata))
        except LedgerError:
            raise SnapshotRejected("snapshot metadata is not canonical JSON") from None
        if not isinstance(doc, dict):
            raise SnapshotRejected("snapshot metadata is not an object")
        manifest = cls.from_json({**doc, "cometbft_height": snapshot.height})
        if len(manifest.chunk_hashes) != snapshot.chunks or manifest.hash != bytes(snapshot.hash):
            raise SnapshotRejected("snapshot hash or chunk count does not match its metadata")
        return manifest


# -- taking and serving snapshots ----------------------------------------------------------------------------------

class SnapshotStore:
    """The snapshots this node serves, one directory each: ``<dir>/<H>/manifest.json`` and its chunks."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def manifests(self) -> list[Manifest]:
        """Complete snapshots, newest first (a damaged manifest is skipped and logged)."""
        out = []
        for path in self._dirs():
            try:
                out.append(Manifest.from_json(json.loads((path / "manifest.json").read_text())))
            except (OSError, ValueError, SnapshotError) as exc:
                log.warning("skipping snapshot %s: %s", path, exc)
        return sorted(out, key=lambda m: m.cometbft_height, reverse=True)

    def _dirs(self) -> Iterator[Path]:
        if not self.directory.is_dir():
            return
        for path in self.directory.iterdir():
            if path.name.isdigit() and (path / "manifest.json").is_file():
                yield path

    def chunk(self, height: int, fmt: int, index: int) -> bytes:
        """A chunk's bytes, or b"" when this node does not have it (CometBFT then asks another peer)."""
        if fmt != FORMAT or index < 0:
            return b""
        try:
            return (self.directory / str(height) / f"chunk-{index:05d}").read_bytes()
        except OSError:
            return b""

    def take(self, db_path: Path, cometbft_height: int, head: Head, chunk_bytes: int) -> Manifest:
        """Write the snapshot of the ledger at ``db_path`` up to ``head`` as CometBFT height ``cometbft_height``."""
        final = self.directory / str(cometbft_height)
        if (final / "manifest.json").is_file():
            return Manifest.from_json(json.loads((final / "manifest.json").read_text()))
        work = self.directory / f".{cometbft_height}.tmp"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        try:
            hashes, genesis_hash = _write_chunks(db_path, work, cometbft_height, head, chunk_bytes)
            manifest = Manifest(cometbft_height, head.height, head.app_hash, genesis_hash, tuple(hashes))
            (work / "manifest.json").write_text(json.dumps(manifest.to_json(), indent=2, sort_keys=True) + "\n")
            os.replace(work, final)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        return manifest

    def prune(self, keep: int) -> list[int]:
        """Delete all but the newest ``keep`` snapshots; returns the heights deleted."""
        heights = sorted((int(p.name) for p in self._dirs()), reverse=True)
        gone = heights[keep:]
        for height in gone:
            shutil.rmtree(self.directory / str(height), ignore_errors=True)
        return gone


def _records(conn: sqlite3.Connection, cometbft_height: int, head: Head) -> Iterator[bytes]:
    """The snapshot's records (canonical JSON) from a read-only connection to the ledger."""
    genesis_row = conn.execute("SELECT value FROM meta WHERE key = 'genesis'").fetchone()
    if genesis_row is None:
        raise SnapshotError("the ledger has no genesis")
    genesis_bytes = bytes(genesis_row[0])
    genesis = parse_genesis(codec.decode_trusted(genesis_bytes))
    yield codec.encode({"app_hash": head.app_hash.hex(), "chain_id": genesis.chain_id,
                        "cometbft_height": cometbft_height, "format": FORMAT, "genesis": genesis_bytes.hex(),
                        "height": head.height})
    blocks = conn.execute("SELECT height, header, signature FROM blocks WHERE height <= ? ORDER BY height",
                          (head.height,))
    count = 0
    for height, header, signature in blocks.fetchall():
        txs = [bytes(raw).hex() for (raw,) in conn.execute("SELECT raw FROM txs WHERE height = ? ORDER BY idx",
                                                             (height,))]
        yield codec.encode({"header": codec.decode_trusted(bytes(header)), "signature": bytes(signature).hex(),
                            "txs": txs})
        count += 1
    if count != head.height:
        raise SnapshotError(f"the ledger holds {count} blocks up to height {head.height}")
    yield codec.encode({"blocks": count, "end": True})


def _write_chunks(db_path: Path, work: Path, cometbft_height: int, head: Head,
                  chunk_bytes: int) -> tuple[list[bytes], bytes]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    hashes: list[bytes] = []
    pending = bytearray()

    def emit(final: bool) -> None:
        while len(pending) >= chunk_bytes or (final and pending):
            piece = bytes(pending[:chunk_bytes])
            del pending[:chunk_bytes]
            (work / f"chunk-{len(hashes):05d}").write_bytes(piece)
            hashes.append(hashlib.sha256(piece).digest())

    try:
        genesis_row = conn.execute("SELECT value FROM meta WHERE key = 'genesis'").fetchone()
        genesis_hash = hashlib.sha256(bytes(genesis_row[0])).digest() if genesis_row else b""
        deflate = zlib.compressobj(6)
        for record in _records(conn, cometbft_height, head):
            pending += deflate.compress(encode_uvarint(len(record)) + record)
            emit(False)
        pending += deflate.flush()
        emit(True)
    finally:
        conn.close()
    return hashes, genesis_hash


# -- restoring -------------------------------------------------------------------------------------------------------

class Restore:
    """One snapshot being applied, chunk by chunk, into a fresh store beside the node's ledger."""

    def __init__(self, manifest: Manifest, trusted_app_hash: bytes, db_path: Path, genesis: Genesis | None) -> None:
        """Raises SnapshotRejected when the snapshot's app hash is not the trusted one, or its genesis
        is not this node's."""
        if manifest.app_hash != trusted_app_hash:
            raise SnapshotRejected("the snapshot's app hash is not the one CometBFT's light client verified")
        if genesis is not None and manifest.genesis_hash != genesis.hash:
            raise SnapshotRejected("the snapshot belongs to another genesis")
        self.manifest = manifest
        self.trusted_app_hash = trusted_app_hash
        self.db_path = db_path
        self.genesis = genesis
        self.work = db_path.parent / RESTORE_DIR
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        self.next_index = 0
        self.blocks = 0
        self.done = False
        self._inflate = zlib.decompressobj()
        self._buffer = bytearray()
        self._ended = False
        self._store: Store | None = None
        self._chain: Chain | None = None
        self._head: Head | None = None

    @property
    def restored_path(self) -> Path:
        return self.work / self.db_path.name

    def apply(self, index: int, chunk: bytes) -> bool:
        """Apply chunk ``index``; returns True once the last chunk is applied and the ledger checked.

        Raises BadChunk (fetch it again) or SnapshotRejected (the snapshot is wrong)."""
        if self.done or index != self.next_index:
            raise SnapshotRejected(f"chunk {index} arrived, chunk {self.next_index} was expected")
        hashes = self.manifest.chunk_hashes
        if index >= len(hashes) or hashlib.sha256(chunk).digest() != hashes[index]:
            raise BadChunk(index)
        data = chunk
        while True:
            try:
                self._buffer += self._inflate.decompress(data, INFLATE_STEP)
            except zlib.error as exc:
                raise SnapshotRejected(f"snapshot stream is not zlib: {exc}") from None
            self._parse()
            data = self._inflate.unconsumed_tail
            if not data:
                break
        self.next_index += 1
        if self.next_index < len(self.manifest.chunk_hashes):
            return False
        if not (self._ended and self._inflate.eof and not self._inflate.unused_data and not self._buffer):
            raise SnapshotRejected("the snapshot stream does not end where its last chunk does")
        self._seal()
        self.done = True
        return True

    def _parse(self) -> None:
        pos = 0
        while pos < len(self._buffer):
            try:
                size, start = decode_uvarint(self._buffer, pos)
            except IncompleteFrame:  # the rest of the record comes with the next chunk
                break
            except FrameError:
                raise SnapshotRejected("bad record length in the snapshot stream") from None
            if size > MAX_RECORD_BYTES:
                raise SnapshotRejected("a snapshot record is too large")
            if start + size > len(self._buffer):
                break
            try:
                doc = codec.decode(bytes(self._buffer[start:start + size]))
            except LedgerError as exc:
                raise SnapshotRejected(f"a snapshot record is not canonical JSON: {exc.message}") from None
            if not isinstance(doc, dict):
                raise SnapshotRejected("a snapshot record is not an object")
            self._record(doc)
            pos = start + size
        del self._buffer[:pos]

    def _record(self, doc: dict[str, Any]) -> None:
        if self._ended:
            raise SnapshotRejected("records after the end of the snapshot")
        if self._store is None:
            self._begin(doc)
        elif doc.get("end") is True:
            self._end(doc)
        else:
            self._block(doc)

    def _begin(self, doc: dict[str, Any]) -> None:
        m = self.manifest
        try:
            genesis_bytes = bytes.fromhex(doc["genesis"])
            genesis = parse_genesis(codec.decode(genesis_bytes))
            fields = (doc["format"], doc["cometbft_height"], doc["height"], doc["app_hash"], doc["chain_id"])
        except (KeyError, TypeError, ValueError, LedgerError) as exc:
            raise SnapshotRejected(f"the snapshot's first record is malformed: {exc}") from None
        if genesis.hash != m.genesis_hash or genesis.encode() != genesis_bytes:
            raise SnapshotRejected("the snapshot's genesis does not match its manifest")
        if fields != (FORMAT, m.cometbft_height, m.ledger_height, m.app_hash.hex(), genesis.chain_id):
            raise SnapshotRejected("the snapshot's first record does not match its manifest")
        self._store, self._chain = open_store(self.restored_path, genesis, check=False, create=True)
        # the restored store is synced once, before it replaces the ledger (see seal); not per block
        self._store.writer_view.connection.execute("PRAGMA synchronous=OFF")
        self._head = self._store.head()

    def _block(self, doc: dict[str, Any]) -> None:
        store, chain, head = self._store, self._chain, self._head
        assert store is not None and chain is not None and head is not None
        try:
            sent = Header.from_json(doc["header"])
            signature = bytes.fromhex(doc["signature"])
            raws = [bytes.fromhex(t) for t in doc["txs"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotRejected(f"block record {head.height + 1} is malformed: {exc}") from None
        height = head.height + 1
        if sent.height != height or height > self.manifest.ledger_height:
            raise SnapshotRejected(f"block {sent.height} where block {height} was expected")
        env = BlockEnv(chain.chain_id, height, sent.time_ms, sent.proposer)
        run = BlockExecution(chain, store.writer_view, env, head.app_hash)
        try:
            for raw in raws:
                run.add(check_stateless(chain, raw))
        except InvalidTx as exc:
            raise SnapshotRejected(f"block {height} holds an invalid transaction: {exc.message}") from None
        if not run.txs:
            raise SnapshotRejected(f"block {height} holds no transaction")
        result = run.finish()
        header = result.header(head.block_hash.hex(), sent.proposer)
        if header.encode() != codec.encode(doc["header"]):
            raise SnapshotRejected(f"block {height} does not replay to the header sent (app hash {header.app_hash})")
        self._head = store.commit_block(header, signature, result.txs, result.receipts, result.changes)
        self.blocks += 1

    def _end(self, doc: dict[str, Any]) -> None:
        head = self._head
        assert head is not None
        if doc != {"blocks": self.manifest.ledger_height, "end": True} or head.height != self.manifest.ledger_height:
            raise SnapshotRejected(f"the snapshot ends at ledger height {head.height}, its manifest says "
                                   f"{self.manifest.ledger_height}")
        if head.app_hash != self.trusted_app_hash:
            raise SnapshotRejected("the restored ledger's app hash is not the one CometBFT's light client verified")
        self._ended = True

    def _seal(self) -> None:
        """Close the restored store and flush it to disk."""
        assert self._store is not None
        self._store.writer_view.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._store.close()
        self._store = None
        for path in self.work.iterdir():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())

    def discard(self) -> None:
        """Forget a restore that will not complete (its store is deleted; the node's ledger was never touched)."""
        if self._store is not None:
            with contextlib.suppress(Exception):
                self._store.close()
            self._store = None
        shutil.rmtree(self.work, ignore_errors=True)


def install_restored(restore: Restore) -> None:
    """Replace the node's ledger files with the restored ones (the caller has closed the ledger).

    Every file of the restored ledger (``<name>.*`` in the restore directory: the SQLite file and any
    record kept beside it) replaces its namesake; the old write-ahead log and shared memory go first.
    """
    target_dir = restore.db_path.parent
    name = restore.db_path.name
    for suffix in ("-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            (target_dir / (name + suffix)).unlink()
    stem = restore.db_path.stem
    for path in sorted(restore.work.iterdir()):
        if path.name == name or path.name.startswith(stem + "."):
            os.replace(path, target_dir / path.name)
    fd = os.open(target_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    shutil.rmtree(restore.work, ignore_errors=True)
