"""Vectors of the claims contract: every one of its eleven transaction types, accepted and refused.

The consortium is a hospital (the provider), two insurers and a regulator. Claim content never
reaches the ledger, so the vectors carry only what the contract sees: commitments and line
fingerprints (made-up hashes here), days, counts, codes and statuses. A plan's rules are a minimal
valid document (docs/claims.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from careledger.core.crypto import SigningKey
from vectors.builder import BLOCK_INTERVAL_MS, GENESIS_TIME_MS, Builder, Org, admin, enrol, key, nonce, pseudonym

HOSPITAL, INSURER, INSURER2, REGULATOR = "hospital-a", "insurer-c", "insurer-e", "regulator-d"
CLAIMS_ORGS: tuple[Org, ...] = ((HOSPITAL, "hospital", ()), (INSURER, "insurer", ()), (INSURER2, "insurer", ()),
                                (REGULATOR, "regulator", ()))
PROVIDER_OFFICER, INSURER_OFFICER = key("claims/hospital-officer"), key("claims/insurer-officer")
PATIENT, PATIENT2 = key("patient/1"), key("patient/2")
DAY_MS = 86_400_000
TODAY = GENESIS_TIME_MS // DAY_MS  # every block of a vector is on this UTC day
assert (GENESIS_TIME_MS + 100 * BLOCK_INTERVAL_MS) // DAY_MS == TODAY
PLAN = "basic-ppo"
RULES = {"categories": [{"category": "office-visit", "covered": True}], "currency": "USD", "deductible": 0,
         "timely_filing_days": 365}
ENCOUNTER = "r-" + hashlib.sha256(b"careledger-vectors/claims/encounter").hexdigest()[:32]
NOT_ANCHORED = "r-" + hashlib.sha256(b"careledger-vectors/claims/phantom").hexdigest()[:32]


def h(label: str) -> str:
    """A made-up SHA-256 (a commitment, fingerprint, digest or remittance) from a label."""
    return hashlib.sha256(b"careledger-vectors/claims/" + label.encode()).hexdigest()


def claims_builder() -> Builder:
    return Builder(orgs=CLAIMS_ORGS)


def parties(b: Builder) -> None:
    """A block: the claims officers of the hospital and of the first insurer, and a registered patient."""
    b.pre(enrol(b, INSURER, INSURER_OFFICER, ["claims_officer"]), enrol(b, HOSPITAL, PROVIDER_OFFICER,
                                                                        ["claims_officer"]),
          b.tx(PATIENT, "identity.register_patient", {}))


def plan(b: Builder, version: int = 1, effective_day: int = TODAY, rules: dict[str, Any] | None = None) -> bytes:
    return b.tx(INSURER_OFFICER, "claims.register_plan", {"effective_day": effective_day, "insurer": INSURER,
                                                          "plan": PLAN, "rules": rules or RULES, "version": version})


def coverage(b: Builder, order: int = 1, start_day: int = TODAY - 30, end_day: int | None = None,
             patient: SigningKey = PATIENT) -> bytes:
    return b.tx(INSURER_OFFICER, "claims.register_coverage", {
        "beneficiary": pseudonym(patient), "commitment": h(f"coverage/{order}/{start_day}"), "end_day": end_day,
        "insurer": INSURER, "order": order, "plan": PLAN, "start_day": start_day})


def anchor_encounter(b: Builder) -> bytes:
    return b.tx(admin(HOSPITAL), "records.anchor", {"anchors": [
        {"commitment": h("encounter"), "pseudonym": pseudonym(PATIENT), "record": ENCOUNTER, "type": "Encounter",
         "version": 1}], "custodian": HOSPITAL})


def insured(b: Builder) -> str:
    """Pre blocks: the parties, then the plan, a coverage and the anchored encounter; the coverage id."""
    parties(b)
    receipts = b.pre(plan(b), coverage(b), anchor_encounter(b))
    return str(receipts[1]["result"]["coverage"])


def submit(b: Builder, cov: str, label: str = "claim-1", encounter: str = ENCOUNTER, lines: int = 2,
           start_day: int = TODAY, **fields: Any) -> bytes:
    payload: dict[str, Any] = {
        "content_commitment": h(f"content/{label}"), "coverage": cov, "encounter": encounter, "end_day": start_day,
        "fingerprints": sorted(h(f"line/{label}/{n}") for n in range(lines)), "insurer": INSURER, "lines": lines,
        "patient": pseudonym(PATIENT), "provider": HOSPITAL, "start_day": start_day, "type": "professional"}
    return b.tx(PROVIDER_OFFICER, "claims.submit", {**payload, **fields})


def submitted(b: Builder) -> tuple[str, str]:
    """Pre blocks: an insured patient and one submitted claim of two lines; (coverage, claim)."""
    cov = insured(b)
    [receipt] = b.pre(submit(b, cov))
    return cov, str(receipt["result"]["claim"])


def adjudicate(b: Builder, claim: str, label: str = "claim-1", outcome: str = "approved",
               lines: list[tuple[str, list[str]]] | None = None, **fields: Any) -> bytes:
    lines = lines if lines is not None else [("approved", []), ("approved", ["CO-45"])]
    return b.tx(INSURER_OFFICER, "claims.adjudicate", {
        "claim": claim, "content_commitment": h(f"content/{label}"), "input_commitment": h(f"input/{claim}"),
        "lines": [{"codes": codes, "outcome": line_outcome, "sequence": n}
                  for n, (line_outcome, codes) in enumerate(lines, start=1)],
        "outcome": outcome, "plan_version": 1, "result_commitment": h(f"result/{claim}"), **fields})


def adjudicated(b: Builder) -> tuple[str, str]:
    cov, claim = submitted(b)
    b.pre(adjudicate(b, claim))
    return cov, claim


# -- plans and coverages ------------------------------------------------------------------------------------

def claims_register_plan() -> dict[str, Any]:
    b = claims_builder()
    parties(b)
    unsorted = {**RULES, "categories": [{"category": "x-ray", "covered": True}, {"category": "lab", "covered": True}]}
    return b.vector("claims_register_plan",
                    "The insurer's claims officer registers version 1 of a plan (the rules are stored with "
                    "defaults filled in, and their digest); version 1 again, version 3 and a version 2 taking "
                    "effect before version 1 fail (4018); categories out of order are invalid (105).",
                    [plan(b), plan(b), plan(b, version=3), plan(b, version=2, effective_day=TODAY - 1),
                     plan(b, version=2, rules=unsorted)],
                    [f"claims/plan/{INSURER}/{PLAN}/000001", f"claims/plan/{INSURER}/{PLAN}/000002"],
                    [(True, 0), (True, 4018), (True, 4018), (True, 4018), (False, 105)])


def claims_register_coverage() -> dict[str, Any]:
    b = claims_builder()
    parties(b)
    return b.vector("claims_register_coverage",
                    "A primary coverage; a second one of the same payer order over the same period (4023); a "
                    "secondary one (order 2); a period ending before it starts (105); an unregistered patient "
                    "(2010).",
                    [coverage(b), coverage(b, start_day=TODAY - 10), coverage(b, order=2),
                     coverage(b, order=3, end_day=TODAY - 40), coverage(b, order=3, patient=PATIENT2)],
                    [nonce(INSURER_OFFICER), f"identity/patient/{pseudonym(PATIENT2)}"],
                    [(True, 0), (True, 4023), (True, 0), (True, 105), (True, 2010)])


def claims_update_coverage() -> dict[str, Any]:
    b = claims_builder()
    cov = insured(b)

    def update(**fields: Any) -> bytes:
        return b.tx(INSURER_OFFICER, "claims.update_coverage", {"commitment": h("coverage/updated"), "coverage": cov,
                                                                "status": "active", **fields})

    return b.vector("claims_update_coverage",
                    "The insurer makes the coverage secondary with an end day (version 2); an end before the "
                    "start fails (105); then it cancels it (version 3).",
                    [update(end_day=TODAY + 365, order=2), update(end_day=TODAY - 365), update(status="cancelled")],
                    [f"claims/coverage/{cov}"], [(True, 0), (True, 105), (True, 0)])


# -- claims -------------------------------------------------------------------------------------------------

def claims_submit() -> dict[str, Any]:
    b = claims_builder()
    cov = insured(b)
    unsorted: dict[str, Any] = {"fingerprints": [h("z"), h("a")]}
    return b.vector("claims_submit",
                    "A claim for the anchored encounter is submitted; the same content again (4008), a service "
                    "before the coverage (4006) and an unknown coverage (4003) fail; a claim for an encounter "
                    "never anchored is accepted and denied by the ledger at once (CO-16, M127, flag "
                    "no-recorded-encounter); unsorted fingerprints are invalid (105).",
                    [submit(b, cov), submit(b, cov), submit(b, cov, "early", start_day=TODAY - 60),
                     submit(b, "cov-" + "0" * 24, "unknown"), submit(b, cov, "phantom", encounter=NOT_ANCHORED),
                     submit(b, cov, "unsorted", **unsorted)],
                    [f"claims/commitment/{h('content/claim-1')}", f"claims/commitment/{h('content/early')}"],
                    [(True, 0), (True, 4008), (True, 4006), (True, 4003), (True, 0), (False, 105)])


def claims_adjudicate() -> dict[str, Any]:
    b = claims_builder()
    cov, claim = submitted(b)
    return b.vector("claims_adjudicate",
                    "Another content commitment (4013), one outcome for a two-line claim (4014), an outcome that "
                    "does not follow from the lines (4015) and a plan version that does not exist (4016) fail; "
                    "the insurer's claims officer approves the claim, which starts the coverage's accumulator "
                    "chain; adjudicating again is 4010.",
                    [adjudicate(b, claim, "other"), adjudicate(b, claim, lines=[("approved", [])]),
                     adjudicate(b, claim, lines=[("approved", []), ("denied", ["CO-96"])]),
                     adjudicate(b, claim, plan_version=2), adjudicate(b, claim), adjudicate(b, claim)],
                    [f"claims/claim/{claim}", f"claims/adjudication/{claim}/0001", f"claims/accumulator/{cov}"],
                    [(True, 4013), (True, 4014), (True, 4015), (True, 4016), (True, 0), (True, 4010)])


def claims_flag_and_pay() -> dict[str, Any]:
    b = claims_builder()
    _, claim = adjudicated(b)

    bogus = b.tx(INSURER_OFFICER, "claims.flag", {"claim": claim, "kind": "bogus"}, nonce=1)  # never admitted
    flag = b.tx(INSURER_OFFICER, "claims.flag", {"claim": claim, "kind": "content-mismatch"})
    pay = b.tx(INSURER_OFFICER, "claims.pay", {"claim": claim, "remittance": h("remittance/1")})
    return b.vector("claims_flag_and_pay",
                    "An unknown flag kind is invalid (105); the insurer flags a content mismatch (the claim keeps "
                    "its status) and pays (a commitment to the remittance, no amount); paying again is 4010.",
                    [bogus, flag, pay,
                     b.tx(INSURER_OFFICER, "claims.pay", {"claim": claim, "remittance": h("remittance/2")})],
                    [f"claims/claim/{claim}", f"claims/payment/{claim}/0001", f"claims/payment/{claim}/0002"],
                    [(False, 105), (True, 0), (True, 0), (True, 4010)])


def claims_appeal_and_void() -> dict[str, Any]:
    b = claims_builder()
    _, claim = adjudicated(b)
    return b.vector("claims_appeal_and_void",
                    "The provider appeals the adjudication; appealing again while the appeal is open is 4010; the "
                    "provider voids the claim, its records staying; voiding again is 4010.",
                    [b.tx(PROVIDER_OFFICER, "claims.appeal", {"claim": claim, "reason": "coding"}),
                     b.tx(PROVIDER_OFFICER, "claims.appeal", {"claim": claim, "reason": "units"}),
                     b.tx(PROVIDER_OFFICER, "claims.void", {"claim": claim, "reason": "entered_in_error"}),
                     b.tx(PROVIDER_OFFICER, "claims.void", {"claim": claim, "reason": "duplicate"})],
                    [f"claims/claim/{claim}", f"claims/appeal/{claim}/0001", f"claims/adjudication/{claim}/0001"],
                    [(True, 0), (True, 4010), (True, 0), (True, 4010)])


# -- edit tables --------------------------------------------------------------------------------------------

def claims_edit_tables() -> dict[str, Any]:
    b = claims_builder()

    def propose(org: str) -> bytes:
        return b.tx(admin(org), "claims.propose_table", {"digest": h("table/2025-q3"), "effective_day": TODAY,
                                                         "name": "synthetic-practitioner", "source": "synthetic",
                                                         "version": "2025-q3"})

    def vote(org: str, name: str = "synthetic-practitioner") -> bytes:
        return b.tx(admin(org), "claims.vote_table", {"approve": True, "name": name, "version": "2025-q3"})

    return b.vector("claims_edit_tables",
                    "An insurer's admin proposes an edit-table version (its organisation votes yes); the same "
                    "version again (4021), a second vote of one organisation (1103) and a vote on an unknown "
                    "table (4019) fail; the third yes of four approves it; a vote after that is 1102.",
                    [propose(INSURER), propose(INSURER2), vote(HOSPITAL), vote(HOSPITAL), vote(INSURER2, "no-such"),
                     vote(INSURER2), vote(REGULATOR)],
                    ["claims/table/synthetic-practitioner/2025-q3"],
                    [(True, 0), (True, 4021), (True, 0), (True, 1103), (True, 4019), (True, 0), (True, 1102)])


VECTORS: list[Callable[[], dict[str, Any]]] = [
    claims_register_plan, claims_register_coverage, claims_update_coverage, claims_submit, claims_adjudicate,
    claims_flag_and_pay, claims_appeal_and_void, claims_edit_tables,
]
