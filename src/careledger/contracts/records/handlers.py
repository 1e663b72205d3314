"""The records contract's transactions: anchor record versions, record an erasure.

Rules:
* record ids are minted by the vault (``r-`` + 32 random hex digits): they carry no meaning and
  reveal nothing about the patient or the resource;
* only an admin of the custodian, or a member of it holding a writer role, anchors; the patient
  pseudonym must be registered and active;
* version 1 creates a record; version n+1 must follow the head (same patient, custodian and type);
* an erased record accepts no new versions; erasure may be asked by the patient, an active delegate
  of the patient, or the custodian (admin or data steward). It marks every anchored version erased;
  the commitments stay (they are unlinkable once the vault destroyed the salt).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Literal, TypedDict

from pydantic import Field

from careledger.contracts import identity
from careledger.contracts.base import Handler, Payload, TxContext
from careledger.contracts.records.layout import (
    ACTIVE,
    ERASED,
    AnchorRecord,
    ErasureRecord,
    HeadRecord,
    PatientIndexEntry,
    Pseudonym,
    RecordId,
    ResourceType,
    Version,
    get_anchor,
    get_head,
    get_index_entry,
    head_key,
    put_anchor,
    put_erasure,
    put_head,
    put_index_entry,
)
from careledger.contracts.records.rules import WRITER_ROLES, erasure_role, is_custodian_signer
from careledger.core.errors import Code, TxFailed
from careledger.core.state import Overlay
from careledger.core.types import Hex32, OrgId, PublicKeyHex

MAX_ANCHORS_PER_TX = 256
ERASURE_REASONS = ("patient_request", "custodian_policy", "retention_expired", "entered_in_error", "legal_order")


# --- records.anchor -------------------------------------------------------------------------------------

class AnchorEntry(Payload):
    record: RecordId
    version: Version
    pseudonym: Pseudonym
    type: ResourceType
    commitment: Hex32
    author: PublicKeyHex | None = None


class Anchor(Payload):
    custodian: OrgId
    anchors: Annotated[list[AnchorEntry], Field(min_length=1, max_length=MAX_ANCHORS_PER_TX)]


class AnchorResult(TypedDict):
    anchored: list[list[str | int]]  # [record, version] of each anchor, in payload order
    custodian: str


def authorize_anchor(state: Overlay, ctx: TxContext, p: Anchor) -> None:
    """Only the custodian's admin or a member with a writer role may anchor its records (NOT_CUSTODIAN)."""
    if not is_custodian_signer(ctx.signer, p.custodian, WRITER_ROLES):
        raise TxFailed(f"only an admin or a {'/'.join(WRITER_ROLES)} member of {p.custodian!r} may anchor "
                       "its records", Code.NOT_CUSTODIAN)


def apply_anchor(state: Overlay, ctx: TxContext, p: Anchor) -> AnchorResult:
    """Anchor each version. Raises ORG_UNKNOWN, ORG_INACTIVE, PATIENT_UNKNOWN, RECORD_EXISTS, RECORD_UNKNOWN,
    RECORD_VERSION_CONFLICT, RECORD_PATIENT_MISMATCH, NOT_CUSTODIAN or RECORD_ERASED; any refusal rolls
    back the whole batch."""
    identity.require_org(state, p.custodian)
    patients_seen: set[str] = set()
    out: list[list[str | int]] = []
    height, now = ctx.env.height, ctx.env.time_ms
    for a in p.anchors:
        if a.pseudonym not in patients_seen:
            identity.require_patient_active(state, a.pseudonym)
            patients_seen.add(a.pseudonym)
        head = get_head(state, a.record)
        if a.version == 1:
            if head is not None:
                raise TxFailed(f"record {a.record} already exists", Code.RECORD_EXISTS)
            created_ms, prev = now, None
        else:
            if head is None:
                raise TxFailed(f"record {a.record} does not exist", Code.RECORD_UNKNOWN)
            if head.custodian != p.custodian:
                raise TxFailed(f"record {a.record} is held by another custodian", Code.NOT_CUSTODIAN)
            if head.pseudonym != a.pseudonym:
                raise TxFailed(f"record {a.record} belongs to another patient", Code.RECORD_PATIENT_MISMATCH)
            if head.is_erased:
                raise TxFailed(f"record {a.record} was erased", Code.RECORD_ERASED)
            if head.type != a.type or a.version != head.version + 1:
                raise TxFailed(f"record {a.record} is at version {head.version} of {head.type}; got "
                               f"version {a.version} of {a.type}", Code.RECORD_VERSION_CONFLICT)
            created_ms, prev = head.created_ms, head.version
        put_anchor(state, AnchorRecord(a.record, a.version, prev, a.pseudonym, p.custodian, a.type, a.commitment,
                                       a.author, height, now, ACTIVE))
        put_head(state, a.record, HeadRecord(a.pseudonym, p.custodian, a.type, a.version, created_ms, now, ACTIVE))
        put_index_entry(state, a.pseudonym, a.record, PatientIndexEntry(p.custodian, a.type, a.version, now, ACTIVE))
        out.append([a.record, a.version])
    ctx.emit("records_anchored", custodian=p.custodian, count=len(p.anchors))
    return {"anchored": out, "custodian": p.custodian}


# --- records.erase --------------------------------------------------------------------------------------

class Erase(Payload):
    record: RecordId
    reason: Literal["patient_request", "custodian_policy", "retention_expired", "entered_in_error", "legal_order"]


class EraseResult(TypedDict):
    record: str
    versions: int
    custodian: str
    by: str


def authorize_erase(state: Overlay, ctx: TxContext, p: Erase) -> None:
    """Only the patient, an active delegate or the custodian may ask; the record must exist, unerased.
    Raises RECORD_UNKNOWN, ERASURE_NOT_ALLOWED or RECORD_ERASED."""
    head = get_head(state, p.record)
    if head is None:
        raise TxFailed(f"record {p.record} does not exist", Code.RECORD_UNKNOWN)
    if erasure_role(state, ctx.signer, head, ctx.env.time_ms) is None:
        raise TxFailed("only the patient, the patient's delegate or the custodian may erase a record",
                       Code.ERASURE_NOT_ALLOWED)
    if head.is_erased:
        raise TxFailed(f"record {p.record} was already erased", Code.RECORD_ERASED)


def apply_erase(state: Overlay, ctx: TxContext, p: Erase) -> EraseResult:
    """Mark every version, the head and the patient's index entry erased, and record who asked and why."""
    head = get_head(state, p.record)
    role = None if head is None else erasure_role(state, ctx.signer, head, ctx.env.time_ms)
    assert head is not None and role is not None  # authorize ran on this state
    for version in range(1, head.version + 1):
        anchor = get_anchor(state, p.record, version)
        if anchor is not None:
            put_anchor(state, replace(anchor, status=ERASED))
    put_head(state, p.record, replace(head, status=ERASED, erased_ms=ctx.env.time_ms))
    entry = get_index_entry(state, head.pseudonym, p.record)
    assert entry is not None  # written with the head
    put_index_entry(state, head.pseudonym, p.record, replace(entry, status=ERASED))
    put_erasure(state, p.record, ErasureRecord(ctx.signer.key, role, p.reason, ctx.env.height, ctx.env.time_ms))
    ctx.emit("record_erased", record=p.record, custodian=head.custodian)
    return {"record": p.record, "versions": head.version, "custodian": head.custodian, "by": role}


HANDLERS: list[Handler[Any]] = [
    Handler("records.anchor", 1, Anchor, apply_anchor, authorize_anchor,
            summary="A custodian anchors record versions: pseudonym, type and salted commitment, never content.",
            read_hints=lambda p: [head_key(a.record) for a in p.anchors]
            + sorted({identity.patient_key(a.pseudonym) for a in p.anchors})),
    Handler("records.erase", 1, Erase, apply_erase, authorize_erase,
            summary="The patient, a delegate or the custodian records the erasure (crypto-shredding) of a record.",
            read_hints=lambda p: [head_key(p.record)]),
]
