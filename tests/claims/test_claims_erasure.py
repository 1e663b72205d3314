"""Erasure and retention (issue 12, item 6), end to end: erasing the encounter a claim is for, the claim's own
record at the provider, and the insurer's payment records at the end of their retention period."""

from __future__ import annotations

import os

import pytest

from careledger.claims.coverage import PlanRules
from careledger.claims.edits import synthetic_tables
from careledger.claims.package import AdjudicationPackage, rerun
from careledger.client import ClientError
from careledger.core.errors import Code
from careledger.core.tx import sign_tx
from support.claims_data import content as parse_content
from support.claims_node import ClaimsNode, claims_node_fixture  # noqa: F401


def plan(w: ClaimsNode) -> PlanRules:
    return PlanRules.from_json(w.claims("patient").plan("insurer", "example-ppo")["versions"][0])


def package(w: ClaimsNode, claim: str) -> AdjudicationPackage:
    return AdjudicationPackage.from_binary(
        w.claims("patient").adjudication_document(claim, "package", purpose="PATRQT").resource)


def test_erasing_the_encounter_keeps_the_claim_its_payment_records_and_its_fingerprints(
        claims_node: ClaimsNode) -> None:
    w = claims_node
    encounter = w.encounter()
    claim = w.submit("patient", encounter=encounter)["receipt"]["result"]["claim"]
    w.claims("insurer-officer").adjudicate(claim)
    w.claims("insurer-officer").pay(claim)
    before = w.claims("patient").status(claim)
    erased = w.records("patient").erase(encounter[0], "patient_request", custodian="hospital")
    assert erased["versions_destroyed"] == 1
    after = w.claims("patient").status(claim)
    # the ledger keeps every claim record (no content in them), the encounter is marked erased
    assert after["encounter_state"] == "erased"
    assert {k: v for k, v in after.items() if k != "encounter_state"} == \
        {k: v for k, v in before.items() if k != "encounter_state"}
    # the insurer kept its payment record: the adjudication re-runs, the fingerprints recompute from its copy
    kept = package(w, claim)
    assert rerun(kept, plan(w), synthetic_tables(), after["adjudications"][-1]).ok
    assert kept.fingerprints(w.pseudonym(), "hospital") == after["claim"]["fingerprints"]
    # an appeal is re-adjudicated from the insurer's retained copy of the encounter
    w.claims("hospital-officer").appeal(claim, "coding")
    again = w.claims("insurer-officer").adjudicate(claim)
    assert again["receipt"]["result"]["status"] == "readjudicated"
    # no new claim for it: the desk refuses, and the ledger denies one signed without the desk
    _, rid = encounter
    with pytest.raises(ClientError) as info:
        w.claims("hospital-officer").submit("hospital", w.pseudonym(), encounter[0],
                                            w.coverages[("insurer", "patient")], "insurer", w.claim_resource(rid))
    assert info.value.code == Code.RECORD_ERASED
    content = parse_content(*w.claim_resource(rid, "ZZ003")["item"])
    result = w.claims("hospital-officer").submit_payload({
        "content_commitment": content.commitment(os.urandom(32)), "coverage": w.coverages[("insurer", "patient")],
        "encounter": encounter[0], "end_day": content.billable_end_day, "fingerprints": [os.urandom(32).hex()],
        "insurer": "insurer", "lines": 1, "patient": w.pseudonym(), "prior_payer_claim": None,
        "provider": "hospital", "replaces": None, "start_day": content.billable_start_day, "type": "professional"})
    assert result["receipt"]["result"]["flags"] == ["encounter-erased"]
    assert result["receipt"]["result"]["status"] == "adjudicated"


def test_erasing_the_claim_record_at_the_provider_leaves_the_insurers_copy(claims_node: ClaimsNode) -> None:
    w = claims_node
    claim = w.submit()["receipt"]["result"]["claim"]
    w.claims("insurer-officer").adjudicate(claim)
    record = w.claims("patient").status(claim)["record"]
    w.records("patient").erase(record, "patient_request", custodian="hospital")
    status = w.claims("patient").status(claim)
    assert status["document"]["status"] == "erased" and status["claim"]["status"] == "adjudicated"
    assert rerun(package(w, claim), plan(w), synthetic_tables(), status["adjudications"][-1]).ok


def test_the_insurers_payment_records_are_erased_when_their_retention_ends(claims_node: ClaimsNode) -> None:
    w = claims_node
    claim = w.submit()["receipt"]["result"]["claim"]
    w.claims("insurer-officer").adjudicate(claim)
    documents = w.claims("patient").status(claim)["adjudications"][-1]["documents"]
    admin = w.consortium.admin("insurer")
    gateway = w.claims("patient").records.gateway("insurer")
    for kind in ("package", "response", "eob"):
        raw = sign_tx(admin, w.ledger.chain_id(), "records.erase", 1, int(w.ledger.nonce(admin.public_hex)["next"]),
                      {"reason": "retention_expired", "record": documents[kind]["record"]})
        assert gateway.request("POST", "/v1/gateway/erase", json={"tx": raw.hex()})["erased_by"] == "custodian"
    status = w.claims("patient").status(claim)
    assert {d["status"] for d in status["adjudications"][-1]["documents"].values()} == {"erased"}
    # the ledger still holds the adjudication and its commitments; nobody can re-run it any more
    assert status["adjudications"][-1]["result_commitment"] is not None
    with pytest.raises(ClientError) as info:
        package(w, claim)
    assert info.value.code == Code.RECORD_ERASED
