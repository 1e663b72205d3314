"""Multi-party EPCIS capture, idempotency and locations through a real node, HTTP on loopback, the Python client
and the CLI: the story document (a manufacturer's, a distributor's and a pharmacy's events in one file)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from careledger.api.server import BackgroundServer
from careledger.client import ClientError
from careledger.client.supply import SupplyClient
from careledger.supply.epcis_export import check_document
from support.cli import run_cli
from support.epcis import (
    PHARMACY_PARTY,
    PHARMACY_SITE,
    STORY,
    STORY_GTIN,
    STORY_SSCC,
    story_consortium,
    story_text,
)


@pytest.fixture
def consortium() -> Any:  # overrides conftest's: the story's GS1 prefixes
    return story_consortium("api-story")


@pytest.fixture
def api(node: Any) -> Iterator[SupplyClient]:
    with BackgroundServer(node) as server, SupplyClient(server.url) as client:
        yield client


def ok(result: dict[str, Any]) -> Any:
    assert result["receipt"]["code"] == 0, result["receipt"]
    return result["receipt"]["result"]


def test_the_story_imports_through_one_call_and_again_is_already_captured(api: SupplyClient, consortium: Any) -> None:
    mfr, dist, pharmacy, regulator = (consortium.admin(o) for o in ("manufacturer", "distributor", "pharmacy",
                                                                    "regulator"))
    ok(api.register_product(mfr, STORY_GTIN, "Brufen 600 mg x 30"))
    # the pharmacy's GLNs fall under no member's prefix: the regulator registers them for it
    unknown = api.epcis_capture(dist, story_text())
    assert unknown["success"] is False and unknown["errors"][0]["name"] == "PARTY_UNKNOWN"
    assert unknown["errors"][0]["message"].startswith("event 5:")
    for gln, role in ((PHARMACY_SITE, "pharmacy"), (PHARMACY_PARTY, "party")):
        ok(api.set_location(regulator, gln, "High Street Pharmacy", role, org="pharmacy",
                            address={"city": "Cork", "country": "IE"}))
    assert api.location(PHARMACY_SITE)["org"] == "pharmacy"
    assert [loc["gln"] for loc in api.locations(org="pharmacy")] == sorted([PHARMACY_SITE, PHARMACY_PARTY])
    # the distributor records the whole document; the other members' events wait for them
    job = api.epcis_capture(dist, story_text())
    assert job["success"] is True, job
    cap = job["captureID"]
    assert job["receipt"]["result"]["pending"] == 8 and job["capture"]["confirmed"] == ["distributor"]
    assert job["capture"]["pending_orgs"] == ["distributor", "manufacturer", "pharmacy"]
    assert [c["id"] for c in api.captures(awaiting="manufacturer")] == [cap]
    assert api.captures(awaiting="distributor") == [] and api.captures(awaiting="hospital") == []
    with pytest.raises(ClientError) as info:
        api.pack(STORY_GTIN, "BR0001")
    assert info.value.http_status == 404
    # the same document again: already captured, answered with the original capture, nothing written
    height = api.status()["height"]
    again = api.epcis_capture(mfr, story_text())
    assert again == {"captureID": cap, "captureIDs": [cap], "status": "already_captured"}
    assert api.status()["height"] == height
    # a document repeating some of the events is refused naming them
    doc = json.loads(story_text())
    doc["epcisBody"]["eventList"] = doc["epcisBody"]["eventList"][:2]
    doc["epcisBody"]["eventList"][1] = {**doc["epcisBody"]["eventList"][1], "eventID": "urn:uuid:new-one"}
    with pytest.raises(ClientError) as info:
        api.epcis_capture(mfr, doc)
    assert (info.value.name, info.value.http_status) == ("EPCIS_DUPLICATE_EVENTS", 409)
    # each member confirms its part
    assert ok(api.epcis_confirm(mfr, cap))["applied"] == 6
    assert api.pack(STORY_GTIN, "BR0001")["in_transit_to"] == "pharmacy"
    refused = api.epcis_confirm(mfr, cap)
    assert refused["receipt"]["name"] == "NOTHING_TO_CONFIRM"
    assert ok(api.epcis_confirm(pharmacy, cap))["status"] == "complete"
    assert api.pack(STORY_GTIN, "BR0001")["state"] == "supplied"
    assert api.capture(cap)["status"] == "complete" and api.captures(status="pending") == []
    assert api.capture_job(cap)["capture"]["status"] == "complete"


def test_location_refusals_and_reads_over_http(api: SupplyClient, consortium: Any) -> None:
    dist = consortium.admin("distributor")
    refused = api.set_location(dist, "5099151000002", "Not ours", "warehouse")
    assert refused["receipt"]["name"] == "GLN_NOT_OWNED"
    with pytest.raises(ClientError) as info:
        api.set_location(dist, "0399990000017", "Bad check digit", "warehouse")
    assert info.value.name == "BAD_CHECK_DIGIT"
    with pytest.raises(ClientError) as info:
        api.location("0399990000016")
    assert info.value.http_status == 404
    with pytest.raises(ClientError) as info:
        api.capture("ab" * 32)
    assert info.value.http_status == 404
    short = httpx.get(f"{api._http.base_url}/v1/supply/locations/12345")
    assert short.status_code == 400, short.text


def test_cli_locations_confirmation_and_prefixes(api: SupplyClient, node_home: Any, consortium: Any,
                                                  tmp_path: Path) -> None:
    base = ["--home", str(node_home.path), "--url", str(api._http.base_url)]

    def cli(*args: str, code: int = 0) -> str:
        result = run_cli(*args, *base)
        assert result.exit_code == code, result.output
        return result.output

    ok(api.register_product(consortium.admin("manufacturer"), STORY_GTIN, "Brufen 600 mg x 30"))
    for gln, role in ((PHARMACY_SITE, "pharmacy"), (PHARMACY_PARTY, "party")):
        cli("supply", "location", gln, "--name", "High Street Pharmacy", "--role", role, "--org", "pharmacy",
            "--city", "Cork", "--country", "IE", "--as", "regulator-admin")
    cli("supply", "location", "0399990000016", "--name", "DC East", "--role", "warehouse",
        "--as", "distributor-admin")
    cli("supply", "location", "5099151000002", "--name", "Not ours", "--role", "warehouse",
        "--as", "distributor-admin", code=3)
    assert '"Cork"' in cli("supply", "locations", PHARMACY_SITE)
    assert "0399990000016" in cli("supply", "locations", "--org", "distributor")
    imported = json.loads(cli("--json", "supply", "epcis", "import", str(STORY), "--as", "distributor-admin"))
    cap = imported["captureID"]
    assert json.loads(cli("--json", "supply", "captures", "--awaiting", "pharmacy"))["captures"][0]["id"] == cap
    again = json.loads(cli("--json", "supply", "epcis", "import", str(STORY), "--as", "pharmacy-admin"))
    assert again["status"] == "already_captured"
    cli("supply", "confirm", cap, "--as", "manufacturer-admin")
    cli("supply", "confirm", cap, "--as", "manufacturer-admin", code=3)  # nothing left to confirm
    cli("supply", "confirm", cap, "--reject", "--as", "pharmacy-admin")
    assert json.loads(cli("--json", "supply", "captures", cap))["status"] == "rejected"
    # governance: the pharmacy gets a GS1 Company Prefix (an overlapping one is refused)
    cli("governance", "propose-prefixes", "pharmacy", "50991515", "--as", "manufacturer-admin", code=3)
    out = cli("--json", "governance", "propose-prefixes", "pharmacy", "4012345", "--as", "manufacturer-admin")
    assert json.loads(out)["receipt"]["result"]["status"] == "open"


def test_alerts_from_epcis_captures_name_their_subjects_and_reach_the_manufacturer(api: SupplyClient,
                                                                                   consortium: Any) -> None:
    mfr, pharmacy, regulator = (consortium.admin(o) for o in ("manufacturer", "pharmacy", "regulator"))
    ok(api.register_product(mfr, STORY_GTIN, "Brufen 600 mg x 30"))
    ok(api.set_location(regulator, PHARMACY_SITE, "High Street Pharmacy", "pharmacy", org="pharmacy"))
    events = json.loads(story_text())["epcisBody"]["eventList"]
    assert api.epcis_capture(mfr, document_of(events[:3]))["success"] is True  # the case ships to the distributor
    site = {"id": "urn:epc:id:sgln:4012345.00001.0"}
    wrong = {**events[3], "readPoint": site, "bizLocation": site}  # the pharmacy receives the distributor's case
    # captured by the pharmacy itself: refused at once
    job = api.epcis_capture(pharmacy, document_of([{**wrong, "eventID": "urn:uuid:wrong-1"}]))
    assert job["success"] is False and job["errors"][0]["name"] == "NOT_CONSIGNEE"
    # captured by the manufacturer (its sender), then confirmed by the pharmacy: refused at confirmation
    cap = api.epcis_capture(mfr, document_of([{**wrong, "eventID": "urn:uuid:wrong-2"}]))
    assert cap["success"] is True and cap["receipt"]["result"]["pending_orgs"] == ["pharmacy"]
    assert api.epcis_confirm(pharmacy, cap["captureID"])["receipt"]["name"] == "NOT_CONSIGNEE"
    seen = api.alerts(mfr)["alerts"]
    assert [(a["kind"], a["tx_type"]) for a in seen] == [("receipt_by_non_consignee", "supply.epcis_capture"),
                                                       ("receipt_by_non_consignee", "supply.epcis_confirm")]
    for alert in seen:
        assert alert["subjects"] == [STORY_SSCC] and alert["gtins"] == [STORY_GTIN]
        assert alert["lots"] == [f"{STORY_GTIN}/B2306A"] and alert["manufacturers"] == ["manufacturer"]
        assert alert["org"] == "pharmacy" and alert["message"].startswith("event 0:")
    assert len(api.alerts(regulator, party="pharmacy", gtin=STORY_GTIN)["alerts"]) == 2
    assert api.alerts(regulator, party="manufacturer")["alerts"] == []
    assert api.alerts(regulator, gtin="0" + STORY_GTIN[1:-1] + "0")["alerts"] == []
    last = seen[-1]["time_ms"]
    assert len(api.alerts(regulator, from_ms=last)["alerts"]) == 1
    assert len(api.alerts(regulator, to_ms=last)["alerts"]) == 1


def document_of(events: list[dict[str, Any]]) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(story_text())
    doc["epcisBody"]["eventList"] = events
    return doc


def test_captured_events_answer_the_epcis_query_parameters_verbatim(api: SupplyClient, consortium: Any) -> None:
    mfr, dist, regulator = (consortium.admin(o) for o in ("manufacturer", "distributor", "regulator"))
    ok(api.register_product(mfr, STORY_GTIN, "Brufen 600 mg x 30"))
    for gln, role in ((PHARMACY_SITE, "pharmacy"), (PHARMACY_PARTY, "party")):
        ok(api.set_location(regulator, gln, "High Street Pharmacy", role, org="pharmacy"))
    story = json.loads(story_text())["epcisBody"]["eventList"]
    cap = api.epcis_capture(dist, story_text())["captureID"]
    ok(api.epcis_confirm(mfr, cap))

    def ids(**params: Any) -> list[Any]:
        doc = api.epcis_query(**params)
        assert check_document(doc) == [], check_document(doc)
        return [story.index({k: v for k, v in e.items() if not k.startswith("careledger:")})
                for e in doc["epcisBody"]["queryResults"]["resultsBody"]["eventList"]]

    everything = api.epcis_query()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert [e["careledger:status"] for e in everything] == ["applied"] * 6 + ["pending"] * 2
    assert {e["careledger:captureID"] for e in everything} == {cap}
    assert everything[2] == {**story[2], "careledger:status": "applied", "careledger:captureID": cap}  # verbatim
    assert ids() == list(range(8))
    assert ids(EQ_bizStep="shipping") == [2, 5]
    assert ids(EQ_bizStep="urn:epcglobal:cbv:bizstep:receiving") == [3, 6]
    assert ids(GE_eventTime="2023-06-03T15:15:00Z", LT_eventTime="2023-06-06T07:30:00Z") == [3, 4, 5]
    assert ids(GE_eventTime="2023-06-06T09:30:00+02:00") == [6, 7]  # offsets compare as instants
    assert ids(EQ_bizLocation="urn:epc:id:sgln:039999.000001.0") == [3, 4]
    assert ids(EQ_readPoint="https://id.gs1.org/414/0399990000016") == [3, 4, 5]  # any form of the same GLN
    assert ids(MATCH_parentID=["urn:epc:id:sscc:5099151.0000000000"]) == [1, 4]
    assert ids(MATCH_epc=["urn:epc:id:sscc:5099151.0000000000"], perPage=50) == [2, 3]  # epcList, childEPCs
    assert ids(MATCH_anyEPC=["urn:epc:id:sscc:5099151.0000000000"]) == [1, 2, 3, 4]
    assert ids(MATCH_epc=[f"https://id.gs1.org/01/{STORY_GTIN}/21/BR0001"], EQ_bizStep="dispensing",
               EQ_readPoint=PHARMACY_SITE) == [7]
    assert ids(MATCH_anyEPC=["urn:epc:idpat:sgtin:5099151.001505.*"], eventType="AggregationEvent") == [1, 4]
    assert ids(eventType="TransformationEvent") == []
    # pages
    first = api.epcis_query(perPage=3)["epcisBody"]["queryResults"]
    assert len(first["resultsBody"]["eventList"]) == 3 and first["careledger:nextPageToken"] == "3"
    assert ids(perPage=3, nextPageToken="6") == [6, 7]
    link = httpx.get(f"{api._http.base_url}/v1/epcis/events", params={"perPage": 5, "EQ_bizStep": "shipping"})
    assert "Link" not in link.headers
    link = httpx.get(f"{api._http.base_url}/v1/epcis/events", params={"perPage": 5})
    assert link.headers["Link"] == '</v1/epcis/events?perPage=5&nextPageToken=5>; rel="next"'
    # MATCH_epc with only EQ_bizStep, times and eventType answers the items' histories (contents included)
    history = api.epcis_events([f"{STORY_GTIN}/BR0003"], EQ_bizStep="receiving")
    received = history["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert len(received) == 1 and "careledger:status" not in received[0]
    with pytest.raises(ClientError) as info:
        api.epcis_query(GE_eventTime="yesterday")
    assert (info.value.name, info.value.http_status) == ("BAD_REQUEST", 400)
    with pytest.raises(ClientError) as info:
        api.epcis_query(MATCH_anyEPC=["urn:epc:id:sgtin:bad"])
    assert info.value.name == "MALFORMED_URN"
