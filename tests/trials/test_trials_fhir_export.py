"""A registration exported as a FHIR R4 ResearchStudy that validates (fhir.resources R4B) and carries all
24 WHO items; trial consent exports as FHIR Consent."""

from __future__ import annotations

import hashlib
from typing import Any

from careledger.contracts import trials as contract
from careledger.trials import fhir_export
from careledger.trials.fhir_export import EXTENSION_BASE, research_study_from_state, trial_consent
from support.trials import World, make_world, sample_dataset


def _exts(resource: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [e for e in resource.get("extension", []) if e["url"] == EXTENSION_BASE + name]


def _sub(ext: dict[str, Any], url: str) -> Any:
    for e in ext["extension"]:
        if e["url"] == url:
            return next(v for k, v in e.items() if k.startswith("value"))
    return None


def _trial_with_results(w: World) -> str:
    trial = w.registered_trial()
    assert w.consent("alice", trial).code == 0
    assert w.enrol("alice", trial).code == 0
    w.ok(w.sponsor, "trials.set_recruitment_status", {"trial": trial, "status": "complete", "reason": "target met"})
    w.ok(w.sponsor, "trials.lock", {"trial": trial})
    w.ok(w.sponsor, "trials.submit_results", {
        "trial": trial, "dataset_hash": hashlib.sha256(b"analysis data").hexdigest(),
        "outcomes": [{"id": "P1", "role": "primary", "measure": "Knee pain", "method": "Numerical rating scale 0-10",
                      "time_frame": "12 weeks", "result": "Mean difference -1.2 (95% CI -2.0 to -0.4)"}],
        "omitted": [{"id": "S1", "reason": "goniometers unavailable"}, {"id": "S2", "reason": "not analysed"}],
        "summary": {"brief_summary": "Pain fell more with the app.", "baseline_characteristics": "Balanced arms.",
                    "participant_flow": "1 enrolled, 1 completed.", "adverse_events": "None serious.",
                    "results_url": "https://research.example.org/knee-app/results"}})
    return trial


def test_export_validates_and_carries_every_who_item() -> None:
    w = make_world()
    trial = _trial_with_results(w)
    doc = research_study_from_state(w.ledger.state, w.ledger.chain.chain_id, trial)
    fhir_export.validate(doc)
    ds = sample_dataset()
    official = [i for i in doc["identifier"] if i["use"] == "official"]
    items: dict[int, bool] = {
        1: official == [{"use": "official", "system": "urn:careledger:careledger-test:trial", "value": trial,
                         "assigner": {"display": "CareLedger trial registry (careledger-test)"}}],
        2: _exts(doc, "trds-registration-date")[0]["valueDateTime"].endswith("Z"),
        3: any(i["value"] == "KNEE-APP-01" and i["assigner"]["display"] == "Sponsor protocol number"
               for i in doc["identifier"]),
        4: [e["valueString"] for e in _exts(doc, "trds-funding-source")] == ds["funding_sources"],
        5: doc["sponsor"]["display"] == ds["primary_sponsor"] and doc["sponsor"]["identifier"]["value"] == "research",
        6: [e["valueString"] for e in _exts(doc, "trds-secondary-sponsor")] == ds["secondary_sponsors"],
        7: any(c["name"] == "Trial office" and c["extension"][0]["valueCode"] == "public" for c in doc["contact"]),
        8: any(c["extension"][0]["valueCode"] == "scientific" for c in doc["contact"]),
        9: doc["title"] == ds["public_title"],
        10: _exts(doc, "trds-scientific-title")[0]["valueString"] == ds["scientific_title"]
        and _exts(doc, "trds-acronym")[0]["valueString"] == "KNEE-APP",
        11: sorted(loc["coding"][0]["code"] for loc in doc["location"]) == ["FR", "GB"],
        12: doc["condition"][0]["coding"][0]["code"] == "M17.1",
        13: [a["name"] for a in doc["arm"]] == ["app", "sham"] and len(_exts(doc, "trds-intervention")) == 2
        and _sub(_exts(doc, "trds-intervention")[1], "comparator") is True,
        14: doc["enrollment"] == [{"reference": "#eligibility"}]
        and len(doc["contained"][0]["characteristic"]) == 3  # one inclusion, one exclusion, the age range
        and _exts(doc, "trds-healthy-volunteers")[0]["valueBoolean"] is False,
        15: doc["category"] == [{"text": "interventional"}] and doc["phase"]["coding"][0]["code"] == "n-a"
        and _sub(_exts(doc, "trds-design")[0], "masking") == "double",
        16: _sub(_exts(doc, "trds-first-enrolment")[0], "type") == "actual"
        and doc["period"]["start"] == _sub(_exts(doc, "trds-first-enrolment")[0], "date"),
        17: _sub(_exts(doc, "trds-sample-size")[0], "target") == 12
        and _sub(_exts(doc, "trds-sample-size")[0], "final") == 1,
        18: _exts(doc, "trds-recruitment-status")[0]["valueCode"] == "complete",
        19: next((_sub(e, "id"), _sub(e, "role"), _sub(e, "timeFrame")) for e in _exts(doc, "trds-outcome"))
        == ("P1", "primary", "12 weeks"),
        20: [_sub(e, "id") for e in _exts(doc, "trds-outcome") if _sub(e, "role") == "secondary"] == ["S1", "S2"],
        21: [_sub(e, "committee") for e in _exts(doc, "trds-ethics-review")]
        == ["Research organisation ethics committee", "Clinic ethics committee", "Hospital ethics committee"],
        22: _sub(_exts(doc, "trds-completion")[0], "primaryCompletionDate") == "2024-06-30"
        and doc["period"]["end"] == "2024-12-31",
        23: _sub(_exts(doc, "trds-summary-results")[0], "status") == "posted"
        and _sub(_exts(doc, "trds-summary-results")[0], "resultsUrl").startswith("https://"),
        24: _sub(_exts(doc, "trds-ipd-sharing")[0], "plan") == "yes",
    }
    assert sorted(items) == list(range(1, 25))
    assert [n for n, ok in items.items() if not ok] == []
    assert doc["status"] == "completed"
    flags = [e for e in _exts(doc, "trds-summary-results")[0]["extension"] if e["url"] == "outcomeSwitchingFlag"]
    assert len(flags) == 2  # S1 and S2 omitted, each with its reason (declared)


def test_a_fresh_registration_exports_with_results_not_yet_available() -> None:
    w = make_world()
    trial = w.register()
    doc = research_study_from_state(w.ledger.state, w.ledger.chain.chain_id, trial)
    fhir_export.validate(doc)
    assert doc["status"] == "active" and doc["site"] == []
    assert _sub(_exts(doc, "trds-summary-results")[0], "status") == "not-yet-available"
    assert _sub(_exts(doc, "trds-first-enrolment")[0], "type") == "anticipated"


def test_trial_consent_exports_as_fhir_consent() -> None:
    w = make_world()
    trial = w.register()
    assert w.consent("alice", trial).code == 0
    consent = contract.get_consent(w.ledger.state, trial, w.subject("alice", trial))
    assert consent is not None
    doc = trial_consent(w.ledger.chain.chain_id, trial, consent)
    fhir_export.validate(doc)
    assert doc["policy"][0]["uri"].endswith(f"{trial}:protocol|1")
    assert doc["provision"]["purpose"][0]["code"] == "CLINTRCH"
    assert doc["patient"]["identifier"]["value"].startswith("sp-")
