"""Generate CareLedger's contract test vectors and its protocol golden file, deterministically.

Usage (from the repository root)::

    python tests/vectors/generate.py            # (re)write tests/vectors/*.json
    python tests/vectors/generate.py --check    # exit 1 if any file would change
    python tests/vectors/generate.py --hashes   # print {vector name: post app hash} as JSON

Everything is fixed: keys come from 32-byte seeds ``SHA-256("careledger-vectors/" + label)``, block
times are ``genesis_time_ms + 1000 * height``, and Ed25519 signatures are deterministic, so the output
is byte-for-byte the same on every run, machine and hash seed.

Contract vector format (``format: careledger-vector/1``), in the style of ethereum/consensus-specs::

    {"name", "description", "format",
     "pre":   {"genesis": {...}, "genesis_hash": hex, "genesis_app_hash": hex,
               "blocks": [{"height", "time_ms", "proposer", "txs": [wire], "app_hash": hex}]},
     "block": {"height", "time_ms", "proposer", "txs": [wire]},
     "post":  {"results": [{"tx": hash hex, "included": bool, "code": int}],
               "receipts": [receipt of each included tx], "txs_root": hex, "receipts_root": hex,
               "state": {key: value or null}, "app_hash": hex}}

A transaction's wire bytes are the UTF-8 encoding of its ``txs`` string. To replay: build the genesis
state, execute each ``pre`` block (every transaction in it is valid), then execute ``block``: each
transaction goes through the stateless checks and ``BlockExecution.add``; an invalid one (``included:
false``) is left out with its code; the block is finished even if it ends up empty. Receipts must
match after canonical encoding, and ``state`` lists selected keys after the block (``null``: absent).
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nacl.signing

from careledger.chain.executor import (
    BlockExecution,
    Chain,
    check_stateless,
    committed_nonce,
    genesis_app_hash,
    genesis_state,
)
from careledger.chain.registry import default_registry
from careledger.core import codec, merkle
from careledger.core.block import BlockEnv, Header
from careledger.core.crypto import SigningKey, signing_message
from careledger.core.errors import InvalidTx
from careledger.core.genesis import parse_genesis
from careledger.core.state import MemoryState, changes_root, compute_app_hash
from careledger.core.tx import sign_tx

HERE = Path(__file__).resolve().parent
FORMAT = "careledger-vector/1"
CHAIN_ID = "careledger-vectors"
GENESIS_TIME_MS = 1_750_000_000_000
ORGS = (("hospital-a", "hospital"), ("pharmacy-b", "pharmacy"), ("insurer-c", "insurer"), ("regulator-d", "regulator"))


def key(label: str) -> SigningKey:
    return SigningKey(hashlib.sha256(b"careledger-vectors/" + label.encode()).digest())


def admin(org: str) -> SigningKey:
    return key(f"admin/{org}")


VALIDATOR = key("validator/0")


def genesis_doc(params: dict[str, Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "chain_id": CHAIN_ID, "genesis_time_ms": GENESIS_TIME_MS,
        "organisations": [{"admins": [admin(org).public_hex], "id": org, "name": org.split("-")[0].title(),
                           "roles": [role]} for org, role in ORGS],
        "validators": [{"org": ORGS[0][0], "power": 10, "pub_key": VALIDATOR.public_hex}],
    }
    if params:
        doc["params"] = params
    return parse_genesis(doc).to_json()


def hexs(data: bytes) -> str:
    return data.hex()


class Builder:
    """Executes blocks in memory and records them as a vector's ``pre`` and ``block``."""

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        self.genesis_json = genesis_doc(params)
        self.genesis = parse_genesis(self.genesis_json)
        self.chain = Chain(self.genesis, default_registry())
        changes = genesis_state(self.genesis)
        self.state = MemoryState()
        self.state.apply(changes)
        self.genesis_app_hash = genesis_app_hash(self.genesis, changes)
        self.app_hash = self.genesis_app_hash
        self.height = 0
        self.pre_blocks: list[dict[str, Any]] = []
        self._issued: dict[str, int] = {}
        self.last: dict[str, Any] = {}

    def tx(self, signer: SigningKey, tx_type: str, payload: dict[str, Any], nonce: int | None = None,
           version: int = 1) -> bytes:
        if nonce is None:
            nonce = max(committed_nonce(self.state, signer.public_hex), self._issued.get(signer.public_hex, 0)) + 1
            self._issued[signer.public_hex] = nonce
        return sign_tx(signer, CHAIN_ID, tx_type, version, nonce, payload)

    def _env(self) -> BlockEnv:
        h = self.height + 1
        return BlockEnv(CHAIN_ID, h, GENESIS_TIME_MS + 1000 * h, VALIDATOR.public_hex)

    def _execute(self, raws: list[bytes]) -> dict[str, Any]:
        env = self._env()
        run = BlockExecution(self.chain, self.state, env, self.app_hash)
        results = []
        for raw in raws:
            try:
                receipt = run.add(check_stateless(self.chain, raw))
                results.append({"code": receipt.code, "included": True, "tx": receipt.tx})
            except InvalidTx as exc:
                results.append({"code": int(exc.code), "included": False, "tx": hashlib.sha256(raw).hexdigest()})
        result = run.finish()
        self.state.apply(result.changes)
        self.app_hash = result.app_hash
        self.height = env.height
        self._issued.clear()
        return {"block": {"height": env.height, "proposer": env.proposer, "time_ms": env.time_ms,
                          "txs": [raw.decode() for raw in raws]},
                "results": results, "receipts": [r.to_json() for r in result.receipts],
                "txs_root": result.header_fields["txs_root"], "receipts_root": result.header_fields["receipts_root"],
                "app_hash": result.app_hash.hex()}

    def pre(self, *raws: bytes) -> list[dict[str, Any]]:
        """A block of the history; every transaction in it must be valid (included)."""
        out = self._execute(list(raws))
        assert all(r["included"] for r in out["results"]), out["results"]
        self.pre_blocks.append({**out["block"], "app_hash": out["app_hash"]})
        self.last = out
        return out["receipts"]  # type: ignore[no-any-return]

    def vector(self, name: str, description: str, raws: list[bytes], state_keys: list[str],
               expect: list[tuple[bool, int]]) -> dict[str, Any]:
        pre = {"blocks": self.pre_blocks, "genesis": self.genesis_json, "genesis_app_hash": self.genesis_app_hash.hex(),
               "genesis_hash": self.genesis.hash.hex()}
        out = self._execute(raws)
        got = [(r["included"], r["code"]) for r in out["results"]]
        assert got == expect, f"{name}: expected {expect}, got {got}"
        state = {}
        for k in sorted(state_keys):
            raw = self.state.get_raw(k)
            state[k] = None if raw is None else codec.decode(raw)
        post = {"app_hash": out["app_hash"], "receipts": out["receipts"], "receipts_root": out["receipts_root"],
                "results": out["results"], "state": state, "txs_root": out["txs_root"]}
        return {"block": out["block"], "description": description, "format": FORMAT, "name": name, "post": post,
                "pre": pre}


def nonce(k: SigningKey) -> str:
    return f"nonce/{k.public_hex}"


def ikey(k: SigningKey) -> str:
    return f"identity/key/{k.public_hex}"


H, P, INS, R = (org for org, _ in ORGS)
DOCTOR, NURSE, PATIENT, STRANGER = key("member/doctor"), key("member/nurse"), key("patient/1"), key("stranger")
NEW_ADMIN = key("admin/clinic-e")
NEW_ORG = {"admins": [NEW_ADMIN.public_hex], "id": "clinic-e", "name": "Clinic", "roles": ["clinic"]}


def enrol(b: Builder, org: str, member: SigningKey, roles: list[str]) -> bytes:
    return b.tx(admin(org), "identity.enrol_member", {"member": member.public_hex, "org": org, "roles": roles})


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


def identity_register_patient_twice() -> dict[str, Any]:
    b = Builder()
    b.pre(b.tx(PATIENT, "identity.register_patient", {}))
    return b.vector("identity_register_patient_twice", "Registering the same patient key again fails with 1006.",
                    [b.tx(PATIENT, "identity.register_patient", {})], [nonce(PATIENT)], [(True, 1006)])


def envelope_unknown_signer() -> dict[str, Any]:
    b = Builder()
    raw = b.tx(STRANGER, "identity.set_org_api", {"api": None, "org": H})
    return b.vector("envelope_unknown_signer", "A key that is neither member nor patient: invalid (204).",
                    [raw], [nonce(STRANGER)], [(False, 204)])


def envelope_nonces() -> dict[str, Any]:
    b = Builder()
    b.pre(b.tx(admin(H), "identity.set_org_api", {"api": "https://a.example", "org": H}))
    replay = b.tx(admin(H), "identity.set_org_api", {"api": None, "org": H}, nonce=1)
    gap = b.tx(admin(H), "identity.set_org_api", {"api": None, "org": H}, nonce=3)
    good = b.tx(admin(H), "identity.set_org_api", {"api": None, "org": H}, nonce=2)
    return b.vector("envelope_nonces", "Nonce 1 again is replayed (301), nonce 3 is ahead (302), nonce 2 applies.",
                    [replay, gap, good], [nonce(admin(H)), f"identity/org/{H}"],
                    [(False, 301), (False, 302), (True, 0)])


def envelope_unknown_type_and_payload() -> dict[str, Any]:
    b = Builder()
    unknown = b.tx(admin(H), "identity.teleport", {}, nonce=1)
    version = b.tx(admin(H), "identity.enrol_member", {}, nonce=1, version=9)
    extra = b.tx(admin(H), "identity.enrol_member", {"member": DOCTOR.public_hex, "org": H, "roles": ["nurse"],
                                                     "surname": "Doe"}, nonce=1)
    bad_key = b.tx(admin(H), "identity.enrol_member", {"member": DOCTOR.public_hex.upper(), "org": H,
                                                       "roles": ["nurse"]}, nonce=1)
    return b.vector("envelope_unknown_type_and_payload",
                    "Unknown type (104), unknown version (104), an extra payload field and an upper-case key (105).",
                    [unknown, version, extra, bad_key], [nonce(admin(H))],
                    [(False, 104), (False, 104), (False, 105), (False, 105)])


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


def governance_proposal_expired() -> dict[str, Any]:
    b = Builder({"proposal_ttl_blocks": 2})
    pid = _open(b, ADD)  # height 1: expires after height 3
    b.pre(vote(b, P, pid))  # height 2
    b.pre()  # height 3
    return b.vector("governance_proposal_expired",
                    "A vote after the proposal's expiry height is refused with 1102 (proposal_ttl_blocks = 2).",
                    [vote(b, INS, pid)], [f"governance/proposal/{pid}", "identity/org/clinic-e"], [(True, 1102)])


VECTORS: list[Callable[[], dict[str, Any]]] = [
    identity_enrol_member_ok, identity_enrol_member_role_not_allowed, identity_enrol_member_unauthorised,
    identity_enrol_member_key_in_use, identity_set_member_roles_ok, identity_revoke_member_ok,
    identity_revoked_member_refused, identity_revocation_same_block, identity_register_patient_ok,
    identity_register_patient_twice, envelope_unknown_signer, envelope_nonces, envelope_unknown_type_and_payload,
    governance_propose_open, governance_add_organisation_executed, governance_proposal_rejected,
    governance_already_voted, governance_proposal_unknown, governance_set_validator, governance_remove_organisation,
    governance_proposal_expired,
]



# -- records, consent and audit ---------------------------------------------------------------------------

STEWARD, CLERK = key("member/data-steward"), key("member/clerk")  # the vault's gateway key; a registrar
PATIENT2 = key("patient/2")


def pseudonym(k: SigningKey) -> str:
    return "pt-" + hashlib.sha256(k.public_key).digest()[:16].hex()


def record_id(label: str) -> str:
    return "r-" + hashlib.sha256(b"careledger-vectors/record/" + label.encode()).digest()[:16].hex()


def commitment(label: str) -> str:
    return hashlib.sha256(b"careledger-vectors/commitment/" + label.encode()).hexdigest()


R1, R2 = record_id("1"), record_id("2")


def anchor(b: Builder, signer: SigningKey, *entries: tuple[str, int, SigningKey, str], org: str = H) -> bytes:
    return b.tx(signer, "records.anchor", {"anchors": [
        {"commitment": commitment(f"{rec}/{v}"), "pseudonym": pseudonym(pt), "record": rec, "type": rtype,
         "version": v} for rec, v, pt, rtype in entries], "custodian": org})


def records_pre(b: Builder, *extra: Callable[[], bytes], clerk: bool = False) -> None:
    """A block with the hospital's gateway key (data steward), a registrar when ``clerk`` and a registered
    patient; then, if any, a block of ``extra`` transactions. Each transaction is valid against the
    state committed before its block, as a real node's admission requires."""
    b.pre(enrol(b, H, STEWARD, ["data_steward"]), *([enrol(b, H, CLERK, ["registrar"])] if clerk else []),
          b.tx(PATIENT, "identity.register_patient", {}))
    if extra:
        b.pre(*(make() for make in extra))


def rkeys(rec: str, *versions: int, pt: SigningKey = PATIENT) -> list[str]:
    return ([f"records/anchor/{rec}/{v:06d}" for v in versions]
            + [f"records/head/{rec}", f"records/patient/{pseudonym(pt)}/{rec}"])


def records_anchor_ok() -> dict[str, Any]:
    b = Builder()
    records_pre(b)
    return b.vector("records_anchor_ok",
                    "The hospital's gateway key anchors two new records in one transaction: pseudonym, type and "
                    "salted commitment only; head and the patient's index follow.",
                    [anchor(b, STEWARD, (R1, 1, PATIENT, "Observation"), (R2, 1, PATIENT, "Condition"))],
                    rkeys(R1, 1) + rkeys(R2, 1), [(True, 0)])


def records_anchor_versions() -> dict[str, Any]:
    b = Builder()
    records_pre(b, lambda: anchor(b, STEWARD, (R1, 1, PATIENT, "Observation")))
    return b.vector("records_anchor_versions",
                    "Version 2 follows the head (prev 1); a version 4 (2004) and a version 1 again (2002) fail "
                    "and roll back.",
                    [anchor(b, STEWARD, (R1, 2, PATIENT, "Observation")),
                     anchor(b, STEWARD, (R1, 4, PATIENT, "Observation")),
                     anchor(b, STEWARD, (R1, 1, PATIENT, "Observation"))],
                    rkeys(R1, 2, 4), [(True, 0), (True, 2004), (True, 2002)])


def records_anchor_refused() -> dict[str, Any]:
    b = Builder()
    records_pre(b)
    return b.vector("records_anchor_refused",
                    "The pharmacy's admin anchors for the hospital (2007); an unregistered patient's record "
                    "(2010) writes nothing.",
                    [anchor(b, admin(P), (R1, 1, PATIENT, "Observation")),
                     anchor(b, STEWARD, (R2, 1, PATIENT2, "Observation"))],
                    rkeys(R1, 1) + rkeys(R2, 1, pt=PATIENT2), [(True, 2007), (True, 2010)])


def records_erase() -> dict[str, Any]:
    b = Builder()
    records_pre(b, lambda: anchor(b, STEWARD, (R1, 1, PATIENT, "Observation")))
    return b.vector("records_erase",
                    "The pharmacy's admin may not erase (2009); the patient erases: anchor, head and "
                    "index turn erased, the commitment stays; erasing again is 2005.",
                    [b.tx(admin(P), "records.erase", {"reason": "patient_request", "record": R1}),
                     b.tx(PATIENT, "records.erase", {"reason": "patient_request", "record": R1}),
                     b.tx(STEWARD, "records.erase", {"reason": "custodian_policy", "record": R1})],
                    [*rkeys(R1, 1), f"records/erasure/{R1}"], [(True, 2009), (True, 0), (True, 2005)])


def _grant(b: Builder, signer: SigningKey, grantee: dict[str, str], **kw: Any) -> bytes:
    return b.tx(signer, "consent.grant", {"grantee": grantee, "patient": pseudonym(PATIENT), "purposes": ["TREAT"],
                                          **kw})


def consent_grant_and_revoke() -> dict[str, Any]:
    b = Builder()
    records_pre(b)
    [receipt] = b.pre(_grant(b, PATIENT, {"id": P, "kind": "org"}, resource_types=["Observation"],
                             period={"end_ms": GENESIS_TIME_MS + 86_400_000, "start_ms": GENESIS_TIME_MS}))
    cid = receipt["result"]["consent"]
    revoke = b.tx(PATIENT, "consent.revoke", {"consent": cid})
    again = b.tx(PATIENT, "consent.revoke", {"consent": cid})
    return b.vector("consent_grant_and_revoke",
                    "The patient revokes a consent to the pharmacy: it stays in history as revoked; revoking "
                    "it again is 2106.",
                    [revoke, again], [f"consent/patient/{pseudonym(PATIENT)}/{cid}", f"consent/id/{cid}"],
                    [(True, 0), (True, 2106)])


def consent_grant_refused() -> dict[str, Any]:
    b = Builder()
    records_pre(b, lambda: b.tx(PATIENT2, "identity.register_patient", {}), clerk=True)
    return b.vector("consent_grant_refused",
                    "Another patient may not grant for this one (2108); an unknown organisation (1001); a "
                    "period that ends before it starts (105); a member key grantee with a deny provision is "
                    "recorded.",
                    [_grant(b, PATIENT2, {"id": H, "kind": "org"}),
                     _grant(b, PATIENT, {"id": "clinic-z", "kind": "org"}),
                     _grant(b, PATIENT, {"id": H, "kind": "org"}, period={"end_ms": 5, "start_ms": 9}),
                     _grant(b, PATIENT, {"id": CLERK.public_hex, "kind": "member"}, provision="deny")],
                    [nonce(PATIENT), nonce(PATIENT2)], [(True, 2108), (True, 1001), (True, 105), (True, 0)])


def consent_delegate() -> dict[str, Any]:
    b = Builder()
    b.pre(b.tx(PATIENT2, "identity.register_patient", {}))
    records_pre(b, lambda: b.tx(PATIENT, "consent.appoint_delegate", {"delegate": PATIENT2.public_hex}), clerk=True)
    return b.vector("consent_delegate",
                    "A guardian (a registered key) appointed by the patient grants for the patient; a member may "
                    "not appoint delegates (2108); the patient removes the guardian.",
                    [_grant(b, PATIENT2, {"id": H, "kind": "org"}),
                     b.tx(CLERK, "consent.appoint_delegate", {"delegate": PATIENT.public_hex}),
                     b.tx(PATIENT, "consent.remove_delegate", {"delegate": PATIENT2.public_hex})],
                    [f"consent/delegate/{pseudonym(PATIENT)}/{PATIENT2.public_hex}", nonce(CLERK)],
                    [(True, 0), (True, 2108), (True, 0)])


def consent_break_glass() -> dict[str, Any]:
    b = Builder()
    records_pre(b, lambda: enrol(b, H, DOCTOR, ["physician", "emergency"]), clerk=True)
    pt = pseudonym(PATIENT)
    return b.vector("consent_break_glass",
                    "A physician with the emergency role opens a 30-minute break-glass session (logged); the "
                    "registrar without it is refused (2110).",
                    [b.tx(DOCTOR, "consent.break_glass", {"minutes": 30, "patient": pt, "reason": "unconscious"}),
                     b.tx(CLERK, "consent.break_glass", {"minutes": 30, "patient": pt, "reason": "other"})],
                    [f"consent/breakglass/{pt}/{DOCTOR.public_hex}", f"consent/breakglass/{pt}/{CLERK.public_hex}",
                     f"consent/breakglass-log/{pt}/000000000002-00000"], [(True, 0), (True, 2110)])


def _audit_entry(outcome: str, code: int, mode: str) -> dict[str, Any]:
    return {"code": code, "mode": mode, "outcome": outcome, "pseudonym": pseudonym(PATIENT), "purpose": "TREAT",
            "record": R1, "request": commitment(f"request/{outcome}"), "request_ms": GENESIS_TIME_MS,
            "requester": DOCTOR.public_hex, "requester_org": P}


def audit_record() -> dict[str, Any]:
    b = Builder()
    records_pre(b, clerk=True)
    pt = pseudonym(PATIENT)
    entries = [_audit_entry("denied", 2101, "none"), _audit_entry("granted", 0, "consent")]
    return b.vector("audit_record",
                    "The gateway key (data steward) records a denied and a granted read under the patient's "
                    "pseudonym, keyed by height, index and entry; the registrar may not write audit (2204).",
                    [b.tx(STEWARD, "audit.record", {"entries": entries}),
                     b.tx(CLERK, "audit.record", {"entries": entries[:1]})],
                    [f"audit/patient/{pt}/000000000002-00000-0000", f"audit/patient/{pt}/000000000002-00000-0001",
                     f"audit/patient/{pt}/000000000002-00001-0000"], [(True, 0), (True, 2204)])


RECORDS_VECTORS: list[Callable[[], dict[str, Any]]] = [
    records_anchor_ok, records_anchor_versions, records_anchor_refused, records_erase, consent_grant_and_revoke,
    consent_grant_refused, consent_delegate, consent_break_glass, audit_record,
]
RECORDS_DIR = "records"  # their own directory: see tests/test_records_net_vectors.py for why

# -- protocol golden file -----------------------------------------------------------------------------

def protocol() -> dict[str, Any]:
    # canonical encoding
    value_text = ('{"b": [1, true, null, -9007199254740991], "a": "caf\\u00e9 \\u20ac\\n\\u0001\\"", '
                  '"c": {"z": {}, "y": []}, "A": 9007199254740991}')
    canonical = codec.encode(json.loads(value_text))
    # keys
    seed = bytes(range(32))
    k = SigningKey(seed)
    rfc_seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    rfc = SigningKey(rfc_seed)
    # a signed transaction
    payload = {"member": key("member/doctor").public_hex, "org": "hospital-a", "roles": ["physician"]}
    body = {"chain_id": CHAIN_ID, "nonce": 1, "payload": payload, "signer": k.public_hex,
            "type": "identity.enrol_member", "version": 1}
    body_bytes = codec.encode(body)
    sign_bytes = signing_message("tx", CHAIN_ID, body_bytes)
    wire = sign_tx(k, CHAIN_ID, "identity.enrol_member", 1, 1, payload)
    # merkle
    leaves = [b"a", b"b", b"c"]
    hashed = [merkle.leaf_hash(x) for x in leaves]
    # app hash
    changes: dict[str, bytes | None] = {
        "nonce/" + k.public_hex: b"1",
        "identity/org/hospital-a": codec.encode({"id": "hospital-a", "status": "active"}),
        "governance/proposal/gp-000000000000000000000000": None,
    }
    previous = hashlib.sha256(b"previous app hash").digest()
    leaf_bytes = []
    for name in sorted(changes, key=str.encode):
        kb = name.encode()
        v = changes[name]
        leaf_bytes.append(len(kb).to_bytes(4, "big") + kb + (b"\x00" if v is None else b"\x01" + v))
    # a block header and its signature
    header = Header(chain_id=CHAIN_ID, height=1, time_ms=GENESIS_TIME_MS + 1000, prev_hash="00" * 32,
                    txs_root=merkle.merkle_root([wire]).hex(), receipts_root=merkle.EMPTY_ROOT.hex(),
                    app_hash=compute_app_hash(1, previous, changes).hex(), proposer=k.public_hex, tx_count=1)
    return {
        "about": "Golden values of the CareLedger protocol, generated by tests/vectors/generate.py and checked by "
                 "tests/test_vectors.py. Binary values are lower-case hex; *_text values are the UTF-8 text of the "
                 "bytes.",
        "canonical_encoding": {
            "input_text": value_text, "canonical_text": canonical.decode(), "canonical_hex": hexs(canonical),
            "sha256": hashlib.sha256(canonical).hexdigest()},
        "ed25519": [
            {"seed": hexs(seed), "public_key": k.public_hex,
             "note": "seed bytes 0x00..0x1f"},
            {"seed": hexs(rfc_seed), "public_key": rfc.public_hex, "message_hex": "",
             "signature": hexs(nacl.signing.SigningKey(rfc_seed).sign(b"").signature),
             "note": "RFC 8032 section 7.1 TEST 1 (a raw Ed25519 signature, no CareLedger domain)"},
        ],
        "signing_domains": {d: hexs(signing_message(d, CHAIN_ID, b"")) for d in ("block", "proof", "request", "tx")},
        "tx": {
            "signer_seed": hexs(seed), "chain_id": CHAIN_ID, "body_text": body_bytes.decode(),
            "sign_bytes_hex": hexs(sign_bytes), "signature": codec.decode(wire)["sig"],
            "wire_text": wire.decode(), "hash": hashlib.sha256(wire).hexdigest()},
        "merkle": {
            "leaves_hex": [hexs(x) for x in leaves], "leaf_hashes": [hexs(x) for x in hashed],
            "root": hexs(merkle.merkle_root(leaves)),
            "audit_paths": [{"index": i, "path": [hexs(p) for p in merkle.inclusion_proof(hashed, i)]}
                            for i in range(3)],
            "empty_root": hexs(merkle.EMPTY_ROOT)},
        "app_hash": {
            "height": 1, "previous": hexs(previous),
            "changes": {name: (None if v is None else v.decode()) for name, v in sorted(changes.items())},
            "leaves_hex": [hexs(x) for x in leaf_bytes], "changes_root": hexs(changes_root(changes)),
            "app_hash": hexs(compute_app_hash(1, previous, changes))},
        "block_header": {
            "header_text": header.encode().decode(), "hash": hexs(header.hash),
            "signature": hexs(k.sign("block", CHAIN_ID, header.hash)), "proposer_seed": hexs(seed)},
    }


# -- output ---------------------------------------------------------------------------------------------

def dump(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()


def build_all() -> dict[str, bytes]:
    """File name -> exact bytes of every generated file."""
    files = {f"{fn.__name__}.json": dump(fn()) for fn in VECTORS}
    files["protocol.json"] = dump(protocol())
    return files


def build_records() -> dict[str, bytes]:
    """``records/<name>.json`` -> exact bytes of the records, consent and audit vectors."""
    return {f"{RECORDS_DIR}/{fn.__name__}.json": dump(fn()) for fn in RECORDS_VECTORS}


def main(argv: list[str]) -> int:
    files = {**build_all(), **build_records()}
    if "--hashes" in argv:
        print(json.dumps({name: json.loads(data)["post"]["app_hash"] for name, data in sorted(files.items())
                          if name != "protocol.json"}, sort_keys=True))
        return 0
    stale = [name for name, data in files.items() if not (HERE / name).exists() or (HERE / name).read_bytes() != data]
    if "--check" in argv:
        for name in stale:
            print(f"out of date: {name}", file=sys.stderr)
        return 1 if stale else 0
    for name in stale:
        (HERE / name).parent.mkdir(exist_ok=True)
        (HERE / name).write_bytes(files[name])
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
