"""The audit contract's transaction: ``audit.record``, written by a custodian's gateway.

A custodian's gateway signs ``audit.record`` with its own key (an admin of the custodian or a member
holding the ``data_steward`` role: the *gateway key*). Each entry says who asked (key and
organisation), about which patient pseudonym and record, for which purpose, the outcome and its
code, whether it was an emergency (break-glass) read, and the hash of the signed request.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypedDict

from pydantic import Field

from careledger.contracts.audit.layout import AuditRecord, put_audit
from careledger.contracts.base import Handler, Payload, TxContext
from careledger.contracts.consent import ConsentId, Purpose
from careledger.contracts.records import CUSTODIAN_ROLES, Pseudonym, RecordId, is_custodian_signer
from careledger.core.errors import Code, TxFailed
from careledger.core.state import Overlay
from careledger.core.types import Hex32, NonNegativeInt, OrgId, PublicKeyHex

MAX_ENTRIES_PER_TX = 256


class AuditEntry(Payload):
    pseudonym: Pseudonym
    requester: PublicKeyHex
    requester_org: OrgId | None
    record: RecordId | None
    purpose: Purpose
    outcome: Literal["granted", "denied"]
    code: Annotated[int, Field(ge=0, le=65535)]
    mode: Literal["patient", "delegate", "custodian", "consent", "emergency", "none"]
    consent: ConsentId | None = None
    emergency: bool = False
    request: Hex32
    request_ms: NonNegativeInt


class Record(Payload):
    entries: Annotated[list[AuditEntry], Field(min_length=1, max_length=MAX_ENTRIES_PER_TX)]


class RecordResult(TypedDict):
    entries: int


def authorize_record(state: Overlay, ctx: TxContext, p: Record) -> None:
    """Only a custodian's gateway key (its admin or a data steward) writes audit entries (AUDIT_NOT_CUSTODIAN)."""
    org = ctx.signer.org
    if org is None or not is_custodian_signer(ctx.signer, org, CUSTODIAN_ROLES):
        raise TxFailed("audit entries are written by a custodian's admin or data steward",
                       Code.AUDIT_NOT_CUSTODIAN)


def apply_record(state: Overlay, ctx: TxContext, p: Record) -> RecordResult:
    """Append each entry to its patient's access log, in order, stamped with the custodian and block."""
    custodian = ctx.signer.org
    assert custodian is not None  # authorize ran on this state
    for n, e in enumerate(p.entries):
        put_audit(state, e.pseudonym, ctx.index, n, AuditRecord(
            custodian=custodian, requester=e.requester, requester_org=e.requester_org, record=e.record,
            purpose=e.purpose, outcome=e.outcome, code=e.code, mode=e.mode, consent=e.consent, emergency=e.emergency,
            request=e.request, request_ms=e.request_ms, height=ctx.env.height, time_ms=ctx.env.time_ms))
    ctx.emit("access_audited", custodian=custodian, count=len(p.entries))
    return {"entries": len(p.entries)}


HANDLERS: list[Handler[Any]] = [
    Handler("audit.record", 1, Record, apply_record, authorize_record,
            summary="A custodian's gateway records access attempts (granted, denied, emergency) for the patients."),
]
