"""The research contract's state layout: study registry, research consent, releases, queries (pure).

State keys (values are canonical JSON; every key is built by one function below)::

    research/study/<study>                         StudyRecord (the current version)
    research/study-version/<study>/<version:06d>   StudyRecord (every version, for history)
    research/consent/<subject>/<consent>           ResearchConsentRecord   (subject = study pseudonym)
    research/consent-id/<consent>                  {"subject"}             (lookup for revocation)
    research/release/<release>                     ReleaseRecord
    research/release-subject/<release>/<subject>   {"consent", "height"}   (the consent snapshot: which
                                                   consent was relied on, checked at which height)
    research/seen/<subject>/<height:012d>-<release>  SeenEntry             (the patient's release log)
    research/study-release/<study>/<release>       {"custodian", "height"} (a study's releases)
    research/query/<query>                         QueryRecord
    research/answer/<query>/<custodian>            AnswerRecord

A *study* is one registry shared with clinical trials: ``kind`` is ``data`` for a data-sharing
study and ``trial`` for a trial, whose registration (the WHO Trial Registration Data Set) rides in
the optional ``registration`` slot. Another contract creates or updates a study with
:func:`put_study`.

A *study pseudonym* (``sp-`` + hex of the first 16 bytes of SHA-256 of the study public key) is the
only name a patient has in this contract: she derives the study key from her own seed (see
:mod:`.study_keys`, the scheme trials share), so no member can link it to her other pseudonyms.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from careledger.core import codec
from careledger.core.codec import decode_trusted
from careledger.core.state import Overlay, StateReader

KINDS = ("data", "trial")
PURPOSES = ("HRESCH", "CLINTRCH")
QUASI_IDENTIFIERS = ("birth_year", "sex", "zip3")
MIN_K = 5
"""No release is ever anchored with a smaller achieved k, whatever the study asks."""
RELEASABLE_TYPES = ("AllergyIntolerance", "CarePlan", "Condition", "DiagnosticReport", "Encounter", "Immunization",
                    "MedicationRequest", "Observation", "Patient", "Procedure")
"""Resource types a study may request: the patient's clinical record, not billing or directory data."""


# --- keys -----------------------------------------------------------------------------------------------

def study_key(study: str) -> str:
    return f"research/study/{study}"


def studies_prefix() -> str:
    """The prefix of every current study record."""
    return "research/study/"


def study_version_key(study: str, version: int) -> str:
    return f"research/study-version/{study}/{version:06d}"


def study_version_prefix(study: str) -> str:
    return f"research/study-version/{study}/"


def consents_prefix() -> str:
    """The prefix of every research consent, whoever gave it."""
    return "research/consent/"


def consent_prefix(subject: str) -> str:
    return f"research/consent/{subject}/"


def consent_key(subject: str, consent: str) -> str:
    return f"research/consent/{subject}/{consent}"


def consent_id_key(consent: str) -> str:
    return f"research/consent-id/{consent}"


def release_key(release: str) -> str:
    return f"research/release/{release}"


def release_subject_prefix(release: str) -> str:
    return f"research/release-subject/{release}/"


def release_subject_key(release: str, subject: str) -> str:
    return f"research/release-subject/{release}/{subject}"


def seen_prefix(subject: str) -> str:
    return f"research/seen/{subject}/"


def seen_key(subject: str, height: int, release: str) -> str:
    return f"research/seen/{subject}/{height:012d}-{release}"


def study_release_prefix(study: str) -> str:
    return f"research/study-release/{study}/"


def study_release_key(study: str, release: str) -> str:
    return f"research/study-release/{study}/{release}"


def query_key(query: str) -> str:
    return f"research/query/{query}"


def answer_prefix(query: str) -> str:
    return f"research/answer/{query}/"


def answer_key(query: str, custodian: str) -> str:
    return f"research/answer/{query}/{custodian}"


# --- records --------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Cohort:
    """Who a study wants: any of ``conditions_any`` (``system|code``), of these sexes, born in a range.
    Empty criteria select everyone who consented."""

    conditions_any: tuple[str, ...] = ()
    sex: tuple[str, ...] = ()
    birth_year_min: int | None = None
    birth_year_max: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"birth_year_max": self.birth_year_max, "birth_year_min": self.birth_year_min,
                "conditions_any": sorted(self.conditions_any), "sex": sorted(self.sex)}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Cohort:
        return cls(tuple(doc["conditions_any"]), tuple(doc["sex"]), doc["birth_year_min"], doc["birth_year_max"])


@dataclass(frozen=True, slots=True)
class Anonymity:
    """The study's privacy requirements: k over ``quasi_identifiers`` (never below :data:`MIN_K`),
    optionally distinct l-diversity on the codes of ``sensitive_type`` (restricted to
    ``sensitive_codes`` when given), and the share of patients that may be suppressed (basis points)."""

    quasi_identifiers: tuple[str, ...] = QUASI_IDENTIFIERS
    k: int = MIN_K
    l: int | None = None  # noqa: E741 (the letter of the literature)
    sensitive_type: str | None = None
    sensitive_codes: tuple[str, ...] = ()
    max_suppression_bp: int = 500

    def to_json(self) -> dict[str, Any]:
        return {"k": self.k, "l": self.l, "max_suppression_bp": self.max_suppression_bp,
                "quasi_identifiers": list(self.quasi_identifiers), "sensitive_codes": sorted(self.sensitive_codes),
                "sensitive_type": self.sensitive_type}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Anonymity:
        return cls(tuple(doc["quasi_identifiers"]), doc["k"], doc["l"], doc["sensitive_type"],
                   tuple(doc["sensitive_codes"]), doc["max_suppression_bp"])


@dataclass(frozen=True, slots=True)
class RequestedData:
    """What a study asks of each custodian: resource types, optionally only some of their top-level
    elements (``Condition.code``), and the cohort."""

    resource_types: tuple[str, ...]
    elements: tuple[str, ...] = ()
    cohort: Cohort = field(default_factory=Cohort)

    def to_json(self) -> dict[str, Any]:
        return {"cohort": self.cohort.to_json(), "elements": sorted(self.elements),
                "resource_types": sorted(self.resource_types)}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RequestedData:
        return cls(tuple(doc["resource_types"]), tuple(doc["elements"]), Cohort.from_json(doc["cohort"]))


@dataclass(frozen=True, slots=True)
class StudyRecord:
    """One version of a study in the registry (data-sharing study or clinical trial)."""

    id: str
    kind: str
    version: int
    status: str  # "active" | "closed"
    sponsor: str
    title: str
    category: str
    ethics_ref: str
    purpose: str
    period_start_ms: int
    period_end_ms: int | None
    request: RequestedData
    anonymity: Anonymity
    consent_version: int  # consents given for an earlier version no longer cover the study
    registered_by: str
    registered_height: int
    registered_ms: int
    updated_height: int
    updated_ms: int
    registration: dict[str, Any] | None = None  # a trial's registration payload (WHO data set), as given

    def to_json(self) -> dict[str, Any]:
        return {"anonymity": self.anonymity.to_json(), "category": self.category,
                "consent_version": self.consent_version, "ethics_ref": self.ethics_ref, "id": self.id,
                "kind": self.kind, "period_end_ms": self.period_end_ms, "period_start_ms": self.period_start_ms,
                "purpose": self.purpose, "registered_by": self.registered_by,
                "registered_height": self.registered_height, "registered_ms": self.registered_ms,
                "registration": self.registration, "request": self.request.to_json(), "sponsor": self.sponsor,
                "status": self.status, "title": self.title, "updated_height": self.updated_height,
                "updated_ms": self.updated_ms, "version": self.version}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> StudyRecord:
        return cls(id=doc["id"], kind=doc["kind"], version=doc["version"], status=doc["status"],
                   sponsor=doc["sponsor"], title=doc["title"], category=doc["category"],
                   ethics_ref=doc["ethics_ref"], purpose=doc["purpose"], period_start_ms=doc["period_start_ms"],
                   period_end_ms=doc["period_end_ms"], request=RequestedData.from_json(doc["request"]),
                   anonymity=Anonymity.from_json(doc["anonymity"]), consent_version=doc["consent_version"],
                   registered_by=doc["registered_by"], registered_height=doc["registered_height"],
                   registered_ms=doc["registered_ms"], updated_height=doc["updated_height"],
                   updated_ms=doc["updated_ms"], registration=doc["registration"])

    def is_open_at(self, time_ms: int) -> bool:
        """Active, started, and not past its end."""
        return (self.status == "active" and time_ms >= self.period_start_ms
                and (self.period_end_ms is None or time_ms < self.period_end_ms))


@dataclass(frozen=True, slots=True)
class ResearchConsentRecord:
    """A research consent given under a study pseudonym: to one study (``scope`` = ``study``, from
    the study version it names) or broad, to a category of research (``scope`` = ``category``)."""

    id: str
    subject: str
    scope: str  # "study" | "category"
    target: str  # study id or category code
    study_version: int | None
    resource_types: tuple[str, ...]  # empty: every type the study requests
    status: str  # "active" | "revoked"
    granted_height: int
    granted_ms: int
    revoked_height: int | None = None
    revoked_ms: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"granted_height": self.granted_height, "granted_ms": self.granted_ms, "id": self.id,
                "resource_types": sorted(self.resource_types), "revoked_height": self.revoked_height,
                "revoked_ms": self.revoked_ms, "scope": self.scope, "status": self.status,
                "study_version": self.study_version, "subject": self.subject, "target": self.target}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ResearchConsentRecord:
        return cls(doc["id"], doc["subject"], doc["scope"], doc["target"], doc["study_version"],
                   tuple(doc["resource_types"]), doc["status"], doc["granted_height"], doc["granted_ms"],
                   doc["revoked_height"], doc["revoked_ms"])


@dataclass(frozen=True, slots=True)
class ReleaseRecord:
    """An anchored de-identified release: who released what to whom, under which rules, with what result.

    ``dataset_root`` is the Merkle root of the released resources; ``snapshot_root`` the Merkle root
    of the (subject, consent) pairs relied on. While ``subjects_anchored < subjects`` the release is
    ``anchoring`` (its snapshot arrives in several transactions); then ``complete``.
    """

    id: str
    study: str
    study_version: int
    custodian: str
    recipient: str
    dataset_root: str
    records: int
    subjects: int
    subjects_anchored: int
    snapshot_root: str
    resource_types: tuple[str, ...]
    quasi_identifiers: tuple[str, ...]
    config_hash: str
    rule_version: str
    zip3_list: str
    zip3_vintage: int
    k_required: int
    k_achieved: int
    l_required: int | None
    l_achieved: int | None
    suppressed: int
    as_of_day: int
    status: str  # "anchoring" | "complete"
    height: int
    time_ms: int
    completed_height: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"as_of_day": self.as_of_day, "completed_height": self.completed_height,
                "config_hash": self.config_hash, "custodian": self.custodian, "dataset_root": self.dataset_root,
                "height": self.height, "id": self.id, "k_achieved": self.k_achieved, "k_required": self.k_required,
                "l_achieved": self.l_achieved, "l_required": self.l_required,
                "quasi_identifiers": list(self.quasi_identifiers), "recipient": self.recipient,
                "records": self.records, "resource_types": sorted(self.resource_types),
                "rule_version": self.rule_version, "snapshot_root": self.snapshot_root, "status": self.status,
                "study": self.study, "study_version": self.study_version, "subjects": self.subjects,
                "subjects_anchored": self.subjects_anchored, "suppressed": self.suppressed,
                "time_ms": self.time_ms, "zip3_list": self.zip3_list, "zip3_vintage": self.zip3_vintage}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ReleaseRecord:
        return cls(id=doc["id"], study=doc["study"], study_version=doc["study_version"], custodian=doc["custodian"],
                   recipient=doc["recipient"], dataset_root=doc["dataset_root"], records=doc["records"],
                   subjects=doc["subjects"], subjects_anchored=doc["subjects_anchored"],
                   snapshot_root=doc["snapshot_root"], resource_types=tuple(doc["resource_types"]),
                   quasi_identifiers=tuple(doc["quasi_identifiers"]), config_hash=doc["config_hash"],
                   rule_version=doc["rule_version"], zip3_list=doc["zip3_list"], zip3_vintage=doc["zip3_vintage"],
                   k_required=doc["k_required"], k_achieved=doc["k_achieved"], l_required=doc["l_required"],
                   l_achieved=doc["l_achieved"], suppressed=doc["suppressed"], as_of_day=doc["as_of_day"],
                   status=doc["status"], height=doc["height"], time_ms=doc["time_ms"],
                   completed_height=doc["completed_height"])


@dataclass(frozen=True, slots=True)
class SeenEntry:
    """One line of a patient's research log: de-identified data released to ``study`` at ``height``."""

    release: str
    study: str
    custodian: str
    height: int
    time_ms: int

    def to_json(self) -> dict[str, Any]:
        return {"custodian": self.custodian, "height": self.height, "release": self.release, "study": self.study,
                "time_ms": self.time_ms}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> SeenEntry:
        return cls(doc["release"], doc["study"], doc["custodian"], doc["height"], doc["time_ms"])


@dataclass(frozen=True, slots=True)
class QueryRecord:
    """An aggregate (count or sum) query a study put to every custodian; ``query`` is its canonical spec."""

    id: str
    study: str
    researcher: str
    query: dict[str, Any]
    query_hash: str
    height: int
    time_ms: int

    def to_json(self) -> dict[str, Any]:
        return {"height": self.height, "id": self.id, "query": self.query, "query_hash": self.query_hash,
                "researcher": self.researcher, "study": self.study, "time_ms": self.time_ms}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> QueryRecord:
        return cls(doc["id"], doc["study"], doc["researcher"], doc["query"], doc["query_hash"], doc["height"],
                   doc["time_ms"])


@dataclass(frozen=True, slots=True)
class AnswerRecord:
    """A custodian's answer to a query: the hash of the answer it delivered off-ledger, its cells,
    how many were suppressed as small, and how many consenting patients contributed."""

    query: str
    custodian: str
    answer_hash: str
    cells: int
    suppressed_cells: int
    contributors: int
    height: int
    time_ms: int

    def to_json(self) -> dict[str, Any]:
        return {"answer_hash": self.answer_hash, "cells": self.cells, "contributors": self.contributors,
                "custodian": self.custodian, "height": self.height, "query": self.query,
                "suppressed_cells": self.suppressed_cells, "time_ms": self.time_ms}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> AnswerRecord:
        return cls(doc["query"], doc["custodian"], doc["answer_hash"], doc["cells"], doc["suppressed_cells"],
                   doc["contributors"], doc["height"], doc["time_ms"])


# --- accessors ------------------------------------------------------------------------------------------

Reader = StateReader | Overlay


def _get(state: Reader, key: str) -> Any:
    raw = state.get_raw(key)
    return None if raw is None else decode_trusted(raw)


def get_study(state: Reader, study: str) -> StudyRecord | None:
    doc = _get(state, study_key(study))
    return None if doc is None else StudyRecord.from_json(doc)


def get_study_version(state: Reader, study: str, version: int) -> StudyRecord | None:
    doc = _get(state, study_version_key(study, version))
    return None if doc is None else StudyRecord.from_json(doc)


def put_study(state: Overlay, record: StudyRecord) -> None:
    """Write a study's current record and its version entry. The public way any contract (research
    or trials) creates or updates a study; the caller enforces its own rules first."""
    doc = record.to_json()
    state.put(study_key(record.id), doc)
    state.put(study_version_key(record.id, record.version), doc)


def list_studies(state: Reader) -> Iterator[StudyRecord]:
    """Every study of the registry (data-sharing studies and trials), current versions, in id order."""
    for _, raw in state.scan_raw(studies_prefix()):
        yield StudyRecord.from_json(decode_trusted(raw))


def study_versions(state: Reader, study: str) -> list[StudyRecord]:
    """Every version of ``study``, oldest first (empty for an unknown study)."""
    return [StudyRecord.from_json(decode_trusted(raw)) for _, raw in state.scan_raw(study_version_prefix(study))]


def get_consent(state: Reader, subject: str, consent: str) -> ResearchConsentRecord | None:
    doc = _get(state, consent_key(subject, consent))
    return None if doc is None else ResearchConsentRecord.from_json(doc)


def get_consent_by_id(state: Reader, consent: str) -> ResearchConsentRecord | None:
    ptr = _get(state, consent_id_key(consent))
    return None if ptr is None else get_consent(state, ptr["subject"], consent)


def put_consent(state: Overlay, record: ResearchConsentRecord) -> None:
    state.put(consent_key(record.subject, record.id), record.to_json())
    state.put(consent_id_key(record.id), {"subject": record.subject})


def consents_of(state: Reader, subject: str) -> Iterator[ResearchConsentRecord]:
    """Every research consent given under ``subject``, in id order."""
    for _, raw in state.scan_raw(consent_prefix(subject)):
        yield ResearchConsentRecord.from_json(decode_trusted(raw))


def all_consents(state: Reader) -> Iterator[ResearchConsentRecord]:
    """Every research consent on the ledger, by study pseudonym then id (a full scan: for registry
    views such as a study's subjects, never on a transaction's path)."""
    for _, raw in state.scan_raw(consents_prefix()):
        yield ResearchConsentRecord.from_json(decode_trusted(raw))


def get_release(state: Reader, release: str) -> ReleaseRecord | None:
    doc = _get(state, release_key(release))
    return None if doc is None else ReleaseRecord.from_json(doc)


def put_release(state: Overlay, record: ReleaseRecord) -> None:
    state.put(release_key(record.id), record.to_json())


def release_subjects(state: Reader, release: str) -> Iterator[tuple[str, str]]:
    """The consent snapshot of a release: ``(subject, consent)`` in subject order."""
    prefix = release_subject_prefix(release)
    for key, raw in state.scan_raw(prefix):
        yield key[len(prefix):], decode_trusted(raw)["consent"]


def seen_by(state: Reader, subject: str) -> list[SeenEntry]:
    """The releases that included ``subject``, oldest first."""
    return [SeenEntry.from_json(decode_trusted(raw)) for _, raw in state.scan_raw(seen_prefix(subject))]


def releases_of_study(state: Reader, study: str) -> list[str]:
    prefix = study_release_prefix(study)
    return [key[len(prefix):] for key, _ in state.scan_raw(prefix)]


def get_query(state: Reader, query: str) -> QueryRecord | None:
    doc = _get(state, query_key(query))
    return None if doc is None else QueryRecord.from_json(doc)


def get_answer(state: Reader, query: str, custodian: str) -> AnswerRecord | None:
    doc = _get(state, answer_key(query, custodian))
    return None if doc is None else AnswerRecord.from_json(doc)


def answers_to(state: Reader, query: str) -> list[AnswerRecord]:
    return [AnswerRecord.from_json(decode_trusted(raw)) for _, raw in state.scan_raw(answer_prefix(query))]


# --- rules shared by the contract and the custodians ----------------------------------------------------

def consent_covers(consent: ResearchConsentRecord, study: StudyRecord) -> bool:
    """Does an active research consent cover ``study`` as it stands?

    A study consent covers the study it names from the version it was given for, unless a later
    version asked for renewed consent (``consent_version``). A broad consent covers data-sharing
    studies of its category, never trials (a trial needs the participant's own informed consent).
    """
    if consent.status != "active":
        return False
    if consent.scope == "study":
        return consent.target == study.id and (consent.study_version or 0) >= study.consent_version
    return study.kind == "data" and consent.target == study.category


def snapshot_leaf(subject: str, consent: str) -> bytes:
    """The Merkle leaf of one snapshot entry (the bytes of the canonical JSON object)."""
    return codec.encode({"consent": consent, "subject": subject})
