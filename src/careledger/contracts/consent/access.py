"""The consent check: may a requester read a record of a patient now? Pure over a committed state reader.

:func:`evaluate_access` is the one consent check, used by every custodian's gateway and by the ledger
queries. Deny provisions override permits; a revoked consent stops covering from the block after its
revocation commits (checks read committed state); a break-glass session covers an emergency member's
reads of one patient until it expires, and such reads are flagged in the audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass

from careledger.contracts.base import Reader, Signer
from careledger.contracts.consent.layout import (
    ConsentGrantee,
    ConsentRecord,
    consents_of,
    get_break_glass,
    is_active_delegate,
)
from careledger.contracts.identity import UNREGISTERED, is_org_signer, is_patient_key
from careledger.contracts.records.layout import HeadRecord
from careledger.core.errors import Code, LedgerError

READER_ROLES = ("data_steward", "physician", "nurse", "registrar")
"""Members of the record's custodian holding one of these roles read it without a consent."""


def acts_for_patient(state: Reader, signer: Signer, pseudonym: str, now_ms: int) -> str | None:
    """``patient`` or ``delegate`` when ``signer`` may act for the patient at ``now_ms``; else None."""
    if is_patient_key(signer, pseudonym):
        return "patient"
    if signer.active and signer.kind != UNREGISTERED and is_active_delegate(state, pseudonym, signer.key, now_ms):
        return "delegate"
    return None


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


def _grantee_matches(grantee: ConsentGrantee, requester: Signer, study: str | None) -> bool:
    if grantee.kind == "org":
        return requester.org == grantee.id
    if grantee.kind == "member":
        return requester.key == grantee.id
    return study is not None and study == grantee.id and requester.has_role("researcher")


# stage at which a permit stops covering a request: later stages are "closer" to covering it
_STAGES = (Code.CONSENT_PURPOSE_NOT_COVERED, Code.CONSENT_TYPE_NOT_COVERED, Code.CONSENT_RECORD_NOT_COVERED,
           Code.CONSENT_PERIOD_NOT_COVERED)
_COVERS = len(_STAGES)


def _first_gap(c: ConsentRecord, purpose: str, record: str, head: HeadRecord, now_ms: int) -> int:
    """The index in :data:`_STAGES` where consent ``c`` stops covering, or ``len(_STAGES)`` if it covers."""
    if purpose not in c.purposes:
        return 0
    if c.resource_types and head.type not in c.resource_types:
        return 1
    if c.records and record not in c.records:
        return 2
    if (c.period is not None and not c.period.contains(now_ms)) or \
            (c.data_period is not None and not c.data_period.contains(head.created_ms)):
        return 3
    return _COVERS


def evaluate_access(state: Reader, requester: Signer, pseudonym: str, record: str, head: HeadRecord, purpose: str,
                    now_ms: int, *, emergency: bool = False, study: str | None = None) -> AccessDecision:
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
        session = get_break_glass(state, pseudonym, requester.key)
        if session is None or session.expires_ms <= now_ms:
            raise AccessDenied("no open break-glass session for this patient", Code.BREAK_GLASS_REQUIRED)
        return AccessDecision("emergency")
    who = acts_for_patient(state, requester, pseudonym, now_ms)
    if who is not None:
        return AccessDecision(who)
    if is_org_signer(requester, head.custodian, READER_ROLES):
        return AccessDecision("custodian")
    best, best_gap, revoked_seen = None, -1, False
    for c in consents_of(state, pseudonym):
        if not _grantee_matches(c.grantee, requester, study):
            continue
        if not c.is_active:
            revoked_seen = True
            continue
        gap = _first_gap(c, purpose, record, head, now_ms)
        if c.provision == "deny":
            if gap == _COVERS:
                raise AccessDenied(f"consent {c.id} denies this access", Code.CONSENT_DENIED)
            continue
        if gap == _COVERS:
            if best is None:
                best = c.id
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
