"""Coverage (FHIR R4 Coverage → pseudonymous terms), payer order, and plan benefit terms."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from careledger.claims.content import day_of
from careledger.claims.coverage import (
    CoverageInvalid,
    CoverageTerms,
    PlanRules,
    PlanRulesInvalid,
    coverage_commitment,
    parse_coverage,
    payer_order,
)
from careledger.core.errors import Code
from careledger.vault.fhir import FhirInvalid
from support.claims_data import PATIENT, example_plan, synthea_resources


def fhir_coverage(**changes: Any) -> dict[str, Any]:
    """A Coverage as an insurer's system holds it: member id, subscriber id and names included."""
    doc: dict[str, Any] = {
        "resourceType": "Coverage", "status": "active",
        "identifier": [{"system": "https://insurer.example/member", "value": "MBR-448812"}],
        "subscriberId": "SUB-99812", "relationship": {"coding": [{"code": "self"}]},
        "beneficiary": {"reference": "Patient/abc", "display": "Carolee Sanford"},
        "period": {"start": "2024-01-01", "end": "2024-12-31"},
        "payor": [{"display": "Example Health Plan"}],
        "class": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class",
                                        "code": "plan"}]}, "value": "example-ppo", "name": "Example PPO"},
                  {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class",
                                        "code": "group"}]}, "value": "GRP-77"}],
        "order": 2,
    }
    doc.update(changes)
    return doc


def test_coverage_maps_to_pseudonymous_terms_only() -> None:
    terms = parse_coverage(fhir_coverage(), coverage="cov-1", insurer="insurer", beneficiary=PATIENT)
    assert terms == CoverageTerms("cov-1", "insurer", PATIENT, "example-ppo", day_of("2024-01-01"),
                                  day_of("2024-12-31"), 2, "active")
    text = json.dumps(terms.to_json())
    for secret in ("MBR-448812", "SUB-99812", "Carolee", "Example Health Plan", "GRP-77"):
        assert secret not in text
    assert CoverageTerms.from_json(terms.to_json()) == terms


def test_beneficiary_given_as_a_pseudonym_identifier() -> None:
    doc = fhir_coverage(beneficiary={"identifier": {"system": "urn:careledger:pseudonym", "value": PATIENT}})
    assert parse_coverage(doc, coverage="cov-1", insurer="insurer").beneficiary == PATIENT
    with pytest.raises(CoverageInvalid) as exc:
        parse_coverage(fhir_coverage(), coverage="cov-1", insurer="insurer")
    assert exc.value.code == Code.COVERAGE_INVALID
    assert "Carolee" not in json.dumps(exc.value.outcome)


def test_synthea_contained_coverage_is_refused_for_want_of_a_plan_and_a_period() -> None:
    """Synthea's EOBs carry a display-only Coverage: real, valid FHIR, but nothing to register."""
    contained = next(c for eob in synthea_resources("ExplanationOfBenefit") for c in eob["contained"]
                     if c["resourceType"] == "Coverage")
    with pytest.raises(CoverageInvalid) as exc:
        parse_coverage(contained, coverage="cov-1", insurer="insurer", beneficiary=PATIENT)
    where = {e for i in exc.value.outcome["issue"] for e in i["expression"]}
    assert where == {"Coverage.class", "Coverage.period.start"}


@pytest.mark.parametrize(("changes", "expression"), [
    ({"status": "draft"}, "Coverage.status"),
    ({"period": {"start": "2024-05-01", "end": "2024-01-01"}}, "Coverage.period"),
    ({"period": {"start": "2024"}}, "Coverage.period"),
    ({"order": 12}, "Coverage.order"),
    ({"class": []}, "Coverage.class"),
])
def test_bad_coverages(changes: dict[str, Any], expression: str) -> None:
    doc = fhir_coverage(**changes)
    if not doc["class"]:
        del doc["class"]
    with pytest.raises(CoverageInvalid) as exc:
        parse_coverage(doc, coverage="cov-1", insurer="insurer", beneficiary=PATIENT)
    assert expression in {e for i in exc.value.outcome["issue"] for e in i["expression"]}


def test_invalid_fhir_is_refused_by_the_r4b_model() -> None:
    doc = fhir_coverage()
    del doc["payor"]
    with pytest.raises(FhirInvalid) as exc:
        parse_coverage(doc, coverage="cov-1", insurer="insurer", beneficiary=PATIENT)
    assert exc.value.code == Code.FHIR_INVALID


def test_coverage_commitment_is_salted_and_exact() -> None:
    salt = bytes(32)
    assert coverage_commitment(fhir_coverage(), salt) == coverage_commitment(fhir_coverage(), salt)
    assert coverage_commitment(fhir_coverage(), salt) != coverage_commitment(fhir_coverage(), bytes([1]) * 32)
    assert coverage_commitment(fhir_coverage(), salt) != coverage_commitment(fhir_coverage(subscriberId="X"), salt)


def test_payer_order_primary_first_on_the_day() -> None:
    base = CoverageTerms("cov-b", "insurer", PATIENT, "p", day_of("2024-01-01"), day_of("2024-06-30"), 2, "active")
    primary = replace(base, coverage="cov-a", order=1, insurer="other")
    ended = replace(base, coverage="cov-c", order=1, end_day=day_of("2024-02-01"))
    cancelled = replace(base, coverage="cov-d", order=3, status="cancelled")
    assert payer_order([base, ended, primary, cancelled], day_of("2024-03-01")) == (primary, base)
    assert payer_order([base, primary], day_of("2024-07-01")) == ()


def test_the_example_plan_and_its_digest() -> None:
    plan = example_plan()
    assert (plan.currency, plan.deductible, plan.timely_filing_days, plan.edit_set) == \
        ("USD", 50000, 365, "synthetic-practitioner")
    again = PlanRules.from_json(json.loads(json.dumps(plan.to_json())))
    assert again == plan and again.digest == plan.digest
    assert plan.category_of("http://snomed.info/sct", "50849002").category == "emergency"  # type: ignore[union-attr]
    assert plan.category_of("http://snomed.info/sct", "0000") is None


@pytest.mark.parametrize("mutate", [
    lambda d: d["categories"].reverse(),
    lambda d: d["code_categories"].append({"system": "urn:x", "code": "A1", "category": "nonexistent"}),
    lambda d: d.update(deductible=500.0),
    lambda d: d["categories"][0].update(coinsurance_bps=10_001),
    lambda d: d.update(extra_field=1),
])
def test_invalid_plan_documents(mutate: Any) -> None:
    doc = json.loads(json.dumps(example_plan().document))
    mutate(doc)
    with pytest.raises(PlanRulesInvalid) as exc:
        PlanRules.from_document("insurer", "example-ppo", 2, 0, doc)
    assert exc.value.code == Code.PLAN_RULES_INVALID
