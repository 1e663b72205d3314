"""Vectors of the trials contract: every one of its sixteen transaction types, accepted and refused.

The consortium is a research organisation (the sponsor), a hospital and a clinic (the sites) and a
regulator. The trial is randomised and double-blind, with one stratum of four slots: the sponsor's
allocation schedule comes from a fixed seed (``careledger.trials.randomisation``), subjects sign
with study keys derived from their patient keys for this trial (``careledger.contracts.research.study_keys``),
and the registration is a short synthetic WHO data set (docs/trials.md).
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from typing import Any

from careledger.contracts.research.study_keys import compute_study_pseudonym, derive_study_key
from careledger.core.crypto import SigningKey
from careledger.trials.randomisation import AllocationSchedule, generate_schedule
from vectors.builder import Builder, Org, admin, enrol, key

SPONSOR_ORG, HOSPITAL, CLINIC, REGULATOR = "research-r", "hospital-a", "clinic-b", "regulator-d"
TRIALS_ORGS: tuple[Org, ...] = ((SPONSOR_ORG, "research", ()), (HOSPITAL, "hospital", ()), (CLINIC, "clinic", ()),
                                (REGULATOR, "regulator", ()))
SPONSOR = admin(SPONSOR_ORG)
INVESTIGATOR, NURSE, CLINIC_INVESTIGATOR = (key("trials/investigator"), key("trials/nurse"),
                                            key("trials/clinic-investigator"))
PATIENTS = [key(f"patient/{n}") for n in (1, 2, 3)]
STRATUM = "all"
SCHEDULE: AllocationSchedule = generate_schedule(hashlib.sha256(b"careledger-vectors/trials/randomisation").digest(),
                                                 [STRATUM], ["app", "sham"], [1, 1], [2], 4)


def h(label: str) -> str:
    """A made-up SHA-256 (a document, form, commitment or report hash) from a label."""
    return hashlib.sha256(b"careledger-vectors/trials/" + label.encode()).hexdigest()


DATASET: dict[str, Any] = {
    "arms": [{"description": "App-guided exercises", "label": "app", "type": "experimental"},
             {"description": "General advice", "label": "sham", "type": "sham_comparator"}],
    "completion": {"primary": {"date": "2025-12-31", "type": "anticipated"},
                   "study": {"date": "2026-06-30", "type": "anticipated"}},
    "conditions": [{"code": "M17.1", "system": "http://hl7.org/fhir/sid/icd-10", "text": "Knee osteoarthritis"}],
    "countries": ["GB", "FR"],
    "design": {"allocation": "randomised", "assignment": "parallel", "masking": "double", "phase": "not_applicable",
               "purpose": "treatment", "type": "interventional"},
    "eligibility": {"inclusion": ["Knee replacement within 6 weeks"], "sex": "all"},
    "ethics_reviews": [{"approval_date": "2025-05-01", "committee": "Research REC", "contact": "rec@research.example",
                        "status": "approved"}],
    "first_enrolment": {"date": "2025-07-01", "type": "anticipated"},
    "funding_sources": ["Research endowment"],
    "interventions": [{"arms": ["app"], "description": "Daily exercises", "name": "Exercise app", "type": "device"},
                      {"arms": ["sham"], "comparator": True, "description": "Advice only", "name": "Sham app",
                       "type": "device"}],
    "ipd_sharing": {"plan": "no"},
    "primary_outcomes": [{"id": "P1", "measure": "Knee pain", "method": "Rating 0-10", "time_frame": "12 weeks"}],
    "primary_sponsor": "Research organisation",
    "public_contact": {"email": "trials@research.example", "name": "Trial office"},
    "public_title": "An exercise app after knee replacement",
    "recruitment_status": "recruiting",
    "sample_size": {"target": 4},
    "scientific_contact": {"email": "ci@research.example", "name": "Chief investigator"},
    "scientific_title": "Randomised double-blind sham-controlled trial of an exercise app",
}
ETHICS = {"approval_date": "2025-05-20", "committee": "Hospital REC", "contact": "rec@hospital.example",
          "status": "approved"}


def dataset(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(DATASET)
    doc.update(changes)
    return doc


def trials_builder() -> Builder:
    return Builder(orgs=TRIALS_ORGS)


def register(b: Builder, ds: dict[str, Any] | None = None, randomised: bool = True) -> bytes:
    payload: dict[str, Any] = {"dataset": ds or DATASET, "protocol": {"consent_form_hash": h("form/1"),
                                                                      "document_hash": h("protocol/1")}}
    if randomised:
        c = SCHEDULE.commitment()
        payload["randomisation"] = {"root": c.root.hex(), "strata": [{"name": s, "slots": n} for s, n in c.strata]}
    return b.tx(SPONSOR, "trials.register", payload)


def registered(b: Builder) -> str:
    """Pre blocks: the investigators are enrolled, then the sponsor registers the trial; its id."""
    b.pre(enrol(b, HOSPITAL, INVESTIGATOR, ["physician"]), enrol(b, HOSPITAL, NURSE, ["nurse"]),
          enrol(b, CLINIC, CLINIC_INVESTIGATOR, ["physician"]))
    [receipt] = b.pre(register(b))
    return str(receipt["result"]["trial"])


def add_site(b: Builder, trial: str, org: str = HOSPITAL, investigator: SigningKey = INVESTIGATOR,
             **ethics: Any) -> bytes:
    return b.tx(SPONSOR, "trials.add_site", {"ethics": {**ETHICS, **ethics}, "investigators": [
        {"key": investigator.public_hex, "role": "principal_investigator"}], "org": org, "trial": trial})


def study_key(patient: int, trial: str) -> SigningKey:
    return derive_study_key(PATIENTS[patient].seed, trial)


def subject(patient: int, trial: str) -> str:
    return compute_study_pseudonym(study_key(patient, trial).public_hex)


def consent(b: Builder, patient: int, trial: str, version: int = 1, form: str = "form/1") -> bytes:
    return b.tx(study_key(patient, trial), "trials.consent", {"consent_form_hash": h(form), "protocol_version": version,
                                                              "trial": trial})


def enrol_subject(b: Builder, patient: int, trial: str, slot: int, sealed: bool = True) -> bytes:
    return b.tx(INVESTIGATOR, "trials.enrol", {"allocation": SCHEDULE.reveal(STRATUM, slot, sealed=sealed).to_json(),
                                               "site": HOSPITAL, "subject": subject(patient, trial), "trial": trial})


def enrolled(b: Builder, patients: int = 1) -> str:
    """Pre blocks: a registered trial with its hospital site, and ``patients`` subjects consented and enrolled."""
    trial = registered(b)
    b.pre(add_site(b, trial), *(consent(b, n, trial) for n in range(patients)))
    b.pre(*(enrol_subject(b, n, trial, n) for n in range(patients)))
    return trial


def visits(b: Builder, trial: str, patient: int = 0, visit: str = "week-1", version: int = 1,
           reason: str | None = None) -> bytes:
    entry: dict[str, Any] = {"resources": [{"commitment": h(f"visit/{patient}/{visit}/{version}"),
                                            "type": "Observation"}],
                             "subject": subject(patient, trial), "version": version, "visit": visit}
    if reason is not None:
        entry["reason"] = reason
    return b.tx(INVESTIGATOR, "trials.record_visits", {"site": HOSPITAL, "trial": trial, "visits": [entry]})


def adverse_event(b: Builder, trial: str, seriousness: list[str], expectedness: str = "unexpected",
                  patient: int = 0, label: str = "ae") -> bytes:
    return b.tx(INVESTIGATOR, "trials.report_adverse_event", {
        "causality": "related", "event": h(label), "expectedness": expectedness, "seriousness": seriousness,
        "site": HOSPITAL, "subject": subject(patient, trial), "trial": trial})


# -- registration -------------------------------------------------------------------------------------------

def trials_register() -> dict[str, Any]:
    b = trials_builder()
    b.pre(enrol(b, HOSPITAL, INVESTIGATOR, ["physician"]))
    raws = [register(b), register(b, dataset(countries=["GB", "GB"])), register(b, randomised=False),
            register(b, dataset(nickname="knee"))]
    first = "trl-" + hashlib.sha256(raws[0]).hexdigest()[:24]
    return b.vector("trials_register",
                    "The sponsor registers a randomised double-blind trial: the WHO data set (countries stored "
                    "sorted), protocol version 1 and the allocation commitment; a country twice and a randomised "
                    "design without a commitment fail (5003); an unknown data-set field is invalid (105).",
                    raws, [f"trials/trial/{first}", f"trials/status/{first}", f"trials/protocol/{first}/0001"],
                    [(True, 0), (True, 5003), (True, 5003), (False, 105)])


def trials_update_registration() -> dict[str, Any]:
    b = trials_builder()
    trial = registered(b)

    def update(**changes: Any) -> bytes:
        return b.tx(SPONSOR, "trials.update_registration", {"dataset": dataset(**changes), "reason": "Title wording",
                                                            "trial": trial})

    def recruitment(status: str) -> bytes:
        return b.tx(SPONSOR, "trials.set_recruitment_status", {"reason": "Funding review", "status": status,
                                                               "trial": trial})

    open_label = {**DATASET["design"], "masking": "none"}
    return b.vector("trials_update_registration",
                    "A new registration version with a reason (every version is kept); changing the masking "
                    "fails (5003); recruitment is suspended (version 3); suspending again is 5007.",
                    [update(public_title="An exercise app after knee surgery"), update(design=open_label),
                     recruitment("suspended"), recruitment("suspended")],
                    [f"trials/registration/{trial}/000002", f"trials/registration/{trial}/000003",
                     f"trials/status/{trial}"], [(True, 0), (True, 5003), (True, 0), (True, 5007)])


def trials_amend_protocol() -> dict[str, Any]:
    b = trials_builder()
    trial = registered(b)

    def amend(version: int) -> bytes:
        return b.tx(SPONSOR, "trials.amend_protocol", {
            "consent_form_hash": h(f"form/{version}"), "document_hash": h(f"protocol/{version}"),
            "reason": "Visit window widened", "reconsent_required": True, "trial": trial, "version": version})

    return b.vector("trials_amend_protocol",
                    "Protocol version 2, with re-consent required; version 2 again and version 4 fail (5008).",
                    [amend(2), amend(2), amend(4)], [f"trials/protocol/{trial}/0002", f"trials/status/{trial}"],
                    [(True, 0), (True, 5008), (True, 5008)])


# -- sites --------------------------------------------------------------------------------------------------

def trials_add_site() -> dict[str, Any]:
    b = trials_builder()
    trial = registered(b)
    return b.vector("trials_add_site",
                    "The hospital becomes a site with its ethics approval and principal investigator; again is "
                    "5012; the clinic with a pending ethics review (5015) or with the hospital's physician as "
                    "investigator (5014) fails.",
                    [add_site(b, trial), add_site(b, trial), add_site(b, trial, CLINIC, CLINIC_INVESTIGATOR,
                                                                       status="pending", approval_date=None),
                     add_site(b, trial, CLINIC)],
                    [f"trials/site/{trial}/{HOSPITAL}", f"trials/site/{trial}/{CLINIC}"],
                    [(True, 0), (True, 5012), (True, 5015), (True, 5014)])


def trials_site_status_and_investigators() -> dict[str, Any]:
    b = trials_builder()
    trial = registered(b)
    b.pre(add_site(b, trial))

    def status(org: str, value: str) -> bytes:
        return b.tx(SPONSOR, "trials.set_site_status", {"org": org, "reason": "Monitoring visit", "status": value,
                                                        "trial": trial})

    def investigators(*entries: tuple[SigningKey, str]) -> bytes:
        return b.tx(SPONSOR, "trials.set_site_investigators", {"investigators": [
            {"key": k.public_hex, "role": role} for k, role in entries], "org": HOSPITAL, "trial": trial})

    return b.vector("trials_site_status_and_investigators",
                    "The site is suspended; suspending it again (5007) or a site that does not exist (5010) "
                    "fails; its investigators become the physician and a nurse (stored sorted by key); a list "
                    "without a principal investigator fails (5014).",
                    [status(HOSPITAL, "suspended"), status(HOSPITAL, "suspended"), status(CLINIC, "closed"),
                     investigators((NURSE, "study_coordinator"), (INVESTIGATOR, "principal_investigator")),
                     investigators((NURSE, "sub_investigator"))],
                    [f"trials/site/{trial}/{HOSPITAL}"],
                    [(True, 0), (True, 5007), (True, 5010), (True, 0), (True, 5014)])


# -- subjects -----------------------------------------------------------------------------------------------

def trials_consent() -> dict[str, Any]:
    b = trials_builder()
    trial = registered(b)
    return b.vector("trials_consent",
                    "A subject consents to protocol version 1 with the study key derived for this trial (never a "
                    "registered key); again is 5007; another form (5023) and a version that does not exist "
                    "(5008) fail.",
                    [consent(b, 0, trial), consent(b, 0, trial), consent(b, 1, trial, form="form/9"),
                     consent(b, 2, trial, version=2)],
                    [f"trials/consent/{trial}/{subject(0, trial)}", f"trials/consent/{trial}/{subject(1, trial)}"],
                    [(True, 0), (True, 5007), (True, 5023), (True, 5008)])


def trials_withdraw_consent() -> dict[str, Any]:
    b = trials_builder()
    trial = registered(b)
    b.pre(consent(b, 0, trial))

    def withdraw(patient: int) -> bytes:
        return b.tx(study_key(patient, trial), "trials.withdraw_consent", {"trial": trial})

    return b.vector("trials_withdraw_consent",
                    "The subject withdraws consent; again is 5022; a study key that never consented gets 5020.",
                    [withdraw(0), withdraw(0), withdraw(1)], [f"trials/consent/{trial}/{subject(0, trial)}"],
                    [(True, 0), (True, 5022), (True, 5020)])


def trials_enrol() -> dict[str, Any]:
    b = trials_builder()
    trial = registered(b)
    b.pre(add_site(b, trial), consent(b, 0, trial), consent(b, 1, trial))
    return b.vector("trials_enrol",
                    "The investigator enrols a consented subject with slot 0's sealed allocation; again is 5025; "
                    "slot 0 for another subject is 5031; an open allocation in a masked trial is 5035; a subject "
                    "without consent is 5020; slot 1 sealed enrols the second subject.",
                    [enrol_subject(b, 0, trial, 0), enrol_subject(b, 0, trial, 1), enrol_subject(b, 1, trial, 0),
                     enrol_subject(b, 1, trial, 1, sealed=False), enrol_subject(b, 2, trial, 1),
                     enrol_subject(b, 1, trial, 1)],
                    [f"trials/subject/{trial}/{subject(0, trial)}", f"trials/subject/{trial}/{subject(1, trial)}",
                     f"trials/status/{trial}"],
                    [(True, 0), (True, 5025), (True, 5031), (True, 5035), (True, 5020), (True, 0)])


def trials_record_visits() -> dict[str, Any]:
    b = trials_builder()
    trial = enrolled(b)
    return b.vector("trials_record_visits",
                    "The site anchors a visit (leaf 0 of the trial's anchor tree); the same visit again (5040) "
                    "and a correction without a reason (5041) fail; the correction with a reason is leaf 1; a "
                    "subject not enrolled gets 5026.",
                    [visits(b, trial), visits(b, trial), visits(b, trial, version=2),
                     visits(b, trial, version=2, reason="Transcription error"), visits(b, trial, patient=1)],
                    [f"trials/visit/{trial}/{subject(0, trial)}/week-1", f"trials/tree/{trial}"],
                    [(True, 0), (True, 5040), (True, 5041), (True, 0), (True, 5026)])


# -- safety -------------------------------------------------------------------------------------------------

def trials_report_adverse_event() -> dict[str, Any]:
    b = trials_builder()
    trial = enrolled(b)
    raws = [adverse_event(b, trial, ["hospitalisation"]), adverse_event(b, trial, ["death"], patient=1),
            adverse_event(b, trial, ["death", "death"], label="twice")]
    event = "ae-" + hashlib.sha256(raws[0]).hexdigest()[:24]
    return b.vector("trials_report_adverse_event",
                    "A serious, unexpected, related event is a SUSAR due by the end of day 15 from the block "
                    "time; an event of a subject not enrolled (5026) and a criterion twice (105) fail.",
                    raws, [f"trials/ae/{trial}/{event}"], [(True, 0), (True, 5026), (True, 105)])


def trials_submit_safety_report() -> dict[str, Any]:
    b = trials_builder()
    trial = enrolled(b)
    receipts = b.pre(adverse_event(b, trial, ["hospitalisation"]), adverse_event(b, trial, ["death"], label="fatal"),
                     adverse_event(b, trial, ["hospitalisation"], expectedness="expected", label="expected"))
    serious, fatal, expected = (str(r["result"]["event"]) for r in receipts)

    def report(event: str, stage: str) -> bytes:
        return b.tx(SPONSOR, "trials.submit_safety_report", {"event": event, "report": h(f"report/{event}/{stage}"),
                                                             "stage": stage, "trial": trial})

    return b.vector("trials_submit_safety_report",
                    "The sponsor records a SUSAR's initial report (on time); again is 5052; a complete report of "
                    "a SUSAR that is not fatal (5053), a complete report before the initial one (5053), a report "
                    "of an expected event (5051) and of an unknown event (5050) fail.",
                    [report(serious, "initial"), report(serious, "initial"), report(serious, "complete"),
                     report(fatal, "complete"), report(expected, "initial"), report("ae-" + "0" * 24, "initial")],
                    [f"trials/ae/{trial}/{serious}", f"trials/ae/{trial}/{fatal}"],
                    [(True, 0), (True, 5052), (True, 5053), (True, 5053), (True, 5051), (True, 5050)])


# -- lock, unblinding, results ------------------------------------------------------------------------------

def trials_lock() -> dict[str, Any]:
    b = trials_builder()
    trial = enrolled(b)
    b.pre(visits(b, trial))
    unblind = b.tx(SPONSOR, "trials.unblind", {"allocations": [
        {"arm": SCHEDULE.allocation(STRATUM, 0).arm, "salt": SCHEDULE.allocation(STRATUM, 0).salt.hex(),
         "subject": subject(0, trial)}], "trial": trial})
    return b.vector("trials_lock",
                    "Unblinding before the lock is 5006; a lock naming another root is 5042; the sponsor locks "
                    "the database (the anchor tree's root and size); locking again is 5005.",
                    [unblind, b.tx(SPONSOR, "trials.lock", {"root": h("not the root"), "trial": trial}),
                     b.tx(SPONSOR, "trials.lock", {"trial": trial}), b.tx(SPONSOR, "trials.lock", {"trial": trial})],
                    [f"trials/status/{trial}"], [(True, 5006), (True, 5042), (True, 0), (True, 5005)])


RESULTS_SUMMARY = {"adverse_events": "No serious events", "baseline_characteristics": "Four adults",
                   "brief_summary": "No difference", "participant_flow": "All four completed"}


def trials_unblind_and_results() -> dict[str, Any]:
    b = trials_builder()
    trial = enrolled(b)
    b.pre(b.tx(SPONSOR, "trials.lock", {"trial": trial}))
    allocation = SCHEDULE.allocation(STRATUM, 0)

    def unblind(salt: str) -> bytes:
        return b.tx(SPONSOR, "trials.unblind", {"allocations": [{"arm": allocation.arm, "salt": salt,
                                                                 "subject": subject(0, trial)}], "trial": trial})

    def results() -> bytes:
        return b.tx(SPONSOR, "trials.submit_results", {
            "dataset_hash": h("dataset"), "outcomes": [{"id": "P1", "measure": "Knee pain", "method": "Rating 0-10",
                                                        "result": "Mean difference 0.2", "role": "primary",
                                                        "time_frame": "12 weeks"}],
            "summary": RESULTS_SUMMARY, "trial": trial})

    return b.vector("trials_unblind_and_results",
                    "After the lock, a salt that does not open the sealed allocation is 5030; the sponsor "
                    "unblinds the subject; again is 5038; summary results are recorded against the registered "
                    "outcomes (no switching flag); again is 5060.",
                    [unblind(h("wrong salt")), unblind(allocation.salt.hex()), unblind(allocation.salt.hex()),
                     results(), results()],
                    [f"trials/subject/{trial}/{subject(0, trial)}", f"trials/results/{trial}"],
                    [(True, 5030), (True, 0), (True, 5038), (True, 0), (True, 5060)])


VECTORS: list[Callable[[], dict[str, Any]]] = [
    trials_register, trials_update_registration, trials_amend_protocol, trials_add_site,
    trials_site_status_and_investigators, trials_consent, trials_withdraw_consent, trials_enrol, trials_record_visits,
    trials_report_adverse_event, trials_submit_safety_report, trials_lock, trials_unblind_and_results,
]
