"""Vectors of the records, consent and audit contracts (their state records the block time)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from careledger.core.crypto import SigningKey
from vectors.builder import GENESIS_TIME_MS, ORGS, Builder, admin, enrol, key, nonce, pseudonym

H, P = ORGS[0][0], ORGS[1][0]
DOCTOR, PATIENT = key("member/doctor"), key("patient/1")

STEWARD, CLERK = key("member/data-steward"), key("member/clerk")  # the vault's gateway key; a registrar
PATIENT2 = key("patient/2")


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


def consent_delegate_appoint() -> dict[str, Any]:
    b = Builder()
    b.pre(b.tx(PATIENT2, "identity.register_patient", {}))
    records_pre(b, clerk=True)
    pt = pseudonym(PATIENT)
    return b.vector("consent_delegate_appoint",
                    "The patient appoints a registered key as delegate until a time (recorded); appointing "
                    "oneself (403) or an unregistered key (2109), and removing a key that is no delegate "
                    "(2109), fail.",
                    [b.tx(PATIENT, "consent.appoint_delegate", {"delegate": PATIENT2.public_hex,
                                                                "until_ms": GENESIS_TIME_MS + 86_400_000}),
                     b.tx(PATIENT, "consent.appoint_delegate", {"delegate": PATIENT.public_hex}),
                     b.tx(PATIENT, "consent.appoint_delegate", {"delegate": key("stranger").public_hex}),
                     b.tx(PATIENT, "consent.remove_delegate", {"delegate": CLERK.public_hex})],
                    [f"consent/delegate/{pt}/{PATIENT2.public_hex}", f"consent/delegate/{pt}/{PATIENT.public_hex}",
                     nonce(PATIENT)], [(True, 0), (True, 403), (True, 2109), (True, 2109)])


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


VECTORS: list[Callable[[], dict[str, Any]]] = [
    records_anchor_ok, records_anchor_versions, records_anchor_refused, records_erase, consent_grant_and_revoke,
    consent_grant_refused, consent_delegate, consent_delegate_appoint, consent_break_glass, audit_record,
]
