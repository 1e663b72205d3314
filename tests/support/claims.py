"""A consortium with a hospital, a clinic and two insurers, run through the in-memory ledger, and the
steps each party's node takes around the claims contract (the insurer's node runs the real kernel)."""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from typing import Any

from careledger.chain.executor import Chain
from careledger.chain.registry import default_registry
from careledger.claims.adjudication import (
    Accumulators,
    AdjudicationResult,
    EncounterFacts,
    LedgerFacts,
    PriorPayer,
    adjudicate,
    input_commitment,
)
from careledger.claims.content import ClaimContent, date_of
from careledger.claims.coverage import CoverageTerms, PlanRules
from careledger.claims.edits import EditTables
from careledger.claims.fingerprint import claim_fingerprints
from careledger.contracts import claims as claims_contract
from careledger.contracts.claims.layout import day_of_ms
from careledger.contracts.identity import compute_pseudonym
from careledger.core.block import Receipt
from careledger.core.crypto import SigningKey
from careledger.vault.canonical import canonical_bytes, compute_commitment, from_python
from support import GENESIS_TIME_MS, Ledger, make_consortium, seeded_key
from support.claims_data import HCPCS, content, example_plan, line, synthea_resources, tables

ORGS = ("hospital", "clinic", "insurer", "insurer-b", "pharmacy", "research", "regulator", "manufacturer")
ROLES = ("hospital", "clinic", "insurer", "insurer", "pharmacy", "research", "regulator", "manufacturer")
TODAY = day_of_ms(GENESIS_TIME_MS)


def claims_registry() -> Any:
    return default_registry()


def salt_of(label: str) -> bytes:
    return hashlib.sha256(b"claims-test-salt/" + label.encode()).digest()


@dataclass
class Encounter:
    record: str
    salt: bytes
    resource: dict[str, Any]


@dataclass
class Submitted:
    receipt: Receipt
    content: ClaimContent
    salt: bytes
    coverage: str
    insurer: str
    encounter: Encounter

    @property
    def claim(self) -> str:
        return str(self.receipt.result["claim"])


class World:
    def __init__(self) -> None:
        self.consortium = make_consortium(ORGS, ROLES)
        self.ledger = Ledger(self.consortium, Chain(self.consortium.genesis, claims_registry()))
        self.keys = {name: seeded_key(f"claims/{name}") for name in (
            "hospital-officer", "hospital-steward", "clinic-officer", "insurer-officer", "insurer-b-officer",
            "patient", "patient-2", "stranger", "hospital-nurse")}
        for org, name, roles in (("hospital", "hospital-officer", ["claims_officer"]),
                                 ("hospital", "hospital-steward", ["data_steward"]),
                                 ("hospital", "hospital-nurse", ["nurse"]),
                                 ("clinic", "clinic-officer", ["claims_officer"]),
                                 ("insurer", "insurer-officer", ["claims_officer"]),
                                 ("insurer-b", "insurer-b-officer", ["claims_officer"])):
            assert self.ledger.enrol(org, self.keys[name], roles).code == 0
        for name in ("patient", "patient-2"):
            assert self.ledger.register_patient(self.keys[name]).code == 0
        self._n = 0

    # -- parties --------------------------------------------------------------------------------------------
    def key(self, name: str) -> SigningKey:
        return self.keys[name]

    def pseudonym(self, name: str = "patient") -> str:
        return compute_pseudonym(self.keys[name].public_hex)

    def officer(self, org: str) -> SigningKey:
        return self.keys[f"{org}-officer"]

    def run(self, key: SigningKey, tx_type: str, payload: dict[str, Any]) -> Receipt:
        return self.ledger.run(key, tx_type, payload)

    def ok(self, key: SigningKey, tx_type: str, payload: dict[str, Any]) -> Any:
        receipt = self.run(key, tx_type, payload)
        assert receipt.code == 0, (receipt.code, receipt.message)
        return receipt.result

    # -- set-up the insurers and the provider do ----------------------------------------------------------------
    def register_plan(self, insurer: str = "insurer", version: int = 1, effective_day: int = TODAY,
                      rules: dict[str, Any] | None = None) -> Any:
        return self.ok(self.officer(insurer), "claims.register_plan", {
            "effective_day": effective_day, "insurer": insurer, "plan": "example-ppo", "version": version,
            "rules": rules or example_plan().document})

    def approve_table(self, t: EditTables | None = None, effective_day: int | None = None) -> None:
        t = t or tables()
        self.ok(self.consortium.admin("insurer"), "claims.propose_table", {
            "digest": t.digest, "effective_day": t.effective_day if effective_day is None else effective_day,
            "name": t.name, "source": "synthetic", "version": t.version})
        for org in ("hospital", "clinic", "insurer-b", "pharmacy", "research"):
            result = self.ok(self.consortium.admin(org), "claims.vote_table",
                             {"approve": True, "name": t.name, "version": t.version})
        assert result["status"] == "approved"

    def coverage(self, insurer: str = "insurer", patient: str = "patient", order: int = 1, start: int = TODAY - 30,
                 end: int | None = None) -> str:
        result = self.ok(self.officer(insurer), "claims.register_coverage", {
            "beneficiary": self.pseudonym(patient), "commitment": "c0" * 32, "end_day": end, "insurer": insurer,
            "order": order, "plan": "example-ppo", "start_day": start})
        return str(result["coverage"])

    def setup(self, insurers: tuple[str, ...] = ("insurer",)) -> dict[str, str]:
        """Plans, the approved edit table and a coverage per insurer (primary first)."""
        for insurer in insurers:
            self.register_plan(insurer)
        self.approve_table()
        return {insurer: self.coverage(insurer, order=n) for n, insurer in enumerate(insurers, start=1)}

    def anchor_encounter(self, custodian: str = "hospital", patient: str = "patient",
                         resource_type: str = "Encounter") -> Encounter:
        self._n += 1
        resource = copy.deepcopy(synthea_resources("Encounter")[0])
        resource["period"] = {"start": f"{date_of(TODAY)}T09:00:00Z", "end": f"{date_of(TODAY)}T10:00:00Z"}
        resource["id"] = f"enc-{self._n:04d}"
        salt = salt_of(f"encounter/{self._n}")
        record = "r-" + hashlib.sha256(f"record/{self._n}".encode()).hexdigest()[:32]
        commitment = compute_commitment(salt, canonical_bytes(from_python(resource)))
        writer = self.keys["hospital-steward"] if custodian == "hospital" else self.consortium.admin(custodian)
        self.ok(writer, "records.anchor", {"anchors": [{"commitment": commitment, "pseudonym": self.pseudonym(patient),
                                                        "record": record, "type": resource_type, "version": 1}],
                                           "custodian": custodian})
        return Encounter(record, salt, resource)

    # -- the provider's node -------------------------------------------------------------------------------------
    def content(self, encounter: Encounter, *codes: str, net: float = 200.0) -> ClaimContent:
        items = [line(c, system=HCPCS if c.startswith("G") else "urn:careledger:synthetic-codes", net=net,
                      date=date_of(TODAY), encounter=f"urn:uuid:{encounter.resource['id']}" if i == 0 else None)
                 for i, c in enumerate(codes or ("G0438", "ZZ002"))]
        return content(*items, created=date_of(TODAY))

    def submit_payload(self, c: ClaimContent, salt: bytes, encounter: Encounter, coverage: str, *,
                       insurer: str = "insurer", provider: str = "hospital", patient: str = "patient",
                       replaces: str | None = None, prior_payer_claim: str | None = None,
                       fingerprint_salt: bytes | None = None) -> dict[str, Any]:
        pseudonym = self.pseudonym(patient)
        return {"content_commitment": c.commitment(salt), "coverage": coverage, "encounter": encounter.record,
                "end_day": c.billable_end_day, "fingerprints": claim_fingerprints(
                    fingerprint_salt or encounter.salt, pseudonym, provider, c),
                "insurer": insurer, "lines": len(c.lines), "patient": pseudonym, "prior_payer_claim": prior_payer_claim,
                "provider": provider, "replaces": replaces, "start_day": c.billable_start_day, "type": "professional"}

    def submit(self, encounter: Encounter, coverage: str, *codes: str, insurer: str = "insurer",
               signer: str = "hospital-officer", salt_label: str | None = None, **kw: Any) -> Submitted:
        self._n += 1
        c = self.content(encounter, *codes)
        salt = salt_of(salt_label or f"claim/{self._n}")
        receipt = self.run(self.keys[signer], "claims.submit",
                           self.submit_payload(c, salt, encounter, coverage, insurer=insurer, **kw))
        return Submitted(receipt, c, salt, coverage, insurer, encounter)

    # -- the insurer's node ---------------------------------------------------------------------------------------
    def terms(self, coverage: str) -> CoverageTerms:
        rec = claims_contract.get_coverage(self.ledger.state, coverage)
        assert rec is not None
        return CoverageTerms(rec.id, rec.insurer, rec.beneficiary, rec.plan, rec.start_day, rec.end_day, rec.order,
                             rec.status)  # type: ignore[arg-type]

    def plan(self, insurer: str, version: int = 1) -> PlanRules:
        rec = claims_contract.get_plan(self.ledger.state, insurer, "example-ppo", version)
        assert rec is not None
        return PlanRules.from_document(rec.insurer, rec.plan, rec.version, rec.effective_day, rec.rules)

    def facts(self, s: Submitted, accumulators: Accumulators | None = None,
              prior_payer: PriorPayer | None = None) -> LedgerFacts:
        enc = s.encounter.resource
        encounter = EncounterFacts(s.encounter.record, "verified", enc["id"], TODAY, TODAY)
        return LedgerFacts(s.claim, "hospital", TODAY, encounter, accumulators or Accumulators(s.coverage),
                           prior_lines=(), prior_payer=prior_payer)

    def adjudication_payload(self, s: Submitted, *, accumulators: Accumulators | None = None,
                             prior_payer: PriorPayer | None = None,
                             accumulators_from: dict[str, Any] | None = None) -> tuple[dict[str, Any],
                                                                                        AdjudicationResult]:
        terms, plan, t = self.terms(s.coverage), self.plan(s.insurer), tables()
        f = self.facts(s, accumulators, prior_payer)
        result = adjudicate(s.content, terms, plan, t, f)
        head = claims_contract.get_accumulator_head(self.ledger.state, s.coverage)
        current = None if head is None else {"claim": head.claim, "n": head.n}
        return {"accumulators_from": accumulators_from if accumulators_from is not None else current,
                "claim": s.claim, "content_commitment": s.content.commitment(s.salt),
                "edit_set": {"name": t.name, "version": t.version},
                "input_commitment": input_commitment(s.salt, s.content, terms, plan, t, f),
                "lines": result.ledger_lines(), "outcome": result.outcome, "plan_version": plan.version,
                "result_commitment": result.commitment(s.salt)}, result

    def adjudicate(self, s: Submitted, **kw: Any) -> AdjudicationResult:
        payload, result = self.adjudication_payload(s, **kw)
        self.ok(self.officer(s.insurer), "claims.adjudicate", payload)
        return result

    # -- reading -----------------------------------------------------------------------------------------------------
    def claim(self, claim: str) -> Any:
        record = claims_contract.get_claim(self.ledger.state, claim)
        assert record is not None
        return record

    def snapshot(self) -> dict[str, bytes]:
        """Committed state less the signers' nonces (which a failed transaction still consumes)."""
        return {k: v for k, v in self.ledger.snapshot().items() if not k.startswith("nonce/")}
