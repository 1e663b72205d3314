"""The patient's side of research: her study keys, her research log, and her consents as FHIR (pure).

Only she can read her research log: its entries sit under her study pseudonyms, which she alone can
derive from her seed (:mod:`careledger.contracts.research.study_keys`). Given the scopes she consented
under, she finds every release her data went into and the studies they served.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from careledger.contracts.research import (
    ResearchConsentRecord,
    StudyRecord,
    compute_study_pseudonym,
    consents_of,
    derive_study_key,
    scope_info,
    seen_by,
)
from careledger.core.state import StateReader


def research_log(view: StateReader, patient_seed: bytes, scopes: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """Her research log: one entry per release that included her, oldest first, under each of
    ``scopes`` (``("study", id)`` or ``("category", code)``): study, custodian, release, height, time."""
    entries = []
    for scope, target in scopes:
        subject = compute_study_pseudonym(derive_study_key(patient_seed, scope_info(scope, target)).public_hex)
        for e in seen_by(view, subject):
            entries.append({"custodian": e.custodian, "height": e.height, "release": e.release, "scope": scope,
                            "study": e.study, "subject": subject, "text":
                            f"de-identified data released to study {e.study} at height {e.height}",
                            "time_ms": e.time_ms})
    return sorted(entries, key=lambda x: (x["height"], x["release"], x["subject"]))


def studies_released_to(view: StateReader, patient_seed: bytes, scopes: Sequence[tuple[str, str]]) -> list[str]:
    """The studies her data went to (sorted, each once)."""
    return sorted({e["study"] for e in research_log(view, patient_seed, scopes)})


def my_consents(view: StateReader, patient_seed: bytes, scopes: Sequence[tuple[str, str]]
                ) -> list[ResearchConsentRecord]:
    out: list[ResearchConsentRecord] = []
    for scope, target in scopes:
        subject = compute_study_pseudonym(derive_study_key(patient_seed, scope_info(scope, target)).public_hex)
        out.extend(consents_of(view, subject))
    return out


def _instant(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def research_consent_to_fhir(consent: ResearchConsentRecord, study: StudyRecord | None = None) -> dict[str, Any]:
    """A research consent as a FHIR R4 Consent (scope ``research``, policy ``hipaa-research``): a
    study consent names its ResearchStudy; a broad consent names its category as the provision's code."""
    actor_ref = {"reference": f"ResearchStudy/{consent.target}"} if consent.scope == "study" else {
        "display": f"research category {consent.target}"}
    provision: dict[str, Any] = {
        "type": "permit",
        "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                        "code": "IRCP"}]}, "reference": actor_ref}],
        "action": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": "use"}]}],
        "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                     "code": study.purpose if study else "HRESCH"}],
    }
    if consent.scope == "category":
        provision["code"] = [{"coding": [{"system": "urn:careledger:research-category", "code": consent.target}]}]
    if consent.resource_types:
        provision["class"] = [{"system": "http://hl7.org/fhir/resource-types", "code": t}
                              for t in consent.resource_types]
    if study is not None:
        period: dict[str, str] = {"start": _instant(study.period_start_ms)}
        if study.period_end_ms is not None:
            period["end"] = _instant(study.period_end_ms)
        provision["period"] = period
    return {
        "resourceType": "Consent", "id": consent.id,
        "status": "active" if consent.status == "active" else "inactive",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "research"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"identifier": {"system": "urn:careledger:study-pseudonym", "value": consent.subject}},
        "dateTime": _instant(consent.granted_ms),
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentpolicycodes",
                                   "code": "hipaa-research"}]},
        "provision": provision,
    }


def study_to_fhir(study: StudyRecord) -> dict[str, Any]:
    """A registry entry as a FHIR R4 ResearchStudy."""
    period: dict[str, str] = {"start": _instant(study.period_start_ms)}
    if study.period_end_ms is not None:
        period["end"] = _instant(study.period_end_ms)
    return {
        "resourceType": "ResearchStudy", "id": study.id,
        "identifier": [{"system": "urn:careledger:study", "value": study.id},
                       {"system": "urn:careledger:ethics-approval", "value": study.ethics_ref}],
        "title": study.title,
        "status": "active" if study.status == "active" else "closed-to-accrual-and-intervention",
        "primaryPurposeType": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/research-study-prim-purp-type",
            "code": "treatment" if study.kind == "trial" else "health-services-research"}]},
        "category": [{"coding": [{"system": "urn:careledger:research-category", "code": study.category}]}],
        "sponsor": {"reference": f"Organization/{study.sponsor}"},
        "period": period,
        "extension": [{"url": "urn:careledger:fhir:extension:study-version", "valueInteger": study.version}],
    }
