"""Demo chapters for the drug supply chain: a pack's life from commissioning to dispensing, a batch
recall, and a counterfeit caught at the pharmacy (appended to :data:`careledger.demo.story.CHAPTERS`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from careledger.client.supply import SupplyClient
from careledger.contracts.supply import gs1

if TYPE_CHECKING:
    from careledger.demo.story import Story

GTIN_BODY = "0061414100042"
GTIN = GTIN_BODY + str(gs1.check_digit(GTIN_BODY))
EXPIRY = "301231"
SSCC_BODY = "10614141" + "000000042"
SSCC = SSCC_BODY + str(gs1.check_digit(SSCC_BODY))


def _supply(s: Story) -> SupplyClient:
    client = s.facts.get("supply_client")
    if client is None:
        client = s.facts["supply_client"] = SupplyClient(str(s.client._http.base_url))
    assert isinstance(client, SupplyClient)
    return client


def _ref(serial: str) -> str:
    return f"{GTIN}/{serial}"


def _verdict(s: Story, verdict: dict[str, Any]) -> None:
    colour = "green" if verdict["verified"] else "bold red"
    reasons = ", ".join(verdict["reasons"]) or "genuine, active, in date"
    codes = " ".join(verdict.get("nmvs_codes", []))
    dscsa = verdict["dscsa"].get("verificationFailureReason", "verified")
    s.console.print(f"    [{colour}]{verdict['result']}[/] {reasons}  [dim]EU FMD {codes or '-'} · DSCSA {dscsa}[/]")


def chapter_supply_pack_life(s: Story) -> None:
    c = s.consortium
    acme, distrib, pharmacy = c.admin("acme-pharma"), c.admin("medi-distrib"), c.admin("high-street-pharmacy")
    s.chapter("Supply chain: a pack's life from the production line to the patient")
    s.step(f"Acme registers amoxicillin 500 mg (GTIN {GTIN}); only the holder of GS1 prefix 0614141 may.")
    s.send(acme, "supply.register_product", {"dosage_form": "capsule", "gtin": GTIN, "name": "Amoxicillin 500 mg x 21",
                                             "ndc": "0614-1410-04", "strength": "500 mg"})
    s.step("The packaging line commissions lot A42 (expiry 2030-12-31) with randomised serials; a real line "
           "sends up to 10,000 per transaction.")
    serials = ["7Q4XK2", "M9D3PZ", "C8R2TW", "H5N7LB", "Z2V6FJ", "K3T8YA"]
    s.send(acme, "supply.commission", {"expiry": EXPIRY, "gtin": GTIN, "lot": "A42", "serials": serials})
    s.step(f"The six packs go into a shipping case, SSCC {SSCC}, which ships to MediDistrib: one operation "
           "moves the case and its contents.")
    s.send(acme, "supply.aggregate", {"children": [_ref(x) for x in serials], "parent": SSCC})
    s.send(acme, "supply.ship", {"items": [SSCC], "to": "medi-distrib"})
    s.step("MediDistrib receives the case, unpacks it and ships two packs to High Street Pharmacy.")
    s.send(distrib, "supply.receive", {"items": [f"urn:epc:id:sscc:0614141.{SSCC[0]}{SSCC[8:17]}"]})
    s.send(distrib, "supply.disaggregate", {"parent": SSCC})
    s.send(distrib, "supply.ship", {"items": [_ref("7Q4XK2"), _ref("M9D3PZ")], "to": "high-street-pharmacy"})
    s.send(pharmacy, "supply.receive", {"items": [_ref("7Q4XK2"), _ref("M9D3PZ")]})
    scan = gs1.ProductIdentifier(GTIN, serial="7Q4XK2", lot="A42", expiry=EXPIRY).element_string(
        symbology_identifier=True)
    s.step(f"At the counter the pharmacist scans the DataMatrix {scan.replace(chr(29), '<GS>')!r}:")
    result = s.send(s.person("pharmacist"), "supply.verify", {"scan": scan})
    _verdict(s, result["receipt"]["result"])
    s.step("…and dispenses it. The ledger knows its whole custody chain.")
    s.send(s.person("pharmacist"), "supply.decommission", {"items": [_ref("7Q4XK2")], "state": "supplied"})
    pack = _supply(s).pack(GTIN, "7Q4XK2")
    chain = " → ".join(f"{c['org']}" for c in pack["custody"])
    s.console.print(f"    state [bold]{pack['state']}[/], custody {chain}")
    doc = _supply(s).epcis_export([_ref("7Q4XK2")])
    steps = [e.get("bizStep") for e in doc["epcisBody"]["eventList"]]
    s.console.print(f"    its history exports as an EPCIS 2.0 document of {len(steps)} events: {', '.join(steps)}")
    s.facts["supply_serials"] = serials


def chapter_supply_recall(s: Story) -> None:
    c = s.consortium
    acme, pharmacy = c.admin("acme-pharma"), c.admin("high-street-pharmacy")
    s.chapter("Supply chain: a batch recall")
    s.step("Quality control finds a contamination in lot A42. Acme recalls it: one write, however many packs.")
    result = s.send(acme, "supply.recall_lot", {"gtin": GTIN, "lot": "A42", "reason": "particulate contamination"})
    s.console.print(f"    {result['receipt']['result']['packs']} packs of lot A42 are recalled at once")
    s.step("The pharmacy's second pack of the lot can no longer be dispensed: the ledger refuses it.")
    s.send(s.person("pharmacist"), "supply.decommission", {"items": [_ref("M9D3PZ")], "state": "supplied"},
           expect=3018)
    _verdict(s, _supply(s).verify(gtin=GTIN, serial="M9D3PZ"))
    s.step("The pharmacy destroys it instead.")
    s.send(pharmacy, "supply.decommission", {"items": [_ref("M9D3PZ")], "state": "destroyed"})
    s.step("MediDistrib's four packs stay blocked where they are: shipping one is refused, and raises an alert.")
    s.send(c.admin("medi-distrib"), "supply.ship", {"items": [_ref("C8R2TW")], "to": "st-marys"}, expect=3018)


def chapter_supply_counterfeit(s: Story) -> None:
    c = s.consortium
    s.chapter("Supply chain: a counterfeit caught at the pharmacy")
    s.step("A pack arrives at St Mary's pharmacy with a serial printed by a counterfeiter, copied from a pack "
           "that was already dispensed (7Q4XK2). The scan is recorded:")
    result = s.send(c.admin("st-marys"), "supply.verify", {"gtin": GTIN, "serial": "7Q4XK2"})
    _verdict(s, result["receipt"]["result"])
    s.step("Another carries a serial Acme never issued:")
    result = s.send(c.admin("st-marys"), "supply.verify", {"gtin": GTIN, "serial": "FAKE0001", "lot": "A42"})
    _verdict(s, result["receipt"]["result"])
    s.step("The regulator reads its alerts with a signed request (no session; one Authorization header signed in "
           "the 'request' domain); the manufacturer sees those about its own products, the pharmacy none.")
    alerts = _supply(s).alerts(c.admin("medicines-agency"))["alerts"]
    for alert in alerts:
        s.console.print(f"    [yellow]{alert['kind']}[/] {', '.join(alert['subjects'])} by {alert['org']} "
                        f"(block {alert['height']}{', ' + alert['nmvs_code'] if alert['nmvs_code'] else ''})")
    mine = _supply(s).alerts(c.admin("acme-pharma"))["alerts"]
    s.console.print(f"    Acme sees {len(mine)} alert(s) about its products")
    if len(alerts) < 3:
        from careledger.demo.story import DemoFailed

        raise DemoFailed(f"expected at least 3 supply alerts, got {len(alerts)}")


CHAPTERS = [chapter_supply_pack_life, chapter_supply_recall, chapter_supply_counterfeit]
