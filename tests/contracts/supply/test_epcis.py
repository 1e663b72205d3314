"""EPCIS 2.0: schema and CBV validation with the official files, the GS1 US DSCSA scenario end to end,
all-or-nothing capture, and export that validates against the official schema."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from careledger.contracts.supply import cbv, epcis
from careledger.contracts.supply.layout import pack_key
from careledger.core.errors import Code, InvalidTx
from careledger.supply.epcis_export import check_document, export_document, filter_events
from support.epcis import (
    CAPTURE_DOCUMENTS,
    CASE_GTIN,
    DSCSA,
    INVALID_DOCUMENTS,
    ITEM_GTIN,
    SCHEMA_INVALID_DOCUMENTS,
    dscsa_ledger_world,
    dscsa_text,
)
from support.supply import World


@pytest.fixture
def dscsa_world() -> World:
    return dscsa_ledger_world()


def capture(world: World, key: Any, document: str) -> Any:
    return world.run(key, "supply.epcis_capture", {"document": document})


# --- validation ----------------------------------------------------------------------------------------

SCHEMA_VALID = sorted(p for p in CAPTURE_DOCUMENTS.glob("*.json") if p.name not in SCHEMA_INVALID_DOCUMENTS)


def test_example_documents_validate_against_the_vendored_schema() -> None:
    assert len(SCHEMA_VALID) == 37
    for f in [*SCHEMA_VALID, DSCSA]:
        assert epcis.schema_errors(json.loads(f.read_text())) == [], f.name


def test_the_compiled_schema_gives_the_interpreted_schemas_verdicts() -> None:
    """fastjsonschema decides capture; jsonschema's Draft 7 validator only explains a refusal. Both give the
    same verdict on every example, invalid and event file of OpenEPCIS's set, the DSCSA and story documents."""
    from support.epcis import STORY

    capture = CAPTURE_DOCUMENTS.parent
    files = sorted([*capture.rglob("*.json"), DSCSA, STORY])
    verdicts = {False: 0, True: 0}
    for f in files:
        doc = json.loads(f.read_text())
        verdict = epcis.is_schema_valid(doc)
        assert verdict == epcis.validator().is_valid(doc), f.name
        verdicts[verdict] += 1
    assert verdicts[True] >= 38 and verdicts[False] >= 10, verdicts


def test_an_example_without_a_sensor_report_type_is_refused_by_the_schema() -> None:
    """OpenEPCIS files this one as valid; GS1's 2.0 schema requires sensorReport.type."""
    for name in SCHEMA_INVALID_DOCUMENTS:
        errors = epcis.schema_errors(json.loads((CAPTURE_DOCUMENTS / name).read_text()))
        assert any("'type' is a required property" in e for e in errors), errors


@pytest.mark.parametrize(("name", "code", "words"), [
    ("ObjectEvent_with_invalid_action.json", Code.EPCIS_SCHEMA_INVALID, "'CREATE' is not one of"),
    ("ObjectEvent_without_action_and_eventTime.json", Code.EPCIS_SCHEMA_INVALID, "'eventTime' is a required property"),
    ("ObjectEvent_with_non_standard_disposition.json", Code.EPCIS_CBV_INVALID, "'in_transport'"),
])
def test_openepcis_invalid_documents_are_refused_with_clear_errors(dscsa_world: World, name: str, code: Code,
                                                                    words: str) -> None:
    text = (INVALID_DOCUMENTS / name).read_text()
    with pytest.raises(InvalidTx) as info:
        epcis.normalise_document(text)
    assert info.value.code == code
    assert words in info.value.message
    exc = dscsa_world.invalid_with(dscsa_world.mfr, "supply.epcis_capture", {"document": text}, code)
    assert words in exc.message


def test_cbv_spellings_and_extensions() -> None:
    assert cbv.normalise_biz_step("urn:epcglobal:cbv:bizstep:shipping") == "shipping"
    assert cbv.normalise_biz_step("https://ref.gs1.org/cbv/BizStep-receiving") == "receiving"
    assert cbv.normalise_disposition("urn:epcglobal:cbv:disp:in_transit") == "in_transit"
    assert cbv.normalise_biz_step("http://epcis.example.org/hc/bizstep/summarising") == \
        "http://epcis.example.org/hc/bizstep/summarising"
    for bad in ("commision", "urn:epcglobal:cbv:bizstep:shiping", "https://ref.gs1.org/cbv/BizStep-nope"):
        with pytest.raises(cbv.VocabularyError):
            cbv.normalise_biz_step(bad)


@pytest.mark.parametrize(("mutate", "code"), [
    (lambda d: d["epcisBody"]["eventList"][0].update(bizStep="commision"), Code.EPCIS_CBV_INVALID),
    (lambda d: d["epcisBody"]["eventList"][3]["bizTransactionList"][0].update(type="purchase_order"),
     Code.EPCIS_CBV_INVALID),
    (lambda d: d["epcisBody"]["eventList"][0].update(eventTimeZoneOffset="-5:00"), Code.EPCIS_SCHEMA_INVALID),
    (lambda d: d["epcisBody"]["eventList"][2].pop("parentID"), Code.EPCIS_UNSUPPORTED),
    (lambda d: d["epcisBody"]["eventList"][0]["epcList"].append("urn:epc:id:sgtin:030001.0012345"),
     Code.MALFORMED_URN),
    (lambda d: d["epcisBody"]["eventList"][0]["ilmd"].pop("cbvmda:lotNumber"), Code.EPCIS_UNSUPPORTED),
    (lambda d: d.update(type="EPCISQueryDocument"), Code.EPCIS_SCHEMA_INVALID),
])
def test_bad_documents_write_nothing(dscsa_world: World, mutate: Any, code: Code) -> None:
    doc = json.loads(dscsa_text())
    mutate(doc)
    dscsa_world.invalid_with(dscsa_world.mfr, "supply.epcis_capture", {"document": json.dumps(doc)}, code)


# --- the DSCSA scenario ----------------------------------------------------------------------------------

def test_dscsa_scenario_runs_end_to_end(dscsa_world: World) -> None:
    w = dscsa_world
    receipt = capture(w, w.mfr, dscsa_text())
    assert receipt.code == 0, receipt.message
    assert receipt.result["events"] == 4
    items = [w.pack(s, ITEM_GTIN) for s in ("11", "12", "13", "14")]
    case = w.pack("110", CASE_GTIN)
    # E8 shipped the case to the owning party 039999…: the distributor holds that company prefix
    assert case["t"] == "distributor" and all(i["t"] == "distributor" and i["p"] == f"{CASE_GTIN}/110" for i in items)
    assert case["c"] == [f"{ITEM_GTIN}/{s}" for s in ("11", "12", "13", "14")]
    query = export_document(w.ledger.state, [f"{CASE_GTIN}/110"], 0, query_name="SimpleEventQuery")
    assert check_document(query) == []
    events = query["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert len(filter_events(events, biz_step="shipping")) == 5  # the case and its four packs
    # the distributor receives the case (and so its contents), unpacks it and ships two packs on
    w.receive(w.dist, ["urn:epc:id:sgtin:030001.1012345.110"])
    w.ok(w.dist, "supply.disaggregate", {"parent": "https://id.gs1.org/01/10300010123452/21/110"})
    w.ship(w.dist, [f"{ITEM_GTIN}/11", f"{ITEM_GTIN}/12"], "pharmacy")
    w.receive(w.pharmacy, [f"{ITEM_GTIN}/11", f"{ITEM_GTIN}/12"])
    w.ok(w.pharmacy, "supply.decommission", {"items": [f"{ITEM_GTIN}/11"], "state": "supplied"})
    assert w.pack("11", ITEM_GTIN)["s"] == "supplied"
    # its whole history exports as a schema-valid EPCIS document
    doc = export_document(w.ledger.state, [f"{ITEM_GTIN}/11"], w.ledger.env().time_ms)
    assert check_document(doc) == []
    steps = [e.get("bizStep") for e in doc["epcisBody"]["eventList"]]
    assert steps == ["commissioning", "packing", "shipping", "receiving", "unpacking", "shipping", "receiving",
                     "dispensing"]
    first = doc["epcisBody"]["eventList"][0]
    assert first["epcList"] == ["urn:epc:id:sgtin:030001.0012345.11"]
    assert first["ilmd"] == {"cbvmda:itemExpirationDate": "2025-03-27", "cbvmda:lotNumber": "A123"}


def test_capture_is_all_or_nothing(dscsa_world: World) -> None:
    w = dscsa_world
    doc = json.loads(dscsa_text())
    doc["epcisBody"]["eventList"][3]["destinationList"][0]["destination"] = "urn:epc:id:sgln:077777.999999.0"
    receipt = w.refused_with(w.mfr, "supply.epcis_capture", {"document": json.dumps(doc)}, Code.PARTY_UNKNOWN)
    assert receipt.message.startswith("event 3:")
    assert w.ledger.get(pack_key(ITEM_GTIN, "11")) is None  # the commissioning events rolled back too


def test_capturing_a_document_twice_is_already_captured(dscsa_world: World) -> None:
    w = dscsa_world
    first = capture(w, w.mfr, dscsa_text())
    assert first.code == 0
    exc = w.refused_at_admission(w.mfr, "supply.epcis_capture", {"document": dscsa_text()},
                                 Code.EPCIS_ALREADY_CAPTURED)
    assert first.result["capture"] in exc.message


def test_events_out_of_order_in_a_document(dscsa_world: World) -> None:
    doc = json.loads(dscsa_text())
    doc["epcisBody"]["eventList"][2]["eventTime"] = "2023-03-27T06:40:16Z"  # packing before commissioning
    receipt = dscsa_world.refused_with(dscsa_world.mfr, "supply.epcis_capture", {"document": json.dumps(doc)},
                                       Code.EVENT_OUT_OF_ORDER)
    assert "event 2" in receipt.message


def test_event_in_the_future_is_refused(dscsa_world: World) -> None:
    doc = json.loads(dscsa_text())
    doc["epcisBody"]["eventList"][0]["eventTime"] = "2099-01-01T00:00:00Z"
    dscsa_world.refused_with(dscsa_world.mfr, "supply.epcis_capture", {"document": json.dumps(doc)},
                             Code.EVENT_OUT_OF_ORDER)


def test_the_consignee_records_its_manufacturers_document_pending_the_manufacturer(dscsa_world: World) -> None:
    """The distributor records the ASN its manufacturer sent it: every event is the manufacturer's (its
    locations), so nothing applies until the manufacturer confirms."""
    w = dscsa_world
    result = w.ok(w.dist, "supply.epcis_capture", {"document": dscsa_text()})
    assert (result["applied"], result["pending"], result["pending_orgs"]) == (0, 4, ["manufacturer"])
    assert w.ledger.get(pack_key(ITEM_GTIN, "11")) is None
    assert w.ok(w.mfr, "supply.epcis_confirm", {"capture": result["capture"]})["status"] == "complete"
    assert w.ledger.get(pack_key(ITEM_GTIN, "11"))["t"] == "distributor"


def test_commissioning_another_companys_gtin_is_refused(dscsa_world: World) -> None:
    """An event at the distributor's own location that commissions the manufacturer's GTIN."""
    w = dscsa_world
    doc = json.loads(dscsa_text())
    for event in doc["epcisBody"]["eventList"][:3]:
        event["readPoint"] = event["bizLocation"] = {"id": "urn:epc:id:sgln:039999.345678.0"}
    receipt = w.refused_with(w.dist, "supply.epcis_capture", {"document": json.dumps(doc)}, Code.GTIN_NOT_OWNED)
    assert receipt.message.startswith("event 0:")


def test_unsupported_event_types_are_refused(dscsa_world: World) -> None:
    text = (CAPTURE_DOCUMENTS / "TransformationEvent.json").read_text()
    exc = dscsa_world.invalid_with(dscsa_world.mfr, "supply.epcis_capture", {"document": text},
                                   Code.EPCIS_UNSUPPORTED)
    assert "event" in exc.message


def test_export_round_trips_through_capture(dscsa_world: World) -> None:
    w = dscsa_world
    assert capture(w, w.mfr, dscsa_text()).code == 0
    exported = export_document(w.ledger.state, [f"{CASE_GTIN}/110"], 0)
    ops = epcis.normalise_document(json.dumps(exported)).ops
    assert [op.op for op in ops][:3] == ["commission", "commission", "commission"]
    assert "ship" in [op.op for op in ops]


def test_event_time_parsing() -> None:
    assert epcis.event_time_ms("1970-01-01T00:00:01Z") == 1000
    assert epcis.event_time_ms("2023-03-27T06:45:16-05:00") == epcis.event_time_ms("2023-03-27T11:45:16Z")
    assert epcis.format_time(1000) == "1970-01-01T00:00:01.000Z"
    doc = copy.deepcopy({"a": 1})
    assert doc == {"a": 1}
