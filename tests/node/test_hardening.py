"""Regression tests for inputs that once slipped past a check, and for the engine's own limits."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import pytest

from careledger.core import codec
from careledger.core.crypto import ED25519_SHA256
from careledger.core.errors import Code, InvalidTx, LedgerError, StoreCorrupted
from careledger.core.proofs import ProofInvalid, verify_proof
from careledger.core.tx import decode_tx, sign_tx
from careledger.node.startup import open_store
from careledger.node.store import tx_proof
from careledger.node.verify import verify_file
from support import Consortium, seeded_key


def _tamper(raw: bytes, field: str, value: Any) -> bytes:
    doc = codec.decode(raw)
    if field == "sig":
        doc["sig"] = value
    else:
        doc["body"][field] = value
    return codec.encode(doc)


def test_hex_with_embedded_whitespace_is_refused(consortium: Consortium) -> None:
    """bytes.fromhex skips spaces: a 31-byte key or 63-byte signature must never get past decoding."""
    key = seeded_key("spaces")
    raw = sign_tx(key, consortium.chain_id, "identity.register_patient", 1, 1, {})
    spaced_key = key.public_hex[:62] + " " + key.public_hex[63]
    with pytest.raises(InvalidTx) as err:
        decode_tx(_tamper(raw, "signer", spaced_key), consortium.chain_id, ED25519_SHA256)
    assert err.value.code == Code.UNKNOWN_SIGNER
    sig = codec.decode(raw)["sig"]
    with pytest.raises(InvalidTx) as err:
        decode_tx(_tamper(raw, "sig", sig[:126] + " " + sig[127]), consortium.chain_id, ED25519_SHA256)
    assert err.value.code == Code.BAD_SIGNATURE


def test_type_with_trailing_newline_is_a_payload_error(consortium: Consortium) -> None:
    raw = sign_tx(seeded_key("nl"), consortium.chain_id, "identity.register_patient\n", 1, 1, {})
    with pytest.raises(InvalidTx) as err:
        decode_tx(raw, consortium.chain_id, ED25519_SHA256)
    assert err.value.code == Code.INVALID_PAYLOAD


def test_a_node_keeps_admitting_after_a_malformed_submission(node: Any, consortium: Consortium) -> None:
    """One malformed transaction must not stall the signature workers for everyone after it."""
    key = seeded_key("after-bad")
    raw = sign_tx(key, consortium.chain_id, "identity.register_patient", 1, 1, {})
    sig = codec.decode(raw)["sig"]
    with pytest.raises(LedgerError):
        node.submit(_tamper(raw, "sig", sig[:126] + " " + sig[127]))
    receipt = node.submit_and_wait(raw, timeout=20)
    assert receipt.code == 0


def test_receipt_message_is_covered_by_the_row_checksum(node: Any, node_home: Any, consortium: Consortium) -> None:
    admin = consortium.admin("hospital")
    member = seeded_key("msg-member")
    raw = sign_tx(admin, consortium.chain_id, "identity.enrol_member", 1, 1,
                  {"member": member.public_hex, "org": "hospital", "roles": ["inspector"]})
    receipt = node.submit_and_wait(raw, timeout=20)
    assert receipt.code == Code.ROLE_NOT_ALLOWED and receipt.message
    node.close()
    with sqlite3.connect(node_home.db_path) as conn:
        conn.execute("UPDATE txs SET message = 'all fine' WHERE hash = ?", (bytes.fromhex(receipt.tx),))
    report = verify_file(node_home.db_path)
    assert not report.ok and report.bad_height == 1
    with pytest.raises(StoreCorrupted):
        open_store(node_home.db_path, consortium.genesis)


def test_proof_with_a_non_integer_index_is_refused_cleanly(node: Any, consortium: Consortium) -> None:
    raw = sign_tx(seeded_key("proof-index"), consortium.chain_id, "identity.register_patient", 1, 1, {})
    receipt = node.submit_and_wait(raw, timeout=20)
    bundle = tx_proof(node.store, bytes.fromhex(receipt.tx))
    validators = [consortium.validator.public_hex]
    assert verify_proof(bundle, consortium.chain_id, validators).tx == receipt.tx
    for bad in ("0", 0.0, None, [0]):
        with pytest.raises(ProofInvalid):
            verify_proof({**bundle, "index": bad}, consortium.chain_id, validators)
    with pytest.raises(ProofInvalid):
        verify_proof("not a bundle", consortium.chain_id, validators)  # type: ignore[arg-type]


def test_block_times_never_precede_genesis(node: Any, consortium: Consortium) -> None:
    raw = sign_tx(seeded_key("time"), consortium.chain_id, "identity.register_patient", 1, 1, {})
    node.submit_and_wait(raw, timeout=20)
    header = node.store.block(1)[0]
    assert header.time_ms > consortium.genesis_time_ms


def test_solo_engine_stops_when_its_key_is_voted_out(node: Any, consortium: Consortium) -> None:
    """After governance removes the node's validator key, it must not sign another block."""
    extra = seeded_key("second-validator")
    orgs = consortium.org_ids
    action = {"kind": "set_validator", "org": "hospital", "power": 10, "pub_key": extra.public_hex}
    _pass(node, consortium, action, orgs, nonce=1)
    remove = {"kind": "set_validator", "org": "hospital", "power": 0, "pub_key": consortium.validator.public_hex}
    _pass(node, consortium, remove, orgs, nonce=2)
    height = node.head.height
    raw = sign_tx(seeded_key("late"), consortium.chain_id, "identity.register_patient", 1, 1, {})
    fut = node.submit(raw)
    outcome = fut.result(timeout=20)
    assert isinstance(outcome, InvalidTx) and outcome.code == Code.NODE_UNAVAILABLE
    assert node.head.height == height
    node.close()
    assert verify_file(node.store.path).ok  # everything it did sign is still valid


def _pass(node: Any, consortium: Consortium, action: dict[str, Any], orgs: list[str], nonce: int) -> None:
    first, *others = orgs
    receipt = node.submit_and_wait(sign_tx(consortium.admin(first), consortium.chain_id, "governance.propose", 1,
                                           nonce, {"action": action, "title": "validator change"}), timeout=20)
    assert receipt.code == 0, receipt
    proposal = receipt.result["proposal"]
    for org in others:
        r = node.submit_and_wait(sign_tx(consortium.admin(org), consortium.chain_id, "governance.vote", 1, nonce,
                                         {"approve": True, "proposal": proposal}), timeout=20)
        assert r.code == 0, r
        if r.result["status"] == "executed":
            return
    raise AssertionError("proposal did not pass")


def test_verify_takes_the_engine_from_configuration_not_from_the_data(node: Any, node_home: Any,
                                                                      consortium: Consortium) -> None:
    """Adding CometBFT's bookkeeping table to a solo store must not switch off block-signature checks."""
    raw = sign_tx(seeded_key("engine"), consortium.chain_id, "identity.register_patient", 1, 1, {})
    node.submit_and_wait(raw, timeout=20)
    node.close()
    assert verify_file(node_home.db_path).ok
    assert not verify_file(node_home.db_path, engine="cometbft").ok
    with sqlite3.connect(node_home.db_path) as conn:
        conn.execute("CREATE TABLE abci_progress (k INTEGER)")
        conn.execute("UPDATE blocks SET signature = X''")
    report = verify_file(node_home.db_path)
    assert not report.ok and "engine" in report.problem


def test_solo_engine_stops_where_the_consortium_activates_rules_it_does_not_implement(
        node: Any, consortium: Consortium) -> None:
    """Rules version 2 (which this release does not implement) scheduled at a height: the node commits up
    to the block before it, then halts saying an upgrade is needed, and refuses transactions."""
    activation = node.head.height + 12
    _pass(node, consortium, {"kind": "schedule_rules", "height": activation, "version": 2}, consortium.org_ids, 1)
    i = 0
    while node.head.height + 1 < activation:
        raw = sign_tx(seeded_key(f"upgrade/{i}"), consortium.chain_id, "identity.register_patient", 1, 1, {})
        assert node.submit_and_wait(raw, timeout=20).code == 0
        i += 1
    deadline = time.monotonic() + 10
    while node.health()["ready"] and time.monotonic() < deadline:
        time.sleep(0.05)
    health = node.health()
    assert health["engine"] == "halted" and health["halt"]["kind"] == "upgrade_required", health
    assert health["halt"]["action"] == "stay" and health["height"] == activation - 1
    raw = sign_tx(seeded_key("upgrade/late"), consortium.chain_id, "identity.register_patient", 1, 1, {})
    with pytest.raises(LedgerError) as err:
        node.submit(raw)
    assert err.value.code == Code.NODE_UNAVAILABLE and "rules version 2" in err.value.message
    assert node.head.height == activation - 1
    node.close()
    assert verify_file(node.store.path).ok
