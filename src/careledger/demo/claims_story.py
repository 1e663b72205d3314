"""The demo's insurance-claims chapters: coverage and eligibility, a claim approved and paid (its EOB to the
patient, re-checked by her), a phantom claim denied by the ledger, and the same visit billed to a second
insurer flagged to both — through the real HTTP API, the desks and the gateways.

The visit is one of the vendored Synthea patient's (Encounter and Claim, MIT): its dates moved to today
and its unpriced lines priced, so that it is billed within the plan's filing limit. Imported by
:mod:`careledger.demo.story`, which appends :data:`CHAPTERS`.
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from careledger.claims.content import date_of, parse_claim
from careledger.claims.coverage import COVERAGE_CLASS_SYSTEM, PlanRules, load_plan
from careledger.claims.edits import DATA_DIR, synthetic_tables
from careledger.claims.package import AdjudicationPackage, rerun
from careledger.client import ClientError
from careledger.client.claims import ClaimsClient
from careledger.client.records import RecordsClient
from careledger.contracts.claims.layout import day_of_ms
from careledger.samples import synthea_bundles
from careledger.vault.store import Vault

if TYPE_CHECKING:
    from careledger.demo.story import Story

HOSPITAL, INSURER, SECOND = "st-marys", "united-health-ins", "civic-mutual"
PLAN = "example-ppo"
VISIT_CODES = frozenset({"162673000", "140", "430193006"})  # a check-up, a flu shot and a procedure
PRICES = (Decimal("187.45"), Decimal("36.90"), Decimal("412.35"))


def _fail(message: str) -> Exception:
    from careledger.demo.story import DemoFailed

    return DemoFailed(message)


def _cc(s: Story, name: str) -> ClaimsClient:
    clients: dict[str, ClaimsClient] = s.facts.setdefault("claims_clients", {})
    if name not in clients:
        key = s.consortium.admin(name.removesuffix("/admin")) if name.endswith("/admin") else s.person(name)
        clients[name] = ClaimsClient(s.client, key)
    return clients[name]


def _ok(s: Story, label: str, result: dict[str, Any]) -> dict[str, Any]:
    receipt = result["receipt"]
    if receipt["code"]:
        raise _fail(f"{label}: {receipt['name']} ({receipt['code']}) {receipt['message']}")
    s.console.print(f"    [green]receipt OK[/] block {result['height']} tx {result['tx_hash'][:16]}…")
    return dict(receipt["result"] or {})


def _today() -> int:
    return day_of_ms(int(time.time() * 1000))


def synthea_visit(day: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Synthea patient's Encounter and the Claim for it (check-up, flu shot, procedure), dated ``day``,
    every line priced, the procedure with modifier 59 (a distinct service)."""
    bundle = json.loads(synthea_bundles()[0].read_text(encoding="utf-8"))
    resources = [e["resource"] for e in bundle["entry"]]
    claim = copy.deepcopy(next(r for r in resources if r["resourceType"] == "Claim" and {
        c["code"] for i in r["item"] for c in i["productOrService"]["coding"]} == VISIT_CODES))
    reference = claim["item"][0]["encounter"][0]["reference"]
    encounter = copy.deepcopy(next(r for r in resources if r["resourceType"] == "Encounter"
                                   and f"urn:uuid:{r['id']}" == reference))
    when = {"start": f"{date_of(day)}T09:30:00Z", "end": f"{date_of(day)}T10:15:00Z"}
    encounter["period"] = when
    claim["billablePeriod"] = when
    claim["created"] = when["end"]
    for item, price in zip(claim["item"], PRICES, strict=True):
        item["net"] = {"currency": "USD", "value": price}
    # the procedure was a distinct service from the check-up: modifier 59 lets the pair through the edit table
    claim["item"][2]["modifier"] = [{"coding": [{"code": "59"}]}]
    claim["total"] = {"currency": "USD", "value": sum(PRICES)}
    return encounter, claim


def coverage_resource(pseudonym: str, insurer: str, start_day: int, order: int) -> dict[str, Any]:
    return {"resourceType": "Coverage", "status": "active", "order": order,
            "identifier": [{"system": f"https://{insurer}.example/member", "value": f"UH-{pseudonym[3:11].upper()}"}],
            "subscriberId": f"SUB-{pseudonym[11:17].upper()}",
            "beneficiary": {"identifier": {"system": "urn:careledger:pseudonym", "value": pseudonym}},
            "payor": [{"identifier": {"system": "urn:careledger:org", "value": insurer}}],
            "class": [{"type": {"coding": [{"system": COVERAGE_CLASS_SYSTEM, "code": "plan"}]}, "value": PLAN}],
            "period": {"start": date_of(start_day)}}


def _vault(s: Story, org: str, admin: Any) -> None:
    vault = Vault.create(s.consortium.home.path / "vault" / org, org)
    gateway_key = vault.gateway_key.public_hex
    vault.close()
    s.send(admin, "identity.enrol_member",
           {"handle": "vault-gateway", "member": gateway_key, "org": org, "roles": ["data_steward"]})


def chapter_claims_coverage(s: Story) -> None:
    c = s.consortium
    s.chapter("Insurance claims: coverage, a second insurer, eligibility")
    today = _today()
    s.step("United Health creates its vault (for coverages, adjudications and EOBs) and enrols its gateway key; "
           "St Mary's enrols a billing officer.")
    _vault(s, INSURER, c.admin(INSURER))
    s.send(c.admin(HOSPITAL), "identity.enrol_member", {"handle": "billing", "member": s.person("billing").public_hex,
                                                        "org": HOSPITAL, "roles": ["claims_officer"]})
    s.step("United registers version 1 of its plan: deductible 500.00, office visits co-pay 25.00, 20 % "
           "co-insurance on procedures. Plans are rule data on the ledger, not PHI.")
    rules = load_plan(DATA_DIR / "example-plan.json").document
    _ok(s, "plan", _cc(s, "claims").register_plan(INSURER, PLAN, 1, today, rules))
    t = synthetic_tables()
    s.step(f"The consortium votes on the coding-edit table {t.name} {t.version} (procedure pairs, units per day; "
           "synthetic codes, no CPT): more than 2/3 of the organisations approve it.")
    status = _ok(s, "propose", _cc(s, f"{INSURER}/admin").propose_table(t.name, t.version, t.effective_day, t.digest))
    for org in (HOSPITAL, "riverside-clinic", "high-street-pharmacy", "acme-pharma", "medi-distrib", "uni-research",
                "medicines-agency"):
        if status.get("status") == "approved":
            break
        status = _cc(s, f"{org}/admin").vote_table(t.name, t.version, True)["receipt"]["result"]
    s.console.print(f"    [green]edit table {status['status']}[/] (digest {t.digest[:16]}…)")
    s.step("A second insurer, Civic Mutual, is admitted by governance vote, and sets up its vault, claims "
           "officer and the same plan.")
    second = s.person("civic_admin")
    result = s.send(c.admin(INSURER), "governance.propose", {
        "action": {"kind": "add_organisation", "organisation": {
            "admins": [second.public_hex], "id": SECOND, "name": "Civic Mutual Insurance", "roles": ["insurer"]}},
        "title": "Admit Civic Mutual Insurance"})
    proposal = result["receipt"]["result"]["proposal"]
    for org in (HOSPITAL, "riverside-clinic", "high-street-pharmacy", "acme-pharma", "medi-distrib", "uni-research",
                "medicines-agency", "northside-general"):
        out = s.client.send(s.consortium.admin(org) if org != "northside-general" else s.person("northside_admin"),
                            "governance.vote", 1, {"approve": True, "proposal": proposal})
        if out["receipt"]["result"]["status"] == "executed":
            break
    _vault(s, SECOND, second)
    s.send(second, "identity.enrol_member", {"member": s.person("civic_claims").public_hex, "org": SECOND,
                                             "roles": ["claims_officer"]})
    _ok(s, "plan", _cc(s, "civic_claims").register_plan(SECOND, PLAN, 1, today, rules))
    pseudonym = _cc(s, "patient").pseudonym
    s.step("Each insurer registers the patient's coverage from a FHIR Coverage (member and subscriber ids stay "
           "in its vault; the ledger gets plan, period, payer order and a commitment): United first, Civic second.")
    for who, insurer, order in (("claims", INSURER, 1), ("civic_claims", SECOND, 2)):
        out = _ok(s, "coverage", _cc(s, who).register_coverage(
            insurer, pseudonym, coverage_resource(pseudonym, insurer, today - 90, order)))
        s.facts[f"coverage/{insurer}"] = out["coverage"]
    s.step("St Mary's billing asks who covers the patient today: a FHIR CoverageEligibilityResponse from the ledger.")
    answer = _cc(s, "billing").eligibility(pseudonym)
    s.console.print(f"    covered: {answer['covered']}, primary: {answer['primary']}; "
                    f"{len(answer['responses'])} CoverageEligibilityResponse(s)")


def chapter_claim_approved(s: Story) -> None:
    pseudonym = _cc(s, "patient").pseudonym
    s.chapter("A claim approved: checked against the recorded visit, adjudicated where the content is")
    encounter, claim = synthea_visit(_today())
    s.step("Dr Osei records the visit: the Synthea patient's Encounter, stored in St Mary's vault and anchored.")
    stored = RecordsClient(s.client, s.person("dr_osei")).store(HOSPITAL, pseudonym, encounter)
    record = stored["records"][0]["record"]
    s.facts["encounter_record"] = record
    s.step("The patient consents to United reading her records for payment (HPAYMT).")
    RecordsClient(s.client, s.person("patient")).grant(pseudonym, "org", INSURER, ["HPAYMT"])
    s.step("Billing submits the Claim (3 lines, 636.70) through St Mary's desk: the Claim is stored in the vault; "
           "the ledger gets a commitment and line fingerprints keyed by the encounter's secret salt.")
    done = _cc(s, "billing").submit(HOSPITAL, pseudonym, record, s.facts[f"coverage/{INSURER}"], INSURER, claim)
    result = _ok(s, "claims.submit", done)
    s.facts["claim"] = claim_id = result["claim"]
    s.console.print(f"    claim {claim_id}: {result['status']}; on the ledger: parties, pseudonym, coverage, "
                    "encounter record, commitment, 3 fingerprints — no code, no amount")
    s.step("United's claims officer adjudicates: its node reads the Claim and the Encounter through St Mary's "
           "gateway (consent checked, the read audited first), checks them against the ledger, runs the plan's rules.")
    adjudicated = _cc(s, "claims").adjudicate(claim_id)
    _ok(s, "claims.adjudicate", adjudicated)
    adj = adjudicated["adjudication"]
    for line in adj["lines"]:
        s.console.print(f"    line {line['sequence']}: {line['outcome']:<8} {', '.join(line['codes']) or '-'}")
    s.console.print(f"    [green]{adj['outcome']}[/]: submitted {Decimal(adj['totals']['submitted']) / 100:.2f}, "
                    f"United pays {Decimal(adj['totals']['benefit']) / 100:.2f} (balanced to the cent)")
    s.step("United records the payment: a commitment to its ClaimResponse, no amount.")
    _ok(s, "claims.pay", _cc(s, "claims").pay(claim_id))
    s.step("The patient receives her ExplanationOfBenefit (CARIN Blue Button shape) through United's gateway, and "
           "re-runs the adjudication from the package the insurer kept.")
    eob = _cc(s, "patient").eob(claim_id)
    benefit = next(t for t in eob["total"] if t["category"]["coding"][0]["code"] == "benefit")
    s.console.print(f"    EOB {eob['id']}: outcome {eob['outcome']}, paid {benefit['amount']['value']} "
                    f"{benefit['amount']['currency']}")
    status = _cc(s, "patient").status(claim_id)
    package = AdjudicationPackage.from_binary(
        _cc(s, "patient").adjudication_document(claim_id, "package", purpose="PATRQT").resource)
    plan = PlanRules.from_json(_cc(s, "patient").plan(INSURER, PLAN)["versions"][0])
    again = rerun(package, plan, synthetic_tables(), status["adjudications"][-1])
    if not again.ok:
        raise _fail("the patient's re-run does not reproduce the adjudication")
    s.console.print("    [green]reproduced[/]: same input and result commitments as on the ledger")
    time.sleep(0.1)
    log = RecordsClient(s.client, s.person("patient")).view()["access_log"]
    reads = [e for e in log if e["purpose"] == "HPAYMT"]
    s.console.print(f"    her access log shows {len(reads)} payment reads by {reads[0]['requester_org']} "
                    f"at block {reads[0]['height']}")


def _refused(s: Story, fn: Callable[[], Any], expect: str) -> None:
    try:
        fn()
    except ClientError as exc:
        s.console.print(f"    [yellow]refused[/] {exc.name} ({exc.code}): {exc.message}")
        if exc.name != expect:
            raise _fail(f"expected {expect}, got {exc.name}") from exc
        return
    raise _fail(f"expected refusal {expect}, but it succeeded")


def chapter_phantom_claim(s: Story) -> None:
    pseudonym = _cc(s, "patient").pseudonym
    s.chapter("A phantom claim denied: care that was never recorded")
    _, claim = synthea_visit(_today() - 3)
    never = "r-" + os.urandom(16).hex()
    s.step("Billing tries to bill a visit with no recorded encounter: St Mary's desk refuses.")
    _refused(s, lambda: _cc(s, "billing").submit(HOSPITAL, pseudonym, never, s.facts[f"coverage/{INSURER}"], INSURER,
                                                 claim), "RECORD_UNKNOWN")
    s.step("A dishonest biller bypasses the desk and signs claims.submit itself, with made-up fingerprints: the "
           "ledger accepts it and denies it at once (CO-16 + M127), flagging United.")
    content = parse_claim(claim)
    out = _ok(s, "claims.submit", _cc(s, "billing").submit_payload({
        "content_commitment": content.commitment(os.urandom(32)), "coverage": s.facts[f"coverage/{INSURER}"],
        "encounter": never, "end_day": content.billable_end_day,
        "fingerprints": sorted(os.urandom(32).hex() for _ in content.lines), "insurer": INSURER,
        "lines": len(content.lines), "patient": pseudonym, "prior_payer_claim": None, "provider": HOSPITAL,
        "replaces": None, "start_day": content.billable_start_day, "type": content.claim_type}))
    [denial] = _cc(s, "claims").status(out["claim"])["adjudications"]
    s.console.print(f"    claim {out['claim']}: {out['status']} by the {denial['by']}, {denial['outcome']} "
                    f"({', '.join(denial['lines'][0]['codes'])}); flags {out['flags']}")


def chapter_duplicate_claim(s: Story) -> None:
    pseudonym = _cc(s, "patient").pseudonym
    s.chapter("A duplicate flagged: the same visit billed to a second insurer")
    _, claim = synthea_visit(_today())
    s.step("Billing sends the same visit to Civic Mutual, without naming United's claim as the primary payer's.")
    out = _ok(s, "claims.submit", _cc(s, "billing").submit(
        HOSPITAL, pseudonym, s.facts["encounter_record"], s.facts[f"coverage/{SECOND}"], SECOND, claim))
    s.console.print(f"    claim {out['claim']}: {out['status']}, flags {out['flags']} — the ledger matched its "
                    "fingerprints with United's claim without seeing a code")
    s.step("Both insurers see it in their flag feeds.")
    for who, insurer in (("claims", INSURER), ("civic_claims", SECOND)):
        for flag in _cc(s, who).flags(insurer):
            if flag["kind"] == "duplicate-across-payers":
                s.console.print(f"    {insurer:<18} {flag['kind']}: {flag['claim']} ↔ {flag['other_claim']} "
                                f"({flag['other_insurer']})")


CHAPTERS: list[Callable[[Story], None]] = [chapter_claims_coverage, chapter_claim_approved, chapter_phantom_claim,
                                           chapter_duplicate_claim]
