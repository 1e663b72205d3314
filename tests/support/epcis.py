"""EPCIS test data (vendored under tests/data/epcis) and the DSCSA world."""

from __future__ import annotations

from pathlib import Path

from support import Ledger
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
