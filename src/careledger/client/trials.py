"""The Python client for clinical trials: :class:`TrialsClient` is a :class:`~careledger.client.Client`
with one method per ``trials.*`` transaction, the trials reads, and the helpers each party needs.

::

    from careledger.client.trials import TrialsClient, study_key, subject_of
    with TrialsClient("http://127.0.0.1:8700") as client:
        trial = client.register(coordinator, dataset, protocol_hash, form_hash,
                                randomisation=schedule.commitment())["receipt"]["result"]["trial"]
        client.consent(study_key(alice, trial), trial, 1, form_hash)               # the patient
        client.enrol(dr_osei, trial, "st-marys", subject_of(alice, trial),
                     client.next_allocation(trial, "all", schedule))                 # site, sponsor's reveal
        client.overdue()                                                             # a regulator

Parties and their helpers:

* the **patient** (off the ledger, her own seed): :func:`study_key` (her key for one trial, never
  registered), :func:`subject_of` (her pseudonym there), :meth:`TrialsClient.linkage_statement` (the
  statement she gives one site so it knows the subject is her);
* the **sponsor**: :meth:`TrialsClient.next_allocation` (the next slot of a stratum, revealed from its
  schedule: sealed for a masked trial) and :meth:`TrialsClient.unblinding` (every enrolled subject's
  arm and salt, for ``trials.unblind``); the schedule is any object with ``reveal`` and
  ``allocation`` as :class:`careledger.trials.randomisation.AllocationSchedule` has them.

Writes return the committed result (``result["receipt"]["code"] != 0`` for a refusal the contract
recorded); reads return the JSON documents of docs/http-api.md; errors raise
:class:`~careledger.client.ClientError`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from careledger.client import Client, _seg
from careledger.contracts.research.study_keys import derive_study_key, make_linkage_statement, study_pseudonym
from careledger.contracts.trials.allocation import AllocationCommitment, RevealedAllocation
from careledger.core.crypto import SigningKey

__all__ = ["AllocationSource", "TrialsClient", "study_key", "subject_of"]

Json = dict[str, Any]
Doc = BaseModel | Mapping[str, Any]
SiteStatus = Literal["active", "suspended", "closed"]
RecruitmentStatus = Literal["pending", "recruiting", "suspended", "complete", "other"]
InvestigatorRole = Literal["principal_investigator", "sub_investigator", "study_coordinator"]


def _doc(value: Doc) -> Json:
    """A payload part given as the contract's typed model or as plain JSON."""
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else dict(value)


def study_key(patient: SigningKey, trial: str) -> SigningKey:
    """The patient's study key for ``trial`` (HKDF of her seed; never registered): she signs
    ``trials.consent`` and ``trials.withdraw_consent`` with it."""
    return derive_study_key(patient.seed, trial)


def subject_of(patient: SigningKey, trial: str) -> str:
    """The pseudonym (``sp-…``) the patient appears under in ``trial``."""
    return study_pseudonym(study_key(patient, trial))


class _Allocation(Protocol):
    @property
    def arm(self) -> str: ...

    @property
    def salt(self) -> bytes: ...


class AllocationSource(Protocol):
    """The sponsor's allocation sequence, as :class:`careledger.trials.randomisation.AllocationSchedule`."""

    def reveal(self, stratum: str, index: int, *, sealed: bool = False) -> RevealedAllocation: ...

    def allocation(self, stratum: str, index: int) -> _Allocation: ...


class TrialsClient(Client):
    """A node's HTTP API with the trials calls."""

    # -- writes: one method per transaction type ---------------------------------------------------------
    def trials(self, key: SigningKey, action: str, payload: Json, wait: bool = True) -> Json:
        """Send ``trials.<action>`` (version 1) signed by ``key``."""
        return self.send(key, f"trials.{action}", 1, payload, wait=wait)

    def register(self, key: SigningKey, dataset: Doc, document_hash: str, consent_form_hash: str,
                 randomisation: AllocationCommitment | None = None) -> Json:
        """Register a trial: the WHO data set, protocol v1's document and consent-form hashes, and for a
        randomised design the allocation commitment. The result names the trial id."""
        payload: Json = {"dataset": _doc(dataset),
                         "protocol": {"consent_form_hash": consent_form_hash, "document_hash": document_hash}}
        if randomisation is not None:
            payload["randomisation"] = {"root": randomisation.root.hex(),
                                        "strata": [{"name": s, "slots": n} for s, n in randomisation.strata]}
        return self.trials(key, "register", payload)

    def update_registration(self, key: SigningKey, trial: str, dataset: Doc, reason: str) -> Json:
        return self.trials(key, "update_registration", {"dataset": _doc(dataset), "reason": reason, "trial": trial})

    def set_recruitment_status(self, key: SigningKey, trial: str, status: RecruitmentStatus, reason: str) -> Json:
        return self.trials(key, "set_recruitment_status", {"reason": reason, "status": status, "trial": trial})

    def amend_protocol(self, key: SigningKey, trial: str, version: int, document_hash: str, consent_form_hash: str,
                       reason: str, reconsent_required: bool) -> Json:
        return self.trials(key, "amend_protocol", {
            "consent_form_hash": consent_form_hash, "document_hash": document_hash, "reason": reason,
            "reconsent_required": reconsent_required, "trial": trial, "version": version})

    def add_site(self, key: SigningKey, trial: str, org: str, ethics: Doc,
                 investigators: Sequence[tuple[str, InvestigatorRole]]) -> Json:
        """Add a site: an organisation, its ethics approval, its investigators as (member key, role)."""
        return self.trials(key, "add_site", {"ethics": _doc(ethics), "org": org, "trial": trial,
                                             "investigators": [{"key": k, "role": r} for k, r in investigators]})

    def set_site_status(self, key: SigningKey, trial: str, org: str, status: SiteStatus, reason: str) -> Json:
        return self.trials(key, "set_site_status", {"org": org, "reason": reason, "status": status, "trial": trial})

    def set_site_investigators(self, key: SigningKey, trial: str, org: str,
                               investigators: Sequence[tuple[str, InvestigatorRole]]) -> Json:
        return self.trials(key, "set_site_investigators", {
            "investigators": [{"key": k, "role": r} for k, r in investigators], "org": org, "trial": trial})

    def consent(self, study: SigningKey, trial: str, protocol_version: int, consent_form_hash: str) -> Json:
        """Consent (or re-consent) to the current protocol version, signed with the study key."""
        return self.trials(study, "consent", {"consent_form_hash": consent_form_hash,
                                              "protocol_version": protocol_version, "trial": trial})

    def withdraw_consent(self, study: SigningKey, trial: str) -> Json:
        return self.trials(study, "withdraw_consent", {"trial": trial})

    def enrol(self, key: SigningKey, trial: str, site: str, subject: str,
              allocation: RevealedAllocation | None = None) -> Json:
        """Enrol a consented subject at ``site``, revealing the next allocation of a randomised trial."""
        payload: Json = {"site": site, "subject": subject, "trial": trial}
        if allocation is not None:
            payload["allocation"] = allocation.to_json()
        return self.trials(key, "enrol", payload)

    def record_visits(self, key: SigningKey, trial: str, site: str, visits: Sequence[Doc], wait: bool = True) -> Json:
        """Anchor visits (each ``{subject, visit, version?, resources: [{type, commitment}], reason?}``, or
        the contract's ``VisitEntry``): one leaf of the trial's anchor tree each. The data stay in the vault."""
        return self.trials(key, "record_visits", {"site": site, "trial": trial, "visits": [_doc(v) for v in visits]},
                           wait=wait)

    def lock(self, key: SigningKey, trial: str, root: str | None = None) -> Json:
        """Lock the database; ``root``, when given, must be the ledger's anchor root (checked)."""
        payload: Json = {"trial": trial}
        if root is not None:
            payload["root"] = root
        return self.trials(key, "lock", payload)

    def unblind(self, key: SigningKey, trial: str, allocations: Sequence[tuple[str, str, bytes]]) -> Json:
        """Reveal (subject, arm, salt) of a masked trial's subjects after lock (see :meth:`unblinding`)."""
        return self.trials(key, "unblind", {"allocations": [{"arm": a, "salt": s.hex(), "subject": sub}
                                                            for sub, a, s in allocations], "trial": trial})

    def report_adverse_event(self, key: SigningKey, trial: str, site: str, subject: str, event: str,
                             seriousness: Sequence[str], expectedness: Literal["expected", "unexpected"],
                             causality: Literal["related", "not_related"]) -> Json:
        """Record an adverse event: ``event`` is the salted commitment of its FHIR AdverseEvent in the vault."""
        return self.trials(key, "report_adverse_event", {
            "causality": causality, "event": event, "expectedness": expectedness, "seriousness": list(seriousness),
            "site": site, "subject": subject, "trial": trial})

    def submit_safety_report(self, key: SigningKey, trial: str, event: str, stage: Literal["initial", "complete"],
                             report: str) -> Json:
        """Record an expedited report's hash (it is marked late when committed after its deadline)."""
        return self.trials(key, "submit_safety_report", {"event": event, "report": report, "stage": stage,
                                                         "trial": trial})

    def submit_results(self, key: SigningKey, trial: str, outcomes: Sequence[Doc], summary: Doc, dataset_hash: str,
                       omitted: Sequence[Doc] = ()) -> Json:
        """Submit summary results; the receipt's result lists the outcome-switching flags."""
        return self.trials(key, "submit_results", {
            "dataset_hash": dataset_hash, "omitted": [_doc(o) for o in omitted],
            "outcomes": [_doc(o) for o in outcomes], "summary": _doc(summary), "trial": trial})

    # -- reads ----------------------------------------------------------------------------------------------
    def trial_list(self) -> Json:
        """Every registered trial (sponsor, title, recruitment, enrolment, lock, results)."""
        return self.request("GET", "/v1/trials")

    def registration(self, trial: str) -> Json:
        return self.request("GET", f"/v1/trials/{_seg(trial)}")

    def registrations(self, trial: str) -> Json:
        return self.request("GET", f"/v1/trials/{_seg(trial)}/registrations")

    def research_study(self, trial: str) -> Json:
        """The registration as a FHIR R4 ResearchStudy."""
        return self.request("GET", f"/v1/trials/{_seg(trial)}/research-study")

    def protocols(self, trial: str) -> Json:
        return self.request("GET", f"/v1/trials/{_seg(trial)}/protocols")

    def sites(self, trial: str) -> Json:
        return self.request("GET", f"/v1/trials/{_seg(trial)}/sites")

    def anchors(self, trial: str) -> Json:
        return self.request("GET", f"/v1/trials/{_seg(trial)}/anchors")

    def anchor_proof(self, trial: str, subject: str, visit: str, version: int | None = None,
                     size: int | None = None) -> Json:
        """A visit's inclusion proof (check it with :func:`careledger.trials.anchor_index.check_anchor_proof`
        or ``careledger trials proof``)."""
        params = {k: v for k, v in (("version", version), ("size", size)) if v is not None}
        return self.request("GET", f"/v1/trials/{_seg(trial)}/anchors/{_seg(subject)}/{_seg(visit)}", params=params)

    def reconsent(self, trial: str) -> Json:
        return self.request("GET", f"/v1/trials/{_seg(trial)}/reconsent")

    def safety(self, trial: str, as_of_ms: int | None = None) -> Json:
        params = {} if as_of_ms is None else {"as_of_ms": as_of_ms}
        return self.request("GET", f"/v1/trials/{_seg(trial)}/safety", params=params)

    def overdue(self, as_of_ms: int | None = None) -> Json:
        """Every trial's SUSARs with a report overdue (at the latest block's time, or ``as_of_ms``)."""
        params = {} if as_of_ms is None else {"as_of_ms": as_of_ms}
        return self.request("GET", "/v1/trials/safety/overdue", params=params)

    def results(self, trial: str) -> Json:
        return self.request("GET", f"/v1/trials/{_seg(trial)}/results")

    def subject(self, trial: str, subject: str) -> Json:
        return self.request("GET", f"/v1/trials/{_seg(trial)}/subjects/{_seg(subject)}")

    def consent_fhir(self, trial: str, subject: str) -> Json:
        """The subject's consent as a FHIR R4 Consent."""
        return self.request("GET", f"/v1/trials/{_seg(trial)}/subjects/{_seg(subject)}/consent")

    # -- the patient's and the sponsor's helpers -----------------------------------------------------------
    def linkage_statement(self, patient: SigningKey, trial: str, site: str, issued_ms: int | None = None) -> Json:
        """The patient's statement, for ``site`` only, that the trial's subject ``subject_of(patient, trial)``
        is her (signed with her key and her study key; handed to the site off the ledger)."""
        return make_linkage_statement(patient, self.chain_id(), "study", trial, site,
                                      int(time.time() * 1000) if issued_ms is None else issued_ms)

    def next_allocation(self, trial: str, stratum: str, schedule: AllocationSource) -> RevealedAllocation:
        """The sponsor's reveal of ``stratum``'s next slot as the ledger counts it (sealed for a masked trial):
        what the site's enrolment carries."""
        status = self.registration(trial)["status"]
        slot = next((n for s, n in status["next_slot"] if s == stratum), 0)
        return schedule.reveal(stratum, slot, sealed=bool(status["masked"]))

    def unblinding(self, trial: str, subjects: Sequence[str], schedule: AllocationSource
                   ) -> list[tuple[str, str, bytes]]:
        """(subject, arm, salt) of each enrolled subject's slot, from the schedule: the ``unblind`` argument."""
        out = []
        for subject in subjects:
            enrolment = self.subject(trial, subject)["enrolment"]
            if enrolment is None or enrolment["stratum"] is None:
                raise ValueError(f"{subject} is not enrolled with an allocation in {trial}")
            a = schedule.allocation(enrolment["stratum"], enrolment["slot"])
            out.append((subject, a.arm, a.salt))
        return out
