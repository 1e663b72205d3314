"""The state machine: invalid vs failed transactions, rollback, nonces, app hash and determinism."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from careledger.chain.executor import (
    BlockExecution,
    Chain,
    check_stateless,
    execute_block,
    genesis_app_hash,
    genesis_state,
    nonce_key,
)
from careledger.chain.registry import default_registry
from careledger.contracts import governance, identity
from careledger.contracts.base import Handler, Payload, Registry, TxContext
from careledger.core import codec, merkle
from careledger.core.block import BlockEnv, Receipt, receipts_root, txs_root
from careledger.core.errors import AuthError, Code, InvalidTx, NonceError, TxFailed
from careledger.core.state import APP_HASH_TAG, MemoryState, Overlay, changes_root, compute_app_hash
from support import CHAIN_ID, Consortium, Ledger, make_consortium, seeded_key

HERE = Path(__file__).resolve().parent
TESTS_DIR = HERE.parent


# -- a test contract whose transactions write and then fail on demand ---------------------------------

class Poke(Payload):
    key: str
    value: int
    fail: bool = False
    crash: bool = False


def apply_poke(state: Overlay, ctx: TxContext, p: Poke) -> Any:
    state.put(f"test/{p.key}", {"value": p.value})
    state.put("test/counter", (state.get("test/counter") or 0) + 1)
    ctx.emit("poked", key=p.key)
    if p.fail:
        raise TxFailed("asked to fail after writing", Code.INVALID_STATE)
    if p.crash:
        raise ZeroDivisionError("a contract bug")
    return {"key": p.key}


def poke_ledger() -> Ledger:
    consortium = make_consortium(("hospital", "clinic"))
    registry = Registry([*identity.HANDLERS, *governance.HANDLERS, Handler("test.poke", 1, Poke, apply_poke)])
    return Ledger(consortium, Chain(consortium.genesis, registry))


# -- genesis -------------------------------------------------------------------------------------------

def test_genesis_state(consortium: Consortium, ledger: Ledger) -> None:
    genesis = consortium.genesis
    assert ledger.get("chain") == {"chain_id": CHAIN_ID, "crypto_suite": "ed25519-sha256",
                                   "genesis_hash": genesis.hash.hex()}
    assert ledger.get("params") == genesis.params.model_dump()
    assert sorted(k.rsplit("/", 1)[1] for k, _ in ledger.state.scan_raw("identity/org/")) == sorted(consortium.org_ids)
    for org in consortium.org_ids:
        rec = ledger.get(f"identity/org/{org}")
        assert rec["status"] == "active" and rec["since"] == 0 and rec["roles"] == [org]
        admin = ledger.get(f"identity/key/{consortium.admin(org).public_hex}")
        assert admin == {"kind": "admin", "org": org, "roles": ["admin"], "since": 0, "status": "active"}
    assert ledger.get(f"governance/validator/{consortium.validator.public_hex}") == {"org": "hospital", "power": 10}
    changes = genesis_state(genesis)
    assert ledger.app_hash == compute_app_hash(0, genesis.hash, changes) == genesis_app_hash(genesis, changes)
    assert ledger.height == 0


def test_app_hash_formula_by_hand() -> None:
    changes: dict[str, bytes | None] = {"b/key": b'{"x":1}', "a": b"7", "gone": None, "\u00e9": b"true"}
    leaves = []
    for key in sorted(changes, key=lambda k: k.encode()):
        k = key.encode()
        value = changes[key]
        leaves.append(len(k).to_bytes(4, "big") + k + (b"\x00" if value is None else b"\x01" + value))
    assert leaves[0] == b"\x00\x00\x00\x01a\x01" + b"7"
    assert leaves[2] == b"\x00\x00\x00\x04gone\x00"
    assert changes_root(changes) == merkle.merkle_root(leaves)
    previous = bytes(range(32))
    expected = hashlib.sha256(b"CareLedger/app/v1\x00" + (5).to_bytes(8, "big") + previous
                              + merkle.merkle_root(leaves)).digest()
    assert APP_HASH_TAG == b"CareLedger/app/v1\x00"
    assert compute_app_hash(5, previous, changes) == expected
    # the app hash depends on height, previous hash and every change, including deletions
    assert compute_app_hash(6, previous, changes) != expected
    assert compute_app_hash(5, bytes(32), changes) != expected
    assert compute_app_hash(5, previous, {**changes, "gone": b"1"}) != expected
    assert compute_app_hash(5, previous, {k: v for k, v in changes.items() if k != "gone"}) != expected
    assert changes_root({}) == merkle.EMPTY_ROOT


# -- success -------------------------------------------------------------------------------------------

def test_successful_transaction(consortium: Consortium, ledger: Ledger) -> None:
    admin = consortium.admin("hospital")
    doctor = seeded_key("doctor")
    raw = ledger.tx(admin, "identity.enrol_member", {"member": doctor.public_hex, "org": "hospital",
                                                      "roles": ["physician"]})
    before = ledger.app_hash
    outcome = ledger.block(raw)
    receipt = outcome.receipts[0]
    assert receipt.code == 0
    assert receipt.tx == hashlib.sha256(raw).hexdigest() and receipt.index == 0
    assert receipt.result == {"member": doctor.public_hex, "org": "hospital"}
    assert receipt.events == ({"attrs": {"member": doctor.public_hex, "org": "hospital", "roles": ["physician"]},
                               "type": "member_enrolled"},)
    assert ledger.committed_nonce(admin) == 1
    assert ledger.height == 1 and ledger.app_hash != before
    result = outcome.result
    assert result.app_hash == compute_app_hash(1, before, result.changes)
    assert result.txs == [raw]
    assert result.header_fields["txs_root"] == merkle.merkle_root([raw]).hex()
    assert result.header_fields["receipts_root"] == merkle.merkle_root([receipt.encode()]).hex()
    assert result.header_fields["height"] == 1 and result.header_fields["chain_id"] == CHAIN_ID
    header = result.header(consortium.genesis.hash.hex(), consortium.validator.public_hex)
    assert header.prev_hash == consortium.genesis.hash.hex()
    assert header.app_hash == result.app_hash.hex() and header.tx_count == 1
    assert header.hash == hashlib.sha256(header.encode()).digest()
    assert sorted(result.changes) == sorted([nonce_key(admin.public_hex), f"identity/key/{doctor.public_hex}",
                                            f"identity/member/hospital/{doctor.public_hex}"])


def test_receipts_follow_block_order(consortium: Consortium, ledger: Ledger) -> None:
    admin = consortium.admin("hospital")
    raws = [ledger.tx(admin, "identity.enrol_member", {"member": seeded_key(f"m{i}").public_hex, "org": "hospital",
                                                        "roles": ["nurse"]}) for i in range(4)]
    outcome = ledger.block(*raws)
    assert [r.index for r in outcome.receipts] == [0, 1, 2, 3]
    assert [r.tx for r in outcome.receipts] == [hashlib.sha256(r).hexdigest() for r in raws]
    assert outcome.codes == [0, 0, 0, 0]
    assert ledger.committed_nonce(admin) == 4
    assert outcome.result.header_fields["txs_root"] == txs_root(raws).hex()
    assert outcome.result.header_fields["receipts_root"] == receipts_root(outcome.receipts).hex()


def test_empty_block_still_advances_app_hash(ledger: Ledger) -> None:
    before = ledger.app_hash
    outcome = ledger.block()
    assert outcome.receipts == [] and outcome.result.changes == {}
    assert ledger.app_hash == compute_app_hash(1, before, {}) != before


# -- failed transactions: included, nonce consumed, writes rolled back ------------------------------------

def test_failed_transaction_rolls_back_all_but_the_nonce() -> None:
    ledger = poke_ledger()
    admin = ledger.consortium.admin("hospital")
    ok = ledger.run(admin, "test.poke", {"key": "a", "value": 1})
    assert ok.code == 0 and ledger.get("test/a") == {"value": 1} and ledger.get("test/counter") == 1
    before = ledger.snapshot()
    prev_hash = ledger.app_hash
    outcome = ledger.block(ledger.tx(admin, "test.poke", {"fail": True, "key": "a", "value": 2}))
    receipt = outcome.receipts[0]
    assert receipt.code == Code.INVALID_STATE
    assert receipt.result is None and receipt.events == ()  # events of a failed tx are dropped too
    assert receipt.message == "asked to fail after writing"
    assert "asked" not in receipt.encode().decode()  # the message is never hashed
    # the only write is the nonce; the block committed
    assert outcome.result.changes == {nonce_key(admin.public_hex): b"2"}
    after = ledger.snapshot()
    assert {k: v for k, v in after.items() if k != nonce_key(admin.public_hex)} == \
        {k: v for k, v in before.items() if k != nonce_key(admin.public_hex)}
    assert ledger.get("test/a") == {"value": 1} and ledger.get("test/counter") == 1
    assert ledger.committed_nonce(admin) == 2 and ledger.height == 2
    assert ledger.app_hash == compute_app_hash(2, prev_hash, outcome.result.changes)


def test_contract_crash_gives_internal_error_receipt() -> None:
    ledger = poke_ledger()
    admin = ledger.consortium.admin("clinic")
    receipt = ledger.run(admin, "test.poke", {"crash": True, "key": "z", "value": 1})
    assert receipt.code == Code.INTERNAL_ERROR
    assert ledger.get("test/z") is None and ledger.get("test/counter") is None
    assert ledger.committed_nonce(admin) == 1


def test_failure_between_successes_in_one_block() -> None:
    ledger = poke_ledger()
    admin = ledger.consortium.admin("hospital")
    outcome = ledger.block(
        ledger.tx(admin, "test.poke", {"key": "a", "value": 1}),
        ledger.tx(admin, "test.poke", {"fail": True, "key": "b", "value": 2}),
        ledger.tx(admin, "test.poke", {"key": "c", "value": 3}),
    )
    assert outcome.codes == [0, int(Code.INVALID_STATE), 0]
    assert ledger.get("test/a") == {"value": 1} and ledger.get("test/b") is None
    assert ledger.get("test/c") == {"value": 3}
    assert ledger.get("test/counter") == 2  # the failed transaction's increment was rolled back
    assert ledger.committed_nonce(admin) == 3


# -- invalid transactions: never included ---------------------------------------------------------------

def test_nonce_replayed_and_out_of_order(consortium: Consortium, ledger: Ledger) -> None:
    admin = consortium.admin("hospital")
    payload = {"api": "https://hospital.example/api", "org": "hospital"}
    assert ledger.run(admin, "identity.set_org_api", payload).code == 0
    # replay of nonce 1 and a gap to nonce 3
    for nonce, code in ((1, Code.NONCE_REPLAYED), (3, Code.NONCE_OUT_OF_ORDER), (99, Code.NONCE_OUT_OF_ORDER)):
        raw = ledger.tx(admin, "identity.set_org_api", payload, nonce=nonce)
        with pytest.raises(NonceError) as err:
            ledger.admit(raw)
        assert err.value.code == code
        before = (ledger.app_hash, ledger.snapshot())
        exc = ledger.refused(raw)
        assert exc.code == code
        assert ledger.committed_nonce(admin) == 1
        # the (empty) block changed nothing but the height
        assert ledger.snapshot() == before[1]
    # the very same bytes again are a replay
    first = ledger.history[0].result.txs[0]
    assert ledger.refused(first).code == Code.NONCE_REPLAYED


def test_same_transaction_twice_in_a_block(consortium: Consortium, ledger: Ledger) -> None:
    raw = ledger.tx(consortium.admin("clinic"), "identity.set_org_api", {"api": None, "org": "clinic"})
    outcome = ledger.block(raw, raw)
    assert outcome.codes == [0]
    assert [e.code for _, e in outcome.invalid] == [Code.NONCE_REPLAYED]
    assert outcome.result.txs == [raw]


def test_invalid_add_leaves_block_unchanged(consortium: Consortium, ledger: Ledger, chain: Chain) -> None:
    admin = consortium.admin("hospital")
    run = BlockExecution(chain, ledger.state, ledger.env(), ledger.app_hash)
    good = check_stateless(chain, ledger.tx(admin, "identity.set_org_api", {"api": None, "org": "hospital"}))
    assert run.add(good).code == 0
    writes = dict(run.state.writes)
    stranger = seeded_key("stranger")
    for raw, code in [
        (ledger.tx(stranger, "identity.set_org_api", {"api": None, "org": "hospital"}), Code.UNKNOWN_SIGNER),
        (ledger.tx(admin, "identity.set_org_api", {"api": None, "org": "hospital"}, nonce=1), Code.NONCE_REPLAYED),
        (ledger.tx(admin, "identity.set_org_api", {"api": None, "org": "hospital"}, nonce=5),
         Code.NONCE_OUT_OF_ORDER),
    ]:
        with pytest.raises(InvalidTx) as err:
            run.add(check_stateless(chain, raw))
        assert err.value.code == code
        assert run.state.writes == writes and len(run.txs) == 1 and len(run.receipts) == 1
    result = run.finish()
    assert len(result.txs) == 1 and result.header_fields["txs_root"] == merkle.merkle_root(result.txs).hex()


def test_unknown_signer_at_admission_and_in_block(ledger: Ledger) -> None:
    stranger = seeded_key("stranger")
    raw = ledger.tx(stranger, "governance.propose", {"action": {"kind": "remove_organisation", "org": "clinic"},
                                                      "title": "coup"})
    with pytest.raises(AuthError) as err:
        ledger.admit(raw)
    assert err.value.code == Code.UNKNOWN_SIGNER
    assert ledger.refused(raw).code == Code.UNKNOWN_SIGNER
    assert ledger.committed_nonce(stranger) == 0


def test_execute_block_is_strict(consortium: Consortium, ledger: Ledger, chain: Chain) -> None:
    admin = consortium.admin("hospital")
    good = ledger.tx(admin, "identity.set_org_api", {"api": None, "org": "hospital"})
    bad = ledger.tx(admin, "identity.set_org_api", {"api": None, "org": "hospital"}, nonce=7)
    result = execute_block(chain, ledger.state, ledger.env(), ledger.app_hash, [good])
    assert [r.code for r in result.receipts] == [0]
    with pytest.raises(InvalidTx) as err:
        execute_block(chain, ledger.state, ledger.env(), ledger.app_hash, [good, bad])
    assert err.value.code == Code.NONCE_OUT_OF_ORDER and "tx 1" in err.value.message
    with pytest.raises(InvalidTx) as err:
        execute_block(chain, ledger.state, ledger.env(), ledger.app_hash, [good, b"{}"])
    assert err.value.code == Code.INVALID_PAYLOAD
    # execute_block never touches the base state
    assert ledger.committed_nonce(admin) == 0


def test_block_env_reaches_contracts(consortium: Consortium, ledger: Ledger) -> None:
    ledger.block()
    ledger.block()
    doctor = seeded_key("doctor")
    receipt = ledger.enrol("hospital", doctor, ["physician"])
    assert receipt.code == 0
    assert ledger.get(f"identity/key/{doctor.public_hex}")["since"] == 3


# -- overlays ------------------------------------------------------------------------------------------

def test_overlay_reads_writes_and_scans() -> None:
    base = MemoryState({"p/a": b"1", "p/b": b"2", "p/d": b"4", "q/x": b"0"})
    top = Overlay(base)
    top.put("p/c", 3)
    top.delete("p/b")
    top.put("p/d", 40)
    top.put("p/0", 0)
    assert list(top.scan("p/")) == [("p/0", 0), ("p/a", 1), ("p/c", 3), ("p/d", 40)]
    assert top.get("p/b") is None and not top.has("p/b") and top.has("p/a")
    child = Overlay(top)
    child.put("p/b", 22)
    assert [k for k, _ in child.scan("p/")] == ["p/0", "p/a", "p/b", "p/c", "p/d"]
    # values are decoded afresh: mutating what was read changes nothing underneath
    value = {"list": [1]}
    child.put("p/e", value)
    value["list"].append(2)
    read = child.get("p/e")
    read["list"].append(3)
    assert child.get("p/e") == {"list": [1]}
    child.merge_into(top)
    assert top.get("p/b") == 22 and base.get_raw("p/b") == b"2"


# -- determinism ---------------------------------------------------------------------------------------

def run_scenario() -> list[str]:
    """A small chain touching every contract path; returns each block's app hash and receipts root."""
    consortium = make_consortium()
    ledger = Ledger(consortium)
    out = []

    def record() -> None:
        out.append(ledger.app_hash.hex() + ":" + ledger.history[-1].result.header_fields["receipts_root"])

    members = [seeded_key(f"det/member/{i}") for i in range(6)]
    ledger.block(*[ledger.tx(consortium.admin("hospital"), "identity.enrol_member",
                             {"member": m.public_hex, "org": "hospital",
                              "roles": ["researcher", "nurse", "physician"][: 1 + i % 3], "handle": f"m{i}"})
                   for i, m in enumerate(members)])
    record()
    ledger.block(*[ledger.tx(seeded_key(f"det/patient/{i}"), "identity.register_patient", {}) for i in range(5)],
                 ledger.tx(consortium.admin("pharmacy"), "identity.enrol_member",
                           {"member": seeded_key("det/pharm").public_hex, "org": "pharmacy",
                            "roles": ["physician"]}))
    record()
    pid = ledger.propose("clinic", {"kind": "remove_organisation", "org": "research"}).result["proposal"]
    record()
    ledger.block(*[ledger.tx(consortium.admin(o), "governance.vote", {"approve": True, "proposal": pid})
                   for o in ("regulator", "insurer", "pharmacy", "hospital", "manufacturer")])
    record()
    ledger.block(ledger.tx(consortium.admin("hospital"), "identity.revoke_member",
                           {"member": members[0].public_hex, "org": "hospital", "reason": "left"}),
                 ledger.tx(members[0], "identity.register_patient", {}),
                 ledger.tx(consortium.admin("research"), "identity.set_org_api", {"api": None, "org": "research"}))
    record()
    return out


def test_same_blocks_same_results() -> None:
    first, second = run_scenario(), run_scenario()
    assert first == second
    assert len(set(first)) == len(first)  # every block moved the app hash


def test_replay_gives_identical_receipts_and_hashes(consortium: Consortium, ledger: Ledger) -> None:
    admin = consortium.admin("hospital")
    blocks = [
        [ledger.tx(admin, "identity.enrol_member", {"member": seeded_key("r1").public_hex, "org": "hospital",
                                                     "roles": ["nurse", "emergency"]}),
         ledger.tx(seeded_key("rp"), "identity.register_patient", {})],
    ]
    ledger.block(*blocks[0])
    blocks.append([ledger.tx(admin, "identity.enrol_member", {"member": seeded_key("r2").public_hex,
                                                              "org": "hospital", "roles": ["inspector"]}),
                   ledger.tx(seeded_key("rp"), "identity.register_patient", {})])
    ledger.block(*blocks[1])
    replica = Ledger(consortium)
    for raws, original in zip(blocks, ledger.history, strict=True):
        outcome = replica.block(*raws)
        assert [r.encode() for r in outcome.receipts] == [r.encode() for r in original.receipts]
        assert outcome.result.app_hash == original.result.app_hash
        assert outcome.result.changes == original.result.changes
    assert [r.code for r in replica.history[1].receipts] == [Code.ROLE_NOT_ALLOWED, Code.PATIENT_EXISTS]
    assert replica.snapshot() == ledger.snapshot()


def test_hash_seed_does_not_change_results() -> None:
    script = (f"import sys, json; sys.path[:0] = [{str(TESTS_DIR)!r}, {str(HERE)!r}]; import test_executor; "
              "print(json.dumps(test_executor.run_scenario()))")
    procs = []
    for seed in ("0", "1", "2718281828"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        procs.append(subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, cwd=TESTS_DIR))
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()[-2000:]
        results.append(json.loads(out))
    expected = run_scenario()
    assert all(r == expected for r in results), results


def test_block_env_is_all_the_executor_sees(consortium: Consortium) -> None:
    # the same transactions under another block time or proposer give the same app hash: neither is state
    raw = Ledger(consortium).tx(consortium.admin("clinic"), "identity.set_org_api", {"api": None, "org": "clinic"})
    chain = Chain(consortium.genesis, default_registry())
    genesis = consortium.genesis
    changes = genesis_state(genesis)
    base = MemoryState()
    base.apply(changes)
    prev = genesis_app_hash(genesis, changes)
    results = [execute_block(chain, base, BlockEnv(CHAIN_ID, 1, t, p), prev, [raw])
               for t, p in ((1, "aa" * 32), (999_999, "bb" * 32))]
    assert results[0].app_hash == results[1].app_hash
    assert results[0].header_fields["time_ms"] == 1 and results[1].header_fields["time_ms"] == 999_999


def test_receipt_encoding_is_canonical(ledger: Ledger, consortium: Consortium) -> None:
    receipt = ledger.register_patient(seeded_key("enc"))
    doc = codec.decode(receipt.encode())
    assert list(doc) == ["code", "events", "index", "result", "tx"]
    assert Receipt.from_json(doc) == receipt
