"""The claims contract through the in-memory ledger: submission, phantom billing, duplicates across
insurers, coordination of benefits, replacement and void, and every bad input refused with its code
and nothing written."""

from __future__ import annotations

import json
from typing import Any

import pytest

from careledger.contracts import claims as claims_contract
from careledger.core.errors import Code
from support.claims import TODAY, World


@pytest.fixture
def world() -> World:
    return World()


def flags(world: World, insurer: str) -> list[tuple[str, str, str | None]]:
    return [(f.claim, f.kind, f.other_claim) for f in claims_contract.flags_of(world.ledger.state, insurer)]


def test_a_claim_for_a_recorded_encounter_is_submitted(world: World) -> None:
    cov = world.setup()["insurer"]
    enc = world.anchor_encounter()
    s = world.submit(enc, cov)
    assert s.receipt.code == 0 and s.receipt.result["status"] == "submitted" and s.receipt.result["flags"] == []
    record = world.claim(s.claim)
    assert (record.provider, record.insurer, record.patient, record.encounter, record.lines) == \
        ("hospital", "insurer", world.pseudonym(), enc.record, 2)
    assert record.content_commitment == s.content.commitment(s.salt) and record.status == "submitted"
    assert [c.id for c in claims_contract.claims_of_patient(world.ledger.state, world.pseudonym())] == [s.claim]
    assert flags(world, "insurer") == []


# --- phantom billing ----------------------------------------------------------------------------------------------

def _phantom_checks(world: World, s: Any, kind: str = "no-recorded-encounter") -> None:
    assert s.receipt.code == 0 and s.receipt.result == {"claim": s.claim, "flags": [kind], "status": "adjudicated"}
    (adj,) = claims_contract.adjudications_of(world.ledger.state, s.claim)
    assert (adj.by, adj.outcome, adj.input_commitment) == ("ledger", "denied", None)
    assert [(x.sequence, x.outcome, x.codes) for x in adj.lines] == [(1, "denied", ("CO-16", "M127")),
                                                                     (2, "denied", ("CO-16", "M127"))]
    assert flags(world, "insurer") == [(s.claim, kind, None)]


def test_a_claim_for_an_encounter_never_anchored_is_denied_and_flagged(world: World) -> None:
    cov = world.setup()["insurer"]
    real = world.anchor_encounter()
    ghost = type(real)("r-" + "9" * 32, real.salt, real.resource)
    s = world.submit(ghost, cov)
    _phantom_checks(world, s)
    # a denied claim cannot be paid
    assert world.run(world.officer("insurer"), "claims.pay", {"claim": s.claim, "remittance": "ab" * 32}).code == \
        Code.CLAIM_BAD_TRANSITION


@pytest.mark.parametrize("which", ["other-custodian", "other-patient", "not-an-encounter"])
def test_an_anchor_that_is_not_this_providers_encounter_of_this_patient_is_phantom(world: World, which: str) -> None:
    cov = world.setup()["insurer"]
    enc = {"other-custodian": lambda: world.anchor_encounter(custodian="clinic"),
           "other-patient": lambda: world.anchor_encounter(patient="patient-2"),
           "not-an-encounter": lambda: world.anchor_encounter(resource_type="Observation")}[which]()
    _phantom_checks(world, world.submit(enc, cov))


@pytest.mark.parametrize(("reason", "kind"), [("entered_in_error", "no-recorded-encounter"),
                                              ("patient_request", "encounter-erased")])
def test_a_claim_after_the_encounter_was_erased_is_denied(world: World, reason: str, kind: str) -> None:
    cov = world.setup()["insurer"]
    enc = world.anchor_encounter()
    world.ok(world.key("patient"), "records.erase", {"reason": reason, "record": enc.record})
    _phantom_checks(world, world.submit(enc, cov), kind)


# --- duplicates across insurers and coordination of benefits ------------------------------------------------------

def test_the_same_line_to_two_insurers_is_flagged_to_both(world: World) -> None:
    covs = world.setup(("insurer", "insurer-b"))
    enc = world.anchor_encounter()
    first = world.submit(enc, covs["insurer"])
    second = world.submit(enc, covs["insurer-b"], insurer="insurer-b")
    assert second.receipt.code == 0 and second.receipt.result["flags"] == ["duplicate-across-payers"]
    assert flags(world, "insurer") == [(first.claim, "duplicate-across-payers", second.claim)]
    assert flags(world, "insurer-b") == [(second.claim, "duplicate-across-payers", first.claim)]
    assert world.claim(first.claim).flags == ("duplicate-across-payers",)
    assert world.claim(second.claim).flags == ("duplicate-across-payers",)
    # only one line in common is enough
    third = world.submit(enc, covs["insurer-b"], "ZZ002", "ZZ009", insurer="insurer-b")
    assert set(third.receipt.result["flags"]) == {"duplicate-across-payers", "duplicate-same-payer"}


def test_a_legitimate_secondary_claim_after_the_primary_adjudication_is_not_flagged(world: World) -> None:
    covs = world.setup(("insurer", "insurer-b"))
    enc = world.anchor_encounter()
    primary = world.submit(enc, covs["insurer"])
    early = world.submit(enc, covs["insurer-b"], insurer="insurer-b", prior_payer_claim=primary.claim)
    assert early.receipt.code == Code.CLAIM_COB_INVALID  # the primary has not adjudicated yet
    world.adjudicate(primary)
    before = world.snapshot()
    secondary = world.submit(enc, covs["insurer-b"], insurer="insurer-b", prior_payer_claim=primary.claim)
    assert secondary.receipt.code == 0 and secondary.receipt.result["flags"] == []
    assert flags(world, "insurer") == flags(world, "insurer-b") == []
    assert world.claim(primary.claim).flags == () and set(world.snapshot()) > set(before)


def test_a_secondary_claim_must_name_a_prior_payer_that_ranks_first(world: World) -> None:
    covs = world.setup(("insurer", "insurer-b"))
    enc = world.anchor_encounter()
    primary = world.submit(enc, covs["insurer-b"], insurer="insurer-b")  # the order-2 coverage billed first
    world.adjudicate(primary)
    wrong_way = world.submit(enc, covs["insurer"], prior_payer_claim=primary.claim)
    assert wrong_way.receipt.code == Code.CLAIM_COB_INVALID


def test_the_same_line_twice_to_one_insurer(world: World) -> None:
    cov = world.setup()["insurer"]
    enc = world.anchor_encounter()
    first = world.submit(enc, cov)
    again = world.submit(enc, cov)  # new salt: a new commitment, the same fingerprints
    assert again.receipt.result["flags"] == ["duplicate-same-payer"]
    assert flags(world, "insurer") == [(again.claim, "duplicate-same-payer", first.claim)]


# --- replacement, void, resubmission ------------------------------------------------------------------------------

def test_a_paid_claim_is_resubmitted_only_as_its_replacement(world: World) -> None:
    cov = world.setup()["insurer"]
    enc = world.anchor_encounter()
    s = world.submit(enc, cov)
    world.adjudicate(s)
    world.ok(world.officer("insurer"), "claims.pay", {"claim": s.claim, "remittance": "ab" * 32})
    before = world.snapshot()
    resubmitted = world.submit(enc, cov)
    assert resubmitted.receipt.code == Code.CLAIM_ALREADY_PAID and world.snapshot() == before
    replacement = world.submit(enc, cov, replaces=s.claim)
    assert replacement.receipt.code == 0 and replacement.receipt.result["flags"] == []
    old, new = world.claim(s.claim), world.claim(replacement.claim)
    assert (old.status, old.replaced_by, new.replaces) == ("replaced", replacement.claim, s.claim)
    assert claims_contract.payments_of(world.ledger.state, s.claim)[0].remittance == "ab" * 32  # kept


def test_void_and_what_cannot_follow_it(world: World) -> None:
    cov = world.setup()["insurer"]
    enc = world.anchor_encounter()
    s = world.submit(enc, cov)
    assert world.ok(world.officer("hospital"), "claims.void", {"claim": s.claim, "reason": "entered_in_error"}) == \
        {"claim": s.claim, "status": "voided"}
    for tx, payload, who in (("claims.void", {"claim": s.claim, "reason": "other"}, "hospital"),
                             ("claims.adjudicate", world.adjudication_payload(s)[0], "insurer")):
        before = world.snapshot()
        assert world.run(world.officer(who), tx, payload).code == Code.CLAIM_BAD_TRANSITION
        assert world.snapshot() == before
    replacing = world.submit(enc, cov, replaces=s.claim)
    assert replacing.receipt.code == Code.CLAIM_RELATED_INVALID
    # a voided claim no longer counts as a duplicate
    assert world.submit(enc, cov).receipt.result["flags"] == []


def test_only_a_live_claim_of_the_same_parties_can_be_replaced(world: World) -> None:
    covs = world.setup(("insurer", "insurer-b"))
    enc = world.anchor_encounter()
    s = world.submit(enc, covs["insurer"])
    other_insurer = world.submit(enc, covs["insurer-b"], insurer="insurer-b", replaces=s.claim)
    assert other_insurer.receipt.code == Code.CLAIM_RELATED_INVALID


# --- bad inputs: a stable code and nothing written ----------------------------------------------------------------

def _refused(world: World, code: Code, **kw: Any) -> None:
    before = world.snapshot()
    s = kw.pop("submitted", None) or world.submit(kw.pop("encounter"), kw.pop("coverage"), **kw)
    assert s.receipt.code == code, (s.receipt.code, s.receipt.message)
    assert world.snapshot() == before


def test_unknown_coverage(world: World) -> None:
    world.setup()
    _refused(world, Code.CLAIM_COVERAGE_UNKNOWN, encounter=world.anchor_encounter(), coverage="cov-" + "0" * 24)


def test_expired_coverage(world: World) -> None:
    world.setup()
    expired = world.coverage(order=2, start=TODAY - 400, end=TODAY - 40)
    _refused(world, Code.CLAIM_COVERAGE_PERIOD, encounter=world.anchor_encounter(), coverage=expired)


def test_cancelled_coverage(world: World) -> None:
    cov = world.setup()["insurer"]
    world.ok(world.officer("insurer"), "claims.update_coverage",
             {"commitment": "c1" * 32, "coverage": cov, "order": 1, "status": "cancelled"})
    _refused(world, Code.CLAIM_COVERAGE_INACTIVE, encounter=world.anchor_encounter(), coverage=cov)


def test_another_insurers_or_patients_coverage(world: World) -> None:
    covs = world.setup(("insurer", "insurer-b"))
    enc = world.anchor_encounter()
    _refused(world, Code.CLAIM_COVERAGE_MISMATCH, encounter=enc, coverage=covs["insurer-b"])
    other = world.coverage(patient="patient-2")
    _refused(world, Code.CLAIM_COVERAGE_MISMATCH, encounter=enc, coverage=other)


@pytest.mark.parametrize(("signer", "code"), [("clinic-officer", Code.CLAIM_NOT_PROVIDER),
                                              ("hospital-nurse", Code.CLAIM_NOT_PROVIDER),
                                              ("insurer-officer", Code.CLAIM_NOT_PROVIDER),
                                              ("patient", Code.CLAIM_NOT_PROVIDER)])
def test_claims_by_anyone_but_the_providers_claims_officer(world: World, signer: str, code: Code) -> None:
    cov = world.setup()["insurer"]
    _refused(world, code, encounter=world.anchor_encounter(), coverage=cov, signer=signer)


def test_a_claim_by_a_non_member_never_enters_a_block(world: World) -> None:
    cov = world.setup()["insurer"]
    enc = world.anchor_encounter()
    c = world.content(enc)
    raw = world.ledger.tx(world.key("stranger"), "claims.submit", world.submit_payload(c, bytes(32), enc, cov))
    before = world.snapshot()
    assert world.ledger.refused(raw).code == Code.UNKNOWN_SIGNER
    assert world.snapshot() == before


def test_replayed_submission(world: World) -> None:
    cov = world.setup()["insurer"]
    enc = world.anchor_encounter()
    c = world.content(enc)
    payload = world.submit_payload(c, bytes(range(32)), enc, cov)
    raw = world.ledger.tx(world.officer("hospital"), "claims.submit", payload)
    assert world.ledger.block(raw).codes == [0]
    before = world.snapshot()
    assert world.ledger.refused(raw).code == Code.NONCE_REPLAYED  # the same signed transaction
    assert world.snapshot() == before
    assert world.run(world.officer("hospital"), "claims.submit", payload).code == Code.CLAIM_EXISTS
    assert world.snapshot() == before


def test_tampered_content_is_refused_at_adjudication_and_flagged(world: World) -> None:
    from careledger.claims.content import ContentMismatch, verify_content

    cov = world.setup()["insurer"]
    enc = world.anchor_encounter()
    s = world.submit(enc, cov)
    tampered = world.content(enc, "G0438", "ZZ001")  # what reaches the insurer differs from what was committed
    with pytest.raises(ContentMismatch) as exc:
        verify_content(tampered, s.salt, world.claim(s.claim).content_commitment)
    assert exc.value.code == Code.CLAIM_CONTENT_MISMATCH
    payload, _ = world.adjudication_payload(s)
    before = world.snapshot()
    forged = {**payload, "content_commitment": tampered.commitment(s.salt)}
    assert world.run(world.officer("insurer"), "claims.adjudicate", forged).code == Code.CLAIM_CONTENT_MISMATCH
    assert world.snapshot() == before
    world.ok(world.officer("insurer"), "claims.flag", {"claim": s.claim, "kind": "content-mismatch"})
    assert flags(world, "insurer") == [(s.claim, "content-mismatch", None)]
    assert world.claim(s.claim).status == "submitted"


@pytest.mark.parametrize(("change", "code"), [
    (lambda p: p.update(end_day=p["start_day"] - 1), Code.INVALID_PAYLOAD),
    (lambda p: p.update(fingerprints=list(reversed(p["fingerprints"]))), Code.INVALID_PAYLOAD),
    (lambda p: p.update(lines=1), Code.INVALID_PAYLOAD),
    (lambda p: p.update(type="pharmacy"), Code.INVALID_PAYLOAD),
    (lambda p: p.update(amount=12000), Code.INVALID_PAYLOAD),
])
def test_malformed_submissions_are_invalid_at_admission(world: World, change: Any, code: Code) -> None:
    cov = world.setup()["insurer"]
    enc = world.anchor_encounter()
    payload = world.submit_payload(world.content(enc), bytes(32), enc, cov)
    change(payload)
    raw = world.ledger.tx(world.officer("hospital"), "claims.submit", payload)
    before = world.snapshot()
    assert world.ledger.refused(raw).code == code
    assert world.snapshot() == before


def test_nothing_on_the_ledger_reveals_codes_or_amounts(world: World) -> None:
    covs = world.setup(("insurer", "insurer-b"))
    enc = world.anchor_encounter()
    s = world.submit(enc, covs["insurer"], "G0438", "ZZ002")
    world.adjudicate(s)
    world.ok(world.officer("insurer"), "claims.pay", {"claim": s.claim, "remittance": "ab" * 32})
    world.submit(enc, covs["insurer-b"], insurer="insurer-b")
    # everything about claims and patients (the plans' own code lists are public rule data, not about anyone)
    leaves: set[Any] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        else:
            leaves.add(value)

    for key, raw in world.ledger.snapshot().items():
        if key.startswith("claims/") and not key.startswith("claims/plan/"):
            walk(json.loads(raw))
    words = " ".join(v for v in leaves if isinstance(v, str) and not all(c in "0123456789abcdef" for c in v))
    for code in ("G0438", "ZZ002", enc.resource["id"], enc.resource["subject"]["display"], "urn:uuid"):
        assert code not in words
    assert not leaves & {20000, 17500, 2500, "200.00", "175.00"}  # the charges, the benefit, the co-pay


def test_the_contract_registers_exactly_its_transactions() -> None:
    kinds = sorted((h.type, h.version) for h in claims_contract.HANDLERS)
    assert kinds == [(t, 1) for t in sorted((
        "claims.adjudicate", "claims.appeal", "claims.flag", "claims.pay", "claims.propose_table",
        "claims.register_coverage", "claims.register_plan", "claims.submit", "claims.update_coverage",
        "claims.void", "claims.vote_table"))]
    assert all(h.summary and h.read_hints is not None and not h.open_to_unregistered for h in claims_contract.HANDLERS)
    assert set(claims_contract.__all__) == {
        "HANDLERS", "adjudications_of", "claims_of_patient", "coverages_of", "eligibility", "encounter_state",
        "flags_of", "get_accumulator_head", "get_adjudication", "get_claim", "get_coverage", "get_plan", "get_table",
        "latest_adjudication", "payments_of", "plan_in_force", "plan_versions", "table_in_force"}
