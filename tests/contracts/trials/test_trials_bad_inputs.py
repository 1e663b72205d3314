"""Every bad input to the trials contract is refused with its stable code, and nothing is written.

Failed transactions (refused by the contract) are included with their code and leave the state as it
was but for the signer's nonce; invalid ones (a payload of the wrong shape) never enter a block and
leave everything, nonce included, as it was.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest

from careledger.contracts.trials import layout as contract
from careledger.core.crypto import SigningKey
from careledger.core.errors import Code
from support.trials import FORM_V1, World, make_world, sample_dataset

Case = tuple[str, str, Callable[["World", str], dict[str, Any]], Code]


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


ETHICS = {"status": "approved", "committee": "c", "contact": "c", "approval_date": "2023-10-20"}
SUMMARY = {"brief_summary": "s", "baseline_characteristics": "b", "participant_flow": "f", "adverse_events": "a"}
P1 = {"id": "P1", "role": "primary", "measure": "Knee pain", "method": "Numerical rating scale 0-10",
      "time_frame": "12 weeks", "result": "r"}


def _register(**changes: Any) -> Callable[[World, str], dict[str, Any]]:
    def build(w: World, trial: str) -> dict[str, Any]:
        c = w.schedule.commitment()
        payload: dict[str, Any] = {
            "dataset": sample_dataset(), "protocol": {"document_hash": _h("d"), "consent_form_hash": _h("f")},
            "randomisation": {"root": c.root.hex(), "strata": [{"name": s, "slots": n} for s, n in c.strata]}}
        for key, value in changes.items():
            if value is None:
                payload.pop(key)
            else:
                payload[key] = value
        return payload
    return build


def _enrol(name: str = "carol", **allocation: Any) -> Callable[[World, str], dict[str, Any]]:
    """An enrolment with the next allocation of hospital|50-64, its fields changed by ``allocation``."""
    def build(w: World, trial: str) -> dict[str, Any]:
        payload = w.enrol_payload(name, trial)
        return payload | {"allocation": payload["allocation"] | allocation}
    return build


def _visit(name: str = "alice", **kw: Any) -> Callable[[World, str], dict[str, Any]]:
    return lambda w, trial: w.visit_payload(trial, name, "v9", [_h("obs")], **kw)


def _first_event(w: World, trial: str) -> str:
    return next(ae.id for _, ae in contract.iter_adverse_events(w.ledger.state, trial))


# (who signs, transaction, payload builder, expected code): failed transactions
FAILED: dict[str, Case] = {
    "register by a member without the coordinator role":
        ("investigator", "trials.register", _register(), Code.TRIAL_NOT_SPONSOR),
    "register an inconsistent data set":
        ("sponsor", "trials.register", _register(dataset=sample_dataset(secondary_outcomes=[
            {"id": "P1", "measure": "m", "method": "x", "time_frame": "t"}])), Code.TRIAL_REGISTRATION_INVALID),
    "register a completed trial":
        ("sponsor", "trials.register", _register(dataset=sample_dataset(recruitment_status="complete")),
         Code.TRIAL_REGISTRATION_INVALID),
    "register with an actual first enrolment":
        ("sponsor", "trials.register", _register(dataset=sample_dataset(
            first_enrolment={"date": "2023-11-20", "type": "actual"})), Code.TRIAL_REGISTRATION_INVALID),
    "register a randomised trial without a commitment":
        ("sponsor", "trials.register", _register(randomisation=None), Code.TRIAL_REGISTRATION_INVALID),
    "register a non-randomised trial with a commitment":
        ("sponsor", "trials.register", _register(dataset=sample_dataset(design__allocation="non_randomised")),
         Code.TRIAL_REGISTRATION_INVALID),
    "register repeated strata":
        ("sponsor", "trials.register", _register(randomisation={"root": _h("r"), "strata": [
            {"name": "a", "slots": 10}, {"name": "a", "slots": 10}]}), Code.TRIAL_REGISTRATION_INVALID),
    "register fewer slots than the target":
        ("sponsor", "trials.register", _register(randomisation={"root": _h("r"), "strata": [
            {"name": "a", "slots": 11}]}), Code.TRIAL_REGISTRATION_INVALID),
    "update an unknown trial":
        ("sponsor", "trials.update_registration",
         lambda w, t: {"trial": "trl-" + "f" * 24, "dataset": sample_dataset(), "reason": "r"}, Code.TRIAL_UNKNOWN),
    "update another sponsor's trial":
        ("clinic_investigator", "trials.update_registration",
         lambda w, t: {"trial": t, "dataset": sample_dataset(), "reason": "r"}, Code.TRIAL_NOT_SPONSOR),
    "update changing the allocation":
        ("sponsor", "trials.update_registration",
         lambda w, t: {"trial": t, "dataset": sample_dataset(design__allocation="non_randomised"), "reason": "r"},
         Code.TRIAL_REGISTRATION_INVALID),
    "set the recruitment status it has":
        ("sponsor", "trials.set_recruitment_status", lambda w, t: {"trial": t, "status": "recruiting", "reason": "r"},
         Code.TRIAL_STATUS_INVALID),
    "amend skipping a version":
        ("sponsor", "trials.amend_protocol", lambda w, t: {
            "trial": t, "version": 3, "document_hash": _h("d3"), "consent_form_hash": _h("f3"), "reason": "r",
            "reconsent_required": True}, Code.TRIAL_PROTOCOL_VERSION_CONFLICT),
    "add a site twice":
        ("sponsor", "trials.add_site", lambda w, t: {"trial": t, "org": "hospital", "ethics": ETHICS,
                                                     "investigators": [{"key": w.investigator.public_hex,
                                                                        "role": "principal_investigator"}]},
         Code.TRIAL_SITE_EXISTS),
    "add a site without ethics approval":
        ("sponsor", "trials.add_site", lambda w, t: {"trial": t, "org": "research",
                                                     "ethics": {**ETHICS, "status": "pending"},
                                                     "investigators": [{"key": w.sponsor.public_hex,
                                                                        "role": "principal_investigator"}]},
         Code.TRIAL_ETHICS_NOT_APPROVED),
    "add a site whose investigator is another organisation's":
        ("sponsor", "trials.add_site", lambda w, t: {"trial": t, "org": "research", "ethics": ETHICS,
                                                     "investigators": [{"key": w.investigator.public_hex,
                                                                        "role": "principal_investigator"}]},
         Code.TRIAL_INVESTIGATOR_INVALID),
    "add a site without a principal investigator":
        ("sponsor", "trials.add_site", lambda w, t: {"trial": t, "org": "research", "ethics": ETHICS,
                                                     "investigators": [{"key": w.sponsor.public_hex,
                                                                        "role": "sub_investigator"}]},
         Code.TRIAL_INVESTIGATOR_INVALID),
    "add an unknown organisation as a site":
        ("sponsor", "trials.add_site", lambda w, t: {"trial": t, "org": "nowhere", "ethics": ETHICS,
                                                     "investigators": [{"key": w.sponsor.public_hex,
                                                                        "role": "principal_investigator"}]},
         Code.ORG_UNKNOWN),
    "set the status of an organisation that is not a site":
        ("sponsor", "trials.set_site_status", lambda w, t: {"trial": t, "org": "research", "status": "suspended",
                                                            "reason": "r"}, Code.TRIAL_SITE_UNKNOWN),
    "set a site's status to the one it has":
        ("sponsor", "trials.set_site_status", lambda w, t: {"trial": t, "org": "hospital", "status": "active",
                                                            "reason": "r"}, Code.TRIAL_STATUS_INVALID),
    "another site's admin sets this site's investigators":
        ("clinic_admin", "trials.set_site_investigators", lambda w, t: {
            "trial": t, "org": "hospital", "investigators": [{"key": w.investigator.public_hex,
                                                              "role": "principal_investigator"}]},
         Code.TRIAL_NOT_SPONSOR),
    "consent to a version that does not exist":
        ("study:carol", "trials.consent", lambda w, t: {"trial": t, "protocol_version": 2,
                                                        "consent_form_hash": FORM_V1},
         Code.TRIAL_PROTOCOL_VERSION_CONFLICT),
    "consent to another form":
        ("study:carol", "trials.consent", lambda w, t: {"trial": t, "protocol_version": 1,
                                                        "consent_form_hash": _h("other form")},
         Code.TRIAL_CONSENT_FORM_MISMATCH),
    "consent twice to the same version":
        ("study:alice", "trials.consent", lambda w, t: {"trial": t, "protocol_version": 1,
                                                        "consent_form_hash": FORM_V1}, Code.TRIAL_STATUS_INVALID),
    "consent signed with a registered patient key":
        ("patient:alice", "trials.consent", lambda w, t: {"trial": t, "protocol_version": 1,
                                                          "consent_form_hash": FORM_V1},
         Code.TRIAL_CONSENT_NOT_STUDY_KEY),
    "consent signed with a member key":
        ("investigator", "trials.consent", lambda w, t: {"trial": t, "protocol_version": 1,
                                                         "consent_form_hash": FORM_V1},
         Code.TRIAL_CONSENT_NOT_STUDY_KEY),
    "withdraw a consent never given":
        ("study:carol", "trials.withdraw_consent", lambda w, t: {"trial": t}, Code.TRIAL_CONSENT_REQUIRED),
    "enrol by a nurse who is not an investigator":
        ("outsider", "trials.enrol", _enrol("bob"), Code.TRIAL_NOT_SITE_STAFF),
    "enrol at another organisation's site":
        ("clinic_investigator", "trials.enrol", _enrol("bob"), Code.TRIAL_NOT_SITE_STAFF),
    "enrol at an organisation that is not a site":
        ("investigator", "trials.enrol", lambda w, t: {**w.enrol_payload("bob", t), "site": "research"},
         Code.TRIAL_SITE_UNKNOWN),
    "enrol without consent":
        ("investigator", "trials.enrol", _enrol("carol"), Code.TRIAL_CONSENT_REQUIRED),
    "enrol a subject twice":
        ("investigator", "trials.enrol", _enrol("alice"), Code.TRIAL_SUBJECT_ENROLLED),
    "enrol without an allocation":
        ("investigator", "trials.enrol", lambda w, t: {k: v for k, v in w.enrol_payload("bob", t).items()
                                                       if k != "allocation"}, Code.TRIAL_ALLOCATION_REQUIRED),
    "enrol in a stratum that was not committed":
        ("investigator", "trials.enrol", _enrol("bob", stratum="ward|50-64", index=0), Code.TRIAL_STRATUM_UNKNOWN),
    "enrol with an altered proof":
        ("investigator", "trials.enrol", _enrol("bob", proof=[_h("p")] * 5), Code.TRIAL_ALLOCATION_MISMATCH),
    "anchor a visit of a subject not enrolled":
        ("steward", "trials.record_visits", _visit("bob"), Code.TRIAL_SUBJECT_UNKNOWN),
    "anchor a visit of another site's subject":
        ("clinic_investigator", "trials.record_visits", _visit("alice", site="clinic"),
         Code.TRIAL_SUBJECT_NOT_AT_SITE),
    "anchor a visit as a nurse who is not an investigator":
        ("outsider", "trials.record_visits", _visit("alice"), Code.TRIAL_NOT_SITE_STAFF),
    "lock by an investigator":
        ("investigator", "trials.lock", lambda w, t: {"trial": t}, Code.TRIAL_NOT_SPONSOR),
    "lock with another root":
        ("sponsor", "trials.lock", lambda w, t: {"trial": t, "root": _h("root")}, Code.TRIAL_LOCK_ROOT_MISMATCH),
    "unblind before lock":
        ("sponsor", "trials.unblind", lambda w, t: {"trial": t, "allocations": [
            {"subject": w.subject("alice", t), "arm": "app", "salt": _h("s")}]}, Code.TRIAL_NOT_LOCKED),
    "results before lock":
        ("sponsor", "trials.submit_results", lambda w, t: {"trial": t, "outcomes": [P1], "dataset_hash": _h("d"),
                                                           "summary": SUMMARY}, Code.TRIAL_NOT_LOCKED),
    "report an adverse event of a subject not enrolled":
        ("investigator", "trials.report_adverse_event", lambda w, t: {
            "trial": t, "site": "hospital", "subject": w.subject("bob", t), "event": _h("ae"),
            "expectedness": "unexpected", "causality": "related"}, Code.TRIAL_SUBJECT_UNKNOWN),
    "report an adverse event with a criterion twice":
        ("investigator", "trials.report_adverse_event", lambda w, t: {
            "trial": t, "site": "hospital", "subject": w.subject("alice", t), "event": _h("ae"),
            "seriousness": ["death", "death"], "expectedness": "unexpected", "causality": "related"},
         Code.INVALID_PAYLOAD),
    "a safety report for an unknown event":
        ("sponsor", "trials.submit_safety_report", lambda w, t: {"trial": t, "event": "ae-" + "0" * 24,
                                                                 "stage": "initial", "report": _h("r")},
         Code.TRIAL_AE_UNKNOWN),
    "a complete report before the initial one":
        ("sponsor", "trials.submit_safety_report", lambda w, t: {"trial": t, "event": _first_event(w, t),
                                                                 "stage": "complete", "report": _h("r")},
         Code.TRIAL_REPORT_OUT_OF_ORDER),
    "a safety report by an investigator":
        ("investigator", "trials.submit_safety_report", lambda w, t: {"trial": t, "event": "ae-" + "0" * 24,
                                                                      "stage": "initial", "report": _h("r")},
         Code.TRIAL_NOT_SPONSOR),
}

# payloads of the wrong shape: invalid, never included
INVALID: dict[str, Case] = {
    "register with an unknown data set item":
        ("sponsor", "trials.register", _register(dataset={**sample_dataset(), "favourite_colour": "blue"}),
         Code.INVALID_PAYLOAD),
    "amend to version 1":
        ("sponsor", "trials.amend_protocol", lambda w, t: {
            "trial": t, "version": 1, "document_hash": _h("d"), "consent_form_hash": _h("f"), "reason": "r",
            "reconsent_required": False}, Code.INVALID_PAYLOAD),
    "enrol a subject named by a patient pseudonym":
        ("investigator", "trials.enrol", lambda w, t: {**w.enrol_payload("bob", t), "subject": "pt-" + "0" * 32},
         Code.INVALID_PAYLOAD),
    "anchor a resource that is not case-report data":
        ("steward", "trials.record_visits", lambda w, t: {"trial": t, "site": "hospital", "visits": [
            {"subject": w.subject("alice", t), "visit": "v9",
             "resources": [{"type": "Patient", "commitment": _h("x")}]}]}, Code.INVALID_PAYLOAD),
    "anchor more visits than a transaction holds":
        ("steward", "trials.record_visits", lambda w, t: {"trial": t, "site": "hospital", "visits": [
            {"subject": w.subject("alice", t), "visit": f"v{i}",
             "resources": [{"type": "Observation", "commitment": _h(str(i))}]} for i in range(257)]},
         Code.INVALID_PAYLOAD),
    "an adverse event with an unknown seriousness criterion":
        ("investigator", "trials.report_adverse_event", lambda w, t: {
            "trial": t, "site": "hospital", "subject": w.subject("alice", t), "event": _h("ae"),
            "seriousness": ["serious-ish"], "expectedness": "unexpected", "causality": "related"},
         Code.INVALID_PAYLOAD),
    "a trial id that is not a study id":
        ("sponsor", "trials.lock", lambda w, t: {"trial": "../trial"}, Code.INVALID_PAYLOAD),
}


@pytest.fixture(scope="module")
def world() -> tuple[World, str]:
    """A registered trial with two sites; alice consented, enrolled, one visit and one SUSAR (no report)."""
    w = make_world()
    trial = w.registered_trial()
    assert w.consent("alice", trial).code == 0
    assert w.consent("bob", trial).code == 0
    assert w.enrol("alice", trial).code == 0
    w.ok(w.steward, "trials.record_visits", w.visit_payload(trial, "alice", "v1", [_h("v1")]))
    w.ok(w.investigator, "trials.report_adverse_event", {
        "trial": trial, "site": "hospital", "subject": w.subject("alice", trial), "event": _h("AdverseEvent"),
        "seriousness": ["death"], "expectedness": "unexpected", "causality": "related"})
    return w, trial


def _signer(w: World, who: str, trial: str) -> SigningKey:
    if who.startswith("study:"):
        return w.study_key(who[6:], trial)
    if who.startswith("patient:"):
        patient = w.patient(who[8:])
        if w.ledger.committed_nonce(patient) == 0:
            assert w.ledger.register_patient(patient).code == 0
        return patient
    if who == "clinic_admin":
        return w.ledger.consortium.admin("clinic")
    key: SigningKey = getattr(w, who)
    return key


@pytest.mark.parametrize("case", sorted(FAILED))
def test_a_refused_transaction_has_its_code_and_writes_nothing(world: tuple[World, str], case: str) -> None:
    w, trial = world
    who, tx, build, code = FAILED[case]
    signer = _signer(w, who, trial)
    payload = build(w, trial)
    before = w.snapshot()
    receipt = w.run(signer, tx, payload)
    assert receipt.code == code, receipt.message
    assert receipt.events == () and receipt.result is None
    assert w.snapshot() == before


@pytest.mark.parametrize("case", sorted(INVALID))
def test_a_malformed_transaction_never_enters_a_block(world: tuple[World, str], case: str) -> None:
    w, trial = world
    who, tx, build, code = INVALID[case]
    raw = w.ledger.tx(_signer(w, who, trial), tx, build(w, trial))
    before = w.ledger.snapshot()
    assert w.ledger.refused(raw).code == code
    assert w.ledger.snapshot() == before


def test_messages_carry_no_subject_data(world: tuple[World, str]) -> None:
    """A refusal's message names codes, versions and slots, never a subject pseudonym or a commitment."""
    w, trial = world
    receipt = w.run(w.steward, "trials.record_visits", w.visit_payload(trial, "bob", "v1", [_h("secret")]))
    assert receipt.code == Code.TRIAL_SUBJECT_UNKNOWN
    assert w.subject("bob", trial) not in receipt.message and _h("secret") not in receipt.message


def test_stateful_enrolment_refusals() -> None:
    """Not recruiting, a suspended site, a full trial, an exhausted stratum, a locked trial."""
    w = make_world()
    trial = w.register(sample_dataset(sample_size={"target": 3}))
    w.add_sites(trial)
    for name in ("a", "b", "c", "d", "e"):
        assert w.consent(name, trial).code == 0
    w.ok(w.sponsor, "trials.set_recruitment_status", {"trial": trial, "status": "suspended", "reason": "DSMB review"})
    assert w.enrol("a", trial).code == Code.TRIAL_NOT_RECRUITING
    w.ok(w.sponsor, "trials.set_recruitment_status", {"trial": trial, "status": "recruiting", "reason": "resumed"})
    w.ok(w.sponsor, "trials.set_site_status", {"trial": trial, "org": "hospital", "status": "suspended",
                                               "reason": "monitoring finding"})
    assert w.enrol("a", trial).code == Code.TRIAL_SITE_INACTIVE
    w.ok(w.sponsor, "trials.set_site_status", {"trial": trial, "org": "hospital", "status": "active", "reason": "ok"})
    for name in ("a", "b", "c"):
        assert w.enrol(name, trial, "clinic|65-85", "clinic").code == 0
    assert w.enrol("d", trial).code == Code.TRIAL_ENROLMENT_FULL
    w.ok(w.sponsor, "trials.lock", {"trial": trial})
    assert w.enrol("d", trial).code == Code.TRIAL_LOCKED
    assert w.run(w.sponsor, "trials.set_recruitment_status",
                 {"trial": trial, "status": "recruiting", "reason": "r"}).code == Code.TRIAL_STATUS_INVALID
    assert w.run(w.sponsor, "trials.lock", {"trial": trial}).code == Code.TRIAL_LOCKED


def test_an_exhausted_stratum_is_refused() -> None:
    w = make_world()
    trial = w.register(sample_dataset(sample_size={"target": 30}))
    w.add_sites(trial)
    for i in range(9):
        assert w.consent(f"s{i}", trial).code == 0
    for i in range(8):
        assert w.enrol(f"s{i}", trial, "hospital|65-85").code == 0
    payload = w.enrol_payload("s8", trial) | {"allocation": w.reveal(trial, "hospital|65-85", index=7)}
    assert w.run(w.investigator, "trials.enrol", payload).code == Code.TRIAL_STRATUM_EXHAUSTED


def test_every_trials_code_is_in_its_range() -> None:
    codes = [c for c in Code if c.name.startswith("TRIAL_")]
    assert len(codes) >= 40 and all(5000 <= c <= 5199 for c in codes)
