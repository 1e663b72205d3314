"""The drug supply-chain contract: GS1 identifiers, product master data, the pack lifecycle (EU FMD /
DSCSA), verification and EPCIS 2.0 capture. Pure; its off-ledger side is :mod:`careledger.supply`.

:mod:`.layout` holds the state keys, typed records (products, lots, packs and logistic units, locations,
captured events and pending captures) and accessors; :mod:`.products`, :mod:`.packs`,
:mod:`.verification`, :mod:`.locations` (the GLN registry and how identifiers resolve to members),
:mod:`.epcis` (idempotent, multi-party capture) and :mod:`.event_hash` the rules; :mod:`.handlers` the
transactions.
"""

from __future__ import annotations

from careledger.contracts.supply.handlers import HANDLERS
from careledger.contracts.supply.layout import (
    CaptureRecord,
    EventRecord,
    LocationRecord,
    LotRecord,
    PackEvent,
    PackRecord,
    ProductRecord,
    captures,
    custody_chain,
    get_capture,
    get_event,
    get_item,
    get_location,
    get_lot,
    get_pack,
    get_product,
    locations,
    lot_key,
    pack_key,
    product_key,
    record_key,
    unit_key,
)

__all__ = [
    "HANDLERS",
    "CaptureRecord",
    "EventRecord",
    "LocationRecord",
    "LotRecord",
    "PackEvent",
    "PackRecord",
    "ProductRecord",
    "captures",
    "custody_chain",
    "get_capture",
    "get_event",
    "get_item",
    "get_location",
    "get_lot",
    "get_pack",
    "get_product",
    "locations",
    "lot_key",
    "pack_key",
    "product_key",
    "record_key",
    "unit_key",
]
