"""Consent contract, modelled on FHIR Consent: grants, denials, revocation, delegates and break-glass.

State (keys are ``consent/...``; everything about one patient lives under that patient's prefix, so a
consent check reads one patient's consents and nothing else)::

    consent/patient/<pseudonym>/<consent id>      {id, patient, grantee, provision, purposes, resource_types,
                                                   records, period, data_period, status, granted_*, revoked_*}
    consent/id/<consent id>                       {patient}                     (lookup for revocation)
    consent/delegate/<pseudonym>/<key>            {status, since, until_ms}     (guardians and other delegates)
    consent/breakglass/<pseudonym>/<requester>    {org, reason, opened_ms, expires_ms, height}  (current session)
    consent/breakglass-log/<pseudonym>/<h>-<i>    the same plus requester                         (history)

Rules:
* the patient, or a delegate the patient appointed, grants and revokes; only the patient appoints
  or removes delegates;
* a consent names one grantee (an organisation, a member key or a research study), a provision
  (``permit`` or ``deny``), purposes (v3 PurposeOfUse codes), optionally resource types and specific
  records (empty = all), an access period and a data period (records anchored within it);
* deny provisions override permits; a revoked consent stays in history and stops covering from the
  block after its revocation commits (checks read committed state);
* break-glass: a member holding the ``emergency`` role opens a session for one patient with a coded
  reason, for at most :data:`MAX_BREAK_GLASS_MINUTES`; reads under it are flagged in the audit trail.

:func:`evaluate_access` is the one consent check, used by every custodian's gateway and by the
ledger queries; it is pure over a committed state reader.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from careledger.contracts import identity
from careledger.contracts.base import Handler, Payload, Signer, TxContext
from careledger.contracts.consent.layout import (
    breakglass_key,
    breakglass_log_prefix,
    consent_id_key,
    consent_key,
    consent_prefix,
    delegate_key,
    is_active_delegate,
)
from careledger.contracts.identity import is_org_signer as is_custodian_signer
from careledger.contracts.identity import is_patient_key, require_patient_active
from careledger.contracts.records.layout import HeadRecord, Pseudonym, RecordId, ResourceType
from careledger.core.codec import decode_trusted
from careledger.core.errors import Code, LedgerError, TxFailed
from careledger.core.state import Overlay, StateReader
from careledger.core.types import NonNegativeInt, PublicKeyHex

PURPOSES = ("TREAT", "ETREAT", "HPAYMT", "HOPERAT", "HRESCH", "PATRQT", "PUBHLTH", "CLINTRCH")
Purpose = Literal["TREAT", "ETREAT", "HPAYMT", "HOPERAT", "HRESCH", "PATRQT", "PUBHLTH", "CLINTRCH"]
ConsentId = Annotated[str, StringConstraints(pattern=r"^cns-[0-9a-f]{24}(-[0-9]{1,4})?$")]
StudyId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$")]
BREAK_GLASS_REASONS = ("unconscious", "life_threatening", "urgent_treatment", "unable_to_consent", "other")
MAX_BREAK_GLASS_MINUTES = 240  # the break-glass window: 4 hours at most
DEFAULT_BREAK_GLASS_MINUTES = 240


# --- who acts for a patient -----------------------------------------------------------------------------

def acts_for_patient(state: StateReader | Overlay, signer: Signer, pseudonym: str, now_ms: int) -> str | None:
    """``patient`` or ``delegate`` when ``signer`` may act for the patient at ``now_ms``; else None."""
    if is_patient_key(signer, pseudonym):
        return "patient"
    if signer.active and signer.kind != "unregistered" and is_active_delegate(state, pseudonym, signer.key, now_ms):
        return "delegate"
    return None


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


def _period_json(p: Period | None) -> dict[str, Any] | None:
    return None if p is None else {"end_ms": p.end_ms, "start_ms": p.start_ms}


def authorize_grant(state: Overlay, ctx: TxContext, p: Grant) -> None:
    _require_acts_for(state, ctx, p.patient)


def apply_grant(state: Overlay, ctx: TxContext, p: Grant) -> Any:
    """Record a consent. Raises PATIENT_UNKNOWN, ORG_UNKNOWN / MEMBER_UNKNOWN for an unknown grantee,
    INVALID_PAYLOAD for an empty period."""
    require_patient_active(state, p.patient)
    if p.grantee.kind == "org":
        if identity.get_org(state, p.grantee.id) is None:
            raise TxFailed(f"organisation {p.grantee.id!r} is not a consortium member", Code.ORG_UNKNOWN)
    elif p.grantee.kind == "member":
        rec = state.get(identity.key_key(p.grantee.id))
        if rec is None or rec["kind"] not in ("member", "admin"):
            raise TxFailed("the grantee key is not a consortium member", Code.MEMBER_UNKNOWN)
    for period in (p.period, p.data_period):
        if period is not None and period.start_ms is not None and period.end_ms is not None \
                and period.end_ms <= period.start_ms:
            raise TxFailed("a period must end after it starts", Code.INVALID_PAYLOAD)
    role = _require_acts_for(state, ctx, p.patient)
    cid = ctx.derive_id("cns")
    record = {
        "data_period": _period_json(p.data_period), "grantee": {"id": p.grantee.id, "kind": p.grantee.kind},
        "granted_by": ctx.signer.key, "granted_by_kind": role, "granted_height": ctx.env.height,
        "granted_ms": ctx.env.time_ms, "id": cid, "patient": p.patient, "period": _period_json(p.period),
        "provision": p.provision, "purposes": sorted(set(p.purposes)), "records": sorted(set(p.records)),
        "resource_types": sorted(set(p.resource_types)), "status": "active",
    }
    state.put(consent_key(p.patient, cid), record)
    state.put(consent_id_key(cid), {"patient": p.patient})
    ctx.emit("consent_granted", consent=cid)
    return {"consent": cid, "provision": p.provision}


# --- consent.revoke -------------------------------------------------------------------------------------

class Revoke(Payload):
    consent: ConsentId


def _consent_of(state: StateReader | Overlay, consent_id: str) -> dict[str, Any]:
    ptr = state.get_raw(consent_id_key(consent_id))
    if ptr is None:
        raise TxFailed(f"no consent {consent_id}", Code.CONSENT_UNKNOWN)
    raw = state.get_raw(consent_key(decode_trusted(ptr)["patient"], consent_id))
    assert raw is not None
    return decode_trusted(raw)  # type: ignore[no-any-return]


def authorize_revoke(state: Overlay, ctx: TxContext, p: Revoke) -> None:
    rec = _consent_of(state, p.consent)
    _require_acts_for(state, ctx, rec["patient"])
    if rec["status"] != "active":
        raise TxFailed(f"consent {p.consent} is already revoked", Code.CONSENT_REVOKED)


def apply_revoke(state: Overlay, ctx: TxContext, p: Revoke) -> Any:
    rec = _consent_of(state, p.consent)
    state.put(consent_key(rec["patient"], p.consent), {
        **rec, "revoked_by": ctx.signer.key, "revoked_height": ctx.env.height, "revoked_ms": ctx.env.time_ms,
        "status": "revoked"})
    ctx.emit("consent_revoked", consent=p.consent)
    return {"consent": p.consent, "revoked_height": ctx.env.height}


# --- delegates ------------------------------------------------------------------------------------------

class AppointDelegate(Payload):
    delegate: PublicKeyHex
    until_ms: NonNegativeInt | None = None


def authorize_patient_only(state: Overlay, ctx: TxContext, p: Any) -> None:
    if ctx.signer.kind != "patient":
        raise TxFailed("only the patient may appoint or remove delegates", Code.NOT_PATIENT_OR_DELEGATE)


def apply_appoint_delegate(state: Overlay, ctx: TxContext, p: AppointDelegate) -> Any:
    pseudonym = identity.compute_pseudonym(ctx.signer.key)
    if p.delegate == ctx.signer.key:
        raise TxFailed("a patient cannot be their own delegate", Code.INVALID_STATE)
    if identity.resolve_signer(state, p.delegate).kind == "unregistered":
        raise TxFailed("the delegate must hold a registered key", Code.DELEGATE_UNKNOWN)
    state.put(delegate_key(pseudonym, p.delegate), {"since": ctx.env.height, "status": "active",
                                                    "until_ms": p.until_ms})
    ctx.emit("delegate_appointed", patient=pseudonym)
    return {"patient": pseudonym, "delegate": p.delegate}


class RemoveDelegate(Payload):
    delegate: PublicKeyHex


def apply_remove_delegate(state: Overlay, ctx: TxContext, p: RemoveDelegate) -> Any:
    pseudonym = identity.compute_pseudonym(ctx.signer.key)
    rec = state.get(delegate_key(pseudonym, p.delegate))
    if rec is None or rec["status"] != "active":
        raise TxFailed("no such active delegate", Code.DELEGATE_UNKNOWN)
    state.put(delegate_key(pseudonym, p.delegate), {**rec, "removed": ctx.env.height, "status": "removed"})
    return {"patient": pseudonym, "delegate": p.delegate}


# --- break-glass ----------------------------------------------------------------------------------------

class BreakGlass(Payload):
    patient: Pseudonym
    reason: Literal["unconscious", "life_threatening", "urgent_treatment", "unable_to_consent", "other"]
    minutes: Annotated[int, Field(ge=1, le=MAX_BREAK_GLASS_MINUTES)] = DEFAULT_BREAK_GLASS_MINUTES


def authorize_break_glass(state: Overlay, ctx: TxContext, p: BreakGlass) -> None:
    if ctx.signer.kind != "member" or not ctx.signer.has_role("emergency"):
        raise TxFailed("break-glass needs a member holding the emergency role", Code.EMERGENCY_ROLE_REQUIRED)


def apply_break_glass(state: Overlay, ctx: TxContext, p: BreakGlass) -> Any:
    require_patient_active(state, p.patient)
    session = {"expires_ms": ctx.env.time_ms + p.minutes * 60_000, "height": ctx.env.height, "org": ctx.signer.org,
               "opened_ms": ctx.env.time_ms, "reason": p.reason}
    state.put(breakglass_key(p.patient, ctx.signer.key), session)
    state.put(f"{breakglass_log_prefix(p.patient)}{ctx.env.height:012d}-{ctx.index:05d}",
              {**session, "requester": ctx.signer.key})
    ctx.emit("break_glass_opened", org=ctx.signer.org)
    return {"patient": p.patient, "expires_ms": session["expires_ms"]}


# --- the consent check ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class AccessDecision:
    """Why a read is allowed: ``patient``, ``delegate``, ``custodian``, ``consent`` or ``emergency``."""

    mode: str
    consent: str | None = None

    @property
    def emergency(self) -> bool:
        return self.mode == "emergency"


class AccessDenied(LedgerError):
    default_code = Code.CONSENT_REQUIRED


def _in_period(period: dict[str, Any] | None, t: int) -> bool:
    if period is None:
        return True
    start, end = period.get("start_ms"), period.get("end_ms")
    return (start is None or t >= start) and (end is None or t < end)


def _grantee_matches(grantee: dict[str, Any], requester: Signer, study: str | None) -> bool:
    kind = grantee["kind"]
    if kind == "org":
        return bool(requester.org == grantee["id"])
    if kind == "member":
        return bool(requester.key == grantee["id"])
    return study is not None and study == grantee["id"] and requester.has_role("researcher")


# stage at which a permit stops covering a request: later stages are "closer" to covering it
_STAGES = (Code.CONSENT_PURPOSE_NOT_COVERED, Code.CONSENT_TYPE_NOT_COVERED, Code.CONSENT_RECORD_NOT_COVERED,
           Code.CONSENT_PERIOD_NOT_COVERED)


def _first_gap(c: dict[str, Any], purpose: str, record: str, head: HeadRecord, now_ms: int) -> int:
    """The index in :data:`_STAGES` where consent ``c`` stops covering, or ``len(_STAGES)`` if it covers."""
    if purpose not in c["purposes"]:
        return 0
    if c["resource_types"] and head.type not in c["resource_types"]:
        return 1
    if c["records"] and record not in c["records"]:
        return 2
    if not _in_period(c["period"], now_ms) or not _in_period(c["data_period"], head.created_ms):
        return 3
    return 4


def evaluate_access(state: StateReader | Overlay, requester: Signer, pseudonym: str, record: str,
                    head: HeadRecord, purpose: str, now_ms: int, *, emergency: bool = False,
                    study: str | None = None) -> AccessDecision:
    """May ``requester`` read version(s) of ``record`` (summary ``head``) of patient ``pseudonym`` now?

    Reads only the patient's own keys, so its cost does not depend on other patients' consents.
    Raises :class:`AccessDenied` with one of: SIGNER_REVOKED (inactive requester),
    RECORD_PATIENT_MISMATCH (the record is another patient's), RECORD_ERASED,
    EMERGENCY_ROLE_REQUIRED / BREAK_GLASS_REQUIRED (emergency read without role or open session),
    CONSENT_DENIED (a deny provision matches: denials override permits), CONSENT_REVOKED (only
    revoked consents name the requester), CONSENT_REQUIRED (none does), or the first gap of the
    closest active permit: CONSENT_PURPOSE_NOT_COVERED, CONSENT_TYPE_NOT_COVERED,
    CONSENT_RECORD_NOT_COVERED, CONSENT_PERIOD_NOT_COVERED.
    """
    if not requester.active:
        raise AccessDenied("the requester's key or organisation is not active", Code.SIGNER_REVOKED)
    if head.pseudonym != pseudonym:
        raise AccessDenied("the record does not belong to this patient", Code.RECORD_PATIENT_MISMATCH)
    if head.is_erased:
        raise AccessDenied("the record was erased", Code.RECORD_ERASED)
    if emergency:
        if requester.kind != "member" or not requester.has_role("emergency"):
            raise AccessDenied("emergency access needs the emergency role", Code.EMERGENCY_ROLE_REQUIRED)
        raw = state.get_raw(breakglass_key(pseudonym, requester.key))
        if raw is None or decode_trusted(raw)["expires_ms"] <= now_ms:
            raise AccessDenied("no open break-glass session for this patient", Code.BREAK_GLASS_REQUIRED)
        return AccessDecision("emergency")
    who = acts_for_patient(state, requester, pseudonym, now_ms)
    if who is not None:
        return AccessDecision(who)
    if is_custodian_signer(requester, head.custodian, ("data_steward", "physician", "nurse", "registrar")):
        return AccessDecision("custodian")
    best, best_gap, revoked_seen = None, -1, False
    for _, raw in state.scan_raw(consent_prefix(pseudonym)):
        c = decode_trusted(raw)
        if not _grantee_matches(c["grantee"], requester, study):
            continue
        if c["status"] != "active":
            revoked_seen = True
            continue
        gap = _first_gap(c, purpose, record, head, now_ms)
        if c["provision"] == "deny":
            if gap == len(_STAGES):
                raise AccessDenied(f"consent {c['id']} denies this access", Code.CONSENT_DENIED)
            continue
        if gap == len(_STAGES):
            if best is None:
                best = c["id"]
            best_gap = gap
        elif gap > best_gap:
            best_gap = gap
    if best is not None:
        return AccessDecision("consent", best)
    if best_gap >= 0:
        raise AccessDenied("no consent covers this request", _STAGES[best_gap])
    if revoked_seen:
        raise AccessDenied("the consent for this requester was revoked", Code.CONSENT_REVOKED)
    raise AccessDenied("the patient has not consented to this requester", Code.CONSENT_REQUIRED)


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
