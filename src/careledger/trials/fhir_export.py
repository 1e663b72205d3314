"""A trial registration as a FHIR R4 ``ResearchStudy`` that carries every WHO TRDS item.

R4 ``ResearchStudy`` has no element for several WHO items (R5 added some). Those travel in
extensions under :data:`EXTENSION_BASE` (``trds-*``), each named in the table; everything else uses the
R4 element. Validated with the fhir.resources R4B models (R4B's ResearchStudy is R4's).

===  ===================================  ============================================================
WHO  item                                 ResearchStudy
===  ===================================  ============================================================
 1   primary registry and trial id        ``identifier`` (use official; system = the chain's trial
                                          registry URN; ``assigner.display`` = registry name)
 2   date of registration                 ext ``trds-registration-date`` (valueDateTime)
 3   secondary identifying numbers        ``identifier`` (use secondary; ``assigner.display`` = issuer)
 4   sources of support                   ext ``trds-funding-source`` (valueString, repeated)
 5   primary sponsor                      ``sponsor`` (display, identifier = member organisation)
 6   secondary sponsors                   ext ``trds-secondary-sponsor`` (valueString, repeated)
 7   contact for public queries           ``contact`` with ext ``trds-contact-type`` = public
 8   contact for scientific queries       ``contact`` with ext ``trds-contact-type`` = scientific
 9   public title                         ``title``
10   scientific title, acronym            ext ``trds-scientific-title``, ext ``trds-acronym``
11   countries of recruitment             ``location`` (urn:iso:std:iso:3166)
12   health conditions                    ``condition``
13   interventions                        ``arm`` (name, type, description), ``focus`` (names) and ext
                                          ``trds-intervention`` (name, type, description, arm, comparator)
14   key inclusion/exclusion criteria     ``enrollment`` → contained ``Group`` (criteria, sex, ages)
                                          and ext ``trds-healthy-volunteers``
15   study type                           ``category`` (interventional/observational),
                                          ``primaryPurposeType``, ``phase``, ext ``trds-design``
                                          (allocation, masking, assignment)
16   date of first enrolment              ``period.start`` and ext ``trds-first-enrolment`` (date, type);
                                          actual from the first enrolment's block once enrolled
17   sample size                          ext ``trds-sample-size`` (target, final; final = enrolled
                                          once recruitment is complete)
18   recruitment status                   ``status`` (mapped) and ext ``trds-recruitment-status``
19   primary outcomes                     ``objective`` (type primary) and ext ``trds-outcome`` (id, role,
                                          measure, method, time frame, analysis)
20   key secondary outcomes               the same with type/role secondary
21   ethics review                        ext ``trds-ethics-review`` (status, committee, contact, date,
                                          reference; the registration's and each site's)
22   completion date                      ``period.end`` and ext ``trds-completion`` (primary, study)
23   summary results                      ext ``trds-summary-results`` (posted date, summary, baseline,
                                          participant flow, adverse events, outcome results, links, flags)
                                          or, before results, its ``status`` = not-yet-available
24   IPD sharing statement                ext ``trds-ipd-sharing`` (plan, description)
===  ===================================  ============================================================

The protocol versions appear as ``protocol`` references (identifier = the document's SHA-256), the
sites as ``site`` references. Off the ledger (imports fhir.resources); reads state through the
contract's accessors.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from careledger.contracts.trials.dataset import WHO_TRDS_VERSION
from careledger.contracts.trials.layout import (
    ProtocolVersion,
    Reader,
    ResultsRecord,
    SiteRecord,
    TrialConsent,
    TrialRecord,
    TrialStatus,
    get_results,
    get_status,
    get_trial,
    iter_protocols,
    iter_sites,
)
from careledger.core.errors import Code, NotFound

EXTENSION_BASE = "https://careledger.example/fhir/StructureDefinition/"
REGISTRY_NAME = "CareLedger trial registry"
_FHIR_STATUS = {"pending": "approved", "recruiting": "active", "suspended": "temporarily-closed-to-accrual",
                "complete": "closed-to-accrual", "other": "active"}
_PHASE = {"not_applicable": "n-a", "early_phase_1": "early-phase-1", "phase_1": "phase-1",
          "phase_1_2": "phase-1-phase-2", "phase_2": "phase-2", "phase_2_3": "phase-2-phase-3", "phase_3": "phase-3",
          "phase_4": "phase-4"}
_PURPOSE = {"treatment": "treatment", "prevention": "prevention", "diagnostic": "diagnostic",
            "supportive_care": "supportive-care", "screening": "screening",
            "health_services_research": "health-services-research", "basic_science": "basic-science"}
_PHASE_SYSTEM = "http://terminology.hl7.org/CodeSystem/research-study-phase"
_PURPOSE_SYSTEM = "http://terminology.hl7.org/CodeSystem/research-study-prim-purp-type"


def registry_system(chain_id: str) -> str:
    """The identifier system of the chain's trial registry (WHO item 1)."""
    return f"urn:careledger:{chain_id}:trial"


def _ext(name: str, **value: Any) -> dict[str, Any]:
    return {"url": EXTENSION_BASE + name, **value}


def _complex(name: str, parts: list[tuple[str, str, Any]]) -> dict[str, Any]:
    """A complex extension from (sub-url, value[x] key, value) parts; parts with a None value are left out."""
    return _ext(name, extension=[{"url": url, key: value} for url, key, value in parts if value is not None])


def _instant(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _date_of(ms: int) -> str:
    return datetime.fromtimestamp(ms // 1000, tz=UTC).date().isoformat()


def _contact(c: dict[str, Any], kind: str) -> dict[str, Any]:
    telecom = [{"system": "email", "value": c["email"]}] if c.get("email") else []
    if c.get("phone"):
        telecom.append({"system": "phone", "value": c["phone"]})
    parts = [("affiliation", "valueString", c.get("affiliation")), ("address", "valueString", c.get("address"))]
    ext = [_ext("trds-contact-type", valueCode=kind)]
    if any(v is not None for _, _, v in parts):
        ext.append(_complex("trds-contact-details", parts))
    return {"extension": ext, "name": c["name"], **({"telecom": telecom} if telecom else {})}


def _ethics(e: dict[str, Any], site: str | None) -> dict[str, Any]:
    return _complex("trds-ethics-review", [
        ("status", "valueCode", e["status"]), ("committee", "valueString", e["committee"]),
        ("contact", "valueString", e["contact"]), ("approvalDate", "valueDate", e.get("approval_date")),
        ("reference", "valueString", e.get("reference")), ("site", "valueString", site)])


def _eligibility_group(el: dict[str, Any]) -> dict[str, Any]:
    chars: list[dict[str, Any]] = []
    for text in el["inclusion"]:
        chars.append({"code": {"text": "inclusion criterion"}, "valueCodeableConcept": {"text": text},
                      "exclude": False})
    for text in el["exclusion"]:
        chars.append({"code": {"text": "exclusion criterion"}, "valueCodeableConcept": {"text": text},
                      "exclude": True})
    if el["sex"] != "all":
        chars.append({"code": {"text": "sex"}, "valueCodeableConcept": {"coding": [{
            "system": "http://hl7.org/fhir/administrative-gender", "code": el["sex"]}]}, "exclude": False})
    units = {"years": "a", "months": "mo", "weeks": "wk", "days": "d"}
    age: dict[str, Any] = {}
    for bound, key in (("low", "min_age"), ("high", "max_age")):
        if el.get(key) is not None:
            a = el[key]
            age[bound] = {"value": a["value"], "unit": a["unit"], "system": "http://unitsofmeasure.org",
                          "code": units[a["unit"]]}
    if age:
        chars.append({"code": {"text": "age"}, "valueRange": age, "exclude": False})
    return {"resourceType": "Group", "id": "eligibility", "type": "person", "actual": False, "characteristic": chars}


def _outcome(o: dict[str, Any], role: str) -> dict[str, Any]:
    return _complex("trds-outcome", [
        ("id", "valueString", o["id"]), ("role", "valueCode", role), ("measure", "valueString", o["measure"]),
        ("method", "valueString", o["method"]), ("timeFrame", "valueString", o["time_frame"]),
        ("analysis", "valueString", o.get("analysis"))])


def _results(r: ResultsRecord | None) -> dict[str, Any]:
    if r is None:
        return _complex("trds-summary-results", [("status", "valueCode", "not-yet-available")])
    s = r.summary
    parts: list[tuple[str, str, Any]] = [
        ("status", "valueCode", "posted"), ("datePosted", "valueDateTime", _instant(r.time_ms)),
        ("briefSummary", "valueString", s["brief_summary"]),
        ("baselineCharacteristics", "valueString", s["baseline_characteristics"]),
        ("participantFlow", "valueString", s["participant_flow"]),
        ("adverseEvents", "valueString", s["adverse_events"]),
        ("resultsUrl", "valueUri", s.get("results_url")), ("protocolUrl", "valueUri", s.get("protocol_url")),
        ("firstPublicationDate", "valueDate", s.get("first_publication_date")),
        ("datasetHash", "valueString", r.dataset_hash)]
    doc = _complex("trds-summary-results", parts)
    for o in r.outcomes:
        doc["extension"].append(_complex("outcomeMeasure", [
            ("id", "valueString", o["id"]), ("role", "valueCode", o["role"]), ("measure", "valueString", o["measure"]),
            ("timeFrame", "valueString", o["time_frame"]), ("result", "valueString", o["result"])]))
    for f in r.flags:
        doc["extension"].append(_complex("outcomeSwitchingFlag", [
            ("kind", "valueCode", f["kind"]), ("outcome", "valueString", f["outcome"]),
            ("declared", "valueBoolean", f["declared"]), ("reason", "valueString", f["reason"]),
            ("detail", "valueString", f["detail"])]))
    return doc


def research_study(chain_id: str, trial: TrialRecord, status: TrialStatus, protocols: list[ProtocolVersion],
                   sites: list[SiteRecord], results: ResultsRecord | None) -> dict[str, Any]:
    """The FHIR R4 ``ResearchStudy`` of a registration (see the module's table for every WHO item)."""
    ds = trial.dataset
    identifiers = [{"use": "official", "system": registry_system(chain_id), "value": trial.id,
                    "assigner": {"display": f"{REGISTRY_NAME} ({chain_id})"}}]
    identifiers += [{"use": "secondary", "value": s["id"], "assigner": {"display": s["issuer"]}}
                    for s in ds["secondary_ids"]]
    first = ds["first_enrolment"]
    if status.first_enrolment_ms is not None:
        first = {"date": _date_of(status.first_enrolment_ms), "type": "actual"}
    sample = ds["sample_size"]
    final = sample.get("final")
    if final is None and status.recruitment == "complete":
        final = status.enrolled
    design = ds["design"]
    ext: list[dict[str, Any]] = [
        _ext("trds-version", valueString=WHO_TRDS_VERSION),
        _ext("trds-registration-date", valueDateTime=_instant(trial.registered_ms)),
        _ext("trds-registration-version", valueInteger=trial.version),
        *[_ext("trds-funding-source", valueString=f) for f in ds["funding_sources"]],
        *[_ext("trds-secondary-sponsor", valueString=s) for s in ds["secondary_sponsors"]],
        _ext("trds-scientific-title", valueString=ds["scientific_title"]),
        *([_ext("trds-acronym", valueString=ds["acronym"])] if ds.get("acronym") else []),
        *[_complex("trds-intervention", [("name", "valueString", i["name"]), ("type", "valueCode", i["type"]),
                                         ("description", "valueString", i["description"]),
                                         ("comparator", "valueBoolean", i["comparator"]),
                                         *[("arm", "valueString", a) for a in i["arms"]]])
          for i in ds["interventions"]],
        _ext("trds-healthy-volunteers", valueBoolean=ds["eligibility"]["healthy_volunteers"]),
        _complex("trds-design", [("type", "valueCode", design["type"]),
                                 ("allocation", "valueCode", design["allocation"]),
                                 ("masking", "valueCode", design["masking"]),
                                 ("assignment", "valueCode", design["assignment"]),
                                 ("purpose", "valueCode", design["purpose"]), ("phase", "valueCode", design["phase"])]),
        _complex("trds-first-enrolment", [("date", "valueDate", first["date"]), ("type", "valueCode", first["type"])]),
        _complex("trds-sample-size", [("target", "valueInteger", sample["target"]), ("final", "valueInteger", final)]),
        _ext("trds-recruitment-status", valueCode=status.recruitment),
        *[_outcome(o, "primary") for o in ds["primary_outcomes"]],
        *[_outcome(o, "secondary") for o in ds["secondary_outcomes"]],
        *[_ethics(e, None) for e in ds["ethics_reviews"]],
        *[_ethics(s.ethics, s.org) for s in sites],
        _complex("trds-completion", [
            ("primaryCompletionDate", "valueDate", ds["completion"]["primary"]["date"]),
            ("primaryCompletionType", "valueCode", ds["completion"]["primary"]["type"]),
            ("studyCompletionDate", "valueDate", ds["completion"]["study"]["date"]),
            ("studyCompletionType", "valueCode", ds["completion"]["study"]["type"])]),
        _results(results),
        _complex("trds-ipd-sharing", [("plan", "valueCode", ds["ipd_sharing"]["plan"]),
                                      ("description", "valueString", ds["ipd_sharing"].get("description"))]),
    ]
    for e in ext:  # sub-extensions of complex extensions are named by local urls
        for sub in e.get("extension", []):
            sub["url"] = sub["url"].removeprefix(EXTENSION_BASE)
    doc: dict[str, Any] = {
        "resourceType": "ResearchStudy",
        "id": trial.id,
        "contained": [_eligibility_group(ds["eligibility"])],
        "extension": ext,
        "identifier": identifiers,
        "title": ds["public_title"],
        "protocol": [{"identifier": {"system": "urn:ietf:rfc:6920", "value": f"sha-256:{p.document_hash}"},
                      "display": f"Protocol version {p.version}"} for p in protocols],
        "status": "completed" if results is not None else _FHIR_STATUS[status.recruitment],
        "primaryPurposeType": {"coding": [{"system": _PURPOSE_SYSTEM, "code": _PURPOSE[design["purpose"]]}]}
        if design["purpose"] in _PURPOSE else {"text": design["purpose"]},
        "phase": {"coding": [{"system": _PHASE_SYSTEM, "code": _PHASE[design["phase"]]}]},
        "category": [{"text": design["type"]}],
        "focus": [{"text": i["name"]} for i in ds["interventions"]],
        "condition": [{"text": c["text"], **({"coding": [{"system": c["system"], "code": c["code"]}]}
                                             if c.get("system") else {})} for c in ds["conditions"]],
        "contact": [_contact(ds["public_contact"], "public"), _contact(ds["scientific_contact"], "scientific")],
        "location": [{"coding": [{"system": "urn:iso:std:iso:3166", "code": c}]} for c in ds["countries"]],
        "enrollment": [{"reference": "#eligibility"}],
        "period": {"start": first["date"], "end": ds["completion"]["study"]["date"]},
        "sponsor": {"display": ds["primary_sponsor"],
                    "identifier": {"system": f"urn:careledger:{chain_id}:org", "value": trial.sponsor}},
        "site": [{"display": s.org, "identifier": {"system": f"urn:careledger:{chain_id}:org", "value": s.org}}
                 for s in sites],
        "arm": [{"name": a["label"], "type": {"text": a["type"]}, "description": a["description"]} for a in ds["arms"]],
        "objective": [{"name": o["measure"], "type": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/research-study-objective-type", "code": role}]}}
            for role, key in (("primary", "primary_outcomes"), ("secondary", "secondary_outcomes")) for o in ds[key]],
    }
    return doc


def research_study_from_state(state: Reader, chain_id: str, trial: str) -> dict[str, Any]:
    """The ``ResearchStudy`` of a registered trial as committed state has it; raises NotFound (TRIAL_UNKNOWN)."""
    rec, status = get_trial(state, trial), get_status(state, trial)
    if rec is None or status is None:
        raise NotFound(f"no registered trial {trial!r}", Code.TRIAL_UNKNOWN)
    return research_study(chain_id, rec, status, list(iter_protocols(state, trial)), list(iter_sites(state, trial)),
                          get_results(state, trial))


def trial_consent(chain_id: str, trial: str, consent: TrialConsent) -> dict[str, Any]:
    """A trial consent as FHIR ``Consent``: research scope, purpose CLINTRCH, actor the ResearchStudy, and
    the protocol version covered as ``policy.uri`` = ``<trial registry URN>:<trial>:protocol|<version>``."""
    return {
        "resourceType": "Consent",
        "status": "active" if consent.status == "active" else "inactive",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "research"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "57016-8"}]}],
        "patient": {"identifier": {"system": f"urn:careledger:{chain_id}:trial-subject", "value": consent.subject}},
        "dateTime": _instant(consent.time_ms),
        "policy": [{"uri": f"{registry_system(chain_id)}:{trial}:protocol|{consent.version}"}],
        "sourceReference": {"identifier": {"system": "urn:ietf:rfc:6920",
                                           "value": f"sha-256:{consent.consent_form_hash}"}},
        "provision": {"type": "permit",
                      "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "CLINTRCH"}],
                      "actor": [{"role": {"coding": [{
                          "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "PRCP"}]},
                          "reference": {"reference": f"ResearchStudy/{trial}"}}]},
    }


def validate(resource: dict[str, Any]) -> None:
    """Validate against the fhir.resources R4B model of its type; raises pydantic's ValidationError."""
    from fhir.resources.R4B import get_fhir_model_class

    get_fhir_model_class(resource["resourceType"]).model_validate(resource)


__all__ = ["EXTENSION_BASE", "REGISTRY_NAME", "registry_system", "research_study", "research_study_from_state",
           "trial_consent", "validate"]
