"""EPCIS test data (vendored under tests/data/epcis) and the DSCSA world."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support import Ledger, make_consortium
from support.supply import World, supply_consortium

DATA = Path(__file__).resolve().parents[1] / "data" / "epcis"
DSCSA = DATA / "derived" / "GS1_US_Pharma_2_2_1_1-converted-to-EPCIS2-JSONLD.jsonld"
ITEM_GTIN, CASE_GTIN = "00300010123455", "10300010123452"
OPENEPCIS = DATA / "openepcis"  # OpenEPCIS test resources (Apache-2.0), their folder layout kept
CAPTURE_DOCUMENTS = OPENEPCIS / "2.0" / "EPCIS" / "JSON" / "Capture" / "Documents"
INVALID_DOCUMENTS = OPENEPCIS / "2.0" / "EPCIS" / "JSON" / "Capture" / "Invalid"
SCHEMA_INVALID_DOCUMENTS = ("SensorData_with_combined_events.json",)  # sensorReport without the required type


def dscsa_text() -> str:
    return DSCSA.read_text()


def dscsa_ledger_world() -> World:
    """A supply world with the two GTINs of the GS1 US DSCSA example registered by the manufacturer."""
    w = World(Ledger(supply_consortium("epcis")))
    w.register(ITEM_GTIN, "Drug X 10 mg tablets x 30")
    w.register(CASE_GTIN, "Drug X 10 mg tablets x 30, case of 4")
    return w


# --- the multi-party story: a manufacturer, a distributor and a pharmacy in one document ----------------------

STORY = DATA / "derived" / "multi-party-story.jsonld"
STORY_GTIN = "05099151015051"  # a real EU pack (Brufen 600 mg x 30; see tests/data/gs1)
STORY_SERIALS = [f"BR{n:04d}" for n in range(1, 7)]
STORY_SSCC = "050991510000000002"
PHARMACY_SITE, PHARMACY_PARTY = "4012345000016", "4012345000009"  # GLNs under no member's prefix


def story_text() -> str:
    return STORY.read_text()


def story_consortium(label: str = "story") -> Any:
    c = make_consortium(label=label)
    prefixes = {"manufacturer": ["5099151", "0614141", "030001"], "distributor": ["039999"]}
    for org in c.doc["organisations"]:
        org["gs1_company_prefixes"] = prefixes.get(org["id"], [])
    return c


def story_world() -> World:
    """The story's consortium: the product registered, and the pharmacy's site and party GLNs registered for it
    by the regulator (they fall under no member's GS1 Company Prefix)."""
    w = World(Ledger(story_consortium()))
    w.register(STORY_GTIN, "Brufen 600 mg film-coated tablets x 30")
    for gln, role in ((PHARMACY_SITE, "pharmacy"), (PHARMACY_PARTY, "party")):
        w.ok(w.regulator, "supply.set_location", {"gln": gln, "org": "pharmacy", "name": "High Street Pharmacy",
                                                  "role": role, "address": {"city": "Cork", "country": "IE"}})
    return w
