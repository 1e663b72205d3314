"""The supply chain through a real node, real HTTP on loopback and the Python client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from careledger.api.server import BackgroundServer
from careledger.client import ClientError
from careledger.client.supply import SupplyClient
from careledger.contracts.supply import gs1
from careledger.core.crypto import SigningKey
from careledger.supply.epcis_export import check_document
from careledger.vault.requests import sign_headers
from support.epcis import CASE_GTIN, DSCSA, INVALID_DOCUMENTS, ITEM_GTIN
from support.supply import GTIN, supply_consortium


@pytest.fixture
def consortium() -> Any:  # overrides conftest's: the manufacturer and distributor hold GS1 prefixes
    return supply_consortium("api")


@pytest.fixture
def api(node: Any) -> Iterator[SupplyClient]:
    with BackgroundServer(node) as server, SupplyClient(server.url) as client:
        yield client


def ok(result: dict[str, Any]) -> Any:
    assert result["receipt"]["code"] == 0, result["receipt"]
    return result["receipt"]["result"]


def test_pack_life_verification_and_alerts(api: SupplyClient, consortium: Any) -> None:
    mfr, dist, pharmacy = (consortium.admin(o) for o in ("manufacturer", "distributor", "pharmacy"))
    regulator = consortium.admin("regulator")
    ok(api.register_product(mfr, GTIN, "Amoxicillin 500 mg x 21", strength="500 mg", dosage_form="capsule"))
    assert api.product(GTIN)["owner"] == "manufacturer"
    assert ok(api.commission(mfr, GTIN, "L7", "301231", serials=["P1", "P2", "P3"]))["commissioned"] == 3
    assert api.lot(GTIN, "L7")["packs"] == 3
    items = [f"{GTIN}/P1", f"{GTIN}/P2"]
    ok(api.ship(mfr, items, "distributor"))
    ok(api.receive(dist, items))
    ok(api.ship(dist, items, "pharmacy"))
    ok(api.receive(pharmacy, items))
    # read-only verification by GTIN+serial, Digital Link and scanned element string
    pi = gs1.ProductIdentifier(GTIN, serial="P1", lot="L7", expiry="301231")
    for query in ({"gtin": GTIN, "serial": "P1", "lot": "L7", "expiry": "301231"}, {"dl": pi.digital_link()},
                  {"scan": pi.element_string(symbology_identifier=True)}):
        verdict = api.verify(**query)
        assert verdict["result"] == "VERIFIED", verdict
        assert verdict["pack"]["holder"] == "pharmacy"
        assert [c["org"] for c in verdict["custody"]] == ["manufacturer", "distributor", "pharmacy"]
    wrong = api.verify(gtin=GTIN, serial="P1", lot="L8")
    assert wrong["reasons"] == ["LOT_MISMATCH"] and wrong["nmvs_codes"] == ["NMVS_FE_LOT_13"]
    assert wrong["dscsa"] == {"verified": False, "verificationFailureReason": "No_match_GTIN_Serial_Lot"}
    # dispense, then the same serial turns up at another pharmacy scan: a possible clone
    ok(api.dispense(pharmacy, [f"{GTIN}/P1"]))
    clone = api.verify_scan(consortium.admin("hospital"), gtin=GTIN, serial="P1")
    assert clone["receipt"]["result"]["reasons"] == ["ALREADY_DECOMMISSIONED"]
    fake = api.verify_scan(pharmacy, gtin=GTIN, serial="COUNTERFEIT")
    assert fake["receipt"]["result"]["dscsa"]["verificationFailureReason"] == "No_match_GTIN_Serial"
    # a refused receipt by the wrong party is an alert, though it wrote nothing
    ok(api.ship(mfr, [f"{GTIN}/P3"], "distributor"))
    refused = api.receive(pharmacy, [f"{GTIN}/P3"])
    assert refused["receipt"]["name"] == "NOT_CONSIGNEE"
    assert api.pack(GTIN, "P3")["in_transit_to"] == "distributor"
    kinds = [a["kind"] for a in api.alerts(regulator)["alerts"]]
    assert kinds == ["possible_clone", "unknown_serial", "receipt_by_non_consignee"]
    assert [a["kind"] for a in api.alerts(mfr, kind="possible_clone")["alerts"]] == ["possible_clone"]
    with pytest.raises(ClientError) as info:
        api.alerts(pharmacy)
    assert info.value.name == "UNAUTHORISED" and info.value.http_status == 403
    unsigned = httpx.get(f"{api._http.base_url}/v1/supply/alerts")
    assert unsigned.status_code == 401 and unsigned.json()["error"]["name"] == "MISSING_SIGNATURE"
    headers = sign_headers(regulator, api.chain_id(), "GET", "/v1/supply/alerts?kind=other")
    tampered = httpx.get(f"{api._http.base_url}/v1/supply/alerts?kind=possible_clone", headers=headers)
    assert tampered.status_code == 401 and tampered.json()["error"]["name"] == "BAD_SIGNATURE"
    signed = sign_headers(regulator, api.chain_id(), "GET", "/v1/supply/alerts?kind=possible_clone")
    assert httpx.get(f"{api._http.base_url}/v1/supply/alerts?kind=possible_clone", headers=signed).status_code == 200
    again = httpx.get(f"{api._http.base_url}/v1/supply/alerts?kind=possible_clone", headers=signed)
    assert again.status_code == 409 and again.json()["error"]["name"] == "REQUEST_REPLAYED"  # accepted once
    stranger = SigningKey.generate()
    with pytest.raises(ClientError) as info:
        api.alerts(stranger)
    assert info.value.name == "UNKNOWN_SIGNER"
    # history and export
    history = api.pack(GTIN, "P1")["history"]
    assert [h["op"] for h in history] == ["commission", "ship", "receive", "ship", "receive", "decommission",
                                          "verify"]
    doc = api.epcis_export(["urn:epc:id:sgtin:0614141.000001.P1"])
    assert check_document(doc) == []
    assert api.item(pi.digital_link())["state"] == "supplied"


def test_bad_requests_have_stable_codes(api: SupplyClient, consortium: Any) -> None:
    with pytest.raises(ClientError) as info:
        api.verify(gtin=GTIN[:-1] + "0" if GTIN[-1] != "0" else GTIN[:-1] + "1", serial="1")
    assert info.value.name == "BAD_CHECK_DIGIT"
    with pytest.raises(ClientError) as info:
        api.verify(dl="https://id.gs1.org/01/123/21/1")
    assert info.value.name == "MALFORMED_DIGITAL_LINK"
    with pytest.raises(ClientError) as info:
        api.ship(consortium.admin("manufacturer"), ["urn:epc:id:sgtin:bad"], "distributor")
    assert info.value.name == "MALFORMED_URN"
    with pytest.raises(ClientError) as info:
        api.product(GTIN)
    assert info.value.http_status == 404


def test_epcis_capture_query_and_export_over_http(api: SupplyClient, consortium: Any) -> None:
    mfr = consortium.admin("manufacturer")
    ok(api.register_product(mfr, ITEM_GTIN, "Drug X"))
    ok(api.register_product(mfr, CASE_GTIN, "Drug X, case"))
    bad = (INVALID_DOCUMENTS / "ObjectEvent_with_invalid_action.json").read_text()
    with pytest.raises(ClientError) as info:
        api.epcis_capture(mfr, bad)
    assert info.value.http_status == 400 and info.value.name == "EPCIS_SCHEMA_INVALID"
    assert "CREATE" in info.value.message
    job = api.epcis_capture(mfr, DSCSA.read_text())
    assert job["success"] is True, job
    assert api.pack(ITEM_GTIN, "12")["in_transit_to"] == "distributor"
    events = api.epcis_events(["urn:epc:id:sgtin:030001.1012345.110"], EQ_bizStep="shipping")
    assert check_document(events) == []
    assert len(events["epcisBody"]["queryResults"]["resultsBody"]["eventList"]) == 5
    again = api.epcis_capture(mfr, DSCSA.read_text())
    assert again == {"captureID": job["captureID"], "captureIDs": [job["captureID"]], "status": "already_captured"}
    exported = api.epcis_export([f"{CASE_GTIN}/110"])
    assert check_document(exported) == []
    assert json.dumps(exported).count("commissioning") == 5


def test_cli_supply_commands(api: SupplyClient, node_home: Any, consortium: Any) -> None:
    from support.cli import run_cli

    base = ["--home", str(node_home.path), "--url", str(api._http.base_url)]

    def cli(*args: str, code: int = 0) -> str:
        result = run_cli("supply", *args, *base)
        assert result.exit_code == code, result.output
        return result.output

    cli("register", GTIN, "Amoxicillin", "--as", "manufacturer-admin", "--strength", "500 mg")
    cli("commission", GTIN, "--lot", "C1", "--expiry", "301231", "--serial", "K1", "--serial", "K2",
        "--as", "manufacturer-admin")
    cli("commission", GTIN, "--lot", "C1", "--expiry", "301231", "--serial", "K1", "--as", "manufacturer-admin",
        code=3)  # duplicate serial: the receipt fails, the command exits 3
    cli("ship", f"{GTIN}/K1", "--to", "pharmacy", "--as", "manufacturer-admin")
    cli("receive", f"{GTIN}/K1", "--as", "pharmacy-admin")
    assert "VERIFIED" in cli("verify", "--gtin", GTIN, "--serial", "K1")
    cli("dispense", f"{GTIN}/K1", "--as", "pharmacy-admin")
    assert "ALREADY_DECOMMISSIONED" in cli("verify", "--gtin", GTIN, "--serial", "K1", code=4)
    cli("verify", "--gtin", GTIN, "--serial", "K1", "--record-as", "hospital-admin", code=4)  # NOT VERIFIED
    assert '"supplied"' in cli("history", "urn:epc:id:sgtin:0614141.000001.K1")
    assert "possible_clone" in cli("alerts", "--as", "regulator-admin")
    assert "UNAUTHORISED" in cli("alerts", "--as", "pharmacy-admin", code=1)
    cli("recall", GTIN, "C1", "--reason", "test", "--as", "manufacturer-admin")
    assert '"EPCISDocument"' in cli("epcis", "export", f"{GTIN}/K1")
