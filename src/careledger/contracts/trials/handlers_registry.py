"""Registration, registration versions, protocol amendments and sites.

* ``trials.register``: a sponsor registers a trial with the WHO data set, protocol version 1 (the
  protocol document's and consent form's hashes; the documents stay off the ledger) and, for a
  randomised design, the commitment to the allocation sequence. The ledger assigns the trial id
  (item 1) and the registration date (item 2, the block time). Registration must precede the
  first enrolment: an enrolment is accepted only in a later block.
* ``trials.update_registration`` / ``trials.set_recruitment_status``: a new registration version,
  always with a reason; every version is kept (COMPare's baseline is read from this history).
* ``trials.amend_protocol``: protocol version n+1 with its reason and whether re-consent is required.
* ``trials.add_site``, ``trials.set_site_status``, ``trials.set_site_investigators``: sites are member
  organisations with an ethics approval; investigators are their member keys with a role.

A trial is a study of the research registry: every registration version also writes the trial's
study record there (:func:`trial_study`, kind ``trial``, through the research contract's
``put_study``), whose ``registration`` is the WHO data set. The research contract leaves such a
record to this one (``STUDY_KIND_MISMATCH``) and never releases data to it (it requests none).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Literal

from pydantic import Field

from careledger.contracts import identity
from careledger.contracts.base import Handler, Payload, TxContext
from careledger.contracts.research.layout import Anonymity, RequestedData, StudyRecord, put_study
from careledger.contracts.trials.allocation import MAX_SLOTS, SCHEME
from careledger.contracts.trials.dataset import (
    DataSetProblem,
    EthicsReview,
    RecruitmentStatus,
    TrialRegistrationDataSet,
    check_dataset,
)
from careledger.contracts.trials.layout import (
    ProtocolVersion,
    RegistrationVersion,
    SiteRecord,
    TrialRecord,
    TrialStatus,
    get_site,
    get_trial,
    protocol_key,
    put_protocol,
    put_registration,
    put_site,
    put_status,
    put_trial,
    site_key,
    status_key,
    trial_key,
)
from careledger.contracts.trials.rules import (
    INVESTIGATOR_MEMBER_ROLES,
    LongReason,
    StratumName,
    TrialId,
    require_site,
    require_sponsor,
    require_status,
    require_unlocked,
)
from careledger.core.errors import Code, TxFailed
from careledger.core.state import Overlay
from careledger.core.types import Hex32, OrgId, PublicKeyHex

MAX_STRATA = 1000
TRIAL_STUDY_CATEGORY = "clinical-trial"
"""The research category of every trial's study record (informational: broad consent never covers a trial)."""


class ProtocolDocument(Payload):
    document_hash: Hex32
    consent_form_hash: Hex32


class StratumSlots(Payload):
    name: StratumName
    slots: Annotated[int, Field(ge=1, le=MAX_SLOTS)]


class RandomisationCommitment(Payload):
    """The root of the sponsor's allocation tree and each stratum's number of slots."""

    root: Hex32
    strata: Annotated[list[StratumSlots], Field(min_length=1, max_length=MAX_STRATA)]


class Register(Payload):
    dataset: TrialRegistrationDataSet
    protocol: ProtocolDocument
    randomisation: RandomisationCommitment | None = None


def _check(dataset: TrialRegistrationDataSet) -> None:
    try:
        check_dataset(dataset)
    except DataSetProblem as exc:
        raise TxFailed(str(exc), Code.TRIAL_REGISTRATION_INVALID) from None


def _ethics_ref(ds: TrialRegistrationDataSet) -> str:
    approved = [r for r in ds.ethics_reviews if r.status == "approved"] or list(ds.ethics_reviews)
    return (approved[0].reference or approved[0].committee)[:80]


def trial_study(rec: TrialRecord, ds: TrialRegistrationDataSet) -> StudyRecord:
    """The trial's entry in the research registry at registration version ``rec.version``: kind
    ``trial``, the same id, sponsor, registration times and version; title the public title (item 9);
    ethics reference the first approval's (item 21); purpose ``CLINTRCH``; open from registration;
    ``closed`` once recruitment is complete (item 18); no data requested of custodians (a trial's case
    reports are anchored by this contract); ``registration`` the WHO data set as stored."""
    return StudyRecord(
        id=rec.id, kind="trial", version=rec.version,
        status="closed" if ds.recruitment_status == "complete" else "active", sponsor=rec.sponsor,
        title=ds.public_title, category=TRIAL_STUDY_CATEGORY, ethics_ref=_ethics_ref(ds), purpose="CLINTRCH",
        period_start_ms=rec.registered_ms, period_end_ms=None, request=RequestedData(()), anonymity=Anonymity(),
        consent_version=1, registered_by=rec.registered_by, registered_height=rec.registered_height,
        registered_ms=rec.registered_ms, updated_height=rec.updated_height, updated_ms=rec.updated_ms,
        registration=rec.dataset)


def authorize_register(state: Overlay, ctx: TxContext, p: Register) -> None:
    """Only an admin or trial coordinator of an active organisation registers (it becomes the sponsor)."""
    s = ctx.signer
    if s.org is None or not (s.kind == "admin" or (s.kind == "member" and s.has_role("trial_coordinator"))):
        raise TxFailed("only an organisation admin or a trial coordinator may register a trial",
                       Code.TRIAL_NOT_SPONSOR)


def apply_register(state: Overlay, ctx: TxContext, p: Register) -> Any:
    """Register a trial. Raises TRIAL_REGISTRATION_INVALID when the data set is inconsistent, its
    recruitment status is not pending or recruiting, its first enrolment is not anticipated, it
    states a final sample size, or the randomisation commitment does not fit the design (missing
    for a randomised trial, present otherwise, strata repeated, fewer slots than the target)."""
    ds = p.dataset
    _check(ds)
    if ds.recruitment_status not in ("pending", "recruiting"):
        raise TxFailed("a new registration is pending or recruiting", Code.TRIAL_REGISTRATION_INVALID)
    if ds.first_enrolment.type != "anticipated" or ds.sample_size.final is not None:
        raise TxFailed("registration precedes enrolment: the first enrolment is anticipated and no final sample "
                       "size is known", Code.TRIAL_REGISTRATION_INVALID)
    randomised = ds.design.allocation == "randomised"
    commitment: dict[str, Any] | None = None
    if randomised:
        if p.randomisation is None:
            raise TxFailed("a randomised trial commits its allocation sequence at registration",
                           Code.TRIAL_REGISTRATION_INVALID)
        names = [s.name for s in p.randomisation.strata]
        if len(set(names)) != len(names):
            raise TxFailed("strata repeat", Code.TRIAL_REGISTRATION_INVALID)
        if sum(s.slots for s in p.randomisation.strata) < ds.sample_size.target:
            raise TxFailed("the allocation sequence has fewer slots than the target sample size",
                           Code.TRIAL_REGISTRATION_INVALID)
        commitment = {"root": p.randomisation.root, "scheme": SCHEME,
                      "strata": sorted([s.name, s.slots] for s in p.randomisation.strata)}
    elif p.randomisation is not None:
        raise TxFailed("only a randomised design carries an allocation commitment", Code.TRIAL_REGISTRATION_INVALID)
    identity.require_org(state, ctx.signer.org or "")
    trial = ctx.derive_id("trl")
    h, t = ctx.env.height, ctx.env.time_ms
    doc = ds.to_json()
    rec = TrialRecord(trial, ctx.signer.org or "", ctx.signer.key, h, t, 1, h, t, doc, commitment)
    put_trial(state, rec)
    put_registration(state, trial, RegistrationVersion(1, doc, h, t, ctx.signer.key, None))
    put_study(state, trial_study(rec, ds))
    put_status(state, TrialStatus(trial, ctx.signer.org or "", ds.recruitment_status, ds.sample_size.target,
                                  randomised, ds.design.masking != "none", 1, 1, 0, (), None, None, None, None))
    put_protocol(state, trial, ProtocolVersion(1, p.protocol.document_hash, p.protocol.consent_form_hash, None, True,
                                               h, t, ctx.signer.key))
    ctx.emit("trial_registered", trial=trial, sponsor=ctx.signer.org)
    return {"trial": trial, "registration_version": 1, "protocol_version": 1}


# --- registration versions ------------------------------------------------------------------------

def _new_version(state: Overlay, ctx: TxContext, status: TrialStatus, ds: TrialRegistrationDataSet,
                 reason: str) -> Any:
    rec = get_trial(state, status.trial)
    assert rec is not None  # a status record is written with its trial
    old = TrialRegistrationDataSet.model_validate(rec.dataset)
    if ds.design.allocation != old.design.allocation or ds.design.masking != old.design.masking:
        raise TxFailed("allocation and masking are bound to the randomisation commitment and cannot change",
                       Code.TRIAL_REGISTRATION_INVALID)
    if status.lock is not None and ds.recruitment_status in ("pending", "recruiting"):
        raise TxFailed("a locked trial cannot recruit", Code.TRIAL_LOCKED)
    version = rec.version + 1
    doc = ds.to_json()
    rec = replace(rec, version=version, updated_height=ctx.env.height, updated_ms=ctx.env.time_ms, dataset=doc)
    put_trial(state, rec)
    put_registration(state, status.trial, RegistrationVersion(version, doc, ctx.env.height, ctx.env.time_ms,
                                                              ctx.signer.key, reason))
    put_study(state, trial_study(rec, ds))
    put_status(state, replace(status, recruitment=ds.recruitment_status, target=ds.sample_size.target))
    ctx.emit("trial_registration_updated", trial=status.trial, version=version)
    return {"trial": status.trial, "registration_version": version}


class UpdateRegistration(Payload):
    trial: TrialId
    dataset: TrialRegistrationDataSet
    reason: LongReason


def authorize_sponsor(state: Overlay, ctx: TxContext, p: Any) -> None:
    require_sponsor(ctx, require_status(state, p.trial))


def apply_update_registration(state: Overlay, ctx: TxContext, p: UpdateRegistration) -> Any:
    """A new registration version. Raises TRIAL_REGISTRATION_INVALID (inconsistent data set, or a changed
    allocation or masking) or TRIAL_LOCKED (recruiting again after lock)."""
    status = require_status(state, p.trial)
    _check(p.dataset)
    return _new_version(state, ctx, status, p.dataset, p.reason)


class SetRecruitmentStatus(Payload):
    trial: TrialId
    status: RecruitmentStatus
    reason: LongReason


def apply_set_recruitment_status(state: Overlay, ctx: TxContext, p: SetRecruitmentStatus) -> Any:
    """A new registration version with item 18 changed. Raises TRIAL_STATUS_INVALID (no change) or
    TRIAL_LOCKED (recruiting again after lock)."""
    status = require_status(state, p.trial)
    if status.recruitment == p.status:
        raise TxFailed(f"recruitment is already {p.status}", Code.TRIAL_STATUS_INVALID)
    rec = get_trial(state, p.trial)
    assert rec is not None
    ds = TrialRegistrationDataSet.model_validate({**rec.dataset, "recruitment_status": p.status})
    return _new_version(state, ctx, status, ds, p.reason)


# --- protocol versions ----------------------------------------------------------------------------

class AmendProtocol(Payload):
    trial: TrialId
    version: Annotated[int, Field(ge=2, le=9999)]
    document_hash: Hex32
    consent_form_hash: Hex32
    reason: LongReason
    reconsent_required: bool


def apply_amend_protocol(state: Overlay, ctx: TxContext, p: AmendProtocol) -> Any:
    """Protocol version n+1. Raises TRIAL_LOCKED, or TRIAL_PROTOCOL_VERSION_CONFLICT unless ``version``
    is the current version plus one. With ``reconsent_required``, enrolments and visits need consent
    to this version (or a later one) from its block on."""
    status = require_status(state, p.trial)
    require_unlocked(status)
    if p.version != status.protocol_version + 1:
        raise TxFailed(f"the protocol is at version {status.protocol_version}; the amendment must be version "
                       f"{status.protocol_version + 1}", Code.TRIAL_PROTOCOL_VERSION_CONFLICT)
    put_protocol(state, p.trial, ProtocolVersion(p.version, p.document_hash, p.consent_form_hash, p.reason,
                                                 p.reconsent_required, ctx.env.height, ctx.env.time_ms,
                                                 ctx.signer.key))
    put_status(state, replace(status, protocol_version=p.version,
                              reconsent_version=p.version if p.reconsent_required else status.reconsent_version))
    ctx.emit("protocol_amended", trial=p.trial, version=p.version, reconsent_required=p.reconsent_required)
    return {"trial": p.trial, "protocol_version": p.version, "reconsent_required": p.reconsent_required}


# --- sites ----------------------------------------------------------------------------------------

class Investigator(Payload):
    key: PublicKeyHex
    role: Literal["principal_investigator", "sub_investigator", "study_coordinator"]


Investigators = Annotated[list[Investigator], Field(min_length=1, max_length=64)]


def _check_investigators(state: Overlay, org: str, investigators: list[Investigator]) -> tuple[tuple[str, str], ...]:
    """Raises TRIAL_INVESTIGATOR_INVALID for a repeated key, no principal investigator, or a key that
    is not an active member of the site organisation holding a clinical or research role."""
    keys = [i.key for i in investigators]
    if len(set(keys)) != len(keys):
        raise TxFailed("an investigator is named twice", Code.TRIAL_INVESTIGATOR_INVALID)
    if not any(i.role == "principal_investigator" for i in investigators):
        raise TxFailed("a site needs a principal investigator", Code.TRIAL_INVESTIGATOR_INVALID)
    for i in investigators:
        signer = identity.resolve_signer(state, i.key)
        if signer.kind != "member" or signer.org != org or not signer.active \
                or not signer.has_role(*INVESTIGATOR_MEMBER_ROLES):
            raise TxFailed(f"investigator {i.key[:12]}… is not an active {'/'.join(INVESTIGATOR_MEMBER_ROLES)} member "
                           f"of {org!r}", Code.TRIAL_INVESTIGATOR_INVALID)
    return tuple(sorted((i.key, i.role) for i in investigators))


class AddSite(Payload):
    trial: TrialId
    org: OrgId
    ethics: EthicsReview
    investigators: Investigators


def apply_add_site(state: Overlay, ctx: TxContext, p: AddSite) -> Any:
    """Add a site. Raises TRIAL_LOCKED, ORG_UNKNOWN / ORG_INACTIVE, TRIAL_SITE_EXISTS,
    TRIAL_ETHICS_NOT_APPROVED (the site's ethics review is not an approval with its date), or
    TRIAL_INVESTIGATOR_INVALID."""
    status = require_status(state, p.trial)
    require_unlocked(status)
    identity.require_org(state, p.org)
    if get_site(state, p.trial, p.org) is not None:
        raise TxFailed(f"{p.org!r} is already a site of trial {p.trial}", Code.TRIAL_SITE_EXISTS)
    if p.ethics.status != "approved" or p.ethics.approval_date is None:
        raise TxFailed("a site needs its ethics committee's approval, with its date", Code.TRIAL_ETHICS_NOT_APPROVED)
    investigators = _check_investigators(state, p.org, p.investigators)
    put_site(state, p.trial, SiteRecord(p.org, "active", p.ethics.model_dump(mode="json"), investigators,
                                        ctx.env.height, ctx.env.time_ms))
    ctx.emit("trial_site_added", trial=p.trial, org=p.org)
    return {"trial": p.trial, "site": p.org, "status": "active"}


class SetSiteStatus(Payload):
    trial: TrialId
    org: OrgId
    status: Literal["active", "suspended", "closed"]
    reason: LongReason


def apply_set_site_status(state: Overlay, ctx: TxContext, p: SetSiteStatus) -> Any:
    """Activate, suspend or close a site. Raises TRIAL_SITE_UNKNOWN, or TRIAL_STATUS_INVALID for no change
    or for reopening a closed site."""
    require_status(state, p.trial)
    site = require_site(state, p.trial, p.org)
    if site.status in (p.status, "closed"):
        raise TxFailed(f"site {p.org!r} is {site.status}; it cannot become {p.status}", Code.TRIAL_STATUS_INVALID)
    put_site(state, p.trial, replace(site, status=p.status, height=ctx.env.height, time_ms=ctx.env.time_ms))
    ctx.emit("trial_site_status", trial=p.trial, org=p.org, status=p.status)
    return {"trial": p.trial, "site": p.org, "status": p.status}


class SetSiteInvestigators(Payload):
    trial: TrialId
    org: OrgId
    investigators: Investigators


def authorize_site_investigators(state: Overlay, ctx: TxContext, p: SetSiteInvestigators) -> None:
    """The sponsor, or an admin of the site organisation."""
    status = require_status(state, p.trial)
    if ctx.signer.kind == "admin" and ctx.signer.org == p.org:
        return
    require_sponsor(ctx, status)


def apply_set_site_investigators(state: Overlay, ctx: TxContext, p: SetSiteInvestigators) -> Any:
    """Replace a site's investigators. Raises TRIAL_SITE_UNKNOWN or TRIAL_INVESTIGATOR_INVALID."""
    require_status(state, p.trial)
    site = require_site(state, p.trial, p.org)
    investigators = _check_investigators(state, p.org, p.investigators)
    put_site(state, p.trial, replace(site, investigators=investigators))
    ctx.emit("trial_site_investigators", trial=p.trial, org=p.org, count=len(investigators))
    return {"trial": p.trial, "site": p.org, "investigators": len(investigators)}


HANDLERS: list[Handler[Any]] = [
    Handler("trials.register", 1, Register, apply_register, authorize_register,
            summary="A sponsor registers a trial: the WHO data set, protocol v1 hashes, the allocation commitment."),
    Handler("trials.update_registration", 1, UpdateRegistration, apply_update_registration, authorize_sponsor,
            summary="The sponsor files a new registration version (every version is kept), with a reason.",
            read_hints=lambda p: [status_key(p.trial), trial_key(p.trial)]),
    Handler("trials.set_recruitment_status", 1, SetRecruitmentStatus, apply_set_recruitment_status,
            authorize_sponsor, summary="The sponsor changes the recruitment status (a new registration version).",
            read_hints=lambda p: [status_key(p.trial), trial_key(p.trial)]),
    Handler("trials.amend_protocol", 1, AmendProtocol, apply_amend_protocol, authorize_sponsor,
            summary="The sponsor adds a protocol version: document hash, reason, whether re-consent is required.",
            read_hints=lambda p: [status_key(p.trial), protocol_key(p.trial, p.version)]),
    Handler("trials.add_site", 1, AddSite, apply_add_site, authorize_sponsor,
            summary="The sponsor adds a site: a member organisation with its ethics approval and investigators.",
            read_hints=lambda p: [status_key(p.trial), site_key(p.trial, p.org)]),
    Handler("trials.set_site_status", 1, SetSiteStatus, apply_set_site_status, authorize_sponsor,
            summary="The sponsor activates, suspends or closes a site.",
            read_hints=lambda p: [status_key(p.trial), site_key(p.trial, p.org)]),
    Handler("trials.set_site_investigators", 1, SetSiteInvestigators, apply_set_site_investigators,
            authorize_site_investigators, summary="The sponsor or the site's admin sets the site's investigators.",
            read_hints=lambda p: [status_key(p.trial), site_key(p.trial, p.org)]),
]

__all__ = ["HANDLERS", "AddSite", "AmendProtocol", "Investigator", "ProtocolDocument", "RandomisationCommitment",
           "Register", "SetRecruitmentStatus", "SetSiteInvestigators", "SetSiteStatus", "StratumSlots",
           "UpdateRegistration"]
