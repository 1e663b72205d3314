"""Where CometBFT stands relative to the ledger: the last CometBFT height this app committed.

CometBFT blocks without a valid transaction do not become ledger blocks (the solo engine makes
none either), so the ledger's height is at most CometBFT's. The app records, in its own table of
the ledger's SQLite file, ``{"cometbft": H, "ledger": h}``: "CometBFT block H left the ledger at h".

For a block that adds a ledger block, the record is written *before* the ledger's atomic commit;
for an empty one it is the only write. So after a crash at any point::

    ledger head == record.ledger       ->  CometBFT's last committed height is record.cometbft
    ledger head == record.ledger - 1   ->  the ledger commit did not happen: record.cometbft - 1
    anything else                      ->  StoreCorrupted (refuse to start)

(Before block H is finalised, block H-1 was fully committed, and an empty block does not change
the ledger, so in the second case the app stands exactly at H-1 with the ledger at h-1.)
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from careledger.core.errors import StoreCorrupted

TABLE = "abci_progress"


@dataclass(frozen=True)
class Progress:
    cometbft: int  # last CometBFT height committed by this app
    ledger: int  # the ledger height it left


class ProgressRecord:
    """The record, through its own connection to the ledger file (same durability: WAL, synchronous=FULL)."""

    def __init__(self, db_path: Path) -> None:
        self._conn = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def close(self) -> None:
        self._conn.close()

    def write(self, cometbft: int, ledger: int) -> None:
        self._conn.execute(f"INSERT OR REPLACE INTO {TABLE} VALUES ('last', ?)",
                           (json.dumps({"cometbft": cometbft, "ledger": ledger}),))

    def read(self) -> Progress | None:
        row = self._conn.execute(f"SELECT value FROM {TABLE} WHERE key = 'last'").fetchone()
        if row is None:
            return None
        try:
            doc = json.loads(row[0])
            return Progress(int(doc["cometbft"]), int(doc["ledger"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreCorrupted("the CometBFT progress record is damaged") from exc

    def recover(self, ledger_height: int) -> Progress:
        """The last committed CometBFT height, given the ledger's head height (see the module doc)."""
        record = self.read()
        if record is None:  # nothing committed under CometBFT yet (or a ledger built block for block)
            return Progress(ledger_height, ledger_height)
        if ledger_height == record.ledger:
            return record
        if ledger_height == record.ledger - 1 and record.cometbft >= 1:
            return Progress(record.cometbft - 1, ledger_height)
        raise StoreCorrupted(f"the ledger is at height {ledger_height} but the CometBFT progress record says "
                             f"{record.ledger} (at CometBFT height {record.cometbft})")
