"""Upgrades (issue 16, item 11): the store carries its schema version and this release migrates the
previous release's store.

``tests/data/stores/previous-release/`` is a node home written by the previous release's own code
(main at 2676305, schema 2: no state commitment, no head record), with the script beside it. Opening
a copy with today's code migrates it in place; the node then verifies, serves the same chain and
commits on from it. A migration cut short (head record written, schema not yet bumped) simply runs
again; a store from a newer release is refused.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from careledger.core.errors import Code, StoreCorrupted
from careledger.core.tx import sign_tx
from careledger.keys import read_key
from careledger.node.headrecord import HeadRecord
from careledger.node.home import Home
from careledger.node.integrity import migrate
from careledger.node.startup import open_store
from careledger.node.store import SCHEMA_VERSION, Store, commitment_of
from support.load import verify_cli

PREVIOUS = Path(__file__).resolve().parents[1] / "data" / "stores" / "previous-release"
PREVIOUS_HEIGHT = 5
PREVIOUS_APP_HASH = "89d4c045099134835410f623ab049c67e947d4ed86f335b902f07269f331b3f6"


@pytest.fixture
def old_home(tmp_path: Path) -> Home:
    shutil.copytree(PREVIOUS, tmp_path / "home")
    return Home(tmp_path / "home")


def meta(db: Path, key: str) -> bytes | None:
    conn = sqlite3.connect(db)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])
    finally:
        conn.close()


def test_the_fixture_is_the_previous_release(old_home: Home) -> None:
    assert meta(old_home.db_path, "schema") == b"2"
    assert meta(old_home.db_path, "state_commitment") is None
    assert not old_home.db_path.with_suffix(".head").exists()
    assert not old_home.db_path.with_name("ledger.sqlite-wal").exists()
    assert SCHEMA_VERSION == 3
    # today's verify reads it as it is, without writing to it
    code, report = verify_cli(old_home.path)
    assert code == 0 and report["ok"], report
    assert (report["height"], report["app_hash"]) == (PREVIOUS_HEIGHT, PREVIOUS_APP_HASH)
    assert report["head_record"] == "missing"
    assert meta(old_home.db_path, "schema") == b"2"


def test_a_previous_release_store_is_migrated_and_the_node_carries_on(old_home: Home) -> None:
    node = old_home.open_node()
    try:
        assert meta(old_home.db_path, "schema") == b"3"
        head = node.head
        assert (head.height, head.app_hash.hex()) == (PREVIOUS_HEIGHT, PREVIOUS_APP_HASH)
        commitment = node.store.commitment()
        assert commitment == commitment_of(((k, v) for k, v, _ in node.store.iter_state()), PREVIOUS_HEIGHT)
        record = node.store.head_file.read()
        assert record is not None and (record.height, record.app_hash, record.state_digest) == \
            (PREVIOUS_HEIGHT, head.app_hash, commitment.digest)
        node.start()
        admin = read_key(old_home.keys_dir / "admin.json")
        raw = sign_tx(admin, node.chain.chain_id, "identity.enrol_member", 1, 4,
                      {"member": "ab" * 32, "org": "org.dev", "roles": ["nurse"]})
        receipt = node.submit_and_wait(raw, timeout=30)
        assert receipt.code == 0 and node.head.height == PREVIOUS_HEIGHT + 1
        assert node.store.block(PREVIOUS_HEIGHT + 1)[0].prev_hash == head.block_hash.hex()
    finally:
        node.close()
    code, report = verify_cli(old_home.path)
    assert code == 0 and report["ok"] and report["height"] == PREVIOUS_HEIGHT + 1, report
    assert report["head_record"] == "same"
    # migrating again is a no-op
    store, _ = open_store(old_home.db_path)
    try:
        assert migrate(store) == []
    finally:
        store.close()


def test_a_migration_cut_short_runs_again(old_home: Home) -> None:
    """The migration writes the head record first and bumps the schema last: a crash between leaves a
    schema-2 store with a matching head record, which the next start migrates."""
    store = Store(old_home.db_path, create=False)
    try:
        head = store.head()
        commitment = commitment_of(((k, v) for k, v, _ in store.iter_state()), head.height)
        store.head_file.write(HeadRecord(head.height, head.app_hash, head.block_hash, store.genesis_hash(),
                                         commitment.count, commitment.digest))
    finally:
        store.close()
    assert meta(old_home.db_path, "schema") == b"2"
    old_home.open_node().close()
    assert meta(old_home.db_path, "schema") == b"3"


def test_a_head_record_ahead_of_an_old_store_is_still_a_rollback(old_home: Home) -> None:
    store = Store(old_home.db_path, create=False)
    try:
        head = store.head()
        store.head_file.write(HeadRecord(head.height + 3, b"\x01" * 32, b"\x02" * 32, store.genesis_hash(), 0,
                                         bytes(32)))
    finally:
        store.close()
    with pytest.raises(StoreCorrupted) as err:
        old_home.open_node()
    assert err.value.code == Code.STORE_ROLLED_BACK
    assert meta(old_home.db_path, "schema") == b"2"  # nothing migrated


@pytest.mark.parametrize("version", [b"1", b"4", b"99"])
def test_an_unknown_schema_is_refused(old_home: Home, version: bytes) -> None:
    conn = sqlite3.connect(old_home.db_path, isolation_level=None)
    try:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (version,))
    finally:
        conn.close()
    with pytest.raises(StoreCorrupted) as err:
        old_home.open_node()
    assert err.value.code == Code.STORE_SCHEMA_UNSUPPORTED
    assert version.decode() in err.value.message
    assert not old_home.db_path.with_suffix(".head").exists()
