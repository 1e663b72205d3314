"""Records contract: ledger anchors of health records held in custodians' vaults, and their erasure.

The clinical content never reaches the ledger. A custodian's vault stores each FHIR resource
encrypted and anchors each version here with a salted commitment computed off-ledger::

    commitment = SHA-256(salt ‖ canonical resource bytes)          (salt: 32 random bytes, vault-only)

State (keys are ``records/...``)::

    records/anchor/<record>/<version:06d>  {record, version, prev, pseudonym, custodian, type, commitment,
                                            author, height, time_ms, status}
    records/head/<record>                  {pseudonym, custodian, type, version, created_ms, time_ms, status}
    records/patient/<pseudonym>/<record>   {custodian, type, version, time_ms, status}   (the patient's index)
    records/erasure/<record>               {by, by_kind, reason, height, time_ms}

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

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from careledger.contracts import identity
from careledger.contracts.base import Handler, Payload, Signer, TxContext
from careledger.core.codec import decode_trusted
from careledger.core.errors import Code, TxFailed
from careledger.core.state import Overlay, StateReader
from careledger.core.types import Hex32, OrgId, PublicKeyHex

RecordId = Annotated[str, StringConstraints(pattern=r"^r-[0-9a-f]{32}$")]
Pseudonym = Annotated[str, StringConstraints(pattern=r"^pt-[0-9a-f]{32}$")]
ResourceType = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Za-z]{1,63}$")]
Version = Annotated[int, Field(ge=1, le=999_999)]
MAX_ANCHORS_PER_TX = 256

WRITER_ROLES = ("data_steward", "registrar", "physician", "nurse")
CUSTODIAN_ROLES = ("data_steward",)  # may erase under the custodian's policy and sign audit entries
ERASURE_REASONS = ("patient_request", "custodian_policy", "retention_expired", "entered_in_error", "legal_order")


def anchor_key(record: str, version: int) -> str:
    return f"records/anchor/{record}/{version:06d}"


def head_key(record: str) -> str:
    return f"records/head/{record}"


def patient_index_prefix(pseudonym: str) -> str:
    return f"records/patient/{pseudonym}/"


def patient_index_key(pseudonym: str, record: str) -> str:
    return f"records/patient/{pseudonym}/{record}"


def erasure_key(record: str) -> str:
    return f"records/erasure/{record}"


# --- accessors ----------------------------------------------------------------------------------------

def get_head(state: StateReader | Overlay, record: str) -> dict[str, Any] | None:
    """The record's latest version summary, or None."""
    raw = state.get_raw(head_key(record))
    if raw is None:
        return None
    return decode_trusted(raw)  # type: ignore[no-any-return]


def get_anchor(state: StateReader | Overlay, record: str, version: int) -> dict[str, Any] | None:
    raw = state.get_raw(anchor_key(record, version))
    if raw is None:
        return None
    return decode_trusted(raw)  # type: ignore[no-any-return]


def is_custodian_signer(signer: Signer, org: str, roles: tuple[str, ...] = CUSTODIAN_ROLES) -> bool:
    """Is ``signer`` an active admin of ``org``, or an active member of it with one of ``roles``?"""
    if not signer.active or signer.org != org:
        return False
    return signer.kind == "admin" or (signer.kind == "member" and signer.has_role(*roles))


def is_active_delegate(state: StateReader | Overlay, pseudonym: str, key: str, now_ms: int) -> bool:
    """Has the patient appointed ``key`` as a delegate that is active at ``now_ms``?"""
    raw = state.get_raw(f"consent/delegate/{pseudonym}/{key}")
    if raw is None:
        return False
    rec = decode_trusted(raw)
    if rec["status"] != "active":
        return False
    until = rec.get("until_ms")
    return until is None or now_ms < until


def is_patient_key(signer: Signer, pseudonym: str) -> bool:
    return signer.kind == "patient" and signer.active and identity.compute_pseudonym(signer.key) == pseudonym


def require_patient_active(state: StateReader | Overlay, pseudonym: str) -> None:
    rec = state.get_raw(identity.patient_key(pseudonym))
    if rec is None:
        raise TxFailed(f"no registered patient {pseudonym}", Code.PATIENT_UNKNOWN)
    if decode_trusted(rec)["status"] != "active":
        raise TxFailed(f"patient {pseudonym} is not active", Code.PATIENT_UNKNOWN)


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


def authorize_anchor(state: Overlay, ctx: TxContext, p: Anchor) -> None:
    """Only the custodian's admin or a member with a writer role may anchor its records."""
    if not is_custodian_signer(ctx.signer, p.custodian, WRITER_ROLES):
        raise TxFailed(f"only an admin or a {'/'.join(WRITER_ROLES)} member of {p.custodian!r} may anchor "
                       "its records", Code.NOT_CUSTODIAN)


def apply_anchor(state: Overlay, ctx: TxContext, p: Anchor) -> Any:
    """Anchor each version. Raises PATIENT_UNKNOWN, RECORD_EXISTS, RECORD_VERSION_CONFLICT,
    RECORD_PATIENT_MISMATCH, NOT_CUSTODIAN or RECORD_ERASED; any refusal rolls back the whole batch."""
    identity.require_org(state, p.custodian)
    patients_seen: set[str] = set()
    out = []
    for a in p.anchors:
        if a.pseudonym not in patients_seen:
            require_patient_active(state, a.pseudonym)
            patients_seen.add(a.pseudonym)
        head = get_head(state, a.record)
        if a.version == 1:
            if head is not None:
                raise TxFailed(f"record {a.record} already exists", Code.RECORD_EXISTS)
            created_ms, prev = ctx.env.time_ms, None
        else:
            if head is None:
                raise TxFailed(f"record {a.record} does not exist", Code.RECORD_UNKNOWN)
            if head["custodian"] != p.custodian:
                raise TxFailed(f"record {a.record} is held by another custodian", Code.NOT_CUSTODIAN)
            if head["pseudonym"] != a.pseudonym:
                raise TxFailed(f"record {a.record} belongs to another patient", Code.RECORD_PATIENT_MISMATCH)
            if head["status"] == "erased":
                raise TxFailed(f"record {a.record} was erased", Code.RECORD_ERASED)
            if head["type"] != a.type or a.version != head["version"] + 1:
                raise TxFailed(f"record {a.record} is at version {head['version']} of {head['type']}; got "
                               f"version {a.version} of {a.type}", Code.RECORD_VERSION_CONFLICT)
            created_ms, prev = head["created_ms"], head["version"]
        state.put(anchor_key(a.record, a.version), {
            "author": a.author, "commitment": a.commitment, "custodian": p.custodian, "height": ctx.env.height,
            "prev": prev, "pseudonym": a.pseudonym, "record": a.record, "status": "active",
            "time_ms": ctx.env.time_ms, "type": a.type, "version": a.version})
        state.put(head_key(a.record), {"created_ms": created_ms, "custodian": p.custodian, "pseudonym": a.pseudonym,
                                       "status": "active", "time_ms": ctx.env.time_ms, "type": a.type,
                                       "version": a.version})
        state.put(patient_index_key(a.pseudonym, a.record), {"custodian": p.custodian, "status": "active",
                                                             "time_ms": ctx.env.time_ms, "type": a.type,
                                                             "version": a.version})
        out.append([a.record, a.version])
    ctx.emit("records_anchored", custodian=p.custodian, count=len(p.anchors))
    return {"anchored": out, "custodian": p.custodian}


# --- records.erase --------------------------------------------------------------------------------------

class Erase(Payload):
    record: RecordId
    reason: Literal["patient_request", "custodian_policy", "retention_expired", "entered_in_error", "legal_order"]


def erasure_role(state: StateReader | Overlay, signer: Signer, head: dict[str, Any], now_ms: int) -> str | None:
    """Who ``signer`` is for erasing the record: ``patient``, ``delegate``, ``custodian`` or None."""
    if is_patient_key(signer, head["pseudonym"]):
        return "patient"
    if signer.active and is_active_delegate(state, head["pseudonym"], signer.key, now_ms):
        return "delegate"
    if is_custodian_signer(signer, head["custodian"]):
        return "custodian"
    return None


def authorize_erase(state: Overlay, ctx: TxContext, p: Erase) -> None:
    """Only the patient, an active delegate or the custodian may ask; the record must exist, unerased."""
    head = get_head(state, p.record)
    if head is None:
        raise TxFailed(f"record {p.record} does not exist", Code.RECORD_UNKNOWN)
    if erasure_role(state, ctx.signer, head, ctx.env.time_ms) is None:
        raise TxFailed("only the patient, the patient's delegate or the custodian may erase a record",
                       Code.ERASURE_NOT_ALLOWED)
    if head["status"] == "erased":
        raise TxFailed(f"record {p.record} was already erased", Code.RECORD_ERASED)


def apply_erase(state: Overlay, ctx: TxContext, p: Erase) -> Any:
    head = get_head(state, p.record)
    assert head is not None  # authorize ran on this state
    role = erasure_role(state, ctx.signer, head, ctx.env.time_ms)
    for version in range(1, head["version"] + 1):
        anchor = get_anchor(state, p.record, version)
        if anchor is not None:
            state.put(anchor_key(p.record, version), {**anchor, "status": "erased"})
    state.put(head_key(p.record), {**head, "status": "erased", "erased_ms": ctx.env.time_ms})
    index = patient_index_key(head["pseudonym"], p.record)
    entry = state.get(index)
    state.put(index, {**entry, "status": "erased"})
    state.put(erasure_key(p.record), {"by": ctx.signer.key, "by_kind": role, "height": ctx.env.height,
                                      "reason": p.reason, "time_ms": ctx.env.time_ms})
    ctx.emit("record_erased", record=p.record, custodian=head["custodian"])
    return {"record": p.record, "versions": head["version"], "custodian": head["custodian"], "by": role}


HANDLERS: list[Handler[Any]] = [
    Handler("records.anchor", 1, Anchor, apply_anchor, authorize_anchor,
            summary="A custodian anchors record versions: pseudonym, type and salted commitment, never content.",
            read_hints=lambda p: [head_key(a.record) for a in p.anchors]
            + sorted({identity.patient_key(a.pseudonym) for a in p.anchors})),
    Handler("records.erase", 1, Erase, apply_erase, authorize_erase,
            summary="The patient, a delegate or the custodian records the erasure (crypto-shredding) of a record.",
            read_hints=lambda p: [head_key(p.record)]),
]
