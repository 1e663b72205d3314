"""Vectors of key rotation and patient key recovery (tests/vectors/identity/: a recovery records block
times, and its last vector jumps the clock past the 72-hour delay).

Every refusal in a vector's block is one the contract makes while applying (a failed receipt), or an
old key's transaction after the block of its rotation (invalid, 205, at admission too), and a new key
signs only after the block that registered it, so both engines reproduce each file exactly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from careledger.contracts.identity.keys import RECOVERY_DELAY_MS, sign_possession
from careledger.core.block import BlockEnv
from careledger.core.crypto import SigningKey
from vectors.builder import (
    BLOCK_INTERVAL_MS,
    CHAIN_ID,
    GENESIS_TIME_MS,
    ORGS,
    VALIDATOR,
    Builder,
    admin,
    enrol,
    ikey,
    key,
    nonce,
    pseudonym,
)

H, P = ORGS[0][0], ORGS[1][0]
DOCTOR, DOCTOR_NEW, DOCTOR_3 = key("member/doctor"), key("member/doctor/rotated"), key("member/doctor/rotated-2")
PATIENT, PATIENT_NEW, DELEGATE = key("patient/1"), key("patient/1/recovered"), key("patient/2")
STRANGER = key("stranger")
RECORD = "r-" + "5" * 32


class ClockBuilder(Builder):
    """A builder whose clock can jump forward (a recovery's delay is 72 hours of block time)."""

    skip_ms = 0

    def _env(self) -> BlockEnv:
        h = self.height + 1
        return BlockEnv(CHAIN_ID, h, GENESIS_TIME_MS + BLOCK_INTERVAL_MS * h + self.skip_ms, VALIDATOR.public_hex)


def proof(new: SigningKey, identity_key: SigningKey, replaces: SigningKey | None = None) -> str:
    return sign_possession(new, CHAIN_ID, identity_key.public_hex, (replaces or identity_key).public_hex)


def rotate(b: Builder, signer: SigningKey, new: SigningKey, identity_key: SigningKey | None = None,
           replaces: SigningKey | None = None) -> bytes:
    return b.tx(signer, "identity.rotate_key", {"new_key": new.public_hex,
                                                "proof": proof(new, identity_key or signer, replaces or signer)})


def identity_rotate_key_member() -> dict[str, Any]:
    b = Builder()
    b.pre(enrol(b, H, DOCTOR, ["physician"]))
    b.pre(rotate(b, DOCTOR, DOCTOR_NEW))
    bad = b.tx(DOCTOR_NEW, "identity.rotate_key", {"new_key": STRANGER.public_hex,
                                                    "proof": proof(STRANGER, DOCTOR, DOCTOR)})  # wrong `replaces`
    return b.vector("identity_rotate_key_member",
                    "After a physician rotated her key, the old key is refused (205); the new key signs from "
                    "nonce 1 as the same identity: a proof naming the wrong replaced key fails with 1011, then it "
                    "rotates again (the identity record names the newest key; both older keys are retired).",
                    [rotate(b, DOCTOR, STRANGER), bad, rotate(b, DOCTOR_NEW, DOCTOR_3, DOCTOR, DOCTOR_NEW)],
                    [ikey(DOCTOR), ikey(DOCTOR_NEW), ikey(DOCTOR_3), ikey(STRANGER), nonce(DOCTOR), nonce(DOCTOR_NEW),
                     f"identity/member/{H}/{DOCTOR.public_hex}"], [(False, 205), (True, 1011), (True, 0)])


def identity_rotate_key_patient() -> dict[str, Any]:
    b = Builder()
    b.pre(b.tx(PATIENT, "identity.register_patient", {}))
    b.pre(rotate(b, PATIENT, PATIENT_NEW))
    grant = b.tx(PATIENT_NEW, "consent.grant", {"grantee": {"id": P, "kind": "org"}, "patient": pseudonym(PATIENT),
                                                "purposes": ["TREAT"]})
    return b.vector("identity_rotate_key_patient",
                    "After a patient rotated her key, she grants a consent with the new key under the same "
                    "pseudonym (granted_by: her identity key). Rotating to a registered key (an admin's) fails "
                    "with 1007.",
                    [grant, rotate(b, PATIENT_NEW, admin(H), PATIENT, PATIENT_NEW)],
                    [ikey(PATIENT), ikey(PATIENT_NEW), f"identity/patient/{pseudonym(PATIENT)}"],
                    [(True, 0), (True, 1007)])


def _recovery_pre(b: Builder) -> str:
    """A patient with a record at the hospital and a delegate; the hospital's admin proposes a recovery."""
    b.pre(b.tx(PATIENT, "identity.register_patient", {}), b.tx(DELEGATE, "identity.register_patient", {}))
    b.pre(b.tx(admin(H), "records.anchor", {"anchors": [{"commitment": "c" * 64, "pseudonym": pseudonym(PATIENT),
                                                          "record": RECORD, "type": "Observation", "version": 1}],
                                             "custodian": H}),
          b.tx(PATIENT, "consent.appoint_delegate", {"delegate": DELEGATE.public_hex}))
    [receipt] = b.pre(b.tx(admin(H), "identity.propose_recovery", {
        "new_key": PATIENT_NEW.public_hex, "patient": pseudonym(PATIENT), "proof": proof(PATIENT_NEW, PATIENT)}))
    return str(receipt["result"]["recovery"])


def _step(b: Builder, signer: SigningKey, action: str, recovery: str) -> bytes:
    return b.tx(signer, f"identity.{action}_recovery", {"patient": pseudonym(PATIENT), "recovery": recovery})


def _recovery_keys() -> list[str]:
    return [f"identity/recovery/{pseudonym(PATIENT)}", ikey(PATIENT), ikey(PATIENT_NEW)]


def identity_recovery_propose() -> dict[str, Any]:
    b = Builder()
    rid = _recovery_pre(b)
    again = b.tx(admin(H), "identity.propose_recovery", {"new_key": STRANGER.public_hex, "patient": pseudonym(PATIENT),
                                                         "proof": proof(STRANGER, PATIENT)})
    return b.vector("identity_recovery_propose",
                    f"With recovery {rid} open, a second proposal fails with 1013; the proposing organisation "
                    "cannot also approve (1015); the patient's delegate approves and the 72-hour delay starts; "
                    "the new key completing at once fails with 1016.",
                    [again, _step(b, admin(H), "approve", rid), _step(b, DELEGATE, "approve", rid),
                     _step(b, PATIENT_NEW, "complete", rid)],
                    _recovery_keys(), [(True, 1013), (True, 1015), (True, 0), (True, 1016)])


def identity_recovery_complete() -> dict[str, Any]:
    b = ClockBuilder()
    rid = _recovery_pre(b)
    b.pre(_step(b, DELEGATE, "approve", rid))
    b.skip_ms = RECOVERY_DELAY_MS
    return b.vector("identity_recovery_complete",
                    "72 hours after the approval, another key cannot complete the recovery (1014); its new key "
                    "does: the patient's old key is retired. Each step is in her access log (audit/patient/...).",
                    [_step(b, STRANGER, "complete", rid), _step(b, PATIENT_NEW, "complete", rid)],
                    _recovery_keys(), [(True, 1014), (True, 0)])


def identity_recovery_cancel() -> dict[str, Any]:
    b = Builder()
    rid = _recovery_pre(b)
    return b.vector("identity_recovery_cancel",
                    "The patient, who still holds her key, cancels the recovery she sees in her access log; "
                    "cancelling it again fails with 1014; the custodian may then propose another.",
                    [_step(b, PATIENT, "cancel", rid), _step(b, PATIENT, "cancel", rid),
                     b.tx(admin(H), "identity.propose_recovery", {"new_key": STRANGER.public_hex,
                                                                  "patient": pseudonym(PATIENT),
                                                                  "proof": proof(STRANGER, PATIENT)})],
                    _recovery_keys(), [(True, 0), (True, 1014), (True, 0)])


VECTORS: list[Callable[[], dict[str, Any]]] = [
    identity_rotate_key_member, identity_rotate_key_patient, identity_recovery_propose, identity_recovery_complete,
    identity_recovery_cancel,
]
