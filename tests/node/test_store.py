"""The SQLite store: atomic commits, reopening, integrity checks against flipped bytes, and restarts."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from careledger.chain.executor import BlockExecution, Chain, check_stateless, genesis_app_hash, genesis_state
from careledger.core import codec
from careledger.core.block import BlockEnv, Header
from careledger.core.crypto import ED25519_SHA256
from careledger.core.errors import Code, NotFound, StoreCorrupted
from careledger.node.startup import open_store
from careledger.node.store import Head, Store
from support import Consortium, Ledger, seeded_key


class Harness:
    """A store driven block by block next to an in-memory ledger executing the same transactions."""

    def __init__(self, path: Path, consortium: Consortium) -> None:
        self.path = path
        self.consortium = consortium
        self.store, self.chain = open_store(path, consortium.genesis, create=True)
        self.ledger = Ledger(consortium)

    def commit(self, *raws: bytes) -> Head:
        head = self.store.head()
        height = head.height + 1
        proposer = self.consortium.validator.public_hex
        env = BlockEnv(self.chain.chain_id, height, self.ledger.env(height).time_ms, proposer)
        run = BlockExecution(self.chain, self.store.writer_view, env, head.app_hash)
        for raw in raws:
            run.add(check_stateless(self.chain, raw))
        result = run.finish()
        header = result.header(head.block_hash.hex(), self.consortium.validator.public_hex)
        signature = self.consortium.validator.sign("block", self.chain.chain_id, header.hash)
        new_head = self.store.commit_block(header, signature, result.txs, result.receipts, result.changes)
        self.ledger.block(*raws)
        assert new_head.app_hash == self.ledger.app_hash  # SQLite and memory agree block by block
        return new_head

    def close(self) -> None:
        self.store.close()

    def reopen(self, check: bool = True) -> Store:
        self.store.close()
        self.store, self.chain = open_store(self.path, self.consortium.genesis, check=check)
        return self.store


@pytest.fixture
def harness(tmp_path: Path, consortium: Consortium) -> Iterator[Harness]:
    h = Harness(tmp_path / "ledger.sqlite", consortium)
    try:
        yield h
    finally:
        h.store.close()


def fill(h: Harness) -> list[bytes]:
    """Three blocks: enrolments, a patient and a failing transaction, a revocation."""
    c = h.consortium
    led = h.ledger
    doctor, nurse, patient = seeded_key("st/doctor"), seeded_key("st/nurse"), seeded_key("st/patient")
    b1 = [led.tx(c.admin("hospital"), "identity.enrol_member",
                 {"member": doctor.public_hex, "org": "hospital", "roles": ["physician"]}),
          led.tx(c.admin("clinic"), "identity.enrol_member",
                 {"member": nurse.public_hex, "org": "clinic", "roles": ["nurse"]})]
    h.commit(*b1)
    b2 = [led.tx(patient, "identity.register_patient", {}),
          led.tx(c.admin("pharmacy"), "identity.enrol_member",
                 {"member": seeded_key("st/x").public_hex, "org": "pharmacy", "roles": ["physician"]})]
    h.commit(*b2)
    b3 = [led.tx(c.admin("clinic"), "identity.revoke_member",
                 {"member": nurse.public_hex, "org": "clinic", "reason": "moved away"})]
    h.commit(*b3)
    return [*b1, *b2, *b3]


def raw_db(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def flip(data: bytes, at: int | None = None) -> bytes:
    i = len(data) // 2 if at is None else at
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]


# -- genesis and reopening -----------------------------------------------------------------------------

def test_fresh_store_holds_genesis(harness: Harness, consortium: Consortium) -> None:
    genesis = consortium.genesis
    changes = genesis_state(genesis)
    head = harness.store.head()
    assert head == Head(0, genesis_app_hash(genesis, changes), genesis.hash)
    assert harness.store.is_initialised()
    assert harness.store.get_meta("genesis") == genesis.encode()
    assert {k: v for k, v, _ in harness.store.iter_state()} == changes
    assert harness.store.check_integrity() == head
    with pytest.raises(NotFound):
        harness.store.block(1)


def test_commit_then_reopen(harness: Harness) -> None:
    txs = fill(harness)
    head = harness.store.head()
    assert head.height == 3
    harness.reopen()
    assert harness.store.head() == head
    assert harness.store.check_integrity() == head
    # blocks link, are signed by the validator, and hold the right transactions and receipts
    prev = harness.consortium.genesis.hash
    for height in (1, 2, 3):
        header, block_hash, signature = harness.store.block(height)
        assert block_hash == header.hash and header.prev_hash == prev.hex() and header.height == height
        ED25519_SHA256.verify(harness.consortium.validator.public_key, "block", harness.chain.chain_id,
                              block_hash, signature)
        stored = harness.store.block_txs(height)
        original = harness.ledger.history[height - 1]
        assert [t.raw for t in stored] == original.result.txs
        assert [t.receipt.encode() for t in stored] == [r.encode() for r in original.receipts]
        prev = block_hash
    assert head.block_hash == prev
    assert harness.store.block(3)[0].app_hash == head.app_hash.hex()
    # every transaction can be found by hash, with its receipt and (unhashed) message
    for raw in txs:
        stored_tx = harness.store.tx(hashlib.sha256(raw).digest())
        assert stored_tx.raw == raw
    failed = harness.store.block_txs(2)[1]
    assert failed.receipt.code == Code.ROLE_NOT_ALLOWED and failed.receipt.message
    with pytest.raises(NotFound):
        harness.store.tx(b"\x00" * 32)
    # the stored state is exactly the in-memory ledger's state
    assert {k: v for k, v, _ in harness.store.iter_state()} == harness.ledger.snapshot()


def test_open_store_refuses_another_genesis(harness: Harness, tmp_path: Path) -> None:
    from support import make_consortium

    harness.close()
    other = make_consortium(chain_id="careledger-other")
    with pytest.raises(StoreCorrupted):
        open_store(harness.path, other.genesis)
    # without a genesis it opens with the stored one
    store, chain = open_store(harness.path)
    try:
        assert chain.genesis.hash == harness.consortium.genesis.hash
    finally:
        store.close()
    with pytest.raises(StoreCorrupted):
        open_store(tmp_path / "empty.sqlite")


def test_init_genesis_twice_refused(harness: Harness) -> None:
    genesis = harness.consortium.genesis
    with pytest.raises(StoreCorrupted) as err:
        harness.store.init_genesis(genesis.encode(), genesis.hash, {}, b"\x00" * 32)
    assert err.value.code == Code.ALREADY_EXISTS


def test_failed_commit_changes_nothing(harness: Harness) -> None:
    fill(harness)
    head = harness.store.head()
    state = list(harness.store.iter_state())
    header, _, signature = harness.store.block(3)
    stored = harness.store.block_txs(3)
    # a block at the next height that repeats an already-stored transaction: the txs insert fails late
    bad = Header(**{**header.to_json(), "height": 4, "prev_hash": head.block_hash.hex()})
    with pytest.raises(sqlite3.IntegrityError):
        harness.store.commit_block(bad, signature, [stored[0].raw], [stored[0].receipt],
                                   {"poison": b"1"})
    assert harness.store.head() == head
    assert list(harness.store.iter_state()) == state
    with pytest.raises(NotFound):
        harness.store.block(4)
    assert harness.store.check_integrity() == head


# -- integrity: flipped bytes are detected ------------------------------------------------------------

def tamper(path: Path, sql: str, params: tuple[Any, ...]) -> None:
    with raw_db(path) as conn:
        cur = conn.execute(sql, params)
        assert cur.rowcount == 1


def full_check_refuses(path: Path) -> StoreCorrupted:
    """What ``careledger verify`` runs first: the full check over every row must refuse the store."""
    store = Store(path, create=False)
    try:
        with pytest.raises(StoreCorrupted) as err:
            store.check_integrity()
    finally:
        store.close()
    return err.value


def refuses_to_open(h: Harness) -> StoreCorrupted:
    """Damage the start-up check sees (the head, the last block, the row count, the head record): the
    node refuses to start, and the full check refuses too."""
    with pytest.raises(StoreCorrupted) as err:
        h.reopen()
    assert err.value.code == Code.STORE_CORRUPTED
    full_check_refuses(h.path)
    return err.value


def found_by_verify(h: Harness) -> StoreCorrupted:
    """Damage deeper in the ledger: start-up reads a bounded number of rows, so the node opens (and a read
    of the damaged row refuses); the full check (``careledger verify``) reports it."""
    exc = full_check_refuses(h.path)
    assert exc.code == Code.STORE_CORRUPTED
    h.reopen()
    return exc


def test_flipped_byte_in_state_value(harness: Harness) -> None:
    fill(harness)
    harness.close()
    with raw_db(harness.path) as conn:
        key, value = conn.execute("SELECT key, value FROM state WHERE key LIKE 'identity/key/%' LIMIT 1").fetchone()
    tamper(harness.path, "UPDATE state SET value = ? WHERE key = ?", (flip(bytes(value)), key))
    exc = found_by_verify(harness)
    assert "identity/key/" in exc.message
    # reading that entry through a view refuses
    store = harness.store
    with pytest.raises(StoreCorrupted):
        store.view().get_raw(key)
    with pytest.raises(StoreCorrupted):
        list(store.view().scan_raw("identity/key/"))


def test_flipped_byte_in_state_key(harness: Harness) -> None:
    fill(harness)
    harness.close()
    tamper(harness.path, "UPDATE state SET key = ? WHERE key = 'params'", ("paramt",))
    found_by_verify(harness)


def test_flipped_byte_in_tx_row(harness: Harness) -> None:
    txs = fill(harness)
    harness.close()
    h = hashlib.sha256(txs[2]).digest()
    tamper(harness.path, "UPDATE txs SET raw = ? WHERE hash = ?", (flip(txs[2]), h))
    found_by_verify(harness)
    store = harness.store
    with pytest.raises(StoreCorrupted):
        store.tx(h)
    with pytest.raises(StoreCorrupted):
        store.block_txs(2)


def test_flipped_byte_in_receipt(harness: Harness) -> None:
    txs = fill(harness)
    harness.close()
    h = hashlib.sha256(txs[3]).digest()
    with raw_db(harness.path) as conn:
        (receipt,) = conn.execute("SELECT receipt FROM txs WHERE hash = ?", (h,)).fetchone()
    # turn the failure code 1003 into 1002
    forged = bytes(receipt).replace(b'"code":1003', b'"code":1002')
    assert forged != bytes(receipt)
    tamper(harness.path, "UPDATE txs SET receipt = ? WHERE hash = ?", (forged, h))
    found_by_verify(harness)


@pytest.mark.parametrize("height", [1, 2, 3])
def test_flipped_byte_in_block_header(harness: Harness, height: int) -> None:
    fill(harness)
    harness.close()
    with raw_db(harness.path) as conn:
        (header,) = conn.execute("SELECT header FROM blocks WHERE height = ?", (height,)).fetchone()
    header = bytes(header)
    forged = header.replace(b'"tx_count":', b'"tx_count":1') if height == 3 else flip(header, 20)
    tamper(harness.path, "UPDATE blocks SET header = ? WHERE height = ?", (forged, height))
    if height == 3:  # the last block is checked at start-up
        refuses_to_open(harness)
        store, _ = open_store(harness.path, check=False)
        harness.store = store
    else:
        found_by_verify(harness)
        store = harness.store
    with pytest.raises(StoreCorrupted):
        store.block(height)


def test_rewritten_block_with_consistent_hash_breaks_the_link(harness: Harness) -> None:
    fill(harness)
    harness.close()
    with raw_db(harness.path) as conn:
        (header,) = conn.execute("SELECT header FROM blocks WHERE height = 2").fetchone()
    doc = codec.decode(bytes(header))
    forged = codec.encode({**doc, "time_ms": doc["time_ms"] + 1})
    tamper(harness.path, "UPDATE blocks SET header = ?, hash = ? WHERE height = 2",
           (forged, hashlib.sha256(forged).digest()))
    exc = refuses_to_open(harness)
    assert "link" in exc.message


def test_missing_rows_are_detected(harness: Harness) -> None:
    txs = fill(harness)
    harness.close()
    tamper(harness.path, "DELETE FROM txs WHERE hash = ?", (hashlib.sha256(txs[0]).digest(),))
    found_by_verify(harness)


def test_missing_block_is_detected(harness: Harness) -> None:
    fill(harness)
    harness.close()
    tamper(harness.path, "DELETE FROM blocks WHERE height = 2", ())
    refuses_to_open(harness)


def test_head_ahead_of_blocks_is_detected(harness: Harness) -> None:
    fill(harness)
    harness.close()
    with raw_db(harness.path) as conn:
        (head,) = conn.execute("SELECT value FROM meta WHERE key = 'head'").fetchone()
    doc = codec.decode(bytes(head))
    tamper(harness.path, "UPDATE meta SET value = ? WHERE key = 'head'", (codec.encode({**doc, "height": 4}),))
    refuses_to_open(harness)


def test_head_app_hash_mismatch_is_detected(harness: Harness) -> None:
    fill(harness)
    harness.close()
    with raw_db(harness.path) as conn:
        (head,) = conn.execute("SELECT value FROM meta WHERE key = 'head'").fetchone()
    doc = codec.decode(bytes(head))
    forged = codec.encode({**doc, "app_hash": flip(bytes.fromhex(doc["app_hash"])).hex()})
    tamper(harness.path, "UPDATE meta SET value = ? WHERE key = 'head'", (forged,))
    refuses_to_open(harness)


def test_untouched_store_passes(harness: Harness) -> None:
    fill(harness)
    harness.close()
    with raw_db(harness.path) as conn:  # a no-op rewrite of every row changes nothing
        conn.execute("UPDATE state SET value = value")
    assert harness.reopen().check_integrity().height == 3


# -- a real node: restart resumes at the same head ----------------------------------------------------------

def test_node_restart_resumes_with_same_app_hash(node_home: Any, consortium: Consortium) -> None:
    led = Ledger(consortium)
    node = node_home.open_node()
    node.start()
    try:
        assert node.head.height == 0
        doctor = seeded_key("st/node-doctor")
        raw1 = led.tx(consortium.admin("hospital"), "identity.enrol_member",
                      {"member": doctor.public_hex, "org": "hospital", "roles": ["physician"]})
        receipt = node.submit_and_wait(raw1, timeout=20)
        assert receipt.code == 0
        raw2 = led.tx(seeded_key("st/node-patient"), "identity.register_patient", {})
        assert node.submit_and_wait(raw2, timeout=20).code == 0
        head = node.head
        status = node.status()
        assert status["height"] == head.height >= 1 and status["app_hash"] == head.app_hash.hex()
    finally:
        node.close()

    node = node_home.open_node()
    try:
        assert node.head == head
        assert node.store.check_integrity() == head
        # replaying the stored blocks in memory reproduces every app hash: the engine adds nothing of its own
        replay = Ledger(consortium)
        for height in range(1, head.height + 1):
            outcome = replay.block(*[t.raw for t in node.store.block_txs(height)])
            assert outcome.result.app_hash.hex() == node.store.block(height)[0].app_hash
        assert replay.app_hash == head.app_hash
        # and the chain carries on from there
        node.start()
        raw3 = led.tx(consortium.admin("hospital"), "identity.revoke_member",
                      {"member": doctor.public_hex, "org": "hospital", "reason": "retired"})
        assert node.submit_and_wait(raw3, timeout=20).code == 0
        assert node.head.height == head.height + 1
        assert node.store.block(node.head.height)[0].prev_hash == head.block_hash.hex()
        assert node.get_tx(hashlib.sha256(raw1).digest()).receipt.code == 0
    finally:
        node.close()


def test_node_fixture_serves_transactions(node: Any, consortium: Consortium) -> None:
    led = Ledger(consortium)
    raw = led.tx(seeded_key("st/fixture-patient"), "identity.register_patient", {})
    receipt = node.submit_and_wait(raw, timeout=20)
    assert receipt.code == 0 and receipt.result["pseudonym"].startswith("pt-")
    assert node.store.view().get("nonce/" + seeded_key("st/fixture-patient").public_hex) == 1
    assert node.chain.chain_id == consortium.chain_id


def test_chain_of_store_matches_consortium(harness: Harness) -> None:
    assert isinstance(harness.chain, Chain)
    assert harness.chain.genesis == harness.consortium.genesis


def test_empty_or_missing_store_is_refused_not_reinitialised(harness: Harness, tmp_path: Path) -> None:
    """A truncated-to-zero or deleted ledger must never silently restart the chain from genesis."""
    genesis = harness.consortium.genesis
    with pytest.raises(StoreCorrupted, match="missing or empty"):
        open_store(tmp_path / "absent.sqlite", genesis)
    empty = tmp_path / "zero.sqlite"
    empty.write_bytes(b"")
    with pytest.raises(StoreCorrupted, match="missing or empty"):
        open_store(empty, genesis)
    assert empty.stat().st_size == 0  # nothing was written


def test_garbage_file_is_refused_with_store_corrupted(tmp_path: Path, consortium: Consortium) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreCorrupted):
        open_store(junk, consortium.genesis)


# -- the state commitment ----------------------------------------------------------------------------------

def test_the_commitment_kept_at_commit_is_that_of_the_rows(harness: Harness) -> None:
    """Puts, overwrites and deletions, block after block, through commit_block (the engines' own call):
    the commitment maintained from each block's changes equals one recomputed over every row, and the
    start-up and full checks agree with it."""
    import random

    from careledger.core.block import receipts_root, txs_root
    from careledger.core.state import compute_app_hash
    from careledger.node.store import commitment_of

    fill(harness)
    store = harness.store
    rng = random.Random(16)
    keys = [f"test/{i:03d}" for i in range(60)]
    for _ in range(12):
        head = store.head()
        changes: dict[str, bytes | None] = {}
        for key in rng.sample(keys, 20):
            changes[key] = None if rng.random() < 0.3 else codec.encode({"v": rng.randrange(1000)})
        header = Header(chain_id=harness.chain.chain_id, height=head.height + 1, time_ms=head.height + 1,
                        prev_hash=head.block_hash.hex(), txs_root=txs_root([]).hex(),
                        receipts_root=receipts_root([]).hex(),
                        app_hash=compute_app_hash(head.height + 1, head.app_hash, changes).hex(),
                        proposer=harness.consortium.validator.public_hex, tx_count=0)
        store.commit_block(header, b"", [], [], changes)
        rows = ((k, v) for k, v, _ in store.iter_state())
        assert store.commitment() == commitment_of(rows, head.height + 1)
    from careledger.node.integrity import check_row_count, check_startup

    assert check_startup(store).height == store.head().height
    assert check_row_count(store) == store.commitment().count
