"""When block production stops: why, and what the node does about it.

A failure while executing or committing a block halts the engine. Every transaction waiting for a
block (the mempool and the block in hand) is answered at once with ``NODE_UNAVAILABLE``: it was not
acknowledged, and its outcome is known only once the node runs again (a failure after SQLite's
commit but before the head record leaves the block in the store). New submissions are refused with
``NODE_UNAVAILABLE`` (HTTP 503), and :meth:`careledger.node.solo.Node.health` says why. Then, by
the failure's kind (:func:`classify`):

======================  ==========  ==================================================================
kind                    action      what happens
======================  ==========  ==================================================================
``disk_full``           ``retry``   the node stays up (reads are served) and resumes producing blocks
                                    by itself once the data directory has ``reserve`` bytes free again
                                    (SQLITE_FULL, ENOSPC, EDQUOT, EFBIG: a full disk or a file-size
                                    limit), probing with a back-off from 1 s to 30 s
``io_error``            ``exit``    the process exits non-zero (``careledger node start`` exits 5) so a
``store_corrupted``                 supervisor restarts it: after an I/O error the page cache cannot
``internal``                        be trusted (a failed fsync may have dropped writes), and start-up
                                    re-checks the store from disk before serving again
``not_validator``       ``stay``    governance removed this node's key, or the consortium activated
``upgrade_required``                rules this release does not know: a restart cannot help, so the
                                    node keeps serving reads and reports why it produces nothing
======================  ==========  ==================================================================
"""

from __future__ import annotations

import errno
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from careledger.core.errors import Code, LedgerError, StoreCorrupted

SQLITE_FULL = 13
SQLITE_IOERR = 10
SQLITE_CORRUPT = 11
SQLITE_NOTADB = 26
DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


@dataclass(frozen=True)
class Halt:
    """Why block production stopped, and what the node does about it (see the module docstring)."""

    kind: str
    action: str  # "retry" | "exit" | "stay"
    reason: str
    height: int  # the last committed height when it stopped
    since_ms: int

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "height": self.height, "kind": self.kind, "reason": self.reason,
                "since_ms": self.since_ms}


def classify(exc: BaseException, height: int, now_ms: int) -> Halt:
    """The halt a failure of block production causes (never raises)."""
    text = f"{type(exc).__name__}: {exc}"[:300]
    if isinstance(exc, sqlite3.Error):
        code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
        if code == SQLITE_FULL or "disk is full" in str(exc):
            return Halt("disk_full", "retry", f"the disk holding the ledger is full ({text})", height, now_ms)
        if code in (SQLITE_CORRUPT, SQLITE_NOTADB):
            return Halt("store_corrupted", "exit", f"the ledger store is damaged ({text})", height, now_ms)
        return Halt("io_error", "exit", f"the ledger store failed ({text})", height, now_ms)
    if isinstance(exc, OSError):
        if exc.errno in DISK_FULL_ERRNOS:
            return Halt("disk_full", "retry", f"the disk holding the ledger is full ({text})", height, now_ms)
        return Halt("io_error", "exit", f"writing the ledger failed ({text})", height, now_ms)
    if isinstance(exc, StoreCorrupted):
        return Halt("store_corrupted", "exit", exc.message, height, now_ms)
    if isinstance(exc, LedgerError) and exc.code == Code.UNAUTHORISED:
        return Halt("not_validator", "stay", exc.message, height, now_ms)
    if isinstance(exc, LedgerError) and exc.code == Code.UPGRADE_REQUIRED:
        return Halt("upgrade_required", "stay", exc.message, height, now_ms)
    return Halt("internal", "exit", f"block production failed unexpectedly ({text})", height, now_ms)


def free_bytes(directory: Path) -> int:
    """Bytes an unprivileged writer may still use on the file system holding ``directory``."""
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize
