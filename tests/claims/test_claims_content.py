"""Claim content: FHIR R4 import (the real Synthea Claim and EOB entries), canonical bytes, commitment."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from careledger.claims.content import (
    REFERENCE_SYSTEM,
    ClaimContent,
    ClaimContentInvalid,
    ContentMismatch,
    day_of,
    parse_claim,
    verify_content,
)
from careledger.core.errors import Code
from careledger.vault.canonical import compute_commitment, parse_exact
from careledger.vault.fhir import FhirInvalid
from support.claims_data import LOCAL, content, fhir_claim, line, synthea_resources

SALT = bytes(range(32))


def test_every_synthea_claim_and_eob_imports() -> None:
    claims, eobs = synthea_resources("Claim"), synthea_resources("ExplanationOfBenefit")
    assert (len(claims), len(eobs)) == (31, 28)
    for resource in claims + eobs:
        c = parse_claim(resource)
        assert [x.sequence for x in c.lines] == sorted(x["sequence"] for x in resource["item"])
        assert ClaimContent.from_canonical(c.canonical()) == c
    kinds = sorted({parse_claim(r).claim_type for r in claims})
    assert kinds == ["institutional", "pharmacy"]


def test_claim_eob_encounter_triangle() -> None:
    """Each Synthea EOB describes the lines of the Claim it names, for the Encounter the claim names."""
    claims = {r["id"]: parse_claim(r) for r in synthea_resources("Claim")}
    encounters = {r["id"] for r in synthea_resources("Encounter")}
    checked = 0
    for eob in synthea_resources("ExplanationOfBenefit"):
        claim = claims[eob["claim"]["reference"].removeprefix("urn:uuid:")]
        from_eob = parse_claim(eob)
        assert [(x.sequence, x.system, x.code, x.encounters, x.charge) for x in from_eob.lines] == \
            [(x.sequence, x.system, x.code, x.encounters, x.charge) for x in claim.lines]
        assert from_eob.lines[0].service_day == claim.lines[0].service_day
        assert claim.lines[0].encounters[0].removeprefix("urn:uuid:") in encounters
        checked += 1
    assert checked == 28


def test_synthea_prices_are_exact_minor_units_and_diagnoses_kept_as_references() -> None:
    resource = next(r for r in synthea_resources("Claim") if any("net" in i for i in r["item"]) and r.get("diagnosis"))
    c = parse_claim(resource)
    nets = [round(i["net"]["value"] * 100) for i in resource["item"] if "net" in i]
    assert [x.charge for x in c.lines if x.charge is not None] == nets
    assert c.lines[0].charge is None  # Synthea's first line has no price: never guessed
    assert c.declared_total == round(resource["total"]["value"] * 100)
    assert all(d.system == REFERENCE_SYSTEM for d in c.diagnoses)


def test_the_commitment_is_the_records_construction_and_binds_every_field() -> None:
    c = content(line("ZZ001", net=120.0), line("ZZ003", net=80.5, modifiers=("59",)))
    assert c.commitment(SALT) == compute_commitment(SALT, c.canonical())
    assert c.commitment(SALT) == hashlib.sha256(SALT + c.canonical()).hexdigest()
    verify_content(c, SALT, c.commitment(SALT))
    tampered = content(line("ZZ001", net=120.01), line("ZZ003", net=80.5, modifiers=("59",)))
    with pytest.raises(ContentMismatch) as exc:
        verify_content(tampered, SALT, c.commitment(SALT))
    assert exc.value.code == Code.CLAIM_CONTENT_MISMATCH
    with pytest.raises(ContentMismatch):
        verify_content(c, bytes(32), c.commitment(SALT))


def test_display_text_and_number_spelling_do_not_change_the_content() -> None:
    a = fhir_claim(line("ZZ001", net=120.0))
    b = json.loads(json.dumps(a))
    b["item"][0]["productOrService"]["coding"][0]["display"] = "Something the kernel never reads"
    b["item"][0]["productOrService"]["text"] = "Free text"
    exact = parse_exact(json.dumps(b).replace('"value": 120.0', '"value": 120.000'))
    assert parse_claim(a).canonical() == parse_claim(b).canonical() == parse_claim(exact).canonical()


def test_unit_price_times_quantity_times_factor() -> None:
    item = line("ZZ011", net=None)
    item.update(unitPrice={"currency": "USD", "value": 12.5}, quantity={"value": 3}, factor=0.5)
    c = content(item)
    assert (c.lines[0].units, c.lines[0].charge) == (3, 1875)


def _issues(exc: FhirInvalid) -> list[dict[str, Any]]:
    return list(exc.outcome["issue"])


@pytest.mark.parametrize(("change", "expression"), [
    (lambda c: c.update(use="preauthorization"), "Claim.use"),
    (lambda c: c["type"]["coding"][0].update(system="http://example.org/other"), "Claim.type"),
    (lambda c: c["item"][0].update(net={"currency": "USD", "value": 1.005}), "Claim.item[0]"),
    (lambda c: c["item"][0].update(quantity={"value": 1.5}), "Claim.item[0].quantity"),
    (lambda c: c["item"][0].update(servicedDate="2024-03"), "Claim.item[0].servicedDate"),
    (lambda c: c["item"][0].update(modifier=[{"coding": [{"code": m}]} for m in ("25", "59", "LT", "RT", "XS")]),
     "Claim.item[0].modifier"),
    (lambda c: c["item"][0].update(net={"currency": "EUR", "value": 1}), "Claim"),
    (lambda c: c["item"][0].update(diagnosisSequence=[3]), "Claim.item[0].diagnosisSequence"),
    (lambda c: c["item"][1].update(sequence=1), "Claim.item"),
    (lambda c: c["item"][0]["productOrService"].update(coding=[{"code": "ZZ001"}]), "Claim.item[0].productOrService"),
])
def test_not_adjudicable_claims_are_refused_with_an_operation_outcome(change: Any, expression: str) -> None:
    claim = fhir_claim(line("ZZ001"), line("ZZ002"))
    claim["item"][0]["productOrService"]["coding"][0]["display"] = "Private display text"
    change(claim)
    with pytest.raises(ClaimContentInvalid) as exc:
        parse_claim(claim)
    assert exc.value.code == Code.CLAIM_CONTENT_INVALID
    assert expression in [e for i in _issues(exc.value) for e in i.get("expression", [])]
    assert "Private display" not in json.dumps(exc.value.outcome) + str(exc.value)


def test_invalid_fhir_and_other_resources() -> None:
    claim = fhir_claim(line("ZZ001"))
    del claim["status"]
    with pytest.raises(FhirInvalid) as exc:
        parse_claim(claim)
    assert exc.value.code == Code.FHIR_INVALID
    assert any("Claim" in e for i in _issues(exc.value) for e in i.get("expression", []))
    patient = synthea_resources("Patient")[0]
    with pytest.raises(ClaimContentInvalid) as exc2:
        parse_claim(patient)
    assert exc2.value.code == Code.CLAIM_CONTENT_INVALID
    assert patient["name"][0]["family"] not in str(exc2.value) + json.dumps(exc2.value.outcome)


def test_content_documents_must_be_canonical_and_complete() -> None:
    c = content(line("ZZ001"))
    with pytest.raises(ClaimContentInvalid):
        ClaimContent.from_canonical(c.canonical().replace(b'"units":1', b'"units": 1'))
    doc = c.to_json()
    del doc["lines"][0]["charge"]
    with pytest.raises(ClaimContentInvalid):
        ClaimContent.from_json(doc)
    assert ClaimContent.from_json(c.to_json()) == c


def test_line_dates_come_from_the_line_else_from_the_billable_period() -> None:
    claim = fhir_claim(line("ZZ001"), {"productOrService": {"coding": [{"code": "ZZ002", "system": LOCAL}]},
                                       "servicedPeriod": {"start": "2024-03-01T23:30:00-08:00",
                                                          "end": "2024-03-03T01:00:00-08:00"}})
    claim["billablePeriod"] = {"start": "2024-02-28", "end": "2024-03-03"}
    del claim["item"][0]["servicedDate"]
    c = parse_claim(claim)
    assert (c.lines[0].service_day, c.lines[0].service_end_day) == (day_of("2024-02-28"), day_of("2024-03-03"))
    # the calendar date as written, in its own offset (not shifted to UTC)
    assert (c.lines[1].service_day, c.lines[1].service_end_day) == (day_of("2024-03-01"), day_of("2024-03-03"))
