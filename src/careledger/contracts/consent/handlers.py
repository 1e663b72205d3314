"""The consent contract's transactions: grant (or deny), revoke, appoint and remove delegates, break-glass.

Rules:
* the patient, or a delegate the patient appointed, grants and revokes; only the patient appoints
  or removes delegates;
* a consent names one grantee (an organisation, a member key or a research study), a provision
  (``permit`` or ``deny``), purposes (v3 PurposeOfUse codes), optionally resource types and specific
  records (empty = all), an access period and a data period (records anchored within it). Its id is
  ``cns-`` + the first 24 hex digits of the granting transaction's hash;
* break-glass: a member holding the ``emergency`` role opens a session for one patient with a coded
  reason, for at most :data:`MAX_BREAK_GLASS_MINUTES`; reads under it are flagged in the audit trail.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Literal, TypedDict

from pydantic import Field, StringConstraints

from careledger.contracts import identity
from careledger.contracts.base import Handler, Payload, TxContext
from careledger.contracts.consent.access import acts_for_patient
from careledger.contracts.consent.layout import (
    BreakGlassSession,
    ConsentGrantee,
    ConsentPeriod,
    ConsentPointer,
    ConsentRecord,
    DelegateRecord,
    consent_id_key,
    get_consent,
    get_consent_pointer,
    get_delegate,
    put_break_glass,
    put_consent,
    put_consent_pointer,
    put_delegate,
)
from careledger.contracts.records.layout import Pseudonym, RecordId, ResourceType
from careledger.core.errors import Code, TxFailed
from careledger.core.state import Overlay
from careledger.core.types import NonNegativeInt, PublicKeyHex

PURPOSES = ("TREAT", "ETREAT", "HPAYMT", "HOPERAT", "HRESCH", "PATRQT", "PUBHLTH", "CLINTRCH")
Purpose = Literal["TREAT", "ETREAT", "HPAYMT", "HOPERAT", "HRESCH", "PATRQT", "PUBHLTH", "CLINTRCH"]
ConsentId = Annotated[str, StringConstraints(pattern=r"^cns-[0-9a-f]{24}(-[0-9]{1,4})?$")]
StudyId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$")]
BREAK_GLASS_REASONS = ("unconscious", "life_threatening", "urgent_treatment", "unable_to_consent", "other")
MAX_BREAK_GLASS_MINUTES = 240  # the break-glass window: 4 hours at most
DEFAULT_BREAK_GLASS_MINUTES = 240


def _require_acts_for(state: Overlay, ctx: TxContext, pseudonym: str) -> str:
    role = acts_for_patient(state, ctx.signer, pseudonym, ctx.env.time_ms)
    if role is None:
        raise TxFailed("only the patient or the patient's delegate may do this", Code.NOT_PATIENT_OR_DELEGATE)
    return role


# --- consent.grant --------------------------------------------------------------------------------------

class Grantee(Payload):
    kind: Literal["org", "member", "study"]
    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$")]


class Period(Payload):
    start_ms: NonNegativeInt | None = None
    end_ms: NonNegativeInt | None = None  # exclusive


class Grant(Payload):
    patient: Pseudonym
    grantee: Grantee
    provision: Literal["permit", "deny"] = "permit"
    purposes: Annotated[list[Purpose], Field(min_length=1, max_length=8)]
    resource_types: Annotated[list[ResourceType], Field(max_length=64)] = []
    records: Annotated[list[RecordId], Field(max_length=64)] = []
    period: Period | None = None
    data_period: Period | None = None


class GrantResult(TypedDict):
    consent: str
    provision: str


def _period(p: Period | None) -> ConsentPeriod | None:
    return None if p is None else ConsentPeriod(p.start_ms, p.end_ms)


def authorize_grant(state: Overlay, ctx: TxContext, p: Grant) -> None:
    """Only the patient or an active delegate of the patient grants (NOT_PATIENT_OR_DELEGATE)."""
    _require_acts_for(state, ctx, p.patient)


def apply_grant(state: Overlay, ctx: TxContext, p: Grant) -> GrantResult:
    """Record a consent. Raises PATIENT_UNKNOWN, ORG_UNKNOWN / MEMBER_UNKNOWN for an unknown grantee,
    INVALID_PAYLOAD for an empty period, NOT_PATIENT_OR_DELEGATE."""
    identity.require_patient_active(state, p.patient)
    if p.grantee.kind == "org":
        if identity.get_org(state, p.grantee.id) is None:
            raise TxFailed(f"organisation {p.grantee.id!r} is not a consortium member", Code.ORG_UNKNOWN)
    elif p.grantee.kind == "member" and identity.resolve_identity(state, p.grantee.id).kind not in ("member", "admin"):
        raise TxFailed("the grantee key is not a consortium member's identity key", Code.MEMBER_UNKNOWN)
    for period in (p.period, p.data_period):
        if period is not None and period.start_ms is not None and period.end_ms is not None \
                and period.end_ms <= period.start_ms:
            raise TxFailed("a period must end after it starts", Code.INVALID_PAYLOAD)
    role = _require_acts_for(state, ctx, p.patient)
    cid = ctx.derive_id("cns")
    put_consent(state, ConsentRecord(
        id=cid, patient=p.patient, grantee=ConsentGrantee(p.grantee.kind, p.grantee.id), provision=p.provision,
        purposes=tuple(sorted(set(p.purposes))), resource_types=tuple(sorted(set(p.resource_types))),
        records=tuple(sorted(set(p.records))), period=_period(p.period), data_period=_period(p.data_period),
        status="active", granted_by=ctx.signer.key, granted_by_kind=role, granted_height=ctx.env.height,
        granted_ms=ctx.env.time_ms))
    put_consent_pointer(state, cid, ConsentPointer(p.patient))
    ctx.emit("consent_granted", consent=cid)
    return {"consent": cid, "provision": p.provision}


# --- consent.revoke -------------------------------------------------------------------------------------

class Revoke(Payload):
    consent: ConsentId


class RevokeResult(TypedDict):
    consent: str
    revoked_height: int


def _consent_of(state: Overlay, consent_id: str) -> ConsentRecord:
    ptr = get_consent_pointer(state, consent_id)
    if ptr is None:
        raise TxFailed(f"no consent {consent_id}", Code.CONSENT_UNKNOWN)
    rec = get_consent(state, ptr.patient, consent_id)
    assert rec is not None  # written with its pointer
    return rec


def authorize_revoke(state: Overlay, ctx: TxContext, p: Revoke) -> None:
    """The consent must exist (CONSENT_UNKNOWN) and be active (CONSENT_REVOKED); only the patient or an
    active delegate revokes (NOT_PATIENT_OR_DELEGATE)."""
    rec = _consent_of(state, p.consent)
    _require_acts_for(state, ctx, rec.patient)
    if not rec.is_active:
        raise TxFailed(f"consent {p.consent} is already revoked", Code.CONSENT_REVOKED)


def apply_revoke(state: Overlay, ctx: TxContext, p: Revoke) -> RevokeResult:
    rec = _consent_of(state, p.consent)
    put_consent(state, replace(rec, status="revoked", revoked_by=ctx.signer.key, revoked_height=ctx.env.height,
                               revoked_ms=ctx.env.time_ms))
    ctx.emit("consent_revoked", consent=p.consent)
    return {"consent": p.consent, "revoked_height": ctx.env.height}


# --- delegates ------------------------------------------------------------------------------------------

class AppointDelegate(Payload):
    delegate: PublicKeyHex
    until_ms: NonNegativeInt | None = None


class DelegateResult(TypedDict):
    patient: str
    delegate: str


def authorize_patient_only(state: Overlay, ctx: TxContext, p: object) -> None:
    """Only the patient appoints or removes delegates (NOT_PATIENT_OR_DELEGATE)."""
    if ctx.signer.kind != "patient":
        raise TxFailed("only the patient may appoint or remove delegates", Code.NOT_PATIENT_OR_DELEGATE)


def apply_appoint_delegate(state: Overlay, ctx: TxContext, p: AppointDelegate) -> DelegateResult:
    """Appoint (or re-appoint) a delegate. Raises INVALID_STATE (oneself) or DELEGATE_UNKNOWN (an
    unregistered key)."""
    pseudonym = identity.compute_pseudonym(ctx.signer.key)
    if p.delegate == ctx.signer.key:
        raise TxFailed("a patient cannot be their own delegate", Code.INVALID_STATE)
    if identity.resolve_identity(state, p.delegate).kind == identity.UNREGISTERED:
        raise TxFailed("the delegate must be named by a registered identity key", Code.DELEGATE_UNKNOWN)
    put_delegate(state, pseudonym, p.delegate, DelegateRecord("active", ctx.env.height, p.until_ms))
    ctx.emit("delegate_appointed", patient=pseudonym)
    return {"patient": pseudonym, "delegate": p.delegate}


class RemoveDelegate(Payload):
    delegate: PublicKeyHex


def apply_remove_delegate(state: Overlay, ctx: TxContext, p: RemoveDelegate) -> DelegateResult:
    """Remove an active delegate. Raises DELEGATE_UNKNOWN."""
    pseudonym = identity.compute_pseudonym(ctx.signer.key)
    rec = get_delegate(state, pseudonym, p.delegate)
    if rec is None or rec.status != "active":
        raise TxFailed("no such active delegate", Code.DELEGATE_UNKNOWN)
    put_delegate(state, pseudonym, p.delegate, replace(rec, status="removed", removed=ctx.env.height))
    return {"patient": pseudonym, "delegate": p.delegate}


# --- break-glass ----------------------------------------------------------------------------------------

class BreakGlass(Payload):
    patient: Pseudonym
    reason: Literal["unconscious", "life_threatening", "urgent_treatment", "unable_to_consent", "other"]
    minutes: Annotated[int, Field(ge=1, le=MAX_BREAK_GLASS_MINUTES)] = DEFAULT_BREAK_GLASS_MINUTES


class BreakGlassResult(TypedDict):
    patient: str
    expires_ms: int


def authorize_break_glass(state: Overlay, ctx: TxContext, p: BreakGlass) -> None:
    """Only a member holding the emergency role opens a session (EMERGENCY_ROLE_REQUIRED)."""
    if ctx.signer.kind != "member" or not ctx.signer.has_role("emergency"):
        raise TxFailed("break-glass needs a member holding the emergency role", Code.EMERGENCY_ROLE_REQUIRED)


def apply_break_glass(state: Overlay, ctx: TxContext, p: BreakGlass) -> BreakGlassResult:
    """Open a session of ``p.minutes`` for one patient and log it. Raises PATIENT_UNKNOWN."""
    identity.require_patient_active(state, p.patient)
    session = BreakGlassSession(org=ctx.signer.org, reason=p.reason, opened_ms=ctx.env.time_ms,
                                expires_ms=ctx.env.time_ms + p.minutes * 60_000, height=ctx.env.height)
    put_break_glass(state, p.patient, ctx.signer.key, session, ctx.env.height, ctx.index)
    ctx.emit("break_glass_opened", org=ctx.signer.org)
    return {"patient": p.patient, "expires_ms": session.expires_ms}


HANDLERS: list[Handler[Any]] = [
    Handler("consent.grant", 1, Grant, apply_grant, authorize_grant,
            summary="The patient or a delegate grants (or denies) access to an organisation, member or study.",
            read_hints=lambda p: [identity.patient_key(p.patient)]),
    Handler("consent.revoke", 1, Revoke, apply_revoke, authorize_revoke,
            summary="The patient or a delegate revokes a consent; it stops covering from the next block.",
            read_hints=lambda p: [consent_id_key(p.consent)]),
    Handler("consent.appoint_delegate", 1, AppointDelegate, apply_appoint_delegate, authorize_patient_only,
            summary="A patient appoints a delegate (e.g. a guardian) who may act for them."),
    Handler("consent.remove_delegate", 1, RemoveDelegate, apply_remove_delegate, authorize_patient_only,
            summary="A patient removes a delegate."),
    Handler("consent.break_glass", 1, BreakGlass, apply_break_glass, authorize_break_glass,
            summary="An emergency member opens a time-limited break-glass session for one patient.",
            read_hints=lambda p: [identity.patient_key(p.patient)]),
]
