"""Trial conduct: consent, enrolment with concealed randomisation, visit anchors, lock and unblinding.

* ``trials.consent`` / ``trials.withdraw_consent``: signed by the subject's **study key** (derived
  by the patient for this trial alone and never registered, so the handler is open to unregistered
  keys and refuses registered ones); the consent names the protocol version and the hash of the
  consent form signed.
* ``trials.enrol``: a site investigator enrols a subject. Refused unless the trial was registered in
  an earlier block and is recruiting and unlocked, the site is active, the subject's consent covers
  the current protocol, and (randomised trials) the allocation revealed is the next slot of the
  subject's stratum and verifies against the commitment made at registration.
* ``trials.record_visits``: the site (an investigator or its vault's data steward) anchors each
  visit's data (commitments of FHIR Observation / QuestionnaireResponse resources kept in its
  vault) as one leaf of the trial's append-only anchor tree. Refused once locked, and for a subject
  whose consent no longer covers the protocol (a re-consent-required amendment came after it):
  the refusal's receipt, with its code, is the public flag (see ``queries.subjects_awaiting_reconsent``).
* ``trials.lock``: the sponsor locks the database; the tree's root and size are recorded.
* ``trials.unblind``: after lock the sponsor reveals a masked trial's arms and salts; each must
  match the sealed allocation recorded at enrolment.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Literal

from pydantic import Field

from careledger.contracts.base import Handler, Payload, TxContext
from careledger.contracts.research.study_keys import compute_study_pseudonym
from careledger.contracts.trials.allocation import (
    AllocationCommitment,
    AllocationError,
    RevealedAllocation,
    sealed_allocation,
    verify_allocation,
)
from careledger.contracts.trials.anchors import frontier_append, frontier_root
from careledger.contracts.trials.dataset import ArmLabel
from careledger.contracts.trials.layout import (
    LockRecord,
    SubjectRecord,
    TreeRecord,
    TrialConsent,
    VisitRecord,
    VisitVersion,
    consent_key,
    get_consent,
    get_protocol,
    get_subject,
    get_tree,
    get_trial,
    get_visit,
    put_consent,
    put_status,
    put_subject,
    put_tree,
    put_visit,
    site_key,
    status_key,
    subject_key,
    tree_key,
    visit_key,
    visit_leaf_data,
)
from careledger.contracts.trials.rules import (
    StratumName,
    SubjectId,
    TrialId,
    VisitId,
    require_consent_covers,
    require_site,
    require_site_staff,
    require_sponsor,
    require_status,
    require_unlocked,
)
from careledger.core.errors import Code, TxFailed
from careledger.core.merkle import leaf_hash
from careledger.core.state import Overlay
from careledger.core.types import Hex32, OrgId, Reason

MAX_VISITS_PER_TX = 256
MAX_RESOURCES_PER_VISIT = 64
MAX_PROOF = 64


# --- consent by the study key ----------------------------------------------------------------------

class Consent(Payload):
    trial: TrialId
    protocol_version: Annotated[int, Field(ge=1, le=9999)]
    consent_form_hash: Hex32


def authorize_study_key(state: Overlay, ctx: TxContext, p: Any) -> None:
    """Only an unregistered key (the subject's per-trial study key) consents: a registered patient or
    member key would link the trial to the patient's other pseudonyms (TRIAL_CONSENT_NOT_STUDY_KEY)."""
    if ctx.signer.kind != "unregistered":
        raise TxFailed("trial consent is signed with the subject's study key, never a registered key",
                       Code.TRIAL_CONSENT_NOT_STUDY_KEY)


def apply_consent(state: Overlay, ctx: TxContext, p: Consent) -> Any:
    """Record consent to the current protocol version. Raises TRIAL_UNKNOWN, TRIAL_LOCKED,
    TRIAL_CONSENT_STALE (an older version), TRIAL_PROTOCOL_VERSION_CONFLICT (a version that does not
    exist), TRIAL_CONSENT_FORM_MISMATCH (not that version's form) or TRIAL_STATUS_INVALID (already
    given to this version and active)."""
    status = require_status(state, p.trial)
    require_unlocked(status)
    if p.protocol_version < status.protocol_version:
        raise TxFailed(f"protocol version {p.protocol_version} is superseded by version {status.protocol_version}",
                       Code.TRIAL_CONSENT_STALE)
    if p.protocol_version > status.protocol_version:
        raise TxFailed(f"the protocol has no version {p.protocol_version}", Code.TRIAL_PROTOCOL_VERSION_CONFLICT)
    protocol = get_protocol(state, p.trial, p.protocol_version)
    assert protocol is not None
    if protocol.consent_form_hash != p.consent_form_hash:
        raise TxFailed("this is not the consent form of the current protocol version", Code.TRIAL_CONSENT_FORM_MISMATCH)
    subject = compute_study_pseudonym(ctx.signer.key)
    old = get_consent(state, p.trial, subject)
    if old is not None and old.status == "active" and old.version == p.protocol_version:
        raise TxFailed("consent to this protocol version is already recorded", Code.TRIAL_STATUS_INVALID)
    history = (() if old is None else old.history) + ((p.protocol_version, ctx.env.height),)
    put_consent(state, p.trial, TrialConsent(subject, ctx.signer.key, p.protocol_version, p.consent_form_hash,
                                             "active", ctx.env.height, ctx.env.time_ms, history))
    ctx.emit("trial_consent", trial=p.trial, subject=subject, protocol_version=p.protocol_version)
    return {"trial": p.trial, "subject": subject, "protocol_version": p.protocol_version}


class WithdrawConsent(Payload):
    trial: TrialId


def apply_withdraw_consent(state: Overlay, ctx: TxContext, p: WithdrawConsent) -> Any:
    """Withdraw consent: no more visits are anchored for the subject. Raises TRIAL_UNKNOWN,
    TRIAL_CONSENT_REQUIRED (none given) or TRIAL_CONSENT_WITHDRAWN (already withdrawn)."""
    require_status(state, p.trial)
    subject = compute_study_pseudonym(ctx.signer.key)
    old = get_consent(state, p.trial, subject)
    if old is None:
        raise TxFailed("the subject has not consented to this trial", Code.TRIAL_CONSENT_REQUIRED)
    if old.status != "active":
        raise TxFailed("consent was already withdrawn", Code.TRIAL_CONSENT_WITHDRAWN)
    put_consent(state, p.trial, replace(old, status="withdrawn", height=ctx.env.height, time_ms=ctx.env.time_ms))
    ctx.emit("trial_consent_withdrawn", trial=p.trial, subject=subject)
    return {"trial": p.trial, "subject": subject, "status": "withdrawn"}


# --- enrolment ------------------------------------------------------------------------------------

class AllocationReveal(Payload):
    """One slot of the committed sequence: open (arm and salt) or sealed (the leaf hash, masked trials)."""

    stratum: StratumName
    index: Annotated[int, Field(ge=0, le=999_999)]
    proof: Annotated[list[Hex32], Field(max_length=MAX_PROOF)]
    arm: ArmLabel | None = None
    salt: Hex32 | None = None
    sealed: Hex32 | None = None


class Enrol(Payload):
    trial: TrialId
    site: OrgId
    subject: SubjectId
    allocation: AllocationReveal | None = None


def authorize_site_enrol(state: Overlay, ctx: TxContext, p: Any) -> None:
    require_status(state, p.trial)
    require_site_staff(ctx, require_site(state, p.trial, p.site), stewards=False)


def _allocate(rec_randomisation: dict[str, Any] | None, arms: list[str], masked: bool, next_slot: int,
              a: AllocationReveal | None) -> tuple[str, int, str, str | None]:
    """Check a revealed allocation; returns (stratum, slot, sealed hex, arm or None)."""
    if a is None or rec_randomisation is None:
        raise TxFailed("a randomised trial enrols with the next allocation of the subject's stratum",
                       Code.TRIAL_ALLOCATION_REQUIRED)
    commitment = AllocationCommitment.from_json(rec_randomisation)
    slots = commitment.slots(a.stratum)
    if slots is None:
        raise TxFailed(f"stratum {a.stratum!r} is not in the committed sequence", Code.TRIAL_STRATUM_UNKNOWN)
    if next_slot >= slots:
        raise TxFailed(f"stratum {a.stratum!r} has used all its {slots} slots", Code.TRIAL_STRATUM_EXHAUSTED)
    if a.index != next_slot:
        raise TxFailed(f"the next allocation of stratum {a.stratum!r} is slot {next_slot}, not {a.index}",
                       Code.TRIAL_ALLOCATION_OUT_OF_ORDER)
    opened = a.arm is not None or a.salt is not None
    if masked:
        if opened or a.sealed is None:
            raise TxFailed("a masked trial enrols with the sealed allocation only; arm and salt are revealed at "
                           "unblinding", Code.TRIAL_ALLOCATION_UNBLINDS)
    elif a.arm is None or a.salt is None or a.sealed is not None:
        raise TxFailed("an open-label trial enrols with the allocation's arm and salt", Code.TRIAL_ALLOCATION_REQUIRED)
    if a.arm is not None and a.arm not in arms:
        raise TxFailed(f"arm {a.arm!r} is not registered", Code.TRIAL_ARM_UNKNOWN)
    revealed = RevealedAllocation(a.stratum, a.index, tuple(bytes.fromhex(h) for h in a.proof), a.arm,
                                  None if a.salt is None else bytes.fromhex(a.salt),
                                  None if a.sealed is None else bytes.fromhex(a.sealed))
    try:
        leaf = verify_allocation(commitment, revealed)
    except AllocationError as exc:
        raise TxFailed(str(exc), Code.TRIAL_ALLOCATION_MISMATCH) from None
    return a.stratum, a.index, leaf.hex(), a.arm


def apply_enrol(state: Overlay, ctx: TxContext, p: Enrol) -> Any:
    """Enrol a subject. Raises TRIAL_UNKNOWN (not registered in an earlier block), TRIAL_LOCKED,
    TRIAL_NOT_RECRUITING, TRIAL_SITE_INACTIVE, the consent codes (TRIAL_CONSENT_REQUIRED,
    TRIAL_CONSENT_WITHDRAWN, TRIAL_CONSENT_STALE), TRIAL_SUBJECT_ENROLLED, TRIAL_ENROLMENT_FULL, and
    for the allocation TRIAL_NOT_RANDOMISED, TRIAL_ALLOCATION_REQUIRED, TRIAL_STRATUM_UNKNOWN,
    TRIAL_STRATUM_EXHAUSTED, TRIAL_ALLOCATION_OUT_OF_ORDER, TRIAL_ALLOCATION_UNBLINDS,
    TRIAL_ARM_UNKNOWN or TRIAL_ALLOCATION_MISMATCH."""
    status = require_status(state, p.trial)
    trial = get_trial(state, p.trial)
    assert trial is not None
    if trial.registered_height >= ctx.env.height:
        raise TxFailed("registration must be committed in a block before the first enrolment", Code.TRIAL_UNKNOWN)
    require_unlocked(status)
    if status.recruitment != "recruiting":
        raise TxFailed(f"trial {p.trial} is not recruiting ({status.recruitment})", Code.TRIAL_NOT_RECRUITING)
    site = require_site(state, p.trial, p.site)
    if site.status != "active":
        raise TxFailed(f"site {p.site!r} is {site.status}", Code.TRIAL_SITE_INACTIVE)
    consent = require_consent_covers(status, get_consent(state, p.trial, p.subject), for_visit=False)
    if get_subject(state, p.trial, p.subject) is not None:
        raise TxFailed("the subject is already enrolled", Code.TRIAL_SUBJECT_ENROLLED)
    if status.enrolled >= status.target:
        raise TxFailed(f"the target sample size ({status.target}) is reached", Code.TRIAL_ENROLMENT_FULL)
    stratum: str | None = None
    slot: int | None = None
    sealed: str | None = None
    arm: str | None = None
    next_slot = status.next_slot
    if status.randomised:
        arms = [a["label"] for a in trial.dataset["arms"]]
        stratum_name = p.allocation.stratum if p.allocation is not None else ""
        stratum, slot, sealed, arm = _allocate(trial.randomisation, arms, status.masked, status.slot(stratum_name),
                                               p.allocation)
        next_slot = status.with_slot(stratum, slot + 1)
    elif p.allocation is not None:
        raise TxFailed("this trial is not randomised", Code.TRIAL_NOT_RANDOMISED)
    put_subject(state, p.trial, SubjectRecord(p.subject, p.site, stratum, slot, sealed, arm, consent.version,
                                              ctx.env.height, ctx.env.time_ms))
    first = status.first_enrolment_height is None
    put_status(state, replace(status, enrolled=status.enrolled + 1, next_slot=next_slot,
                              first_enrolment_height=ctx.env.height if first else status.first_enrolment_height,
                              first_enrolment_ms=ctx.env.time_ms if first else status.first_enrolment_ms))
    ctx.emit("trial_enrolment", trial=p.trial, site=p.site, subject=p.subject)
    out: dict[str, Any] = {"trial": p.trial, "subject": p.subject, "site": p.site}
    if stratum is not None:
        out.update(stratum=stratum, slot=slot, arm=arm)
    return out


# --- visits ---------------------------------------------------------------------------------------

class VisitResource(Payload):
    type: Literal["Observation", "QuestionnaireResponse"]
    commitment: Hex32


class VisitEntry(Payload):
    subject: SubjectId
    visit: VisitId
    version: Annotated[int, Field(ge=1, le=9999)] = 1
    resources: Annotated[list[VisitResource], Field(min_length=1, max_length=MAX_RESOURCES_PER_VISIT)]
    reason: Reason | None = None


class RecordVisits(Payload):
    trial: TrialId
    site: OrgId
    visits: Annotated[list[VisitEntry], Field(min_length=1, max_length=MAX_VISITS_PER_TX)]


def authorize_site_data(state: Overlay, ctx: TxContext, p: Any) -> None:
    require_status(state, p.trial)
    require_site_staff(ctx, require_site(state, p.trial, p.site), stewards=True)


def apply_record_visits(state: Overlay, ctx: TxContext, p: RecordVisits) -> Any:
    """Anchor visits, one leaf each, all or none. Raises TRIAL_LOCKED, TRIAL_SITE_INACTIVE (closed site),
    TRIAL_SUBJECT_UNKNOWN, TRIAL_SUBJECT_NOT_AT_SITE, TRIAL_CONSENT_WITHDRAWN, TRIAL_RECONSENT_REQUIRED
    (a re-consent-required amendment since the subject's consent), TRIAL_VISIT_EXISTS (version 1 of
    a visit already anchored) or TRIAL_VISIT_VERSION_CONFLICT (a correction that is not the next
    version, or has no reason)."""
    status = require_status(state, p.trial)
    require_unlocked(status)
    site = require_site(state, p.trial, p.site)
    if site.status == "closed":
        raise TxFailed(f"site {p.site!r} is closed", Code.TRIAL_SITE_INACTIVE)
    tree = get_tree(state, p.trial)
    size, frontier = tree.size, tree.frontier
    checked: set[str] = set()
    first = size
    for v in p.visits:
        if v.subject not in checked:
            subject = get_subject(state, p.trial, v.subject)
            if subject is None:
                raise TxFailed("the subject is not enrolled in this trial", Code.TRIAL_SUBJECT_UNKNOWN)
            if subject.site != p.site:
                raise TxFailed("the subject is enrolled at another site", Code.TRIAL_SUBJECT_NOT_AT_SITE)
            require_consent_covers(status, get_consent(state, p.trial, v.subject), for_visit=True)
            checked.add(v.subject)
        rec = get_visit(state, p.trial, v.subject, v.visit)
        if v.version == 1:
            if rec is not None:
                raise TxFailed(f"visit {v.visit} is already anchored (version {rec.head.version})",
                               Code.TRIAL_VISIT_EXISTS)
        elif rec is None or rec.head.version + 1 != v.version or v.reason is None:
            raise TxFailed(f"a correction of visit {v.visit} is its next version, with a reason",
                           Code.TRIAL_VISIT_VERSION_CONFLICT)
        version = VisitVersion(v.version, size, p.site, status.protocol_version,
                               tuple((r.type, r.commitment) for r in v.resources), ctx.env.height, ctx.env.time_ms,
                               v.reason)
        frontier = frontier_append(frontier, size, leaf_hash(visit_leaf_data(p.trial, v.subject, v.visit, version)))
        size += 1
        put_visit(state, p.trial, v.subject, v.visit, VisitRecord((() if rec is None else rec.versions) + (version,)))
    put_tree(state, p.trial, TreeRecord(size, frontier))
    ctx.emit("trial_visits_anchored", trial=p.trial, site=p.site, count=len(p.visits))
    return {"trial": p.trial, "first_leaf": first, "count": len(p.visits), "size": size}


# --- database lock and unblinding -----------------------------------------------------------------

class Lock(Payload):
    trial: TrialId
    root: Hex32 | None = None


def authorize_sponsor(state: Overlay, ctx: TxContext, p: Any) -> None:
    require_sponsor(ctx, require_status(state, p.trial))


def apply_lock(state: Overlay, ctx: TxContext, p: Lock) -> Any:
    """Lock the database: record the anchor tree's root and size (O(log n), whatever n). Raises
    TRIAL_LOCKED, or TRIAL_LOCK_ROOT_MISMATCH when the sponsor's own root differs from the ledger's."""
    status = require_status(state, p.trial)
    require_unlocked(status)
    tree = get_tree(state, p.trial)
    root = frontier_root(tree.frontier).hex()
    if p.root is not None and p.root != root:
        raise TxFailed(f"the ledger's anchor root over {tree.size} leaves differs from the one given",
                       Code.TRIAL_LOCK_ROOT_MISMATCH)
    lock = LockRecord(root, tree.size, ctx.env.height, ctx.env.time_ms)
    put_status(state, replace(status, lock=lock))
    ctx.emit("trial_locked", trial=p.trial, root=root, size=tree.size)
    return {"trial": p.trial, **lock.to_json()}


class Unblinding(Payload):
    subject: SubjectId
    arm: ArmLabel
    salt: Hex32


class Unblind(Payload):
    trial: TrialId
    allocations: Annotated[list[Unblinding], Field(min_length=1, max_length=1000)]


def apply_unblind(state: Overlay, ctx: TxContext, p: Unblind) -> Any:
    """Reveal a masked trial's allocations after lock. Raises TRIAL_NOT_LOCKED, TRIAL_NOT_RANDOMISED,
    TRIAL_ALREADY_UNBLINDED (open-label, or this subject's arm is known), TRIAL_SUBJECT_UNKNOWN,
    TRIAL_ARM_UNKNOWN or TRIAL_ALLOCATION_MISMATCH (arm and salt do not open the sealed allocation)."""
    status = require_status(state, p.trial)
    if status.lock is None:
        raise TxFailed("a trial is unblinded after database lock", Code.TRIAL_NOT_LOCKED)
    if not status.randomised:
        raise TxFailed("this trial is not randomised", Code.TRIAL_NOT_RANDOMISED)
    trial = get_trial(state, p.trial)
    assert trial is not None
    arms = {a["label"] for a in trial.dataset["arms"]}
    for u in p.allocations:
        subject = get_subject(state, p.trial, u.subject)
        if subject is None or subject.stratum is None or subject.slot is None or subject.sealed is None:
            raise TxFailed("the subject is not enrolled with an allocation", Code.TRIAL_SUBJECT_UNKNOWN)
        if subject.arm is not None:
            raise TxFailed("the subject's arm is already known", Code.TRIAL_ALREADY_UNBLINDED)
        if u.arm not in arms:
            raise TxFailed(f"arm {u.arm!r} is not registered", Code.TRIAL_ARM_UNKNOWN)
        if sealed_allocation(subject.stratum, subject.slot, u.arm, bytes.fromhex(u.salt)).hex() != subject.sealed:
            raise TxFailed("arm and salt do not open the allocation sealed at enrolment",
                           Code.TRIAL_ALLOCATION_MISMATCH)
        put_subject(state, p.trial, replace(subject, arm=u.arm))
    ctx.emit("trial_unblinded", trial=p.trial, count=len(p.allocations))
    return {"trial": p.trial, "unblinded": len(p.allocations)}


HANDLERS: list[Handler[Any]] = [
    Handler("trials.consent", 1, Consent, apply_consent, authorize_study_key, open_to_unregistered=True,
            summary="A subject consents to the current protocol version, signing with the per-trial study key.",
            read_hints=lambda p: [status_key(p.trial)]),
    Handler("trials.withdraw_consent", 1, WithdrawConsent, apply_withdraw_consent, authorize_study_key,
            open_to_unregistered=True, summary="A subject withdraws trial consent (signed with the study key).",
            read_hints=lambda p: [status_key(p.trial)]),
    Handler("trials.enrol", 1, Enrol, apply_enrol, authorize_site_enrol,
            summary="A site investigator enrols a consented subject, revealing the next committed allocation.",
            read_hints=lambda p: [status_key(p.trial), site_key(p.trial, p.site), consent_key(p.trial, p.subject),
                                  subject_key(p.trial, p.subject)]),
    Handler("trials.record_visits", 1, RecordVisits, apply_record_visits, authorize_site_data,
            summary="A site anchors visits' data commitments into the trial's append-only anchor tree.",
            read_hints=lambda p: [status_key(p.trial), site_key(p.trial, p.site), tree_key(p.trial), *sorted(
                {k for v in p.visits for k in (subject_key(p.trial, v.subject), consent_key(p.trial, v.subject),
                                               visit_key(p.trial, v.subject, v.visit))})]),
    Handler("trials.lock", 1, Lock, apply_lock, authorize_sponsor,
            summary="The sponsor locks the database: the anchor tree's root is recorded.",
            read_hints=lambda p: [status_key(p.trial), tree_key(p.trial)]),
    Handler("trials.unblind", 1, Unblind, apply_unblind, authorize_sponsor,
            summary="After lock, the sponsor reveals a masked trial's allocations against the sealed ones."),
]
