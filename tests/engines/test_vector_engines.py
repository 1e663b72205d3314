"""Every contract vector through both engines in process: the solo engine and the ABCI application.

Each vector (tests/vectors/**.json, read from its file alone) goes, block by block, through

* the solo engine: a real :class:`Node` over a real SQLite store, :meth:`Node.admit` then
  :meth:`Node.produce_block`, its clock reading the vector's block times;
* the ABCI application, driven as CometBFT drives a single validator: InitChain, then per block
  CheckTx for each transaction, PrepareProposal, ProcessProposal (it must accept what PrepareProposal
  made), FinalizeBlock and Commit, with the vector's block times.

Both must give every transaction the vector's inclusion and code, and — unless an engine refused at
admission a transaction the bare executor includes as failed, or made no block of an all-invalid
vector block — the vector's receipts byte for byte, its app hash after every block, and a whole state
table equal to the in-process replay's. Whatever the case, the two engines must agree with each other
byte for byte. tests/engines/test_net_vectors.py runs a subset on a real CometBFT network.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from careledger.core import codec
from careledger.core.errors import LedgerError
from careledger.core.genesis import parse_genesis
from careledger.node.solo import EngineConfig, Node
from careledger.node.startup import open_store
from support.vectors import (
    ADMISSION_SEES_COMMITTED_STATE,
    ALL_VECTOR_FILES,
    VALIDATOR,
    Outcome,
    compare,
    load,
    replay_in_process,
    run_abci,
    run_solo,
    vector_id,
)

EMPTY = "every transaction of its block is invalid, and no engine makes an empty ledger block"
NOT_HELD_TO_THE_FILE = {
    # vector: why the engines cannot reproduce the file's app hash (they are still held to its codes)
    "envelope_unknown_signer": EMPTY, "envelope_unknown_type_and_payload": EMPTY,
    "governance_remove_organisation": EMPTY, "identity_revoked_member_refused": EMPTY,
    "identity_enrol_member_unauthorised": "206 at admission", "identity_register_patient_twice": "1006 at admission",
    "identity_set_org_api": "206 at admission", "audit_record": "2204 at admission",
    "consent_break_glass": "2110 at admission", "consent_delegate": "2108 at admission",
    "consent_grant_refused": "2108 at admission", "records_anchor_refused": "2007 at admission",
    "records_erase": "2009 at admission", "supply_unauthorised_signers": "206 at admission",
    "supply_epcis_idempotent": "3045 and 3044 at admission",
    "research_unauthorised_signers": "6001, 6003, 6010, 6012, 6013, 6020 and 6029 at admission",
}


@pytest.mark.parametrize("path", ALL_VECTOR_FILES, ids=vector_id)
def test_vector_through_the_solo_engine_and_the_abci_app(path: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    vector = load(path)
    solo = run_solo(vector, tmp_path, monkeypatch)
    abci = run_abci(vector, tmp_path)
    problems, exact = compare(vector, {"solo": solo, "abci": abci}, timeless=True)
    assert problems == [], json.dumps(problems, indent=1)
    assert exact is (vector["name"] not in NOT_HELD_TO_THE_FILE)
    if exact:
        assert abci.app_hash == vector["post"]["app_hash"] == solo.app_hash


def test_most_vectors_are_held_to_the_file() -> None:
    assert set(NOT_HELD_TO_THE_FILE) <= {p.stem for p in ALL_VECTOR_FILES}
    assert len(ALL_VECTOR_FILES) - len(NOT_HELD_TO_THE_FILE) >= 38


@pytest.mark.parametrize("name", sorted(ADMISSION_SEES_COMMITTED_STATE))
def test_each_admission_exception_is_needed(name: str, tmp_path: Path) -> None:
    """A vector allowed an admission code other than the file's really gets one."""
    vector = load(next(p for p in ALL_VECTOR_FILES if p.stem == name))
    abci = run_abci(vector, tmp_path)
    assert any(abci.results[r["tx"]][1] != r["code"] for r in vector["post"]["results"] if not r["included"])


def test_the_comparison_catches_a_wrong_engine() -> None:
    """The comparison is not vacuous: a changed code, receipt, app hash or state value is reported, both
    against the file and against another engine; with block times set aside, still the code and state."""
    vector = load(next(p for p in ALL_VECTOR_FILES if p.stem == "supply_ship"))
    good = replay_in_process(vector)
    assert compare(vector, {"a": good, "b": good}, timeless=True) == ([], True)
    assert compare(vector, {"a": good, "b": good}, timeless=False) == ([], True)
    tx = vector["post"]["results"][1]["tx"]
    for damage in ("code", "receipt", "app_hash", "state"):
        bad = Outcome(dict(good.results), list(good.app_hashes), dict(good.state))
        if damage == "code":
            bad.results[tx] = (True, 1, good.results[tx][2])
        elif damage == "receipt":
            bad.results[tx] = (True, good.results[tx][1], b"{}")
        elif damage == "app_hash":
            bad.app_hashes[-1] = "00" * 32
        else:
            key = next(k for k in bad.state if k.startswith("supply/pack/"))
            bad.state[key] = codec.encode({"s": "stolen"})
        assert compare(vector, {"bad": bad}, timeless=True)[0], damage
        assert compare(vector, {"good": good, "bad": bad}, timeless=True)[0], damage
        if damage in ("code", "state"):
            assert compare(vector, {"bad": bad}, timeless=False)[0], damage


def test_check_order_is_the_same_on_every_admission_path(tmp_path: Path) -> None:
    """The transactions of envelope_check_order (each with several faults) get the file's codes from the
    solo node's production path (stateless checks, then the signature in a worker process, then
    admission) as from the ABCI app's CheckTx: one order, whatever the path."""
    vector = load(next(p for p in ALL_VECTOR_FILES if p.stem == "envelope_check_order"))
    expected = [r["code"] for r in vector["post"]["results"]]
    genesis = parse_genesis(vector["pre"]["genesis"])
    store, chain = open_store(tmp_path / "solo.sqlite", genesis, create=True)
    node = Node(store, chain, VALIDATOR, EngineConfig(sig_workers=1, block_interval_ms=60_000))
    node.start()
    codes = []
    try:
        for text in vector["block"]["txs"]:
            try:
                node.submit_async(text.encode()).admitted.result(timeout=30)
                codes.append(0)
            except LedgerError as exc:
                codes.append(int(exc.code))
    finally:
        node.close()
    assert codes == expected
    abci = run_abci(vector, tmp_path)
    assert [abci.results[r["tx"]][1] for r in vector["post"]["results"]] == expected
