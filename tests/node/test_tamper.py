"""``careledger verify`` against a deliberate forger (issue 2: "non-zero naming the first bad height when
any byte of the block or state store has been changed").

A real home holds a five-block chain with known contents. Each test edits one thing through
sqlite3 (a header, a transaction, a receipt, a state value, a signature, the head record), either
naively or as a forger who recomputes every row checksum and hash the store keeps, then runs the
real ``careledger verify --home`` process: it must exit 2 and name the height of the first block
the edit falsifies.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from careledger.chain.executor import BlockExecution, check_stateless, committed_nonce
from careledger.core import codec
from careledger.core.block import BlockEnv
from careledger.core.crypto import SigningKey
from careledger.core.errors import StoreCorrupted
from careledger.core.tx import sign_tx
from careledger.node.home import Home
from careledger.node.startup import open_store
from careledger.node.store import state_chk, tx_chk
from support import GENESIS_TIME_MS, Consortium, seeded_key
from support.load import make_home, run_cli, verify_cli

DOCTOR = seeded_key("tamper/doctor")
NURSE = seeded_key("tamper/nurse")
PATIENTS = [seeded_key(f"tamper/patient/{i}") for i in range(4)]


@dataclass
class Chain:
    """The pristine home and where things are in it."""

    home: Home
    consortium: Consortium
    txs: dict[str, bytes]  # name -> tx hash

    @property
    def db(self) -> Path:
        return self.home.db_path


def build_chain(root: Path) -> Chain:
    """Five blocks, committed through the store exactly as the solo engine commits them:

    1. enrol the doctor (hospital admin), register patient 0
    2. register patient 1, enrol someone with a role the hospital may not grant (receipt 1003)
    3. enrol the nurse (clinic admin), register patient 2
    4. revoke the doctor (rewrites the doctor's key record, first written at 1)
    5. register patient 3
    """
    home, consortium = make_home(root, "tamper")
    store, chain = open_store(home.db_path, consortium.genesis)
    nonces: dict[str, int] = {}
    names: dict[str, bytes] = {}

    def tx(name: str, key: SigningKey, tx_type: str, payload: dict[str, Any]) -> bytes:
        nonce = nonces.get(key.public_hex, committed_nonce(store.writer_view, key.public_hex)) + 1
        nonces[key.public_hex] = nonce
        raw = sign_tx(key, chain.chain_id, tx_type, 1, nonce, payload)
        names[name] = hashlib.sha256(raw).digest()
        return raw

    hospital, clinic = consortium.admin("hospital"), consortium.admin("clinic")
    enrol = "identity.enrol_member"
    blocks = [
        [tx("enrol-doctor", hospital, enrol, {"member": DOCTOR.public_hex, "org": "hospital", "roles": ["physician"]}),
         tx("patient-0", PATIENTS[0], "identity.register_patient", {})],
        [tx("patient-1", PATIENTS[1], "identity.register_patient", {}),
         tx("bad-role", hospital, enrol, {"member": seeded_key("tamper/x").public_hex, "org": "hospital",
                                          "roles": ["inspector"]})],
        [tx("enrol-nurse", clinic, enrol, {"member": NURSE.public_hex, "org": "clinic", "roles": ["nurse"]}),
         tx("patient-2", PATIENTS[2], "identity.register_patient", {})],
        [tx("revoke-doctor", hospital, "identity.revoke_member",
            {"member": DOCTOR.public_hex, "org": "hospital", "reason": "left the hospital"})],
        [tx("patient-3", PATIENTS[3], "identity.register_patient", {})],
    ]
    try:
        for raws in blocks:
            head = store.head()
            height = head.height + 1
            env = BlockEnv(chain.chain_id, height, GENESIS_TIME_MS + 1000 * height, consortium.validator.public_hex)
            run = BlockExecution(chain, store.writer_view, env, head.app_hash)
            receipts = [run.add(check_stateless(chain, raw)) for raw in raws]
            result = run.finish()
            header = result.header(head.block_hash.hex(), consortium.validator.public_hex)
            signature = consortium.validator.sign("block", chain.chain_id, header.hash)
            store.commit_block(header, signature, result.txs, result.receipts, result.changes)
            nonces.clear()
            assert [r.code for r in receipts] == ([0, 1003] if height == 2 else [0] * len(raws))
    finally:
        store.close()
    return Chain(home, consortium, names)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    chain = build_chain(tmp_path_factory.mktemp("tamper"))
    code, report = verify_cli(chain.home.path)
    assert code == 0 and report["ok"] and (report["height"], report["txs"]) == (5, 8), report
    return chain


@pytest.fixture
def chain(pristine: Chain, tmp_path: Path) -> Iterator[Chain]:
    """A fresh copy of the pristine home for one edit."""
    dst = tmp_path / "home"
    shutil.copytree(pristine.home.path, dst)
    yield Chain(Home(dst), pristine.consortium, pristine.txs)


def edit(db: Path, sql: str, params: tuple[Any, ...]) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        assert conn.execute(sql, params).rowcount == 1
    finally:
        conn.close()


def row(db: Path, sql: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...]:
    conn = sqlite3.connect(db)
    try:
        found = conn.execute(sql, params).fetchone()
        assert found is not None, sql
        return tuple(bytes(x) if isinstance(x, bytes | memoryview) else x for x in found)
    finally:
        conn.close()


def flip_at(data: bytes, needle: bytes, replacement: bytes) -> bytes:
    assert data.count(needle) == 1, (needle, data[:200])
    return data.replace(needle, replacement)


def assert_bad_height(chain: Chain, height: int, *problem: str) -> dict[str, Any]:
    code, report = verify_cli(chain.home.path)
    assert code == 2 and not report["ok"], report
    assert report["bad_height"] == height, f"verify named height {report['bad_height']}, not {height}: {report}"
    for words in problem:
        assert words in report["problem"], report
    return report


# -- block headers --------------------------------------------------------------------------------------

@pytest.mark.parametrize("forger", [False, True], ids=["naive", "forger"])
def test_header_byte(chain: Chain, forger: bool) -> None:
    """Block 3 claims a different time; the forger also rewrites the stored block hash."""
    _, header = row(chain.db, "SELECT hash, header FROM blocks WHERE height = 3")
    when = str(GENESIS_TIME_MS + 3000).encode()
    forged = flip_at(header, b'"time_ms":' + when, b'"time_ms":' + str(GENESIS_TIME_MS + 3001).encode())
    if forger:
        edit(chain.db, "UPDATE blocks SET header = ?, hash = ? WHERE height = 3",
             (forged, hashlib.sha256(forged).digest()))
        assert_bad_height(chain, 3, "signature")
    else:
        edit(chain.db, "UPDATE blocks SET header = ? WHERE height = 3", (forged,))
        assert_bad_height(chain, 3, "hash")


@pytest.mark.parametrize("forger", [False, True], ids=["naive", "forger"])
def test_header_app_hash(chain: Chain, forger: bool) -> None:
    """Block 4 claims another app hash (and, for the forger, the head record follows it)."""
    (header,) = row(chain.db, "SELECT header FROM blocks WHERE height = 4")
    doc = codec.decode(header)
    assert isinstance(doc, dict)
    doc["app_hash"] = "ab" * 32
    forged = codec.encode(doc)
    if forger:
        edit(chain.db, "UPDATE blocks SET header = ?, hash = ? WHERE height = 4",
             (forged, hashlib.sha256(forged).digest()))
    else:
        edit(chain.db, "UPDATE blocks SET header = ? WHERE height = 4", (forged,))
    assert_bad_height(chain, 4)


def test_block_signature(chain: Chain) -> None:
    (signature,) = row(chain.db, "SELECT signature FROM blocks WHERE height = 2")
    forged = bytes([signature[0] ^ 1]) + signature[1:]
    edit(chain.db, "UPDATE blocks SET signature = ? WHERE height = 2", (forged,))
    assert_bad_height(chain, 2, "signature")
    # start-up checks the last block's signature only (constant time), so the node opens on this one ...
    chain.home.open_node().close()
    # ... and refuses a forged signature on its last block
    (signature,) = row(chain.db, "SELECT signature FROM blocks WHERE height = 5")
    edit(chain.db, "UPDATE blocks SET signature = ? WHERE height = 5", (bytes([signature[0] ^ 1]) + signature[1:],))
    with pytest.raises(StoreCorrupted, match="block 5 signature"):
        chain.home.open_node()


# -- transactions and receipts ----------------------------------------------------------------------------

@pytest.mark.parametrize("forger", [False, True], ids=["naive", "forger"])
def test_transaction_byte(chain: Chain, forger: bool) -> None:
    """The nurse's enrolment (block 3) is edited to grant the physician role instead."""
    h = chain.txs["enrol-nurse"]
    raw, receipt, message = row(chain.db, "SELECT raw, receipt, message FROM txs WHERE hash = ?", (h,))
    forged = flip_at(raw, b'"roles":["nurse"]', b'"roles":["nursf"]')
    if forger:  # a consistent row: new hash, new checksum (the signature cannot follow)
        edit(chain.db, "UPDATE txs SET raw = ?, hash = ?, chk = ? WHERE hash = ?",
             (forged, hashlib.sha256(forged).digest(), tx_chk(forged, receipt, message), h))
    else:
        edit(chain.db, "UPDATE txs SET raw = ? WHERE hash = ?", (forged, h))
    assert_bad_height(chain, 3, "transaction 0")


@pytest.mark.parametrize("forger", [False, True], ids=["naive", "forger"])
def test_receipt_code(chain: Chain, forger: bool) -> None:
    """The refused enrolment in block 2 is made to look like a success."""
    h = chain.txs["bad-role"]
    raw, receipt = row(chain.db, "SELECT raw, receipt FROM txs WHERE hash = ?", (h,))
    forged = flip_at(receipt, b'"code":1003', b'"code":0')
    if forger:
        edit(chain.db, "UPDATE txs SET receipt = ?, message = '', chk = ? WHERE hash = ?",
             (forged, tx_chk(raw, forged, ""), h))
        assert_bad_height(chain, 2, "receipt of transaction 1")
    else:
        edit(chain.db, "UPDATE txs SET receipt = ? WHERE hash = ?", (forged, h))
        assert_bad_height(chain, 2, "transaction 1")


def test_transaction_moved_to_another_block(chain: Chain) -> None:
    """Patient 3's registration (block 5) is re-filed under block 1: its checksum still holds."""
    edit(chain.db, "UPDATE txs SET height = 1, idx = 2 WHERE hash = ?", (chain.txs["patient-3"],))
    assert_bad_height(chain, 1, "transactions stored")


def test_receipt_message(chain: Chain) -> None:
    """The human message stored beside a receipt (and served by the API) is covered by the row checksum.

    It is never hashed into a block, so a forger who also rewrites the checksum is out of reach of
    verify by design: messages may be reworded between releases without changing any ledger hash.
    """
    h = chain.txs["bad-role"]
    (message,) = row(chain.db, "SELECT message FROM txs WHERE hash = ?", (h,))
    assert "inspector" in message
    edit(chain.db, "UPDATE txs SET message = ? WHERE hash = ?", (message.replace("inspector", "inspectoR"), h))
    assert_bad_height(chain, 2, "transaction 1")
    node = chain.home.open_node()  # block 2 is not the last block: start-up does not read it
    try:
        with pytest.raises(StoreCorrupted, match="index 1 fails its checksum"):
            node.store.tx(h)  # but nobody is served the edited message
    finally:
        node.close()


# -- state ----------------------------------------------------------------------------------------------------

def state_row(chain: Chain, key: str) -> bytes:
    (value,) = row(chain.db, "SELECT value FROM state WHERE key = ?", (key,))
    return bytes(value)


@pytest.mark.parametrize("forger", [False, True], ids=["naive", "forger"])
def test_state_value(chain: Chain, forger: bool) -> None:
    """The doctor's key record, last written by the revocation in block 4, is made active again."""
    key = f"identity/key/{DOCTOR.public_hex}"
    value = state_row(chain, key)
    forged = flip_at(value, b'"status":"revoked"', b'"status":"active"')
    if forger:
        edit(chain.db, "UPDATE state SET value = ?, chk = ? WHERE key = ?", (forged, state_chk(key, forged), key))
    else:
        edit(chain.db, "UPDATE state SET value = ? WHERE key = ?", (forged, key))
    assert_bad_height(chain, 4, "state entry")


@pytest.mark.parametrize("forger", [False, True], ids=["naive", "forger"])
def test_state_value_of_an_earlier_block(chain: Chain, forger: bool) -> None:
    """Patient 2's record (block 3) gets another registration height."""
    key = f"identity/key/{PATIENTS[2].public_hex}"
    value = state_row(chain, key)
    forged = flip_at(value, b'"since":3', b'"since":2')
    if forger:
        edit(chain.db, "UPDATE state SET value = ?, chk = ? WHERE key = ?", (forged, state_chk(key, forged), key))
    else:
        edit(chain.db, "UPDATE state SET value = ? WHERE key = ?", (forged, key))
    assert_bad_height(chain, 3, "state entry")


def test_state_entry_deleted(chain: Chain) -> None:
    """The nurse's member-index entry (block 3) disappears."""
    edit(chain.db, "DELETE FROM state WHERE key = ?", (f"identity/member/clinic/{NURSE.public_hex}",))
    assert_bad_height(chain, 3, "missing")


def test_state_entry_added(chain: Chain) -> None:
    """A forged, correctly checksummed patient record that no transaction wrote."""
    key, value = "identity/patient/pt-forged", codec.encode({"key": "00" * 32, "since": 2, "status": "active"})
    conn = sqlite3.connect(chain.db, isolation_level=None)
    try:
        conn.execute("INSERT INTO state VALUES (?, ?, ?)", (key, value, state_chk(key, value)))
    finally:
        conn.close()
    assert_bad_height(chain, 5, "never wrote")


def test_head_record(chain: Chain) -> None:
    """The head claims the chain ends at block 4."""
    (head,) = row(chain.db, "SELECT value FROM meta WHERE key = 'head'")
    doc = codec.decode(head)
    assert isinstance(doc, dict) and doc["height"] == 5
    hash4, header4 = row(chain.db, "SELECT hash, header FROM blocks WHERE height = 4")
    app_hash4 = codec.decode_trusted(header4)["app_hash"]
    forged = codec.encode({"app_hash": app_hash4, "block_hash": hash4.hex(), "height": 4})
    edit(chain.db, "UPDATE meta SET value = ? WHERE key = 'head'", (forged,))
    assert_bad_height(chain, 5, "head")


# -- the plain-text report --------------------------------------------------------------------------------------

def test_plain_report_names_the_height(chain: Chain) -> None:
    key = f"identity/key/{NURSE.public_hex}"
    value = state_row(chain, key)
    forged = flip_at(value, b'"roles":["nurse"]', b'"roles":["nursf"]')
    edit(chain.db, "UPDATE state SET value = ?, chk = ? WHERE key = ?", (forged, state_chk(key, forged), key))
    proc = run_cli("verify", "--home", chain.home.path)
    assert proc.returncode == 2
    assert "ledger damaged at height 3" in proc.stdout + proc.stderr, (proc.stdout, proc.stderr)


def test_untouched_copy_verifies(chain: Chain) -> None:
    """The control: the same copy, unedited, verifies (so each failure above is the edit's doing)."""
    code, report = verify_cli(chain.home.path)
    assert code == 0 and report["ok"] and report["bad_height"] is None and report["height"] == 5
