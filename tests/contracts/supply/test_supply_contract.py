"""The supply contract through the in-memory executor: products, the pack lifecycle, recalls, undo, and
every bad input of issue 4 (stable code, nothing written but the nonce)."""

from __future__ import annotations

import pytest

from careledger.contracts.supply import gs1
from careledger.contracts.supply.layout import lot_key, pack_key, product_key, unit_key
from careledger.core.errors import Code, LedgerError
from support import GENESIS_TIME_MS, Ledger, seeded_key
from support.supply import (
    ACME_PREFIX,
    DAY_MS,
    EXPIRY,
    FOREIGN_GTIN,
    GTIN,
    GTIN2,
    World,
    ref,
    supply_consortium,
)


@pytest.fixture
def world() -> World:
    w = World(Ledger(supply_consortium()))
    w.register()
    return w


# --- products ------------------------------------------------------------------------------------------

def test_register_product_keeps_master_data_and_company_prefix(world: World) -> None:
    product = world.ledger.get(product_key(GTIN))
    assert product["owner"] == "manufacturer"
    assert product["company_prefix"] == ACME_PREFIX
    assert product["ndc"] == "0614-1410-01"
    assert product["status"] == "active"


def test_register_another_companys_gtin_is_refused(world: World) -> None:
    world.refused_with(world.mfr, "supply.register_product", {"gtin": FOREIGN_GTIN, "name": "x"}, Code.GTIN_NOT_OWNED)


def test_register_twice_and_by_a_non_manufacturer(world: World) -> None:
    world.refused_with(world.mfr, "supply.register_product", {"gtin": GTIN, "name": "again"}, Code.PRODUCT_EXISTS)
    world.refused_with(world.dist, "supply.register_product", {"gtin": FOREIGN_GTIN, "name": "x"}, Code.UNAUTHORISED)


def test_wrong_check_digit_is_refused_at_admission(world: World) -> None:
    bad = GTIN[:-1] + str((int(GTIN[-1]) + 1) % 10)
    world.invalid_with(world.mfr, "supply.register_product", {"gtin": bad, "name": "x"}, Code.BAD_CHECK_DIGIT)
    world.invalid_with(world.mfr, "supply.commission", {"expiry": EXPIRY, "gtin": bad, "lot": "L1", "serials": ["1"]},
                       Code.BAD_CHECK_DIGIT)


@pytest.mark.parametrize(("item", "code"), [
    ("urn:epc:id:sgtin:0614141.000001", Code.MALFORMED_URN),
    ("urn:epc:id:sgtin:0614141.00000X.1", Code.MALFORMED_URN),
    ("https://id.gs1.org/01/0061414100001/21/1", Code.MALFORMED_DIGITAL_LINK),
    ("https://id.gs1.org/21/1/01/00614141000012", Code.MALFORMED_DIGITAL_LINK),
    ("urn:epc:id:sscc:0614141.12345678", Code.MALFORMED_URN),
    ("00614141000012/bad serial", Code.ILLEGAL_CHARACTER),
    ("not-an-identifier", Code.MALFORMED_IDENTIFIER),
])
def test_malformed_identifiers_are_refused_at_admission(world: World, item: str, code: Code) -> None:
    world.invalid_with(world.mfr, "supply.ship", {"items": [item], "to": "distributor"}, code)


def test_malformed_element_string_in_a_scan_is_refused(world: World) -> None:
    world.invalid_with(world.pharmacy, "supply.verify", {"scan": "]d201" + GTIN + "17281399"}, Code.BAD_DATE)
    world.invalid_with(world.pharmacy, "supply.verify", {"scan": "]d201" + GTIN[:10]}, Code.MALFORMED_ELEMENT_STRING)


# --- commissioning -------------------------------------------------------------------------------------

def test_commission_writes_one_key_per_pack_and_one_lot(world: World) -> None:
    before = set(world.ledger.snapshot())
    result = world.commission(["A1", "A2", "A3"])
    assert result == {"commissioned": 3, "gtin": GTIN, "lot": "L1"}
    new = set(world.ledger.snapshot()) - before
    assert new == {pack_key(GTIN, s) for s in ("A1", "A2", "A3")} | {lot_key(GTIN, "L1")} | {
        f"nonce/{world.mfr.public_hex}"} - set(before)
    pack = world.pack("A1")
    assert pack["s"] == "active" and pack["h"] == "manufacturer" and pack["l"] == "L1"
    lot = world.ledger.get(lot_key(GTIN, "L1"))
    assert lot["packs"] == 3 and lot["expiry"] == EXPIRY


def test_commission_a_serial_range(world: World) -> None:
    result = world.ok(world.mfr, "supply.commission",
                      {"expiry": EXPIRY, "gtin": GTIN, "lot": "L2",
                       "serial_range": {"count": 250, "prefix": "R", "start": 7, "width": 6}})
    assert result["commissioned"] == 250
    assert world.pack("R000007") is not None and world.pack("R000256") is not None
    assert world.pack("R000257") is None


def test_commissioning_another_companys_gtin_is_refused(world: World) -> None:
    world.refused_with(world.mfr, "supply.commission",
                       {"expiry": EXPIRY, "gtin": FOREIGN_GTIN, "lot": "L1", "serials": ["1"]}, Code.GTIN_NOT_OWNED)
    world.refused_with(world.dist, "supply.commission",
                       {"expiry": EXPIRY, "gtin": GTIN, "lot": "L1", "serials": ["1"]}, Code.GTIN_NOT_OWNED)


def test_duplicate_serial_is_refused(world: World) -> None:
    world.commission(["D1"])
    world.refused_with(world.mfr, "supply.commission",
                       {"expiry": EXPIRY, "gtin": GTIN, "lot": "L1", "serials": ["D2", "D1"]}, Code.SERIAL_EXISTS)
    assert world.pack("D2") is None
    world.invalid_with(world.mfr, "supply.commission",
                       {"expiry": EXPIRY, "gtin": GTIN, "lot": "L1", "serials": ["D3", "D3"]}, Code.SERIAL_EXISTS)


def test_a_lot_keeps_its_expiry(world: World) -> None:
    world.commission(["E1"])
    world.refused_with(world.mfr, "supply.commission",
                       {"expiry": "290101", "gtin": GTIN, "lot": "L1", "serials": ["E2"]}, Code.EXPIRY_MISMATCH)


def test_unregistered_product_and_too_many_serials(world: World) -> None:
    world.refused_with(world.mfr, "supply.commission",
                       {"expiry": EXPIRY, "gtin": GTIN2, "lot": "L1", "serials": ["1"]}, Code.PRODUCT_UNKNOWN)
    world.invalid_with(world.mfr, "supply.commission",
                       {"expiry": EXPIRY, "gtin": GTIN, "lot": "L1", "serials": [str(i) for i in range(10_001)]},
                       Code.INVALID_PAYLOAD)


# --- custody ---------------------------------------------------------------------------------------------

def test_ship_and_receive_move_custody(world: World) -> None:
    world.commission(["S1"])
    world.ship(world.mfr, [ref("S1")], "distributor")
    assert world.pack("S1")["t"] == "distributor" and world.pack("S1")["h"] == "manufacturer"
    world.receive(world.dist, [ref("S1")])
    pack = world.pack("S1")
    assert pack["h"] == "distributor" and "t" not in pack
    assert [e[0] for e in pack["e"]] == ["commission", "ship", "receive"]


def test_shipping_a_pack_you_do_not_hold_is_refused(world: World) -> None:
    world.commission(["S2"])
    world.refused_with(world.dist, "supply.ship", {"items": [ref("S2")], "to": "pharmacy"}, Code.NOT_HOLDER)


def test_receiving_a_shipment_addressed_to_someone_else_is_refused(world: World) -> None:
    world.commission(["S3"])
    world.ship(world.mfr, [ref("S3")], "distributor")
    world.refused_with(world.pharmacy, "supply.receive", {"items": [ref("S3")]}, Code.NOT_CONSIGNEE)


def test_events_out_of_order_are_refused(world: World) -> None:
    world.commission(["S4"])
    world.refused_with(world.dist, "supply.receive", {"items": [ref("S4")]}, Code.NOT_IN_TRANSIT)
    world.refused_with(world.mfr, "supply.ship", {"items": [ref("NEVER")], "to": "distributor"}, Code.SERIAL_UNKNOWN)
    world.ship(world.mfr, [ref("S4")], "distributor")
    world.refused_with(world.mfr, "supply.ship", {"items": [ref("S4")], "to": "pharmacy"}, Code.PACK_IN_TRANSIT)


def test_ship_to_unknown_member_is_refused(world: World) -> None:
    world.commission(["S5"])
    world.refused_with(world.mfr, "supply.ship", {"items": [ref("S5")], "to": "nobody-here"}, Code.ORG_UNKNOWN)


def test_aggregation_applies_operations_to_contents(world: World) -> None:
    world.commission(["C1", "C2", "C3"])
    sscc = "106141410000000019"
    sscc = sscc[:-1] + str(gs1.check_digit(sscc[:-1]))
    world.ok(world.mfr, "supply.aggregate", {"children": [ref("C1"), ref("C2")], "parent": sscc})
    assert world.ledger.get(unit_key(sscc))["c"] == [ref("C1"), ref("C2")]
    world.refused_with(world.mfr, "supply.ship", {"items": [ref("C1")], "to": "distributor"}, Code.PACK_AGGREGATED)
    assert world.ship(world.mfr, [f"urn:epc:id:sscc:0614141.{sscc[0]}{sscc[8:17]}"], "distributor")["shipped"] == 3
    assert world.pack("C1")["t"] == "distributor" and world.pack("C3").get("t") is None
    world.receive(world.dist, [sscc])
    assert world.pack("C2")["h"] == "distributor"
    world.ok(world.dist, "supply.disaggregate", {"parent": sscc})
    assert "p" not in world.pack("C1") and "c" not in world.ledger.get(unit_key(sscc))
    world.ship(world.dist, [ref("C1")], "pharmacy")


# --- decommissioning ---------------------------------------------------------------------------------------

def test_dispense_at_the_pharmacy(world: World) -> None:
    world.commission(["P1"])
    world.to_pharmacy([ref("P1")])
    world.ok(world.pharmacy, "supply.decommission", {"items": [ref("P1")], "state": "supplied"})
    assert world.pack("P1")["s"] == "supplied"


def test_only_a_dispenser_may_supply(world: World) -> None:
    world.commission(["P2"])
    world.refused_with(world.mfr, "supply.decommission", {"items": [ref("P2")], "state": "supplied"},
                       Code.UNAUTHORISED)


def test_dispensing_an_expired_pack_is_refused(world: World) -> None:
    expiry = gs1.yymmd0_from_epoch_days((GENESIS_TIME_MS // DAY_MS) + 20)  # expires ~20 days after genesis
    world.commission(["X1"], lot="SHORT", expiry=expiry)
    world.to_pharmacy([ref("X1")])
    world.ledger.height += 25 * 86_400  # block times advance by 1 s per height: jump 25 days
    world.refused_with(world.pharmacy, "supply.decommission", {"items": [ref("X1")], "state": "supplied"},
                       Code.PACK_EXPIRED)
    world.ok(world.pharmacy, "supply.decommission", {"items": [ref("X1")], "state": "destroyed"})


def test_dispensing_a_recalled_pack_is_refused_and_recall_is_one_write(world: World) -> None:
    world.commission([f"R{i}" for i in range(50)], lot="BAD")
    world.to_pharmacy([ref("R1")])
    before = world.ledger.snapshot()
    result = world.ok(world.mfr, "supply.recall_lot", {"gtin": GTIN, "lot": "BAD", "reason": "contamination"})
    assert result["packs"] == 50
    after = world.ledger.snapshot()
    assert {k for k in after if before.get(k) != after[k]} == {lot_key(GTIN, "BAD"),
                                                              f"nonce/{world.mfr.public_hex}"}
    world.refused_with(world.pharmacy, "supply.decommission", {"items": [ref("R1")], "state": "supplied"},
                       Code.LOT_RECALLED)
    world.refused_with(world.mfr, "supply.ship", {"items": [ref("R2")], "to": "distributor"}, Code.LOT_RECALLED)


def test_regulator_may_recall_others_may_not(world: World) -> None:
    world.commission(["Q1"], lot="Q")
    world.refused_with(world.dist, "supply.recall_lot", {"gtin": GTIN, "lot": "Q", "reason": "x"}, Code.UNAUTHORISED)
    world.refused_with(world.mfr, "supply.recall_lot", {"gtin": GTIN, "lot": "NOPE", "reason": "x"}, Code.LOT_UNKNOWN)
    world.ok(world.regulator, "supply.recall_lot", {"gtin": GTIN, "lot": "Q", "reason": "inspection"})


def test_dispensing_a_stolen_pack_is_refused(world: World) -> None:
    world.commission(["T1"])
    world.to_pharmacy([ref("T1")])
    world.ok(world.pharmacy, "supply.decommission", {"items": [ref("T1")], "state": "stolen"})
    world.refused_with(world.pharmacy, "supply.decommission", {"items": [ref("T1")], "state": "supplied"},
                       Code.PACK_STOLEN)
    world.refused_with(world.pharmacy, "supply.undo", {"items": [ref("T1")], "state": "stolen"},
                       Code.UNDO_STATE_MISMATCH)


def test_withdrawn_product_cannot_be_dispensed(world: World) -> None:
    world.commission(["W1"])
    world.to_pharmacy([ref("W1")])
    world.ok(world.mfr, "supply.withdraw_product", {"gtin": GTIN, "reason": "marketing authorisation ended"})
    world.refused_with(world.pharmacy, "supply.decommission", {"items": [ref("W1")], "state": "supplied"},
                       Code.PRODUCT_WITHDRAWN)


def test_decommissioning_an_inactive_pack_is_refused(world: World) -> None:
    world.commission(["I1"])
    world.to_pharmacy([ref("I1")])
    world.ok(world.pharmacy, "supply.decommission", {"items": [ref("I1")], "state": "supplied"})
    world.refused_with(world.pharmacy, "supply.decommission", {"items": [ref("I1")], "state": "supplied"},
                       Code.PACK_INACTIVE)


def test_undo_within_the_window_by_the_same_party(world: World) -> None:
    world.commission(["U1"])
    world.to_pharmacy([ref("U1")])
    world.ok(world.pharmacy, "supply.decommission", {"items": [ref("U1")], "state": "supplied"})
    world.refused_with(world.pharmacy, "supply.undo", {"items": [ref("U1")], "state": "sample"},
                       Code.UNDO_STATE_MISMATCH)
    world.ok(world.pharmacy, "supply.undo", {"items": [ref("U1")], "state": "supplied"})
    assert world.pack("U1")["s"] == "active" and "u" not in world.pack("U1")


def test_undo_by_another_party_is_refused(world: World) -> None:
    world.commission(["U2"])
    world.to_pharmacy([ref("U2")])
    world.ok(world.pharmacy, "supply.decommission", {"items": [ref("U2")], "state": "supplied"})
    world.refused_with(world.hospital, "supply.undo", {"items": [ref("U2")], "state": "supplied"},
                       Code.UNDO_OTHER_PARTY)


def test_undo_after_the_window_is_refused(world: World) -> None:
    world.commission(["U3"])
    world.to_pharmacy([ref("U3")])
    world.ok(world.pharmacy, "supply.decommission", {"items": [ref("U3")], "state": "supplied"})
    world.ledger.height += 11 * 86_400
    world.refused_with(world.pharmacy, "supply.undo", {"items": [ref("U3")], "state": "supplied"},
                       Code.UNDO_WINDOW_EXCEEDED)


def test_locked_packs_unlock_any_time(world: World) -> None:
    world.commission(["K1"])
    world.ok(world.mfr, "supply.decommission", {"items": [ref("K1")], "state": "locked"})
    world.refused_with(world.mfr, "supply.ship", {"items": [ref("K1")], "to": "distributor"}, Code.PACK_LOCKED)
    world.ledger.height += 30 * 86_400
    world.ok(world.mfr, "supply.undo", {"items": [ref("K1")], "state": "locked"})


def test_members_need_a_supply_role(world: World) -> None:
    nurse = seeded_key("supply/nurse")
    assert world.ledger.enrol("hospital", nurse, ["nurse"]).code == 0
    with pytest.raises(LedgerError) as info:  # the node refuses it at admission ...
        world.ledger.admit(world.ledger.tx(nurse, "supply.verify", {"gtin": GTIN, "serial": "1"}))
    assert info.value.code == Code.UNAUTHORISED
    world.ledger._issued.clear()
    # ... and a block that carried it anyway would record the failure and nothing else
    world.refused_with(nurse, "supply.verify", {"gtin": GTIN, "serial": "1"}, Code.UNAUTHORISED)
    pharmacist = seeded_key("supply/pharmacist")
    assert world.ledger.enrol("pharmacy", pharmacist, ["pharmacist"]).code == 0
    world.commission(["M1"])
    world.to_pharmacy([ref("M1")])
    world.ok(pharmacist, "supply.decommission", {"items": [ref("M1")], "state": "supplied"})


# --- signed verification ----------------------------------------------------------------------------------

def test_verify_scan_records_the_verdict_and_raises_alerts(world: World) -> None:
    world.commission(["V1"])
    world.to_pharmacy([ref("V1")])
    scan = gs1.ProductIdentifier(GTIN, serial="V1", lot="L1", expiry=EXPIRY).element_string(symbology_identifier=True)
    receipt = world.run(world.pharmacy, "supply.verify", {"scan": scan})
    assert receipt.code == 0 and receipt.result["verified"] is True and receipt.events == ()
    world.ok(world.pharmacy, "supply.decommission", {"items": [ref("V1")], "state": "supplied"})
    receipt = world.run(world.hospital, "supply.verify", {"scan": scan})
    assert receipt.result["reasons"] == ["ALREADY_DECOMMISSIONED"]
    assert [e["attrs"]["kind"] for e in receipt.events] == ["possible_clone"]
    assert world.pack("V1")["e"][-1][0] == "verify"
    receipt = world.run(world.pharmacy, "supply.verify", {"gtin": GTIN, "serial": "FAKE-1"})
    assert receipt.result["reasons"] == ["UNKNOWN_SERIAL"]
    assert receipt.events[0]["attrs"]["kind"] == "unknown_serial"
    assert receipt.events[0]["attrs"]["manufacturer"] == "manufacturer"
