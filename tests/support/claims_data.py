"""Shared material for the claims tests: the vendored Synthea bundles, the shipped plan and edit set,
and small builders for FHIR claims and adjudication facts (synthetic codes only, no CPT)."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from functools import cache
from typing import Any

from careledger.claims.adjudication import Accumulators, EncounterFacts, LedgerFacts, PriorLine, PriorPayer
from careledger.claims.content import ClaimContent, day_of, parse_claim
from careledger.claims.coverage import CoverageTerms, PlanRules, load_plan
from careledger.claims.edits import DATA_DIR, EditTables, synthetic_tables
from careledger.samples import synthea_bundles as synthea_files

SCT = "http://snomed.info/sct"
CVX = "http://hl7.org/fhir/sid/cvx"
HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
LOCAL = "urn:careledger:synthetic-codes"
PATIENT = "pt-" + "ab" * 16
DAY = "2024-03-01"
ENCOUNTER_ID = "enc-0001"


@cache
def synthea_bundles() -> tuple[dict[str, Any], ...]:
    return tuple(json.loads(p.read_text(encoding="utf-8")) for p in synthea_files())


def synthea_resources(resource_type: str) -> list[dict[str, Any]]:
    """Every resource of that type in the vendored bundles (deep copies: tests may change them)."""
    return [copy.deepcopy(e["resource"]) for b in synthea_bundles() for e in b["entry"]
            if e["resource"]["resourceType"] == resource_type]


def synthea_encounters() -> dict[str, dict[str, Any]]:
    return {e["id"]: e for e in synthea_resources("Encounter")}


def priced(claim: dict[str, Any], cents: int = 10050) -> dict[str, Any]:
    """A Synthea claim with a price on every line (Synthea leaves most lines unpriced)."""
    for item in claim["item"]:
        item.setdefault("net", {"currency": "USD", "value": cents / 100})
    return claim


@cache
def example_plan() -> PlanRules:
    return load_plan(DATA_DIR / "example-plan.json")


def plan_with(**changes: Any) -> PlanRules:
    """The example plan with some rule fields changed (e.g. ``deductible=0``)."""
    base = example_plan()
    return PlanRules.from_document(base.insurer, base.plan, base.version, base.effective_day,
                                   {**base.document, **changes})


@cache
def tables() -> EditTables:
    return synthetic_tables()


def coverage(**changes: Any) -> CoverageTerms:
    base = CoverageTerms("cov-1", "insurer", PATIENT, "example-ppo", day_of("2020-01-01"), None, 1, "active")
    return replace(base, **changes)


def line(code: str, *, system: str = LOCAL, net: float | None = 100.0, units: int = 1, modifiers: tuple[str, ...] = (),
         date: str = DAY, encounter: str | None = None, sequence: int | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"productOrService": {"coding": [{"code": code, "system": system}]}, "servicedDate": date}
    if sequence is not None:
        item["sequence"] = sequence
    if net is not None:
        item["net"] = {"currency": "USD", "value": net}
    if units != 1:
        item["quantity"] = {"value": units}
    if modifiers:
        item["modifier"] = [{"coding": [{"code": m}]} for m in modifiers]
    if encounter is not None:
        item["encounter"] = [{"reference": encounter}]
    return item


def fhir_claim(*items: dict[str, Any], claim_type: str = "professional", created: str = "2024-03-05",
               preauth: list[str] | None = None, total: float | None = None) -> dict[str, Any]:
    """A minimal valid FHIR R4 professional Claim with the given items (sequences 1..n unless set)."""
    lines = []
    for n, item in enumerate(items, start=1):
        lines.append({"sequence": n, **item})
    insurance: dict[str, Any] = {"coverage": {"identifier": {"system": "urn:careledger:coverage", "value": "cov-1"}},
                                 "focal": True, "sequence": 1}
    if preauth:
        insurance["preAuthRef"] = preauth
    claim: dict[str, Any] = {
        "resourceType": "Claim", "status": "active",
        "type": {"coding": [{"code": claim_type, "system": "http://terminology.hl7.org/CodeSystem/claim-type"}]},
        "use": "claim", "patient": {"identifier": {"system": "urn:careledger:pseudonym", "value": PATIENT}},
        "created": created, "provider": {"identifier": {"system": "urn:careledger:org", "value": "clinic"}},
        "priority": {"coding": [{"code": "normal", "system": "http://terminology.hl7.org/CodeSystem/processpriority"}]},
        "insurance": [insurance], "item": lines,
    }
    if total is not None:
        claim["total"] = {"currency": "USD", "value": total}
    return claim


def content(*items: dict[str, Any], **kw: Any) -> ClaimContent:
    return parse_claim(fhir_claim(*items, **kw))


def facts(*, encounter: EncounterFacts | None = None, received: str = "2024-03-10", provider: str = "clinic",
          prior_lines: tuple[PriorLine, ...] = (), prior_payer: PriorPayer | None = None,
          accumulators: Accumulators | None = None, mue_overrides: tuple[str, ...] = (),
          coverage_id: str = "cov-1") -> LedgerFacts:
    enc = encounter or EncounterFacts("r-" + "0" * 32, "verified", ENCOUNTER_ID, day_of(DAY), day_of(DAY))
    return LedgerFacts("clm-1", provider, day_of(received), enc, accumulators or Accumulators(coverage_id),
                       prior_lines, prior_payer, mue_overrides)
