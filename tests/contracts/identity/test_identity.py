"""Identity contract: members, roles, revocation and pseudonymous patients."""

from __future__ import annotations

import hashlib

import pytest

from careledger.chain.executor import BlockExecution, check_admission, check_signer, check_stateless, nonce_key
from careledger.contracts import identity
from careledger.contracts.base import TxContext
from careledger.core.errors import AuthError, Code, TxFailed
from support import Consortium, Ledger, seeded_key

DOCTOR = seeded_key("id/doctor")
NURSE = seeded_key("id/nurse")
PATIENT = seeded_key("id/patient")


def enrol_payload(org: str, member: str, roles: list[str], **extra: str) -> dict[str, object]:
    return {"member": member, "org": org, "roles": roles, **extra}


# -- enrolment -----------------------------------------------------------------------------------------

def test_enrol_member(consortium: Consortium, ledger: Ledger) -> None:
    admin = consortium.admin("hospital")
    receipt = ledger.run(admin, "identity.enrol_member",
                         enrol_payload("hospital", DOCTOR.public_hex, ["physician", "emergency"], handle="dr.grey"))
    assert receipt.code == 0
    assert receipt.result == {"member": DOCTOR.public_hex, "org": "hospital"}
    assert ledger.get(identity.key_key(DOCTOR.public_hex)) == {
        "handle": "dr.grey", "kind": "member", "org": "hospital", "roles": ["emergency", "physician"], "since": 1,
        "status": "active"}
    assert ledger.get(identity.member_index_key("hospital", DOCTOR.public_hex)) == {
        "roles": ["emergency", "physician"], "status": "active"}
    signer = identity.resolve_signer(ledger.state, DOCTOR.public_hex)
    assert (signer.kind, signer.org, signer.roles, signer.active) == ("member", "hospital",
                                                                      ("emergency", "physician"), True)
    assert signer.has_role("physician") and not signer.has_role("pharmacist")


@pytest.mark.parametrize(("org", "role"), [
    ("hospital", "physician"), ("clinic", "nurse"), ("pharmacy", "pharmacist"), ("manufacturer", "quality_officer"),
    ("distributor", "supply_operator"), ("insurer", "claims_officer"), ("research", "researcher"),
    ("regulator", "inspector"),
])
def test_each_org_type_enrols_its_roles(ledger: Ledger, org: str, role: str) -> None:
    assert ledger.enrol(org, seeded_key(f"id/{org}/{role}"), [role]).code == 0


@pytest.mark.parametrize(("org", "role"), [
    ("pharmacy", "physician"), ("insurer", "nurse"), ("regulator", "researcher"), ("manufacturer", "pharmacist"),
    ("research", "inspector"), ("clinic", "pharmacist"), ("hospital", "inspector"), ("distributor", "auditor_x"),
])
def test_role_not_allowed_for_org_type(consortium: Consortium, ledger: Ledger, org: str, role: str) -> None:
    admin = consortium.admin(org)
    member = seeded_key(f"id/{org}/{role}")
    before = ledger.snapshot()
    prev_hash = ledger.app_hash
    outcome = ledger.block(ledger.tx(admin, "identity.enrol_member", enrol_payload(org, member.public_hex, [role])))
    assert outcome.codes == [Code.ROLE_NOT_ALLOWED]
    assert outcome.receipts[0].result is None and outcome.receipts[0].events == ()
    # nothing written but the admin's nonce, and the block committed
    assert outcome.result.changes == {nonce_key(admin.public_hex): b"1"}
    assert ledger.get(identity.key_key(member.public_hex)) is None
    assert ledger.snapshot() == {**before, nonce_key(admin.public_hex): b"1"}
    assert ledger.height == 1 and ledger.app_hash != prev_hash


def test_repeated_roles_refused(ledger: Ledger) -> None:
    assert ledger.enrol("hospital", DOCTOR, ["nurse", "nurse"]).code == Code.ROLE_NOT_ALLOWED


def test_non_admin_cannot_enrol(consortium: Consortium, ledger: Ledger) -> None:
    assert ledger.enrol("hospital", NURSE, ["nurse"]).code == 0
    cases = [
        (consortium.admin("clinic"), "hospital"),  # admin of another organisation
        (NURSE, "hospital"),  # a member, not an admin
    ]
    for signer, org in cases:
        raw = ledger.tx(signer, "identity.enrol_member", enrol_payload(org, DOCTOR.public_hex, ["physician"]))
        with pytest.raises(TxFailed) as err:  # refused at admission already
            ledger.admit(raw)
        assert err.value.code == Code.UNAUTHORISED
        nonce = ledger.committed_nonce(signer)
        outcome = ledger.block(raw)  # and if it reaches a block anyway: a failed receipt
        assert outcome.codes == [Code.UNAUTHORISED]
        assert ledger.get(identity.key_key(DOCTOR.public_hex)) is None
        assert ledger.committed_nonce(signer) == nonce + 1


def test_unknown_signer_cannot_enrol(ledger: Ledger) -> None:
    stranger = seeded_key("id/stranger")
    raw = ledger.tx(stranger, "identity.enrol_member", enrol_payload("hospital", DOCTOR.public_hex, ["physician"]))
    with pytest.raises(AuthError) as err:
        ledger.admit(raw)
    assert err.value.code == Code.UNKNOWN_SIGNER
    assert ledger.refused(raw).code == Code.UNKNOWN_SIGNER
    assert ledger.get(nonce_key(stranger.public_hex)) is None


def test_key_in_use(consortium: Consortium, ledger: Ledger) -> None:
    assert ledger.enrol("hospital", DOCTOR, ["physician"]).code == 0
    assert ledger.enrol("hospital", DOCTOR, ["nurse"]).code == Code.KEY_IN_USE
    assert ledger.enrol("clinic", DOCTOR, ["nurse"]).code == Code.KEY_IN_USE
    assert ledger.enrol("hospital", consortium.admin("clinic"), ["nurse"]).code == Code.KEY_IN_USE
    assert ledger.register_patient(PATIENT).code == 0
    assert ledger.enrol("hospital", PATIENT, ["nurse"]).code == Code.KEY_IN_USE
    assert ledger.get(identity.key_key(DOCTOR.public_hex))["roles"] == ["physician"]


# -- roles ---------------------------------------------------------------------------------------------

def test_set_member_roles(consortium: Consortium, ledger: Ledger) -> None:
    assert ledger.enrol("hospital", DOCTOR, ["physician"]).code == 0
    admin = consortium.admin("hospital")
    receipt = ledger.run(admin, "identity.set_member_roles",
                         {"member": DOCTOR.public_hex, "org": "hospital", "roles": ["researcher", "auditor"]})
    assert receipt.code == 0 and receipt.result == {"member": DOCTOR.public_hex, "roles": ["auditor", "researcher"]}
    assert ledger.get(identity.key_key(DOCTOR.public_hex))["roles"] == ["auditor", "researcher"]
    assert ledger.get(identity.member_index_key("hospital", DOCTOR.public_hex))["roles"] == ["auditor", "researcher"]
    assert receipt.events[0]["type"] == "member_roles_changed"
    # a role the organisation type does not allow
    bad = ledger.run(admin, "identity.set_member_roles",
                     {"member": DOCTOR.public_hex, "org": "hospital", "roles": ["inspector"]})
    assert bad.code == Code.ROLE_NOT_ALLOWED
    assert ledger.get(identity.key_key(DOCTOR.public_hex))["roles"] == ["auditor", "researcher"]
    # not a member of this organisation
    for member, org in ((NURSE, "hospital"), (DOCTOR, "clinic"), (consortium.admin("hospital"), "hospital")):
        signer = consortium.admin(org)
        receipt = ledger.run(signer, "identity.set_member_roles",
                             {"member": member.public_hex, "org": org, "roles": ["nurse"]})
        assert receipt.code == Code.MEMBER_UNKNOWN


# -- revocation ----------------------------------------------------------------------------------------

def test_revoke_member_then_their_transactions_are_invalid(consortium: Consortium, ledger: Ledger) -> None:
    admin = consortium.admin("hospital")
    assert ledger.enrol("hospital", DOCTOR, ["physician"]).code == 0
    # while active, the member's transaction is valid (included), even if the contract refuses it
    assert ledger.run(DOCTOR, "identity.set_org_api", {"api": None, "org": "hospital"}).code == Code.UNAUTHORISED
    assert ledger.committed_nonce(DOCTOR) == 1
    receipt = ledger.run(admin, "identity.revoke_member",
                         {"member": DOCTOR.public_hex, "org": "hospital", "reason": "left the hospital"})
    assert receipt.code == 0 and receipt.result == {"member": DOCTOR.public_hex, "revoked_at": 3}
    rec = ledger.get(identity.key_key(DOCTOR.public_hex))
    assert rec["status"] == "revoked" and rec["revoked_at"] == 3
    assert ledger.get(identity.member_index_key("hospital", DOCTOR.public_hex))["status"] == "revoked"
    assert not identity.resolve_signer(ledger.state, DOCTOR.public_hex).active
    # from now on: refused at admission and by BlockExecution.add, never included
    for tx_type, payload in (("identity.set_org_api", {"api": None, "org": "hospital"}),
                             ("identity.register_patient", {}),
                             ("governance.vote", {"approve": True, "proposal": "gp-" + "0" * 24})):
        raw = ledger.tx(DOCTOR, tx_type, payload)
        with pytest.raises(AuthError) as err:
            ledger.admit(raw)
        assert err.value.code == Code.SIGNER_REVOKED
        before = ledger.snapshot()
        exc = ledger.refused(raw)
        assert exc.code == Code.SIGNER_REVOKED
        assert ledger.history[-1].result.txs == []
        assert ledger.snapshot() == before
    assert ledger.committed_nonce(DOCTOR) == 1
    # revoking twice, or revoking a non-member
    again = ledger.run(admin, "identity.revoke_member", {"member": DOCTOR.public_hex, "org": "hospital", "reason": "x"})
    assert again.code == Code.INVALID_STATE
    unknown = ledger.run(admin, "identity.revoke_member",
                         {"member": NURSE.public_hex, "org": "hospital", "reason": "x"})
    assert unknown.code == Code.MEMBER_UNKNOWN
    # a revoked member's roles cannot be changed, and their key cannot be re-enrolled
    assert ledger.run(admin, "identity.set_member_roles", {"member": DOCTOR.public_hex, "org": "hospital",
                                                           "roles": ["nurse"]}).code == Code.INVALID_STATE
    assert ledger.enrol("hospital", DOCTOR, ["nurse"]).code == Code.KEY_IN_USE


def test_revocation_takes_effect_within_the_same_block(consortium: Consortium, ledger: Ledger) -> None:
    admin = consortium.admin("hospital")
    assert ledger.enrol("hospital", DOCTOR, ["physician"]).code == 0
    revoke = ledger.tx(admin, "identity.revoke_member", {"member": DOCTOR.public_hex, "org": "hospital",
                                                         "reason": "compromised key"})
    doctor_tx = ledger.tx(DOCTOR, "identity.set_org_api", {"api": None, "org": "hospital"})
    # against committed state the doctor is still an active signer (the revocation is not committed yet)...
    assert check_signer(ledger.state, ledger.check(doctor_tx)).active
    # ...but block execution refuses the doctor's tx once the revocation earlier in the block has applied
    outcome = ledger.block(revoke, doctor_tx)
    assert outcome.codes == [0]
    assert [(raw, exc.code) for raw, exc in outcome.invalid] == [(doctor_tx, Code.SIGNER_REVOKED)]
    assert outcome.result.txs == [revoke]


def test_revoked_signer_direct_block_execution(consortium: Consortium, ledger: Ledger) -> None:
    assert ledger.enrol("hospital", DOCTOR, ["physician"]).code == 0
    assert ledger.run(consortium.admin("hospital"), "identity.revoke_member",
                      {"member": DOCTOR.public_hex, "org": "hospital", "reason": "r"}).code == 0
    run = BlockExecution(ledger.chain, ledger.state, ledger.env(), ledger.app_hash)
    checked = check_stateless(ledger.chain, ledger.tx(DOCTOR, "identity.register_patient", {}))
    with pytest.raises(AuthError) as err:
        run.add(checked)
    assert err.value.code == Code.SIGNER_REVOKED
    assert run.txs == [] and run.receipts == [] and run.state.writes == {}
    with pytest.raises(AuthError) as err:
        check_admission(ledger.chain, ledger.state, ledger.env(), checked, 1)
    assert err.value.code == Code.SIGNER_REVOKED


# -- patients ------------------------------------------------------------------------------------------

def test_register_patient(ledger: Ledger) -> None:
    receipt = ledger.register_patient(PATIENT)
    pseudonym = "pt-" + hashlib.sha256(PATIENT.public_key).digest()[:16].hex()
    assert identity.compute_pseudonym(PATIENT.public_hex) == pseudonym
    assert len(pseudonym) == 35
    assert receipt.code == 0 and receipt.result == {"pseudonym": pseudonym}
    assert receipt.events == ({"attrs": {"pseudonym": pseudonym}, "type": "patient_registered"},)
    # the ledger holds the key, the pseudonym and dates as heights; nothing else about the person
    assert ledger.get(identity.key_key(PATIENT.public_hex)) == {
        "kind": "patient", "pseudonym": pseudonym, "roles": [], "since": 1, "status": "active"}
    assert ledger.get(identity.patient_key(pseudonym)) == {"key": PATIENT.public_hex, "since": 1, "status": "active"}
    assert ledger.committed_nonce(PATIENT) == 1
    signer = identity.resolve_signer(ledger.state, PATIENT.public_hex)
    assert (signer.kind, signer.org, signer.active) == ("patient", None, True)


def test_pseudonym_known_answer() -> None:
    pub = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
    assert identity.compute_pseudonym(pub) == "pt-" + hashlib.sha256(bytes.fromhex(pub)).hexdigest()[:32]
    assert identity.compute_pseudonym(pub) != identity.compute_pseudonym(seeded_key("other").public_hex)


def test_patient_registering_twice(ledger: Ledger) -> None:
    assert ledger.register_patient(PATIENT).code == 0
    before = ledger.snapshot()
    raw = ledger.tx(PATIENT, "identity.register_patient", {})
    with pytest.raises(TxFailed) as err:
        ledger.admit(raw)
    assert err.value.code == Code.PATIENT_EXISTS
    outcome = ledger.block(raw)
    assert outcome.codes == [Code.PATIENT_EXISTS]
    assert ledger.snapshot() == {**before, nonce_key(PATIENT.public_hex): b"2"}


def test_patient_registering_twice_in_one_block(ledger: Ledger) -> None:
    outcome = ledger.block(ledger.tx(PATIENT, "identity.register_patient", {}),
                           ledger.tx(PATIENT, "identity.register_patient", {}))
    assert outcome.codes == [0, Code.PATIENT_EXISTS]


def test_members_and_admins_cannot_register_as_patients(consortium: Consortium, ledger: Ledger) -> None:
    assert ledger.register_patient(consortium.admin("clinic")).code == Code.KEY_IN_USE
    assert ledger.enrol("clinic", NURSE, ["nurse"]).code == 0
    assert ledger.register_patient(NURSE).code == Code.KEY_IN_USE
    assert ledger.get(identity.patient_key(identity.compute_pseudonym(NURSE.public_hex))) is None


def test_patient_cannot_act_as_member(ledger: Ledger) -> None:
    assert ledger.register_patient(PATIENT).code == 0
    receipt = ledger.run(PATIENT, "identity.enrol_member", enrol_payload("hospital", DOCTOR.public_hex, ["nurse"]))
    assert receipt.code == Code.UNAUTHORISED
    assert ledger.run(PATIENT, "governance.propose", {"action": {"kind": "remove_organisation", "org": "clinic"},
                                                      "title": "t"}).code == Code.UNAUTHORISED


# -- organisation api ----------------------------------------------------------------------------------

def test_set_org_api(consortium: Consortium, ledger: Ledger) -> None:
    receipt = ledger.run(consortium.admin("insurer"), "identity.set_org_api",
                         {"api": "https://insurer.example:8443/ledger", "org": "insurer"})
    assert receipt.code == 0
    assert ledger.get(identity.org_key("insurer"))["api"] == "https://insurer.example:8443/ledger"
    assert ledger.run(consortium.admin("clinic"), "identity.set_org_api",
                      {"api": None, "org": "insurer"}).code == Code.UNAUTHORISED
    assert ledger.get(identity.org_key("insurer"))["api"] == "https://insurer.example:8443/ledger"


def test_require_helpers(ledger: Ledger, consortium: Consortium) -> None:
    from careledger.core.block import BlockEnv

    signer = identity.resolve_signer(ledger.state, consortium.admin("regulator").public_hex)
    ctx = TxContext(env=BlockEnv("c", 1, 0, ""), tx_hash="ab" * 32, index=0, signer=signer, params={})
    identity.require_admin_of(ctx, "regulator")
    with pytest.raises(TxFailed) as err:
        identity.require_admin_of(ctx, "clinic")
    assert err.value.code == Code.UNAUTHORISED
    with pytest.raises(TxFailed):
        identity.require_member_role(ctx, "inspector")  # an admin holds the role "admin" only
    with pytest.raises(TxFailed):
        identity.require_patient(ctx)
    assert ctx.derive_id("x") == "x-" + "ab" * 12 and ctx.derive_id("x", 2) == "x-" + "ab" * 12 + "-2"
