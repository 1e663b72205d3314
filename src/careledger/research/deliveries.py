"""What a custodian's gateway keeps to deliver: sealed release packages and aggregate answers.

One SQLite file beside each vault (``HOME/vault/<org>/research-deliveries.sqlite``):

* ``package(release, recipient, package)``: the sealed package of an anchored release (encrypted to
  its recipient: the plaintext dataset is never kept at rest here), as canonical JSON;
* ``answer(query, answer)``: the custodian's canonical answer to an aggregate query (cells, counts,
  sums; no rows), whose SHA-256 the ledger anchors.

Both are written once, after the ledger committed what they refer to.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from careledger.core import codec

FILE_NAME = "research-deliveries.sqlite"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS package (release TEXT PRIMARY KEY, recipient TEXT NOT NULL, package BLOB NOT NULL)"
    " WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS answer (query TEXT PRIMARY KEY, answer BLOB NOT NULL) WITHOUT ROWID",
)


class DeliveryStore:
    """Sealed packages and answers of one custodian (``:memory:`` for tests)."""

    def __init__(self, path: Path | str) -> None:
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
        for statement in _SCHEMA:
            self._conn.execute(statement)
        self._conn.commit()

    def put_package(self, release: str, recipient: str, package: dict[str, Any]) -> None:
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO package VALUES (?, ?, ?)",
                               (release, recipient, codec.encode(package)))
            self._conn.commit()

    def package(self, release: str) -> tuple[str, dict[str, Any]] | None:
        """(recipient, sealed package JSON) of a release delivered from here, or None."""
        with self._lock:
            row = self._conn.execute("SELECT recipient, package FROM package WHERE release = ?", (release,)).fetchone()
        if row is None:
            return None
        doc: dict[str, Any] = codec.decode(bytes(row[1]))
        return str(row[0]), doc

    def put_answer(self, query: str, answer: dict[str, Any]) -> None:
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO answer VALUES (?, ?)", (query, codec.encode(answer)))
            self._conn.commit()

    def answer(self, query: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute("SELECT answer FROM answer WHERE query = ?", (query,)).fetchone()
        if row is None:
            return None
        doc: dict[str, Any] = codec.decode(bytes(row[0]))
        return doc

    def close(self) -> None:
        with self._lock:
            self._conn.close()


__all__ = ["FILE_NAME", "DeliveryStore"]
