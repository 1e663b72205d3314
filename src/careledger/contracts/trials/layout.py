"""The trials contract's state: keys, records (one explicit JSON form each) and typed accessors.

State (keys are ``trials/...``; every value is canonical JSON)::

    trials/trial/<trial>                        TrialRecord: the current registration (full WHO data set),
                                                sponsor, registration time, randomisation commitment
    trials/registration/<trial>/<v:06d>         RegistrationVersion: every registration version, kept
    trials/status/<trial>                       TrialStatus: the small record enrolments and visits read
                                                (recruitment, protocol and re-consent versions, counters,
                                                next allocation slot per stratum, lock)
    trials/protocol/<trial>/<v:04d>             ProtocolVersion: document and consent-form hashes, reason
    trials/site/<trial>/<org>                   SiteRecord: ethics approval, investigators, status
    trials/consent/<trial>/<subject>            TrialConsent: the subject's consent to a protocol version
    trials/subject/<trial>/<subject>            SubjectRecord: enrolment, stratum, slot, sealed allocation
    trials/visit/<trial>/<subject>/<visit>      VisitRecord: each version's anchor (leaf index, commitments)
    trials/tree/<trial>                         TreeRecord: the anchor tree's frontier (O(log n))
    trials/ae/<trial>/<event>                   AdverseEventRecord: classification, E2A deadlines, reports
    trials/results/<trial>                      ResultsRecord: summary results and outcome-switching flags

A trial is also a study of the research registry (``research/study/<trial>``, kind ``trial``, written
through :func:`careledger.contracts.research.put_study` at each registration version). Subjects
appear only under the registry's study pseudonyms, ``sp-`` + hex of the first 16 bytes of SHA-256 of
the subject's *study key*
(:func:`careledger.contracts.research.study_keys.compute_study_pseudonym`), a key the patient
derives for this trial alone and never registers, so nothing on the ledger links a subject to the
patient's other pseudonyms. No other module spells a key string.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from careledger.core import codec
from careledger.core.state import Overlay, StateReader

Reader = StateReader | Overlay


# --- keys -------------------------------------------------------------------------------------------

def trial_key(trial: str) -> str:
    return f"trials/trial/{trial}"


def registration_prefix(trial: str) -> str:
    return f"trials/registration/{trial}/"


def registration_key(trial: str, version: int) -> str:
    return f"trials/registration/{trial}/{version:06d}"


def status_prefix() -> str:
    return "trials/status/"


def status_key(trial: str) -> str:
    return f"trials/status/{trial}"


def protocol_prefix(trial: str) -> str:
    return f"trials/protocol/{trial}/"


def protocol_key(trial: str, version: int) -> str:
    return f"trials/protocol/{trial}/{version:04d}"


def site_prefix(trial: str) -> str:
    return f"trials/site/{trial}/"


def site_key(trial: str, org: str) -> str:
    return f"trials/site/{trial}/{org}"


def consent_prefix(trial: str) -> str:
    return f"trials/consent/{trial}/"


def consent_key(trial: str, subject: str) -> str:
    return f"trials/consent/{trial}/{subject}"


def subject_prefix(trial: str) -> str:
    return f"trials/subject/{trial}/"


def subject_key(trial: str, subject: str) -> str:
    return f"trials/subject/{trial}/{subject}"


def visit_prefix(trial: str) -> str:
    return f"trials/visit/{trial}/"


def visit_key(trial: str, subject: str, visit: str) -> str:
    return f"trials/visit/{trial}/{subject}/{visit}"


def tree_key(trial: str) -> str:
    return f"trials/tree/{trial}"


def ae_prefix(trial: str | None = None) -> str:
    return "trials/ae/" if trial is None else f"trials/ae/{trial}/"


def ae_key(trial: str, event: str) -> str:
    return f"trials/ae/{trial}/{event}"


def results_key(trial: str) -> str:
    return f"trials/results/{trial}"


# --- records ----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TrialRecord:
    """The trial's registration as it stands: the full WHO data set of the current version."""

    id: str
    sponsor: str
    registered_by: str
    registered_height: int
    registered_ms: int
    version: int
    updated_height: int
    updated_ms: int
    dataset: dict[str, Any]
    randomisation: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "id": self.id, "randomisation": self.randomisation,
                "registered_by": self.registered_by, "registered_height": self.registered_height,
                "registered_ms": self.registered_ms, "sponsor": self.sponsor, "updated_height": self.updated_height,
                "updated_ms": self.updated_ms, "version": self.version}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TrialRecord:
        return cls(d["id"], d["sponsor"], d["registered_by"], d["registered_height"], d["registered_ms"],
                   d["version"], d["updated_height"], d["updated_ms"], d["dataset"], d["randomisation"])


@dataclass(frozen=True, slots=True)
class RegistrationVersion:
    version: int
    dataset: dict[str, Any]
    height: int
    time_ms: int
    by: str
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        return {"by": self.by, "dataset": self.dataset, "height": self.height, "reason": self.reason,
                "time_ms": self.time_ms, "version": self.version}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RegistrationVersion:
        return cls(d["version"], d["dataset"], d["height"], d["time_ms"], d["by"], d["reason"])


@dataclass(frozen=True, slots=True)
class LockRecord:
    root: str
    size: int
    height: int
    time_ms: int

    def to_json(self) -> dict[str, Any]:
        return {"height": self.height, "root": self.root, "size": self.size, "time_ms": self.time_ms}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LockRecord:
        return cls(d["root"], d["size"], d["height"], d["time_ms"])


@dataclass(frozen=True, slots=True)
class TrialStatus:
    """What enrolments and visits check, kept apart from the (large) registration."""

    trial: str
    sponsor: str
    recruitment: str
    target: int
    randomised: bool
    masked: bool
    protocol_version: int
    reconsent_version: int
    enrolled: int
    next_slot: tuple[tuple[str, int], ...]
    first_enrolment_height: int | None
    first_enrolment_ms: int | None
    lock: LockRecord | None
    results_height: int | None

    def slot(self, stratum: str) -> int:
        for name, n in self.next_slot:
            if name == stratum:
                return n
        return 0

    def with_slot(self, stratum: str, n: int) -> tuple[tuple[str, int], ...]:
        rest = [(s, k) for s, k in self.next_slot if s != stratum]
        return tuple(sorted([*rest, (stratum, n)]))

    def to_json(self) -> dict[str, Any]:
        return {"enrolled": self.enrolled, "first_enrolment_height": self.first_enrolment_height,
                "first_enrolment_ms": self.first_enrolment_ms,
                "lock": None if self.lock is None else self.lock.to_json(),
                "masked": self.masked, "next_slot": [[s, n] for s, n in self.next_slot],
                "protocol_version": self.protocol_version, "randomised": self.randomised,
                "reconsent_version": self.reconsent_version, "recruitment": self.recruitment,
                "results_height": self.results_height, "sponsor": self.sponsor, "target": self.target,
                "trial": self.trial}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TrialStatus:
        return cls(d["trial"], d["sponsor"], d["recruitment"], d["target"], d["randomised"], d["masked"],
                   d["protocol_version"], d["reconsent_version"], d["enrolled"],
                   tuple((s, n) for s, n in d["next_slot"]), d["first_enrolment_height"], d["first_enrolment_ms"],
                   None if d["lock"] is None else LockRecord.from_json(d["lock"]), d["results_height"])


@dataclass(frozen=True, slots=True)
class ProtocolVersion:
    version: int
    document_hash: str
    consent_form_hash: str
    reason: str | None
    reconsent_required: bool
    height: int
    time_ms: int
    by: str

    def to_json(self) -> dict[str, Any]:
        return {"by": self.by, "consent_form_hash": self.consent_form_hash, "document_hash": self.document_hash,
                "height": self.height, "reason": self.reason, "reconsent_required": self.reconsent_required,
                "time_ms": self.time_ms, "version": self.version}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ProtocolVersion:
        return cls(d["version"], d["document_hash"], d["consent_form_hash"], d["reason"], d["reconsent_required"],
                   d["height"], d["time_ms"], d["by"])


@dataclass(frozen=True, slots=True)
class SiteRecord:
    """A trial site: a member organisation with its ethics approval and investigators (key, role)."""

    org: str
    status: str  # active | suspended | closed
    ethics: dict[str, Any]
    investigators: tuple[tuple[str, str], ...]
    height: int
    time_ms: int

    def is_investigator(self, key: str) -> bool:
        return any(k == key for k, _ in self.investigators)

    def to_json(self) -> dict[str, Any]:
        return {"ethics": self.ethics, "height": self.height,
                "investigators": [[k, r] for k, r in self.investigators], "org": self.org, "status": self.status,
                "time_ms": self.time_ms}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SiteRecord:
        return cls(d["org"], d["status"], d["ethics"], tuple((k, r) for k, r in d["investigators"]), d["height"],
                   d["time_ms"])


@dataclass(frozen=True, slots=True)
class TrialConsent:
    """The subject's consent, signed with the study key, to one protocol version (and the history)."""

    subject: str
    key: str
    version: int
    consent_form_hash: str
    status: str  # active | withdrawn
    height: int
    time_ms: int
    history: tuple[tuple[int, int], ...]  # (protocol version, height) of every consent given

    def to_json(self) -> dict[str, Any]:
        return {"consent_form_hash": self.consent_form_hash, "height": self.height,
                "history": [[v, h] for v, h in self.history], "key": self.key, "status": self.status,
                "subject": self.subject, "time_ms": self.time_ms, "version": self.version}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TrialConsent:
        return cls(d["subject"], d["key"], d["version"], d["consent_form_hash"], d["status"], d["height"],
                   d["time_ms"], tuple((v, h) for v, h in d["history"]))


@dataclass(frozen=True, slots=True)
class SubjectRecord:
    """An enrolment. ``sealed`` is the allocation's leaf hash; ``arm`` is known when open or unblinded."""

    subject: str
    site: str
    stratum: str | None
    slot: int | None
    sealed: str | None
    arm: str | None
    consent_version: int
    height: int
    time_ms: int

    def to_json(self) -> dict[str, Any]:
        return {"arm": self.arm, "consent_version": self.consent_version, "height": self.height,
                "sealed": self.sealed, "site": self.site, "slot": self.slot, "stratum": self.stratum,
                "subject": self.subject, "time_ms": self.time_ms}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SubjectRecord:
        return cls(d["subject"], d["site"], d["stratum"], d["slot"], d["sealed"], d["arm"], d["consent_version"],
                   d["height"], d["time_ms"])


@dataclass(frozen=True, slots=True)
class VisitVersion:
    """One anchored version of a visit's data: its leaf in the trial's anchor tree and what it commits to."""

    version: int
    leaf: int
    site: str
    protocol_version: int
    resources: tuple[tuple[str, str], ...]  # (FHIR resource type, salted commitment) in the site's vault
    height: int
    time_ms: int
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        """``reason`` (a correction's) is present only when given: the record stays free of nulls, which keeps
        the hot path's canonical encoding on its fast path."""
        doc = {"height": self.height, "leaf": self.leaf, "protocol_version": self.protocol_version,
               "resources": [[t, c] for t, c in self.resources], "site": self.site, "time_ms": self.time_ms,
               "version": self.version}
        if self.reason is not None:
            doc["reason"] = self.reason
        return doc

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> VisitVersion:
        return cls(d["version"], d["leaf"], d["site"], d["protocol_version"],
                   tuple((t, c) for t, c in d["resources"]), d["height"], d["time_ms"], d.get("reason"))


@dataclass(frozen=True, slots=True)
class VisitRecord:
    versions: tuple[VisitVersion, ...]

    @property
    def head(self) -> VisitVersion:
        return self.versions[-1]

    def to_json(self) -> dict[str, Any]:
        return {"versions": [v.to_json() for v in self.versions]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> VisitRecord:
        return cls(tuple(VisitVersion.from_json(v) for v in d["versions"]))


def visit_leaf_data(trial: str, subject: str, visit: str, v: VisitVersion) -> bytes:
    """The bytes of a visit version's leaf in the anchor tree (what inclusion proofs cover).

    Everything in it can be rebuilt by the site from its vault (the resources' commitments) and by
    anyone from the visit record, so a changed datum changes the leaf and no longer reaches the root.
    """
    return codec.encode({"protocol_version": v.protocol_version, "resources": [[t, c] for t, c in v.resources],
                         "site": v.site, "subject": subject, "trial": trial, "version": v.version, "visit": visit})


@dataclass(frozen=True, slots=True)
class TreeRecord:
    size: int
    frontier: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        return {"frontier": [h.hex() for h in self.frontier], "size": self.size}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TreeRecord:
        return cls(d["size"], tuple(bytes.fromhex(h) for h in d["frontier"]))


@dataclass(frozen=True, slots=True)
class ReportSubmission:
    report: str
    by: str
    height: int
    time_ms: int
    late: bool

    def to_json(self) -> dict[str, Any]:
        return {"by": self.by, "height": self.height, "late": self.late, "report": self.report,
                "time_ms": self.time_ms}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ReportSubmission:
        return cls(d["report"], d["by"], d["height"], d["time_ms"], d["late"])


@dataclass(frozen=True, slots=True)
class AdverseEventRecord:
    """An adverse event as the site recorded it, its E2A classification and deadlines, and the reports."""

    id: str
    subject: str
    site: str
    event: str  # salted commitment of the FHIR AdverseEvent in the site's vault
    criteria: tuple[str, ...]
    expected: bool
    related: bool
    category: str
    susar: bool
    day0_ms: int
    height: int
    initial_due_ms: int | None
    complete_due_ms: int | None
    initial: ReportSubmission | None
    complete: ReportSubmission | None

    def to_json(self) -> dict[str, Any]:
        return {"category": self.category, "complete": None if self.complete is None else self.complete.to_json(),
                "complete_due_ms": self.complete_due_ms, "criteria": list(self.criteria), "day0_ms": self.day0_ms,
                "event": self.event, "expected": self.expected, "height": self.height, "id": self.id,
                "initial": None if self.initial is None else self.initial.to_json(),
                "initial_due_ms": self.initial_due_ms, "related": self.related, "site": self.site,
                "subject": self.subject, "susar": self.susar}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> AdverseEventRecord:
        return cls(d["id"], d["subject"], d["site"], d["event"], tuple(d["criteria"]), d["expected"], d["related"],
                   d["category"], d["susar"], d["day0_ms"], d["height"], d["initial_due_ms"], d["complete_due_ms"],
                   None if d["initial"] is None else ReportSubmission.from_json(d["initial"]),
                   None if d["complete"] is None else ReportSubmission.from_json(d["complete"]))


@dataclass(frozen=True, slots=True)
class ResultsRecord:
    """Summary results against the registered outcomes, and the outcome-switching flags (public)."""

    height: int
    time_ms: int
    by: str
    baseline_version: int
    baseline_height: int | None
    primary_completion: str
    outcomes: tuple[dict[str, Any], ...]
    omitted: tuple[dict[str, Any], ...]
    dataset_hash: str
    summary: dict[str, Any]
    flags: tuple[dict[str, Any], ...]

    def to_json(self) -> dict[str, Any]:
        return {"baseline_height": self.baseline_height, "baseline_version": self.baseline_version, "by": self.by,
                "dataset_hash": self.dataset_hash, "flags": list(self.flags), "height": self.height,
                "omitted": list(self.omitted), "outcomes": list(self.outcomes),
                "primary_completion": self.primary_completion, "summary": self.summary, "time_ms": self.time_ms}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ResultsRecord:
        return cls(d["height"], d["time_ms"], d["by"], d["baseline_version"], d["baseline_height"],
                   d["primary_completion"], tuple(d["outcomes"]), tuple(d["omitted"]), d["dataset_hash"],
                   d["summary"], tuple(d["flags"]))


# --- accessors --------------------------------------------------------------------------------------

def _get(state: Reader, key: str) -> Any:
    raw = state.get_raw(key)
    return None if raw is None else codec.decode_trusted(raw)


def get_trial(state: Reader, trial: str) -> TrialRecord | None:
    d = _get(state, trial_key(trial))
    return None if d is None else TrialRecord.from_json(d)


def put_trial(state: Overlay, rec: TrialRecord) -> None:
    state.put(trial_key(rec.id), rec.to_json())


def get_registration(state: Reader, trial: str, version: int) -> RegistrationVersion | None:
    d = _get(state, registration_key(trial, version))
    return None if d is None else RegistrationVersion.from_json(d)


def put_registration(state: Overlay, trial: str, rec: RegistrationVersion) -> None:
    state.put(registration_key(trial, rec.version), rec.to_json())


def iter_registrations(state: Reader, trial: str) -> Iterator[RegistrationVersion]:
    """Every registration version of the trial, oldest first."""
    for _, raw in state.scan_raw(registration_prefix(trial)):
        yield RegistrationVersion.from_json(codec.decode_trusted(raw))


@lru_cache(maxsize=4096)
def _status_of(raw: bytes) -> TrialStatus:
    return TrialStatus.from_json(codec.decode_trusted(raw))


def get_status(state: Reader, trial: str) -> TrialStatus | None:
    """The trial's status record. Every enrolment and visit reads it (twice: authorize and apply), and it
    seldom changes, so its parse is memoised by its bytes (the record is immutable: safe to share)."""
    raw = state.get_raw(status_key(trial))
    return None if raw is None else _status_of(raw)


def iter_statuses(state: Reader) -> Iterator[TrialStatus]:
    """Every registered trial's status record, in trial id order."""
    for _, raw in state.scan_raw(status_prefix()):
        yield _status_of(raw)


def put_status(state: Overlay, rec: TrialStatus) -> None:
    state.put(status_key(rec.trial), rec.to_json())


def get_protocol(state: Reader, trial: str, version: int) -> ProtocolVersion | None:
    d = _get(state, protocol_key(trial, version))
    return None if d is None else ProtocolVersion.from_json(d)


def put_protocol(state: Overlay, trial: str, rec: ProtocolVersion) -> None:
    state.put(protocol_key(trial, rec.version), rec.to_json())


def iter_protocols(state: Reader, trial: str) -> Iterator[ProtocolVersion]:
    for _, raw in state.scan_raw(protocol_prefix(trial)):
        yield ProtocolVersion.from_json(codec.decode_trusted(raw))


@lru_cache(maxsize=4096)
def _site_of(raw: bytes) -> SiteRecord:
    return SiteRecord.from_json(codec.decode_trusted(raw))


def get_site(state: Reader, trial: str, org: str) -> SiteRecord | None:
    """The site record, memoised by its bytes like :func:`get_status` (shared: never mutate ``ethics``)."""
    raw = state.get_raw(site_key(trial, org))
    return None if raw is None else _site_of(raw)


def put_site(state: Overlay, trial: str, rec: SiteRecord) -> None:
    state.put(site_key(trial, rec.org), rec.to_json())


def iter_sites(state: Reader, trial: str) -> Iterator[SiteRecord]:
    for _, raw in state.scan_raw(site_prefix(trial)):
        yield SiteRecord.from_json(codec.decode_trusted(raw))


def get_consent(state: Reader, trial: str, subject: str) -> TrialConsent | None:
    d = _get(state, consent_key(trial, subject))
    return None if d is None else TrialConsent.from_json(d)


def put_consent(state: Overlay, trial: str, rec: TrialConsent) -> None:
    state.put(consent_key(trial, rec.subject), rec.to_json())


def get_subject(state: Reader, trial: str, subject: str) -> SubjectRecord | None:
    d = _get(state, subject_key(trial, subject))
    return None if d is None else SubjectRecord.from_json(d)


def put_subject(state: Overlay, trial: str, rec: SubjectRecord) -> None:
    state.put(subject_key(trial, rec.subject), rec.to_json())


def iter_subjects(state: Reader, trial: str) -> Iterator[SubjectRecord]:
    for _, raw in state.scan_raw(subject_prefix(trial)):
        yield SubjectRecord.from_json(codec.decode_trusted(raw))


def get_visit(state: Reader, trial: str, subject: str, visit: str) -> VisitRecord | None:
    d = _get(state, visit_key(trial, subject, visit))
    return None if d is None else VisitRecord.from_json(d)


def put_visit(state: Overlay, trial: str, subject: str, visit: str, rec: VisitRecord) -> None:
    state.put(visit_key(trial, subject, visit), rec.to_json())


def iter_visits(state: Reader, trial: str) -> Iterator[tuple[str, str, VisitRecord]]:
    """Every visit of the trial as (subject, visit id, record), in key order."""
    prefix = visit_prefix(trial)
    for key, raw in state.scan_raw(prefix):
        subject, visit = key[len(prefix):].split("/", 1)
        yield subject, visit, VisitRecord.from_json(codec.decode_trusted(raw))


def get_tree(state: Reader, trial: str) -> TreeRecord:
    d = _get(state, tree_key(trial))
    return TreeRecord(0, ()) if d is None else TreeRecord.from_json(d)


def put_tree(state: Overlay, trial: str, rec: TreeRecord) -> None:
    state.put(tree_key(trial), rec.to_json())


def get_adverse_event(state: Reader, trial: str, event: str) -> AdverseEventRecord | None:
    d = _get(state, ae_key(trial, event))
    return None if d is None else AdverseEventRecord.from_json(d)


def put_adverse_event(state: Overlay, trial: str, rec: AdverseEventRecord) -> None:
    state.put(ae_key(trial, rec.id), rec.to_json())


def iter_adverse_events(state: Reader, trial: str | None = None) -> Iterator[tuple[str, AdverseEventRecord]]:
    """Adverse events as (trial, record): of one trial, or of every trial."""
    prefix = ae_prefix(trial)
    for key, raw in state.scan_raw(prefix):
        yield key[len("trials/ae/"):].split("/", 1)[0], AdverseEventRecord.from_json(codec.decode_trusted(raw))


def get_results(state: Reader, trial: str) -> ResultsRecord | None:
    d = _get(state, results_key(trial))
    return None if d is None else ResultsRecord.from_json(d)


def put_results(state: Overlay, trial: str, rec: ResultsRecord) -> None:
    state.put(results_key(trial), rec.to_json())
