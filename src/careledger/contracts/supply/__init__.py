"""The drug supply-chain contract: GS1 identifiers, product master data, the pack lifecycle (EU FMD /
DSCSA), verification and EPCIS 2.0 capture. Pure; its off-ledger side is :mod:`careledger.supply`.

:mod:`.layout` holds the state keys, typed records (products, lots, packs and logistic units) and
accessors; :mod:`.products`, :mod:`.packs`, :mod:`.verification` and :mod:`.epcis` the rules;
:mod:`.handlers` the transactions.
"""

from __future__ import annotations

from careledger.contracts.supply.handlers import HANDLERS
from careledger.contracts.supply.layout import (
    LotRecord,
    PackEvent,
    PackRecord,
    ProductRecord,
    custody_chain,
    get_item,
    get_lot,
    get_pack,
    get_product,
    lot_key,
    pack_key,
    product_key,
    record_key,
    unit_key,
)

__all__ = [
    "HANDLERS",
    "LotRecord",
    "PackEvent",
    "PackRecord",
    "ProductRecord",
    "custody_chain",
    "get_item",
    "get_lot",
    "get_pack",
    "get_product",
    "lot_key",
    "pack_key",
    "product_key",
    "record_key",
    "unit_key",
]
