"""Vectors of the identity and governance contracts (their state never records the block time)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from careledger.core.crypto import SigningKey
from vectors.builder import ORGS, VALIDATOR, Builder, admin, enrol, ikey, key, nonce

H, P, INS, R = (org for org, _, _ in ORGS)
DOCTOR, NURSE, PATIENT, STRANGER = key("member/doctor"), key("member/nurse"), key("patient/1"), key("stranger")
NEW_ADMIN = key("admin/clinic-e")
NEW_ORG = {"admins": [NEW_ADMIN.public_hex], "id": "clinic-e", "name": "Clinic", "roles": ["clinic"]}


def propose(b: Builder, org: str, action: dict[str, Any], title: str = "proposal") -> bytes:
    return b.tx(admin(org), "governance.propose", {"action": action, "title": title})


def vote(b: Builder, org: str, pid: str, approve: bool = True) -> bytes:
    return b.tx(admin(org), "governance.vote", {"approve": approve, "proposal": pid})


# -- identity ------------------------------------------------------------------------------------------

def identity_enrol_member_ok() -> dict[str, Any]:
    b = Builder()
    return b.vector("identity_enrol_member_ok", "A hospital admin enrols a physician.",
                    [enrol(b, H, DOCTOR, ["physician", "emergency"])],
                    [ikey(DOCTOR), f"identity/member/{H}/{DOCTOR.public_hex}", nonce(admin(H))], [(True, 0)])


def identity_enrol_member_role_not_allowed() -> dict[str, Any]:
    b = Builder()
    return b.vector("identity_enrol_member_role_not_allowed",
                    "A pharmacy may not enrol a physician: failed receipt 1003; only the admin's nonce is written.",
                    [enrol(b, P, DOCTOR, ["physician"])], [ikey(DOCTOR), nonce(admin(P))], [(True, 1003)])


def identity_enrol_member_unauthorised() -> dict[str, Any]:
    b = Builder()
    raw = b.tx(admin(INS), "identity.enrol_member", {"member": DOCTOR.public_hex, "org": H, "roles": ["physician"]})
    return b.vector("identity_enrol_member_unauthorised",
                    "An insurer's admin tries to enrol a member of the hospital: failed receipt 206.",
                    [raw], [ikey(DOCTOR), nonce(admin(INS))], [(True, 206)])


def identity_enrol_member_key_in_use() -> dict[str, Any]:
    b = Builder()
    return b.vector("identity_enrol_member_key_in_use",
                    "Enrolling another organisation's admin key as a member fails with 1007.",
                    [enrol(b, H, admin(P), ["nurse"])], [ikey(admin(P))], [(True, 1007)])


def identity_set_member_roles_ok() -> dict[str, Any]:
    b = Builder()
    b.pre(enrol(b, H, NURSE, ["nurse"]))
    raw = b.tx(admin(H), "identity.set_member_roles", {"member": NURSE.public_hex, "org": H,
                                                        "roles": ["nurse", "emergency"]})
    return b.vector("identity_set_member_roles_ok", "The hospital admin changes a nurse's roles.", [raw],
                    [ikey(NURSE), f"identity/member/{H}/{NURSE.public_hex}"], [(True, 0)])


def identity_revoke_member_ok() -> dict[str, Any]:
    b = Builder()
    b.pre(enrol(b, H, DOCTOR, ["physician"]))
    raw = b.tx(admin(H), "identity.revoke_member", {"member": DOCTOR.public_hex, "org": H, "reason": "left"})
    return b.vector("identity_revoke_member_ok", "The hospital admin revokes a physician.", [raw],
                    [ikey(DOCTOR), f"identity/member/{H}/{DOCTOR.public_hex}"], [(True, 0)])


def identity_revoked_member_refused() -> dict[str, Any]:
    b = Builder()
    b.pre(enrol(b, H, DOCTOR, ["physician"]))
    b.pre(b.tx(admin(H), "identity.revoke_member", {"member": DOCTOR.public_hex, "org": H, "reason": "left"}))
    raw = b.tx(DOCTOR, "identity.register_patient", {})
    return b.vector("identity_revoked_member_refused",
                    "A revoked member's transaction is invalid (205) and never included; the block is empty.",
                    [raw], [nonce(DOCTOR)], [(False, 205)])


def identity_revocation_same_block() -> dict[str, Any]:
    b = Builder()
    b.pre(enrol(b, H, DOCTOR, ["physician"]))
    revoke = b.tx(admin(H), "identity.revoke_member", {"member": DOCTOR.public_hex, "org": H, "reason": "stolen key"})
    late = b.tx(DOCTOR, "identity.set_org_api", {"api": None, "org": H})
    return b.vector("identity_revocation_same_block",
                    "A revocation takes effect for the member's transaction later in the same block.",
                    [revoke, late], [ikey(DOCTOR), nonce(DOCTOR)], [(True, 0), (False, 205)])


def identity_register_patient_ok() -> dict[str, Any]:
    b = Builder()
    pseudonym = "pt-" + hashlib.sha256(PATIENT.public_key).digest()[:16].hex()
    return b.vector("identity_register_patient_ok",
                    "A patient registers a key; the pseudonym is pt- + hex(SHA-256(public key)[:16]).",
                    [b.tx(PATIENT, "identity.register_patient", {})],
                    [ikey(PATIENT), f"identity/patient/{pseudonym}", nonce(PATIENT)], [(True, 0)])


def identity_set_member_roles_refused() -> dict[str, Any]:
    b = Builder()
    b.pre(enrol(b, H, NURSE, ["nurse"]), enrol(b, H, DOCTOR, ["physician"]))
    b.pre(b.tx(admin(H), "identity.revoke_member", {"member": DOCTOR.public_hex, "org": H, "reason": "left"}))

    def set_roles(member: SigningKey, roles: list[str]) -> bytes:
        return b.tx(admin(H), "identity.set_member_roles", {"member": member.public_hex, "org": H, "roles": roles})

    return b.vector("identity_set_member_roles_refused",
                    "A regulator's role for a hospital member (1003), roles repeated (1003), a revoked member "
                    "(403) and a key that is no member (1005) fail; roles are stored sorted.",
                    [set_roles(NURSE, ["inspector"]), set_roles(NURSE, ["nurse", "nurse"]),
                     set_roles(DOCTOR, ["nurse"]), set_roles(STRANGER, ["nurse"]),
                     set_roles(NURSE, ["registrar", "emergency", "nurse"])],
                    [ikey(NURSE), f"identity/member/{H}/{NURSE.public_hex}", ikey(DOCTOR), ikey(STRANGER)],
                    [(True, 1003), (True, 1003), (True, 403), (True, 1005), (True, 0)])


def identity_revoke_member_refused() -> dict[str, Any]:
    b = Builder()
    b.pre(enrol(b, H, NURSE, ["nurse"]))

    def revoke(member: SigningKey) -> bytes:
        return b.tx(admin(H), "identity.revoke_member", {"member": member.public_hex, "org": H, "reason": "left"})

    return b.vector("identity_revoke_member_refused",
                    "Revoking a key that is no member (1005) or an organisation admin (1005) fails; the member "
                    "is revoked; revoking it again is 403.",
                    [revoke(STRANGER), revoke(admin(H)), revoke(NURSE), revoke(NURSE)],
                    [ikey(NURSE), f"identity/member/{H}/{NURSE.public_hex}"],
                    [(True, 1005), (True, 1005), (True, 0), (True, 403)])


def identity_set_org_api() -> dict[str, Any]:
    b = Builder()
    set_api = b.tx(admin(H), "identity.set_org_api", {"api": "https://api.hospital-a.example/v1", "org": H})
    ftp = b.tx(admin(H), "identity.set_org_api", {"api": "ftp://hospital-a.example", "org": H}, nonce=2)
    other = b.tx(admin(P), "identity.set_org_api", {"api": "https://pharmacy.example", "org": H})
    return b.vector("identity_set_org_api",
                    "The hospital's admin sets its API endpoint; an ftp URL is invalid (105); the pharmacy's admin "
                    "may not set the hospital's (206).",
                    [set_api, ftp, other], [f"identity/org/{H}", nonce(admin(P))],
                    [(True, 0), (False, 105), (True, 206)])


def identity_set_org_tls() -> dict[str, Any]:
    b = Builder()
    fp = [hashlib.sha256(f"certificate {i}".encode()).hexdigest() for i in range(3)]
    b.pre(b.tx(admin(P), "identity.set_org_tls", {"fingerprints": [fp[2]], "org": P}))
    register = b.tx(admin(H), "identity.set_org_tls", {"fingerprints": [fp[1], fp[0]], "org": H})
    repeated = b.tx(admin(H), "identity.set_org_tls", {"fingerprints": [fp[0], fp[0]], "org": H}, nonce=2)
    not_hex = b.tx(admin(H), "identity.set_org_tls", {"fingerprints": [fp[0].upper()], "org": H}, nonce=2)
    clear = b.tx(admin(P), "identity.set_org_tls", {"fingerprints": [], "org": P})
    return b.vector("identity_set_org_tls",
                    "The hospital's admin registers two TLS client certificate fingerprints (stored sorted); "
                    "repeated or upper-case fingerprints are invalid (105); the pharmacy's admin clears the one "
                    "it registered before.",
                    [register, repeated, not_hex, clear], [f"identity/tls/{H}", f"identity/tls/{P}"],
                    [(True, 0), (False, 105), (False, 105), (True, 0)])


def identity_register_patient_twice() -> dict[str, Any]:
    b = Builder()
    b.pre(b.tx(PATIENT, "identity.register_patient", {}))
    return b.vector("identity_register_patient_twice", "Registering the same patient key again fails with 1006.",
                    [b.tx(PATIENT, "identity.register_patient", {})], [nonce(PATIENT)], [(True, 1006)])


# -- governance ----------------------------------------------------------------------------------------

ADD = {"kind": "add_organisation", "organisation": NEW_ORG}


def _open(b: Builder, action: dict[str, Any], org: str = H) -> str:
    receipts = b.pre(propose(b, org, action))
    return str(receipts[0]["result"]["proposal"])


def governance_propose_open() -> dict[str, Any]:
    b = Builder()
    raw = propose(b, H, ADD, "admit Clinic E")
    pid = "gp-" + hashlib.sha256(raw).hexdigest()[:24]
    return b.vector("governance_propose_open",
                    "The hospital proposes a new organisation; its own yes (1 of 4) is not enough.",
                    [raw], [f"governance/proposal/{pid}", "identity/org/clinic-e"], [(True, 0)])


def governance_add_organisation_executed() -> dict[str, Any]:
    b = Builder()
    pid = _open(b, ADD)
    b.pre(vote(b, P, pid))
    return b.vector("governance_add_organisation_executed",
                    "With 4 organisations, the third yes passes (3*3 > 2*4) and executes in the same transaction.",
                    [vote(b, INS, pid)],
                    [f"governance/proposal/{pid}", "identity/org/clinic-e", ikey(NEW_ADMIN)], [(True, 0)])


def governance_proposal_rejected() -> dict[str, Any]:
    b = Builder()
    pid = _open(b, ADD)
    b.pre(vote(b, P, pid, approve=False))
    return b.vector("governance_proposal_rejected",
                    "A second no makes 3 yes of 4 impossible: the proposal is rejected.",
                    [vote(b, R, pid, approve=False)], [f"governance/proposal/{pid}", "identity/org/clinic-e"],
                    [(True, 0)])


def governance_already_voted() -> dict[str, Any]:
    b = Builder()
    pid = _open(b, ADD)
    return b.vector("governance_already_voted", "The proposing organisation votes again: 1103.",
                    [vote(b, H, pid)], [f"governance/proposal/{pid}"], [(True, 1103)])


def governance_proposal_unknown() -> dict[str, Any]:
    b = Builder()
    return b.vector("governance_proposal_unknown", "A vote on a proposal that does not exist: 1101.",
                    [vote(b, P, "gp-" + "0" * 24)], ["governance/proposal/gp-" + "0" * 24], [(True, 1101)])


def governance_set_validator() -> dict[str, Any]:
    b = Builder()
    new = key("validator/1").public_hex
    pid = _open(b, {"kind": "set_validator", "org": P, "power": 5, "pub_key": new}, P)
    b.pre(vote(b, H, pid))
    return b.vector("governance_set_validator",
                    "A new validator for the pharmacy passes and is emitted as a validator_update event.",
                    [vote(b, R, pid)], [f"governance/validator/{new}", f"governance/validator/{VALIDATOR.public_hex}"],
                    [(True, 0)])


def governance_schedule_rules() -> dict[str, Any]:
    b = Builder()
    pid = _open(b, {"kind": "schedule_rules", "height": 40, "version": 2})
    b.pre(vote(b, P, pid))
    late = propose(b, P, {"kind": "schedule_rules", "height": 2, "version": 3}, "activate in the past")
    return b.vector("governance_schedule_rules",
                    "Rules version 2 is scheduled for height 40 by the third yes; a second schedule whose height "
                    "is not ahead of the current block fails with 1104.",
                    [vote(b, INS, pid), late], [f"governance/proposal/{pid}", "governance/rules"],
                    [(True, 0), (True, 1104)])


def governance_remove_organisation() -> dict[str, Any]:
    b = Builder()
    b.pre(enrol(b, R, NURSE, ["inspector"]))
    pid = _open(b, {"kind": "remove_organisation", "org": R})
    b.pre(vote(b, P, pid))
    b.pre(vote(b, INS, pid))
    late_admin = b.tx(admin(R), "identity.set_org_api", {"api": None, "org": R})
    late_member = b.tx(NURSE, "identity.register_patient", {})
    return b.vector("governance_remove_organisation",
                    "Once the regulator is removed, its admin's and members' transactions are invalid (205).",
                    [late_admin, late_member], [f"identity/org/{R}", nonce(admin(R)), nonce(NURSE)],
                    [(False, 205), (False, 205)])


def governance_propose_refused() -> dict[str, Any]:
    b = Builder()
    taken = {**NEW_ORG, "admins": [admin(P).public_hex]}
    return b.vector("governance_propose_refused",
                    "Proposals that fail their action's checks when opened: an organisation id that exists (402), "
                    "an admin key already registered (1007), removing a validator that does not exist (401); "
                    "a proposal to change an organisation's roles opens.",
                    [propose(b, H, {"kind": "add_organisation", "organisation": {**NEW_ORG, "id": P}}),
                     propose(b, H, {"kind": "add_organisation", "organisation": taken}),
                     propose(b, H, {"kind": "set_validator", "org": H, "power": 0, "pub_key": STRANGER.public_hex}),
                     propose(b, H, {"kind": "set_org_roles", "org": P, "roles": ["pharmacy", "hospital"]})],
                    [nonce(admin(H)), "identity/org/clinic-e"], [(True, 402), (True, 1007), (True, 401), (True, 0)])


def governance_proposal_expired() -> dict[str, Any]:
    b = Builder({"proposal_ttl_blocks": 2})
    pid = _open(b, ADD)  # height 1: expires after height 3
    b.pre(vote(b, P, pid))  # height 2
    b.pre(b.tx(admin(R), "identity.set_org_api", {"api": None, "org": R}))  # height 3: any transaction
    return b.vector("governance_proposal_expired",
                    "A vote after the proposal's expiry height is refused with 1102 (proposal_ttl_blocks = 2).",
                    [vote(b, INS, pid)], [f"governance/proposal/{pid}", "identity/org/clinic-e"], [(True, 1102)])


def governance_set_gs1_prefixes() -> dict[str, Any]:
    b = Builder()
    pid = _open(b, {"kind": "set_gs1_prefixes", "org": P, "prefixes": ["0614141", "4012345"]})
    b.pre(vote(b, INS, pid))
    return b.vector("governance_set_gs1_prefixes",
                    "The pharmacy's GS1 Company Prefixes are set by the third yes; then a proposal giving the "
                    "regulator a prefix that starts with one of them fails when opened (3043: prefixes may not "
                    "overlap), as does one whose own prefixes overlap each other.",
                    [vote(b, R, pid),
                     propose(b, H, {"kind": "set_gs1_prefixes", "org": R, "prefixes": ["06141415"]}),
                     propose(b, H, {"kind": "set_gs1_prefixes", "org": R, "prefixes": ["0777777", "07777770"]})],
                    [f"governance/proposal/{pid}", f"identity/org/{P}", f"identity/org/{R}"],
                    [(True, 0), (True, 3043), (True, 3043)])


VECTORS: list[Callable[[], dict[str, Any]]] = [
    identity_enrol_member_ok, identity_enrol_member_role_not_allowed, identity_enrol_member_unauthorised,
    identity_enrol_member_key_in_use, identity_set_member_roles_ok, identity_set_member_roles_refused,
    identity_revoke_member_ok, identity_revoke_member_refused, identity_revoked_member_refused,
    identity_revocation_same_block, identity_register_patient_ok, identity_register_patient_twice,
    identity_set_org_api, identity_set_org_tls,
    governance_propose_open, governance_propose_refused, governance_add_organisation_executed,
    governance_proposal_rejected, governance_already_voted, governance_proposal_unknown, governance_set_validator,
    governance_remove_organisation, governance_proposal_expired, governance_schedule_rules,
    governance_set_gs1_prefixes,
]
