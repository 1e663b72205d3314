"""The store faults of issue 16's table, each injected into a real node's home, each now caught.

The home is written by a real ``careledger node start`` under HTTP load: committed, stopped cleanly
(the ledger checkpointed into ``ledger.sqlite``), restarted, more committed, then SIGKILLed, so the
last acknowledged blocks live only in the write-ahead log (``ledger.sqlite-wal``). Each test damages
a copy of that home and checks the issue's outcome:

* the WAL deleted while the node was down: it started at height 0 and verify said "intact";
  now it refuses to start with STORE_ROLLED_BACK, and verify says so;
* the WAL truncated (to half, by 100 bytes): it started at an older height; now the same refusal;
* one state row deleted: it started silently with the wrong state; now the engine counts the state
  rows against the commitment before its first block and stops (exit 5, STORE_CORRUPTED) while start-up
  itself stays constant in time; verify names the entry;
* the last block deleted: it started silently; now refused, and verify says so; if the forger also
  rewinds the head and the commitment SQLite holds, the head record outside it still refuses
  (STORE_ROLLED_BACK);
* a B-tree page header flipped: the node refused to start but verify said "intact"; now verify runs
  SQLite's integrity_check and reports the damage.
"""

from __future__ import annotations

import random
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest

from careledger.core import codec
from careledger.node.home import Home
from support.load import (
    BATCH_ORG,
    SINGLE_ORG,
    Load,
    NodeProcess,
    NodeRefused,
    Signer,
    copy_home,
    make_home,
    verify_cli,
)


@dataclass(frozen=True)
class Acknowledged:
    home: Path
    height: int  # the last height the node acknowledged
    checkpointed: int  # the height the database file holds without its WAL


def wal_of(home: Home) -> Path:
    return home.db_path.with_name("ledger.sqlite-wal")


@pytest.fixture(scope="module")
def acknowledged(tmp_path_factory: pytest.TempPathFactory) -> Acknowledged:
    root = tmp_path_factory.mktemp("rollback")
    home, consortium = make_home(root, "rollback")
    admins = (Signer(consortium.admin(BATCH_ORG), BATCH_ORG), Signer(consortium.admin(SINGLE_ORG), SINGLE_ORG))
    rng = random.Random(1616)
    node = NodeProcess(home.path).start()
    try:
        Load(node.url, consortium.chain_id, rng, *admins, batch_size=10).run_batches(6)
        checkpointed = node.status()["height"]
        assert node.stop() == 0
        assert not wal_of(home).exists()
        node.start()
        admins[0].next_nonce = 0
        Load(node.url, consortium.chain_id, rng, *admins, batch_size=10).run_batches(6)
        height = node.status()["height"]
        node.kill9()
    finally:
        node.kill9()
    assert wal_of(home).stat().st_size > 0 and height > checkpointed > 0
    control = copy_home(home.path, root / "control")  # verify checkpoints the WAL when it closes: a copy
    code, report = verify_cli(control.path)  # untouched, everything is there
    assert code == 0 and report["height"] == height and report["head_record"] == "same", report
    return Acknowledged(home.path, height, checkpointed)


@pytest.fixture
def home(acknowledged: Acknowledged, tmp_path: Path) -> Home:
    return copy_home(acknowledged.home, tmp_path / "home")


def refused(home: Home, code: str) -> str:
    """``careledger node start`` exits non-zero with ``error: CODE (...)`` and no traceback."""
    with pytest.raises(NodeRefused) as err:
        NodeProcess(home.path).start()
    assert err.value.returncode != 0
    assert f"error: {code} (" in err.value.stderr, err.value.stderr[-2000:]
    assert "Traceback" not in err.value.stderr
    return err.value.stderr


def verify_reports(home: Home, code: str, words: str = "") -> dict[str, object]:
    exit_code, report = verify_cli(home.path)
    assert exit_code == 2 and not report["ok"], report
    assert report["code"] == code and words in str(report["problem"]), report
    return report


def test_deleting_the_wal_is_a_refused_rollback(home: Home, acknowledged: Acknowledged) -> None:
    wal_of(home).unlink()
    stderr = refused(home, "STORE_ROLLED_BACK")
    assert f"this node committed and acknowledged height {acknowledged.height}" in stderr
    verify_reports(home, "STORE_ROLLED_BACK", f"at height {acknowledged.checkpointed}")


@pytest.mark.parametrize("cut", ["half", "100 bytes"])
def test_truncating_the_wal_is_a_refused_rollback(home: Home, cut: str) -> None:
    wal = wal_of(home)
    size = wal.stat().st_size
    with wal.open("r+b") as f:
        f.truncate(size // 2 if cut == "half" else size - 100)
    refused(home, "STORE_ROLLED_BACK")
    verify_reports(home, "STORE_ROLLED_BACK")


def edit(home: Home, *statements: tuple[str, tuple[object, ...]]) -> None:
    """Edit the ledger as a person with the file would (recovering its WAL first)."""
    conn = sqlite3.connect(home.db_path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        for sql, params in statements:
            assert conn.execute(sql, params).rowcount >= 1, sql
        conn.execute("COMMIT")
    finally:
        conn.close()


def stops(home: Home) -> str:
    """The node opens (start-up reads a bounded number of rows) but its engine counts the state rows
    before its first block: it stops (store_corrupted) and exits 5 for a supervisor. Returns its output."""
    expected = "error: NODE_UNAVAILABLE (904): block production stopped (store_corrupted)"
    node = NodeProcess(home.path)
    try:
        node.start()
    except NodeRefused as exc:  # it may exit before its API first answers
        assert exc.returncode == 5 and expected in exc.stderr, exc.stderr[-2000:]
        return exc.stderr
    assert node.proc is not None
    try:
        assert node.proc.wait(timeout=30) == 5
    finally:
        node.proc = None
    log = (home.path.parent / f"{home.path.name}-node.log").read_text()
    assert expected in log, log[-2000:]
    return log


def test_a_deleted_state_row_stops_the_node_before_its_first_block(home: Home) -> None:
    edit(home, ("DELETE FROM state WHERE key = (SELECT key FROM state WHERE key LIKE 'identity/key/%' LIMIT 1)", ()))
    assert "state table holds" in stops(home)
    verify_reports(home, "STORE_CORRUPTED", "missing")


def test_a_deleted_last_block_is_refused_at_start(home: Home, acknowledged: Acknowledged) -> None:
    h = acknowledged.height
    edit(home, ("DELETE FROM txs WHERE height = ?", (h,)), ("DELETE FROM blocks WHERE height = ?", (h,)))
    refused(home, "STORE_CORRUPTED")
    verify_reports(home, "STORE_CORRUPTED")


def test_a_consistent_rollback_of_the_last_block_is_caught_by_the_head_record(home: Home,
                                                                               acknowledged: Acknowledged) -> None:
    """A forger deletes the last block and rewinds every record SQLite holds (head, commitment, state is
    left as is): only the head record outside SQLite remembers what was acknowledged."""
    h = acknowledged.height
    conn = sqlite3.connect(home.db_path)
    try:
        block_hash, header = conn.execute("SELECT hash, header FROM blocks WHERE height = ?", (h - 1,)).fetchone()
        (commitment,) = conn.execute("SELECT value FROM meta WHERE key = 'state_commitment'").fetchone()
    finally:
        conn.close()
    rewound = codec.encode({"app_hash": codec.decode(bytes(header))["app_hash"], "block_hash": bytes(block_hash).hex(),
                            "height": h - 1})
    commitment_doc = codec.decode(bytes(commitment))
    edit(home, ("DELETE FROM txs WHERE height = ?", (h,)), ("DELETE FROM blocks WHERE height = ?", (h,)),
         ("UPDATE meta SET value = ? WHERE key = 'head'", (rewound,)),
         ("UPDATE meta SET value = ? WHERE key = 'state_commitment'",
          (codec.encode({**commitment_doc, "height": h - 1}),)))
    refused(home, "STORE_ROLLED_BACK")
    verify_reports(home, "STORE_CORRUPTED")  # the replay finds the state ahead of the blocks first


def btree_pages(db: Path) -> list[int]:
    """Page numbers (1-based) of the file's B-tree pages, by their header's page-type byte."""
    data = db.read_bytes()
    size = int.from_bytes(data[16:18], "big") or 65536
    return [n + 1 for n in range(1, len(data) // size) if data[n * size] in (2, 5, 10, 13)]


def test_a_flipped_btree_page_header_is_reported_by_verify(tmp_path: Path, acknowledged: Acknowledged) -> None:
    home = copy_home(acknowledged.home, tmp_path / "home")
    node = NodeProcess(home.path).start()  # a clean stop checkpoints the WAL into the database file
    assert node.stop() == 0
    assert not wal_of(home).exists()
    pages = btree_pages(home.db_path)
    page = pages[len(pages) // 2]
    size = int.from_bytes(home.db_path.read_bytes()[16:18], "big")
    with home.db_path.open("r+b") as f:
        f.seek((page - 1) * size)
        f.write(bytes([0x07]))  # not a valid B-tree page type
    verify_reports(home, "STORE_CORRUPTED", "database file is damaged")
