"""Each state record has exactly one JSON form: decoding a stored value into its typed record and encoding it
again gives the stored bytes back, for every entry a ledger holds after every kind of transaction; and
records are immutable.

The prefixes below are spelled here on purpose: they restate docs/protocol.md's state layout, so a layout
function that drifted would fail this test as well as the vectors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from careledger.contracts import audit, consent, governance, identity, records
from careledger.contracts.supply import layout as supply
from careledger.core import codec
from support import Ledger, make_consortium, seeded_key
from support.supply import GTIN, World, ref, supply_consortium

RECORD_OF: list[tuple[str, Callable[[Any], Any]]] = [
    ("identity/org/", identity.OrgRecord.from_json),
    ("identity/key/", identity.KeyRecord.from_json),
    ("identity/member/", identity.MemberEntry.from_json),
    ("identity/patient/", identity.PatientRecord.from_json),
    ("governance/proposal/", governance.ProposalRecord.from_json),
    ("governance/validator/", governance.ValidatorRecord.from_json),
    ("records/anchor/", records.AnchorRecord.from_json),
    ("records/head/", records.HeadRecord.from_json),
    ("records/patient/", records.PatientIndexEntry.from_json),
    ("records/erasure/", records.ErasureRecord.from_json),
    ("consent/patient/", consent.ConsentRecord.from_json),
    ("consent/id/", consent.ConsentPointer.from_json),
    ("consent/delegate/", consent.DelegateRecord.from_json),
    ("consent/breakglass/", consent.BreakGlassSession.from_json),
    ("consent/breakglass-log/", consent.BreakGlassLogEntry.from_json),
    ("audit/patient/", audit.AuditRecord.from_json),
    ("supply/product/", supply.ProductRecord.from_json),
    ("supply/lot/", supply.LotRecord.from_json),
    ("supply/pack/", supply.PackRecord.from_json),
    ("supply/unit/", supply.PackRecord.from_json),
]
CHAIN_KEYS = ("chain", "params", "nonce/")  # the chain's own entries: plain JSON, no contract record


def record_of(key: str) -> Callable[[Any], Any] | None:
    for prefix, decode in RECORD_OF:
        if key.startswith(prefix):
            return decode
    assert key.startswith(CHAIN_KEYS), f"no record type for state key {key!r}"
    return None


def check_round_trips(snapshot: dict[str, bytes]) -> set[str]:
    """Assert every contract entry re-encodes to its stored bytes; return the record types seen."""
    seen = set()
    for key, raw in snapshot.items():
        decode = record_of(key)
        if decode is None:
            continue
        record = decode(codec.decode(raw))
        assert codec.encode(record.to_json()) == raw, key
        # immutable: a record read is never changed in place (a frozen dataclass, or the pack's named tuple)
        first = record._fields[0] if isinstance(record, supply.PackRecord) else dataclasses.fields(record)[0].name
        with pytest.raises(AttributeError):
            setattr(record, first, None)
        seen.add(type(record).__name__)
    return seen


def ok(ledger: Ledger, key: Any, tx_type: str, payload: dict[str, Any]) -> Any:
    receipt = ledger.run(key, tx_type, payload)
    assert receipt.code == 0, (tx_type, receipt.code, receipt.message)
    return receipt.result


def test_every_health_record_kind_round_trips() -> None:
    ledger = Ledger(make_consortium(label="layout"))
    c = ledger.consortium
    hospital, insurer = c.admin("hospital"), c.admin("insurer")
    doctor, medic, steward = seeded_key("layout/doctor"), seeded_key("layout/medic"), seeded_key("layout/steward")
    patient, guardian = seeded_key("layout/patient"), seeded_key("layout/guardian")
    ok(ledger, hospital, "identity.enrol_member", {"org": "hospital", "member": doctor.public_hex,
                                                   "roles": ["physician", "nurse"], "handle": "dr-who"})
    ok(ledger, hospital, "identity.enrol_member", {"org": "hospital", "member": medic.public_hex,
                                                   "roles": ["emergency"]})
    ok(ledger, hospital, "identity.enrol_member", {"org": "hospital", "member": steward.public_hex,
                                                   "roles": ["data_steward"]})
    ok(ledger, hospital, "identity.set_member_roles", {"org": "hospital", "member": doctor.public_hex,
                                                       "roles": ["physician"]})
    ok(ledger, hospital, "identity.set_org_api", {"org": "hospital", "api": "https://hospital.example/api"})
    for key in (patient, guardian):
        ok(ledger, key, "identity.register_patient", {})
    pt = identity.compute_pseudonym(patient.public_hex)
    # records: two versions of one record, a second record erased by the patient
    rec1, rec2 = "r-" + "1" * 32, "r-" + "2" * 32
    anchors = [{"record": rec1, "version": 1, "pseudonym": pt, "type": "Observation", "commitment": "a" * 64,
                "author": doctor.public_hex},
               {"record": rec2, "version": 1, "pseudonym": pt, "type": "Condition", "commitment": "b" * 64}]
    ok(ledger, doctor, "records.anchor", {"custodian": "hospital", "anchors": anchors})
    ok(ledger, doctor, "records.anchor", {"custodian": "hospital", "anchors": [
        {"record": rec1, "version": 2, "pseudonym": pt, "type": "Observation", "commitment": "c" * 64}]})
    ok(ledger, patient, "records.erase", {"record": rec2, "reason": "patient_request"})
    # consent: a delegate (appointed, then removed and appointed again), permits and a denial, a revocation
    ok(ledger, patient, "consent.appoint_delegate", {"delegate": guardian.public_hex, "until_ms": 2_000_000_000_000})
    cid = ok(ledger, guardian, "consent.grant", {
        "patient": pt, "grantee": {"kind": "org", "id": "clinic"}, "purposes": ["TREAT", "ETREAT"],
        "resource_types": ["Observation"], "records": [rec1], "period": {"start_ms": 0},
        "data_period": {"start_ms": 5, "end_ms": 2_000_000_000_000}})["consent"]
    ok(ledger, patient, "consent.grant", {"patient": pt, "grantee": {"kind": "member", "id": doctor.public_hex},
                                          "provision": "deny", "purposes": ["HRESCH"]})
    ok(ledger, patient, "consent.revoke", {"consent": cid})
    ok(ledger, patient, "consent.remove_delegate", {"delegate": guardian.public_hex})
    ok(ledger, medic, "consent.break_glass", {"patient": pt, "reason": "unconscious", "minutes": 30})
    entry = {"pseudonym": pt, "requester": medic.public_hex, "requester_org": "hospital", "record": rec1,
             "purpose": "ETREAT", "outcome": "granted", "code": 0, "mode": "emergency", "emergency": True,
             "request": "d" * 64, "request_ms": 1}
    ok(ledger, steward, "audit.record", {"entries": [entry, {**entry, "record": None, "outcome": "denied",
                                                             "code": 2101, "mode": "none", "emergency": False,
                                                             "consent": cid}]})
    # governance: an executed addition and a vote that leaves a proposal open; a revoked member
    newcomer = seeded_key("layout/newcomer")
    add = {"kind": "add_organisation", "organisation": {"id": "st-jude", "name": "St Jude", "roles": ["clinic"],
                                                        "admins": [newcomer.public_hex]}}
    pid = ok(ledger, hospital, "governance.propose", {"action": add, "title": "admit St Jude"})["proposal"]
    for org in ("clinic", "pharmacy", "manufacturer", "distributor", "research"):
        ok(ledger, c.admin(org), "governance.vote", {"proposal": pid, "approve": True})
    ok(ledger, insurer, "governance.propose", {"action": {"kind": "set_validator", "org": "insurer",
                                                          "pub_key": seeded_key("layout/val").public_hex,
                                                          "power": 3}, "title": "a validator"})
    ok(ledger, hospital, "identity.revoke_member", {"org": "hospital", "member": doctor.public_hex,
                                                    "reason": "left"})
    seen = check_round_trips(ledger.snapshot())
    assert seen == {"OrgRecord", "KeyRecord", "MemberEntry", "PatientRecord", "ProposalRecord", "ValidatorRecord",
                    "AnchorRecord", "HeadRecord", "PatientIndexEntry", "ErasureRecord", "ConsentRecord",
                    "ConsentPointer", "DelegateRecord", "BreakGlassSession", "BreakGlassLogEntry", "AuditRecord"}


def test_every_supply_record_kind_round_trips() -> None:
    w = World(Ledger(supply_consortium("layout-supply")))
    w.register()
    w.commission(["A1", "A2", "A3", "B1"])
    sscc = "006141410000000012"
    w.ok(w.mfr, "supply.aggregate", {"parent": sscc, "children": [ref("A1"), ref("A2")]})
    w.ship(w.mfr, [sscc, ref("A3")], "distributor")
    w.receive(w.dist, [sscc, ref("A3")])
    w.ok(w.dist, "supply.disaggregate", {"parent": sscc, "children": [ref("A2")]})
    w.ok(w.dist, "supply.decommission", {"items": [ref("A3")], "state": "sample"})
    w.ok(w.dist, "supply.decommission", {"items": [ref("A2")], "state": "locked"})
    w.ok(w.dist, "supply.undo", {"items": [ref("A2")], "state": "locked"})
    w.ok(w.pharmacy, "supply.verify", {"gtin": GTIN, "serial": "B1"})
    w.ok(w.mfr, "supply.recall_lot", {"gtin": GTIN, "lot": "L1", "reason": "contamination"})
    w.ok(w.mfr, "supply.withdraw_product", {"gtin": GTIN, "reason": "market exit"})
    seen = check_round_trips(w.ledger.snapshot())
    assert {"ProductRecord", "LotRecord", "PackRecord"} <= seen
    unit = supply.get_item(w.ledger.state, sscc)
    a3 = supply.get_pack(w.ledger.state, GTIN, "A3")
    assert unit is not None and unit.lot is None and unit.children == (ref("A1"),) and unit.holder == "distributor"
    assert a3 is not None and a3.state == "sample" and a3.undo is not None and a3.undo[:2] == ("sample", "distributor")
    assert [e[0] for e in a3.events] == ["commission", "ship", "receive", "decommission"]
    assert supply.event_extra(a3.events[1]) == "distributor" and supply.event_extra(a3.events[0]) is None


def test_an_empty_container_keeps_its_empty_contents_list() -> None:
    """An EPCIS aggregation without children stores ``c: []``; the record keeps that apart from no ``c``."""
    empty = supply.PackRecord(state="active", holder="x", events=(("commission", 1, "x", 1),), children=())
    never = empty._replace(children=None)
    assert codec.encode(empty.to_json()) == b'{"c":[],"e":[["commission",1,"x",1]],"h":"x","s":"active"}'
    assert codec.encode(never.to_json()) == b'{"e":[["commission",1,"x",1]],"h":"x","s":"active"}'
    for record in (empty, never):
        assert supply.PackRecord.from_json(codec.decode(codec.encode(record.to_json()))) == record
