"""FHIR out: a ``ClaimResponse`` for the provider and an ``ExplanationOfBenefit`` for the patient.

Both are built from an :class:`~careledger.claims.adjudication.AdjudicationResult` and the claim's
:class:`~careledger.claims.content.ClaimContent`, validated with the fhir.resources R4B models, and
returned in exact form (amounts as tagged decimals, :mod:`careledger.vault.canonical`), ready to be
stored in a vault and delivered through the gateway. Parties are named by their ledger identities:
the patient by pseudonym, organisations by consortium id, the claim and coverage by ledger id.

The EOB follows the shape of the CARIN Blue Button (C4BB) profiles — the ``uc`` identifier, the
``billingnetworkcontractingstatus`` and ``clmrecvddate`` supporting information, per-line
adjudications ``submitted``, ``eligible``, ``deductible``, ``copay``, ``coinsurance``, ``benefit``,
``paidtoprovider``, ``memberliability`` and ``noncovered``, a ``denialreason`` slice with the CARC of
a denied line and an ``adjustmentreason`` entry for every other adjustment — without claiming
conformance (no conformance validator runs here).
"""

from __future__ import annotations

from typing import Any, Final

from careledger.vault.canonical import DECIMAL_TAG
from careledger.vault.fhir import validate_resource

from . import codes as claim_codes
from .adjudication import AdjudicationResult, LineResult
from .content import CLAIM_TYPE_SYSTEM, REFERENCE_SYSTEM, ClaimContent, ClaimLine, date_of, from_minor

ADJUDICATION_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/adjudication"
C4BB_ADJUDICATION: Final = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBAdjudication"
C4BB_DISCRIMINATOR: Final = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBAdjudicationDiscriminator"
C4BB_SUPPORTING_INFO: Final = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBSupportingInfoType"
C4BB_PAYER_STATUS: Final = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBPayerAdjudicationStatus"
C4BB_IDENTIFIER_TYPE: Final = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBIdentifierType"
POS_SYSTEM: Final = "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set"
PAYMENT_TYPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/ex-paymenttype"
C4BB_PROFILE: Final = "http://hl7.org/fhir/us/carin-bb/StructureDefinition/"
PROFILES: Final = {
    "professional": "C4BB-ExplanationOfBenefit-Professional-NonClinician",
    "vision": "C4BB-ExplanationOfBenefit-Professional-NonClinician",
    "institutional": "C4BB-ExplanationOfBenefit-Outpatient-Institutional",
    "pharmacy": "C4BB-ExplanationOfBenefit-Pharmacy",
    "oral": "C4BB-ExplanationOfBenefit-Oral",
}
PSEUDONYM_SYSTEM: Final = "urn:careledger:pseudonym"
ORG_SYSTEM: Final = "urn:careledger:org"
CLAIM_SYSTEM: Final = "urn:careledger:claim"
COVERAGE_SYSTEM: Final = "urn:careledger:coverage"
NON_COVERED: Final = frozenset({claim_codes.CARC_NON_COVERED, claim_codes.CARC_NOT_IN_PLAN})


def _money(minor: int, currency: str) -> dict[str, Any]:
    return {"currency": currency, "value": {DECIMAL_TAG: str(from_minor(minor, currency))}}


def _concept(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"code": code, "system": system}]}


def _ident(system: str, value: str) -> dict[str, Any]:
    return {"identifier": {"system": system, "value": value}}


def _amount_entry(system: str, code: str, minor: int, currency: str) -> dict[str, Any]:
    return {"amount": _money(minor, currency), "category": _concept(system, code)}


def _line_amounts(line: LineResult, currency: str, patient_view: bool) -> list[dict[str, Any]]:
    entries = [
        _amount_entry(ADJUDICATION_SYSTEM, "submitted", line.submitted, currency),
        _amount_entry(ADJUDICATION_SYSTEM, "eligible", line.eligible, currency),
        _amount_entry(ADJUDICATION_SYSTEM, "deductible", line.deductible, currency),
        _amount_entry(ADJUDICATION_SYSTEM, "copay", line.copay, currency),
        _amount_entry(C4BB_ADJUDICATION, "coinsurance", line.coinsurance, currency),
        _amount_entry(ADJUDICATION_SYSTEM, "benefit", line.benefit, currency),
    ]
    if patient_view:
        noncovered = sum(a.amount for a in line.adjustments if a.reason in NON_COVERED)
        entries += [_amount_entry(C4BB_ADJUDICATION, "paidtoprovider", line.benefit, currency),
                    _amount_entry(C4BB_ADJUDICATION, "memberliability", line.patient_responsibility, currency),
                    _amount_entry(C4BB_ADJUDICATION, "noncovered", noncovered, currency)]
    for adj in line.adjustments:
        slice_code = "denialreason" if line.outcome == "denied" else "adjustmentreason"
        entries.append({"amount": _money(adj.amount, currency), "category": _concept(C4BB_DISCRIMINATOR, slice_code),
                        "reason": {**_concept(claim_codes.CARC_SYSTEM, adj.reason), "text": adj.code}})
    return entries


def _notes(result: AdjudicationResult) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """One processNote per RARC used anywhere in the result; their numbers by code."""
    used = sorted(set(result.remarks) | {r for line in result.lines for r in line.remarks})
    numbers = {code: n for n, code in enumerate(used, start=1)}
    notes = [{"number": n, "text": f"{code}: {claim_codes.RARC.get(code, 'remark')}", "type": "display"}
             for code, n in numbers.items()]
    return notes, numbers


def _totals(result: AdjudicationResult, patient_view: bool) -> list[dict[str, Any]]:
    t = result.totals()
    cur = result.currency
    out = [_amount_entry(ADJUDICATION_SYSTEM, k, t[k], cur) for k in ("submitted", "eligible", "deductible", "copay")]
    out += [_amount_entry(C4BB_ADJUDICATION, "coinsurance", t["coinsurance"], cur),
            _amount_entry(ADJUDICATION_SYSTEM, "benefit", t["benefit"], cur)]
    if patient_view:
        member = sum(line.patient_responsibility for line in result.lines)
        out += [_amount_entry(C4BB_ADJUDICATION, "paidtoprovider", t["benefit"], cur),
                _amount_entry(C4BB_ADJUDICATION, "memberliability", member, cur)]
    return out


def _payment(result: AdjudicationResult) -> dict[str, Any]:
    kind = "complete" if result.outcome == "approved" else "partial"
    return {"amount": _money(result.paid, result.currency), "type": _concept(PAYMENT_TYPE_SYSTEM, kind)}


def claim_response(result: AdjudicationResult, content: ClaimContent, *, patient: str, provider: str,
                   created: str, response_id: str | None = None, validate: bool = True) -> dict[str, Any]:
    """The provider's FHIR R4 ``ClaimResponse`` (``outcome`` ``queued`` while pended, else ``complete``;
    ``disposition`` says approved / partial / denied / pended). Validated with fhir.resources R4B unless
    ``validate`` is false (a caller on a hot path whose tests validate what it builds)."""
    notes, numbers = _notes(result)
    items = []
    for line in result.lines:
        item: dict[str, Any] = {"adjudication": _line_amounts(line, result.currency, False),
                                "itemSequence": line.sequence}
        if line.remarks:
            item["noteNumber"] = [numbers[r] for r in line.remarks]
        items.append(item)
    resource: dict[str, Any] = {
        "resourceType": "ClaimResponse", "id": response_id or f"{result.claim}-response", "status": "active",
        "type": _concept(CLAIM_TYPE_SYSTEM, content.claim_type), "use": "claim",
        "patient": _ident(PSEUDONYM_SYSTEM, patient), "created": created,
        "insurer": _ident(ORG_SYSTEM, result.insurer), "requestor": _ident(ORG_SYSTEM, provider),
        "request": _ident(CLAIM_SYSTEM, result.claim),
        "outcome": "queued" if result.outcome == "pended" else "complete",
        "disposition": result.outcome, "item": items, "total": _totals(result, False),
    }
    if result.outcome != "pended":
        resource["payment"] = _payment(result)
    if notes:
        resource["processNote"] = notes
    if validate:
        validate_resource(resource)
    return resource


def _eob_item(line: ClaimLine, adjudicated: LineResult, currency: str, numbers: dict[str, int]) -> dict[str, Any]:
    item: dict[str, Any] = {"sequence": line.sequence, "productOrService": _concept(line.system, line.code),
                            "adjudication": _line_amounts(adjudicated, currency, True)}
    if line.service_end_day == line.service_day:
        item["servicedDate"] = date_of(line.service_day)
    else:
        item["servicedPeriod"] = {"end": date_of(line.service_end_day), "start": date_of(line.service_day)}
    if line.modifiers:
        item["modifier"] = [{"coding": [{"code": m}]} for m in line.modifiers]
    if line.place_of_service is not None:
        item["locationCodeableConcept"] = _concept(POS_SYSTEM, line.place_of_service)
    if line.revenue is not None:
        item["revenue"] = {"coding": [{"code": line.revenue}]}
    if line.units != 1:
        item["quantity"] = {"value": line.units}
    if line.charge is not None:
        item["net"] = _money(line.charge, currency)
    if line.diagnosis_pointers:
        item["diagnosisSequence"] = list(line.diagnosis_pointers)
    adjudicated_notes = [numbers[r] for r in adjudicated.remarks]
    if adjudicated_notes:
        item["noteNumber"] = adjudicated_notes
    status = "innetwork" if adjudicated.outcome == "approved" else "other"
    item["adjudication"].append({"category": _concept(C4BB_PAYER_STATUS, status)})
    return item


def explanation_of_benefit(result: AdjudicationResult, content: ClaimContent, *, patient: str, provider: str,
                           created: str, received_day: int, contracted: bool = True,
                           eob_id: str | None = None, validate: bool = True) -> dict[str, Any]:
    """The patient's FHIR R4 ``ExplanationOfBenefit`` in the shape of CARIN Blue Button (see the module
    docstring), merging the claim's lines and their adjudication. Validated with fhir.resources R4B."""
    notes, numbers = _notes(result)
    by_seq = {line.sequence: line for line in result.lines}
    diagnoses = []
    for d in content.diagnoses:
        if d.system == REFERENCE_SYSTEM:
            diagnoses.append({"diagnosisReference": {"reference": d.code}, "sequence": d.sequence})
        else:
            diagnoses.append({"diagnosisCodeableConcept": _concept(d.system, d.code), "sequence": d.sequence})
    resource: dict[str, Any] = {
        "resourceType": "ExplanationOfBenefit", "id": eob_id or f"{result.claim}-eob",
        "meta": {"profile": [C4BB_PROFILE + PROFILES[content.claim_type]]},
        "identifier": [{"system": CLAIM_SYSTEM, "type": _concept(C4BB_IDENTIFIER_TYPE, "uc"), "value": result.claim}],
        "status": "active", "type": _concept(CLAIM_TYPE_SYSTEM, content.claim_type), "use": "claim",
        "patient": _ident(PSEUDONYM_SYSTEM, patient),
        "billablePeriod": {"end": date_of(content.billable_end_day), "start": date_of(content.billable_start_day)},
        "created": created, "insurer": _ident(ORG_SYSTEM, result.insurer), "provider": _ident(ORG_SYSTEM, provider),
        "outcome": "queued" if result.outcome == "pended" else "complete", "disposition": result.outcome,
        "supportingInfo": [
            {"category": _concept(C4BB_SUPPORTING_INFO, "billingnetworkcontractingstatus"),
             "code": _concept(C4BB_PAYER_STATUS, "contracted" if contracted else "noncontracted"), "sequence": 1},
            {"category": _concept(C4BB_SUPPORTING_INFO, "clmrecvddate"), "sequence": 2,
             "timingDate": date_of(received_day)}],
        "insurance": [{"coverage": _ident(COVERAGE_SYSTEM, result.coverage), "focal": True}],
        "item": [_eob_item(line, by_seq[line.sequence], result.currency, numbers) for line in content.lines],
        "total": _totals(result, True),
    }
    if diagnoses:
        resource["diagnosis"] = diagnoses
    if result.outcome != "pended":
        resource["payment"] = _payment(result)
    if notes:
        resource["processNote"] = notes
    if validate:
        validate_resource(resource)
    return resource
