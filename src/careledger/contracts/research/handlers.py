"""Research contract handlers: the study registry, research consent, anchored releases, aggregate queries.

Transactions (all version 1)::

    research.register_study    sponsor's admin or researcher       a data-sharing study, version 1
    research.new_version       the same                            version n+1 (optionally asking re-consent)
    research.close_study       the same                            no new consents, releases or queries
    research.consent           a study key (unregistered)          opt in to a study, or broad consent to a category
    research.revoke_consent    the same study key                  stops covering from the next release on
    research.release           the custodian's admin/data steward  anchors a de-identified release (+ snapshot)
    research.release_subjects  the same                            the rest of a large release's snapshot
    research.query             a researcher of the sponsor         an aggregate count/sum query
    research.answer            a custodian's admin/data steward    the hash and shape of its answer

Rules the ledger enforces (it never sees the data, so it checks what the custodian signed):
* a release names the study's current version, a recipient who is an active researcher of the
  sponsor, only resource types the study requested, an achieved k of at least the study's k and
  never below :data:`~.layout.MIN_K` (5), the study's l when it asks for l-diversity, and its quasi-
  identifiers; every subject it relies on has a research consent that is active and covers the study
  *at the height the entry is anchored* (a revoked consent can never be relied on again);
* the snapshot's Merkle root is re-computed from the anchored entries when the last one arrives;
* each included study pseudonym gets a ``research/seen`` entry: the patient's own log, which only a
  holder of the study key can find.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from careledger.contracts import identity
from careledger.contracts.base import Handler, Payload, TxContext
from careledger.contracts.consent import StudyId
from careledger.contracts.records import ResourceType, is_custodian_signer
from careledger.contracts.research import layout as lay
from careledger.contracts.research.study_keys import compute_study_pseudonym
from careledger.core import codec
from careledger.core.crypto import sha256
from careledger.core.errors import Code, TxFailed
from careledger.core.merkle import merkle_root
from careledger.core.state import Overlay
from careledger.core.types import Hex32, NonNegativeInt, OrgId, PositiveInt, PublicKeyHex

MAX_SUBJECTS_PER_TX = 1000
SPONSOR_ROLES = ("researcher", "trial_coordinator")
RELEASE_ROLES = ("data_steward",)
CATEGORY_RE = re.compile(r"[a-z][a-z0-9-]{1,39}")

StudyPseudonym = Annotated[str, StringConstraints(pattern=r"^sp-[0-9a-f]{32}$")]
ResearchConsentId = Annotated[str, StringConstraints(pattern=r"^rcn-[0-9a-f]{24}(-[0-9]{1,4})?$")]
ReleaseId = Annotated[str, StringConstraints(pattern=r"^rel-[0-9a-f]{24}(-[0-9]{1,4})?$")]
QueryId = Annotated[str, StringConstraints(pattern=r"^rq-[0-9a-f]{24}(-[0-9]{1,4})?$")]
Category = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,39}$")]
EthicsRef = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9 ./:_-]{1,79}$")]
Title = Annotated[str, StringConstraints(min_length=3, max_length=120, pattern=r"^[^\x00-\x1f]+$")]
CodeRef = Annotated[str, StringConstraints(pattern=r"^[^|\s]{1,200}\|[^|\s]{1,64}$")]
ElementPath = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Za-z]{1,63}\.[a-z][A-Za-z]{0,63}$")]
RuleVersion = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,31}/v[0-9]{1,4}$")]
Zip3ListId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,47}$")]
QuasiIdentifier = Literal["birth_year", "sex", "zip3"]
Sex = Literal["female", "male", "other", "unknown"]
Year = Annotated[int, Field(ge=1800, le=2200)]


# --- payloads -------------------------------------------------------------------------------------------

class CohortSpec(Payload):
    conditions_any: Annotated[list[CodeRef], Field(max_length=32)] = []
    sex: Annotated[list[Sex], Field(max_length=4)] = []
    birth_year_min: Year | None = None
    birth_year_max: Year | None = None


class RequestSpec(Payload):
    resource_types: Annotated[list[ResourceType], Field(min_length=1, max_length=len(lay.RELEASABLE_TYPES))]
    elements: Annotated[list[ElementPath], Field(max_length=64)] = []
    cohort: CohortSpec = CohortSpec()


class AnonymitySpec(Payload):
    quasi_identifiers: Annotated[list[QuasiIdentifier], Field(min_length=1, max_length=3)] = [
        "birth_year", "sex", "zip3"]
    k: Annotated[int, Field(ge=lay.MIN_K, le=1000)] = lay.MIN_K
    l: Annotated[int, Field(ge=2, le=50)] | None = None  # noqa: E741
    sensitive_type: ResourceType | None = None
    sensitive_codes: Annotated[list[CodeRef], Field(max_length=64)] = []
    max_suppression_bp: Annotated[int, Field(ge=0, le=2000)] = 500


class Period(Payload):
    start_ms: NonNegativeInt
    end_ms: NonNegativeInt | None = None  # exclusive


class StudySpec(Payload):
    title: Title
    category: Category
    ethics_ref: EthicsRef
    purpose: Literal["HRESCH", "CLINTRCH"] = "HRESCH"
    period: Period
    request: RequestSpec
    anonymity: AnonymitySpec = AnonymitySpec()


class RegisterStudy(StudySpec):
    sponsor: OrgId


class NewVersion(StudySpec):
    study: StudyId
    version: PositiveInt  # the version this creates: the current one plus one
    reconsent: bool = False


class CloseStudy(Payload):
    study: StudyId


class GrantConsent(Payload):
    scope: Literal["study", "category"]
    target: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$")]
    resource_types: Annotated[list[ResourceType], Field(max_length=len(lay.RELEASABLE_TYPES))] = []


class RevokeConsent(Payload):
    consent: ResearchConsentId


class SubjectEntry(Payload):
    subject: StudyPseudonym
    consent: ResearchConsentId


class Release(Payload):
    study: StudyId
    study_version: PositiveInt
    custodian: OrgId
    recipient: PublicKeyHex
    dataset_root: Hex32
    records: PositiveInt
    subjects: PositiveInt
    snapshot_root: Hex32
    resource_types: Annotated[list[ResourceType], Field(min_length=1, max_length=len(lay.RELEASABLE_TYPES))]
    quasi_identifiers: Annotated[list[QuasiIdentifier], Field(min_length=1, max_length=3)]
    config_hash: Hex32
    rule_version: RuleVersion
    zip3_list: Zip3ListId
    zip3_vintage: Year
    k_achieved: PositiveInt
    l_achieved: PositiveInt | None = None
    suppressed: NonNegativeInt
    as_of_day: NonNegativeInt
    entries: Annotated[list[SubjectEntry], Field(max_length=MAX_SUBJECTS_PER_TX)] = []


class ReleaseSubjects(Payload):
    release: ReleaseId
    entries: Annotated[list[SubjectEntry], Field(min_length=1, max_length=MAX_SUBJECTS_PER_TX)]


class AggregateSpec(Payload):
    measure: Literal["count", "sum"]
    sum_of: Annotated[str, StringConstraints(pattern=r"^(resources:[A-Z][A-Za-z]{1,63}|observation:[^|\s]{1,200}"
                                                     r"\|[^|\s]{1,64})$")] | None = None
    group_by: Annotated[list[Literal["sex", "birth_decade", "zip3", "condition"]], Field(max_length=3)] = []
    condition_codes: Annotated[list[CodeRef], Field(max_length=32)] = []
    cohort: CohortSpec = CohortSpec()


class Query(Payload):
    study: StudyId
    query: AggregateSpec


class Answer(Payload):
    query: QueryId
    custodian: OrgId
    answer_hash: Hex32
    cells: NonNegativeInt
    suppressed_cells: NonNegativeInt
    contributors: NonNegativeInt


# --- the study registry ---------------------------------------------------------------------------------

def _require_sponsor_signer(ctx: TxContext, sponsor: str) -> None:
    s = ctx.signer
    allowed = s.kind == "admin" or (s.kind == "member" and s.has_role(*SPONSOR_ROLES))
    if not s.active or s.org != sponsor or not allowed:
        raise TxFailed(f"only an admin or a researcher of {sponsor!r} may do this", Code.NOT_STUDY_SPONSOR)


def _requested(p: StudySpec) -> tuple[lay.RequestedData, lay.Anonymity]:
    """The typed request and anonymity of a spec. Raises STUDY_INVALID for an empty period, no Patient
    among the requested types, a type that may not be released, an element of a type not requested,
    repeated quasi-identifiers, or l without a sensitive type (or a sensitive type not requested)."""
    if p.period.end_ms is not None and p.period.end_ms <= p.period.start_ms:
        raise TxFailed("a study's period must end after it starts", Code.STUDY_INVALID)
    types = sorted(set(p.request.resource_types))
    if "Patient" not in types:
        raise TxFailed("a study requests Patient: the released Patient carries the quasi-identifiers",
                       Code.STUDY_INVALID)
    for t in types:
        if t not in lay.RELEASABLE_TYPES:
            raise TxFailed(f"{t} is not a resource type studies may request", Code.STUDY_INVALID)
    for e in p.request.elements:
        if e.split(".", 1)[0] not in types:
            raise TxFailed(f"element {e} is of a resource type the study does not request", Code.STUDY_INVALID)
    a = p.anonymity
    if len(set(a.quasi_identifiers)) != len(a.quasi_identifiers):
        raise TxFailed("quasi-identifiers repeat", Code.STUDY_INVALID)
    if (a.l is None) != (a.sensitive_type is None) or (a.sensitive_type is not None and a.sensitive_type not in types):
        raise TxFailed("l-diversity needs a sensitive resource type the study requests (and only then)",
                       Code.STUDY_INVALID)
    c = p.request.cohort
    if c.birth_year_min is not None and c.birth_year_max is not None and c.birth_year_max < c.birth_year_min:
        raise TxFailed("the cohort's birth years are an empty range", Code.STUDY_INVALID)
    cohort = lay.Cohort(tuple(sorted(set(c.conditions_any))), tuple(sorted(set(c.sex))), c.birth_year_min,
                      c.birth_year_max)
    request = lay.RequestedData(tuple(types), tuple(sorted(set(p.request.elements))), cohort)
    anonymity = lay.Anonymity(tuple(a.quasi_identifiers), a.k, a.l, a.sensitive_type,
                            tuple(sorted(set(a.sensitive_codes))), a.max_suppression_bp)
    return request, anonymity


def authorize_register(state: Overlay, ctx: TxContext, p: RegisterStudy) -> None:
    _require_sponsor_signer(ctx, p.sponsor)


def apply_register(state: Overlay, ctx: TxContext, p: RegisterStudy) -> Any:
    """Register a data-sharing study at version 1. Raises ORG_UNKNOWN / ORG_INACTIVE (sponsor),
    STUDY_INVALID (see :func:`_requested`)."""
    identity.require_org(state, p.sponsor)
    request, anonymity = _requested(p)
    sid = ctx.derive_id("study")
    record = lay.StudyRecord(
        id=sid, kind="data", version=1, status="active", sponsor=p.sponsor, title=p.title, category=p.category,
        ethics_ref=p.ethics_ref, purpose=p.purpose, period_start_ms=p.period.start_ms,
        period_end_ms=p.period.end_ms, request=request, anonymity=anonymity, consent_version=1,
        registered_by=ctx.signer.key, registered_height=ctx.env.height, registered_ms=ctx.env.time_ms,
        updated_height=ctx.env.height, updated_ms=ctx.env.time_ms)
    lay.put_study(state, record)
    ctx.emit("study_registered", study=sid, sponsor=p.sponsor, kind="data")
    return {"study": sid, "version": 1}


def _require_study(state: Overlay, study: str) -> lay.StudyRecord:
    record = lay.get_study(state, study)
    if record is None:
        raise TxFailed(f"no study {study}", Code.STUDY_UNKNOWN)
    return record


def _require_own_data_study(state: Overlay, ctx: TxContext, study: str) -> lay.StudyRecord:
    record = _require_study(state, study)
    _require_sponsor_signer(ctx, record.sponsor)
    if record.kind != "data":
        raise TxFailed(f"{study} is a {record.kind}; its own contract changes it", Code.STUDY_KIND_MISMATCH)
    if record.status != "active":
        raise TxFailed(f"study {study} is closed", Code.STUDY_CLOSED)
    return record


def authorize_new_version(state: Overlay, ctx: TxContext, p: NewVersion) -> None:
    _require_own_data_study(state, ctx, p.study)


def apply_new_version(state: Overlay, ctx: TxContext, p: NewVersion) -> Any:
    """Write version n+1. Raises STUDY_UNKNOWN, NOT_STUDY_SPONSOR, STUDY_KIND_MISMATCH, STUDY_CLOSED,
    STUDY_VERSION_CONFLICT (``version`` is not the current one plus one), STUDY_INVALID."""
    current = _require_own_data_study(state, ctx, p.study)
    if p.version != current.version + 1:
        raise TxFailed(f"study {p.study} is at version {current.version}; the next is {current.version + 1}",
                       Code.STUDY_VERSION_CONFLICT)
    request, anonymity = _requested(p)
    record = replace(current, version=p.version, title=p.title, category=p.category, ethics_ref=p.ethics_ref,
                     purpose=p.purpose, period_start_ms=p.period.start_ms, period_end_ms=p.period.end_ms,
                     request=request, anonymity=anonymity,
                     consent_version=p.version if p.reconsent else current.consent_version,
                     updated_height=ctx.env.height, updated_ms=ctx.env.time_ms)
    lay.put_study(state, record)
    ctx.emit("study_versioned", study=p.study, version=p.version)
    return {"study": p.study, "version": p.version, "consent_version": record.consent_version}


def authorize_close(state: Overlay, ctx: TxContext, p: CloseStudy) -> None:
    _require_own_data_study(state, ctx, p.study)


def apply_close(state: Overlay, ctx: TxContext, p: CloseStudy) -> Any:
    current = _require_own_data_study(state, ctx, p.study)
    lay.put_study(state, replace(current, status="closed", updated_height=ctx.env.height, updated_ms=ctx.env.time_ms))
    ctx.emit("study_closed", study=p.study)
    return {"study": p.study, "status": "closed"}


# --- research consent -----------------------------------------------------------------------------------

def _require_study_key(ctx: TxContext) -> str:
    """Research consent is signed by a study key, which must never be a registered key (that would
    link the study pseudonym to a member or a patient). Raises STUDY_KEY_REGISTERED."""
    if ctx.signer.kind != "unregistered":
        raise TxFailed("research consent is signed with a study key, never a registered key",
                       Code.STUDY_KEY_REGISTERED)
    return compute_study_pseudonym(ctx.signer.key)


def authorize_consent(state: Overlay, ctx: TxContext, p: GrantConsent) -> None:
    _require_study_key(ctx)


def apply_consent(state: Overlay, ctx: TxContext, p: GrantConsent) -> Any:
    """Opt in to a study (scope ``study``: it must exist and be open now) or give broad consent to a
    category (scope ``category``). Raises STUDY_KEY_REGISTERED, STUDY_UNKNOWN, STUDY_CLOSED,
    STUDY_INVALID (a category that is not a category code, or a type the study does not request),
    RESEARCH_CONSENT_EXISTS (an active consent of the same scope and target)."""
    subject = _require_study_key(ctx)
    version: int | None = None
    if p.scope == "study":
        study = _require_study(state, p.target)
        if not study.is_open_at(ctx.env.time_ms):
            raise TxFailed(f"study {p.target} is not open for consent", Code.STUDY_CLOSED)
        for t in p.resource_types:
            if t not in study.request.resource_types:
                raise TxFailed(f"study {p.target} does not request {t}", Code.STUDY_INVALID)
        version = study.version
    else:
        if not _is_category(p.target):
            raise TxFailed("a research category is 2-40 lower-case letters, digits and hyphens", Code.STUDY_INVALID)
        for t in p.resource_types:
            if t not in lay.RELEASABLE_TYPES:
                raise TxFailed(f"{t} is not a resource type studies may request", Code.STUDY_INVALID)
    for c in lay.consents_of(state, subject):
        if c.status == "active" and c.scope == p.scope and c.target == p.target:
            raise TxFailed(f"consent {c.id} already covers this", Code.RESEARCH_CONSENT_EXISTS)
    cid = ctx.derive_id("rcn")
    lay.put_consent(state, lay.ResearchConsentRecord(
        id=cid, subject=subject, scope=p.scope, target=p.target, study_version=version,
        resource_types=tuple(sorted(set(p.resource_types))), status="active", granted_height=ctx.env.height,
        granted_ms=ctx.env.time_ms))
    ctx.emit("research_consent_given", consent=cid, scope=p.scope, target=p.target)
    return {"consent": cid, "subject": subject}


def _is_category(text: str) -> bool:
    return CATEGORY_RE.fullmatch(text) is not None


def _own_consent(state: Overlay, ctx: TxContext, consent: str) -> lay.ResearchConsentRecord:
    subject = _require_study_key(ctx)
    record = lay.get_consent_by_id(state, consent)
    if record is None:
        raise TxFailed(f"no research consent {consent}", Code.RESEARCH_CONSENT_UNKNOWN)
    if record.subject != subject:
        raise TxFailed("only the study key that gave a consent may revoke it", Code.NOT_CONSENT_SUBJECT)
    if record.status != "active":
        raise TxFailed(f"research consent {consent} is already revoked", Code.RESEARCH_CONSENT_REVOKED)
    return record


def authorize_revoke(state: Overlay, ctx: TxContext, p: RevokeConsent) -> None:
    _own_consent(state, ctx, p.consent)


def apply_revoke(state: Overlay, ctx: TxContext, p: RevokeConsent) -> Any:
    """Revoke a research consent. Raises STUDY_KEY_REGISTERED, RESEARCH_CONSENT_UNKNOWN,
    NOT_CONSENT_SUBJECT, RESEARCH_CONSENT_REVOKED."""
    record = _own_consent(state, ctx, p.consent)
    lay.put_consent(state, replace(record, status="revoked", revoked_height=ctx.env.height,
                                 revoked_ms=ctx.env.time_ms))
    ctx.emit("research_consent_revoked", consent=p.consent)
    return {"consent": p.consent, "revoked_height": ctx.env.height}


# --- anchored releases ----------------------------------------------------------------------------------

def _require_custodian(ctx: TxContext, custodian: str) -> None:
    if not is_custodian_signer(ctx.signer, custodian, RELEASE_ROLES):
        raise TxFailed(f"only an admin or data steward of {custodian!r} anchors its releases",
                       Code.NOT_RELEASE_CUSTODIAN)


def authorize_release(state: Overlay, ctx: TxContext, p: Release) -> None:
    _require_custodian(ctx, p.custodian)


def _require_open_for_release(study: lay.StudyRecord, time_ms: int) -> None:
    """A release, and each later part of its snapshot, is anchored only while the study is open: active,
    and the block's time within its period (``period_start_ms`` <= t < ``period_end_ms``), as for
    consents and queries. Raises STUDY_CLOSED otherwise (closed, not started, or ended)."""
    if not study.is_open_at(time_ms):
        raise TxFailed(f"study {study.id} is not open (closed, or outside its period)", Code.STUDY_CLOSED)


def _check_release_rules(state: Overlay, ctx: TxContext, p: Release, study: lay.StudyRecord) -> None:
    _require_open_for_release(study, ctx.env.time_ms)
    if p.study_version != study.version:
        raise TxFailed(f"study {study.id} is at version {study.version}", Code.STUDY_VERSION_CONFLICT)
    recipient = identity.resolve_signer(state, p.recipient)
    if not recipient.active or recipient.org != study.sponsor or not (
            recipient.kind == "admin" or recipient.has_role("researcher")):
        raise TxFailed("the recipient must be an active researcher of the study's sponsor",
                       Code.RELEASE_RECIPIENT_INVALID)
    for t in p.resource_types:
        if t not in study.request.resource_types:
            raise TxFailed(f"study {study.id} did not request {t}", Code.RELEASE_TYPES_NOT_REQUESTED)
    a = study.anonymity
    if tuple(p.quasi_identifiers) != a.quasi_identifiers:
        raise TxFailed("the release's quasi-identifiers are not the study's", Code.RELEASE_RULES_MISMATCH)
    required = max(lay.MIN_K, a.k)
    if p.k_achieved < required:
        raise TxFailed(f"k = {p.k_achieved} is below the required {required}", Code.RELEASE_K_TOO_LOW)
    if a.l is not None and (p.l_achieved is None or p.l_achieved < a.l):
        raise TxFailed(f"l = {p.l_achieved} is below the required {a.l}", Code.RELEASE_L_TOO_LOW)
    if p.subjects + p.suppressed == 0 or p.suppressed * 10_000 > a.max_suppression_bp * (p.subjects + p.suppressed):
        raise TxFailed("more patients were suppressed than the study allows", Code.RELEASE_RULES_MISMATCH)


def _anchor_entries(state: Overlay, ctx: TxContext, release: lay.ReleaseRecord, study: lay.StudyRecord,
                    entries: list[SubjectEntry]) -> lay.ReleaseRecord:
    """Record snapshot entries and the patients' log lines; complete the release when the last arrives.

    Raises RELEASE_COUNT_MISMATCH (more entries than the release declared), RELEASE_SUBJECT_DUPLICATE,
    RESEARCH_CONSENT_UNKNOWN (or naming another subject), RESEARCH_CONSENT_NOT_COVERING (revoked or
    not for this study), RELEASE_SNAPSHOT_MISMATCH (the completed snapshot has another root).
    """
    if release.subjects_anchored + len(entries) > release.subjects:
        raise TxFailed(f"release {release.id} declared {release.subjects} subjects", Code.RELEASE_COUNT_MISMATCH)
    for e in entries:
        if state.has(lay.release_subject_key(release.id, e.subject)):
            raise TxFailed("a subject appears twice in the snapshot", Code.RELEASE_SUBJECT_DUPLICATE)
        consent = lay.get_consent_by_id(state, e.consent)
        if consent is None or consent.subject != e.subject:
            raise TxFailed(f"no research consent {e.consent} of this subject", Code.RESEARCH_CONSENT_UNKNOWN)
        if not lay.consent_covers(consent, study):
            raise TxFailed(f"research consent {e.consent} does not cover study {study.id} now",
                           Code.RESEARCH_CONSENT_NOT_COVERING)
        state.put(lay.release_subject_key(release.id, e.subject), {"consent": e.consent, "height": ctx.env.height})
        state.put(lay.seen_key(e.subject, ctx.env.height, release.id),
                  lay.SeenEntry(release.id, study.id, release.custodian, ctx.env.height, ctx.env.time_ms).to_json())
    release = replace(release, subjects_anchored=release.subjects_anchored + len(entries))
    if release.subjects_anchored == release.subjects:
        root = merkle_root([lay.snapshot_leaf(s, c) for s, c in lay.release_subjects(state, release.id)]).hex()
        if root != release.snapshot_root:
            raise TxFailed("the anchored snapshot does not have the declared root", Code.RELEASE_SNAPSHOT_MISMATCH)
        release = replace(release, status="complete", completed_height=ctx.env.height)
        ctx.emit("release_complete", release=release.id, study=study.id, custodian=release.custodian)
    return release


def apply_release(state: Overlay, ctx: TxContext, p: Release) -> Any:
    """Anchor a release and its first snapshot entries. Raises NOT_RELEASE_CUSTODIAN, STUDY_UNKNOWN,
    STUDY_CLOSED (closed, or the block's time outside the study's period), STUDY_VERSION_CONFLICT,
    RELEASE_RECIPIENT_INVALID, RELEASE_TYPES_NOT_REQUESTED, RELEASE_RULES_MISMATCH, RELEASE_K_TOO_LOW,
    RELEASE_L_TOO_LOW, and the snapshot refusals of :func:`_anchor_entries`."""
    _require_custodian(ctx, p.custodian)
    study = _require_study(state, p.study)
    _check_release_rules(state, ctx, p, study)
    a = study.anonymity
    rid = ctx.derive_id("rel")
    release = lay.ReleaseRecord(
        id=rid, study=p.study, study_version=p.study_version, custodian=p.custodian, recipient=p.recipient,
        dataset_root=p.dataset_root, records=p.records, subjects=p.subjects, subjects_anchored=0,
        snapshot_root=p.snapshot_root, resource_types=tuple(sorted(set(p.resource_types))),
        quasi_identifiers=tuple(p.quasi_identifiers), config_hash=p.config_hash, rule_version=p.rule_version,
        zip3_list=p.zip3_list, zip3_vintage=p.zip3_vintage, k_required=max(lay.MIN_K, a.k), k_achieved=p.k_achieved,
        l_required=a.l, l_achieved=p.l_achieved, suppressed=p.suppressed, as_of_day=p.as_of_day, status="anchoring",
        height=ctx.env.height, time_ms=ctx.env.time_ms)
    release = _anchor_entries(state, ctx, release, study, list(p.entries))
    lay.put_release(state, release)
    state.put(lay.study_release_key(p.study, rid), {"custodian": p.custodian, "height": ctx.env.height})
    ctx.emit("release_anchored", release=rid, study=p.study, custodian=p.custodian)
    return {"release": rid, "status": release.status, "subjects_anchored": release.subjects_anchored}


def _open_release(state: Overlay, ctx: TxContext, release_id: str) -> lay.ReleaseRecord:
    release = lay.get_release(state, release_id)
    if release is None:
        raise TxFailed(f"no release {release_id}", Code.RELEASE_UNKNOWN)
    _require_custodian(ctx, release.custodian)
    if release.status != "anchoring":
        raise TxFailed(f"release {release_id} is complete", Code.RELEASE_COMPLETE)
    return release


def authorize_release_subjects(state: Overlay, ctx: TxContext, p: ReleaseSubjects) -> None:
    _open_release(state, ctx, p.release)


def apply_release_subjects(state: Overlay, ctx: TxContext, p: ReleaseSubjects) -> Any:
    """More snapshot entries of an anchoring release. Raises RELEASE_UNKNOWN, NOT_RELEASE_CUSTODIAN,
    RELEASE_COMPLETE, STUDY_CLOSED (closed, or the block's time outside the study's period), and the
    snapshot refusals of :func:`_anchor_entries`."""
    release = _open_release(state, ctx, p.release)
    study = _require_study(state, release.study)
    _require_open_for_release(study, ctx.env.time_ms)
    release = _anchor_entries(state, ctx, release, study, list(p.entries))
    lay.put_release(state, release)
    return {"release": release.id, "status": release.status, "subjects_anchored": release.subjects_anchored}


# --- aggregate queries ----------------------------------------------------------------------------------

def compute_query_hash(query: dict[str, Any]) -> str:
    """SHA-256 of the canonical query spec: what a custodian's answer refers to."""
    return sha256(codec.encode(query)).hex()


def query_json(q: AggregateSpec) -> dict[str, Any]:
    """The one canonical JSON form of a query spec (sets sorted)."""
    c = q.cohort
    return {"cohort": lay.Cohort(tuple(sorted(set(c.conditions_any))), tuple(sorted(set(c.sex))), c.birth_year_min,
                               c.birth_year_max).to_json(),
            "condition_codes": sorted(set(q.condition_codes)), "group_by": list(q.group_by), "measure": q.measure,
            "sum_of": q.sum_of}


def authorize_query(state: Overlay, ctx: TxContext, p: Query) -> None:
    study = _require_study(state, p.study)
    s = ctx.signer
    if not s.active or s.org != study.sponsor or not (s.kind == "admin" or s.has_role("researcher")):
        raise TxFailed("only a researcher of the study's sponsor may query", Code.NOT_STUDY_SPONSOR)


def apply_query(state: Overlay, ctx: TxContext, p: Query) -> Any:
    """Anchor an aggregate query. Raises STUDY_UNKNOWN, NOT_STUDY_SPONSOR, STUDY_CLOSED, QUERY_INVALID
    (a sum without ``sum_of`` or a count with one, grouping by condition without codes, repeated groups)."""
    authorize_query(state, ctx, p)
    study = _require_study(state, p.study)
    if not study.is_open_at(ctx.env.time_ms):
        raise TxFailed(f"study {p.study} is not open", Code.STUDY_CLOSED)
    q = p.query
    if (q.measure == "sum") != (q.sum_of is not None) or len(set(q.group_by)) != len(q.group_by) \
            or (("condition" in q.group_by) != bool(q.condition_codes)):
        raise TxFailed("a sum names what it sums (a count does not); grouping by condition names the codes",
                       Code.QUERY_INVALID)
    spec = query_json(q)
    qid = ctx.derive_id("rq")
    record = lay.QueryRecord(qid, p.study, ctx.signer.key, spec, compute_query_hash(spec), ctx.env.height,
                           ctx.env.time_ms)
    state.put(lay.query_key(qid), record.to_json())
    ctx.emit("research_query", query=qid, study=p.study)
    return {"query": qid, "query_hash": record.query_hash}


def authorize_answer(state: Overlay, ctx: TxContext, p: Answer) -> None:
    _require_custodian(ctx, p.custodian)


def apply_answer(state: Overlay, ctx: TxContext, p: Answer) -> Any:
    """Anchor a custodian's answer. Raises NOT_RELEASE_CUSTODIAN, QUERY_UNKNOWN, QUERY_ANSWERED,
    QUERY_INVALID (more suppressed cells than cells)."""
    _require_custodian(ctx, p.custodian)
    query = lay.get_query(state, p.query)
    if query is None:
        raise TxFailed(f"no query {p.query}", Code.QUERY_UNKNOWN)
    if state.has(lay.answer_key(p.query, p.custodian)):
        raise TxFailed(f"{p.custodian} already answered {p.query}", Code.QUERY_ANSWERED)
    if p.suppressed_cells > p.cells:
        raise TxFailed("more suppressed cells than cells", Code.QUERY_INVALID)
    record = lay.AnswerRecord(p.query, p.custodian, p.answer_hash, p.cells, p.suppressed_cells, p.contributors,
                            ctx.env.height, ctx.env.time_ms)
    state.put(lay.answer_key(p.query, p.custodian), record.to_json())
    ctx.emit("research_answer", query=p.query, custodian=p.custodian)
    return {"query": p.query, "custodian": p.custodian}


HANDLERS: list[Handler[Any]] = [
    Handler("research.register_study", 1, RegisterStudy, apply_register, authorize_register,
            summary="A sponsor's admin or researcher registers a data-sharing study (ResearchStudy), version 1."),
    Handler("research.new_version", 1, NewVersion, apply_new_version, authorize_new_version,
            summary="The sponsor publishes the next version of a study, optionally asking for renewed consent.",
            read_hints=lambda p: [lay.study_key(p.study)]),
    Handler("research.close_study", 1, CloseStudy, apply_close, authorize_close,
            summary="The sponsor closes a study: no new consents, releases or queries.",
            read_hints=lambda p: [lay.study_key(p.study)]),
    Handler("research.consent", 1, GrantConsent, apply_consent, authorize_consent, open_to_unregistered=True,
            summary="A patient's study key opts in to a study, or gives broad consent to a category of research.",
            read_hints=lambda p: [lay.study_key(p.target)] if p.scope == "study" else []),
    Handler("research.revoke_consent", 1, RevokeConsent, apply_revoke, authorize_revoke, open_to_unregistered=True,
            summary="The study key revokes its research consent; no later release may rely on it.",
            read_hints=lambda p: [lay.consent_id_key(p.consent)]),
    Handler("research.release", 1, Release, apply_release, authorize_release,
            summary="A custodian anchors a de-identified release: root, rules, k, l and the consent snapshot.",
            read_hints=lambda p: [lay.study_key(p.study), identity.key_key(p.recipient)]
            + [lay.consent_id_key(e.consent) for e in p.entries]),
    Handler("research.release_subjects", 1, ReleaseSubjects, apply_release_subjects, authorize_release_subjects,
            summary="A custodian anchors more of a large release's consent snapshot.",
            read_hints=lambda p: [lay.release_key(p.release)] + [lay.consent_id_key(e.consent) for e in p.entries]),
    Handler("research.query", 1, Query, apply_query, authorize_query,
            summary="A study's researcher anchors an aggregate count/sum query for every custodian.",
            read_hints=lambda p: [lay.study_key(p.study)]),
    Handler("research.answer", 1, Answer, apply_answer, authorize_answer,
            summary="A custodian anchors the hash and shape of its small-cell-suppressed answer to a query.",
            read_hints=lambda p: [lay.query_key(p.query), lay.answer_key(p.query, p.custodian)]),
]
