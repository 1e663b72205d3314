"""Multi-party EPCIS capture, idempotency, locations and GS1 prefixes, on the in-memory ledger.

The story document (tests/data/epcis/derived/multi-party-story.jsonld) has three members' events: the
manufacturer commissions six packs, packs them in a case and ships it; the distributor receives it, unpacks
it and ships two packs to a pharmacy; the pharmacy receives them and dispenses one.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from careledger.contracts.supply import epcis, event_hash
from careledger.contracts.supply.layout import capture_key, event_key, location_key, parse_ref
from careledger.core.errors import Code, GenesisError
from careledger.core.genesis import decode_genesis
from support.epcis import (
    PHARMACY_PARTY,
    PHARMACY_SITE,
    STORY_GTIN,
    STORY_SERIALS,
    STORY_SSCC,
    story_consortium,
    story_text,
    story_world,
)
from support.supply import World


@pytest.fixture
def w() -> World:
    return story_world()


def capture(w: World, key: Any, document: str) -> Any:
    return w.run(key, "supply.epcis_capture", {"document": document})


def confirm(w: World, key: Any, capture_id: str, approve: bool = True) -> Any:
    return w.run(key, "supply.epcis_confirm", {"capture": capture_id, "approve": approve})


def pack(w: World, serial: str) -> Any:
    return w.pack(serial, STORY_GTIN)


def test_a_distributor_records_the_whole_document_and_each_member_confirms_its_events(w: World) -> None:
    receipt = capture(w, w.dist, story_text())
    assert receipt.code == 0, receipt.message
    result = receipt.result
    cap = result["capture"]
    # nothing can apply yet: the manufacturer's events come first and every later event names their items
    assert (result["events"], result["applied"], result["pending"]) == (8, 0, 8)
    assert result["pending_orgs"] == ["distributor", "manufacturer", "pharmacy"]
    assert pack(w, "BR0001") is None
    record = w.ledger.get(capture_key(cap))
    assert record["status"] == "pending" and record["confirmed"] == ["distributor"]
    # the manufacturer confirms: its events apply, and so do the distributor's, which were only held back
    receipt = confirm(w, w.mfr, cap)
    assert receipt.code == 0, receipt.message
    assert receipt.result == {"applied": 6, "capture": cap, "pending": 2, "pending_orgs": ["pharmacy"],
                              "status": "pending"}
    first, second, third = pack(w, "BR0001"), pack(w, "BR0002"), pack(w, "BR0003")
    assert first["h"] == "distributor" and first["t"] == "pharmacy" and "p" not in first
    assert second["t"] == "pharmacy" and third["h"] == "distributor" and "t" not in third
    # the pharmacy confirms: its receipt and its dispensing apply
    receipt = confirm(w, w.pharmacy, cap)
    assert receipt.result["status"] == "complete" and receipt.result["applied"] == 2
    assert pack(w, "BR0001")["s"] == "supplied" and pack(w, "BR0002")["h"] == "pharmacy"
    assert w.ledger.get(capture_key(cap))["status"] == "complete"
    # the event times are kept in the histories (the receipt at 09:30+02:00 is 07:30Z)
    receive = [e for e in pack(w, "BR0002")["e"] if e[0] == "receive"][-1]
    assert receive[1] == epcis.event_time_ms("2023-06-06T07:30:00Z") and receive[2] == "pharmacy"


def test_the_capturers_own_events_apply_at_once(w: World) -> None:
    result = w.ok(w.mfr, "supply.epcis_capture", {"document": story_text()})
    assert (result["applied"], result["pending"], result["pending_orgs"]) == (3, 5, ["distributor", "pharmacy"])
    assert pack(w, "BR0004")["t"] == "distributor"
    # the pharmacy confirming first changes nothing yet: the distributor's events hold its own back
    assert w.ok(w.pharmacy, "supply.epcis_confirm", {"capture": result["capture"]})["applied"] == 0
    assert w.ok(w.dist, "supply.epcis_confirm", {"capture": result["capture"]})["status"] == "complete"
    assert pack(w, "BR0001")["s"] == "supplied"


def test_the_same_document_again_is_already_captured_and_changes_nothing(w: World) -> None:
    first = w.ok(w.mfr, "supply.epcis_capture", {"document": story_text()})
    for key in (w.mfr, w.dist, w.pharmacy):
        exc = w.refused_at_admission(key, "supply.epcis_capture", {"document": story_text()},
                                     Code.EPCIS_ALREADY_CAPTURED)
        assert first["capture"] in exc.message
    # reformatted, the same events are still the same events (eventIDs and canonical hashes)
    compact = json.dumps(json.loads(story_text()), separators=(",", ":"))
    w.refused_at_admission(w.mfr, "supply.epcis_capture", {"document": compact}, Code.EPCIS_ALREADY_CAPTURED)


def test_a_partly_captured_document_is_refused_naming_the_duplicates(w: World) -> None:
    doc = json.loads(story_text())
    head = {**doc, "epcisBody": {"eventList": doc["epcisBody"]["eventList"][:3]}}
    w.ok(w.mfr, "supply.epcis_capture", {"document": json.dumps(head)})
    exc = w.refused_at_admission(w.dist, "supply.epcis_capture", {"document": story_text()},
                                 Code.EPCIS_DUPLICATE_EVENTS)
    assert "3 of 8 events" in exc.message and "6c4e1a8e-0b1d-4a8e-9d5e-1f0a2b3c4d01" in exc.message
    # the rest of the document, on its own, is new
    tail = {**doc, "epcisBody": {"eventList": doc["epcisBody"]["eventList"][3:]}}
    assert w.ok(w.dist, "supply.epcis_capture", {"document": json.dumps(tail)})["applied"] == 3


def test_an_event_repeated_in_one_document_is_refused(w: World) -> None:
    doc = json.loads(story_text())
    doc["epcisBody"]["eventList"].append(doc["epcisBody"]["eventList"][4])  # an event without an eventID
    exc = w.invalid_with(w.mfr, "supply.epcis_capture", {"document": json.dumps(doc)}, Code.EPCIS_DUPLICATE_EVENTS)
    assert "event 8 repeats event 4" in exc.message


def test_events_without_an_event_id_are_keyed_by_their_canonical_hash(w: World) -> None:
    doc = json.loads(story_text())
    unpacking = doc["epcisBody"]["eventList"][4]
    key = epcis.key_of(event_hash.event_hash(unpacking, doc["@context"]))
    w.ok(w.mfr, "supply.epcis_capture", {"document": story_text()})
    assert w.ledger.get(event_key(key))["status"] == "pending"
    # the same event written with a URN bizStep and another time-zone spelling has the same hash
    same = {**unpacking, "bizStep": "urn:epcglobal:cbv:bizstep:unpacking",
            "eventTime": "2023-06-03T16:00:00Z"}
    assert event_hash.event_hash(same, doc["@context"]) == event_hash.event_hash(unpacking, doc["@context"])


def test_a_rejected_capture_drops_what_is_still_pending(w: World) -> None:
    cap = w.ok(w.mfr, "supply.epcis_capture", {"document": story_text()})["capture"]
    result = w.ok(w.dist, "supply.epcis_confirm", {"capture": cap, "approve": False})
    assert result["status"] == "rejected"
    assert w.ledger.get(capture_key(cap))["pending"] == []
    assert pack(w, "BR0001")["t"] == "distributor"  # the manufacturer's applied events stay
    # the dropped events may be captured again (here by the distributor alone: its part of the story)
    doc = json.loads(story_text())
    rest = {**doc, "epcisBody": {"eventList": doc["epcisBody"]["eventList"][3:6]}}
    assert w.ok(w.dist, "supply.epcis_capture", {"document": json.dumps(rest)})["applied"] == 3


def test_confirmation_refusals(w: World) -> None:
    cap = w.ok(w.mfr, "supply.epcis_capture", {"document": story_text()})["capture"]
    w.refused_with(w.hospital, "supply.epcis_confirm", {"capture": cap}, Code.NOTHING_TO_CONFIRM)
    w.refused_with(w.mfr, "supply.epcis_confirm", {"capture": cap}, Code.NOTHING_TO_CONFIRM)
    w.refused_with(w.dist, "supply.epcis_confirm", {"capture": "ab" * 32}, Code.CAPTURE_UNKNOWN)
    w.ok(w.dist, "supply.epcis_confirm", {"capture": cap})
    w.ok(w.pharmacy, "supply.epcis_confirm", {"capture": cap})
    w.refused_with(w.pharmacy, "supply.epcis_confirm", {"capture": cap}, Code.CAPTURE_UNKNOWN)  # complete


def test_a_receipt_by_a_party_that_is_not_the_consignee_is_refused_when_it_would_apply(w: World) -> None:
    """FMD/DSCSA hold whichever way an event arrives: the pharmacy's receipt of the case shipped to the
    distributor fails when the pharmacy confirms it, and the confirmation writes nothing."""
    doc = json.loads(story_text())
    events = doc["epcisBody"]["eventList"]
    wrong = {**events[3], "readPoint": {"id": "urn:epc:id:sgln:4012345.00001.0"},
             "bizLocation": {"id": "urn:epc:id:sgln:4012345.00001.0"}}
    doc["epcisBody"]["eventList"] = [*events[:3], wrong]
    cap = w.ok(w.mfr, "supply.epcis_capture", {"document": json.dumps(doc)})["capture"]
    receipt = w.refused_with(w.pharmacy, "supply.epcis_confirm", {"capture": cap}, Code.NOT_CONSIGNEE)
    assert receipt.message.startswith("event 3:")
    assert epcis.failed_event_index(receipt.message) == 3
    # and when the pharmacy captures it itself, the capture fails at once
    only = {**doc, "epcisBody": {"eventList": [{**wrong, "eventID": "urn:uuid:another"}]}}
    w.refused_with(w.pharmacy, "supply.epcis_capture", {"document": json.dumps(only)}, Code.NOT_CONSIGNEE)


def test_a_capturer_in_none_of_the_events_is_refused(w: World) -> None:
    w.refused_with(w.hospital, "supply.epcis_capture", {"document": story_text()}, Code.UNAUTHORISED)


@pytest.mark.parametrize(("field", "value", "code"), [
    ("readPoint", {"id": "urn:epc:id:sgln:0777777.00001.0"}, Code.LOCATION_UNKNOWN),
    ("bizLocation", {"id": "https://id.gs1.org/414/0777777000013"}, Code.LOCATION_UNKNOWN),
    ("bizLocation", {"id": "https://example.org/site/7"}, Code.LOCATION_UNKNOWN),
    ("sourceList", [{"type": "owning_party", "source": "urn:epc:id:pgln:0777777.00000"}], Code.PARTY_UNKNOWN),
    ("destinationList", [{"type": "location", "destination": "urn:epc:id:sgln:0777777.00001.0"}],
     Code.LOCATION_UNKNOWN),
    ("destinationList", [{"type": "owning_party", "destination": "urn:careledger:org:nobody"}], Code.PARTY_UNKNOWN),
    ("readPoint", {"id": "urn:epc:id:sgln:0399990.0001.0"}, Code.MALFORMED_URN),
    ("bizLocation", {"id": "https://id.gs1.org/414/0777777000017"}, Code.BAD_CHECK_DIGIT),
])
def test_every_location_and_party_must_resolve(w: World, field: str, value: Any, code: Code) -> None:
    doc = json.loads(story_text())
    doc["epcisBody"]["eventList"][2][field] = value
    receipt = w.refused_with(w.mfr, "supply.epcis_capture", {"document": json.dumps(doc)}, code)
    assert receipt.message.startswith("event 2:")


def test_a_retired_location_no_longer_resolves(w: World) -> None:
    w.ok(w.regulator, "supply.set_location", {"gln": PHARMACY_SITE, "org": "pharmacy", "name": "High Street Pharmacy",
                                              "role": "pharmacy", "status": "retired"})
    doc = json.loads(story_text())
    only = {**doc, "epcisBody": {"eventList": doc["epcisBody"]["eventList"][:3]}}
    w.ok(w.mfr, "supply.epcis_capture", {"document": json.dumps(only)})
    rest = {**doc, "epcisBody": {"eventList": doc["epcisBody"]["eventList"][3:]}}
    w.refused_with(w.dist, "supply.epcis_capture", {"document": json.dumps(rest)}, Code.LOCATION_UNKNOWN)


# --- locations --------------------------------------------------------------------------------------------

def test_an_organisation_registers_locations_under_its_own_prefix(w: World) -> None:
    result = w.ok(w.dist, "supply.set_location", {"gln": "0399990000016", "name": "Distribution centre East",
                                                  "role": "warehouse", "address": {"street": "1 Dock Road",
                                                                                   "city": "Leeds",
                                                                                   "postal_code": "LS1 1AA",
                                                                                   "country": "GB"}})
    assert result == {"gln": "0399990000016", "org": "distributor", "status": "active"}
    rec = w.ledger.get(location_key("0399990000016"))
    assert rec["address"] == {"city": "Leeds", "country": "GB", "postal_code": "LS1 1AA", "street": "1 Dock Road"}
    assert rec["since"] == rec["updated"]


@pytest.mark.parametrize(("signer", "payload", "code"), [
    ("dist", {"gln": "5099151000002"}, Code.GLN_NOT_OWNED),  # under the manufacturer's prefix
    ("dist", {"gln": "4012345000023"}, Code.GLN_NOT_OWNED),  # under no prefix: a regulator registers it
    ("regulator", {"gln": "5099151000002", "org": "pharmacy"}, Code.GLN_NOT_OWNED),
    ("regulator", {"gln": PHARMACY_SITE, "org": "hospital"}, Code.LOCATION_EXISTS),
    ("dist", {"gln": "0399990000016", "org": "pharmacy"}, Code.UNAUTHORISED),
    ("regulator", {"gln": "4012345000023", "org": "nobody"}, Code.ORG_UNKNOWN),
])
def test_location_refusals(w: World, signer: str, payload: dict[str, Any], code: Code) -> None:
    key = {"dist": w.dist, "regulator": w.regulator}[signer]
    w.refused_with(key, "supply.set_location", {"name": "A site", "role": "warehouse", **payload}, code)


def test_only_admins_register_locations(w: World) -> None:
    from careledger.core.crypto import SigningKey

    operator = SigningKey.generate()
    w.ledger.enrol("distributor", operator, ["supply_operator"])
    w.refused_at_admission(operator, "supply.set_location", {"gln": "0399990000016", "name": "x", "role": "warehouse"},
                           Code.UNAUTHORISED)


def test_bad_location_payloads_are_invalid(w: World) -> None:
    w.invalid_with(w.dist, "supply.set_location", {"gln": "0399990000017", "name": "x", "role": "warehouse"},
                   Code.BAD_CHECK_DIGIT)
    w.invalid_with(w.dist, "supply.set_location", {"gln": "0399990000016", "name": "x", "role": "warehouse",
                                                   "address": {"country": "england"}}, Code.INVALID_PAYLOAD)


# --- GS1 Company Prefixes -----------------------------------------------------------------------------------

def _vote_through(w: World, action: dict[str, Any]) -> Any:
    receipt = w.ledger.propose("manufacturer", action)
    assert receipt.code == 0, receipt.message
    proposal = receipt.result["proposal"]
    for org in ("distributor", "pharmacy", "hospital", "regulator", "clinic", "insurer"):
        vote = w.ledger.vote(org, proposal)
        if vote.result["status"] != "open":
            return vote
    return vote


def test_governance_sets_an_organisations_prefixes(w: World) -> None:
    vote = _vote_through(w, {"kind": "set_gs1_prefixes", "org": "pharmacy", "prefixes": ["4012345"]})
    assert vote.result["status"] == "executed"
    assert w.ledger.get("identity/org/pharmacy")["gs1_company_prefixes"] == ["4012345"]
    # the pharmacy may now register its own GLNs
    w.ok(w.pharmacy, "supply.set_location", {"gln": "4012345000023", "name": "Back store", "role": "store"})


@pytest.mark.parametrize("prefixes", [["509915"], ["5099151"], ["50991510"], ["4012345", "401234"],
                                      ["4012345", "4012345"]])
def test_overlapping_prefixes_are_refused_at_governance_time(w: World, prefixes: list[str]) -> None:
    w.refused_with(w.mfr, "governance.propose", {"action": {"kind": "set_gs1_prefixes", "org": "pharmacy",
                                                            "prefixes": prefixes}, "title": "prefixes"},
                   Code.PREFIX_OVERLAP)


@pytest.mark.parametrize("prefixes", [["50991"], ["40123a5"], ["4012345678901"]])
def test_malformed_prefixes_are_invalid(w: World, prefixes: list[str]) -> None:
    w.invalid_with(w.mfr, "governance.propose", {"action": {"kind": "set_gs1_prefixes", "org": "pharmacy",
                                                            "prefixes": prefixes}, "title": "prefixes"},
                   Code.INVALID_PAYLOAD)


def test_prefixes_for_an_unknown_organisation_are_refused(w: World) -> None:
    w.refused_with(w.mfr, "governance.propose", {"action": {"kind": "set_gs1_prefixes", "org": "nobody",
                                                            "prefixes": ["4012345"]}, "title": "prefixes"},
                   Code.ORG_UNKNOWN)


def test_overlapping_prefixes_are_refused_in_genesis() -> None:
    c = story_consortium("overlap")
    for org in c.doc["organisations"]:
        if org["id"] == "distributor":
            org["gs1_company_prefixes"] = ["50991512"]
    with pytest.raises(GenesisError, match="overlaps"):
        decode_genesis(json.dumps(c.doc).encode())


def test_story_identifiers() -> None:
    doc = json.loads(story_text())
    assert epcis.is_schema_valid(doc) and not epcis.schema_errors(doc)
    assert doc["epcisBody"]["eventList"][1]["parentID"] == "urn:epc:id:sscc:5099151.0000000000"
    assert parse_ref("urn:epc:id:sscc:5099151.0000000000") == STORY_SSCC
    assert len(STORY_SERIALS) == 6 and PHARMACY_PARTY != PHARMACY_SITE
