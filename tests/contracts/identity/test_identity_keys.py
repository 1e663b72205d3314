"""Key rotation and patient key recovery: the old key stops signing, the new one signs as the same
identity (grants, delegations, records and the pseudonym hold), and a recovery needs a custodian and a
second, independent guardian, waits 72 hours and shows in the patient's access log."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from careledger.contracts import audit, consent, identity, records
from careledger.contracts.identity.keys import RECOVERY_DELAY_MS, possession_message, sign_possession
from careledger.core.block import BlockEnv, Receipt
from careledger.core.crypto import SigningKey
from careledger.core.errors import Code
from support import Consortium, Ledger, seeded_key
from support.consortium import BLOCK_INTERVAL_MS, GENESIS_TIME_MS

DOCTOR, DOCTOR2, DOCTOR3 = seeded_key("keys/doctor"), seeded_key("keys/doctor-2"), seeded_key("keys/doctor-3")
NURSE = seeded_key("keys/nurse")  # a hospital member who is also the patient's delegate in one test
PATIENT, PATIENT2, PATIENT_NEW = seeded_key("keys/patient"), seeded_key("keys/patient-2"), seeded_key("keys/new")
DELEGATE = seeded_key("keys/delegate")  # a registered patient the patient appointed
STRANGER = seeded_key("keys/stranger")


class ClockLedger(Ledger):
    """The in-memory ledger with a clock that can jump forward (block times stay increasing)."""

    def __init__(self, consortium: Consortium) -> None:
        super().__init__(consortium)
        self.skip_ms = 0

    def env(self, height: int | None = None) -> BlockEnv:
        height = self.height + 1 if height is None else height
        return BlockEnv(self.chain.chain_id, height, GENESIS_TIME_MS + height * BLOCK_INTERVAL_MS + self.skip_ms,
                        self.consortium.validator.public_hex)

    def now_ms(self) -> int:
        return self.env().time_ms


@pytest.fixture
def led(consortium: Consortium) -> ClockLedger:
    return ClockLedger(consortium)


def pseudonym(key: SigningKey) -> str:
    return identity.compute_pseudonym(key.public_hex)


def proof(new: SigningKey, led: Ledger, identity_key: SigningKey, replaces: SigningKey | None = None) -> str:
    return sign_possession(new, led.chain.chain_id, identity_key.public_hex, (replaces or identity_key).public_hex)


def rotate(led: Ledger, signer: SigningKey, new: SigningKey, ident: SigningKey | None = None) -> Receipt:
    ident = ident or signer
    return led.run(signer, "identity.rotate_key", {"new_key": new.public_hex, "proof": proof(new, led, ident, signer)})


def changed_keys(before: dict[str, bytes], led: Ledger) -> set[str]:
    after = led.snapshot()
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


def assert_refused(led: Ledger, signer: SigningKey, tx_type: str, payload: dict[str, Any], code: Code) -> None:
    """Included with ``code`` and nothing written but the signer's nonce."""
    before = led.snapshot()
    receipt = led.run(signer, tx_type, payload)
    assert receipt.code == code, receipt.message
    assert changed_keys(before, led) == {f"nonce/{signer.public_hex}"}


def anchor(led: Ledger, org: str, patient: SigningKey, label: str) -> str:
    rec = "r-" + hashlib.sha256(label.encode()).digest()[:16].hex()
    receipt = led.run(led.consortium.admin(org), "records.anchor", {"custodian": org, "anchors": [
        {"commitment": hashlib.sha256(label.encode() + b"/c").hexdigest(), "pseudonym": pseudonym(patient),
         "record": rec, "type": "Observation", "version": 1}]})
    assert receipt.code == 0, receipt.message
    return rec


# -- member rotation ---------------------------------------------------------------------------------------------

def test_member_rotation_retires_the_old_key_and_the_new_one_signs_as_the_identity(led: ClockLedger) -> None:
    assert led.enrol("hospital", DOCTOR, ["physician"]).code == 0
    led.run(DOCTOR, "identity.rotate_key", {"new_key": DOCTOR2.public_hex, "proof": proof(DOCTOR2, led, DOCTOR)})
    height = led.height
    assert led.get(identity.key_key(DOCTOR.public_hex)) == {
        "kind": "member", "org": "hospital", "roles": ["physician"], "since": 1, "status": "active",
        "signing_key": DOCTOR2.public_hex, "retired_at": height}
    assert led.get(identity.key_key(DOCTOR2.public_hex)) == {
        "identity": DOCTOR.public_hex, "kind": "member", "org": "hospital", "roles": [], "since": height,
        "status": "active"}
    old, new = (identity.resolve_signer(led.state, k.public_hex) for k in (DOCTOR, DOCTOR2))
    assert not old.active
    assert (new.key, new.kind, new.org, new.roles, new.active) == (DOCTOR.public_hex, "member", "hospital",
                                                                   ("physician",), True)
    # the old key is refused (invalid: never included), the new key signs from nonce 1
    refused = led.refused(led.tx(DOCTOR, "identity.rotate_key", {"new_key": DOCTOR3.public_hex,
                                                                   "proof": proof(DOCTOR3, led, DOCTOR)}))
    assert refused.code == Code.SIGNER_REVOKED
    assert led.committed_nonce(DOCTOR) == 1 and led.committed_nonce(DOCTOR2) == 0
    receipt = rotate(led, DOCTOR2, DOCTOR3, ident=DOCTOR)
    assert receipt.code == 0 and receipt.result == {"identity": DOCTOR.public_hex, "retired": DOCTOR2.public_hex,
                                                    "signing_key": DOCTOR3.public_hex}
    assert led.committed_nonce(DOCTOR2) == 1
    assert led.get(identity.key_key(DOCTOR2.public_hex))["retired_at"] == led.height
    assert identity.signing_key_of(led.state, DOCTOR.public_hex) == DOCTOR3.public_hex
    assert identity.identity_key_of(led.state, DOCTOR3.public_hex) == DOCTOR.public_hex
    assert not identity.resolve_signer(led.state, DOCTOR2.public_hex).active
    assert identity.resolve_signer(led.state, DOCTOR3.public_hex).active


def test_the_old_key_stops_signing_within_the_rotations_block(led: ClockLedger) -> None:
    led.enrol("hospital", DOCTOR, ["physician"])
    rotation = led.tx(DOCTOR, "identity.rotate_key", {"new_key": DOCTOR2.public_hex,
                                                       "proof": proof(DOCTOR2, led, DOCTOR)})
    after = led.tx(DOCTOR, "identity.rotate_key", {"new_key": DOCTOR3.public_hex, "proof": proof(DOCTOR3, led, DOCTOR)})
    outcome = led.block(rotation, after)
    assert outcome.codes == [0]
    assert [exc.code for _, exc in outcome.invalid] == [Code.SIGNER_REVOKED]


def test_roles_revocation_and_grants_follow_the_identity(led: ClockLedger) -> None:
    led.enrol("hospital", DOCTOR, ["physician"])
    led.register_patient(PATIENT)
    rec = anchor(led, "clinic", PATIENT, "grant")
    grant = led.run(PATIENT, "consent.grant", {"grantee": {"id": DOCTOR.public_hex, "kind": "member"},
                                              "patient": pseudonym(PATIENT), "purposes": ["TREAT"]})
    assert grant.code == 0
    rotate(led, DOCTOR, DOCTOR2)
    head = records.get_head(led.state, rec)
    assert head is not None
    signer = identity.resolve_signer(led.state, DOCTOR2.public_hex)
    decision = consent.evaluate_access(led.state, signer, pseudonym(PATIENT), rec, head, "TREAT", led.now_ms())
    assert (decision.mode, decision.consent) == ("consent", grant.result["consent"])
    # admins address the member by the identity key; roles and revocation reach the new key
    admin = led.consortium.admin("hospital")
    assert led.run(admin, "identity.set_member_roles", {"member": DOCTOR.public_hex, "org": "hospital",
                                                        "roles": ["physician", "emergency"]}).code == 0
    assert identity.resolve_signer(led.state, DOCTOR2.public_hex).roles == ("emergency", "physician")
    assert_refused(led, admin, "identity.revoke_member", {"member": DOCTOR2.public_hex, "org": "hospital",
                                                          "reason": "name the identity"}, Code.MEMBER_UNKNOWN)
    assert led.run(admin, "identity.revoke_member", {"member": DOCTOR.public_hex, "org": "hospital",
                                                     "reason": "left"}).code == 0
    assert not identity.resolve_signer(led.state, DOCTOR2.public_hex).active


def test_payloads_name_identities_not_successor_keys(led: ClockLedger) -> None:
    led.enrol("hospital", DOCTOR, ["physician"])
    led.register_patient(PATIENT)
    rotate(led, DOCTOR, DOCTOR2)
    assert_refused(led, PATIENT, "consent.grant", {"grantee": {"id": DOCTOR2.public_hex, "kind": "member"},
                                                   "patient": pseudonym(PATIENT), "purposes": ["TREAT"]},
                   Code.MEMBER_UNKNOWN)
    assert_refused(led, PATIENT, "consent.appoint_delegate", {"delegate": DOCTOR2.public_hex}, Code.DELEGATE_UNKNOWN)
    assert led.run(PATIENT, "consent.appoint_delegate", {"delegate": DOCTOR.public_hex}).code == 0
    assert identity.resolve_identity(led.state, DOCTOR.public_hex).active
    assert identity.resolve_identity(led.state, DOCTOR2.public_hex).kind == identity.UNREGISTERED


# -- patient rotation -------------------------------------------------------------------------------------------

def test_patient_rotation_keeps_her_pseudonym_records_and_delegates(led: ClockLedger) -> None:
    led.register_patient(PATIENT)
    led.register_patient(DELEGATE)
    rec = anchor(led, "hospital", PATIENT, "patient-rotation")
    led.run(PATIENT, "consent.appoint_delegate", {"delegate": DELEGATE.public_hex})
    receipt = rotate(led, PATIENT, PATIENT_NEW)
    assert receipt.code == 0
    assert led.get(identity.key_key(PATIENT_NEW.public_hex)) == {
        "identity": PATIENT.public_hex, "kind": "patient", "pseudonym": pseudonym(PATIENT), "roles": [],
        "since": led.height, "status": "active"}
    assert led.get(identity.patient_key(pseudonym(PATIENT)))["key"] == PATIENT.public_hex  # unchanged
    # she acts with the new key under the same pseudonym: a consent, and her own records
    grant = led.run(PATIENT_NEW, "consent.grant", {"grantee": {"id": "pharmacy", "kind": "org"},
                                                  "patient": pseudonym(PATIENT), "purposes": ["TREAT"]})
    assert grant.code == 0 and led.get(f"consent/patient/{pseudonym(PATIENT)}/{grant.result['consent']}") \
        ["granted_by"] == PATIENT.public_hex
    head = records.get_head(led.state, rec)
    assert head is not None
    new = identity.resolve_signer(led.state, PATIENT_NEW.public_hex)
    assert consent.evaluate_access(led.state, new, pseudonym(PATIENT), rec, head, "TREAT", led.now_ms()).mode \
        == "patient"
    delegate = identity.resolve_signer(led.state, DELEGATE.public_hex)
    assert consent.evaluate_access(led.state, delegate, pseudonym(PATIENT), rec, head, "TREAT",
                                   led.now_ms()).mode == "delegate"
    assert led.refused(led.tx(PATIENT, "consent.revoke", {"consent": grant.result["consent"]})).code \
        == Code.SIGNER_REVOKED
    # her old key cannot come back as a new patient
    assert led.run(PATIENT_NEW, "consent.revoke", {"consent": grant.result["consent"]}).code == 0


# -- rotation refusals -----------------------------------------------------------------------------------------

def test_admins_rotate_through_governance(led: ClockLedger) -> None:
    admin = led.consortium.admin("hospital")
    assert_refused(led, admin, "identity.rotate_key", {"new_key": DOCTOR2.public_hex,
                                                       "proof": proof(DOCTOR2, led, admin)}, Code.KEY_NOT_ROTATABLE)


@pytest.mark.parametrize("fault", ["other key signed", "other replaced key", "other chain", "other identity",
                                   "bit flipped"])
def test_a_bad_proof_of_possession_is_refused(led: ClockLedger, fault: str) -> None:
    led.enrol("hospital", DOCTOR, ["physician"])
    good = possession_message(DOCTOR.public_hex, DOCTOR2.public_hex, DOCTOR.public_hex)
    sig = {
        "other key signed": DOCTOR3.sign("proof", led.chain.chain_id, good),
        "other replaced key": DOCTOR2.sign("proof", led.chain.chain_id, possession_message(
            DOCTOR.public_hex, DOCTOR2.public_hex, NURSE.public_hex)),
        "other chain": DOCTOR2.sign("proof", "another-chain", good),
        "other identity": DOCTOR2.sign("proof", led.chain.chain_id, possession_message(
            NURSE.public_hex, DOCTOR2.public_hex, DOCTOR.public_hex)),
        "bit flipped": bytes([DOCTOR2.sign("proof", led.chain.chain_id, good)[0] ^ 1])
        + DOCTOR2.sign("proof", led.chain.chain_id, good)[1:],
    }[fault]
    assert_refused(led, DOCTOR, "identity.rotate_key", {"new_key": DOCTOR2.public_hex, "proof": sig.hex()},
                   Code.KEY_PROOF_INVALID)


def test_the_new_key_must_be_unregistered(led: ClockLedger) -> None:
    led.enrol("hospital", DOCTOR, ["physician"])
    led.register_patient(PATIENT)
    for taken in (PATIENT, DOCTOR, led.consortium.admin("clinic")):
        assert_refused(led, DOCTOR, "identity.rotate_key", {"new_key": taken.public_hex,
                                                            "proof": proof(taken, led, DOCTOR)}, Code.KEY_IN_USE)
    rotate(led, DOCTOR, DOCTOR2)
    assert_refused(led, DOCTOR2, "identity.rotate_key", {"new_key": DOCTOR.public_hex,
                                                         "proof": proof(DOCTOR, led, DOCTOR, DOCTOR2)},
                   Code.KEY_IN_USE)  # a retired key never comes back
    assert led.refused(led.tx(DOCTOR, "identity.register_patient", {})).code == Code.SIGNER_REVOKED


def test_rotation_payload_shape() -> None:
    from careledger.chain.registry import default_registry
    from careledger.core.errors import EncodingError
    handler = default_registry().get("identity.rotate_key", 1)
    for bad in ({"new_key": DOCTOR.public_hex}, {"new_key": DOCTOR.public_hex, "proof": "ab"},
                {"new_key": DOCTOR.public_hex.upper(), "proof": "0" * 128},
                {"new_key": DOCTOR.public_hex, "proof": "0" * 128, "extra": 1}):
        with pytest.raises(EncodingError) as exc:
            handler.parse(bad)
        assert exc.value.code == Code.INVALID_PAYLOAD


# -- recovery --------------------------------------------------------------------------------------------------

@pytest.fixture
def cared(led: ClockLedger) -> ClockLedger:
    """A patient with records at the hospital and the clinic, and a delegate (a registered patient)."""
    led.register_patient(PATIENT)
    led.register_patient(DELEGATE)
    anchor(led, "hospital", PATIENT, "recovery/hospital")
    anchor(led, "clinic", PATIENT, "recovery/clinic")
    assert led.run(PATIENT, "consent.appoint_delegate", {"delegate": DELEGATE.public_hex}).code == 0
    return led


def propose(led: Ledger, org: str = "hospital", new: SigningKey = PATIENT_NEW) -> Receipt:
    return led.run(led.consortium.admin(org), "identity.propose_recovery", {
        "new_key": new.public_hex, "patient": pseudonym(PATIENT), "proof": proof(new, led, PATIENT)})


def step(led: Ledger, signer: SigningKey, action: str, recovery: str) -> Receipt:
    return led.run(signer, f"identity.{action}_recovery", {"patient": pseudonym(PATIENT), "recovery": recovery})


def recovery_log(led: Ledger) -> list[tuple[str, str, str, str]]:
    return [(e.purpose, e.mode, e.requester, e.custodian) for _, e in audit.audit_log(led.state, pseudonym(PATIENT))
            if e.purpose == "PATADMIN"]


def test_recovery_by_custodian_and_delegate_after_the_delay(cared: ClockLedger) -> None:
    led = cared
    proposed = propose(led)
    assert proposed.code == 0, proposed.message
    rid = proposed.result["recovery"]
    assert rid.startswith("rcv-") and proposed.result["status"] == "proposed"
    assert step(led, PATIENT_NEW, "complete", rid).code == Code.RECOVERY_NOT_READY  # not approved yet
    approved = step(led, DELEGATE, "approve", rid)
    assert approved.code == 0, approved.message
    ready = approved.result["ready_ms"]
    assert ready == led.history[-1].result.header_fields["time_ms"] + RECOVERY_DELAY_MS
    assert_refused(led, PATIENT_NEW, "identity.complete_recovery", {"patient": pseudonym(PATIENT), "recovery": rid},
                   Code.RECOVERY_NOT_READY)
    led.skip_ms = RECOVERY_DELAY_MS
    done = step(led, PATIENT_NEW, "complete", rid)
    assert done.code == 0, done.message
    assert done.result == {"patient": pseudonym(PATIENT), "recovery": rid, "retired": PATIENT.public_hex,
                           "signing_key": PATIENT_NEW.public_hex, "status": "completed"}
    rec = identity.get_recovery(led.state, pseudonym(PATIENT))
    assert rec is not None and (rec.status, rec.closed_by) == ("completed", PATIENT_NEW.public_hex)
    assert [(a.role, a.org) for a in rec.approvals] == [("custodian", "hospital"), ("delegate", None)]
    assert led.refused(led.tx(PATIENT, "consent.remove_delegate", {"delegate": DELEGATE.public_hex})).code \
        == Code.SIGNER_REVOKED
    assert led.run(PATIENT_NEW, "consent.remove_delegate", {"delegate": DELEGATE.public_hex}).code == 0
    # every step is in her access log, where she (and only parties acting for her) read it
    admin = led.consortium.admin("hospital").public_hex
    assert recovery_log(led) == [("PATADMIN", "custodian", admin, "hospital"),
                                 ("PATADMIN", "delegate", DELEGATE.public_hex, "hospital"),
                                 ("PATADMIN", "patient", PATIENT_NEW.public_hex, "hospital")]


def test_a_second_custodian_may_approve_instead_of_a_delegate(cared: ClockLedger) -> None:
    rid = propose(cared).result["recovery"]
    assert step(cared, cared.consortium.admin("clinic"), "approve", rid).code == 0
    cared.skip_ms = RECOVERY_DELAY_MS
    assert step(cared, PATIENT_NEW, "complete", rid).code == 0
    assert identity.resolve_signer(cared.state, PATIENT_NEW.public_hex).key == PATIENT.public_hex


def test_one_organisation_or_one_key_cannot_approve_twice(cared: ClockLedger) -> None:
    led = cared
    led.enrol("hospital", NURSE, ["nurse"])
    led.run(PATIENT, "consent.appoint_delegate", {"delegate": NURSE.public_hex})
    rid = propose(led).result["recovery"]
    payload = {"patient": pseudonym(PATIENT), "recovery": rid}
    assert_refused(led, led.consortium.admin("hospital"), "identity.approve_recovery", payload,
                   Code.RECOVERY_PARTY_REPEATED)
    assert_refused(led, NURSE, "identity.approve_recovery", payload, Code.RECOVERY_PARTY_REPEATED)  # same organisation
    assert step(led, DELEGATE, "approve", rid).code == 0
    assert_refused(led, led.consortium.admin("clinic"), "identity.approve_recovery", payload, Code.INVALID_STATE)


def test_who_may_propose_and_approve(cared: ClockLedger) -> None:
    led = cared
    new = {"new_key": PATIENT_NEW.public_hex, "patient": pseudonym(PATIENT), "proof": proof(PATIENT_NEW, led, PATIENT)}
    # a delegate, a non-custodian admin, a stranger patient and the patient herself do not propose
    for signer in (DELEGATE, led.consortium.admin("pharmacy"), PATIENT):
        assert_refused(led, signer, "identity.propose_recovery", new, Code.RECOVERY_NOT_GUARDIAN)
    led.register_patient(STRANGER)
    assert_refused(led, STRANGER, "identity.propose_recovery", new, Code.RECOVERY_NOT_GUARDIAN)
    rid = propose(led).result["recovery"]
    for signer in (led.consortium.admin("pharmacy"), STRANGER):
        assert_refused(led, signer, "identity.approve_recovery", {"patient": pseudonym(PATIENT), "recovery": rid},
                       Code.RECOVERY_NOT_GUARDIAN)
    # a delegate whose appointment has ended no longer counts
    led.run(PATIENT, "consent.remove_delegate", {"delegate": DELEGATE.public_hex})
    assert_refused(led, DELEGATE, "identity.approve_recovery", {"patient": pseudonym(PATIENT), "recovery": rid},
                   Code.RECOVERY_NOT_GUARDIAN)


def test_proposal_refusals(cared: ClockLedger) -> None:
    led = cared
    admin = led.consortium.admin("hospital")
    base = {"new_key": PATIENT_NEW.public_hex, "patient": pseudonym(PATIENT)}
    assert_refused(led, admin, "identity.propose_recovery",
                   {**base, "proof": proof(PATIENT_NEW, led, PATIENT, DELEGATE)}, Code.KEY_PROOF_INVALID)
    assert_refused(led, admin, "identity.propose_recovery",
                   {**base, "new_key": DELEGATE.public_hex, "proof": proof(DELEGATE, led, PATIENT)}, Code.KEY_IN_USE)
    assert propose(led).code == 0
    assert_refused(led, admin, "identity.propose_recovery",
                   {**base, "new_key": STRANGER.public_hex, "proof": proof(STRANGER, led, PATIENT)}, Code.RECOVERY_OPEN)


def test_completion_refusals(cared: ClockLedger) -> None:
    led = cared
    rid = propose(led).result["recovery"]
    step(led, DELEGATE, "approve", rid)
    led.skip_ms = RECOVERY_DELAY_MS
    payload = {"patient": pseudonym(PATIENT), "recovery": rid}
    assert_refused(led, STRANGER, "identity.complete_recovery", payload, Code.RECOVERY_UNKNOWN)  # another key
    assert_refused(led, PATIENT_NEW, "identity.complete_recovery", {**payload, "recovery": "rcv-" + "0" * 24},
                   Code.RECOVERY_UNKNOWN)
    assert_refused(led, DELEGATE, "identity.complete_recovery", payload, Code.KEY_IN_USE)  # a registered key


def test_the_patient_who_still_holds_her_key_cancels(cared: ClockLedger) -> None:
    led = cared
    rid = propose(led).result["recovery"]
    step(led, DELEGATE, "approve", rid)
    payload = {"patient": pseudonym(PATIENT), "recovery": rid}
    assert_refused(led, led.consortium.admin("clinic"), "identity.cancel_recovery", payload,
                   Code.RECOVERY_NOT_GUARDIAN)  # a guardian who did not approve it
    assert step(led, PATIENT, "cancel", rid).code == 0
    assert recovery_log(led)[-1] == ("PATADMIN", "patient", PATIENT.public_hex, "hospital")
    led.skip_ms = RECOVERY_DELAY_MS
    assert_refused(led, PATIENT_NEW, "identity.complete_recovery", payload, Code.RECOVERY_UNKNOWN)
    assert_refused(led, PATIENT, "identity.cancel_recovery", payload, Code.RECOVERY_UNKNOWN)
    assert identity.resolve_signer(led.state, PATIENT.public_hex).active
    assert propose(led, new=STRANGER).code == 0  # a closed recovery leaves room for a new one


def test_an_approver_cancels_and_her_rotation_cancels(cared: ClockLedger) -> None:
    led = cared
    rid = propose(led).result["recovery"]
    assert step(led, led.consortium.admin("hospital"), "cancel", rid).code == 0
    rid2 = propose(led, new=STRANGER).result["recovery"]
    assert rotate(led, PATIENT, PATIENT2).code == 0
    rec = identity.get_recovery(led.state, pseudonym(PATIENT))
    assert rec is not None and (rec.id, rec.status, rec.closed_by) == (rid2, "cancelled", PATIENT.public_hex)
    assert [m for _, m, _, _ in recovery_log(led)] == ["custodian", "custodian", "custodian", "patient"]


def test_recovery_of_a_rotated_patient_retires_her_current_key(cared: ClockLedger) -> None:
    led = cared
    rotate(led, PATIENT, PATIENT2)
    receipt = led.run(led.consortium.admin("hospital"), "identity.propose_recovery", {
        "new_key": PATIENT_NEW.public_hex, "patient": pseudonym(PATIENT),
        "proof": proof(PATIENT_NEW, led, PATIENT, PATIENT2)})
    assert receipt.code == 0, receipt.message
    step(led, DELEGATE, "approve", receipt.result["recovery"])
    led.skip_ms = RECOVERY_DELAY_MS
    done = step(led, PATIENT_NEW, "complete", receipt.result["recovery"])
    assert done.result["retired"] == PATIENT2.public_hex
    assert not identity.resolve_signer(led.state, PATIENT2.public_hex).active
    assert identity.resolve_signer(led.state, PATIENT_NEW.public_hex).key == PATIENT.public_hex


def test_key_rotation_handlers_are_registered() -> None:
    from careledger.chain.registry import default_registry
    kinds = set(default_registry().kinds())
    assert {("identity.rotate_key", 1), ("identity.propose_recovery", 1), ("identity.approve_recovery", 1),
            ("identity.cancel_recovery", 1), ("identity.complete_recovery", 1)} <= kinds


# -- a property: whatever the sequence, exactly one key signs for the identity ----------------------------------

@settings(max_examples=15, derandomize=True, deadline=None)
@given(st.lists(st.sampled_from(["rotate", "stale", "roles"]), min_size=1, max_size=6))
def test_exactly_the_latest_key_signs_for_the_identity(steps: list[str]) -> None:
    """After any sequence of rotations, attempts by retired keys and role changes: the newest key signs as
    the identity with its current roles, every earlier key is refused, and each resolves to the identity."""
    from support import make_consortium

    led = ClockLedger(make_consortium())
    led.enrol("hospital", DOCTOR, ["physician"])
    keys = [DOCTOR]
    roles: tuple[str, ...] = ("physician",)
    for n, action in enumerate(steps):
        if action == "rotate":
            new = seeded_key(f"keys/property/{n}")
            assert rotate(led, keys[-1], new, ident=DOCTOR).code == 0
            keys.append(new)
        elif action == "stale" and len(keys) > 1:
            assert led.refused(led.tx(keys[-2], "identity.rotate_key", {
                "new_key": STRANGER.public_hex, "proof": proof(STRANGER, led, DOCTOR, keys[-2])})).code \
                == Code.SIGNER_REVOKED
        elif action == "roles":
            roles = ("emergency", "physician") if roles == ("physician",) else ("physician",)
            assert led.run(led.consortium.admin("hospital"), "identity.set_member_roles", {
                "member": DOCTOR.public_hex, "org": "hospital", "roles": list(roles)}).code == 0
    signers = [identity.resolve_signer(led.state, k.public_hex) for k in keys]
    assert [s.active for s in signers] == [False] * (len(keys) - 1) + [True]
    assert {s.key for s in signers} == {DOCTOR.public_hex}
    assert signers[-1].roles == roles
    assert identity.signing_key_of(led.state, DOCTOR.public_hex) == keys[-1].public_hex
    assert all(identity.identity_key_of(led.state, k.public_hex) == DOCTOR.public_hex for k in keys)
