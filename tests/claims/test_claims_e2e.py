"""Claims end to end through the HTTP API, the desks and the gateways of a real node: a claim from the
provider's desk to the insurer's adjudication and payment, the patient's EOB and re-run, phantom and
tampered claims, duplicates across insurers and a legitimate secondary claim, replacement and void."""

from __future__ import annotations

import os
from typing import Any

import pytest

from careledger.claims.coverage import PlanRules
from careledger.claims.edits import synthetic_tables
from careledger.claims.fingerprint import claim_fingerprints
from careledger.claims.package import AdjudicationPackage, claim_record_id, rerun, seal_with_salt
from careledger.client import ClientError
from careledger.client.claims import ClaimFlagged
from careledger.core.errors import Code
from careledger.vault.canonical import canonical_bytes, from_python
from careledger.vault.fhir import validate_resource
from support.claims_data import content as parse_content
from support.claims_node import ClaimsNode, claims_node_fixture, today  # noqa: F401


def claim_of(result: dict[str, Any]) -> str:
    return str(result["receipt"]["result"]["claim"])


def package_of(w: ClaimsNode, claim: str, who: str = "patient") -> AdjudicationPackage:
    fetched = w.claims(who).adjudication_document(claim, "package", purpose="PATRQT" if who == "patient" else "HPAYMT")
    return AdjudicationPackage.from_binary(fetched.resource)


def plan_of(w: ClaimsNode, insurer: str, version: int = 1) -> PlanRules:
    versions = w.claims("patient").plan(insurer, "example-ppo")["versions"]
    return PlanRules.from_json(next(v for v in versions if v["version"] == version))


def test_a_claim_from_the_providers_desk_to_payment_and_the_patients_eob(claims_node: ClaimsNode) -> None:
    w = claims_node
    done = w.submit()
    claim = claim_of(done)
    assert done["receipt"]["result"] == {"claim": claim, "flags": [], "status": "submitted"}
    [stored] = done["records"]
    assert stored["type"] == "Claim" and stored["record"] == claim_record_id(
        w.claims("patient").status(claim)["claim"]["content_commitment"])
    adjudicated = w.claims("insurer-officer").adjudicate(claim)
    assert adjudicated["receipt"]["code"] == 0
    summary = adjudicated["adjudication"]
    assert summary["outcome"] == "approved" and summary["totals"]["submitted"] == 40000
    assert [x["codes"] for x in summary["lines"]] == [["PR-3"], ["PR-1"]]  # co-pay, then deductible
    assert {r["type"] for r in adjudicated["records"]} == {"Binary", "ClaimResponse", "ExplanationOfBenefit"}
    # the patient and the provider both see the status; the ledger holds codes, never amounts
    for who in ("patient", "hospital-officer"):
        status = w.claims(who).status(claim)
        assert status["claim"]["status"] == "adjudicated"
        assert status["adjudications"][0]["lines"][0]["codes"] == ["PR-3"]
        assert "20000" not in str(status["adjudications"]) and "G0438" not in str(status)
    assert w.claims("insurer-officer").pay(claim)["receipt"]["result"]["status"] == "paid"
    # the insurer's read went through the hospital's gateway, for payment, into the patient's log
    w.wait_idle()
    log = w.records("patient").view()["access_log"]
    reads = [e for e in log if e["requester"] == w.keys["insurer-officer"].public_hex]
    assert {(e["purpose"], e["outcome"], e["custodian"], e["mode"]) for e in reads} == {
        ("HPAYMT", "granted", "hospital", "consent")}
    assert {e["record"] for e in reads} == {w.claims("patient").status(claim)["record"],
                                            w.claims("patient").status(claim)["claim"]["encounter"]}
    # the patient receives her ExplanationOfBenefit through the insurer's gateway
    eob = w.claims("patient").eob(claim)
    assert eob["resourceType"] == "ExplanationOfBenefit" and eob["outcome"] == "complete"
    response = w.claims("patient").adjudication_document(claim, "response", purpose="PATRQT").resource
    for issued in (eob, response):  # the desk builds them without re-validating: valid FHIR R4 all the same
        assert validate_resource(from_python(issued)) == issued["resourceType"]
    assert eob["meta"]["profile"][0].endswith("C4BB-ExplanationOfBenefit-Professional-NonClinician")
    benefit = next(t for t in eob["total"] if t["category"]["coding"][0]["code"] == "benefit")
    assert str(benefit["amount"]["value"]) == "175.00"


def test_anyone_holding_the_package_re_runs_the_adjudication(claims_node: ClaimsNode) -> None:
    w = claims_node
    claim = claim_of(w.submit())
    w.claims("insurer-officer").adjudicate(claim)
    record = w.claims("patient").status(claim)["adjudications"][-1]
    package = package_of(w, claim)
    again = rerun(package, plan_of(w, "insurer"), synthetic_tables(), record)
    assert again.ok and again.verification.result.canonical() == package.result.canonical()
    # a result the insurer did not compute does not pass for its own
    forged = AdjudicationPackage(package.claim, package.salt, package.input, package.result, package.encounter)
    doc = forged.to_json()
    doc["input"]["facts"]["received_day"] -= 400  # as if filed in time
    altered = rerun(AdjudicationPackage.from_json(doc), plan_of(w, "insurer"), synthetic_tables(), record)
    assert not altered.ok and not altered.verification.input_matches
    # the provider re-runs it too, under the patient's consent for payment
    w.records("patient").grant(w.pseudonym(), "org", "hospital", ["HPAYMT"])
    assert rerun(package_of(w, claim, "hospital-officer"), plan_of(w, "insurer"), synthetic_tables(), record).ok


def test_the_insurer_reads_nothing_without_the_patients_consent(claims_node: ClaimsNode) -> None:
    w = claims_node
    claim = claim_of(w.submit())
    consents = [c for c in w.records("patient").view()["consents"] if c["grantee"]["id"] == "insurer"]
    for c in consents:
        w.records("patient").revoke(c["id"])
    with pytest.raises(ClientError) as info:
        w.claims("insurer-officer").adjudicate(claim)
    assert info.value.code == Code.CONSENT_REVOKED
    assert w.claims("patient").status(claim)["adjudications"] == []
    w.wait_idle()
    denied = [e for e in w.records("patient").view()["access_log"] if e["outcome"] == "denied"]
    assert {e["code"] for e in denied} == {int(Code.CONSENT_REVOKED)} and len(denied) == 2


def test_a_phantom_claim_is_refused_by_the_desk_and_denied_by_the_ledger(claims_node: ClaimsNode) -> None:
    w = claims_node
    never = "r-" + "9" * 32
    _, rid = w.encounter()
    with pytest.raises(ClientError) as info:
        w.claims("hospital-officer").submit("hospital", w.pseudonym(), never, w.coverages[("insurer", "patient")],
                                            "insurer", w.claim_resource(rid))
    assert info.value.code == Code.RECORD_UNKNOWN
    # a provider that bypasses its desk and signs the claim itself
    content = parse_content(*w.claim_resource(rid)["item"])
    coverage = w.coverages[("insurer", "patient")]
    payload = {"content_commitment": content.commitment(os.urandom(32)), "coverage": coverage,
               "encounter": never, "end_day": content.billable_end_day, "fingerprints": sorted(
                   os.urandom(32).hex() for _ in content.lines), "insurer": "insurer", "lines": len(content.lines),
               "patient": w.pseudonym(), "prior_payer_claim": None, "provider": "hospital", "replaces": None,
               "start_day": content.billable_start_day, "type": "professional"}
    result = w.claims("hospital-officer").submit_payload(payload)
    claim = claim_of(result)
    assert result["receipt"]["result"] == {"claim": claim, "flags": ["no-recorded-encounter"], "status": "adjudicated"}
    [denial] = w.claims("insurer-officer").status(claim)["adjudications"]
    assert denial["by"] == "ledger" and {tuple(x["codes"]) for x in denial["lines"]} == {("CO-16", "M127")}
    assert [f["kind"] for f in w.claims("insurer-officer").flags("insurer")] == ["no-recorded-encounter"]
    with pytest.raises(ClientError) as info:
        w.claims("insurer-officer").adjudicate(claim)
    assert info.value.code == Code.CLAIM_BAD_TRANSITION


def test_content_that_does_not_open_its_commitment_is_refused_and_flagged(claims_node: ClaimsNode) -> None:
    """A provider anchors one claim and commits on the ledger to another (a higher bill): the insurer's node
    refuses it, the officer records the flag, nothing is adjudicated."""
    w = claims_node
    record, rid = w.encounter()
    vault = w.vaults["hospital"]
    shown = w.claim_resource(rid, "G0438")
    billed = parse_content(*w.claim_resource(rid, "G0438", net=900.0)["item"])
    salt = os.urandom(32)
    commitment = billed.commitment(salt)
    encounter_salt, _ = vault.open(record, 1)
    sealed = seal_with_salt(vault, claim_record_id(commitment), 1, w.pseudonym(), "Claim",
                            canonical_bytes(from_python(shown)), salt)
    vault.put_pending([sealed])
    w.send(vault.gateway_key, "records.anchor", {"anchors": [{
        "author": w.keys["hospital-officer"].public_hex, "commitment": sealed.commitment, "pseudonym": w.pseudonym(),
        "record": sealed.record, "type": "Claim", "version": 1}], "custodian": "hospital"})
    vault.mark_anchored([(sealed.record, 1)])
    result = w.claims("hospital-officer").submit_payload({
        "content_commitment": commitment, "coverage": w.coverages[("insurer", "patient")], "encounter": record,
        "end_day": billed.billable_end_day,
        "fingerprints": claim_fingerprints(encounter_salt, w.pseudonym(), "hospital", billed), "insurer": "insurer",
        "lines": 1, "patient": w.pseudonym(), "prior_payer_claim": None, "provider": "hospital", "replaces": None,
        "start_day": billed.billable_start_day, "type": "professional"})
    claim = claim_of(result)
    with pytest.raises(ClaimFlagged) as info:
        w.claims("insurer-officer").adjudicate(claim)
    assert info.value.code == Code.CLAIM_CONTENT_MISMATCH and info.value.flag == {"claim": claim,
                                                                                   "kind": "content-mismatch"}
    assert info.value.flag_result["receipt"]["code"] == 0
    status = w.claims("hospital-officer").status(claim)
    assert status["claim"]["flags"] == ["content-mismatch"] and status["adjudications"] == []
    assert [f["kind"] for f in w.claims("insurer-officer").flags("insurer")] == ["content-mismatch"]


def test_the_same_service_billed_to_two_insurers_is_flagged_to_both(claims_node: ClaimsNode) -> None:
    w = claims_node
    encounter = w.encounter()
    first = claim_of(w.submit("patient", encounter=encounter))
    second = w.submit("patient", insurer="insurer-b", encounter=encounter)
    assert second["receipt"]["result"]["flags"] == ["duplicate-across-payers"]
    for insurer, own, other in (("insurer", first, claim_of(second)), ("insurer-b", claim_of(second), first)):
        [flag] = w.claims(f"{insurer}-officer").flags(insurer)
        assert (flag["kind"], flag["claim"], flag["other_claim"]) == ("duplicate-across-payers", own, other)


def test_a_secondary_claim_after_the_primary_is_not_flagged_and_pays_what_is_left(claims_node: ClaimsNode) -> None:
    w = claims_node
    encounter = w.encounter()
    primary = claim_of(w.submit("patient", "G0438", "ZZ002", encounter=encounter))
    paid_first = w.claims("insurer-officer").adjudicate(primary)["adjudication"]["totals"]["benefit"]
    secondary = w.submit("patient", "G0438", "ZZ002", insurer="insurer-b", encounter=encounter,
                         prior_payer_claim=primary)
    assert secondary["receipt"]["result"]["flags"] == []
    result = w.claims("insurer-b-officer").adjudicate(claim_of(secondary))["adjudication"]
    assert result["outcome"] == "approved"
    assert ["OA-23" in x["codes"] for x in result["lines"]] == [True, False]  # the primary paid line 1 only
    assert paid_first + result["totals"]["benefit"] <= result["totals"]["submitted"]
    assert w.claims("insurer-b-officer").flags("insurer-b") == []


def test_replacement_and_void(claims_node: ClaimsNode) -> None:
    w = claims_node
    encounter = w.encounter()
    original = claim_of(w.submit("patient", "G0438", encounter=encounter))
    replacement = w.submit("patient", "G0438", "ZZ002", encounter=encounter, replaces=original)
    assert replacement["receipt"]["result"]["flags"] == []  # the claim it replaces is not a duplicate
    assert w.claims("patient").status(original)["claim"]["status"] == "replaced"
    assert w.claims("patient").status(original)["claim"]["replaced_by"] == claim_of(replacement)
    voided = w.claims("hospital-officer").void(claim_of(replacement), "entered_in_error")
    assert voided["receipt"]["result"]["status"] == "voided"
    with pytest.raises(ClientError) as info:
        w.claims("insurer-officer").adjudicate(claim_of(replacement))
    assert info.value.code == Code.CLAIM_BAD_TRANSITION


def test_appeal_and_readjudication_start_from_the_accumulators_without_the_first_result(
        claims_node: ClaimsNode) -> None:
    w = claims_node
    claim = claim_of(w.submit())
    first = w.claims("insurer-officer").adjudicate(claim)["adjudication"]
    w.claims("insurer-officer").pay(claim)
    assert w.claims("patient").appeal(claim, "coding")["receipt"]["result"]["status"] == "appealed"
    again = w.claims("insurer-officer").adjudicate(claim)["adjudication"]
    assert again["totals"] == first["totals"]  # the deductible it met is not counted twice
    status = w.claims("patient").status(claim)
    assert status["claim"]["status"] == "readjudicated" and len(status["adjudications"]) == 2
    assert rerun(package_of(w, claim), plan_of(w, "insurer"), synthetic_tables(), status["adjudications"][-1]).ok
