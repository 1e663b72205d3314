"""Vectors of the supply contract: every one of its fourteen transaction types, accepted and refused.

The consortium is a manufacturer (GS1 Company Prefix 0614141), a wholesaler (039999), a pharmacy and a
regulator, each signing through its admin. Items are named in every form a payload accepts: refs
(``<gtin14>/<serial>``), SGTIN EPC URNs, GS1 Digital Links, scanned element strings and SSCCs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from careledger.contracts.supply import gs1
from careledger.core.crypto import SigningKey
from vectors.builder import Builder, Org, admin, enrol, key, nonce

MAKER_ORG, WHOLESALER_ORG, PHARMACY_ORG, REGULATOR_ORG = "maker-a", "wholesaler-b", "pharmacy-c", "regulator-d"
SUPPLY_ORGS: tuple[Org, ...] = ((MAKER_ORG, "manufacturer", ("0614141",)), (WHOLESALER_ORG, "distributor", ("039999",)),
                                (PHARMACY_ORG, "pharmacy", ()), (REGULATOR_ORG, "regulator", ()))
MAKER, WHOLESALER, PHARMACY, REGULATOR = (admin(org) for org, _, _ in SUPPLY_ORGS)
EXPIRY = "351231"  # 31 December 2035: after the vectors' block times and after any real clock this decade


def gtin_of(prefix: str, item: str, indicator: str = "0") -> str:
    body = indicator + prefix + item
    return body + str(gs1.check_digit(body))


def sscc_of(serial_ref: str, prefix: str = "0614141", extension: str = "0") -> str:
    body = extension + prefix + serial_ref
    return body + str(gs1.check_digit(body))


GTIN, GTIN2, GTIN3 = gtin_of("0614141", "00001"), gtin_of("0614141", "00002"), gtin_of("0614141", "00003")
FOREIGN_GTIN = gtin_of("039999", "012345")  # under the wholesaler's prefix
BAD_GTIN = GTIN[:-1] + str((int(GTIN[-1]) + 1) % 10)
SSCC1, SSCC2, SSCC3 = sscc_of("000000001"), sscc_of("000000002"), sscc_of("000000003")


def ref(serial: str, gtin: str = GTIN) -> str:
    return f"{gtin}/{serial}"


def urn(serial: str) -> str:
    """The SGTIN EPC URN of a pack of GTIN (company prefix 0614141, indicator 0, item reference 00001)."""
    return f"urn:epc:id:sgtin:0614141.000001.{serial}"


def pack(serial: str, gtin: str = GTIN) -> str:
    return f"supply/pack/{gtin}/{serial}"


def unit(sscc: str) -> str:
    return f"supply/unit/{sscc}"


def lot(name: str = "L1", gtin: str = GTIN) -> str:
    return f"supply/lot/{gtin}/{name}"


def product(gtin: str = GTIN) -> str:
    return f"supply/product/{gtin}"


def supply_builder() -> Builder:
    return Builder(orgs=SUPPLY_ORGS)


def register(b: Builder, gtin: str = GTIN, signer: SigningKey = MAKER, **fields: Any) -> bytes:
    return b.tx(signer, "supply.register_product", {"gtin": gtin, "name": "Amoxicillin 500 mg capsules x 21",
                                                    **fields})


def commission(b: Builder, serials: list[str], lot_name: str = "L1", expiry: str = EXPIRY,
               signer: SigningKey = MAKER, gtin: str = GTIN, **fields: Any) -> bytes:
    payload: dict[str, Any] = {"expiry": expiry, "gtin": gtin, "lot": lot_name, **fields}
    if serials:
        payload["serials"] = serials
    return b.tx(signer, "supply.commission", payload)


def op(b: Builder, signer: SigningKey, action: str, items: list[str], **fields: Any) -> bytes:
    return b.tx(signer, f"supply.{action}", {"items": items, **fields})


def to_pharmacy(b: Builder, serials: list[str]) -> None:
    """Pre blocks: the maker ships ``serials`` to the pharmacy, which receives them."""
    b.pre(op(b, MAKER, "ship", [ref(s) for s in serials], to=PHARMACY_ORG))
    b.pre(op(b, PHARMACY, "receive", [ref(s) for s in serials]))


# -- products and lots ------------------------------------------------------------------------------------

def supply_register_product() -> dict[str, Any]:
    b = supply_builder()
    return b.vector("supply_register_product",
                    "The manufacturer registers a GTIN under its prefix with every optional field; registering "
                    "it again (3011), a wholesaler registering (206: not a manufacturer), a GTIN under another "
                    "company's prefix (3012) fail; a bad check digit is invalid (3001).",
                    [register(b, strength="500 mg", dosage_form="capsule", ndc="0614-1410-01",
                              national_codes={"PZN": "12345678", "CIP13": "3400936123456"}),
                     register(b), register(b, GTIN2, WHOLESALER), register(b, FOREIGN_GTIN), register(b, BAD_GTIN)],
                    [product(), product(GTIN2), product(FOREIGN_GTIN), nonce(MAKER)],
                    [(True, 0), (True, 3011), (True, 206), (True, 3012), (False, 3001)])


def supply_withdraw_product() -> dict[str, Any]:
    b = supply_builder()
    b.pre(register(b), register(b, GTIN2))

    def withdraw(signer: SigningKey, gtin: str = GTIN) -> bytes:
        return b.tx(signer, "supply.withdraw_product", {"gtin": gtin, "reason": "quality defect"})

    return b.vector("supply_withdraw_product",
                    "The pharmacy may not withdraw a product (206); its owner does; again is 3019; an unknown "
                    "GTIN is 3010; a regulator withdraws another product.",
                    [withdraw(PHARMACY), withdraw(MAKER), withdraw(MAKER), withdraw(MAKER, GTIN3),
                     withdraw(REGULATOR, GTIN2)],
                    [product(), product(GTIN2)], [(True, 206), (True, 0), (True, 3019), (True, 3010), (True, 0)])


def supply_recall_lot() -> dict[str, Any]:
    b = supply_builder()
    b.pre(register(b))
    b.pre(commission(b, ["S1", "S2"]))

    def recall(signer: SigningKey, lot_name: str = "L1") -> bytes:
        return b.tx(signer, "supply.recall_lot", {"gtin": GTIN, "lot": lot_name, "reason": "contamination"})

    return b.vector("supply_recall_lot",
                    "The pharmacy may not recall (206); an unknown lot is 3038; the regulator recalls lot L1 "
                    "in one write, whatever its size; recalling it again is 3018.",
                    [recall(PHARMACY), recall(MAKER, "L9"), recall(REGULATOR), recall(MAKER)],
                    [lot(), lot("L9"), pack("S1")], [(True, 206), (True, 3038), (True, 0), (True, 3018)])


# -- the pack lifecycle -----------------------------------------------------------------------------------

def supply_commission() -> dict[str, Any]:
    b = supply_builder()
    b.pre(register(b))
    return b.vector("supply_commission",
                    "Two packs by serial list and three by serial range (R0001-R0003) in lot L1; a serial again "
                    "(3014), lot L1 with another expiry (3016), an expired lot (3017) and the wholesaler "
                    "commissioning the maker's GTIN (3012) fail; both serials and a range (105), a serial twice "
                    "(3014) and a space in a serial (3007) are invalid.",
                    [commission(b, ["S1", "S2"]),
                     commission(b, [], serial_range={"count": 3, "prefix": "R", "start": 1, "width": 4}),
                     commission(b, ["S1"]), commission(b, ["S9"], expiry="361231"),
                     commission(b, ["S8"], "L2", expiry="240101"), commission(b, ["W1"], signer=WHOLESALER),
                     commission(b, ["S7"], serial_range={"count": 1, "start": 7, "width": 1}),
                     commission(b, ["S5", "S5"]), commission(b, ["S 1"])],
                    [lot(), lot("L2"), pack("S1"), pack("R0001"), pack("R0003"), pack("S9"), pack("W1")],
                    [(True, 0), (True, 0), (True, 3014), (True, 3016), (True, 3017), (True, 3012), (False, 105),
                     (False, 3014), (False, 3007)])


def supply_aggregate() -> dict[str, Any]:
    b = supply_builder()
    b.pre(register(b))
    b.pre(commission(b, ["S1", "S2", "S3"]))
    return b.vector("supply_aggregate",
                    "Two packs (a ref and an SGTIN URN) go into a new logistic unit; a packed pack again (3036), "
                    "a pack the wholesaler does not hold (3024), a unit into a pack it contains (403) and an "
                    "unknown serial (3013) fail and roll back.",
                    [b.tx(MAKER, "supply.aggregate", {"children": [ref("S1"), urn("S2")], "parent": SSCC1}),
                     b.tx(MAKER, "supply.aggregate", {"children": [ref("S2")], "parent": SSCC2}),
                     b.tx(WHOLESALER, "supply.aggregate", {"children": [ref("S3")], "parent": SSCC3}),
                     b.tx(MAKER, "supply.aggregate", {"children": [SSCC1], "parent": ref("S1")}),
                     b.tx(MAKER, "supply.aggregate", {"children": [ref("S9")], "parent": SSCC2})],
                    [unit(SSCC1), unit(SSCC2), unit(SSCC3), pack("S1"), pack("S2"), pack("S3")],
                    [(True, 0), (True, 3036), (True, 3024), (True, 403), (True, 3013)])


def supply_disaggregate() -> dict[str, Any]:
    b = supply_builder()
    b.pre(register(b))
    b.pre(commission(b, ["S1", "S2", "S3"]))
    b.pre(b.tx(MAKER, "supply.aggregate", {"children": [ref("S1"), ref("S2"), ref("S3")], "parent": SSCC1}))

    def unpack(signer: SigningKey, parent: str = SSCC1, children: list[str] | None = None) -> bytes:
        return b.tx(signer, "supply.disaggregate", {"parent": parent} | ({} if children is None
                                                                          else {"children": children}))

    return b.vector("supply_disaggregate",
                    "One pack out of the unit; the same pack again (403), the wholesaler (3024) and an unknown "
                    "unit (3035) fail; with no children named, the rest comes out.",
                    [unpack(MAKER, children=[ref("S1")]), unpack(MAKER, children=[ref("S1")]), unpack(WHOLESALER),
                     unpack(MAKER, SSCC2), unpack(MAKER)],
                    [unit(SSCC1), pack("S1"), pack("S3")], [(True, 0), (True, 403), (True, 3024), (True, 3035),
                                                             (True, 0)])


def supply_ship() -> dict[str, Any]:
    b = supply_builder()
    b.pre(register(b))
    b.pre(commission(b, ["S1", "S2", "S3"]), commission(b, ["S4"], "L2"))
    b.pre(b.tx(MAKER, "supply.aggregate", {"children": [ref("S1"), ref("S2")], "parent": SSCC1}),
          b.tx(REGULATOR, "supply.recall_lot", {"gtin": GTIN, "lot": "L2", "reason": "contamination"}))
    return b.vector("supply_ship",
                    "The unit ships with its contents to the wholesaler; a pack inside it (3036), an unknown "
                    "consignee (1001), the maker itself (403), a pack of a recalled lot (3018), the unit again "
                    "while in transit (3027) and a pack the wholesaler does not hold (3024) fail.",
                    [op(b, MAKER, "ship", [SSCC1], to=WHOLESALER_ORG),
                     op(b, MAKER, "ship", [ref("S1")], to=PHARMACY_ORG),
                     op(b, MAKER, "ship", [ref("S3")], to="clinic-z"),
                     op(b, MAKER, "ship", [ref("S3")], to=MAKER_ORG),
                     op(b, MAKER, "ship", [ref("S4")], to=WHOLESALER_ORG),
                     op(b, MAKER, "ship", [SSCC1], to=WHOLESALER_ORG),
                     op(b, WHOLESALER, "ship", [ref("S3")], to=PHARMACY_ORG)],
                    [unit(SSCC1), pack("S1"), pack("S3"), pack("S4")],
                    [(True, 0), (True, 3036), (True, 1001), (True, 403), (True, 3018), (True, 3027), (True, 3024)])


def supply_receive() -> dict[str, Any]:
    b = supply_builder()
    b.pre(register(b))
    b.pre(commission(b, ["S1", "S2", "S3"]))
    b.pre(op(b, MAKER, "ship", [ref("S1"), ref("S2")], to=WHOLESALER_ORG))
    return b.vector("supply_receive",
                    "The pharmacy is not the consignee (3025); the wholesaler receives both packs; receiving one "
                    "again (3026), one never shipped (3026) and an unknown serial (3013) fail.",
                    [op(b, PHARMACY, "receive", [ref("S1")]), op(b, WHOLESALER, "receive", [ref("S1"), urn("S2")]),
                     op(b, WHOLESALER, "receive", [ref("S1")]), op(b, WHOLESALER, "receive", [ref("S3")]),
                     op(b, WHOLESALER, "receive", [ref("S9")])],
                    [pack("S1"), pack("S2"), pack("S3")],
                    [(True, 3025), (True, 0), (True, 3026), (True, 3026), (True, 3013)])


def supply_decommission() -> dict[str, Any]:
    b = supply_builder()
    b.pre(register(b))
    b.pre(commission(b, ["S1", "S2", "S3", "S4", "S5"]))
    to_pharmacy(b, ["S1", "S2", "S3", "S4", "S5"])

    def decommission(signer: SigningKey, serial: str, state: str) -> bytes:
        return op(b, signer, "decommission", [ref(serial)], state=state)

    return b.vector("supply_decommission",
                    "The pharmacy dispenses (supplied), reports stolen and locks packs; a supplied pack again "
                    "(3020), a stolen one (3021), a locked one (3023), the maker dispensing (206: not a pharmacy "
                    "or hospital) or destroying a pack it no longer holds (3024) fail; an unknown state is "
                    "invalid (105).",
                    [decommission(PHARMACY, "S1", "supplied"), decommission(PHARMACY, "S1", "destroyed"),
                     decommission(PHARMACY, "S2", "stolen"), decommission(PHARMACY, "S2", "destroyed"),
                     decommission(PHARMACY, "S3", "locked"), decommission(PHARMACY, "S3", "supplied"),
                     decommission(MAKER, "S4", "supplied"), decommission(MAKER, "S4", "destroyed"),
                     decommission(PHARMACY, "S5", "eaten")],
                    [pack("S1"), pack("S2"), pack("S3"), pack("S4")],
                    [(True, 0), (True, 3020), (True, 0), (True, 3021), (True, 0), (True, 3023), (True, 206),
                     (True, 3024), (False, 105)])


def supply_undo() -> dict[str, Any]:
    b = supply_builder()
    b.pre(register(b))
    b.pre(commission(b, ["S1", "S2", "S3"]))
    to_pharmacy(b, ["S1", "S2", "S3"])
    b.pre(*(op(b, PHARMACY, "decommission", [ref(s)], state=state)
            for s, state in (("S1", "supplied"), ("S2", "destroyed"), ("S3", "locked"))))

    def undo(signer: SigningKey, serial: str, state: str) -> bytes:
        return op(b, signer, "undo", [ref(serial)], state=state)

    return b.vector("supply_undo",
                    "Only the party that dispensed may undo it (3029); undoing another state (3030) or a "
                    "destruction (3030) fails; the pharmacy reverts its dispense and its lock.",
                    [undo(WHOLESALER, "S1", "supplied"), undo(PHARMACY, "S1", "exported"),
                     undo(PHARMACY, "S2", "destroyed"), undo(PHARMACY, "S1", "supplied"),
                     undo(PHARMACY, "S3", "locked")],
                    [pack("S1"), pack("S2"), pack("S3")],
                    [(True, 3029), (True, 3030), (True, 3030), (True, 0), (True, 0)])


def supply_verify() -> dict[str, Any]:
    b = supply_builder()
    b.pre(register(b))
    b.pre(commission(b, ["S1", "S2"]))
    b.pre(op(b, MAKER, "decommission", [ref("S2")], state="destroyed"))

    def verify(**identifier: str) -> bytes:
        return b.tx(PHARMACY, "supply.verify", identifier)

    return b.vector("supply_verify",
                    "Signed scans: GTIN, serial, lot and expiry verified; an unknown serial by Digital Link and a "
                    "destroyed pack by element string are NOT VERIFIED with supply_alert events; a lot mismatch "
                    "is NOT VERIFIED; a bad check digit (3001), no serial (3002) and two identifiers (105) are "
                    "invalid.",
                    [verify(expiry=EXPIRY, gtin=GTIN, lot="L1", serial="S1"),
                     verify(dl=f"https://id.gs1.org/01/{GTIN}/21/S9"),
                     verify(scan=f"(01){GTIN}(17){EXPIRY}(10)L1(21)S2"), verify(gtin=GTIN, lot="L7", serial="S1"),
                     verify(gtin=BAD_GTIN, serial="S1"), verify(gtin=GTIN),
                     verify(dl=f"https://id.gs1.org/01/{GTIN}/21/S1", gtin=GTIN, serial="S1")],
                    [pack("S1"), pack("S2"), pack("S9")],
                    [(True, 0), (True, 0), (True, 0), (True, 0), (False, 3001), (False, 3002), (False, 105)])


def supply_unauthorised_signers() -> dict[str, Any]:
    b = supply_builder()
    auditor, operator, patient = key("member/auditor"), key("member/supply-operator"), key("patient/1")
    b.pre(enrol(b, MAKER_ORG, auditor, ["auditor"]), enrol(b, MAKER_ORG, operator, ["supply_operator"]),
          b.tx(patient, "identity.register_patient", {}))
    b.pre(register(b))
    return b.vector("supply_unauthorised_signers",
                    "A member without a supply role (206) and a patient (206) may not sign supply transactions; "
                    "a member with the supply_operator role commissions for the maker.",
                    [register(b, GTIN2, auditor), b.tx(patient, "supply.verify", {"gtin": GTIN, "serial": "S1"}),
                     commission(b, ["S1"], signer=operator)],
                    [product(GTIN2), pack("S1"), nonce(auditor), nonce(patient)], [(True, 206), (True, 206), (True, 0)])


# -- EPCIS 2.0 capture --------------------------------------------------------------------------------------

def event(kind: str, time: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "eventTime": f"2025-06-15T{time}:00.000Z", "eventTimeZoneOffset": "+00:00", **fields}


def commissioning(time: str, serials: list[str]) -> dict[str, Any]:
    return event("ObjectEvent", time, action="ADD", bizStep="commissioning", disposition="active",
                 epcList=[urn(s) for s in serials],
                 ilmd={"cbvmda:itemExpirationDate": "2035-12-31", "cbvmda:lotNumber": "L1"})


def shipping(time: str, serials: list[str], to: str) -> dict[str, Any]:
    return event("ObjectEvent", time, action="OBSERVE", bizStep="shipping", disposition="in_transit",
                 epcList=[urn(s) for s in serials], destinationList=[{"destination": to, "type": "owning_party"}])


def document(*events: dict[str, Any]) -> dict[str, str]:
    doc = {"@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"], "type": "EPCISDocument",
           "schemaVersion": "2.0", "creationDate": "2025-06-15T09:00:00.000Z",
           "epcisBody": {"eventList": list(events)}}
    return {"document": json.dumps(doc, separators=(",", ":"))}


def supply_epcis_capture() -> dict[str, Any]:
    b = supply_builder()
    b.pre(register(b))
    to_wholesaler = "urn:careledger:org:" + WHOLESALER_ORG
    return b.vector("supply_epcis_capture",
                    "An EPCIS 2.0 document commissions two packs and ships them to the wholesaler (named by "
                    "urn:careledger:org:); a second document commissions a pack and then receives it (3026, not "
                    "in transit), so none of its events applies; a third ships to a party whose GS1 Company "
                    "Prefix no member holds (3039).",
                    [b.tx(MAKER, "supply.epcis_capture", document(commissioning("08:00", ["S1", "S2"]),
                                                                  shipping("08:30", ["S1", "S2"], to_wholesaler))),
                     b.tx(MAKER, "supply.epcis_capture", document(
                         commissioning("08:40", ["S3"]),
                         event("ObjectEvent", "08:50", action="OBSERVE", bizStep="receiving", epcList=[urn("S3")]))),
                     b.tx(MAKER, "supply.epcis_capture", document(
                         commissioning("08:45", ["S4"]), shipping("08:55", ["S4"], "urn:epc:id:pgln:0777777.00000")))],
                    [pack("S1"), pack("S2"), pack("S3"), pack("S4"), lot()],
                    [(True, 0), (True, 3026), (True, 3039)])


def supply_epcis_refused() -> dict[str, Any]:
    b = supply_builder()
    b.pre(register(b))
    no_time = commissioning("08:00", ["S1"])
    del no_time["eventTime"]
    misspelt = {**shipping("08:00", ["S1"], "urn:x:y"), "bizStep": "shiping"}
    add_shipping = {**commissioning("08:00", ["S1"]), "bizStep": "shipping"}
    payloads = [{"document": "{not json"}, document(no_time), document(misspelt), document(add_shipping),
                document(commissioning("08:00", ["S1"]))]
    return b.vector("supply_epcis_refused",
                    "Documents that are invalid before any state is read: not JSON (3032), an event without "
                    "eventTime (3032, the EPCIS 2.0 JSON Schema), a misspelt CBV business step (3033), and ADD "
                    "with a business step other than commissioning (3034); then a valid one, with the same nonce.",
                    [b.tx(MAKER, "supply.epcis_capture", payload, nonce=2) for payload in payloads],
                    [pack("S1"), nonce(MAKER)], [(False, 3032), (False, 3032), (False, 3033), (False, 3034), (True, 0)])


# -- locations, multi-party capture and idempotency (issue 18) ----------------------------------------------

WHOLESALER_GLN = "0399990000016"  # under the wholesaler's prefix 039999
PHARMACY_GLN = "4012345000016"  # under no member's prefix: a regulator registers it
MAKER_SITE = "urn:epc:id:sgln:0614141.00000.0"
WHOLESALER_SITE = "urn:epc:id:sgln:039999.000001.0"


def location(gln: str) -> str:
    return f"supply/location/{gln}"


def set_location(b: Builder, signer: SigningKey, gln: str, **fields: Any) -> bytes:
    return b.tx(signer, "supply.set_location", {"gln": gln, "name": "Site", "role": "warehouse", **fields})


def supply_set_location() -> dict[str, Any]:
    b = supply_builder()
    b.pre(set_location(b, REGULATOR, PHARMACY_GLN, org=PHARMACY_ORG, role="pharmacy"))
    return b.vector("supply_set_location",
                    "The wholesaler registers a warehouse under its own prefix, with an address (ok); it may not "
                    "register a GLN under the maker's prefix (3042) nor one under no prefix (3042: a regulator "
                    "does); a regulator may not give the pharmacy's registered GLN to the wholesaler (3041); the "
                    "wholesaler may not register for the pharmacy (206); a GLN with a wrong check digit is "
                    "invalid (3001); the regulator retires the pharmacy's GLN (ok).",
                    [set_location(b, WHOLESALER, WHOLESALER_GLN,
                                  address={"city": "Leeds", "country": "GB", "postal_code": "LS1 1AA"}),
                     set_location(b, WHOLESALER, "0614141000012"), set_location(b, WHOLESALER, "7777777000016"),
                     set_location(b, REGULATOR, PHARMACY_GLN, org=WHOLESALER_ORG),
                     set_location(b, WHOLESALER, WHOLESALER_GLN, org=PHARMACY_ORG),
                     set_location(b, WHOLESALER, "0399990000017"),
                     set_location(b, REGULATOR, PHARMACY_GLN, org=PHARMACY_ORG, role="pharmacy", status="retired")],
                    [location(WHOLESALER_GLN), location(PHARMACY_GLN), location("0614141000012"),
                     location("7777777000016")],
                    [(True, 0), (True, 3042), (True, 3042), (True, 3041), (True, 206), (False, 3001), (True, 0)])


def at(site: str, ev: dict[str, Any]) -> dict[str, Any]:
    return {**ev, "readPoint": {"id": site}, "bizLocation": {"id": site}}


def story(event_id: str = "urn:uuid:00000000-0000-4000-8000-00000000000") -> dict[str, str]:
    """The maker commissions two packs and ships them to the wholesaler, which receives them: two members'
    events in one document (the receipt has no eventID: it is keyed by its canonical hash)."""
    to_wholesaler = "urn:epc:id:pgln:039999.000000"
    receiving = event("ObjectEvent", "08:50", action="OBSERVE", bizStep="receiving", epcList=[urn("S1"), urn("S2")])
    return document({**at(MAKER_SITE, commissioning("08:00", ["S1", "S2"])), "eventID": event_id + "1"},
                    {**at(MAKER_SITE, shipping("08:30", ["S1", "S2"], to_wholesaler)), "eventID": event_id + "2"},
                    at(WHOLESALER_SITE, receiving))


def capture_of(receipt: dict[str, Any]) -> str:
    return str(receipt["result"]["capture"])


def supply_epcis_confirm() -> dict[str, Any]:
    b = supply_builder()
    b.pre(register(b))
    cap = capture_of(b.pre(b.tx(WHOLESALER, "supply.epcis_capture", story()))[0])
    return b.vector("supply_epcis_confirm",
                    "The wholesaler captures a document whose first two events are the maker's (its SGLN): all "
                    "three wait. The pharmacy has nothing to confirm (3047); the maker confirms and every event "
                    "applies (the wholesaler's receipt was only held back), so the capture is complete; a second "
                    "confirmation finds no pending capture (3046).",
                    [b.tx(PHARMACY, "supply.epcis_confirm", {"capture": cap}),
                     b.tx(MAKER, "supply.epcis_confirm", {"capture": cap}),
                     b.tx(MAKER, "supply.epcis_confirm", {"approve": True, "capture": cap})],
                    [f"supply/capture/{cap}", pack("S1"), pack("S2"), lot()],
                    [(True, 3047), (True, 0), (True, 3046)])


def supply_epcis_idempotent() -> dict[str, Any]:
    b = supply_builder()
    b.pre(register(b))
    cap = capture_of(b.pre(b.tx(MAKER, "supply.epcis_capture", story()))[0])
    b.pre(b.tx(WHOLESALER, "supply.epcis_confirm", {"approve": False, "capture": cap}))
    makers_part = json.loads(story()["document"])
    makers_part["epcisBody"]["eventList"] = makers_part["epcisBody"]["eventList"][:2]
    receipt_only = json.loads(story()["document"])
    receipt_only["epcisBody"]["eventList"] = receipt_only["epcisBody"]["eventList"][2:]
    return b.vector("supply_epcis_idempotent",
                    "The maker captured the two-party document (its own two events applied, the wholesaler's "
                    "receipt waited) and the wholesaler rejected it (the receipt was dropped, its key freed). The "
                    "whole document again repeats two captured events (3045, naming them); the maker's part alone, "
                    "sent by the pharmacy, is already captured (3044): both refused at admission by an engine, "
                    "failed here, writing only the nonce; the receipt alone, captured by the wholesaler, is new.",
                    [b.tx(MAKER, "supply.epcis_capture", story()),
                     b.tx(PHARMACY, "supply.epcis_capture",
                          {"document": json.dumps(makers_part, separators=(",", ":"))}),
                     b.tx(WHOLESALER, "supply.epcis_capture",
                          {"document": json.dumps(receipt_only, separators=(",", ":"))})],
                    [f"supply/capture/{cap}", pack("S1"), pack("S2")],
                    [(True, 3045), (True, 3044), (True, 0)])

VECTORS: list[Callable[[], dict[str, Any]]] = [
    supply_register_product, supply_withdraw_product, supply_recall_lot, supply_commission, supply_aggregate,
    supply_disaggregate, supply_ship, supply_receive, supply_decommission, supply_undo, supply_verify,
    supply_unauthorised_signers, supply_epcis_capture, supply_epcis_refused, supply_set_location,
    supply_epcis_confirm, supply_epcis_idempotent,
]
