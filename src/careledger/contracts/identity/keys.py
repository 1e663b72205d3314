"""Key rotation and patient key recovery (pure): members and patients replace their signing key, and a
patient who lost hers gets a new one through her custodian and a second, independent guardian.

A member or patient is known by their *identity key* (their first key); a rotation or recovery adds a
*successor key* that signs for the identity (:mod:`careledger.contracts.identity.layout`). Nothing that
names the identity is rewritten: ``ctx.signer.key`` is the identity key whichever key signed, and the
patient's pseudonym stays ``compute_pseudonym(identity key)``.

Rules:

* **Rotation** (``identity.rotate_key``): signed by the key that signs for a member or patient now,
  naming the new key and a *proof of possession*: the new key's signature (domain ``proof``, on this
  chain) over :func:`possession_message` (identity key, new key, the key it replaces). The old key
  signs nothing from the next transaction on (later in the same block included); the new key's nonces
  start at 1 like any fresh key's (nonces count per signing key; the old key's counter stays where it
  stopped, so nothing signed by one key can be replayed as the other's). Organisation admins rotate
  through governance (their keys are the organisation's declaration): KEY_NOT_ROTATABLE. A patient's
  rotation cancels her open recovery, if any: she evidently holds a key.
* **Recovery** (``identity.propose_recovery``, ``approve_recovery``, ``cancel_recovery``,
  ``complete_recovery``), for a patient only:

  - *guardians* are the admins of the organisations that hold at least one of her records (her
    custodians, who can check her identity in person) and the delegates she appointed, active now;
  - a custodian admin proposes, with the new key's proof of possession (the statement's ``replaces``
    is her current signing key);
  - a second guardian approves: a delegate, or an admin of *another* custodian. Two approvals never
    come from one organisation (a delegate who is a member of the proposing organisation does not
    count) nor from one key (RECOVERY_PARTY_REPEATED). So no single custodian, however many admins
    it has, can take a patient's identity over alone;
  - the approval starts a delay of :data:`RECOVERY_DELAY_MS` (72 hours of block time). Every step
    is written to her access log (``audit/patient/<pseudonym>/…``, purpose ``PATADMIN``), so if she
    still holds her key she sees it and cancels (so may any guardian who approved; a rotation by her
    cancels it too);
  - after the delay the *new key itself* completes it (proving possession once more): it becomes
    the successor of her identity and the key that signed for her stops signing.

Why this quorum: the custodian is the party that can verify who she is, but it is also the party
that could abuse a takeover (it already holds her records); the second guardian is either someone she
chose (a delegate) or an institution with no stake in the first's claim, and the delay with a notice
in her own log gives her the last word. A patient with one custodian and no delegate cannot recover
on the ledger: she should appoint a delegate (docs/consortium.md, "Keys").
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, TypedDict

from pydantic import Field

from careledger.contracts.audit.layout import AuditRecord, put_audit
from careledger.contracts.base import Handler, Payload, Signer, TxContext
from careledger.contracts.consent.layout import is_active_delegate
from careledger.contracts.identity.layout import (
    KeyRecord,
    RecoveryApproval,
    RecoveryRecord,
    get_key_record,
    get_patient,
    get_recovery,
    key_key,
    put_key_record,
    put_recovery,
    recovery_key,
    signing_key_of,
)
from careledger.contracts.identity.rules import UNREGISTERED, require_patient_active
from careledger.contracts.records.layout import Pseudonym, patient_index
from careledger.core import codec
from careledger.core.crypto import ED25519_SHA256, SigningKey
from careledger.core.errors import AuthError, Code, TxFailed
from careledger.core.state import Overlay
from careledger.core.types import PublicKeyHex

POSSESSION_KIND = "careledger/key-possession/v1"
POSSESSION_DOMAIN = "proof"
RECOVERY_DELAY_MS = 72 * 3600 * 1000
"""How long an approved recovery waits (block time) before the new key may complete it."""
RECOVERY_PURPOSE = "PATADMIN"
"""The purpose (HL7 v3 ActReason, patient administration) of the recovery entries in her access log."""

Signature = Annotated[str, Field(pattern=r"^[0-9a-f]{128}$")]
RecoveryId = Annotated[str, Field(pattern=r"^rcv-[0-9a-f]{24}$")]


# --- proof of possession --------------------------------------------------------------------------------

def possession_message(identity_key: str, new_key: str, replaces: str) -> bytes:
    """The bytes a new key signs (domain ``proof``) to show it is held by whoever asks to bind it::

        b"careledger/key-possession/v1" 0x00 || canonical {"identity", "kind", "new_key", "replaces"}
    """
    statement = {"identity": identity_key, "kind": POSSESSION_KIND, "new_key": new_key, "replaces": replaces}
    return POSSESSION_KIND.encode() + b"\x00" + codec.encode(statement)


def sign_possession(new_key: SigningKey, chain_id: str, identity_key: str, replaces: str) -> str:
    """The proof of possession (hex) that ``new_key`` gives for taking over from ``replaces``."""
    return new_key.sign(POSSESSION_DOMAIN, chain_id, possession_message(identity_key, new_key.public_hex,
                                                                        replaces)).hex()


def verify_possession(chain_id: str, identity_key: str, new_key: str, replaces: str, proof: str) -> None:
    """Raises KEY_PROOF_INVALID unless ``proof`` is ``new_key``'s signature of the possession statement."""
    try:
        ED25519_SHA256.verify(bytes.fromhex(new_key), POSSESSION_DOMAIN, chain_id,
                              possession_message(identity_key, new_key, replaces), bytes.fromhex(proof))
    except AuthError:
        raise TxFailed("the proof of possession is not the new key's signature of this rotation",
                       Code.KEY_PROOF_INVALID) from None


def _require_unregistered(state: Overlay, new_key: str) -> None:
    if state.has(key_key(new_key)):
        raise TxFailed("the new key is already registered", Code.KEY_IN_USE)


def install_successor(state: Overlay, identity_key: str, new_key: str, height: int) -> str:
    """Make ``new_key`` the key that signs for ``identity_key`` from now on; the key that signed for it
    stops signing at ``height``. Returns that retired key. The identity's record keeps its roles and
    status (``signing_key`` names the new key); the new key's record names the identity."""
    ident = get_key_record(state, identity_key)
    assert ident is not None and ident.identity is None  # callers resolved it
    current = signing_key_of(state, identity_key)
    put_key_record(state, new_key, KeyRecord(kind=ident.kind, roles=(), status="active", since=height, org=ident.org,
                                             pseudonym=ident.pseudonym, identity=identity_key))
    if current != identity_key:
        old = get_key_record(state, current)
        assert old is not None
        put_key_record(state, current, replace(old, retired_at=height))
        put_key_record(state, identity_key, replace(ident, signing_key=new_key))
    else:
        put_key_record(state, identity_key, replace(ident, signing_key=new_key, retired_at=height))
    return current


def _log(state: Overlay, ctx: TxContext, pseudonym: str, custodian: str, mode: str) -> None:
    """A recovery step in the patient's access log (one entry per transaction)."""
    put_audit(state, pseudonym, ctx.index, 0, AuditRecord(
        custodian=custodian, requester=ctx.signer.key, requester_org=ctx.signer.org, record=None,
        purpose=RECOVERY_PURPOSE, outcome="granted", code=0, mode=mode, consent=None, emergency=False,
        request=ctx.tx_hash, request_ms=ctx.env.time_ms, height=ctx.env.height, time_ms=ctx.env.time_ms))


# --- identity.rotate_key ----------------------------------------------------------------------------------

class RotateKey(Payload):
    new_key: PublicKeyHex
    proof: Signature


class RotateKeyResult(TypedDict):
    identity: str
    signing_key: str
    retired: str


def authorize_rotate_key(state: Overlay, ctx: TxContext, p: RotateKey) -> None:
    """Members and patients rotate their own keys (KEY_NOT_ROTATABLE for an admin)."""
    if ctx.signer.kind not in ("member", "patient"):
        raise TxFailed("organisation admin keys change through governance, not by rotation", Code.KEY_NOT_ROTATABLE)


def apply_rotate_key(state: Overlay, ctx: TxContext, p: RotateKey) -> RotateKeyResult:
    """Replace the signer's signing key with ``p.new_key``. Raises KEY_IN_USE (the new key is
    registered, the old one included) or KEY_PROOF_INVALID. A patient's open recovery is cancelled."""
    identity_key = ctx.signer.key
    current = signing_key_of(state, identity_key)
    _require_unregistered(state, p.new_key)
    verify_possession(ctx.env.chain_id, identity_key, p.new_key, current, p.proof)
    install_successor(state, identity_key, p.new_key, ctx.env.height)
    if ctx.signer.kind == "patient":
        ident = get_key_record(state, identity_key)
        assert ident is not None and ident.pseudonym is not None
        rec = get_recovery(state, ident.pseudonym)
        if rec is not None and rec.is_open:
            put_recovery(state, ident.pseudonym, replace(rec, status="cancelled", closed_height=ctx.env.height,
                                                          closed_by=identity_key))
            _log(state, ctx, ident.pseudonym, _custodian_of(rec), "patient")
            ctx.emit("key_recovery_cancelled", patient=ident.pseudonym, recovery=rec.id)
    ctx.emit("key_rotated", identity=identity_key, signing_key=p.new_key)
    return {"identity": identity_key, "signing_key": p.new_key, "retired": current}


# --- guardians ---------------------------------------------------------------------------------------------

def is_custodian_of(state: Overlay, pseudonym: str, org: str) -> bool:
    """Does ``org`` hold at least one of the patient's records (any status)?"""
    return any(entry.custodian == org for _, entry in patient_index(state, pseudonym))


def guardian_role(state: Overlay, signer: Signer, pseudonym: str, now_ms: int) -> str | None:
    """``custodian`` if the signer is an active admin of an organisation holding her records, else
    ``delegate`` if she appointed the signer and the appointment is active at ``now_ms``, else None."""
    if not signer.active:
        return None
    if signer.kind == "admin" and signer.org is not None and is_custodian_of(state, pseudonym, signer.org):
        return "custodian"
    if signer.kind != UNREGISTERED and is_active_delegate(state, pseudonym, signer.key, now_ms):
        return "delegate"
    return None


def _custodian_of(rec: RecoveryRecord) -> str:
    org = rec.approvals[0].org
    assert org is not None  # the proposer is a custodian's admin
    return org


def _open_recovery(state: Overlay, pseudonym: str, recovery: str) -> RecoveryRecord:
    rec = get_recovery(state, pseudonym)
    if rec is None or rec.id != recovery or not rec.is_open:
        raise TxFailed(f"no open key recovery {recovery} for {pseudonym}", Code.RECOVERY_UNKNOWN)
    return rec


# --- identity.propose_recovery -----------------------------------------------------------------------------

class ProposeRecovery(Payload):
    patient: Pseudonym
    new_key: PublicKeyHex
    proof: Signature


class RecoveryResult(TypedDict):
    recovery: str
    patient: str
    status: str


def authorize_propose_recovery(state: Overlay, ctx: TxContext, p: ProposeRecovery) -> None:
    """Only an admin of one of her custodians proposes (RECOVERY_NOT_GUARDIAN)."""
    if guardian_role(state, ctx.signer, p.patient, ctx.env.time_ms) != "custodian":
        raise TxFailed("a key recovery is proposed by an admin of an organisation holding the patient's records",
                       Code.RECOVERY_NOT_GUARDIAN)


def apply_propose_recovery(state: Overlay, ctx: TxContext, p: ProposeRecovery) -> RecoveryResult:
    """Open a recovery to ``p.new_key``. Raises PATIENT_UNKNOWN, RECOVERY_OPEN (one is open already),
    KEY_IN_USE or KEY_PROOF_INVALID."""
    require_patient_active(state, p.patient)
    prior = get_recovery(state, p.patient)
    if prior is not None and prior.is_open:
        raise TxFailed(f"key recovery {prior.id} is open for this patient", Code.RECOVERY_OPEN)
    _require_unregistered(state, p.new_key)
    patient = get_patient(state, p.patient)
    assert patient is not None
    verify_possession(ctx.env.chain_id, patient.key, p.new_key, signing_key_of(state, patient.key), p.proof)
    rid = ctx.derive_id("rcv")
    approval = RecoveryApproval(ctx.signer.key, "custodian", ctx.signer.org, ctx.env.height)
    put_recovery(state, p.patient, RecoveryRecord(rid, p.new_key, "proposed", (approval,), ctx.env.height,
                                                  ctx.env.time_ms))
    _log(state, ctx, p.patient, approval.org or "", "custodian")
    ctx.emit("key_recovery_proposed", patient=p.patient, recovery=rid)
    return {"recovery": rid, "patient": p.patient, "status": "proposed"}


# --- identity.approve_recovery -----------------------------------------------------------------------------

class RecoveryStep(Payload):
    patient: Pseudonym
    recovery: RecoveryId


class ApproveRecovery(RecoveryStep):
    pass


class ApproveResult(RecoveryResult):
    ready_ms: int


def authorize_guardian(state: Overlay, ctx: TxContext, p: RecoveryStep) -> None:
    """The signer must be one of her guardians now (RECOVERY_NOT_GUARDIAN)."""
    if guardian_role(state, ctx.signer, p.patient, ctx.env.time_ms) is None:
        raise TxFailed("only the patient's custodians' admins and her delegates take part in her key recovery",
                       Code.RECOVERY_NOT_GUARDIAN)


def apply_approve_recovery(state: Overlay, ctx: TxContext, p: ApproveRecovery) -> ApproveResult:
    """The second, independent approval: starts the delay. Raises RECOVERY_UNKNOWN, INVALID_STATE
    (already approved) or RECOVERY_PARTY_REPEATED (a key or an organisation that approved already)."""
    rec = _open_recovery(state, p.patient, p.recovery)
    if rec.status != "proposed":
        raise TxFailed("this key recovery is approved already", Code.INVALID_STATE)
    signer = ctx.signer
    for a in rec.approvals:
        if a.by == signer.key or (signer.org is not None and a.org == signer.org):
            raise TxFailed("a second approval must come from another organisation or delegate",
                           Code.RECOVERY_PARTY_REPEATED)
    role = guardian_role(state, signer, p.patient, ctx.env.time_ms)
    assert role is not None  # authorize ran on this state
    ready = ctx.env.time_ms + RECOVERY_DELAY_MS
    put_recovery(state, p.patient, replace(
        rec, status="approved", ready_ms=ready,
        approvals=(*rec.approvals, RecoveryApproval(signer.key, role, signer.org, ctx.env.height))))
    _log(state, ctx, p.patient, _custodian_of(rec), role)
    ctx.emit("key_recovery_approved", patient=p.patient, recovery=rec.id, ready_ms=ready)
    return {"recovery": rec.id, "patient": p.patient, "status": "approved", "ready_ms": ready}


# --- identity.cancel_recovery ------------------------------------------------------------------------------

class CancelRecovery(RecoveryStep):
    pass


def authorize_cancel_recovery(state: Overlay, ctx: TxContext, p: CancelRecovery) -> None:
    """The patient (her current key) or a guardian who approved it cancels (RECOVERY_NOT_GUARDIAN).
    A recovery that does not exist is left to apply (RECOVERY_UNKNOWN)."""
    signer = ctx.signer
    rec = get_recovery(state, p.patient)
    if signer.kind == "patient" and signer.active and _pseudonym_of(state, signer.key) == p.patient:
        return
    if rec is not None and any(a.by == signer.key for a in rec.approvals):
        return
    raise TxFailed("only the patient or a guardian who approved it may cancel a key recovery",
                   Code.RECOVERY_NOT_GUARDIAN)


def _pseudonym_of(state: Overlay, identity_key: str) -> str | None:
    rec = get_key_record(state, identity_key)
    return None if rec is None else rec.pseudonym


def apply_cancel_recovery(state: Overlay, ctx: TxContext, p: CancelRecovery) -> RecoveryResult:
    """Close the open recovery unexecuted. Raises RECOVERY_UNKNOWN."""
    rec = _open_recovery(state, p.patient, p.recovery)
    put_recovery(state, p.patient, replace(rec, status="cancelled", closed_height=ctx.env.height,
                                           closed_by=ctx.signer.key))
    mode = "patient" if ctx.signer.kind == "patient" and _pseudonym_of(state, ctx.signer.key) == p.patient \
        else next(a.role for a in rec.approvals if a.by == ctx.signer.key)
    _log(state, ctx, p.patient, _custodian_of(rec), mode)
    ctx.emit("key_recovery_cancelled", patient=p.patient, recovery=rec.id)
    return {"recovery": rec.id, "patient": p.patient, "status": "cancelled"}


# --- identity.complete_recovery ----------------------------------------------------------------------------

class CompleteRecovery(RecoveryStep):
    pass


class CompleteResult(RecoveryResult):
    signing_key: str
    retired: str


def authorize_complete_recovery(state: Overlay, ctx: TxContext, p: CompleteRecovery) -> None:
    """The new key itself completes, so it must not be registered yet (KEY_IN_USE)."""
    if ctx.signer.kind != UNREGISTERED:
        raise TxFailed("a key recovery is completed by its new key, which must not be registered",
                       Code.KEY_IN_USE)


def apply_complete_recovery(state: Overlay, ctx: TxContext, p: CompleteRecovery) -> CompleteResult:
    """Bind the new key to her identity. Raises RECOVERY_UNKNOWN (none open, or another key's),
    RECOVERY_NOT_READY (not approved, or the delay has not passed) or PATIENT_UNKNOWN."""
    rec = _open_recovery(state, p.patient, p.recovery)
    if rec.new_key != ctx.signer.key:
        raise TxFailed("this key recovery is for another key", Code.RECOVERY_UNKNOWN)
    if rec.status != "approved" or rec.ready_ms is None or ctx.env.time_ms < rec.ready_ms:
        raise TxFailed("this key recovery is not approved, or its delay has not passed", Code.RECOVERY_NOT_READY)
    require_patient_active(state, p.patient)
    patient = get_patient(state, p.patient)
    assert patient is not None
    retired = install_successor(state, patient.key, rec.new_key, ctx.env.height)
    put_recovery(state, p.patient, replace(rec, status="completed", closed_height=ctx.env.height,
                                           closed_by=rec.new_key))
    _log(state, ctx, p.patient, _custodian_of(rec), "patient")
    ctx.emit("key_recovered", patient=p.patient, recovery=rec.id)
    return {"recovery": rec.id, "patient": p.patient, "status": "completed", "signing_key": rec.new_key,
            "retired": retired}


def _recovery_hints(p: RecoveryStep | ProposeRecovery) -> list[str]:
    return [recovery_key(p.patient)]


HANDLERS: list[Handler[Any]] = [
    Handler("identity.rotate_key", 1, RotateKey, apply_rotate_key, authorize_rotate_key,
            summary="A member or patient replaces their signing key (proof of possession by the new key).",
            read_hints=lambda p: [key_key(p.new_key)]),
    Handler("identity.propose_recovery", 1, ProposeRecovery, apply_propose_recovery, authorize_propose_recovery,
            summary="A custodian's admin proposes a new key for a patient who lost hers.",
            read_hints=_recovery_hints),
    Handler("identity.approve_recovery", 1, ApproveRecovery, apply_approve_recovery, authorize_guardian,
            summary="A delegate or another custodian's admin approves a key recovery; the delay starts.",
            read_hints=_recovery_hints),
    Handler("identity.cancel_recovery", 1, CancelRecovery, apply_cancel_recovery, authorize_cancel_recovery,
            summary="The patient, or a guardian who approved it, cancels a key recovery.",
            read_hints=_recovery_hints),
    Handler("identity.complete_recovery", 1, CompleteRecovery, apply_complete_recovery,
            authorize_complete_recovery, open_to_unregistered=True,
            summary="After the delay, the new key completes the recovery and signs for the patient.",
            read_hints=_recovery_hints),
]
