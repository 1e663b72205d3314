"""Read models of the trials contract over committed state: what the API answers and the CLI shows.

Each function takes a state reader (a node's committed view) and returns one JSON document, the
shapes of :mod:`careledger.api.trials_schemas`; none writes. Unknown trials raise NotFound
(TRIAL_UNKNOWN). Time-dependent answers (SUSAR report states) take the time to derive them at,
which the API sets to the latest committed block's time: no block needs producing for a deadline to
pass.
"""

from __future__ import annotations

from typing import Any

from careledger.contracts.trials.layout import (
    Reader,
    TrialRecord,
    TrialStatus,
    get_consent,
    get_results,
    get_status,
    get_subject,
    get_trial,
    iter_protocols,
    iter_registrations,
    iter_sites,
    iter_statuses,
)
from careledger.contracts.trials.queries import (
    anchor_root,
    registration_baseline,
    safety_overview,
    subjects_awaiting_reconsent,
)
from careledger.core.errors import Code, NotFound
from careledger.trials.fhir_export import research_study_from_state, trial_consent, validate

BASELINE_RULE = ("the last registration version committed in a block before the first enrolment's block "
                 "(COMPare: the last registry entry before the trial started); the latest while no one is enrolled")


def _trial(state: Reader, trial: str) -> tuple[TrialRecord, TrialStatus]:
    rec, status = get_trial(state, trial), get_status(state, trial)
    if rec is None or status is None:
        raise NotFound(f"no registered trial {trial!r}", Code.TRIAL_UNKNOWN)
    return rec, status


def status_json(status: TrialStatus) -> dict[str, Any]:
    doc = status.to_json()
    for private in ("trial", "sponsor"):
        doc.pop(private)
    return doc


def trial_list(state: Reader, height: int) -> dict[str, Any]:
    """Every registered trial, in id order: sponsor, public title, recruitment, enrolment, lock, results."""
    out = []
    for status in iter_statuses(state):
        rec = get_trial(state, status.trial)
        assert rec is not None  # written together
        out.append({"trial": status.trial, "sponsor": status.sponsor, "public_title": rec.dataset["public_title"],
                    "recruitment": status.recruitment, "enrolled": status.enrolled, "target": status.target,
                    "registered_height": rec.registered_height, "registration_version": rec.version,
                    "locked": status.lock is not None, "results": status.results_height is not None})
    return {"trials": out, "height": height}


def registration(state: Reader, trial: str, height: int) -> dict[str, Any]:
    """The registration as it stands (the whole WHO data set) and the trial's status."""
    rec, status = _trial(state, trial)
    return {"trial": rec.id, "sponsor": rec.sponsor, "registered_by": rec.registered_by,
            "registered_height": rec.registered_height, "registered_ms": rec.registered_ms, "version": rec.version,
            "updated_height": rec.updated_height, "updated_ms": rec.updated_ms, "dataset": rec.dataset,
            "randomisation": rec.randomisation, "status": status_json(status), "height": height}


def registration_history(state: Reader, trial: str) -> dict[str, Any]:
    """Every registration version, oldest first, and COMPare's baseline among them."""
    _, status = _trial(state, trial)
    baseline = registration_baseline(state, trial)
    assert baseline is not None
    return {"trial": trial, "versions": [v.to_json() for v in iter_registrations(state, trial)],
            "baseline": {"version": baseline.version, "height": baseline.height, "rule": BASELINE_RULE},
            "first_enrolment_height": status.first_enrolment_height}


def protocols(state: Reader, trial: str) -> dict[str, Any]:
    _, status = _trial(state, trial)
    return {"trial": trial, "current": status.protocol_version, "reconsent_version": status.reconsent_version,
            "versions": [p.to_json() for p in iter_protocols(state, trial)]}


def sites(state: Reader, trial: str) -> dict[str, Any]:
    _trial(state, trial)
    return {"trial": trial, "sites": [{**s.to_json(), "investigators": [{"key": k, "role": r}
                                                                        for k, r in s.investigators]}
                                      for s in iter_sites(state, trial)]}


def anchors(state: Reader, trial: str, height: int) -> dict[str, Any]:
    """The anchor tree's size and root now (from the ledger's frontier) and the lock, if any."""
    _, status = _trial(state, trial)
    size, root = anchor_root(state, trial)
    return {"trial": trial, "size": size, "root": root.hex(),
            "lock": None if status.lock is None else status.lock.to_json(), "height": height}


def reconsent(state: Reader, trial: str) -> dict[str, Any]:
    _, status = _trial(state, trial)
    return {"trial": trial, "reconsent_version": status.reconsent_version,
            "subjects": subjects_awaiting_reconsent(state, trial)}


def safety(state: Reader, trial: str | None, as_of_ms: int, latest_block_ms: int, height: int) -> dict[str, Any]:
    """Every SUSAR (of ``trial``, or of all trials) and its report states at ``as_of_ms``."""
    if trial is not None:
        _trial(state, trial)
    susars = safety_overview(state, as_of_ms, trial)
    return {"trial": trial, "as_of_ms": as_of_ms, "latest_block_ms": latest_block_ms,
            "forecast": as_of_ms > latest_block_ms, "height": height, "susars": susars,
            "overdue": sum(1 for s in susars if s["overdue"])}


def results(state: Reader, trial: str) -> dict[str, Any]:
    """The summary results and their outcome-switching flags; NotFound (NOT_FOUND) before results."""
    _trial(state, trial)
    rec = get_results(state, trial)
    if rec is None:
        raise NotFound(f"trial {trial} has no results yet", Code.NOT_FOUND)
    return {"trial": trial, **rec.to_json(), "silent": sum(1 for f in rec.flags if not f["declared"])}


def research_study(state: Reader, chain_id: str, trial: str) -> dict[str, Any]:
    """The registration as a FHIR R4 ``ResearchStudy`` carrying every WHO item, validated (R4B models)."""
    doc = research_study_from_state(state, chain_id, trial)
    validate(doc)
    return doc


def subject(state: Reader, trial: str, subject_id: str) -> dict[str, Any]:
    """A subject's enrolment (site, stratum, slot, sealed allocation, arm once known) and consent (the
    protocol version, its history); NotFound (NOT_FOUND) for a pseudonym the trial has never seen."""
    _, status = _trial(state, trial)
    enrolment, consent = get_subject(state, trial, subject_id), get_consent(state, trial, subject_id)
    if enrolment is None and consent is None:
        raise NotFound(f"no subject {subject_id} in trial {trial}", Code.NOT_FOUND)
    return {"trial": trial, "subject": subject_id,
            "enrolment": None if enrolment is None else enrolment.to_json(),
            "consent": None if consent is None else consent.to_json(),
            "awaiting_reconsent": consent is not None and consent.status == "active"
            and consent.version < status.reconsent_version}


def consent_fhir(state: Reader, chain_id: str, trial: str, subject: str) -> dict[str, Any]:
    """A subject's trial consent as a FHIR ``Consent`` (validated); NotFound (NOT_FOUND) when she has none."""
    _trial(state, trial)
    consent = get_consent(state, trial, subject)
    if consent is None:
        raise NotFound(f"no consent of {subject} in trial {trial}", Code.NOT_FOUND)
    doc = trial_consent(chain_id, trial, consent)
    validate(doc)
    return doc


__all__ = ["BASELINE_RULE", "anchors", "consent_fhir", "protocols", "reconsent", "registration",
           "registration_history", "research_study", "results", "safety", "sites", "status_json", "subject",
           "trial_list"]
