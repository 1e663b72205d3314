"""The head record: what this node last acknowledged, kept outside SQLite so a rolled-back store is noticed.

SQLite's write-ahead log holds the latest commits until a checkpoint copies them into the database
file. Deleting or truncating that log (or restoring an old copy of the file) silently rolls the
ledger back: SQLite opens what is left as a perfectly consistent, older database. The head record is
the node's independent memory of the last block it committed, written and flushed to disk *after*
each commit and *before* any client is told the block is committed::

    HOME/data/ledger.head      beside ledger.sqlite (``<ledger>.head``), 2 slots of 4096 bytes

Each slot holds one record::

    b"CLHEAD1\\n" || u32 length || canonical JSON || SHA-256 of everything before it   (zero padded)

    JSON: {"app_hash": hex, "block_hash": hex, "genesis_hash": hex, "height": int, "seq": int,
           "state_count": int, "state_digest": hex}

Writes alternate between the slots (``seq`` even: slot 0, odd: slot 1) and are flushed with
``fdatasync`` before the commit is acknowledged; a write torn by a crash leaves the other slot, one
block older, intact. The reader takes the valid slot with the higher ``seq``. The file never grows
after it is created, so a full disk cannot make a head write fail.

The rule at start-up (see :func:`careledger.node.integrity.check_startup`): the store's head may be
*at or ahead of* the record (a crash between the SQLite commit and the record's write leaves it one
block ahead; the block the record names must then be in the store with the same hash), never
behind: a store behind its head record has lost blocks the node acknowledged, and the node refuses
to start with ``STORE_ROLLED_BACK``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from careledger.core import codec
from careledger.core.errors import Code, StoreCorrupted

MAGIC = b"CLHEAD1\n"
SLOT_BYTES = 4096
_FIELDS = ("app_hash", "block_hash", "genesis_hash", "height", "seq", "state_count", "state_digest")


@dataclass(frozen=True)
class HeadRecord:
    """The last block a node committed (and so may have acknowledged), with the state it left."""

    height: int
    app_hash: bytes
    block_hash: bytes
    genesis_hash: bytes
    state_count: int
    state_digest: bytes
    seq: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"app_hash": self.app_hash.hex(), "block_hash": self.block_hash.hex(),
                "genesis_hash": self.genesis_hash.hex(), "height": self.height, "seq": self.seq,
                "state_count": self.state_count, "state_digest": self.state_digest.hex()}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> HeadRecord:
        if sorted(doc) != sorted(_FIELDS):
            raise ValueError("unexpected fields")
        return cls(int(doc["height"]), bytes.fromhex(doc["app_hash"]), bytes.fromhex(doc["block_hash"]),
                   bytes.fromhex(doc["genesis_hash"]), int(doc["state_count"]), bytes.fromhex(doc["state_digest"]),
                   int(doc["seq"]))


def head_path_of(db_path: Path) -> Path:
    """Where the head record of the ledger file ``db_path`` lives (``ledger.sqlite`` -> ``ledger.head``)."""
    return db_path.with_suffix(".head")


def encode_slot(record: HeadRecord) -> bytes:
    body = codec.encode(record.to_json())
    framed = MAGIC + len(body).to_bytes(4, "big") + body
    slot = framed + hashlib.sha256(framed).digest()
    if len(slot) > SLOT_BYTES:
        raise ValueError("head record too large")
    return slot + bytes(SLOT_BYTES - len(slot))


def decode_slot(data: bytes) -> HeadRecord | None:
    """The record in one slot, or None when the slot is empty, torn or damaged."""
    if len(data) < len(MAGIC) + 4 + 32 or not data.startswith(MAGIC):
        return None
    size = int.from_bytes(data[len(MAGIC):len(MAGIC) + 4], "big")
    end = len(MAGIC) + 4 + size
    if end + 32 > len(data) or hashlib.sha256(data[:end]).digest() != data[end:end + 32]:
        return None
    try:
        return HeadRecord.from_json(codec.decode(data[len(MAGIC) + 4:end]))
    except Exception:  # a checksummed slot that still does not parse (a record of another version)
        return None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class HeadFile:
    """The head record file of one ledger: read at start-up, written by the committing thread only."""

    def __init__(self, path: Path, sync: bool = True) -> None:
        self.path = path
        self.sync = sync
        self._fd: int | None = None
        self._seq = -1
        self._lock = threading.Lock()

    def exists(self) -> bool:
        return self.path.exists()

    def read(self) -> HeadRecord | None:
        """The newest valid record; None when the file does not exist.

        Raises StoreCorrupted (HEAD_RECORD_MISMATCH) when the file exists but neither slot holds a
        valid record (both damaged: the node cannot know what it acknowledged).
        """
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreCorrupted(f"cannot read the head record {self.path}: {exc.strerror}",
                                 Code.HEAD_RECORD_MISMATCH) from exc
        records = [r for r in (decode_slot(data[i * SLOT_BYTES:(i + 1) * SLOT_BYTES]) for i in range(2))
                   if r is not None]
        if not records:
            raise StoreCorrupted(f"the head record {self.path.name} is unreadable (both slots damaged)",
                                 Code.HEAD_RECORD_MISMATCH)
        best = max(records, key=lambda r: r.seq)
        self._seq = max(self._seq, best.seq)
        return best

    def write(self, record: HeadRecord) -> HeadRecord:
        """Write ``record`` (with the next ``seq``) to the older slot and flush it to disk; returns it
        as written. Creating the file also flushes its directory entry. Raises OSError."""
        with self._lock:
            if self._fd is None:
                self._open()
            assert self._fd is not None
            self._seq += 1
            stamped = HeadRecord(record.height, record.app_hash, record.block_hash, record.genesis_hash,
                                 record.state_count, record.state_digest, self._seq)
            os.pwrite(self._fd, encode_slot(stamped), (self._seq % 2) * SLOT_BYTES)
            if self.sync:
                os.fdatasync(self._fd)
            return stamped

    def _open(self) -> None:
        if self._seq < 0:
            with contextlib.suppress(StoreCorrupted):
                self.read()  # continue the sequence of an existing file
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_size < 2 * SLOT_BYTES:  # allocate both slots once: later writes never grow it
                os.pwrite(fd, bytes(2 * SLOT_BYTES - os.fstat(fd).st_size), os.fstat(fd).st_size)
                os.fsync(fd)
            if created:
                _fsync_dir(self.path.parent)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def remove(self) -> None:
        """Delete the file (a restore replaces it), flushing the directory."""
        self.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
            _fsync_dir(self.path.parent)
        self._seq = -1

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
