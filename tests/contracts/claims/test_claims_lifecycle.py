"""The claims contract after submission: adjudication records and their checks, payment, appeal and
re-adjudication, coverage and plan versions, edit-table votes, erasure of the encounter, and a third
party re-running an adjudication from what the ledger holds."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from careledger.claims.adjudication import AdjudicationResult, Adjustment, PriorPayer, verify_adjudication
from careledger.claims.fingerprint import claim_fingerprints
from careledger.contracts import claims as claims_contract
from careledger.contracts.claims.layout import fingerprint_prefix
from careledger.core.errors import Code
from support.claims import TODAY, Submitted, World
from support.claims_data import tables


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def submitted(world: World) -> Submitted:
    cov = world.setup()["insurer"]
    return world.submit(world.anchor_encounter(), cov)


def refuse_adjudication(world: World, s: Submitted, code: Code, change: Any) -> None:
    payload, _ = world.adjudication_payload(s)
    change(payload)
    before = world.snapshot()
    receipt = world.run(world.officer("insurer"), "claims.adjudicate", payload)
    assert receipt.code == code, (receipt.code, receipt.message)
    assert world.snapshot() == before


# --- adjudication records -----------------------------------------------------------------------------------------

def test_the_adjudication_record_names_versions_and_commitments_not_amounts(world: World, submitted: Submitted) -> None:
    result = world.adjudicate(submitted)
    assert result.outcome == "approved"
    (adj,) = claims_contract.adjudications_of(world.ledger.state, submitted.claim)
    plan = world.plan("insurer")
    assert (adj.plan, adj.plan_version, adj.plan_digest) == ("example-ppo", 1, plan.digest)
    assert adj.edit_set == tables().ref()
    assert adj.result_commitment == result.commitment(submitted.salt) and adj.by == world.officer("insurer").public_hex
    assert [x.codes for x in adj.lines] == [("PR-3",), ("PR-1",)]
    assert world.claim(submitted.claim).status == "adjudicated"
    head = claims_contract.get_accumulator_head(world.ledger.state, submitted.coverage)
    assert head is not None and (head.claim, head.n) == (submitted.claim, 1)


@pytest.mark.parametrize(("change", "code"), [
    (lambda p: p["lines"].pop(), Code.CLAIM_LINES_MISMATCH),
    (lambda p: p["lines"][1].update(sequence=1), Code.CLAIM_LINES_MISMATCH),
    (lambda p: p.update(outcome="denied"), Code.CLAIM_OUTCOME_INCONSISTENT),
    (lambda p: p["lines"][1].update(outcome="denied"), Code.CLAIM_OUTCOME_INCONSISTENT),
    (lambda p: p["lines"][1].update(outcome="denied", codes=["M127"]) or p.update(outcome="partial"),
     Code.CLAIM_OUTCOME_INCONSISTENT),
    (lambda p: p["lines"][0].update(outcome="pended", codes=["OA-133"]) or p.update(outcome="pended"),
     Code.CLAIM_OUTCOME_INCONSISTENT),
    (lambda p: p.update(plan_version=2), Code.CLAIM_PLAN_UNKNOWN),
    (lambda p: p.update(edit_set=None), Code.CLAIM_TABLE_NOT_IN_FORCE),
    (lambda p: p.update(edit_set={"name": "synthetic-practitioner", "version": "1999.9"}), Code.CLAIM_TABLE_UNKNOWN),
    (lambda p: p.update(accumulators_from={"claim": "clm-" + "0" * 24, "n": 1}), Code.CLAIM_ACCUMULATOR_STALE),
])
def test_bad_adjudications(world: World, submitted: Submitted, change: Any, code: Code) -> None:
    refuse_adjudication(world, submitted, code, change)


def test_only_the_insurers_claims_officer_adjudicates(world: World, submitted: Submitted) -> None:
    payload, _ = world.adjudication_payload(submitted)
    for key in (world.consortium.admin("insurer"), world.officer("insurer-b"), world.officer("hospital")):
        before = world.snapshot()
        assert world.run(key, "claims.adjudicate", payload).code == Code.CLAIM_NOT_INSURER
        assert world.snapshot() == before


def test_a_plan_version_registered_later_does_not_reach_back(world: World, submitted: Submitted) -> None:
    assert world.run(world.officer("insurer"), "claims.register_plan", {
        "effective_day": TODAY - 1, "insurer": "insurer", "plan": "example-ppo", "version": 2,
        "rules": world.plan("insurer").document}).code == Code.CLAIM_PLAN_VERSION_CONFLICT
    world.register_plan(version=2, effective_day=TODAY + 7)
    refuse_adjudication(world, submitted, Code.CLAIM_PLAN_NOT_IN_FORCE, lambda p: p.update(plan_version=2))
    world.adjudicate(submitted)  # version 1 is still the one for this service


def test_pended_then_adjudicated_and_the_accumulator_chain(world: World) -> None:
    cov = world.setup()["insurer"]
    enc = world.anchor_encounter()
    first, second = world.submit(enc, cov, "ZZ002"), world.submit(enc, cov, "ZZ009")
    payload, _ = world.adjudication_payload(first)
    pended = {**payload, "outcome": "pended", "accumulators_from": None,
              "lines": [{"codes": ["OA-133"], "outcome": "pended", "sequence": 1}]}
    assert world.ok(world.officer("insurer"), "claims.adjudicate", pended)["status"] == "pended"
    assert claims_contract.get_accumulator_head(world.ledger.state, cov) is None  # a pended outcome counts nothing
    r1 = world.adjudicate(first)
    assert world.claim(first.claim).status == "adjudicated" and world.claim(first.claim).adjudications == 2
    # the second claim must start from the first one's accumulators
    refuse_adjudication(world, second, Code.CLAIM_ACCUMULATOR_STALE, lambda p: p.update(accumulators_from=None))
    r2 = world.adjudicate(second, accumulators=r1.accumulators)
    assert r1.accumulators.years[0].deductible_met == 20000  # ZZ002 at 200.00, all deductible
    assert r2.accumulators.years[0].deductible_met == 40000  # counted on from there


# --- payment, appeal, re-adjudication -----------------------------------------------------------------------------

def test_pay_appeal_readjudicate_pay(world: World, submitted: Submitted) -> None:
    s = submitted
    assert world.run(world.officer("insurer"), "claims.pay", {"claim": s.claim, "remittance": "ab" * 32}).code == \
        Code.CLAIM_BAD_TRANSITION
    result = world.adjudicate(s)
    assert world.run(world.officer("hospital"), "claims.pay", {"claim": s.claim, "remittance": "ab" * 32}).code == \
        Code.CLAIM_NOT_INSURER
    world.ok(world.officer("insurer"), "claims.pay", {"claim": s.claim, "remittance": "ab" * 32})
    assert world.run(world.key("patient-2"), "claims.appeal", {"claim": s.claim, "reason": "coverage"}).code == \
        Code.CLAIM_NOT_PARTY
    assert world.ok(world.key("patient"), "claims.appeal", {"claim": s.claim, "reason": "coding"})["status"] == \
        "appealed"
    assert world.run(world.officer("insurer"), "claims.pay", {"claim": s.claim, "remittance": "cd" * 32}).code == \
        Code.CLAIM_BAD_TRANSITION
    # the re-adjudication starts from the accumulators without this claim's first result
    again = world.adjudicate(s, accumulators=result.accumulators.without(result))
    assert again.canonical() == result.canonical()
    record = world.claim(s.claim)
    assert (record.status, record.adjudications, record.appeals, record.payments) == ("readjudicated", 2, 1, 1)
    world.ok(world.officer("insurer"), "claims.pay", {"claim": s.claim, "remittance": "cd" * 32})
    assert [p.remittance for p in claims_contract.payments_of(world.ledger.state, s.claim)] == ["ab" * 32, "cd" * 32]
    world.ok(world.officer("hospital"), "claims.appeal", {"claim": s.claim, "reason": "units"})
    assert world.claim(s.claim).status == "appealed"


def test_secondary_payer_adjudicates_with_the_primary_result(world: World) -> None:
    covs = world.setup(("insurer", "insurer-b"))
    enc = world.anchor_encounter()
    primary = world.submit(enc, covs["insurer"])
    r1 = world.adjudicate(primary)
    secondary = world.submit(enc, covs["insurer-b"], insurer="insurer-b", prior_payer_claim=primary.claim)
    r2 = world.adjudicate(secondary, prior_payer=PriorPayer(primary.claim, "insurer",
                                                            tuple((x.sequence, x.benefit) for x in r1.lines)))
    assert r2.balances()
    assert [x.adjustments[0].to_json() for x, p in zip(r2.lines, r1.lines, strict=True) if p.benefit] == \
        [["OA", "23", p.benefit] for p in r1.lines if p.benefit]
    assert r1.paid + r2.paid <= primary.content.submitted and r2.paid > 0


# --- coverage and plans -------------------------------------------------------------------------------------------

def test_coverage_rules(world: World) -> None:
    world.setup()
    assert world.run(world.consortium.admin("hospital"), "claims.register_coverage", {
        "beneficiary": world.pseudonym(), "commitment": "c0" * 32, "insurer": "hospital", "order": 1,
        "plan": "example-ppo", "start_day": TODAY}).code == Code.CLAIM_NOT_INSURER
    before = world.snapshot()
    assert world.run(world.officer("insurer"), "claims.register_coverage", {
        "beneficiary": world.pseudonym(), "commitment": "c0" * 32, "insurer": "insurer", "order": 1,
        "plan": "example-ppo", "start_day": TODAY + 5}).code == Code.COVERAGE_ORDER_CONFLICT
    assert world.run(world.officer("insurer"), "claims.register_coverage", {
        "beneficiary": "pt-" + "0" * 32, "commitment": "c0" * 32, "insurer": "insurer", "order": 2,
        "plan": "example-ppo", "start_day": TODAY}).code == Code.PATIENT_UNKNOWN
    assert world.snapshot() == before
    secondary = world.coverage(order=2)
    eligible = claims_contract.eligibility(world.ledger.state, world.pseudonym(), TODAY)
    assert [(c.order, c.insurer) for c in eligible] == [(1, "insurer"), (2, "insurer")] and eligible[1].id == secondary
    assert claims_contract.eligibility(world.ledger.state, world.pseudonym(), TODAY - 31) == []
    assert world.run(world.officer("insurer-b"), "claims.update_coverage", {
        "commitment": "c1" * 32, "coverage": secondary, "order": 2, "status": "cancelled"}).code == \
        Code.CLAIM_NOT_INSURER


def test_plan_versions_are_consecutive(world: World) -> None:
    world.register_plan()
    rules = world.plan("insurer").document
    assert world.run(world.officer("insurer"), "claims.register_plan", {
        "effective_day": TODAY, "insurer": "insurer", "plan": "example-ppo", "version": 3,
        "rules": rules}).code == Code.CLAIM_PLAN_VERSION_CONFLICT
    bad_rules = {**rules, "categories": list(reversed(rules["categories"]))}
    raw = world.ledger.tx(world.officer("insurer"), "claims.register_plan", {
        "effective_day": TODAY, "insurer": "insurer", "plan": "example-ppo", "version": 2, "rules": bad_rules})
    assert world.ledger.refused(raw).code == Code.INVALID_PAYLOAD


# --- edit-table votes ---------------------------------------------------------------------------------------------

def test_an_edit_table_version_needs_more_than_two_thirds(world: World) -> None:
    t = tables()
    propose = {"digest": t.digest, "effective_day": t.effective_day, "name": t.name, "source": "synthetic",
               "version": t.version}
    assert world.run(world.officer("insurer"), "claims.propose_table", propose).code == Code.UNAUTHORISED
    assert world.ok(world.consortium.admin("insurer"), "claims.propose_table", propose)["status"] == "open"
    assert world.run(world.consortium.admin("insurer"), "claims.propose_table", propose).code == \
        Code.CLAIM_TABLE_EXISTS
    assert world.run(world.consortium.admin("insurer"), "claims.vote_table",
                     {"approve": True, "name": t.name, "version": t.version}).code == Code.ALREADY_VOTED
    vote = {"approve": True, "name": t.name, "version": t.version}
    statuses = [world.ok(world.consortium.admin(org), "claims.vote_table", vote)["status"]
                for org in ("hospital", "clinic", "insurer-b", "pharmacy", "research")]
    assert statuses == ["open", "open", "open", "open", "approved"]  # 6 of 8 > 2/3
    assert world.run(world.consortium.admin("regulator"), "claims.vote_table", vote).code == Code.PROPOSAL_CLOSED
    in_force = claims_contract.table_in_force(world.ledger.state, t.name, TODAY)
    assert in_force is not None and in_force.digest == t.digest


def test_a_rejected_table_is_never_in_force(world: World) -> None:
    t = tables()
    world.ok(world.consortium.admin("insurer"), "claims.propose_table", {
        "digest": t.digest, "effective_day": t.effective_day, "name": t.name, "source": "synthetic",
        "version": t.version})
    vote = {"approve": False, "name": t.name, "version": t.version}
    statuses = [world.ok(world.consortium.admin(org), "claims.vote_table", vote)["status"]
                for org in ("hospital", "clinic", "insurer-b")]
    assert statuses[-1] == "rejected"
    assert claims_contract.table_in_force(world.ledger.state, t.name, TODAY) is None


# --- erasure of the encounter -------------------------------------------------------------------------------------

def test_erasing_the_encounter_keeps_claims_payments_and_fingerprints(world: World, submitted: Submitted) -> None:
    s = submitted
    world.adjudicate(s)
    world.ok(world.officer("insurer"), "claims.pay", {"claim": s.claim, "remittance": "ab" * 32})
    kept = {k: v for k, v in world.snapshot().items() if k.startswith(("claims/claim/", "claims/adjudication/",
                                                                        "claims/payment/", "claims/fingerprint/"))}
    world.ok(world.key("patient"), "records.erase", {"reason": "patient_request", "record": s.encounter.record})
    after = world.snapshot()
    assert all(after[k] == v for k, v in kept.items())
    assert claims_contract.encounter_state(world.ledger.state, s.encounter.record) == "erased"
    # the insurer kept the encounter's salt with the claim: it still recomputes and finds the fingerprints
    fps = claim_fingerprints(s.encounter.salt, world.pseudonym(), "hospital", s.content)
    for fp in fps:
        assert [k.rsplit("/", 1)[1] for k in after if k.startswith(fingerprint_prefix(fp))] == [s.claim]
    # a new claim for the erased encounter is denied, and still meets the old fingerprints
    late = world.submit(s.encounter, s.coverage)
    assert late.receipt.code == Code.CLAIM_ALREADY_PAID
    late = world.submit(s.encounter, s.coverage, replaces=s.claim)
    assert late.receipt.result["flags"] == ["encounter-erased"] and late.receipt.result["status"] == "adjudicated"


# --- a third party re-runs the adjudication -----------------------------------------------------------------------

def test_the_patient_re_runs_the_adjudication_from_the_ledger(world: World, submitted: Submitted) -> None:
    s = submitted
    result = world.adjudicate(s)
    # what the patient receives through the gateway: content, salt, the facts the insurer used, the result
    # (behind the EOB); what the ledger gives anyone: the plan rules, the table version, the commitments
    (adj,) = claims_contract.adjudications_of(world.ledger.state, s.claim)
    plan_rec = claims_contract.get_plan(world.ledger.state, "insurer", adj.plan or "", adj.plan_version or 0)
    assert plan_rec is not None and adj.edit_set is not None and adj.input_commitment and adj.result_commitment
    from careledger.claims.coverage import PlanRules

    plan = PlanRules.from_document(plan_rec.insurer, plan_rec.plan, plan_rec.version, plan_rec.effective_day,
                                   plan_rec.rules)
    assert plan.digest == adj.plan_digest and tables().digest == adj.edit_set["digest"]
    claimed = AdjudicationResult.from_json(result.to_json())
    v = verify_adjudication(s.content, world.terms(s.coverage), plan, tables(), world.facts(s), salt=s.salt,
                            input_commitment_hex=adj.input_commitment, result_commitment_hex=adj.result_commitment,
                            claimed=claimed)
    assert v.ok
    # an insurer that recorded (and sent) a balanced result other than the one the rules give is caught
    first = result.lines[0]
    stingy_line = replace(first, benefit=first.benefit - 100,
                          adjustments=(*first.adjustments, Adjustment("CO", "45", 100)))
    stingy = replace(result, lines=(stingy_line, *result.lines[1:]))
    assert stingy.balances()
    v2 = verify_adjudication(s.content, world.terms(s.coverage), plan, tables(), world.facts(s), salt=s.salt,
                             input_commitment_hex=adj.input_commitment,
                             result_commitment_hex=stingy.commitment(s.salt), claimed=stingy)
    assert v2.input_matches and not v2.result_matches and not v2.ok
    assert {d.path for d in v2.differences} == {"lines[0].benefit", "lines[0].adjustments", "totals.benefit"}


# --- the insurer's intake checks ------------------------------------------------------------------------------

def test_intake_checks_content_fingerprints_and_encounter(world: World, submitted: Submitted) -> None:
    from careledger.claims.content import ContentMismatch
    from careledger.claims.fingerprint import FingerprintMismatch
    from careledger.claims.intake import (
        EncounterMismatch,
        ReceivedClaim,
        check_received_claim,
        encounter_facts,
        flag_for,
    )
    from careledger.contracts import records

    s = submitted
    record = world.claim(s.claim)
    check_received_claim(record, ReceivedClaim(s.content, s.salt), s.encounter.salt)
    with pytest.raises(ContentMismatch) as exc:
        check_received_claim(record, ReceivedClaim(world.content(s.encounter, "G0438", "ZZ001"), s.salt),
                             s.encounter.salt)
    assert flag_for(exc.value) == "content-mismatch"
    with pytest.raises(ContentMismatch):  # opens the commitment, but the ledger shows another line count
        check_received_claim(replace(record, lines=3), ReceivedClaim(s.content, s.salt), s.encounter.salt)
    with pytest.raises(FingerprintMismatch) as exc2:
        check_received_claim(record, ReceivedClaim(s.content, s.salt), bytes(32))
    assert flag_for(exc2.value) == "fingerprint-mismatch"
    anchor = records.get_anchor(world.ledger.state, s.encounter.record, 1)
    assert anchor is not None
    facts = encounter_facts(s.encounter.record, s.encounter.resource, s.encounter.salt, anchor.commitment)
    assert (facts.status, facts.resource_id, facts.start_day, facts.end_day) == \
        ("verified", s.encounter.resource["id"], TODAY, TODAY)
    altered = {**s.encounter.resource, "status": "cancelled"}
    with pytest.raises(EncounterMismatch) as exc3:
        encounter_facts(s.encounter.record, altered, s.encounter.salt, anchor.commitment)
    assert flag_for(exc3.value) == "encounter-mismatch" and exc3.value.code == Code.COMMITMENT_MISMATCH
